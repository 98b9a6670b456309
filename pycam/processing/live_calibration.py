"""The live DOAS calibration of the camera (PyCam's ``cal_type_int`` 1, run as data arrive).

AA images and DOAS columns feed a FOV calibrator (:class:`pycam.doas.fov.FovCalibrator`,
passed in by the caller so that this package does not import its sibling ``pycam.doas``);
when it adopts a FOV search, the matched samples become a
:class:`~pycam.processing.doas_calibration.DoasCalibration` fitted exactly as the batch chain
does (:func:`pycam.processing.setup.doas_calibration_from_pairs`: same FOV search, same weighted
fit), and :attr:`LiveDoasCalibration.status` describes it for display: FOV, slope and
intercept with their errors, number of points, when it was fitted.

Why the live rate used to be 2-3x high (issue 9 item 7, issue 10 item 5; demo scene: 5 kg/s,
8 m/s, true FOV (402, 243) r=10 px, 1 pair and 1 spectrum per second):

* The FOV search ran as soon as 20 samples were buffered and its result was kept for a whole
  recalibration interval.  20 s of data cover ~40 px of plume motion, so the correlation map's
  maximum is a chance one.  Replaying the old live chain offline (no darks, bg_mode 7): at 20
  samples FOV (175, 103) r=12 px, S = 3.53e18 + 9.87e19·AA, live rate 110 kg/s; at 80 samples the
  right FOV (400, 244) but S = 2.84e17 + 4.83e18·AA, 6.0 against 4.5 kg/s true (+35 %); with
  clear-sky frames (bg_mode 1) searches at 40 and 60 samples gave (589, 274) and (534, 259),
  slopes 5.3e18 and 2.7e18, intercepts up to 7.7e17.  With the true FOV the same 40-60 samples
  fit within 3 % of the true slope: the search, not the fit, was the problem.
* The intercept is added to every pixel of the PCS line.  The default line has 367 px; the plume
  integrates to sum(S) = Phi / (v·dx·K) = 5 / (8 · 3.85 · 1.064e-21) = 1.5e20 molec cm-2 px, while
  the reported fit's intercept gives 1.08e18 · 367 = 4.0e20 on its own (2.6x the plume), and its
  slope 2.26e18 (0.38x the true 5.9e18) the rest: (2.6 + 0.38) · 5 kg/s = 15 kg/s, the reported
  "14 kg/s for 5 kg/s".  Darks and bg_mode were not the cause (a dark changes the clear-sky AA
  on the line by 0.002 of its -0.025).

* Chance maxima are common below ~100 one-second samples, because the column series has few
  independent values (the plume texture takes 20-80 s to pass): with 5 % column noise, searches
  at 25-75 samples found 9 different places, correlations 0.61-0.90, and two successive ones
  (30 and 35 samples) agreed on a wrong FOV (42, 292) within 1 px.  The true FOV correlates
  0.95-0.99 once found.

The fix: a search is adopted only when the next one, ``confirm_s`` later, finds the same FOV
(centre and radius within ``confirm_px``, ``FovCalibrator(confirm_px=...)``) with a correlation
of at least ``LIVE_MIN_CORRELATION``, from at least ``LIVE_MIN_SAMPLES`` samples; until then the
status says what it waits for.  On the demo the first FOV is adopted after 75-120 samples, at the
simulator's FOV (within 1 px), and the live rate is within 5 % of the truth.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from pycam.processing.doas_calibration import DoasCalibration

#: Live defaults: searches need this many matched samples, confirmed within this many px.
LIVE_MIN_SAMPLES = 60
LIVE_CONFIRM_PX = 3.0
LIVE_CONFIRM_S = 15.0
LIVE_MIN_CORRELATION = 0.9


@dataclasses.dataclass(frozen=True)
class CalibrationStatus:
    """What the GUI and the headless demo show about the live calibration."""

    fitted_at: dt.datetime | None      # time of the newest sample used (None: not calibrated yet)
    n_points: int
    centre_x: float = float("nan")
    centre_y: float = float("nan")
    radius: float = float("nan")
    intercept: float = float("nan")
    intercept_err: float = float("nan")
    slope: float = float("nan")
    slope_err: float = float("nan")
    correlation: float = float("nan")
    column_error: float = float("nan")
    searches: int = 0
    waiting: str = ""                  # why there is no (new) calibration yet

    @property
    def calibrated(self) -> bool:
        return self.fitted_at is not None

    def age_s(self, now: dt.datetime) -> float:
        if self.fitted_at is None:
            return float("nan")
        return (_utc(now) - _utc(self.fitted_at)).total_seconds()

    def text(self, now: dt.datetime | None = None) -> str:
        if not self.calibrated:
            return f"DOAS calibration: waiting ({self.waiting or 'no samples yet'})"
        age = "" if now is None else f", age {self.age_s(now):.0f} s"
        return (f"DOAS cal: FOV ({self.centre_x:.0f}, {self.centre_y:.0f}) r={self.radius:.0f} px, "
                f"S = ({self.intercept:.2e} ± {self.intercept_err:.1e}) + ({self.slope:.3e} ± {self.slope_err:.1e})·AA, "
                f"r={self.correlation:.2f}, {self.n_points} points{age}")


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


def live_fov_options(min_samples: int = LIVE_MIN_SAMPLES) -> dict[str, Any]:
    """Keyword arguments for ``FovCalibrator`` used by the live chain (see the module docstring)."""
    return dict(min_samples=min_samples, confirm_px=LIVE_CONFIRM_PX, confirm_s=LIVE_CONFIRM_S,
                min_correlation=LIVE_MIN_CORRELATION)


class LiveDoasCalibration:
    """Feeds a FOV calibrator and turns each adopted search into a :class:`DoasCalibration`."""

    def __init__(self, fov_calibrator, *, order: int = 1) -> None:
        self.fov_calibrator = fov_calibrator
        self.order = order
        self.calibration: DoasCalibration | None = None
        self.status = CalibrationStatus(None, 0)
        self.history: list[CalibrationStatus] = []

    def add_column(self, when, column: float, error: float, ok: bool) -> None:
        self.fov_calibrator.add_column(when, column, error, ok)

    def add_image(self, when, aa: np.ndarray) -> None:
        self.fov_calibrator.add_image(when, aa)

    def update(self, when: dt.datetime) -> DoasCalibration | None:
        """Search/refit if due; returns a new calibration when one was adopted, else None."""
        found = self.fov_calibrator.update(when)
        if found is None:
            waiting = self.fov_calibrator.last_error or ""
            if not self.status.calibrated:
                self.status = dataclasses.replace(self.status, waiting=waiting,
                                                  searches=getattr(self.fov_calibrator, "searches", 0))
            return None
        times, aa, columns, errors = found.samples
        cal = DoasCalibration(order=self.order, remove_doas_mins=None, doas_fov_recal_mins=None)
        cal.set_fov(found.centre_x, found.centre_y, found.radius)
        cal.add_samples(times, aa, columns, errors)
        fitted_at = max(_utc(t) for t in times)
        cal.fit(fitted_at)
        errs = np.asarray(found.fit.coefficient_errors, float)
        coeffs = cal.current.coeffs
        self.status = CalibrationStatus(
            fitted_at, cal.current.n_samples, float(found.centre_x), float(found.centre_y), float(found.radius),
            float(coeffs[0]), float(errs[0]), float(coeffs[1]), float(errs[1]), float(found.max_correlation),
            cal.current.column_error, getattr(self.fov_calibrator, "searches", 0))
        self.history.append(self.status)
        self.calibration = cal
        return cal

    @property
    def fov(self) -> tuple[float, float, float] | None:
        s = self.status
        return (s.centre_x, s.centre_y, s.radius) if s.calibrated else None
