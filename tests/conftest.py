"""Shared test fixtures.

Real data lives outside the repository; tests reach it through ``PYCAM_DATA_DIR``
(``.ci/run`` sets it to ``../shared/data``) and skip with the reason when it is unset.
Artefacts (screenshots, plots) go to ``artifacts/`` at the project root.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def station_config(tmp_path):
    """A valid station config file on free loopback ports with a fresh secret; returns its path."""
    from pycam.config import generate_secret, render_config

    text = render_config(
        {
            "network": {"device_port": free_port(), "client_port": free_port(), "reconnect_max_s": 1.0},
            "storage": {"data_dir": str(tmp_path / "data"), "spool_dir": str(tmp_path / "spool")},
        },
        secret=generate_secret(),
    )
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path
