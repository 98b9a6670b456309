"""Self-calibrated line shape (the default without an ILS file or FWEM) on simulator spectra."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.doas.model import LineShapeSpec
from pycam.doas.retrieval import DoasRetrieval, RetrievalSettings
from pycam.doas.selfcal import HISTORY_NAME, CalibrationHistory, SelfCalibratingRetrieval
from pycam.doas.spectra import MeasuredSpectrum

START = dt.datetime(2026, 6, 1, 6, 0, 0)


@pytest.fixture(scope="module")
def instrument():
    from pycam.reference_spectra import synthetic_reference_set
    from pycam.sim.spectrometer_model import SpectrometerModel

    return SpectrometerModel(None, synthetic_reference_set(), seed=11, noise=True)


def _spectrum(sim, column, when, realisation, frame_type="Plume"):
    counts = sim.spectrum_for_column(column, coadd=10, frame_type=frame_type, realisation=realisation)
    return MeasuredSpectrum(sim.wavelengths.copy(), counts, integration_ms=1000, coadd=10, time=when,
                            frame_type=frame_type, source=f"sim_{realisation:04d}_{frame_type}.npy")


def _dark(sim):
    return _spectrum(sim, 0.0, START, 0, "Dark")


def test_default_line_shape_fits_a_non_default_instrument(instrument, synthetic_refs):
    """An instrument broader than the default guess (FWEM 0.75 nm, k 2.6, shifted 0.04 nm):
    the self-calibrated fixed shape agrees with fitting the shape on every spectrum (and with truth)."""
    instrument.set_instrument(fwem=0.75, k=2.6, shift_nm=0.04)
    try:
        dark = _dark(instrument)
        columns = [0.0, 5e17, 1e18, 2e18, 0.0, 1.5e18]
        spectra = [_spectrum(instrument, c, START + dt.timedelta(minutes=i), i + 1) for i, c in enumerate(columns)]
        auto = SelfCalibratingRetrieval(synthetic_refs, RetrievalSettings(), dark)
        fitted = DoasRetrieval(synthetic_refs, RetrievalSettings(line_shape=LineShapeSpec(fit=True)), dark)
        got = [auto.fit(s) for s in spectra]
        ref = [fitted.fit(s) for s in spectra]
    finally:
        instrument.set_instrument()
    assert all(r.ok for r in got + ref)
    assert auto.history.latest.fwem == pytest.approx(0.75, rel=0.02)
    assert auto.history.latest.shift == pytest.approx(0.04, abs=0.01)
    for g, r, c in zip(got, ref, columns):
        assert any(word in g.line_shape for word in ("self-calibrated", "calibration", "refined for this spectrum"))
        assert np.isfinite(g.so2_error) and g.so2_error > 0
        if c > 0:
            assert g.so2 == pytest.approx(r.so2, rel=0.01)
            assert g.so2 == pytest.approx(c, rel=0.02)
    assert auto.calibrations < len(spectra)         # the shape was held fixed for some spectra


def test_history_tracks_a_drifting_instrument(instrument, synthetic_refs, tmp_path):
    """Over a day the line shape broadens by 10 % and the wavelength shifts by 0.1 nm: the history
    follows both (2 %, 0.01 nm), flags the drift, and the columns stay within 2 % of truth."""
    history = CalibrationHistory(tmp_path / HISTORY_NAME)
    dark = _dark(instrument)
    auto = SelfCalibratingRetrieval(synthetic_refs, RetrievalSettings(), dark, history=history, recal_minutes=60)
    truth_at = {}
    errors = []
    try:
        for i in range(0, 24 * 3):                       # every 20 minutes for 24 h
            frac = i / (24 * 3 - 1)
            fwem, shift = 0.6 * (1 + 0.1 * frac), 0.1 * frac
            instrument.set_instrument(fwem=fwem, shift_nm=shift)
            when = START + dt.timedelta(minutes=20 * i)
            truth_at[when] = (fwem, shift)
            column = 0.0 if i % 3 == 0 else 1e18 + 5e17 * np.sin(i)
            result = auto.fit(_spectrum(instrument, column, when, i + 1))
            assert result.ok, result.quality
            if column > 0:
                errors.append(result.so2 / column - 1)
    finally:
        instrument.set_instrument()
    stored = CalibrationHistory.load(tmp_path / HISTORY_NAME)
    assert len(stored.entries) == len(history.entries) >= 6
    for entry in stored.entries:
        fwem, shift = truth_at[entry.time]
        assert entry.fwem == pytest.approx(fwem, rel=0.02)
        assert entry.shift == pytest.approx(shift, abs=0.01)
    assert stored.latest.time >= START + dt.timedelta(hours=22)
    assert "FWEM_DRIFT" in stored.latest.flag and "SHIFT_DRIFT" in stored.latest.flag
    assert not stored.entries[0].flag
    assert max(abs(e) for e in errors) < 0.02, max(errors, key=abs)


def test_history_file_round_trip_and_bad_file(tmp_path):
    from pycam.doas.selfcal import CalibrationHistoryError, InstrumentCalibration

    h = CalibrationHistory(tmp_path / HISTORY_NAME)
    base = InstrumentCalibration(START, "a", "first", 0.6, 2.0, 0.0, 0.0, 0.0, 0.0, 0.005, True)
    h.append(base)
    h.append(InstrumentCalibration(START + dt.timedelta(hours=1), "b", "periodic", 0.64, 2.0, 0.0, 0.0, 0.06, 0.0,
                                   0.005, True))
    back = CalibrationHistory.load(tmp_path / HISTORY_NAME)
    assert [e.flag for e in back.entries] == ["", "FWEM_DRIFT;SHIFT_DRIFT"]
    assert back.latest_before(START + dt.timedelta(minutes=30)).source == "a"
    (tmp_path / "bad.csv").write_text("time,source\nx,y\n")
    with pytest.raises(CalibrationHistoryError, match="not a calibration history"):
        CalibrationHistory.load(tmp_path / "bad.csv")


def test_line_shape_mode_from_config_and_flags():
    from pycam.doas.configure import DoasConfigError, default_doas_section, ils_mode

    conf = default_doas_section()
    assert ils_mode(conf) == "auto"                                   # no FWEM given: never a silent fixed width
    assert ils_mode(conf, {"fwem": 0.7}) == "fixed"
    assert ils_mode(conf, {"fit_ils": True}) == "fit"
    assert ils_mode({**conf, "ils_file": "x.txt"}) == "measured"
    assert ils_mode({**conf, "ils_file": "x.txt"}, {"fwem": 0.7}) == "fixed"
    assert ils_mode({**conf, "ils_mode": "fixed"}) == "fixed"
    with pytest.raises(DoasConfigError, match="ils_mode"):
        ils_mode({**conf, "ils_mode": "guess"})
