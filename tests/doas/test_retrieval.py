"""The retrieval on spectra from our own forward model (known truth): accuracy, errors, flags, warm starts."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pycam.doas.fitter import levenberg_marquardt
from pycam.doas.model import LineShapeSpec
from pycam.doas.retrieval import (QUALITY_HIGH_RESIDUAL, QUALITY_LOW_INTENSITY, DoasRetrieval, RetrievalSettings)

SETTINGS = RetrievalSettings(stray_window=None, line_shape=LineShapeSpec(fwem=0.6, k=2.2))


def test_lm_solves_a_small_nonlinear_problem():
    x = np.linspace(0, 1, 50)
    truth = np.array([2.0, -3.0])

    def fun(p):
        y = p[0] * np.exp(p[1] * x)
        return y, np.column_stack([np.exp(p[1] * x), p[0] * x * np.exp(p[1] * x)])

    result = levenberg_marquardt(fun, fun(truth)[0], np.array([1.0, 0.0]))
    assert result.converged
    np.testing.assert_allclose(result.x, truth, rtol=1e-6)


@pytest.mark.parametrize("so2", [0.0, 3e17, 1e18, 2e18])
def test_noise_free_retrieval_is_exact(synthetic_refs, make_spectrum, so2):
    result = DoasRetrieval(synthetic_refs, SETTINGS).fit(make_spectrum(so2, shift=0.04), prepared=True)
    assert result.ok and result.converged
    assert abs(result.so2 - so2) <= 0.002 * max(so2, 1e17)
    assert result.values["shift"] == pytest.approx(0.04, abs=2e-3)


def test_noisy_retrieval_error_covers_scatter(synthetic_refs, make_spectrum):
    rng = np.random.default_rng(42)
    retrieval = DoasRetrieval(synthetic_refs, SETTINGS)
    for so2 in (5e17, 2e18):
        results = [retrieval.fit(make_spectrum(so2, rng=rng), prepared=True) for _ in range(25)]
        values = np.array([r.so2 for r in results])
        errors = np.array([r.so2_error for r in results])
        assert abs(values.mean() - so2) < 0.02 * so2
        assert 0.6 < errors.mean() / values.std() < 1.6
        assert np.mean(np.abs(values - so2) <= 2 * errors) >= 0.8


def test_fitted_line_shape_recovers_width(synthetic_refs, make_spectrum):
    settings = dataclasses.replace(SETTINGS, line_shape=LineShapeSpec(fwem=0.5, k=2.0, fit=True))
    result = DoasRetrieval(synthetic_refs, settings).fit(make_spectrum(1e18), prepared=True)
    assert result.so2 == pytest.approx(1e18, rel=0.01)
    assert result.values["fwem"] == pytest.approx(0.6, abs=0.02)


def test_warm_start_matches_cold_start(synthetic_refs, make_spectrum):
    rng = np.random.default_rng(3)
    spectra = [make_spectrum(s, rng=rng) for s in (2e17, 6e17, 1.2e18)]
    warm = DoasRetrieval(synthetic_refs, SETTINGS)
    cold = DoasRetrieval(synthetic_refs, dataclasses.replace(SETTINGS, warm_start=False))
    for spectrum in spectra:
        a, b = warm.fit(spectrum, prepared=True), cold.fit(spectrum, prepared=True)
        assert a.so2 == pytest.approx(b.so2, rel=1e-3, abs=1e14)


def test_quality_flags(synthetic_refs, make_spectrum):
    retrieval = DoasRetrieval(synthetic_refs, SETTINGS)
    dim = make_spectrum(5e17, level=50.0)
    assert retrieval.fit(dim, prepared=True).quality == QUALITY_LOW_INTENSITY
    spiky = make_spectrum(5e17)
    counts = spiky.counts.copy()
    counts[np.flatnonzero(np.isfinite(counts) & (spiky.wavelengths > 312))[0]] *= 1.5
    assert retrieval.fit(spiky.with_counts(counts), prepared=True).quality == QUALITY_HIGH_RESIDUAL
