"""DOAS field-of-view search, time alignment and calibration on synthetic camera/spectrometer data."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.doas.fov import FovCalibrator, FovError, align_columns, calibrate_fov, correlation_map, disk_mask
from pycam.processing.doas_calibration import fit_calibration


def _linear(result):
    """PyCam's straight line with intercept through the FOV samples (the scene is linear)."""
    _, aa, columns, errors = result.samples
    return fit_calibration(aa, columns, errors, order=1, through_origin=False)

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
H, W = 486, 648
TRUE_X, TRUE_Y, TRUE_R = 402.3, 187.6, 10
SLOPE, INTERCEPT = 8.5e18, 2e16


def _scene(n=30, seed=1):
    """Drifting Gaussian puffs of AA; the spectrometer sees the mean AA of the true FOV disk."""
    rng = np.random.default_rng(seed)
    x, y = np.arange(W), np.arange(H)
    stack = np.empty((n, H, W), np.float32)
    noise = rng.normal(0.0, 0.003, (H, W)).astype(np.float32)
    for t in range(n):
        field = np.zeros((H, W), np.float32)
        for k in range(5):
            px = (60 + k * 130 + t * 11 + 40 * rng.random()) % W
            py = 190 + 70 * np.sin(0.7 * k + 0.25 * t)
            amplitude = 0.1 + 0.05 * rng.random()
            gy = amplitude * np.exp(-(y - py) ** 2 / (2 * 70.0 ** 2))
            field += np.outer(gy, np.exp(-(x - px) ** 2 / (2 * 70.0 ** 2))).astype(np.float32)
        stack[t] = field + np.roll(noise, 37 * t)
    aa_true = stack[:, disk_mask((H, W), (TRUE_X, TRUE_Y), TRUE_R)].mean(axis=1)
    columns = INTERCEPT + SLOPE * aa_true + rng.normal(0.0, 5e15, n)
    image_times = [T0 + dt.timedelta(seconds=4 * i) for i in range(n)]
    return stack, image_times, columns


def test_finds_fov_and_slope():
    stack, times, columns = _scene()
    doas_times = [t + dt.timedelta(seconds=0.6) for t in times]
    result = calibrate_fov(times, stack, doas_times, columns, np.full(len(columns), 5e15))
    assert np.hypot(result.centre_x - TRUE_X, result.centre_y - TRUE_Y) <= 2.0
    assert _linear(result).slope == pytest.approx(SLOPE, rel=0.03)
    assert result.mask.shape == (H, W) and result.mask.sum() > 0
    assert _linear(result).r_squared > 0.95
    times_used, aa, cols, errs = result.samples
    assert len(times_used) == aa.size == cols.size == errs.size == 30


def test_correlation_map_matches_numpy_corrcoef():
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(20, 6, 7)).astype(np.float32)
    y = rng.normal(size=20)
    r = correlation_map(stack, y)
    assert r[2, 3] == pytest.approx(np.corrcoef(stack[:, 2, 3], y)[0, 1], abs=1e-5)


def test_test_images_and_unmatched_images_are_never_used():
    stack, times, columns = _scene(n=40, seed=2)
    types = ["Plume"] * 40
    for i in range(0, 40, 4):
        types[i] = "Test"
        stack[i] = 5.0                                  # a wildly different test image
    doas_times = [t + dt.timedelta(seconds=0.5) for t in times[:35]] + \
        [t + dt.timedelta(seconds=30) for t in times[35:]]   # last five spectra too late
    result = calibrate_fov(times, stack, doas_times, columns, np.full(40, 5e15), frame_types=types)
    used = set(result.times)
    assert not any(times[i] in used for i in range(0, 40, 4))
    assert not any(t in used for t in times[35:])
    assert _linear(result).slope == pytest.approx(SLOPE, rel=0.05)


def test_alignment_nearest_and_interpolated():
    images = [10.0, 20.0, 30.0, 45.0]
    doas = [9.0, 19.5, 22.0, 31.5]
    cols = [1.0, 2.0, 4.0, 8.0]
    nearest = align_columns(images, doas, cols, [0.1] * 4, mode="nearest", max_gap_s=2.0)
    np.testing.assert_array_equal(nearest.matched, [True, True, True, False])
    np.testing.assert_allclose(nearest.columns[:3], [1.0, 2.0, 8.0])
    interp = align_columns(images, doas, cols, [0.1] * 4, mode="interpolate", max_gap_s=2.5)
    np.testing.assert_array_equal(interp.matched, [True, True, True, False])
    # 10 s and 30 s have one close neighbour (nearest); 20 s lies between 19.5 s and 22 s
    np.testing.assert_allclose(interp.columns[:3], [1.0, 2.0 + 0.5 / 2.5 * 2.0, 8.0])


def test_weighted_calibration_prefers_precise_points():
    aa = np.linspace(0, 0.2, 20)
    cols = 1e16 + 9e18 * aa
    errs = np.full(20, 1e15)
    cols[5] += 3e17
    errs[5] = 1e18                                      # a wild point with a huge error barely counts
    fit = fit_calibration(aa, cols, errs, order=1, through_origin=False)
    assert fit.slope == pytest.approx(9e18, rel=0.01)
    assert fit.intercept == pytest.approx(1e16, rel=0.5, abs=5e15)
    assert fit.column_error == pytest.approx(np.sqrt(fit.mse))


def test_too_few_samples_is_a_clear_error():
    stack, times, columns = _scene(n=10)
    with pytest.raises(FovError, match="at least 15"):
        calibrate_fov(times, stack, times, columns, np.ones(10))


def test_recalibrates_on_interval():
    stack, times, columns = _scene(n=20, seed=4)
    calibrator = FovCalibrator(recal_minutes=1.0, window_minutes=10.0)
    for t, img, col in zip(times, stack, columns):
        calibrator.add_image(t, img)
        calibrator.add_column(t, col, 5e15)
    assert not calibrator.add_image(times[-1], stack[0], frame_type="Test")
    first = calibrator.update(times[-1])
    assert first is not None and np.hypot(first.centre_x - TRUE_X, first.centre_y - TRUE_Y) <= 4.0
    assert calibrator.update(times[-1] + dt.timedelta(seconds=30)) is None      # not due yet
    assert calibrator.due(times[-1] + dt.timedelta(seconds=61))
    assert calibrator.update(times[-1] + dt.timedelta(seconds=61)) is not None


def test_calibrator_from_config_section():
    from pycam.doas.configure import default_doas_section, fov_calibrator_from_config

    section = default_doas_section()
    section["fov_recal_minutes"] = 5.0
    section["time_alignment"] = "interpolate"
    calibrator = fov_calibrator_from_config(section)
    assert calibrator.recal_s == 300.0 and calibrator.options["mode"] == "interpolate"
    assert calibrator.options["max_gap_s"] == 2.0 and calibrator.options["max_radius"] == 30


def test_hand_off_to_the_processing_calibration():
    """The FOV result feeds pycam.processing's DoasCalibration, which fits the same line."""
    from pycam.processing.doas_calibration import DoasCalibration

    stack, times, columns = _scene()
    result = calibrate_fov(times, stack, times, columns, np.full(len(columns), 5e15))
    calibration = DoasCalibration(order=1, through_origin=False)
    calibration.set_fov(result.centre_x, result.centre_y, result.radius)
    assert calibration.add_samples(*result.samples) == 30
    fit = calibration.fit()
    np.testing.assert_allclose(fit.coeffs, _linear(result).coeffs, rtol=1e-6, atol=1e12)
    assert fit.slope == pytest.approx(SLOPE, rel=0.03)
    assert result.to_doas_fov().radius == result.radius


def test_search_ignores_candidates_whose_disk_leaves_the_image():
    """A spurious perfect correlation at the image border (where filters replicate edge
    pixels) must not win over the real field of view inside the image."""
    from pycam.doas.fov import search_fov

    rng = np.random.default_rng(3)
    t, h, w = 30, 120, 160
    columns = rng.uniform(0.0, 2e18, t)
    stack = rng.normal(0.0, 0.02, (t, h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    true = (xx - 70) ** 2 + (yy - 60) ** 2 <= 8 ** 2
    stack[:, true] += (columns[:, None] / 6e18).astype(np.float32) + rng.normal(0, 0.08, (t, int(true.sum())))
    stack[:, 40:80, w - 1:] = (columns[:, None, None] / 6e18).astype(np.float32)   # last column only
    found = search_fov(stack, columns, max_radius=12)
    assert abs(found.centre_x - 70) <= 2 and abs(found.centre_y - 60) <= 2     # (159, 51) without the rule
    assert 1 <= found.radius <= 12


@pytest.mark.slow
def test_confirmation_adopts_a_fov_only_when_the_next_search_agrees():
    """With ``confirm_px`` the first search is a candidate; the next one (confirm_s later) that
    finds the same FOV adopts it; a search that disagrees replaces the candidate."""
    stack, times, columns = _scene(n=40, seed=4)
    calibrator = FovCalibrator(recal_minutes=10.0, confirm_px=3.0, confirm_s=15.0, min_samples=15)
    for t, aa, col in zip(times, stack, columns):
        calibrator.add_image(t, aa)
        calibrator.add_column(t, col, 5e15)
    now = times[-1]
    assert calibrator.update(now) is None and calibrator.candidate is not None
    assert "waits for a second search" in calibrator.last_error
    assert calibrator.update(now + dt.timedelta(seconds=5)) is None and not calibrator.due(now)   # too soon
    adopted = calibrator.update(now + dt.timedelta(seconds=15))
    assert adopted is not None and calibrator.current is adopted and calibrator.candidate is None
    assert np.hypot(adopted.centre_x - TRUE_X, adopted.centre_y - TRUE_Y) <= 4.0
    # a later search elsewhere (here: a shifted copy of the scene) is only a candidate
    calibrator.images = type(calibrator.images)((t, s, np.roll(a, 60, axis=1)) for t, s, a in calibrator.images)
    later = now + dt.timedelta(minutes=11)
    assert calibrator.update(later) is None and calibrator.current is adopted
    assert "not confirmed" in calibrator.last_error


def test_minimum_correlation_blocks_weak_candidates():
    stack, times, columns = _scene(n=30, seed=5)
    noisy = columns + np.random.default_rng(9).normal(0, 3 * columns.std(), columns.size)
    calibrator = FovCalibrator(confirm_px=3.0, min_correlation=0.9, min_samples=15)
    for t, aa, col in zip(times, stack, noisy):
        calibrator.add_image(t, aa)
        calibrator.add_column(t, col, 5e15)
    assert calibrator.update(times[-1]) is None and calibrator.candidate is None
    assert "correlates only" in calibrator.last_error
