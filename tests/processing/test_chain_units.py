"""Unit tests of the chain's parts: darks, registration, background modes, calibrations, flow
analysis, cross-correlation, geometry."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from processing_synthetic import SLOPE, Scene, write_dataset

from pycam.formats.geometry import CameraGeometry, PCSLine
from pycam.processing.absorbance import AbsorbanceModel, ClearSky
from pycam.processing.cell_calibration import CalibrationError, calibrate_cells
from pycam.processing.corrections import (DarkLibrary, estimate_registration, load_warp, round_sig, save_warp,
                                          vignetting_from_clear, warp_onto)
from pycam.processing.crosscorr import cross_correlation_velocity
from pycam.processing.doas_calibration import DoasCalibration, PreloadedCalibration
from pycam.processing.flow_analysis import analyse_flow_histogram, hybrid_vectors
from pycam.processing.plume_geometry import GeometryError, MeasurementGeometry
from pycam.processing.lines import LineSampler, offset_line
from pycam.processing.settings import PPMM_TO_MOLEC_CM2, default_settings

T0 = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)


def test_dark_library_matching_and_model():
    lib = DarkLibrary(sig_figs=2)
    lib.add("on", 999904, np.full((4, 4), 20.0))
    lib.add("on", 1000100, np.full((4, 4), 22.0))      # same exposure to 2 significant figures
    lib.add("on", 100000, np.full((4, 4), 16.0))
    assert round_sig(999904, 2) == round_sig(1000100, 2) == 1e6
    assert lib.get("on", 999999)[0, 0] == pytest.approx(21.0)
    # no exact dark: linear model between the shortest and the longest exposure
    assert lib.get("on", 550000)[0, 0] == pytest.approx(16.0 + 5.0 * (550000 - 100000) / (999904 - 100000 + 150),
                                                         rel=1e-3)
    assert lib.get("off", 1000) is None
    with pytest.raises(ValueError, match="band"):
        lib.add("middle", 1, np.zeros((4, 4)))


@pytest.mark.slow
def test_registration_recovers_a_known_shift_and_roundtrips(tmp_path):
    import cv2

    sc = Scene(seed=2)
    a = sc.bg_a * (1 + 0.3 * (sc.texture[:, 100:748] - 1))
    m = np.float32([[math.cos(0.01), -math.sin(0.01), 7.0], [math.sin(0.01), math.cos(0.01), -4.0]])
    b = cv2.warpAffine(a.astype(np.float32), m, (648, 486), borderMode=cv2.BORDER_REFLECT)
    warp = estimate_registration(a, b)
    back = warp_onto(b, warp)
    inner = (slice(40, -40), slice(40, -40))
    assert np.max(np.abs(back[inner] - a[inner])) < 0.02 * a.max()
    p = save_warp(tmp_path / "image_reg.npy", warp)
    np.testing.assert_allclose(load_warp(p), warp)
    (tmp_path / "bad.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match="warp"):
        load_warp(tmp_path / "bad.npy")


@pytest.mark.parametrize("mode", [1, 7, 0, 99])
def test_background_modes_recover_the_true_aa(mode):
    sc = Scene(seed=5)
    a, b = sc.frames(3)
    ca, cb = sc.clear()
    darks = DarkLibrary.from_arrays({"on": sc.dark(), "off": sc.dark()})
    clear = ClearSky.from_raw(ca, cb, darks=darks)
    # a flat sky for the modes that assume one
    if mode in (7, 0):
        flat = Scene(seed=5)
        flat.bg_a[:] = 600.0
        flat.bg_b[:] = 500.0
        a, b = flat.frames(3)
    model = AbsorbanceModel(a.shape, bg_mode=mode, ambient_roi=[0, 0, 60, 40], darks=darks,
                            clear=clear if mode in (1, 99) else None, use_vign_corr=False,
                            surface_rois=[[0, 0, 648, 60], [0, 430, 648, 486]])
    aa = model.compute(a, b).aa
    true = sc.columns(3) / SLOPE
    core = true > 0.1
    assert np.median(np.abs(aa[core] - true[core]) / true[core]) < 0.02
    assert np.all(np.isfinite(aa))


def test_vignetting_mask():
    clear = np.array([[50.0, 100.0], [25.0, 0.0]])
    v = vignetting_from_clear(clear)
    assert v.max() == 1.0 and v[0, 0] == pytest.approx(0.5) and v[1, 1] > 0      # no division by zero later
    with pytest.raises(ValueError, match="no positive"):
        vignetting_from_clear(np.zeros((3, 3)))


def test_clear_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="do not match"):
        AbsorbanceModel((100, 100), clear=ClearSky(np.ones((5, 5), np.float32), np.ones((5, 5), np.float32)))


def test_cell_calibration_on_synthetic_cells(tmp_path):
    sc = Scene()
    (tmp_path / "img").mkdir()
    write_dataset(tmp_path / "img", sc, 1, T0, cal_dir=tmp_path / "cal")
    cal = calibrate_cells(tmp_path / "cal")
    assert list(cal.ppmm) == [0, 304, 1257]
    assert cal.slope == pytest.approx(SLOPE, rel=0.01)
    np.testing.assert_allclose(cal.columns, cal.ppmm * PPMM_TO_MOLEC_CM2)
    aa = np.full((486, 648), 0.2, np.float32)
    assert np.median(cal.column_from_aa(aa)) == pytest.approx(0.2 * SLOPE, rel=0.01)
    with pytest.raises(CalibrationError, match="requested cell"):
        calibrate_cells(tmp_path / "cal", cells=(999,))
    for f in (tmp_path / "cal").glob("*Clear*"):
        f.unlink()
    with pytest.raises(CalibrationError, match="Clear"):
        calibrate_cells(tmp_path / "cal")


def test_doas_calibration_weighted_fit_window_and_csv(tmp_path):
    cal = DoasCalibration(order=1, remove_doas_mins=10, doas_fov_recal_mins=5)
    rng = np.random.default_rng(0)
    times = [T0 + dt.timedelta(seconds=30 * i) for i in range(40)]      # 20 minutes
    aa = rng.uniform(0, 0.4, 40)
    err = np.full(40, 2e16)
    err[::7] = 1e18                                                     # outliers with large errors
    cd = 5e18 * aa + 1e16 + rng.normal(0, 1e16, 40)
    cd[::7] += 5e17
    assert cal.add_samples(times, aa, cd, err) == 40
    assert cal.add_samples([T0], [np.nan], [1.0], [1.0]) == 0            # non-finite samples dropped
    fit = cal.update(times[-1])
    assert fit is not None and cal.n_samples == 21                      # only the last 10 minutes kept
    assert fit.coeffs[1] == pytest.approx(5e18, rel=0.03)               # outliers down-weighted
    assert cal.update(times[-1] + dt.timedelta(minutes=1)) is None       # not due yet
    assert cal.update(times[-1] + dt.timedelta(minutes=6)) is not None
    assert cal.column_from_aa(0.2) == pytest.approx(1e18 + 1e16, rel=0.05)
    p = cal.write_csv(tmp_path / "full_calibration.csv")
    pre = PreloadedCalibration.from_csv(p)
    # each CSV row carries the fit valid at its time, so the reloaded table knows the fit of times[-1]
    np.testing.assert_allclose(pre.column_from_aa(np.array([0.2], np.float32)),
                               cal.column_from_aa(0.2, time=times[-1]), rtol=1e-5)
    assert pre.column_from_aa(0.2, time=times[0]) == pytest.approx(cal.column_from_aa(0.2, time=times[-1]))
    with pytest.raises(CalibrationError):
        DoasCalibration().fit()


def test_flow_histogram_and_hybrid_replacement():
    rng = np.random.default_rng(3)
    n = 2000
    ang = np.radians(rng.normal(90, 4, n))        # flow to the right
    length = rng.normal(8, 0.5, n)
    dx, dy = length * np.sin(ang), -length * np.cos(ang)
    dx[:150], dy[:150] = rng.normal(0, 0.3, 150), rng.normal(0, 0.3, 150)   # stalled vectors
    hist = analyse_flow_histogram(dx, dy)
    assert hist.ok and hist.dir_mu == pytest.approx(90, abs=1) and hist.len_mu == pytest.approx(8, abs=0.2)
    hx, hy, bad = hybrid_vectors(dx, dy, hist, 2.0, 1.0)
    assert bad[:150].all() and bad.mean() < 0.3          # stalled ones plus those shorter than mu - sigma
    good = (np.hypot(dx, dy) > 8.6) & (np.abs(np.degrees(ang) - 90) < 4)
    good[:150] = False
    assert not bad[good].any()
    assert np.allclose(hx[:150], hist.displacement()[0])
    chaos = analyse_flow_histogram(rng.normal(0, 5, n), rng.normal(0, 5, n))
    assert not chaos.ok and "outside" in chaos.reason


def test_cross_correlation_recovers_lag():
    rng = np.random.default_rng(1)
    t = np.arange(200) * 4.0
    base = np.convolve(rng.normal(size=260), np.ones(5) / 5, mode="same")
    lag_s = 13.0
    up = np.interp(t, np.arange(260) * 4.0, base)
    down = np.interp(t - lag_s, np.arange(260) * 4.0 - 0.0, base)
    res = cross_correlation_velocity(t, up, down, gap_m=100.0)
    assert res is not None and res.lag_s == pytest.approx(lag_s, abs=0.5) and res.r_max > 0.9
    assert res.velocity == pytest.approx(100.0 / lag_s, rel=0.04)
    assert cross_correlation_velocity(t[:3], up[:3], down[:3], 1.0) is None


def test_geometry_fixed_distance_and_camera_geometry():
    s = default_settings(plume_distance_m=5000.0)
    g = MeasurementGeometry.from_settings(s, (486, 648))
    assert g.footprint_centre() == pytest.approx(5000 * 5.6e-6 / 7.27716e-3, rel=1e-4)
    gf = MeasurementGeometry.from_settings(s, (1944, 2592))
    assert gf.footprint_centre() == pytest.approx(g.footprint_centre() / 4, rel=1e-9)
    cam = CameraGeometry("v", -39.42, -71.94, 1500.0, 0.0, 90.0)
    s2 = default_settings(source_lat=-39.42, source_lon=-71.94 + 5000 / (6371000 * math.cos(math.radians(39.42)))
                          * 180 / math.pi, source_alt=1500.0)
    g2 = MeasurementGeometry.from_settings(s2, (486, 648), cam)
    assert g2.footprint_centre() == pytest.approx(g.footprint_centre(), rel=1e-3)
    d = g2.distances(np.array([0.0, 647.0]), np.array([243.0, 243.0]))
    assert d[0] > 5000 and d[1] > 5000               # off-axis rays travel further to the plane
    with pytest.raises(GeometryError, match="source"):
        MeasurementGeometry.from_settings(default_settings(), (486, 648), cam)
    with pytest.raises(GeometryError, match="plume_distance_m"):
        MeasurementGeometry.from_settings(default_settings(), (486, 648), None)


def test_line_checks_and_offset():
    with pytest.raises(ValueError, match="leaves"):
        LineSampler(PCSLine(600, 10, 700, 10), (486, 648))
    ln = PCSLine(264, 13, 264, 473, "right", "0")
    assert (offset_line(ln, 40).x0, offset_line(ln, 40).x1) == (304, 304)
    full = LineSampler(ln, (1944, 2592))
    assert full.x[0] == pytest.approx(264 * 4) and full.n == pytest.approx(460 * 4, abs=1)
