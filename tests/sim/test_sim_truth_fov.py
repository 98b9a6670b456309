"""The simulator's truth for the live demo's calibration check: the true FOV column at a sample
time is the column the simulated spectrometer was given at that trigger time."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.drivers.sim import SimSpectrometer
from pycam.sim.line_truth import SimTruth

T0 = dt.datetime(2026, 11, 21, 9, 0, 0, tzinfo=dt.timezone.utc)


def test_true_fov_columns_are_what_the_spectrometer_sees(sim_config):
    truth = SimTruth(sim_config)
    spec = SimSpectrometer(sim_config)
    spec.open()
    times = [T0 + dt.timedelta(seconds=s) for s in (0, 7, 31, 95)]
    seen = []
    for when in times:
        spec.capture(when)
        seen.append(spec.last_column)
    columns = truth.fov_columns(times)
    np.testing.assert_allclose(columns, seen, rtol=1e-12)
    np.testing.assert_allclose(truth.fov_columns([t.timestamp() for t in times]), columns, rtol=1e-12)
    naive = truth.fov_columns([t.replace(tzinfo=None) for t in times])      # naive datetimes are UTC
    np.testing.assert_allclose(naive, columns, rtol=1e-12)
    assert np.all(columns > 1e16) and np.ptp(columns) > 0.01 * np.mean(columns)   # the plume, moving
    assert truth.fov_columns([]).shape == (0,)
    with pytest.raises(TypeError, match="datetime or POSIX seconds"):
        truth.fov_columns(["09:00"])
