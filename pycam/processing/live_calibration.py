"""The live DOAS calibration of the camera (PyCam's ``cal_type_int`` 1, run as data arrive).

AA images and DOAS columns feed a FOV calibrator (:class:`pycam.doas.fov.FovCalibrator`,
passed in by the caller so that this package does not import its sibling ``pycam.doas``);
when it adopts a FOV search, the matched samples become a
:class:`~pycam.processing.doas_calibration.DoasCalibration` fitted exactly as the batch chain
does (:func:`pycam.processing.setup.doas_calibration_from_pairs`: same FOV search, same weighted
fit), and :attr:`LiveDoasCalibration.status` describes it for display: FOV, slope and
intercept with their errors, number of points, when it was fitted.

Why the live rate used to be 2-3x high (issue 9 item 7, issue 10 item 5): the FOV search ran on
the first 20 one-second samples.  Over 20 s the plume moves ~40 px, so the correlation map's
maximum is a chance one: on the demo scene it was (175, 103) r=12 px with S = 1.2e18 + 9.9e19·AA
(true FOV (402, 243) r=10, true slope 5.9e18), and searches at 40 and 60 samples jumped to
(589, 274) and (534, 259) with slopes 5.3e18 and 2.7e18 and intercepts up to 7.7e17.  The
intercept is added to every pixel of the PCS line (366 px, most of them outside the plume), so
a 1e18 intercept alone adds about as much as the whole plume.  The first search was kept for
a full recalibration interval.  The fix: a search is adopted only when the next one confirms it
(same centre and radius within a few px, ``FovCalibrator(confirm_px=...)``), and the search is
retried every ``confirm_s`` until then; the defaults here want at least 45 samples.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from pycam.processing.doas_calibration import DoasCalibration

#: Live defaults: searches need this many matched samples, confirmed within this many px.
LIVE_MIN_SAMPLES = 45
LIVE_CONFIRM_PX = 3.0
LIVE_CONFIRM_S = 15.0
LIVE_MIN_CORRELATION = 0.8


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
