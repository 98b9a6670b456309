"""Two-waveband light-dilution correction on simulated spectra."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.doas.dilution import DilutionGrid, LightDilutionCorrection, invert
from pycam.doas.model import LineShapeSpec
from pycam.doas.retrieval import RetrievalSettings

SETTINGS = RetrievalSettings(fit_window=(306.0, 316.0), stray_window=None, line_shape=LineShapeSpec(fwem=0.6, k=2.2))


@pytest.fixture(scope="module")
def correction(real_refs, tmp_path_factory):
    # real cross-sections: the synthetic band model is too linear to separate the two windows
    return LightDilutionCorrection(real_refs, SETTINGS, (312.0, 322.0), so2_max=5e18, n_so2=11,
                                   ldf_values=np.round(np.arange(0.0, 0.61, 0.1), 2),
                                   cache_dir=tmp_path_factory.mktemp("ldcache"))


@pytest.mark.slow
@pytest.mark.parametrize("so2, ldf", [(2.3e18, 0.27), (3.1e18, 0.42), (1.6e18, 0.12)])
def test_recovers_known_dilution(correction, real_refs, spectrum_maker, so2, ldf):
    spectrum = spectrum_maker(real_refs)(so2, ldf=ldf)
    fit, detail = correction.fit(spectrum, prepared=True)
    assert detail.constrained
    assert detail.apparent_1 < 0.95 * so2                         # dilution biases a plain fit low
    assert detail.ldf == pytest.approx(ldf, abs=0.04)
    assert fit.so2 == pytest.approx(so2, rel=0.05)
    assert fit.ldf == detail.ldf


def test_grid_is_cached_on_disk(correction, flame_wavelengths, real_refs):
    grid = correction.grid_for(flame_wavelengths)
    files = list(correction.cache_dir.glob("light_dilution_grid_*.npz"))
    assert len(files) == 1
    fresh = LightDilutionCorrection(real_refs, SETTINGS, (312.0, 322.0), so2_max=5e18, n_so2=11,
                                    ldf_values=correction.ldf_values, cache_dir=correction.cache_dir)
    fresh.compute_grid = None                                        # must not be needed
    loaded = fresh.grid_for(flame_wavelengths)
    np.testing.assert_array_equal(loaded.apparent_2, grid.apparent_2)


def test_weak_absorption_is_left_uncorrected():
    so2 = np.linspace(0, 4e18, 9)
    ldf = np.array([0.0, 0.5])
    a1 = np.vstack([so2, 0.5 * so2])
    grid = DilutionGrid(so2, ldf, a1, a1.copy(), ((306, 316), (312, 322)))
    column, factor, constrained = invert(grid, 1e17, 1.3e17)
    assert not constrained and np.isnan(factor) and column == 1e17
