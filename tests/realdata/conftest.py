"""Fixtures for the real-data comparisons with pyplis (marker ``realdata``).

pyplis's Etna 2015 test data (ECII camera) ships inside the pinned pyplis wheel, so these
tests find it through pyplis's install path and run wherever pyplis is installed.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pyplis():
    mod = pytest.importorskip("pyplis", reason="pyplis is not installed: the Etna comparison needs it")
    logging.getLogger("pyplis").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pyplis")
    return mod


@pytest.fixture(scope="session")
def etna_dir(pyplis) -> Path:
    path = Path(pyplis.__file__).parent / "data" / "testdata_minimal" / "images"
    if not path.is_dir():
        pytest.skip(f"pyplis is installed but its test data is missing ({path})")
    return path


@pytest.fixture(scope="session")
def etna_run(pyplis, etna_dir):
    """The Etna plume sequence through both chains (see etna_sequence.py)."""
    from etna_sequence import run_sequence

    return run_sequence(pyplis, etna_dir)
