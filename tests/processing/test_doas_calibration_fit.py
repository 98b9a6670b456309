"""The DOAS (AA -> column) calibration fit: one definition for the batch and the live chain, a
2nd-order polynomial through the origin by default (issue 9: the live rate on the realistic
scene was -25 % with a straight line and a free intercept)."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.config import validate
from pycam.processing.cell_calibration import CalibrationError
from pycam.processing.doas_calibration import (DoasCalibration, curve_slopes, fit_calibration,
                                                 slope_against_truth)
from pycam.processing.settings import default_settings
from pycam.sim.scene import Scene


@pytest.fixture(scope="module")
def bent_curve():
    """The realistic simulator's true AA(column) curve (on-band response bent like real cells)."""
    config = validate({"network": {"secret": "x" * 32}, "simulator": {"seed": 1, "scene": "realistic"}})
    scene = Scene.from_config(config)
    return lambda columns: np.asarray(scene.aa_curve(np.asarray(columns, float))["aa"])


def _samples(aa_of, lo=1.6e18, hi=3.6e18, n=120, noise=0.03, seed=0):
    rng = np.random.default_rng(seed)
    columns = rng.uniform(lo, hi, n)
    measured = columns * (1 + noise * rng.standard_normal(n))
    return aa_of(columns) + rng.normal(0, 0.002, n), measured, noise * columns


def test_the_default_fit_reads_columns_below_the_fitted_range(bent_curve):
    """Fitted only on the high columns near the vent, the default reads 0.3-1.6e18 (where the PCS
    line's plume is) within 12 % (3e17) to 1 % (1.6e18); PyCam's straight line with intercept reads
    those below 1e18 25-230 % low."""
    aa, columns, errors = _samples(bent_curve)
    settings = default_settings()
    default = fit_calibration(aa, columns, errors, settings["doas_cal_order"], settings["doas_cal_through_origin"])
    line = fit_calibration(aa, columns, errors, order=1, through_origin=False)
    assert default.coeffs.size == 3 and default.coeffs[0] == 0.0 and default.coeffs[2] > 0
    assert line.intercept < -5e17                     # the bend inside the range makes a large offset
    low = np.array([3e17, 6e17, 1e18, 1.6e18])
    read = default.column(bent_curve(low)) / low - 1
    assert np.all(np.abs(read) < 0.12), read
    assert np.all(line.column(bent_curve(low[:3])) / low[:3] - 1 < -0.2)
    # a line through the origin over-reads them (the curve bends upward)
    assert np.all(fit_calibration(aa, columns, errors, 1, True).column(bent_curve(low[:3])) / low[:3] - 1 > 0.08)


def test_errors_and_r_squared_of_the_fit():
    rng = np.random.default_rng(1)
    aa = rng.uniform(0.05, 0.3, 80)
    columns = 5e18 * aa + 2e18 * aa ** 2 + rng.normal(0, 1e16, 80)
    fit = fit_calibration(aa, columns, np.full(80, 1e16))
    assert fit.coeffs == pytest.approx([0.0, 5e18, 2e18], rel=0.1, abs=1.0)
    assert fit.coefficient_errors[0] == 0.0 and np.all(fit.coefficient_errors[1:] > 0)
    assert abs(fit.coeffs[1] - 5e18) < 4 * fit.coefficient_errors[1]
    assert abs(fit.coeffs[2] - 2e18) < 4 * fit.coefficient_errors[2]
    assert fit.r_squared > 0.99 and fit.column_error == pytest.approx(1e16, rel=0.2)
    assert fit.n_samples == 80


def test_a_curve_bending_the_unphysical_way_falls_back_to_a_line_through_the_origin():
    rng = np.random.default_rng(2)
    aa = rng.uniform(0.1, 0.3, 60)
    columns = 5e18 * aa - 3e18 * aa ** 2                # concave: the quadratic term would be negative
    fit = fit_calibration(aa, columns, np.full(60, 1e16), order=2, through_origin=True)
    assert fit.coeffs.size == 2 and fit.coeffs[0] == 0.0
    assert fit.slope == pytest.approx(np.sum(aa * columns) / np.sum(aa * aa), rel=1e-6)


def test_slope_against_truth_passes_a_right_calibration_and_fails_wrong_ones(bent_curve):
    """Issue 10's check ("DOAS-calibrated slope within 10 % of the true slope") on synthetic samples
    built like the live demo's: the camera measures 13 % less AA in the FOV than the ideal curve
    (FOV mean, light dilution) and the DOAS columns scatter 3 % around the true ones.  The
    calibration fitted on them is within 3 % of the truth; one from DOAS columns 12 % low
    (uncorrected spectrometer dilution), one scaled 12 % high and one from the ideal AA curve
    (which ignores what the camera measures) all fall outside 10 %."""
    rng = np.random.default_rng(4)
    true = rng.uniform(1.6e18, 3.6e18, 120)
    aa = 0.87 * bent_curve(true) + rng.normal(0, 0.002, true.size)
    doas = true * (1 + 0.03 * rng.standard_normal(true.size))
    settings = default_settings()
    model = settings["doas_cal_order"], settings["doas_cal_through_origin"]

    def rel(coeffs):
        return slope_against_truth(coeffs, aa, true, *model)["rel_diff"]

    right = fit_calibration(aa, doas, 0.03 * doas, *model)
    assert all(abs(v) < 0.03 for v in rel(right.coeffs).values()), rel(right.coeffs)
    low = fit_calibration(aa, 0.88 * doas, 0.03 * doas, *model)
    ideal_aa = bent_curve(true)
    ideal = fit_calibration(ideal_aa, true, np.ones(true.size), *model)
    for wrong in (low.coeffs, 1.12 * right.coeffs, ideal.coeffs):
        assert abs(rel(wrong)["secant_at_median_aa"]) > 0.10, rel(wrong)
    assert rel(low.coeffs)["secant_at_median_aa"] == pytest.approx(-0.12, abs=0.03)
    scaled = rel(1.12 * right.coeffs)["mean_derivative"]
    assert scaled == pytest.approx(1.12 * rel(right.coeffs)["mean_derivative"] + 0.12, abs=1e-9)
    versus = slope_against_truth(right.coeffs, aa, true, *model)
    assert versus["n_samples"] == true.size and versus["aa_range"] == [aa.min(), aa.max()]
    assert versus["median_aa"] == pytest.approx(np.median(aa)) and versus["true_coeffs"][0] == 0.0


def test_curve_slopes_of_known_curves():
    aa = np.array([0.1, 0.2, 0.3, np.nan])
    assert curve_slopes([0.0, 5e18], aa) == pytest.approx({"secant_at_median_aa": 5e18, "mean_derivative": 5e18})
    # S = 1e19 AA^2: secant at 0.2 is 2e18, mean dS/dAA over 0.1-0.3 is 2e19 * 0.2 = 4e18
    assert curve_slopes([0.0, 0.0, 1e19], aa) == pytest.approx({"secant_at_median_aa": 2e18, "mean_derivative": 4e18})
    with pytest.raises(CalibrationError, match="no range"):
        curve_slopes([0.0, 5e18], [0.1, 0.1])
    with pytest.raises(CalibrationError, match="median AA"):
        curve_slopes([0.0, 5e18], [-0.1, -0.05, 0.01])
    with pytest.raises(CalibrationError, match="2 AA samples but 3 true columns"):
        slope_against_truth([0.0, 5e18], [0.1, 0.2], [1e17, 2e17, 3e17])


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(CalibrationError, match="equal"):
        fit_calibration(np.full(10, 0.1), np.linspace(1e17, 1e18, 10), np.full(10, 1e16))
    with pytest.raises(CalibrationError, match="only 2 valid samples"):
        fit_calibration([0.1, 0.2, np.nan], [1e17, 2e17, 3e17], [1e16] * 3, order=2)
    with pytest.raises(CalibrationError, match="differ in shape"):
        fit_calibration([0.1, 0.2], [1e17], [1e16, 1e16])
    with pytest.raises(CalibrationError, match="order"):
        fit_calibration([0.1, 0.2, 0.3], [1e17, 2e17, 3e17], [1e16] * 3, order=0)


def test_batch_and_live_build_the_calibration_from_the_same_settings():
    from pycam.doas.fov import FovCalibrator
    from pycam.processing.live_calibration import LiveDoasCalibration

    settings = default_settings(doas_cal_order=1, doas_cal_through_origin=False)
    batch = DoasCalibration.from_settings(settings)
    assert (batch.order, batch.through_origin, batch.remove_doas_mins) == (1, False, 30.0)
    live = LiveDoasCalibration(FovCalibrator(), settings)
    windowless = DoasCalibration.from_settings(live.settings, sliding_window=False)
    assert (windowless.order, windowless.through_origin, windowless.remove_doas_mins) == (1, False, None)
    assert DoasCalibration.from_settings(default_settings()).order == 2


class _Processor:
    """Stands in for RealtimeProcessor: AA = a constant image, records the installed calibration."""

    def __init__(self, settings=None):
        self.settings = settings
        self.calibration = None

    def process_pair(self, img_a, img_b, meta):
        import types

        return types.SimpleNamespace(aa=np.full((4, 4), float(meta["aa"]), np.float32))

    def set_calibration(self, calibration):
        self.calibration = calibration


class _FovCalibrator:
    """Adopts a FOV once it has 5 images; its samples lie on S = 5e18 AA + 2e18 AA^2."""

    def __init__(self):
        self.images, self.columns, self.last_error, self.searches = [], [], "waiting", 0

    def add_image(self, when, aa):
        self.images.append((when, float(aa.mean())))

    def add_column(self, when, column, error, ok):
        self.columns.append(column)

    def update(self, when):
        import types

        if len(self.images) < 5:
            return None
        self.searches += 1
        times = [t for t, _ in self.images]
        aa = np.array([a for _, a in self.images])
        columns = 5e18 * aa + 2e18 * aa ** 2
        return types.SimpleNamespace(samples=(times, aa, columns, np.full(aa.size, 1e16)), centre_x=10.0,
                                     centre_y=20.0, radius=5, max_correlation=0.99)


def test_self_calibrating_processor_feeds_plume_pairs_and_installs_the_fit():
    import datetime as dt

    from pycam.processing.live_calibration import SelfCalibratingProcessor

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    proc = SelfCalibratingProcessor(_Processor(), fov_calibrator=_FovCalibrator())
    proc.add_doas(t0, 1e18, 1e16, True)
    assert proc.fov_calibrator.columns == [1e18]
    for k in range(4):
        proc.process_pair(None, None, {"time": t0 + dt.timedelta(seconds=k), "aa": 0.1 + 0.05 * k})
    proc.process_pair(None, None, {"time": t0, "aa": 5.0, "type": "Test"})      # never fed
    assert proc.processor.calibration is None and "waiting" in proc.note
    proc.process_pair(None, None, {"time": t0 + dt.timedelta(seconds=5), "aa": 0.4})
    assert proc.processor.calibration is not None and proc.status.calibrated
    assert proc.status.coeffs == pytest.approx((0.0, 5e18, 2e18), rel=1e-6, abs=1.0)
    assert proc.fov == (10.0, 20.0, 5) and "AA^2" in proc.note
    # a rebuilt processor (new settings) keeps the state and fits the next one with its settings
    again = SelfCalibratingProcessor(_Processor(default_settings(doas_cal_order=1)), fov_calibrator=_FovCalibrator())
    again.carry_over(proc)
    assert again.processor.calibration is proc.processor.calibration and again.status is proc.status
    again.process_pair(None, None, {"time": t0 + dt.timedelta(seconds=70), "aa": 0.3})
    assert len(again.status.coeffs) == 2
