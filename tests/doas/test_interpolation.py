"""The numpy cubic spline used to resample references and measured line shapes."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.doas.interpolation import cubic_spline


def test_matches_scipy_natural_spline_and_crops_safely():
    from scipy.interpolate import CubicSpline

    rng = np.random.default_rng(1)
    x = np.cumsum(rng.uniform(0.05, 0.15, 400))
    y = np.sin(3 * x) + rng.normal(0, 0.1, x.size)
    new = np.linspace(x[0], x[-1], 3000)
    np.testing.assert_allclose(cubic_spline(x, y, new), CubicSpline(x, y, bc_type="natural")(new), atol=1e-12)
    inner = new[(new > 10) & (new < 12)]                       # only nearby samples are used
    np.testing.assert_allclose(cubic_spline(x, y, inner), CubicSpline(x, y, bc_type="natural")(inner), atol=1e-7)


def test_keeps_band_peaks_that_linear_interpolation_cuts():
    x = np.arange(0, 10, 0.11)
    y = np.exp(-((x - 5.03) / 0.15) ** 2)
    fine = np.arange(0, 10, 0.01)
    truth = np.exp(-((fine - 5.03) / 0.15) ** 2)
    assert np.abs(cubic_spline(x, y, fine) - truth).max() < 0.5 * np.abs(np.interp(fine, x, y) - truth).max()


def test_outside_values():
    x = np.arange(6.0)
    assert cubic_spline(x, x ** 2, np.array([-1.0, 7.0]), outside=0.0).tolist() == [0.0, 0.0]
    assert cubic_spline(x, x ** 2, np.array([-1.0, 7.0])).tolist() == [0.0, 25.0]
    assert cubic_spline(x, x ** 2, np.array([2.0]))[0] == pytest.approx(4.0)
