"""Fixtures for the hardware-driver tests: planting the fakes where the drivers look."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the fakes package, also used by subprocess shims
    sys.path.insert(0, str(HERE))


@pytest.fixture
def fake_picamera2(monkeypatch):
    """Install the fake as ``picamera2`` for the driver's guarded import; yields the fake module."""
    from hwfakes import fake_picamera2

    fake_picamera2.reset()
    module = types.ModuleType("picamera2")
    module.Picamera2 = fake_picamera2.Picamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    yield fake_picamera2
    fake_picamera2.reset()


@pytest.fixture
def fake_seabreeze():
    """The real ``seabreeze.spectrometers`` running on the fake backend; yields the fake backend."""
    from hwfakes import fake_seabreeze as backend

    backend.reset()
    with backend.installed():
        yield backend
    backend.reset()


@pytest.fixture
def hw_config(tmp_path):
    """A validated station Config (fresh secret, paths in tmp_path) with optional overrides."""
    from pycam.config import generate_secret, render_config, load_config

    def make(overrides: dict | None = None):
        base = {"storage": {"data_dir": str(tmp_path / "data"), "spool_dir": str(tmp_path / "spool")},
                "usb_config": {"usb_file": str(tmp_path / "usb" / "pycam_config.json"),
                               "work_dir": str(tmp_path / "work")},
                "hardware": {"dslr_output_dir": str(tmp_path / "dslr")}}
        for section, values in (overrides or {}).items():
            base.setdefault(section, {}).update(values)
        path = tmp_path / "station.toml"
        path.write_text(render_config(base, secret=generate_secret()))
        return load_config(path)

    return make
