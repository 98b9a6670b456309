"""scripts/install.sh: --dry-run prints the units, generated units pass `systemd-analyze verify`,
a real run into a scratch unit directory is idempotent (systemctl replaced by a logger)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install.sh"
UNITS_ALL = ["pycam-masterpi.service", "pycam-camera@.service", "pycam-spectrometer.service",
             "pycam-config-server.service"]


def run(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def test_dry_run_prints_units_and_changes_nothing(tmp_path):
    out = run("--dry-run", "--role", "all", "--user", "pi", "--unit-dir", str(tmp_path / "units"),
              "--config", str(tmp_path / "station.toml"))
    assert out.returncode == 0, out.stderr
    for unit in UNITS_ALL:
        assert f"# ---- {tmp_path / 'units' / unit} ----" in out.stdout
    assert "User=pi" in out.stdout and f"--config {tmp_path / 'station.toml'}" in out.stdout
    assert "pycam camera --config" in out.stdout and "--band %i --driver picamera2" in out.stdout
    assert "systemctl enable pycam-masterpi.service pycam-camera@on.service pycam-camera@off.service" in out.stdout
    assert "init-config" in out.stdout          # config missing: would be created
    assert not (tmp_path / "units").exists() and not (tmp_path / "station.toml").exists()


def test_bad_options_refused():
    assert run("--role", "moon", "--dry-run", "--user", "pi").returncode == 2
    bad = run("--camera-driver", "webcam", "--dry-run", "--user", "pi")
    assert bad.returncode == 2 and "camera-driver" in bad.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_generated_units_pass_systemd_analyze_verify(tmp_path):
    units = tmp_path / "units"
    for role in ("all", "master"):
        out = run("--render", str(units), "--role", role, "--user", "pi")
        assert out.returncode == 0, out.stderr
    files = sorted(p.name for p in units.iterdir())
    assert files == sorted(UNITS_ALL + ["pycam-second-pi-power.service"])
    verify = subprocess.run(["systemd-analyze", "verify", *[str(p) for p in sorted(units.iterdir())]],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    instance = subprocess.run(["systemd-analyze", "verify", "pycam-camera@on.service"], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:"))
    assert instance.returncode == 0, instance.stdout + instance.stderr


def test_install_is_idempotent(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a real (non-dry) run needs root or sudo here")
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    config = tmp_path / "station.toml"
    config.write_text("# exists\n")
    args = ["--role", "slave", "--user", "nobody", "--unit-dir", str(tmp_path / "units"), "--config",
            str(config), "--no-start", "--spectrometer-driver", "sim"]
    first = run(*args, env={"PYCAM_SYSTEMCTL": str(fake)})
    assert first.returncode == 0, first.stderr
    units = tmp_path / "units"
    assert sorted(p.name for p in units.iterdir()) == ["pycam-camera@.service", "pycam-config-server.service",
                                                      "pycam-spectrometer.service"]
    assert "User=nobody" in (units / "pycam-spectrometer.service").read_text()
    assert log.read_text().splitlines() == [
        "daemon-reload", "enable pycam-camera@off.service pycam-spectrometer.service pycam-config-server.service"]
    stamp = {p.name: p.stat().st_mtime_ns for p in units.iterdir()}
    second = run(*args, env={"PYCAM_SYSTEMCTL": str(fake)})
    assert second.returncode == 0 and "unchanged" in second.stderr
    assert {p.name: p.stat().st_mtime_ns for p in units.iterdir()} == stamp
    assert log.read_text().splitlines()[2:] == [
        "enable pycam-camera@off.service pycam-spectrometer.service pycam-config-server.service"]  # no reload
    assert config.read_text() == "# exists\n"


UNITS_SINGLE = ["pycam-masterpi.service", "pycam-cameras.service", "pycam-spectrometer.service",
                "pycam-config-server.service"]


def listed_units(stdout: str) -> list[str]:
    return [line.split("/")[-1].removesuffix(" ----") for line in stdout.splitlines()
            if line.startswith("# ---- ") and line.endswith(".service ----")]


def test_dry_run_single_pi_station(tmp_path):
    out = run("--dry-run", "--role", "single", "--user", "pi", "--unit-dir", str(tmp_path / "units"),
              "--udev-dir", str(tmp_path / "udev"), "--config", str(tmp_path / "station.toml"))
    assert out.returncode == 0, out.stderr
    assert listed_units(out.stdout) == UNITS_SINGLE            # no power pulse, no per-band camera units
    assert "second-pi-power" not in out.stdout and "pycam-camera@" not in out.stdout
    assert "pycam camera --config" in out.stdout and "--band both --driver picamera2" in out.stdout
    assert ("systemctl enable pycam-masterpi.service pycam-cameras.service pycam-spectrometer.service "
            "pycam-config-server.service") in out.stdout
    rule = f"# ---- {tmp_path / 'udev' / '60-pycam-spectrometer.rules'} ----"
    assert rule in out.stdout and 'ATTR{idVendor}=="2457"' in out.stdout and 'GROUP="plugdev"' in out.stdout
    assert "udevadm control --reload-rules" in out.stdout
    assert "--config-dir" not in out.stdout and "usb_config" not in out.stdout   # USB/FTP paths: the config's
    assert not (tmp_path / "units").exists() and not (tmp_path / "udev").exists()


def test_single_role_refuses_the_dslr_driver():
    bad = run("--role", "single", "--camera-driver", "gphoto2", "--dry-run", "--user", "pi")
    assert bad.returncode == 2 and "--role single" in bad.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_single_pi_units_pass_systemd_analyze_verify(tmp_path):
    units = tmp_path / "units"
    out = run("--render", str(units), "--role", "single", "--user", "pi")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in units.iterdir()) == sorted(UNITS_SINGLE)
    assert "--band both" in (units / "pycam-cameras.service").read_text()
    verify = subprocess.run(["systemd-analyze", "verify", *[str(p) for p in sorted(units.iterdir())]],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_single_install_with_udev_rule_is_idempotent(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a real (non-dry) run needs root or sudo here")
    log = tmp_path / "calls.log"
    for tool in ("systemctl", "udevadm", "usermod"):  # nothing on this machine is changed
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $@" >> {log}\n')
        fake.chmod(0o755)
    config = tmp_path / "station.toml"
    config.write_text("# exists\n")
    env = {f"PYCAM_{tool.upper()}": str(tmp_path / tool) for tool in ("systemctl", "udevadm", "usermod")}
    args = ["--role", "single", "--user", "nobody", "--unit-dir", str(tmp_path / "units"), "--udev-dir",
            str(tmp_path / "udev"), "--config", str(config), "--no-start"]
    first = run(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == sorted(UNITS_SINGLE)
    rule = tmp_path / "udev" / "60-pycam-spectrometer.rules"
    assert rule.read_text() == (ROOT / "scripts" / "udev" / "60-pycam-spectrometer.rules").read_text()
    calls = log.read_text().splitlines()
    assert calls[:2] == ["systemctl daemon-reload", "systemctl enable " + " ".join(UNITS_SINGLE)]
    assert calls[2:5] == ["udevadm control --reload-rules",
                          "udevadm trigger --subsystem-match=usb --attr-match=idVendor=2457",
                          "usermod -a -G plugdev nobody"]
    stamp = rule.stat().st_mtime_ns
    second = run(*args, env=env)
    assert second.returncode == 0 and f"{rule} unchanged" in second.stderr
    assert rule.stat().st_mtime_ns == stamp
    assert [c for c in log.read_text().splitlines()[len(calls):] if c.startswith("udevadm")] == []
