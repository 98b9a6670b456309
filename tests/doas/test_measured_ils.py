"""Measured line-shape files are used as iFit and PyCam use them (samples as measured, cubic
resampling, unit sum), checked on simulator spectra whose line shape is a known profile."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.doas.lineshape import fit_super_gaussian_to, measured_ils_from_arrays, read_ils_file
from pycam.doas.model import LineShapeSpec
from pycam.doas.retrieval import DoasRetrieval, RetrievalSettings
from pycam.doas.spectra import MeasuredSpectrum

COLUMNS = (2e18, 5e18)


def _simulator(profile):
    from pycam.reference_spectra import synthetic_reference_set
    from pycam.sim.spectrometer_model import SpectrometerModel

    model = SpectrometerModel(None, synthetic_reference_set(), seed=5, noise=False)
    model.set_instrument(measured=profile)
    return model


def _columns(sim, refs, line_shape):
    dark = MeasuredSpectrum(sim.wavelengths.copy(), sim.spectrum_for_column(0.0, frame_type="Dark"),
                            integration_ms=1000, coadd=1, frame_type="Dark")
    retrieval = DoasRetrieval(refs, RetrievalSettings(line_shape=line_shape), dark)
    results = [retrieval.fit(MeasuredSpectrum(sim.wavelengths.copy(), sim.spectrum_for_column(c),
                                              integration_ms=1000, coadd=1)) for c in COLUMNS]
    assert all(r.ok for r in results), [r.quality for r in results]
    return np.array([r.so2 for r in results])


def _file_like_samples(fwem=0.62, k=2.2, floor=0.0):
    """A line sampled like PyCam's *_ILS.txt: 0.085 nm steps from the line start, peak 1."""
    x = np.arange(34) * 0.085
    y = np.exp(-(np.abs(x - 1.37) / (0.5 * fwem)) ** k)
    return x, (y + floor) / (1.0 + floor)


@pytest.mark.realdata
def test_pycam_302nm_file_gives_true_columns(data_dir, synthetic_refs):
    """Spectra made with the 302 nm line exactly as sampled in the file retrieve to their columns
    when fitted with that file.  (Removing the file's ~1.5 % floor narrows the kernel, which cost
    ~5 % of the column: the offset seen against iFit.)"""
    ils = read_ils_file(data_dir / "pycam_spectra" / "2019-07-03_302nm_ILS.txt")
    sim = _simulator((ils.offsets, ils.values))
    columns = _columns(sim, synthetic_refs, LineShapeSpec(measured=ils))
    np.testing.assert_allclose(columns, COLUMNS, rtol=0.01)


def test_file_with_a_floor_is_used_as_measured(synthetic_refs):
    x, y = _file_like_samples(floor=0.015)
    ils = measured_ils_from_arrays(x, y)
    assert ils.values.min() > 0.01                     # the floor is part of the line shape
    sim = _simulator((ils.offsets, ils.values))
    np.testing.assert_allclose(_columns(sim, synthetic_refs, LineShapeSpec(measured=ils)), COLUMNS, rtol=0.01)


def test_measured_and_fitted_super_gaussian_agree(synthetic_refs):
    """The same spectra fitted with a file of a sampled super-Gaussian line and with the
    super-Gaussian fitted to that file agree within 1 % (centring, normalisation, resampling).

    (Not with PyCam's 302 nm file itself: its ~1.5 % floor holds ~6 % of the line's area, which
    no super-Gaussian reproduces, so there the two differ by ~4.7 %; removing the floor made
    them agree, and put both 3.5 % below iFit.)"""
    x, y = _file_like_samples()
    ils = measured_ils_from_arrays(x, y)
    shape = fit_super_gaussian_to(ils)
    assert shape["fwem"] == pytest.approx(0.62, rel=0.01)
    assert shape["k"] == pytest.approx(2.2, rel=0.03)
    sim = _simulator((ils.offsets, ils.values))
    measured = _columns(sim, synthetic_refs, LineShapeSpec(measured=ils))
    fitted = _columns(sim, synthetic_refs, LineShapeSpec(fwem=shape["fwem"], k=shape["k"], a_w=shape["a_w"],
                                                          a_k=shape["a_k"]))
    np.testing.assert_allclose(measured, fitted, rtol=0.01)
    np.testing.assert_allclose(measured, COLUMNS, rtol=0.01)


def test_measured_kernel_is_resampled_and_normalised():
    x, y = _file_like_samples()
    ils = measured_ils_from_arrays(x, y)
    offsets = np.arange(-150, 151) * 0.01
    kernel = ils.kernel(offsets)
    assert kernel.sum() == pytest.approx(1.0)
    assert abs(np.sum(offsets * kernel)) < 0.005               # centred
    assert np.all(kernel[np.abs(offsets) > ils.half_width] == 0)
