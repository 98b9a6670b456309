"""The systemd ExecStart commands with the real drivers, as separate processes: ``pycam masterpi``,
``pycam camera --driver picamera2`` and ``pycam spectrometer --driver seabreeze``.  The libraries
are replaced by shims on PYTHONPATH: a ``picamera2`` package re-exporting the fake, and a
``sitecustomize`` that switches the real seabreeze to the fake backend with one device plugged.

Library calls relied on: those listed in test_picamera2_driver.py and test_seabreeze_driver.py.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.station_config import write_station_toml
from helpers.waiting import wait_for

from pycam.config import load_config
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import ImageName
from pycam.client import StationClient

pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parents[1]   # holds helpers/hwfakes, which the shims import


def make_shims(directory: Path) -> Path:
    (directory / "picamera2").mkdir(parents=True)
    (directory / "picamera2" / "__init__.py").write_text(
        "import os\n"
        "from helpers.hwfakes import fake_picamera2\n"
        "from helpers.hwfakes.fake_picamera2 import Picamera2  # test shim: the fake stands in for picamera2\n"
        "if os.environ.get('PYCAM_TEST_PI5'):  # a Pi 5 with two cameras\n"
        "    fake_picamera2.PLATFORM, fake_picamera2.ATTACHED = 'pisp', 2\n")
    (directory / "sitecustomize.py").write_text(
        "import os\n"
        "serial = os.environ.get('PYCAM_TEST_FAKE_SEABREEZE')\n"
        "if serial:\n"
        "    from helpers.hwfakes import fake_seabreeze\n"
        "    fake_seabreeze.install_permanently()\n"
        "    fake_seabreeze.plug(serial)\n"
        "    if os.environ.get('PYCAM_TEST_PI5'):  # the Pi's failing IPv4 scan\n"
        "        fake_seabreeze.NETWORK_SCAN_ERROR = OSError(19, 'No such device')\n")
    return directory


@contextlib.contextmanager
def unit_processes(tmp_path: Path, cameras: dict[str, list[str]], env_extra: dict[str, str], devices: set[str]):
    """The master, the given camera processes (name -> ``pycam camera`` arguments) and the
    seabreeze spectrometer as separate processes on the fakes; yields (config, client, procs)
    once ``devices`` are connected, and stops them all afterwards (logs in ``tmp_path/<name>.log``)."""
    config_path = write_station_toml(tmp_path / "station.toml", {
        "camera": {"auto_exposure": False, "shutter_us": 50_000},
        "spectrometer": {"auto_integration": False, "integration_ms": 20},
    })
    config = load_config(config_path)
    shims = make_shims(tmp_path / "shims")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shims), str(TESTS_DIR)]), PYTHONUNBUFFERED="1",
               **env_extra)
    base = [sys.executable, "-m", "pycam"]
    commands = {"master": base + ["masterpi", "--config", str(config_path), "--no-fsync"],
                **{name: base + ["camera", "--config", str(config_path), *args] for name, args in cameras.items()},
                "SPC": base + ["spectrometer", "--config", str(config_path), "--driver", "seabreeze"]}
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in commands}
    procs = {name: subprocess.Popen(cmd, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
             for name, cmd in commands.items()}
    client = StationClient(config, name="test")
    try:
        client.start()
        assert client.wait_connected(30)

        def connected():
            try:
                return set(client.request("master", "LOG", 0, timeout=5).value["devices"]) >= devices
            except Exception:
                return False

        wait_for(connected, 40, f"{', '.join(sorted(devices))} to connect")
        yield config, client, procs
    finally:
        client.stop()
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fh in logs.values():
            fh.close()


def test_unit_commands_run_the_real_drivers_on_the_fakes(tmp_path):
    with unit_processes(tmp_path, {"CM1": ["--band", "on", "--driver", "picamera2"]},
                        {"PYCAM_TEST_FAKE_SEABREEZE": "FLMS09999"}, {"CM1", "SPC"}) as (config, client, procs):
        client.request("CM1", "TPA", "Test", timeout=10)
        client.request("SPC", "TPS", "Test", timeout=10)
        data = Path(config["storage"]["data_dir"])
        image = wait_for(lambda: sorted(data.rglob("*_fltrA_*_Test.png")), 30, "the test image")[0]
        spectrum = wait_for(lambda: sorted(data.rglob("*_Test.npy")), 30, "the test spectrum")[0]
    log_text = {name: (tmp_path / f"{name}.log").read_text() for name in procs}
    assert "picamera2 driver" in log_text["CM1"], log_text["CM1"]
    # the camera process attached its runtime config: template from the driver's controls
    template = (tmp_path / "work" / "pycam_config.json.default").read_text()
    assert '"ExposureTime"' in template and "3066985" in template
    assert read_image(image).shape == (486, 648)
    assert 0.93 * 50_000 <= ImageName.parse(image.name).exposure_us <= 50_000
    assert read_spectrum_npy(spectrum).shape == (2, 2048)
    assert "_20ss_1coadd_Test.npy" in spectrum.name


def test_single_pi_unit_commands(tmp_path):
    """``--role single``'s ExecStart commands: the camera pair in one process (``--band both``)
    on a fake Pi 5 with two cameras, the spectrometer with the IPv4 scan failing."""
    with unit_processes(tmp_path, {"cameras": ["--band", "both", "--driver", "picamera2"]},
                        {"PYCAM_TEST_FAKE_SEABREEZE": "FLMS09998", "PYCAM_TEST_PI5": "1"},
                        {"CM1", "CM2", "SPC"}) as (config, client, procs):
        for device, key in (("CM1", "TPA"), ("CM2", "TPB"), ("SPC", "TPS")):
            client.request(device, key, "Test", timeout=10)
        data = Path(config["storage"]["data_dir"])
        images = {f: wait_for(lambda f=f: sorted(data.rglob(f"*_{f}_*_Test.png")), 30, f"the {f} test image")[0]
                  for f in ("fltrA", "fltrB")}
        wait_for(lambda: sorted(data.rglob("*_Test.npy")), 30, "the test spectrum")
    log_text = {name: (tmp_path / f"{name}.log").read_text() for name in procs}
    assert "CM1: picamera2 driver" in log_text["cameras"] and "CM2: picamera2 driver" in log_text["cameras"]
    assert all(proc.returncode in (0, -15) for proc in procs.values()), log_text
    for image in images.values():
        assert read_image(image).shape == (486, 648)
