"""Spectrum files: reading both formats, rejecting bad data with clear messages, preprocessing."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.doas.spectra import (SpectrumError, check_spectrum, list_spectrum_files, preprocess, read_spectrum)
from pycam.formats.images import write_spectrum_npy

WL = np.linspace(250.0, 400.0, 2048)


def _counts():
    counts = 1000.0 + 5000.0 * np.exp(-((WL - 330.0) / 40.0) ** 2)
    counts[0], counts[1] = 17.0, 30670.0   # Flame-S status pixels
    return counts


def _npy(tmp_path, name="2019-05-29T124401_1000ss_1coadd_Plume.npy", counts=None, wl=WL):
    path = tmp_path / name
    write_spectrum_npy(path, wl, _counts() if counts is None else counts, fsync=False)
    return path


def test_npy_metadata_from_pycam_name(tmp_path):
    s = read_spectrum(_npy(tmp_path))
    assert s.pixels == 2048 and s.integration_ms == 1000 and s.coadd == 1 and s.frame_type == "Plume"
    assert s.time == dt.datetime(2019, 5, 29, 12, 44, 1, tzinfo=dt.timezone.utc)
    check_spectrum(s, expected_pixels=2048)


def test_text_spectrum_header(tmp_path):
    path = tmp_path / "spectrum_00001.txt"
    lines = ["# Ocean optics spectrum file", "# Integration time (ms): 100", "# Number of coadds: 10",
             "# Date/Time (end of read): 2018-01-14 10:01:01", "# Wavelength (nm),  Intensity (arb)"]
    lines += [f"{w:.6e} {c:.6e}" for w, c in zip(WL, _counts())]
    path.write_text("\n".join(lines) + "\n")
    s = read_spectrum(path)
    assert s.integration_ms == 100 and s.coadd == 10
    assert s.time == dt.datetime(2018, 1, 14, 10, 1, 1, tzinfo=dt.timezone.utc)
    np.testing.assert_allclose(s.counts, _counts(), rtol=1e-6)


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.__setitem__(500, np.nan), "NaN"),
    (lambda c: c.__setitem__(600, -5.0), "negative"),
    (lambda c: c.__setitem__(slice(800, 805), 65535.0), "saturated"),
])
def test_bad_counts_rejected(tmp_path, damage, message):
    counts = _counts()
    damage(counts)
    s = read_spectrum(_npy(tmp_path, counts=counts))
    with pytest.raises(SpectrumError, match=message) as info:
        check_spectrum(s, saturation_windows=[(250.0, 400.0)])
    assert s.source in str(info.value)


def test_status_pixels_are_not_errors(tmp_path):
    counts = _counts()
    counts[1] = 65535.0
    check_spectrum(read_spectrum(_npy(tmp_path, counts=counts)), saturation_windows=[(240.0, 410.0)])


def test_saturation_outside_window_is_accepted(tmp_path):
    counts = _counts()
    counts[(WL > 363) & (WL < 392)] = 65535.0          # like the real PyCam plume spectra
    check_spectrum(read_spectrum(_npy(tmp_path, counts=counts)), saturation_windows=[(308.0, 318.0)])


def test_wrong_length_and_corrupt_files(tmp_path):
    short = read_spectrum(_npy(tmp_path, "short.npy", counts=_counts()[:1000], wl=WL[:1000]))
    with pytest.raises(SpectrumError, match="wrong length: 1000 pixels, expected 2048"):
        check_spectrum(short, expected_pixels=2048)
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(SpectrumError, match="corrupt.npy"):
        read_spectrum(corrupt)
    text = tmp_path / "bad.txt"
    text.write_text("# header\n300.0 12\n300.1 abc\n")
    with pytest.raises(SpectrumError, match="bad.txt:3: not a number"):
        read_spectrum(text)
    with pytest.raises(SpectrumError, match="not found"):
        read_spectrum(tmp_path / "missing.npy")


def test_dark_and_stray_light_subtraction(tmp_path):
    counts = _counts()
    spec = read_spectrum(_npy(tmp_path, counts=counts + 300.0))
    dark = read_spectrum(_npy(tmp_path, "2019-05-29T124352_1000ss_1coadd_Dark.npy", counts=np.full(2048, 300.0)))
    out = preprocess(spec, dark=dark, stray_window=(293.0, 296.0))
    stray = (WL >= 293) & (WL <= 296)
    expected = counts - counts[stray].mean()
    np.testing.assert_allclose(out.counts[2:], expected[2:], atol=1e-9)
    assert np.isnan(out.counts[:2]).all()               # bad pixels masked


def test_dark_must_match_integration_time(tmp_path):
    spec = read_spectrum(_npy(tmp_path))
    dark = read_spectrum(_npy(tmp_path, "2019-05-29T124352_500ss_1coadd_Dark.npy", counts=np.full(2048, 300.0)))
    with pytest.raises(SpectrumError, match="integration time 1000 ms differs"):
        preprocess(spec, dark=dark)


def test_listing_order_and_locked_files(tmp_path):
    _npy(tmp_path, "2019-05-29T124403_1000ss_1coadd_Plume.npy")
    _npy(tmp_path, "2019-05-29T124401_1000ss_1coadd_Plume.npy")
    _npy(tmp_path, "2019-05-29T124402_1000ss_1coadd_Plume.npy")
    (tmp_path / "2019-05-29T124402_1000ss_1coadd_Plume.lock").write_text("")
    names = [p.name for p in list_spectrum_files(tmp_path)]
    assert names == ["2019-05-29T124401_1000ss_1coadd_Plume.npy", "2019-05-29T124403_1000ss_1coadd_Plume.npy"]
