"""Fixtures that plant the fake hardware libraries (``helpers.hwfakes``) where the drivers look,
and a station config for the driver tests (registered in tests/conftest.py)."""
from __future__ import annotations

import sys
import types

import pytest

from helpers.station_config import station_test_config


@pytest.fixture
def fake_picamera2(monkeypatch):
    """Install the fake as ``picamera2`` for the driver's guarded import; yields the fake module."""
    from helpers.hwfakes import fake_picamera2

    fake_picamera2.reset()
    module = types.ModuleType("picamera2")
    module.Picamera2 = fake_picamera2.Picamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    yield fake_picamera2
    fake_picamera2.reset()


@pytest.fixture
def fake_seabreeze():
    """The real ``seabreeze.spectrometers`` running on the fake backend; yields the fake backend."""
    from helpers.hwfakes import fake_seabreeze as backend

    backend.reset()
    with backend.installed():
        yield backend
    backend.reset()


@pytest.fixture
def hw_config(tmp_path):
    """A validated station Config (fresh secret, paths in tmp_path) with optional overrides."""

    def make(overrides: dict | None = None):
        return station_test_config(tmp_path / "station.toml", overrides)

    return make
