"""FTP config server (pyftpdlib, loopback only): authentication, confinement, reload + test photo
events and broken uploads, with a fake-backed Picamera2 camera behind the reload."""
from __future__ import annotations

import datetime as dt
import ftplib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.net import free_port

from pycam.config import load_config
from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.formats.images import write_image
from pycam.formats.names import ImageName
from pycam.station.ftp_config import (ConfigServer, ConfigServerError, ConfigService, ConfigWatcher,
                                         ensure_password)
from pycam.station.usb_config import RuntimeConfig

PASSWORD = "correct-horse-battery"


@pytest.fixture
def station(tmp_path, hw_config, fake_picamera2):
    """A Picamera2 camera on the fake, its runtime config, and a running ConfigService."""
    cfg = hw_config({"config_server": {"port": free_port(), "password": PASSWORD, "poll_s": 0.05}})
    cam = Picamera2Camera(cfg, "on", clock=lambda: dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    cam.open()
    events: queue.Queue = queue.Queue()
    publish = lambda kind, **f: events.put((kind, f))  # noqa: E731
    rc = RuntimeConfig(cfg["usb_config"]["usb_file"], cfg["usb_config"]["work_dir"], "camera",
                       cam.control_specs, cam.apply_controls, publish=publish)
    rc.startup()
    photos = tmp_path / "photos"

    def test_photo() -> str:
        frame = cam.capture(dt.datetime.now(dt.timezone.utc))
        name = ImageName(frame.time, "on", int(frame.gain), frame.exposure_us, "Test")
        write_image(photos / name.filename(), frame.pixels)
        return name.filename()

    service = ConfigService(cfg, rc, test_photo, publish)
    service.server.auth_failed_delay = 0.05
    service.start()
    yield service, rc, events, fake_picamera2, photos
    service.stop()
    cam.close()


def login(service, user="pycam", password=PASSWORD) -> ftplib.FTP:
    host, port = service.server.address
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=10)
    ftp.login(user, password)
    return ftp


def next_event(events, kind="config_reload", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got_kind, fields = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if got_kind == kind:
            return fields
    raise AssertionError(f"no {kind} event")


def test_wrong_password_and_anonymous_refused(station):
    service = station[0]
    with pytest.raises(ftplib.error_perm, match="530"):
        login(service, password="wrong-password-123")
    with pytest.raises(ftplib.error_perm, match="530"):
        login(service, user="anonymous", password="guest@example.com")
    with pytest.raises(ftplib.error_perm, match="530"):
        login(service, user="root", password=PASSWORD)
    login(service).quit()


@pytest.mark.slow
def test_good_upload_reloads_and_takes_test_photo(station):
    service, rc, events, fake, photos = station
    ftp = login(service)
    ftp.storbinary("STOR pycam_config.json",
                   io.BytesIO(json.dumps({"camera": {"ExposureTime": 30000, "AnalogueGain": 3.0}}).encode()))
    ftp.quit()
    ev = next_event(events)
    assert ev["state"] == "applied" and ev["settings"] == {"ExposureTime": 30000, "AnalogueGain": 3.0}
    assert ev["test_photo"].endswith("_fltrA_3ag_" + ev["test_photo"].split("_")[3] + "_Test.png")
    assert (photos / ev["test_photo"]).is_file()
    assert 0.93 * 30000 <= ImageName.parse(ev["test_photo"]).exposure_us <= 30000
    assert rc.settings == {"ExposureTime": 30000, "AnalogueGain": 3.0}


@pytest.mark.slow
def test_broken_upload_reports_key_and_keeps_settings(station):
    service, rc, events, fake, photos = station
    ftp = login(service)
    ftp.storbinary("STOR pycam_config.json", io.BytesIO(b'{"camera": {"ExposureTime": 12000}}'))
    assert next_event(events)["state"] == "applied"
    calls_before = len(fake.INSTANCES[-1].set_controls_calls)
    ftp.storbinary("STOR pycam_config.json", io.BytesIO(b'{"camera": {"ExposureTime": 12000, "Gain": 2}}'))
    ev = next_event(events)
    assert ev["state"] == "error" and ev["key"] == "camera.Gain" and "Gain" in ev["message"]
    assert ev["settings"]["ExposureTime"] == 12000
    ftp.storbinary("STOR pycam_config.json", io.BytesIO(b'{"camera": {"ExposureTime": -5}}'))
    ev = next_event(events)
    assert ev["key"] == "camera.ExposureTime" and "out of range" in ev["message"]
    ftp.quit()
    assert rc.settings["ExposureTime"] == 12000
    assert len(fake.INSTANCES[-1].set_controls_calls) == calls_before  # nothing sent to the camera


def test_confined_to_the_working_directory(station, tmp_path):
    service, rc, events, fake, photos = station
    secret = tmp_path / "station.toml"
    assert secret.exists()
    os.symlink(tmp_path, rc.work_dir / "escape")
    ftp = login(service)
    assert ftp.pwd() == "/"
    ftp.cwd("..")
    assert ftp.pwd() == "/"
    names = ftp.nlst()
    assert "pycam_config.json.default" in names and "station.toml" not in names
    for path in ("../station.toml", "/../station.toml", "escape/station.toml"):
        with pytest.raises(ftplib.error_perm, match="550"):
            ftp.retrbinary(f"RETR {path}", lambda b: None)
    ftp.storbinary("STOR ../evil.json", io.BytesIO(b"{}"))  # ".." is clamped at the FTP root
    with pytest.raises(ftplib.error_perm, match="550"):
        ftp.storbinary("STOR escape/evil.json", io.BytesIO(b"{}"))  # the symlink leads outside
    with pytest.raises(ftplib.error_perm, match="550"):
        ftp.delete("pycam_config.json.default")  # no delete permission
    with pytest.raises(ftplib.error_perm, match="550"):
        ftp.mkd("sub")
    ftp.quit()
    assert not (tmp_path / "evil.json").exists() and (rc.work_dir / "evil.json").exists()


def test_watcher_catches_edits_without_ftp(tmp_path):
    target = tmp_path / "c.json"
    target.write_text("{}")
    seen = []
    watcher = ConfigWatcher(target, seen.append, poll_s=0.01)
    assert not watcher.check()
    target.write_text('{"camera": {}}')
    assert not watcher.check()          # first sight: wait for the content to be stable
    assert watcher.check() and seen == [target]
    assert not watcher.check()


def test_no_password_no_server(tmp_path):
    with pytest.raises(ConfigServerError, match="password"):
        ConfigServer(tmp_path, user="pycam", password="")
    with pytest.raises(ConfigServerError, match="anonymous"):
        ConfigServer(tmp_path, user="anonymous", password=PASSWORD)


def test_password_generated_once_and_saved(hw_config):
    cfg = hw_config()
    assert cfg["config_server"]["password"] == ""  # no shipped default
    password, generated = ensure_password(cfg.path)
    assert generated and len(password) >= 20
    assert load_config(cfg.path)["config_server"]["password"] == password
    assert oct(cfg.path.stat().st_mode & 0o777) == "0o600"
    assert ensure_password(cfg.path) == (password, False)
    assert "# FTP password; empty: generated" in cfg.path.read_text()  # comments kept


def test_cli_serves_with_generated_password(hw_config, tmp_path):
    cfg = hw_config({"config_server": {"port": free_port()}})
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pycam", "config-server", "--config", str(cfg.path)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while True:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
            if "serving" in line:
                break
        password = load_config(cfg.path)["config_server"]["password"]
        assert any("generated FTP password" in l for l in lines) and password not in "".join(lines)
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", cfg["config_server"]["port"], timeout=10)
        ftp.login("pycam", password)
        ftp.storbinary("STOR pycam_config.json", io.BytesIO(b'{"camera": {}}'))
        ftp.quit()
        assert (Path(cfg["usb_config"]["work_dir"]) / "pycam_config.json").read_text() == '{"camera": {}}'
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_reloader_ignores_a_change_of_the_other_devices_section(tmp_path):
    from pycam.station.ftp_config import ConfigReloader

    applied, photos, events = [], [], []
    rc = RuntimeConfig(tmp_path / "usb" / "c.json", tmp_path / "work", "spectrometer",
                       lambda: {"IntegrationTime": {"min": 1, "max": 1000, "default": 100, "type": "int"}},
                       lambda v: applied.append(v) or v)
    reload = ConfigReloader(rc, lambda: photos.append(1) or "x.npy", lambda k, **f: events.append(f))
    work = tmp_path / "work"
    work.mkdir()
    (work / "c.json").write_text('{"spectrometer": {"IntegrationTime": 50}, "camera": {"ExposureTime": 1}}')
    reload(work / "c.json")
    (work / "c.json").write_text('{"spectrometer": {"IntegrationTime": 50}, "camera": {"ExposureTime": 2}}')
    reload(work / "c.json")
    assert applied == [{"IntegrationTime": 50}] and len(photos) == 1 and len(events) == 1
