"""Shared fixtures for the DOAS tests: references (synthetic and real) and a spectrum generator."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.doas.model import IntensityModel, LineShapeSpec
from pycam.doas.spectra import MeasuredSpectrum

#: the pixel grid of the simulated Flame-S (251.5-406.5 nm)
FLAME_WAVELENGTHS = 251.5 + 0.085 * np.arange(2048) - 4.53e-6 * np.arange(2048) ** 2


@pytest.fixture(scope="session")
def synthetic_refs():
    from pycam.doas.references import arrays_from_reference_set
    from pycam.reference_spectra import synthetic_reference_set

    return arrays_from_reference_set(synthetic_reference_set())


@pytest.fixture(scope="session")
def real_refs(data_dir):
    from pycam.doas.references import load_references

    return load_references(data_dir / "reference")


class SpectrumMaker:
    """Spectra from our own forward model (known truth), dark- and stray-free, optional shot noise."""

    def __init__(self, refs, line_shape=LineShapeSpec(fwem=0.6, k=2.2), window=(300.0, 330.0)):
        self.model = IntensityModel(refs, FLAME_WAVELENGTHS, window, poly_order=2, offset_order=-1,
                                    line_shape=line_shape, fit_shift=False, fit_stretch=False)

    def __call__(self, so2, *, o3=8e18, ring=0.02, ldf=0.0, shift=0.0, level=2e4, rng=None):
        m = self.model
        p = m.default_parameters({"SO2": so2, "O3": o3, "Ring": ring})
        p[m.index["poly0"]], p[m.index["poly1"]] = level, 0.15 * level
        p[m.index["shift"]], p[m.index["ldf"]] = shift, ldf
        clean = m.evaluate(p, jacobian=False)[0]
        counts = np.full(FLAME_WAVELENGTHS.size, np.nan)
        counts[m.pixel_index] = clean if rng is None else clean + rng.normal(0.0, np.sqrt(clean / 2.0))
        return MeasuredSpectrum(FLAME_WAVELENGTHS.copy(), counts, source=f"<SO2 {so2:g}>")


@pytest.fixture(scope="session")
def flame_wavelengths():
    return FLAME_WAVELENGTHS.copy()


@pytest.fixture(scope="session")
def make_spectrum(synthetic_refs):
    return SpectrumMaker(synthetic_refs)


@pytest.fixture(scope="session")
def spectrum_maker():
    """The SpectrumMaker class (tests must not import from ``conftest``: the name is shared
    by every test folder's conftest and resolves to whichever was imported first)."""
    return SpectrumMaker
