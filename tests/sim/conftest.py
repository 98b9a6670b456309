"""Fixtures for the simulator tests: one scene per module (building it takes ~1 s)."""
from __future__ import annotations


import pytest

from pycam.config import generate_secret, validate
from pycam.sim.plume import SceneParameters
from pycam.sim.scene import Scene
from pycam.reference_spectra import synthetic_reference_set



@pytest.fixture(scope="module")
def sim_config():
    return validate({"network": {"secret": generate_secret()}})


@pytest.fixture(scope="module")
def references():
    return synthetic_reference_set()


@pytest.fixture(scope="module")
def scene(references):
    return Scene(SceneParameters(seed=7), references)


@pytest.fixture(scope="module")
def quiet_scene(references):
    """The same world without noise (for exact physics checks)."""
    return Scene(SceneParameters(seed=7), references, noise=False)
