"""The station in one process (fake drivers, real sockets on 127.0.0.1)."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from helpers.waiting import wait_for
from station_helpers import InProcessStation, raw_connection, stored_files, temporaries

from pycam.formats.images import read_image, read_spectrum_npy
from pycam.net.auth import AuthError, client_handshake
from pycam.net.connection import ConnectionClosed
from pycam.protocol import messages as m
from pycam.protocol.frames import encode_frame, encode_frame_bytes
from pycam.client import CommandFailed, StationClient


def test_commands_are_routed_and_answered_with_exact_types(station):
    client = station.client()
    reply = client.request("CM1", "SSA", 25_000)
    assert reply.device == "CM1" and reply.key == "SSA"
    assert reply.value == station.services["CM1"].driver.shutter_us   # the value really in force
    assert station.services["CM1"].auto_exposure is False              # SSA switches ATA off
    reply = client.request("SPC", "FRS", "0.3333333333")
    assert reply.value == 0.3333333333
    answers = client.request("all", "STC", 0)
    assert sorted(a.device for a in answers) == ["CM1", "CM2"]


def test_log_1_returns_every_devices_settings(station):
    client = station.client()
    station.services["CM2"].saturation_pixels = 1234
    answers = client.request("all", "LOG", 1)
    by_device = {a.device: a.value for a in answers}
    assert set(by_device) == {"CM1", "CM2", "SPC", "master"}
    assert by_device["CM2"]["PXC"] == 1234 and "SSB" in by_device["CM2"]
    assert "SSA" in by_device["CM1"] and "SSS" in by_device["SPC"]
    assert set(by_device["master"]) >= {"CM1", "CM2", "SPC"}


@pytest.mark.parametrize("device, key, value, reason", [
    ("CM1", "SSA", 0, "range"), ("CM2", "SSA", 1000, "CM1"), ("CM1", "FRC", "fast", "number"),
    ("SPC", "TPS", "Plume", "frame type"), ("XX1", "LOG", 0, "unknown device"), ("CM1", "SMN", 0.95, "range"),
])
def test_bad_commands_get_an_error_naming_the_key(station, device, key, value, reason):
    client = station.client()
    with pytest.raises(CommandFailed) as info:
        client.request(device, key, value)
    assert reason in info.value.error.reason
    assert info.value.error.key in (key, "device")


def test_cross_field_check_smn_below_smx(station):
    client = station.client()
    with pytest.raises(CommandFailed) as info:
        client.request("CM1", "SMN", 0.9)   # SMX is 0.9
    assert info.value.error.key == "SMN" and "SMX" in info.value.error.reason


def test_unauthenticated_command_is_refused(station):
    with raw_connection(station.master.client_port) as conn:
        assert isinstance(conn.receive(timeout=5), m.Challenge)
        conn.send(m.Command(request_id=1, device="CM1", key="SSA", value=1000))
        error = conn.receive(timeout=5)
        assert isinstance(error, m.Error) and error.key == "SSA" and "not authenticated" in error.reason
        with pytest.raises(ConnectionClosed):
            conn.receive(timeout=5)
    assert station.services["CM1"].shutter_us != 1000


def test_wrong_secret_is_refused(station):
    with raw_connection(station.master.client_port) as conn:
        with pytest.raises(AuthError, match="wrong client secret"):
            client_handshake(conn, "x" * 64, role="client", name="intruder")


def test_device_role_cannot_use_client_port(station):
    with raw_connection(station.master.client_port) as conn:
        with pytest.raises(AuthError, match="role"):
            client_handshake(conn, station.config["network"]["secret"], role="device", name="x", device="CM1")


def test_garbage_and_oversized_frames_close_only_that_connection(station):
    client = station.client()
    for junk in (b"SSA 1000 END\r\n", b"\xffPYC\x01\x00" + b"\xff" * 20):
        with raw_connection(station.master.client_port) as conn:
            conn.receive(timeout=5)
            conn.sock.sendall(junk)
            error = conn.receive(timeout=5)
            assert isinstance(error, m.Error) and error.key in ("frame", "version")
            with pytest.raises(ConnectionClosed):
                conn.receive(timeout=5)
    assert client.request("master", "LOG", 0).value["devices"] == ["CM1", "CM2", "SPC"]


def _next_answer(conn):
    """The next message that is not a broadcast event (health heartbeats reach every client)."""
    while True:
        msg = conn.receive(timeout=5)
        if not isinstance(msg, m.Event):
            return msg


def test_malformed_message_gets_error_and_connection_stays(station):
    secret = station.config["network"]["secret"]
    with raw_connection(station.master.client_port) as conn:
        client_handshake(conn, secret, role="client", name="raw")
        conn.send_buffers(encode_frame(json.dumps({"kind": "command", "request_id": 5, "device": "CM1",
                                                   "key": 7}).encode()))
        error = _next_answer(conn)
        assert isinstance(error, m.Error) and error.key == "key" and error.request_id == 5
        conn.send(m.Command(request_id=6, device="master", key="IDN", value=""))
        reply = _next_answer(conn)
        assert isinstance(reply, m.Reply) and reply.value == "master"


def test_continuous_capture_pairs_by_identical_timestamp(station):
    client = station.client()
    client.request("all", "FRC", 1)
    client.request("all", "STC", 1)
    client.request("SPC", "STS", 1)

    def pairs():
        a = {p.name.split("_")[0] for p in stored_files(station.data_dir, "*fltrA*Plume.png")}
        b = {p.name.split("_")[0] for p in stored_files(station.data_dir, "*fltrB*Plume.png")}
        return a & b if len(a & b) >= 2 else None

    common = wait_for(pairs, 10, what="two A/B pairs")
    client.request("all", "SPC", 1)
    for t in common:
        assert dt.datetime.strptime(t, "%Y-%m-%dT%H%M%S")   # whole-second PyCam time
    img = read_image(stored_files(station.data_dir, "*fltrA*Plume.png")[0])
    assert img.shape == (486, 648) and img.dtype == np.uint16 and img.max() <= 1023
    assert all(p.parent.name == "Seq_1" for p in stored_files(station.data_dir, "*Plume*"))
    assert wait_for(lambda: stored_files(station.data_dir, "*Plume.npy"), 10, what="a spectrum")
    assert read_spectrum_npy(stored_files(station.data_dir, "*Plume.npy")[0]).shape == (2, 2048)


@pytest.mark.slow
def test_test_image_during_continuous_capture_is_taken_and_starts_nothing(station):
    events = []
    client = station.client(on_message=events.append)
    client.request("all", "FRC", 1)
    client.request("all", "STC", 1)
    wait_for(lambda: stored_files(station.data_dir, "*fltrA*Plume.png"), 10, what="a plume frame")
    for _ in range(3):
        client.request("CM1", "TPA", "Test")
        client.request("CM2", "TPB", "Test")
    tests = wait_for(lambda: (lambda f: f if len(f) == 6 else None)(stored_files(station.data_dir, "*Test.png")),
                     10, what="6 test images")
    n_plume = len(stored_files(station.data_dir, "*Plume.png"))
    wait_for(lambda: len(stored_files(station.data_dir, "*Plume.png")) >= n_plume + 2, 10,
             what="continuous capture to go on")
    client.request("all", "SPC", 1)
    assert all(p.parent.name == "test_images" for p in tests)
    assert not list(station.data_dir.rglob("Cal_*"))
    assert not [e for e in events if isinstance(e, m.Event) and "cal" in e.name.lower()]


def test_dark_set_on_command(station):
    events = []
    client = station.client(on_message=events.append)
    client.request("CM1", "DKC", 1)
    client.request("SPC", "DKS", 1)
    wait_for(lambda: {e.name for e in events if isinstance(e, m.Event)} >= {"DFC", "DFS"}, 20,
             what="dark-set finished events")
    # DFC/DFS mean "all captured and spooled"; delivery to the master follows
    darks = wait_for(lambda: (lambda f: f if len(f) >= 40 else None)(stored_files(station.data_dir,
                                                                                  "*fltrA*Dark.png")),
                     20, what="40 camera darks stored")
    assert len(darks) == 40 and len({p.name.split("_")[3] for p in darks}) == 40   # one per shutter value
    spectra = wait_for(lambda: (lambda f: f if len(f) >= 48 else None)(stored_files(station.data_dir, "*Dark.npy")),
                       20, what="48 dark spectra stored")
    assert len({p.name.split("_")[1] for p in spectra}) == 48


def test_subscribed_client_receives_image_data(station):
    got = []
    client = station.client(subscribe=("image",), on_message=lambda msg: got.append(msg)
                            if isinstance(msg, m.Data) else None)
    other = station.client(name="unsubscribed", on_message=lambda msg: got.append(("other", msg))
                           if isinstance(msg, m.Data) else None)
    client.request("CM2", "TPB", "Clear")
    data = wait_for(lambda: [g for g in got if isinstance(g, m.Data)], 10, what="image data")[0]
    assert data.meta.band == "off" and data.meta.frame_type == "Clear" and data.meta.filename.endswith("Clear.png")
    arr = data.array()
    stored = read_image(stored_files(station.data_dir, "*Clear.png")[0])
    np.testing.assert_array_equal(arr, stored)
    assert not [g for g in got if isinstance(g, tuple)]
    assert other.state == "connected"


def test_file_stored_callbacks_and_published_events(station):
    seen = []
    station.master.file_stored_callbacks.append(lambda path, device: seen.append((path, device)))
    events = []
    client = station.client(on_message=events.append)
    station.master.publish_event("watchdog", action="restart", state="done", attempt=3)
    client.request("SPC", "TPS", "Test")
    wait_for(lambda: seen, 10, what="callback")
    assert seen[0][1] == "SPC" and seen[0][0].exists()
    wait_for(lambda: [e for e in events if isinstance(e, m.Event) and e.name == "watchdog"], 5, what="event")


def test_in_process_acquisition_api(station):
    events = []
    station.client(on_message=events.append)
    assert sorted(station.master.start_acquisition()) == ["CM1", "CM2", "SPC"]
    wait_for(lambda: all(s.acquiring for s in station.services.values()), 5, what="acquiring")
    assert sorted(station.master.stop_acquisition()) == ["CM1", "CM2", "SPC"]
    wait_for(lambda: not any(s.acquiring for s in station.services.values()), 5, what="stopped")
    assert sorted(station.master.start_dark_set()) == ["CM1", "CM2", "SPC"]
    wait_for(lambda: len([e for e in events if isinstance(e, m.Event) and e.name in ("DFC", "DFS")]) == 3, 30,
             what="three dark sets")


def test_store_and_forward_when_master_starts_late(station_config):
    st = InProcessStation(station_config, devices=("CM1",), start_master=False)
    try:
        service = st.services["CM1"]
        for _ in range(3):
            service.handle_command(m.Command(request_id=1, device="CM1", key="TPA", value="Test"))
        spool = st.spool_dir / "CM1"
        wait_for(lambda: len(list(spool.glob("*.png"))) == 3, 10, what="3 spooled files")
        st.master.start()
        wait_for(lambda: len(stored_files(st.data_dir, "*Test.png")) == 3, 15, what="delivery")
        wait_for(lambda: not list(spool.glob("*.png")), 10, what="spool emptied after confirmation")
        assert not temporaries(st.data_dir) and not temporaries(spool)
    finally:
        st.close()


@pytest.mark.slow
def test_disk_full_keeps_files_spooled(station_config):
    text = station_config.read_text().replace("min_free_mb = 200", "min_free_mb = 9000000")
    station_config.write_text(text)
    st = InProcessStation(station_config, devices=("CM1",))
    try:
        st.wait_devices(("CM1",))
        client = st.client()
        seen = []
        client.on_message = seen.append
        client.request("CM1", "TPA", "Test")
        full = wait_for(lambda: [e for e in seen if isinstance(e, m.Event) and e.name == "storage"], 10,
                        what="disk-full event")[0]
        assert full.fields["state"] == "full" and "disk full" in full.fields["reason"]
        assert not [e for e in seen if isinstance(e, m.Error)], "clients get one storage event, not file errors"
        # the frame travels while the camera still writes it to its spool: once written, it stays
        assert wait_for(lambda: list((st.spool_dir / "CM1").glob("*Test.png")), 10,
                        what="the file must stay in the spool")
        assert not stored_files(st.data_dir, "*.png")
    finally:
        st.close()


def test_client_state_and_reconnect(station_config):
    st = InProcessStation(station_config, devices=())
    states = []
    client = StationClient(st.config, name="t", on_state=states.append)
    client.start()
    try:
        assert client.wait_connected(10)
        port = st.master.client_port
        st.master.stop()
        wait_for(lambda: client.state == "reconnecting", 5, what="reconnecting")
        from pycam.station.master import Master
        st.master = Master(st.config, fsync=False)
        st.master.start()
        assert st.master.client_port == port
        wait_for(lambda: client.state == "connected", 10, what="reconnected")
        assert client.request("master", "IDN", "").value == "master"
        assert states[:2] == ["connecting", "connected"] and "reconnecting" in states
    finally:
        client.stop()
        st.close()
    assert client.state == "down"


def test_no_payload_accepted_before_authentication(station):
    with raw_connection(station.master.client_port) as conn:
        conn.receive(timeout=5)
        conn.sock.sendall(encode_frame_bytes(b'{"kind":"hello"}', b"x" * 100))
        error = conn.receive(timeout=5)
        assert isinstance(error, m.Error) and "exceeds" in error.reason
        with pytest.raises(ConnectionClosed):
            conn.receive(timeout=5)


def test_restart_command_reopens_the_driver(station):
    client = station.client()
    driver = station.services["CM2"].driver
    opened = driver.opened
    client.request("CM2", "RSC", 1)
    wait_for(lambda: driver.opened == opened + 1, 5, what="driver re-opened")
    client.request("CM2", "TPB", "Test")
    wait_for(lambda: stored_files(station.data_dir, "*fltrB*Test.png"), 10, what="a frame after the restart")


def test_unknown_device_id_is_refused(station):
    secret = station.config["network"]["device_secret"]
    with raw_connection(station.master.device_port) as conn:
        with pytest.raises(AuthError, match="unknown device id"):
            client_handshake(conn, secret, role="device", name="impostor", device="CM9")


def test_camera_a_cannot_store_band_b_images(station_config):
    st = InProcessStation(station_config, devices=())
    try:
        secret = st.config["network"]["device_secret"]
        with raw_connection(st.master.device_port) as conn:
            client_handshake(conn, secret, role="device", name="cm1", device="CM1")
            meta = m.DataMeta(data_type="image", filename="2024-05-01T120004_fltrB_1ag_1000ss_Plume.png",
                              device="CM1", shape=(2, 2), dtype="<u2", time="2024-05-01T12:00:04+00:00",
                              frame_type="Plume", band="off", exposure_us=1000)
            conn.send(m.Data.from_array(meta, np.zeros((2, 2), np.uint16)))
            reply = conn.receive(timeout=5)
            while not isinstance(reply, m.Error):
                reply = conn.receive(timeout=5)
            assert reply.key == "data" and reply.filename == meta.filename and "fltrA" in reply.reason
        assert not stored_files(st.data_dir)
    finally:
        st.close()
