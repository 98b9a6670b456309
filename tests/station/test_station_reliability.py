"""Reliability: one test per bug in PyCam's list, against real processes on 127.0.0.1.

1. a client connects/disconnects 200 times: the master raises nothing and still answers;
2. a camera is SIGKILLed mid-transfer: the master keeps serving, no partial file is ever
   visible, the restarted camera rejoins and its stored-but-unconfirmed files arrive;
3. the master is SIGKILLed and restarted at once on the same port;
4. a client vanishes mid-command (broken pipe): a new client connects and works;
5. 200 manual spectra in a row, no error;
6. test images never start a calibration.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import time

import pytest
from helpers.waiting import wait_for
from station_helpers import TESTS_DIR, stored_files, temporaries

from pycam.formats.images import read_image
from pycam.net.auth import client_handshake
from pycam.net.connection import Connection
from pycam.protocol import messages as m
from pycam.station.launcher import start_simulated_station, write_station_config

pytestmark = pytest.mark.slow

FAKE_CAMERA = "fake_drivers:FakeCamera"
FAKE_SPECTROMETER = "fake_drivers:FakeSpectrometer"


def launch(tmp_path, framerate=1.0, overrides=None, env=None):
    config = write_station_config(tmp_path / "station.toml", data_dir=tmp_path / "data", spool_dir=tmp_path / "spool",
                                  framerate=framerate, overrides=overrides)
    env = dict(env or {}, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    return start_simulated_station(config, extra_env=env, camera_driver=FAKE_CAMERA,
                                   spectrometer_driver=FAKE_SPECTROMETER, log_dir=tmp_path / "logs")


def assert_clean_log(station, name="master"):
    text = (station.log_dir / f"{name}.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def shared_station(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shared")
    station = launch(tmp)
    station.data_dir = tmp / "data"
    yield station
    codes = station.stop()
    assert all(code == 0 for code in codes.values()), codes
    assert not temporaries(tmp / "data")


def test_1_two_hundred_connects_and_disconnects(shared_station):
    port = shared_station.config["network"]["client_port"]
    secret = shared_station.config["network"]["secret"]
    for i in range(200):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        style = i % 4
        if style == 1:
            sock.recv(100)                               # read the challenge, leave
        elif style == 2:
            sock.sendall(b"\xffPYC\x01\x00\x00\x00")     # half a frame, leave
        elif style == 3:
            conn = Connection(sock)
            client_handshake(conn, secret, role="client", name=f"c{i}")
        if i % 8 == 7:   # abortive close (RST) now and then
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    client = shared_station.client(name="after-200")
    assert client.wait_connected(10)
    assert client.request("master", "LOG", 0).value["devices"] == ["CM1", "CM2", "SPC"]
    assert shared_station.alive("master")
    assert_clean_log(shared_station)


def test_4_client_vanishes_mid_command(shared_station):
    port = shared_station.config["network"]["client_port"]
    secret = shared_station.config["network"]["secret"]
    for i in range(20):
        conn = Connection(socket.create_connection(("127.0.0.1", port), timeout=5))
        client_handshake(conn, secret, role="client", name=f"vanishing{i}", subscribe=("image", "spectrum"))
        conn.send(m.Command(request_id=1, device="all", key="LOG", value=1))
        conn.send(m.Command(request_id=2, device="SPC", key="TPS", value="Test"))
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()   # gone before the replies and the data arrive: the master hits a broken pipe
    client = shared_station.client(name="after-vanish")
    assert client.wait_connected(10)
    answers = client.request("all", "LOG", 1)
    assert {a.device for a in answers} == {"CM1", "CM2", "SPC", "master"}
    assert all(isinstance(a, m.Reply) for a in answers)
    assert_clean_log(shared_station)


def test_5_two_hundred_manual_spectra(shared_station):
    errors = []
    client = shared_station.client(name="spectra",
                                   on_message=lambda msg: errors.append(msg) if isinstance(msg, m.Error) else None)
    assert client.wait_connected(10)
    data_dir = shared_station.data_dir
    before = len(stored_files(data_dir, "*_Test.npy"))
    for _ in range(200):
        reply = client.request("SPC", "TPS", "Test", timeout=10)
        assert reply.value == "Test"
    wait_for(lambda: len(stored_files(data_dir, "*_Test.npy")) >= before + 200, 60, what="200 stored spectra")
    assert errors == []
    assert_clean_log(shared_station, "SPC")


def test_6_test_images_never_start_a_calibration(shared_station):
    events = []
    client = shared_station.client(name="tests", on_message=events.append)
    assert client.wait_connected(10)
    data_dir = shared_station.data_dir
    client.request("all", "STC", 1)
    wait_for(lambda: stored_files(data_dir, "*fltrB*Plume.png"), 10, what="continuous capture")
    for _ in range(5):
        client.request("CM1", "TPA", "Test")
        client.request("CM2", "TPB", "Test")
    wait_for(lambda: len(stored_files(data_dir, "*fltr*_Test.png")) >= 10, 20, what="10 test images")
    plume = len(stored_files(data_dir, "*Plume.png"))
    wait_for(lambda: len(stored_files(data_dir, "*Plume.png")) >= plume + 2, 10, what="continuous capture going on")
    client.request("all", "SPC", 1)
    assert all(p.parent.name == "test_images" for p in stored_files(data_dir, "*_Test.png"))
    assert not list(data_dir.rglob("Cal_*"))
    names = {e.name for e in events if isinstance(e, m.Event)}
    assert not [n for n in names if "cal" in n.lower()]
    assert not [e for e in events if isinstance(e, m.Error)]


def test_2_camera_killed_mid_transfer(tmp_path):
    station = launch(tmp_path, overrides={"simulator": {"full_resolution": True}},
                     env={"FAKE_CAPTURE_DELAY_S": "0.3"})
    try:
        client = station.client(name="t")
        assert client.wait_connected(10)
        data_dir = tmp_path / "data"
        spool = tmp_path / "spool" / "CM1"
        for _ in range(3):   # answered at once; the (slow) captures follow
            client.request("CM1", "TPA", "Test")
        master_pid = station.pid("master")
        os.kill(master_pid, signal.SIGSTOP)    # the master stops reading: the transfer stalls mid-frame
        try:
            wait_for(lambda: len(list(spool.glob("*.png"))) >= 3, 30, what="3 spooled 10 MB frames")
            time.sleep(0.5)                     # the sender is now blocked inside a 10 MB frame
            pending = sorted(p.name for p in spool.glob("*.png"))
            station.kill("CM1")
        finally:
            os.kill(master_pid, signal.SIGCONT)
        assert len(pending) == 3
        # the master keeps serving; nothing partial is visible
        wait_for(lambda: client.request("master", "LOG", 0).value["devices"] == ["CM2", "SPC"], 10,
                 what="the master to serve and see CM1 gone")
        for path in stored_files(data_dir, "*.png"):
            assert read_image(path).shape == (1944, 2592)
        assert not temporaries(data_dir)
        # the restarted camera rejoins and delivers what it had stored
        station.restart("CM1")
        station.wait_ready(30)
        wait_for(lambda: {p.name for p in stored_files(data_dir, "*Test.png")} >= set(pending), 60,
                 what="spooled files delivered after restart")
        wait_for(lambda: not list(spool.glob("*.png")), 20, what="spool emptied")
        for path in stored_files(data_dir, "*.png"):
            assert read_image(path).shape == (1944, 2592)
        assert not temporaries(data_dir) and not temporaries(spool)
        assert_clean_log(station)
    finally:
        station.stop()


def test_3_master_killed_and_restarted_on_the_same_port(tmp_path):
    station = launch(tmp_path)
    try:
        states = []
        client = station.client(name="t", on_state=states.append)
        assert client.wait_connected(10)
        client.request("all", "STC", 1)
        data_dir = tmp_path / "data"
        wait_for(lambda: stored_files(data_dir, "*fltrA*Plume.png"), 10, what="acquisition")
        station.kill("master")
        station.restart("master")
        station.wait_ready(30)
        assert station.alive("master")
        assert "cannot listen" not in (station.log_dir / "master.log").read_text()
        wait_for(lambda: client.state == "connected" and "reconnecting" in states, 20, what="client reconnected")
        assert client.request("master", "LOG", 0).value["devices"] == ["CM1", "CM2", "SPC"]
        n = len(stored_files(data_dir, "*Plume.png"))
        wait_for(lambda: len(stored_files(data_dir, "*Plume.png")) >= n + 2, 15, what="files after the restart")
        client.request("all", "SPC", 1)
        # nothing captured around the restart is lost: every frame has its partner, spools drain
        spool = tmp_path / "spool"
        wait_for(lambda: not [p for d in ("CM1", "CM2") for p in (spool / d).glob("*.png")], 20, what="spools empty")

        def times(band):
            return {p.name.split("_")[0] for p in stored_files(data_dir, f"*_{band}_*_Plume.png")}
        assert times("fltrA") == times("fltrB")
        assert not temporaries(data_dir)
    finally:
        station.stop()


def _fuzz_payloads():
    from hypothesis import strategies as st

    good = [m.encode_bytes(x) for x in (
        m.Command(request_id=1, device="CM1", key="SSA", value=1000),
        m.Command(request_id=2, device="all", key="LOG", value=1),
        m.Subscribe(data_types=("image",)),
        m.Event(name="x", fields={"a": 1}),
    )]
    mutated = st.tuples(st.sampled_from(good), st.lists(st.tuples(st.integers(0, 500), st.integers(1, 255)),
                                                         max_size=3), st.integers(0, 600)).map(
        lambda t: bytes(_mutate(t[0], t[1]))[:max(1, t[2])])
    return st.one_of(st.binary(min_size=1, max_size=600), mutated)


def _mutate(data: bytes, flips):
    out = bytearray(data)
    for pos, xor in flips:
        out[pos % len(out)] ^= xor
    return out


def test_fuzz_live_master_with_random_and_mutated_frames(shared_station):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ports = shared_station.config["network"]
    secret = ports["secret"]

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(payload=_fuzz_payloads(), authenticate=st.booleans(), port_kind=st.sampled_from(["client", "device"]))
    def fuzz(payload, authenticate, port_kind):
        port = ports["client_port"] if port_kind == "client" else ports["device_port"]
        conn = Connection(socket.create_connection(("127.0.0.1", port), timeout=5))
        try:
            if authenticate and port_kind == "client":
                client_handshake(conn, secret, role="client", name="fuzz")
            conn.sock.sendall(payload)
            try:   # whatever comes back must be well-formed protocol (or a close)
                conn.receive(timeout=0.05)
            except (TimeoutError, ConnectionError):
                pass
        except ConnectionError:
            pass
        finally:
            conn.close()

    fuzz()
    client = shared_station.client(name="after-fuzz")
    assert client.wait_connected(10)
    assert client.request("master", "LOG", 0).value["devices"] == ["CM1", "CM2", "SPC"]
    assert shared_station.alive("master")
    assert_clean_log(shared_station)
