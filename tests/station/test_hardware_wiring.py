"""The issue-6 wiring into the station: the runtime config of a camera service (reload + test photo
reported to clients as a station event, through the real master) and the master's housekeeping."""
from __future__ import annotations

import json
import queue
import time
from pathlib import Path

from helpers.station_config import station_test_config

from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.protocol.messages import Event
from pycam.station.camera_service import CameraService
from pycam.client import StationClient
from pycam.station.ftp_config import DeviceRuntimeConfig
from pycam.station.master import Master
from pycam.station.housekeeping import MasterHousekeeping


def station_config(tmp_path: Path, **sections):
    return station_test_config(tmp_path / "station.toml", {"config_server": {"poll_s": 0.05},
                                                          "camera": {"auto_exposure": False, "shutter_us": 20_000},
                                                          **sections})


def wait_event(events: queue.Queue, name: str, timeout: float = 20.0, seen: list | None = None,
               where=lambda ev: True) -> Event:
    """The first ``name`` event matching ``where``; events are kept in ``seen`` (never lost)."""
    seen = seen if seen is not None else []
    deadline = time.monotonic() + timeout
    while True:
        for i, msg in enumerate(seen):
            if isinstance(msg, Event) and msg.name == name and where(msg):
                return seen.pop(i)
        if time.monotonic() > deadline:
            raise AssertionError(f"no {name} event")
        try:
            seen.append(events.get(timeout=0.1))
        except queue.Empty:
            pass


def test_camera_service_runtime_config_reload_reaches_clients(tmp_path, fake_picamera2):
    usb = tmp_path / "usb" / "pycam_config.json"
    usb.parent.mkdir(parents=True)
    usb.write_text(json.dumps({"camera": {"ExposureTime": 40_000}}))
    config = station_config(tmp_path)
    master = Master(config, fsync=False)
    master.start()
    service = CameraService(config, "on", Picamera2Camera(config, "on"))
    events: queue.Queue = queue.Queue()
    client = StationClient(config, name="test", on_message=events.put)
    runtime = None
    try:
        client.start()
        assert client.wait_connected(10)
        service.start()
        runtime = DeviceRuntimeConfig.attach(service, config)
        assert runtime is not None
        assert service.shutter_us == 40_000 and service.auto_exposure is False  # USB file applied at start
        assert (tmp_path / "work" / "pycam_config.json.default").is_file()
        work = tmp_path / "work" / "pycam_config.json"
        work.write_text(json.dumps({"camera": {"ExposureTime": 25_000, "AnalogueGain": 2.0}}))
        runtime.watcher.trigger()
        seen: list = []
        ev = wait_event(events, "config_reload", seen=seen)
        assert ev.device == "CM1" and ev.fields["state"] == "applied", ev.fields
        photo = ev.fields["test_photo"]
        assert photo.endswith("_Test.png") and "_fltrA_2ag_" in photo
        wait_event(events, "file_stored", seen=seen, where=lambda e: e.fields["filename"] == photo)
        assert service.shutter_us == 25_000 and service.gain == 2.0
        work.write_text(json.dumps({"camera": {"AnalogueGain": 99}}))
        runtime.watcher.trigger()
        ev = wait_event(events, "config_reload", seen=seen)
        assert ev.fields["state"] == "error" and ev.fields["key"] == "camera.AnalogueGain"
        assert service.gain == 2.0
    finally:
        if runtime is not None:
            runtime.stop()
        client.stop()
        service.stop(drain_timeout=2.0)
        master.stop()


def test_simulator_driver_has_no_runtime_config(tmp_path):
    class Service:
        driver = object()

    assert DeviceRuntimeConfig.attach(Service(), station_config(tmp_path)) is None


class FakeMaster:
    def __init__(self, data_dir):
        self.calls = []
        self.file_stored_callbacks = []
        self.acquiring = False
        self.connected_devices = ("CM1",)
        self.store = type("Store", (), {"data_dir": Path(data_dir)})()

    def start_acquisition(self):
        self.calls.append("start")

    def stop_acquisition(self):
        self.calls.append("stop")

    def start_dark_set(self):
        self.calls.append("dark")

    def publish_event(self, kind, **fields):
        self.calls.append(kind)


def test_master_housekeeping_parts(tmp_path):
    config = station_config(tmp_path, schedule={"enabled": True, "watchdog_check_s": 0.05, "disk_free_mb": 500})
    master = FakeMaster(tmp_path / "data")
    hk = MasterHousekeeping(master, config)
    assert hk.schedule is not None and hk.watchdog is not None and hk.disk is not None
    assert len(master.file_stored_callbacks) == 2
    (tmp_path / "data").mkdir()
    stored = tmp_path / "data" / "2024-05-01T120000_fltrA_1ag_999904ss_Plume.png"
    stored.write_bytes(b"x")
    for callback in master.file_stored_callbacks:
        callback(stored, "CM1")
    assert stored in hk.disk.confirmed
    assert (tmp_path / "spool" / "master_confirmed_files.txt").read_text().strip() == stored.name
    hk.start()
    hk.stop()
    plain = MasterHousekeeping(FakeMaster(tmp_path / "data"), station_config(tmp_path))
    assert plain.schedule is None and plain.watchdog is not None
    assert plain.disk is None  # by default nothing is ever deleted
