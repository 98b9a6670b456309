"""Reference spectra: the text loader, the real reference directory and the synthetic set."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.reference_spectra import (SYNTHETIC_LABEL, ReferenceFileError, Spectrum, load_reference_dir,
                                     load_text_spectrum, synthetic_reference_set)


def test_loader_handles_hash_headers_crlf_and_descending(tmp_path):
    path = tmp_path / "xs.txt"
    path.write_bytes(b"# a header\r\n# wl, xs\r\n302.0 3e-19\r\n301.0 2e-19\r\n300.0 1e-19\r\n")
    s = load_text_spectrum(path)
    assert list(s.wavelength) == [300.0, 301.0, 302.0]
    assert list(s.values) == [1e-19, 2e-19, 3e-19]


def test_loader_skips_free_text_header_and_picks_a_column(tmp_path):
    path = tmp_path / "o3.dat"
    path.write_text("ESA study\n\n*O3 cross sections*\nnote: cut at 22000 cm-1\n"
                    "310.5 32206 1.5e-19 1e-21\n310.0 32258 2.0e-19 1e-21\n")
    s = load_text_spectrum(path, value_column=2)
    assert list(s.wavelength) == [310.0, 310.5]
    assert list(s.values) == [2.0e-19, 1.5e-19]
    assert list(load_text_spectrum(path, skiprows=4, value_column=2).values) == [2.0e-19, 1.5e-19]


def test_loader_errors_name_the_file(tmp_path):
    with pytest.raises(ReferenceFileError, match="missing.txt"):
        load_text_spectrum(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("300 1\n301 x\n")
    with pytest.raises(ReferenceFileError, match="bad.txt"):
        load_text_spectrum(bad)
    with pytest.raises(ReferenceFileError, match="lacks"):
        load_reference_dir(tmp_path)


def test_spectrum_rejects_unsorted_or_nonfinite():
    with pytest.raises(ValueError, match="ascending"):
        Spectrum(np.array([2.0, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        Spectrum(np.array([1.0, 2.0]), np.array([1.0, np.nan]))


def test_synthetic_set_is_labelled_deterministic_and_shaped_like_so2():
    a, b = synthetic_reference_set(), synthetic_reference_set()
    assert a.synthetic and a.label == SYNTHETIC_LABEL and "not real SO2 data" in a.label
    np.testing.assert_array_equal(a.solar.values, b.solar.values)
    wl = a.solar.wavelength
    assert wl[0] == pytest.approx(250.0) and wl[-1] == pytest.approx(450.0)
    assert np.allclose(np.diff(wl), 0.01)
    so2 = a.cross_sections["SO2"].values
    mean = lambda lo, hi: so2[(wl >= lo) & (wl < hi)].mean()   # noqa: E731
    assert 5e-20 < mean(310, 320) < 2e-19
    assert mean(325, 335) < 0.2 * mean(305, 315)
    assert np.all(so2 >= 0)
    # band structure: strong differential structure on a 2-3 nm scale near 310 nm
    window = so2[(wl >= 305) & (wl <= 320)]
    assert window.std() / window.mean() > 0.3
    # Fraunhofer lines: the solar spectrum has deep narrow dips
    solar = a.solar.values[(wl >= 300) & (wl <= 340)]
    assert solar.min() < 0.5 * np.median(solar)
    assert set(a.cross_sections) == {"SO2", "O3", "Ring"}


@pytest.mark.realdata
def test_real_reference_dir(data_dir):
    refs = load_reference_dir(data_dir / "reference")
    assert not refs.synthetic
    so2 = refs.cross_sections["SO2"]
    window = (so2.wavelength >= 310) & (so2.wavelength <= 320)
    assert so2.values[window].mean() == pytest.approx(1.18e-19, rel=0.02)   # README value
    o3 = refs.cross_sections["O3"]
    assert o3.values[(o3.wavelength >= 310) & (o3.wavelength <= 320)].mean() == pytest.approx(5.0e-20, rel=0.05)
    assert refs.solar.wavelength[0] == pytest.approx(200.07)
    assert refs.cross_sections["Ring"].wavelength[-1] == pytest.approx(450.0)
