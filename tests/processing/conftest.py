"""Fixtures for the processing tests: simulated data sets (``pycam simulate`` layout) made once per session."""
from __future__ import annotations

import json

import pytest
from processing_helpers import SIM_CASES, SIM_PAIRS


@pytest.fixture(scope="session")
def sim_datasets(tmp_path_factory):
    """Simulated data sets keyed by (seed, rate, wind); each value is (directory, truth dict)."""
    sim = pytest.importorskip("pycam.sim.dataset")
    out = {}
    for seed, rate, wind in SIM_CASES:
        d = tmp_path_factory.mktemp(f"sim_{seed}")
        sim.write_dataset(d, sim.DatasetOptions(pairs=SIM_PAIRS, seed=seed, scene="clean", emission_rate_kg_s=rate,
                                                wind_speed_m_s=wind))
        out[(seed, rate, wind)] = (d, json.loads((d / "truth.json").read_text()))
    return out


@pytest.fixture(scope="session")
def sim_dataset(sim_datasets):
    return sim_datasets[SIM_CASES[0]]
