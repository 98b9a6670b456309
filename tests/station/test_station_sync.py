"""Synchronised start and stop: both cameras take their first and last frame on the same trigger.

A/B pairs are matched by the wall-clock trigger, so a start (or stop) that reaches one
camera just before a second boundary and the other just after would leave a frame without
its partner.  The master stamps start/stop commands with one effect time (``Command.at``).
"""
from __future__ import annotations

import json
import math
import time

import pytest

from fake_drivers import FakeCamera
from helpers.waiting import wait_for
from station_helpers import InProcessStation

from pycam.config import load_config
from pycam.protocol import commands as vocab
from pycam.protocol.errors import MessageError
from pycam.protocol.messages import Command
from pycam.station.camera_service import CameraService


def _frame_times(service) -> set[str]:
    return {p.name.split("_")[0] for p in service.spool.directory.glob("*_Plume.png")}


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def _command(key: str, device: str, at: float | None) -> Command:
    return Command(request_id=1, device=device, key=key, value=True, at=at)


def test_start_and_stop_take_effect_at_the_stamped_time_on_both_cameras(station_config):
    config = load_config(station_config)   # no master runs: the frames stay in each camera's spool
    a = CameraService(config, "on", FakeCamera(config, "on"))
    b = CameraService(config, "off", FakeCamera(config, "off"))
    for service in (a, b):
        service.framerate = 1.0
        service.start()
    try:
        start = math.ceil(time.time()) + 2.0
        a.handle_command(_command("STC", "CM1", start))     # A hears it early ...
        _sleep_until(start - 0.15)
        b.handle_command(_command("STC", "CM2", start))     # ... B just before the boundary
        wait_for(lambda: len(_frame_times(a)) >= 2 and len(_frame_times(b)) >= 2, 10, what="two frames each")
        stop = math.ceil(time.time()) + 2.0
        a.handle_command(_command("SPC", "CM1", stop))
        assert a.acquiring   # a stop in the future: the frames before it are still taken
        _sleep_until(stop - 0.15)
        b.handle_command(_command("SPC", "CM2", stop))
        a.stop(drain_timeout=0.5)   # stopping the service waits for the pending stop
        wait_for(lambda: not b.acquiring, 5, what="B stopped")
        times_a, times_b = _frame_times(a), _frame_times(b)
        assert times_a == times_b, (sorted(times_a), sorted(times_b))
        first = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(start))
        last = time.strftime("%Y-%m-%dT%H%M%S", time.gmtime(stop - 1))
        assert min(times_a) == first and max(times_a) == last
    finally:
        a.stop(drain_timeout=0.5)
        b.stop(drain_timeout=0.5)


def test_an_effect_time_far_ahead_acts_at_once(station_config, caplog):
    config = load_config(station_config)
    a = CameraService(config, "on", FakeCamera(config, "on"))
    a.framerate = 1.0
    a.start()
    try:
        a.handle_command(_command("STC", "CM1", time.time() + 3600))   # this camera's clock is an hour behind
        wait_for(lambda: _frame_times(a), 5, what="a frame")
        assert "clock differs from the master's" in caplog.text
    finally:
        a.stop(drain_timeout=0.5)


def test_master_stamps_one_effect_time_on_every_camera(station_config):
    station = InProcessStation(station_config, devices=("CM1", "CM2"))
    seen: dict[str, Command] = {}
    for device, service in station.services.items():
        original = service.handle_command

        def spy(cmd, device=device, original=original):
            if cmd.key == "STC":
                seen[device] = cmd
            return original(cmd)
        service.link.handle_command = spy
    try:
        station.wait_devices(("CM1", "CM2"))
        client = station.client()
        sent = time.time()
        client.request("all", "STC", 1)
        wait_for(lambda: len(seen) == 2, 5, what="STC at both cameras")
        assert seen["CM1"].at == seen["CM2"].at == float(seen["CM1"].at)
        assert sent + vocab.SYNC_MARGIN_S <= seen["CM1"].at <= sent + vocab.SYNC_MARGIN_S + 1.5
        assert seen["CM1"].at == math.floor(seen["CM1"].at)   # a whole second: a trigger
    finally:
        station.close()


def _over_the_wire(header: dict) -> Command:
    return Command.from_header(json.loads(json.dumps(header)), b"")


def test_command_effect_time_round_trips_and_is_checked():
    cmd = Command(request_id=3, device="CM1", key="STC", value=True, at=1_800_000_000.0)
    assert _over_the_wire(cmd.header()) == cmd
    plain = Command(request_id=4, device="CM1", key="SSA", value=1000)
    assert "at" not in plain.header() and _over_the_wire(plain.header()).at is None
    for bad in (-5, 0, "soon", True):
        with pytest.raises(MessageError, match="at"):
            _over_the_wire({**cmd.header(), "at": bad})
