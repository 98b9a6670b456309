"""Shared test fixtures.

Real data lives outside the repository; tests reach it through ``PYCAM_DATA_DIR``
(``.ci/run`` sets it to ``../shared/data``) and skip with the reason when it is unset.
Artefacts (screenshots, plots) go to ``artifacts/`` at the project root.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.station_config import write_station_toml

# the fake-hardware fixtures (fake_picamera2, fake_seabreeze, hw_config) for tests/hardware and tests/station
pytest_plugins = ["helpers.hardware"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data directory, or skip with a clear reason."""
    value = os.environ.get("PYCAM_DATA_DIR")
    if not value:
        pytest.skip("PYCAM_DATA_DIR is not set: real-data test skipped (set it to shared/data)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"PYCAM_DATA_DIR={value} is not a directory: real-data test skipped")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = PROJECT_ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def station_config(tmp_path):
    """A valid station config file on free loopback ports with a fresh secret; returns its path."""
    return write_station_toml(tmp_path / "station.toml")
