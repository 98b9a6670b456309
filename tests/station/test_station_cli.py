"""The station commands as a user runs them: demo, send, bad configs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from station_helpers import TESTS_DIR, stored_files, temporaries

from pycam.formats.images import read_image, read_spectrum_npy
from pycam.station.launcher import start_simulated_station, write_station_config

pytestmark = pytest.mark.slow


def pycam(*args, env=None, timeout=120):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "pycam", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def test_bad_config_value_fails_at_start_naming_the_key(station_config):
    text = station_config.read_text().replace("framerate = 0.25", "framerate = 7.5", 1)
    station_config.write_text(text)
    for command in (["masterpi"], ["camera", "--band", "on"], ["spectrometer"]):
        result = pycam(*command, "--config", str(station_config), timeout=60)
        assert result.returncode == 2
        assert "[camera] framerate" in result.stderr and "<= 1.0" in result.stderr


def test_missing_secret_fails_naming_the_key(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[network]\nsecret = "CHANGE-ME-run-pycam-init-config"\n')
    result = pycam("masterpi", "--config", str(path), timeout=60)
    assert result.returncode == 2 and "[network] secret" in result.stderr


def test_send_prints_json_lines_and_fails_on_error(tmp_path):
    config = write_station_config(tmp_path / "station.toml", data_dir=tmp_path / "data",
                                  spool_dir=tmp_path / "spool")
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    with start_simulated_station(config, extra_env=env, camera_driver="fake_drivers:FakeCamera",
                                 spectrometer_driver="fake_drivers:FakeSpectrometer", log_dir=tmp_path / "logs"):
        ok = pycam("send", "--config", str(config), "SSA=2000", "--to", "CM1")
        assert ok.returncode == 0, ok.stderr
        line = json.loads(ok.stdout.strip())
        assert line["kind"] == "reply" and line["device"] == "CM1" and line["key"] == "SSA"
        assert isinstance(line["value"], int)
        # no --config: found through the demo pointer
        log = pycam("send", "LOG=1", env={"PYCAM_DEMO_CONFIG": str(config)})
        assert log.returncode == 0, log.stderr
        devices = {json.loads(x)["device"] for x in log.stdout.splitlines()}
        assert devices == {"CM1", "CM2", "SPC", "master"}
        bad = pycam("send", "--config", str(config), "SSB=99999999")
        assert bad.returncode == 1
        err = json.loads(bad.stdout.strip())
        assert err["kind"] == "error" and err["key"] == "SSB" and "range" in err["reason"]
        refused = pycam("send", "--config", str(config), "SSA=1000", "--to", "CM2")
        assert refused.returncode == 1 and "CM1" in json.loads(refused.stdout)["reason"]
    nodemo = pycam("send", "LOG=0", env={"PYCAM_DEMO_CONFIG": str(tmp_path / "absent.toml")})
    assert nodemo.returncode == 2 and "no running demo" in nodemo.stderr


def test_demo_headless_leaves_complete_pairs_and_exits(tmp_path):
    data = tmp_path / "data"
    demo_config = tmp_path / "run" / "demo.toml"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = pycam("demo", "--headless", "--duration", "6", "--data-dir", str(data), "--framerate", "1",
                   env={"PYCAM_DEMO_CONFIG": str(demo_config), "TMPDIR": str(scratch)}, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    a = {p.name.split("_")[0]: p for p in stored_files(data, "*_fltrA_*_Plume.png")}
    b = {p.name.split("_")[0]: p for p in stored_files(data, "*_fltrB_*_Plume.png")}
    spectra = stored_files(data, "*_Plume.npy")
    assert a and set(a) == set(b), (sorted(a), sorted(b))   # every frame has its partner
    for t in list(a)[:2]:
        for path in (a[t], b[t]):
            img = read_image(path)
            assert img.shape == (486, 648) and img.dtype == np.uint16 and int(img.max()) <= 1023
    assert spectra and read_spectrum_npy(spectra[0]).shape == (2, 2048)
    assert not temporaries(data)
    assert not demo_config.exists()            # the pointer is removed when the demo ends
    assert not list(scratch.iterdir())         # spool and logs of a clean run are removed
    final = re.search(r"demo: (\d+) A/B pairs, (\d+) A, (\d+) B, (\d+) spectra stored in", result.stdout)
    assert final, result.stdout   # the closing line counts what is on disk, the last frames included
    assert [int(x) for x in final.groups()] == [len(a), len(a), len(b), len(spectra)], result.stdout


def test_ext_to_all_shuts_everything_down_after_delivery(tmp_path):
    config = write_station_config(tmp_path / "station.toml", data_dir=tmp_path / "data",
                                  spool_dir=tmp_path / "spool", framerate=1.0)
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    station = start_simulated_station(config, extra_env=env, camera_driver="fake_drivers:FakeCamera",
                                      spectrometer_driver="fake_drivers:FakeSpectrometer", log_dir=tmp_path / "logs")
    try:
        client = station.client(name="t")
        assert client.wait_connected(10)
        for _ in range(3):
            client.request("CM1", "TPA", "Test")
            client.request("SPC", "TPS", "Test")
        answers = client.request("all", "EXT", 1)
        assert {a.device for a in answers} == {"CM1", "CM2", "SPC", "master"}
        for name in ("CM1", "CM2", "SPC", "master"):
            assert station.processes[name].wait(timeout=30) == 0
        assert len(stored_files(tmp_path / "data", "*_Test.*")) == 6
        assert not [p for d in ("CM1", "CM2", "SPC") for p in (tmp_path / "spool" / d).glob("*")]
        assert not temporaries(tmp_path / "data")
    finally:
        station.stop()
