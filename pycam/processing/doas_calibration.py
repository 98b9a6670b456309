"""DOAS calibration of AA images, and the preloaded calibration CSV.

Interface for the DOAS FOV search (``pycam.doas.fov``): it finds the spectrometer's field
of view in the image (centre, radius) and the matched series of (time, mean AA in that
FOV, DOAS column, column error); it hands them over with::

    cal = DoasCalibration(order=2, through_origin=True, remove_doas_mins=30, doas_fov_recal_mins=30)
    cal.set_fov(x, y, radius)                         # optional, recorded in the CSV header
    cal.add_samples(times, aa_in_fov, columns, column_errors)
    cal.fit()                                          # or cal.update(now) from a live loop
    so2 = cal.column_from_aa(aa_image)                 # molec cm^-2
    cal.write_csv(out_dir / "full_calibration.csv")

Fitting (:func:`fit_calibration`, the one AA -> column fit of the package; ``pycam.doas.fov`` only
finds where the spectrometer looks): ``S = sum_k a_k AA^k`` of order ``doas_cal_order`` (default 2),
through the origin (no ``a_0``) when ``doas_cal_through_origin`` is set (default), by weighted
least squares with weights ``1 / column_error``.  The calibration error of a column is the
residual standard deviation (``sqrt(MSE)``); ``r^2 = 1 - MSE / var(S)``.

Why a 2nd-order polynomial through the origin by default (issue 9): the DOAS samples come from the
one spot the spectrometer sees, usually the densest plume near the vent, while the emission rate
integrates the whole PCS line, most of whose pixels hold a fraction of those columns.  The
calibration is therefore used far below the range it was fitted on, and the shape of the curve
between 0 and that range decides the rate.  Two physical facts fix that shape:

* after the background correction AA = 0 means no SO2 (the sky reference is set to zero), so
  S(0) = 0.  A free intercept is instead set by the curvature inside the fitted range: on the
  simulator's realistic scene (on-band cell response bent like the real Villarrica cells) the
  live fit over 1.6-3.6e18 molec/cm2 found a -9e17 intercept and the rate came out -25 %.
* the camera's AA grows less than linearly with the column (the on-band absorption saturates,
  light dilution; real cells show it: the 0-304 ppm m slope is ~30 % below the 3-cell fit), so
  S(AA) bends upward.  Fitted to that scene's true AA curve over the same columns, a straight
  line through the origin reads the PCS lines' columns +14 % (it over-reads the low ones), a
  2nd-order term takes the bend (-3 %); the live demo with it ends within -3 to +2 % of the true
  rate (clean scene -5 %), tests/cli/test_live_demo_truth.py.

With the origin fixed the quadratic has the same two free parameters as PyCam's straight line, so
it is as stable on a narrow AA range; a negative highest coefficient (a curve bending the
unphysical way, e.g. from noise on an almost linear response) is dropped and the order lowered.
``doas_cal_order: 1`` and ``doas_cal_through_origin: false`` give PyCam's and pyplis's default fit
(pyplis's ``DoasCalibData.fit_calib_data(polyorder, through_origin)`` offers the same choices).

Sliding window: :meth:`DoasCalibration.update` drops samples older than
``remove_doas_mins`` before the given time (None keeps all) and refits when
``doas_fov_recal_mins`` have passed since the last fit (None: only the first fit).  Every fit
is kept in :attr:`fits`; the CSV row of each sample carries the latest fit at or before its
time, as PyCam writes it (samples before the first fit carry the first fit).

:class:`PreloadedCalibration` reads such a CSV back (``cal_type_int`` 3) and applies, for an
image at time t, the latest fit at or before t (the first one before that).
"""
from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pycam.formats.names import aware_utc
from pycam.formats.pycam_outputs import (CalibrationRecord, CalibrationTable, read_full_calibration,
                                         write_full_calibration)
from pycam.processing.cell_calibration import CalibrationError, PolynomialFit, eval_polynomial


@dataclasses.dataclass(frozen=True)
class CalibrationFit(PolynomialFit):
    """One AA -> column fit: ``S = sum_k coeffs[k] AA^k`` (ascending; ``coeffs[0]`` is 0 for a fit
    through the origin)."""

    time: dt.datetime | None   # when the fit was made (the latest sample time used)
    coeffs: np.ndarray         # ascending, molec cm^-2 per AA^k
    mse: float
    r_squared: float
    n_samples: int
    coefficient_errors: np.ndarray | None = None   # 1-sigma, same layout (0 where fixed)

    @property
    def intercept(self) -> float:
        return float(self.coeffs[0])

    def column(self, aa):
        """Column (molec cm^-2) of AA (scalar or array, float64)."""
        return np.polynomial.polynomial.polyval(aa, self.coeffs)

    def with_time(self, time: dt.datetime | None) -> "CalibrationFit":
        return dataclasses.replace(self, time=time)


def fit_calibration(aa, columns, errors, order: int = 2, through_origin: bool = True,
                    time: dt.datetime | None = None) -> CalibrationFit:
    """Weighted (1/error) polynomial ``S = sum_k a_k AA^k`` (see the module docstring).

    Non-finite samples are dropped; errors <= 0 get the smallest positive error.  With
    ``through_origin`` a negative highest coefficient (order >= 2) lowers the order."""
    x, y, e = (np.asarray(v, dtype=np.float64) for v in (aa, columns, errors))
    if not (x.shape == y.shape == e.shape):
        raise CalibrationError(f"calibration samples differ in shape: {x.shape}, {y.shape}, {e.shape}")
    if order < 1:
        raise CalibrationError(f"calibration polynomial order must be >= 1, got {order}")
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(e)
    x, y, e = x[ok], y[ok], e[ok]
    first = 1 if through_origin else 0
    if x.size < order - first + 2:
        raise CalibrationError(f"only {x.size} valid samples for an order-{order} calibration"
                               f"{' through the origin' if through_origin else ''}")
    if np.ptp(x) <= 0:
        raise CalibrationError("calibration: all AA samples are equal (no plume in the FOV?)")
    positive = e[e > 0]
    weights = 1.0 / np.where(e > 0, e, positive.min() if positive.size else 1.0)
    powers = np.arange(first, order + 1)
    scale = float(np.max(np.abs(x)))            # AA ~ 0.1: scale the columns of the design matrix
    design = (x[:, None] / scale) ** powers[None, :]
    dw = design * weights[:, None]
    solution, *_ = np.linalg.lstsq(dw, y * weights, rcond=None)
    if through_origin and order >= 2 and solution[-1] < 0:
        return fit_calibration(x, y, e, order - 1, through_origin, time)
    residual = y - design @ solution
    chi2 = float(np.sum((residual * weights) ** 2)) / max(x.size - powers.size, 1)
    try:
        errs = np.sqrt(np.clip(np.diag(np.linalg.inv(dw.T @ dw) * chi2), 0, None))
    except np.linalg.LinAlgError:
        errs = np.full(powers.size, np.nan)
    coeffs = np.zeros(order + 1)
    coeff_errors = np.zeros(order + 1)
    coeffs[powers] = solution / scale ** powers
    coeff_errors[powers] = errs / scale ** powers
    mse = float(np.mean(residual ** 2))
    var = float(np.var(y))
    return CalibrationFit(time, coeffs, mse, 1.0 - mse / var if var > 0 else float("nan"), int(x.size),
                          coeff_errors)


def curve_slopes(coeffs, aa) -> dict[str, float]:
    """Slopes of the curve ``S = sum_k coeffs[k] AA^k`` over the AA values ``aa`` (the samples a
    calibration was fitted on): the secant ``S(m)/m`` at their median ``m`` (``secant_at_median_aa``)
    and the mean of dS/dAA over their range, ``(S(max) - S(min)) / (max - min)``
    (``mean_derivative``).  Raises CalibrationError when the AA do not span a positive range."""
    x = np.asarray(aa, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2 or np.ptp(x) <= 0:
        raise CalibrationError("calibration slopes: the AA samples span no range")
    lo, mid, hi = float(np.min(x)), float(np.median(x)), float(np.max(x))
    if mid <= 0:
        raise CalibrationError(f"calibration slopes: the median AA {mid:.3g} is not positive (no plume in the FOV?)")
    s = np.polynomial.polynomial.polyval(np.array([lo, mid, hi]), np.asarray(coeffs, dtype=np.float64))
    return {"secant_at_median_aa": float(s[1] / mid), "mean_derivative": float((s[2] - s[0]) / (hi - lo))}


def slope_against_truth(coeffs, aa, true_columns, order: int = 2, through_origin: bool = True) -> dict:
    """A calibration's slope against the true one on its own samples.

    ``aa`` are the AA values the calibration ``coeffs`` was fitted on (the camera's FOV means) and
    ``true_columns`` the true columns in the FOV at the same times (e.g. from the simulator), so
    the true curve is what the camera chain really measures, not an ideal AA curve.  It is the same
    model (``order``, ``through_origin``) fitted unweighted to the true columns; both curves'
    :func:`curve_slopes` are compared over the sampled AA: ``rel_diff[k] = calibration / truth - 1``."""
    x, y = np.asarray(aa, dtype=np.float64), np.asarray(true_columns, dtype=np.float64)
    if x.shape != y.shape:
        raise CalibrationError(f"calibration truth: {x.size} AA samples but {y.size} true columns")
    ok = np.isfinite(x) & np.isfinite(y)
    true_fit = fit_calibration(x[ok], y[ok], np.ones(int(ok.sum())), order, through_origin)
    calibration, truth = curve_slopes(coeffs, x[ok]), curve_slopes(true_fit.coeffs, x[ok])
    return {"n_samples": int(ok.sum()), "aa_range": [float(np.min(x[ok])), float(np.max(x[ok]))],
            "median_aa": float(np.median(x[ok])), "true_coeffs": [float(c) for c in true_fit.coeffs],
            "calibration": calibration, "truth": truth,
            "rel_diff": {k: calibration[k] / truth[k] - 1 for k in calibration}}


class DoasCalibration:
    """Weighted polynomial AA -> column calibration on a sliding window of DOAS samples."""

    def __init__(self, order: int = 2, remove_doas_mins: float | None = 30.0,
                 doas_fov_recal_mins: float | None = 30.0, min_samples: int | None = None,
                 through_origin: bool = True) -> None:
        if order < 1:
            raise ValueError("calibration polynomial order must be >= 1")
        self.order = order
        self.through_origin = bool(through_origin)
        self.remove_doas_mins = remove_doas_mins
        self.doas_fov_recal_mins = doas_fov_recal_mins
        self.min_samples = max(order + 1, min_samples or order + 2)
        self.fov: tuple[float, float, float] | None = None
        self._times: list[dt.datetime] = []
        self._aa: list[float] = []
        self._cd: list[float] = []
        self._err: list[float] = []
        self.fits: list[CalibrationFit] = []
        self._all: list[tuple[dt.datetime, float, float, float]] = []   # every sample ever (for the CSV)

    @classmethod
    def from_settings(cls, settings, sliding_window: bool = True) -> "DoasCalibration":
        """The calibration ``settings`` ask for (``doas_cal_order``, ``doas_cal_through_origin`` and,
        with ``sliding_window``, ``remove_doas_mins``/``doas_fov_recal_mins``); the batch chain and
        the live chain both build theirs here."""
        return cls(settings["doas_cal_order"], settings["remove_doas_mins"] if sliding_window else None,
                   settings["doas_fov_recal_mins"] if sliding_window else None,
                   through_origin=settings["doas_cal_through_origin"])

    # --- samples -------------------------------------------------------------------------
    def set_fov(self, x: float, y: float, radius: float) -> None:
        self.fov = (float(x), float(y), float(radius))

    def add_sample(self, time: dt.datetime, aa_in_fov: float, column: float, column_err: float) -> None:
        self.add_samples([time], [aa_in_fov], [column], [column_err])

    def add_samples(self, times: Sequence[dt.datetime], aa_in_fov: Iterable[float], columns: Iterable[float],
                    column_errors: Iterable[float]) -> int:
        """Append samples (non-finite ones and errors <= 0 are dropped); returns how many were kept."""
        aa = np.asarray(list(aa_in_fov), float)
        cd = np.asarray(list(columns), float)
        err = np.asarray(list(column_errors), float)
        if not (len(times) == len(aa) == len(cd) == len(err)):
            raise ValueError(f"sample arrays differ in length: {len(times)}, {len(aa)}, {len(cd)}, {len(err)}")
        kept = 0
        for t, a, c, e in zip(times, aa, cd, err):
            if not (np.isfinite(a) and np.isfinite(c) and np.isfinite(e) and e > 0):
                continue
            t = aware_utc(t)
            i = bisect.bisect_right(self._times, t)
            self._times.insert(i, t)
            self._aa.insert(i, float(a))
            self._cd.insert(i, float(c))
            self._err.insert(i, float(e))
            self._all.append((t, float(a), float(c), float(e)))
            kept += 1
        return kept

    @property
    def n_samples(self) -> int:
        return len(self._times)

    def samples(self) -> tuple[list[dt.datetime], np.ndarray, np.ndarray, np.ndarray]:
        return list(self._times), np.array(self._aa), np.array(self._cd), np.array(self._err)

    def drop_older_than(self, cutoff: dt.datetime) -> None:
        i = bisect.bisect_left(self._times, aware_utc(cutoff))
        del self._times[:i], self._aa[:i], self._cd[:i], self._err[:i]

    # --- fitting -------------------------------------------------------------------------
    def fit(self, time: dt.datetime | None = None) -> CalibrationFit:
        """Fit the current window; raises CalibrationError with too few samples."""
        if len(self._times) < self.min_samples:
            raise CalibrationError(f"DOAS calibration needs at least {self.min_samples} samples, "
                                   f"has {len(self._times)}")
        fit = fit_calibration(self._aa, self._cd, self._err, self.order, self.through_origin,
                              aware_utc(time) if time else self._times[-1])
        self.fits.append(fit)
        return fit

    def update(self, now: dt.datetime) -> CalibrationFit | None:
        """Apply the sliding window at ``now`` and refit if due; returns the new fit or None."""
        now = aware_utc(now)
        if self.remove_doas_mins is not None:
            self.drop_older_than(now - dt.timedelta(minutes=self.remove_doas_mins))
        due = not self.fits or (self.doas_fov_recal_mins is not None and
                                now - self.fits[-1].time >= dt.timedelta(minutes=self.doas_fov_recal_mins))
        if not due or len(self._times) < self.min_samples:
            return None
        try:
            return self.fit(now)
        except CalibrationError:
            return None

    @property
    def current(self) -> CalibrationFit | None:
        return self.fits[-1] if self.fits else None

    def fit_at(self, time: dt.datetime | None) -> CalibrationFit:
        if not self.fits:
            raise CalibrationError("DOAS calibration has not been fitted yet")
        if time is None:
            return self.fits[-1]
        return _fit_at(self.fits, aware_utc(time))

    @property
    def column_error(self) -> float:
        return self.fit_at(None).column_error

    def column_from_aa(self, aa, out: np.ndarray | None = None, time: dt.datetime | None = None):
        """Column density (molec cm^-2) for AA (scalar or array), with the fit valid at ``time``
        (default: the latest)."""
        fit = self.fit_at(time)
        if np.isscalar(aa):
            return float(np.polyval(fit.coeffs[::-1], aa))
        return eval_polynomial(fit.coeffs, aa, out)

    # --- CSV -----------------------------------------------------------------------------
    def to_table(self) -> CalibrationTable:
        records = []
        for t, a, c, e in sorted(self._all, key=lambda s: s[0]):
            fit = _fit_at(self.fits, t) if self.fits else None
            records.append(CalibrationRecord(
                t, a, c, e, tuple(fit.coeffs) if fit else (float("nan"),) * (self.order + 1),
                fit.mse if fit else float("nan"), fit.r_squared if fit else float("nan")))
        x, y, r = self.fov if self.fov else (None, None, None)
        return CalibrationTable(x, y, r, self.remove_doas_mins, self.doas_fov_recal_mins, records)

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        return write_full_calibration(path, self.to_table())


def _fit_at(fits: Sequence[CalibrationFit], t: dt.datetime) -> CalibrationFit:
    chosen = fits[0]
    for f in fits:
        if f.time <= t:
            chosen = f
        else:
            break
    return chosen


class PreloadedCalibration:
    """A calibration read from ``full_calibration.csv`` (``cal_type_int`` 3)."""

    def __init__(self, table: CalibrationTable, source: Path | None = None) -> None:
        fits: list[CalibrationFit] = []
        for rec in table.records:
            coeffs = np.asarray(rec.coeffs, float)
            if not np.all(np.isfinite(coeffs)):
                continue
            if fits and np.array_equal(fits[-1].coeffs, coeffs):
                continue
            fits.append(CalibrationFit(rec.time, coeffs, rec.mse, rec.r_squared, 0))
        if not fits:
            raise CalibrationError(f"{source or 'calibration table'}: no row holds a complete fit")
        fits.sort(key=lambda f: f.time)
        self.fits = fits
        self.table = table
        self.source = source

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> "PreloadedCalibration":
        p = Path(path)
        return cls(read_full_calibration(p), p)

    @property
    def column_error(self) -> float:
        return self.fits[-1].column_error

    def column_from_aa(self, aa, out: np.ndarray | None = None, time: dt.datetime | None = None):
        fit = self.fits[-1] if time is None else _fit_at(self.fits, aware_utc(time))
        if np.isscalar(aa):
            return float(np.polyval(fit.coeffs[::-1], aa))
        return eval_polynomial(fit.coeffs, aa, out)


class SensitivityCorrected:
    """Cell sensitivity mask in front of another calibration (``cal_type_int`` 2: cell + DOAS)."""

    def __init__(self, mask: np.ndarray, calibration) -> None:
        self.mask = np.asarray(mask, np.float32)
        self.calibration = calibration

    @property
    def column_error(self) -> float:
        return self.calibration.column_error

    def column_from_aa(self, aa, out=None, time=None):
        if not np.isscalar(aa) and np.shape(aa) == self.mask.shape:
            aa = np.divide(aa, self.mask, dtype=np.float32)
        return self.calibration.column_from_aa(aa, out=out, time=time)
