"""Self-calibration of the spectrometer: line shape and wavelength calibration from the sky.

With no measured line shape and no FWEM given, :class:`SelfCalibratingRetrieval` does what a
careful user does by hand: it fits the super-Gaussian line shape (FWEM, k, asymmetries) and
the wavelength shift/stretch against the solar reference on the first good spectrum
(preferring clear sky), then keeps that line shape fixed (a fixed-shape fit is about twice as
fast) while shift and stretch stay free per spectrum.  It recalibrates

* when a fixed-shape fit drifts: its relative rms residual grows beyond ``residual_factor``
  times the calibration's, it is flagged for its residual, freeing the shape would remove more
  than ``ils_gain_limit`` (15 %) of its sum of squares (a score test from one linearised step;
  white noise alone gives ~4/dof, about 3 %, and exceeds 15 % with p < 0.001), or its shift
  moves more than ``shift_tolerance`` nm from the calibration's;
* every ``recal_minutes`` of spectrum time, on the next clear-sky spectrum;
* once on the first clear-sky spectrum when the first calibration came from a plume spectrum.

A plume spectrum whose column would move by more than ``column_tolerance`` (0.5 %) if the
shape were freed (predicted from the same linearised step as the score test, which costs one
model evaluation) gets the shape freed: the linearised step itself when it is small, else a
full fit from the calibration; the following spectra are then fitted with the shape free
directly until the sky is clear again.  Those refinements are not calibrations (a line shape
fitted through strong SO2 absorption is correlated with the column), so the history keeps the
sky's.  This keeps the defaults within 1 % of fitting the shape on every spectrum
(``--fit-ils``) while clear sky uses the faster fixed-shape fit (the score test runs there
only when the residual has grown by 5 %).

Each calibration is an :class:`InstrumentCalibration` row of a :class:`CalibrationHistory`
(CSV, written atomically after each new row), flagged when the FWEM differs by more than
5 % or the shift by more than 0.05 nm from the history's first (reference) calibration.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from pycam.doas.lineshape import kernel_offsets, super_gaussian, super_gaussian_half_width
from pycam.doas.model import SO2, LineShapeSpec, ReferenceArrays
from pycam.doas.retrieval import QUALITY_HIGH_RESIDUAL, DoasRetrieval, FitResult, RetrievalSettings
from pycam.doas.spectra import MeasuredSpectrum
from pycam.formats.names import naive_utc

#: Drift flag limits (relative FWEM change, absolute shift change in nm) against the reference calibration.
FWEM_DRIFT_LIMIT = 0.05
SHIFT_DRIFT_LIMIT_NM = 0.05
HISTORY_NAME = "doas_calibration_history.csv"
HISTORY_COLUMNS = ("time", "source", "reason", "fwem_nm", "k", "a_w_nm", "a_k", "shift_nm", "stretch",
                   "rms_residual", "clear_sky", "flag")


#: On clear sky the score test runs only when the rms residual exceeds the calibration's by this factor.
SCORE_RMS_FACTOR = 1.05
#: Column changes up to this fraction are applied as one Gauss-Newton step; larger ones get a full fit.
ONE_STEP_LIMIT = 0.03


@dataclasses.dataclass(frozen=True)
class ShapeStep:
    """The linearised effect of freeing the line shape on a fixed-shape fit."""

    gain: float                    # fraction of the sum of squares removed
    d_so2: float                   # change of the SO2 column
    start: np.ndarray              # all parameters at the fixed-shape solution
    delta: np.ndarray              # the step for all parameters (0 for fixed ones)
    errors: np.ndarray             # free-parameter errors per unit misfit (multiply by sqrt(cost/dof))


class CalibrationHistoryError(ValueError):
    """A calibration history file is unreadable."""


@dataclasses.dataclass(frozen=True)
class InstrumentCalibration:
    """One line-shape and wavelength calibration of the spectrometer."""

    time: dt.datetime | None
    source: str
    reason: str
    fwem: float
    k: float
    a_w: float
    a_k: float
    shift: float                   # wavelength shift of the line's centroid, nm (model shift - centroid)
    stretch: float
    rms_residual: float            # relative rms residual of the calibration fit
    clear_sky: bool
    flag: str = ""                 # ';'-joined drift codes (FWEM_DRIFT, SHIFT_DRIFT), empty when within limits

    def line_shape(self) -> LineShapeSpec:
        return LineShapeSpec(fwem=self.fwem, k=self.k, a_w=self.a_w, a_k=self.a_k)

    def label(self) -> str:
        return f"super-Gaussian FWEM={self.fwem:.4f} k={self.k:.3f} a_w={self.a_w:.4f} a_k={self.a_k:.3f} (self-calibrated)"


def kernel_centroid(fwem: float, k: float, a_w: float, a_k: float) -> float:
    """Centroid (nm) of the asymmetric super-Gaussian: the fitted shift refers to the kernel's
    zero, the instrument's wavelength calibration to the line's centroid."""
    offsets = kernel_offsets(super_gaussian_half_width(fwem, k, abs(a_w), abs(a_k), tail=1e-7), 0.002)
    kernel, _ = super_gaussian(offsets, fwem, k, a_w, a_k)
    return float(offsets @ kernel)


def drift_flags(calibration: InstrumentCalibration, reference: InstrumentCalibration | None) -> str:
    if reference is None:
        return ""
    codes = []
    if abs(calibration.fwem / reference.fwem - 1.0) > FWEM_DRIFT_LIMIT:
        codes.append("FWEM_DRIFT")
    if abs(calibration.shift - reference.shift) > SHIFT_DRIFT_LIMIT_NM:
        codes.append("SHIFT_DRIFT")
    return ";".join(codes)


def _time_text(when: dt.datetime | None) -> str:
    return "" if when is None else when.isoformat()


class CalibrationHistory:
    """Calibrations in time order; ``path`` (optional) is rewritten atomically after each append."""

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 entries: list[InstrumentCalibration] | None = None, *, write_each: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[InstrumentCalibration] = list(entries or [])
        #: rewrite the file after every append (a station); False: the owner calls write() (a batch run)
        self.write_each = write_each

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, write_each: bool = True) -> "CalibrationHistory":
        """The history in ``path`` (empty when the file does not exist yet)."""
        p = Path(path)
        if not p.exists():
            return cls(p, write_each=write_each)
        try:
            with open(p, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            entries = [InstrumentCalibration(
                time=dt.datetime.fromisoformat(r["time"]) if r["time"] else None, source=r["source"],
                reason=r["reason"], fwem=float(r["fwem_nm"]), k=float(r["k"]), a_w=float(r["a_w_nm"]),
                a_k=float(r["a_k"]), shift=float(r["shift_nm"]), stretch=float(r["stretch"]),
                rms_residual=float(r["rms_residual"]), clear_sky=r["clear_sky"] == "1", flag=r["flag"] or "")
                for r in rows]
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise CalibrationHistoryError(f"{p}: not a calibration history ({HISTORY_NAME} layout): {exc}") from None
        return cls(p, entries, write_each=write_each)

    @property
    def reference(self) -> InstrumentCalibration | None:
        return self.entries[0] if self.entries else None

    @property
    def latest(self) -> InstrumentCalibration | None:
        return self.entries[-1] if self.entries else None

    def latest_before(self, when: dt.datetime | None) -> InstrumentCalibration | None:
        """The newest calibration not after ``when`` (the newest of all when ``when`` is None)."""
        if when is None:
            return self.latest
        usable = [e for e in self.entries if e.time is None or naive_utc(e.time) <= naive_utc(when)]
        return usable[-1] if usable else None

    def append(self, calibration: InstrumentCalibration) -> InstrumentCalibration:
        """Add ``calibration`` with its drift flags set; write the file when there is one."""
        calibration = dataclasses.replace(calibration, flag=drift_flags(calibration, self.reference))
        self.entries.append(calibration)
        if self.path is not None and self.write_each:
            self.write()
        return calibration

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HISTORY_COLUMNS)
        for e in self.entries:
            writer.writerow([_time_text(e.time), e.source, e.reason, f"{e.fwem:.6f}", f"{e.k:.5f}", f"{e.a_w:.6f}",
                             f"{e.a_k:.5f}", f"{e.shift:.6f}", f"{e.stretch:.7f}", f"{e.rms_residual:.6g}",
                             int(e.clear_sky), e.flag])
        return buf.getvalue()

    def write(self) -> Path:
        from pycam.formats.atomic import atomic_write_text

        if self.path is None:
            raise CalibrationHistoryError("this calibration history has no file")
        return atomic_write_text(self.path, self.csv_text())


def _rms(result: FitResult) -> float:
    return float(np.sqrt(np.nanmean(result.relative_residual ** 2)))


def is_clear_sky(result: FitResult) -> bool:
    """SO2 indistinguishable from zero: |SO2| < max(3 sigma, 5e16 molec/cm2)."""
    error = result.so2_error if math.isfinite(result.so2_error) else 0.0
    return abs(result.so2) < max(3.0 * error, 5e16)


class SelfCalibratingRetrieval:
    """A retrieval whose super-Gaussian line shape is calibrated on the sky (see the module docstring).

    ``settings.line_shape`` gives the first guess (its FWEM); the calibration fits start from
    the latest calibration.  ``history`` keeps the calibrations (give one with a path to
    store them); ``log`` receives one line per calibration.
    """

    def __init__(self, references: ReferenceArrays, settings: RetrievalSettings = RetrievalSettings(),
                 dark: MeasuredSpectrum | None = None, *, history: CalibrationHistory | None = None,
                 recal_minutes: float = 30.0, residual_factor: float = 1.5, shift_tolerance: float = 0.02,
                 ils_gain_limit: float = 0.15, column_tolerance: float = 0.005, log: Callable[[str], None] | None = None) -> None:
        if settings.line_shape.measured is not None:
            raise ValueError("self-calibration fits a super-Gaussian; it cannot be used with a measured line shape")
        if recal_minutes < 0 or residual_factor <= 1.0 or shift_tolerance <= 0:
            raise ValueError("self-calibration: recal_minutes >= 0, residual_factor > 1 and shift_tolerance > 0 needed")
        self.references = references
        self.settings = settings
        self.dark = dark
        self.history = history if history is not None else CalibrationHistory()
        self.recal = dt.timedelta(minutes=recal_minutes) if recal_minutes > 0 else None
        self.residual_factor = residual_factor
        self.shift_tolerance = shift_tolerance
        self.ils_gain_limit = ils_gain_limit
        self.column_tolerance = column_tolerance
        self.log = log or (lambda message: None)
        first = settings.line_shape
        self._fitting = DoasRetrieval(references, dataclasses.replace(
            settings, line_shape=LineShapeSpec(fwem=first.fwem, k=first.k, fit=True)), dark)
        self.current: InstrumentCalibration | None = None
        self._centroid = 0.0
        self._fixed: DoasRetrieval | None = None
        self._start: np.ndarray | None = None
        self.calibrations = 0
        self.refinements = 0
        self._plume_mode = False

    # ------------------------------------------------------------------ state
    @property
    def dark(self) -> MeasuredSpectrum | None:
        return self._dark

    @dark.setter
    def dark(self, value: MeasuredSpectrum | None) -> None:
        self._dark = value
        for retrieval in (getattr(self, "_fitting", None), getattr(self, "_fixed", None)):
            if retrieval is not None:
                retrieval.dark = value

    def use(self, calibration: InstrumentCalibration) -> None:
        """Fit with ``calibration``'s line shape from now on (e.g. the latest of a stored history)."""
        self.current = calibration
        self._centroid = kernel_centroid(calibration.fwem, calibration.k, calibration.a_w, calibration.a_k)
        self._fixed = DoasRetrieval(self.references, dataclasses.replace(
            self.settings, line_shape=calibration.line_shape()), self.dark)
        self._fitting.reset()
        self._plume_mode = False

    def prepare(self, spectrum: MeasuredSpectrum, dark: MeasuredSpectrum | None = None) -> MeasuredSpectrum:
        return self._fitting.prepare(spectrum, dark)

    def _due(self, when: dt.datetime | None) -> bool:
        cal = self.current
        if cal is None or self.recal is None or when is None or cal.time is None:
            return False
        return naive_utc(when) - naive_utc(cal.time) >= self.recal

    # ------------------------------------------------------------------ fitting
    def fit(self, spectrum: MeasuredSpectrum, *, prepared: bool = False,
            dark: MeasuredSpectrum | None = None) -> FitResult:
        corrected = spectrum if prepared else self.prepare(spectrum, dark)
        if self.current is None:
            return self._calibrate(corrected, "first good spectrum")
        cal = self.current
        if self._plume_mode:
            # The previous spectrum needed its shape freed: fit it free directly (warm from the last
            # free fit), until the sky is clear again.
            fitted = self._fitting.fit(corrected, prepared=True)
            if fitted.ok:
                self.refinements += 1
                self._plume_mode = not is_clear_sky(fitted)
                return self._labelled(fitted, self._refined_label(fitted))
            self._plume_mode = False
        result = self._fixed.fit(corrected, prepared=True, start=self._take_start())
        clear = result.ok and is_clear_sky(result)
        # The score step costs a model evaluation: on clear sky only when the residual has grown.
        need_step = result.ok and (not clear or _rms(result) > SCORE_RMS_FACTOR * cal.rms_residual)
        step = self._free_shape_step(corrected, result) if need_step else None
        reason = ""
        if result.quality == QUALITY_HIGH_RESIDUAL:
            reason = "residual above limit"
        elif not result.ok:
            pass
        elif _rms(result) > self.residual_factor * cal.rms_residual:
            reason = f"residual drift ({_rms(result):.2e} vs {cal.rms_residual:.2e})"
        elif step is not None and step.gain > self.ils_gain_limit:
            reason = f"line-shape residual ({100 * step.gain:.0f} % of the misfit)"
        elif abs(result.values["shift"] - self._centroid - cal.shift) > self.shift_tolerance:
            reason = f"shift drift ({result.values['shift'] - self._centroid:+.3f} vs {cal.shift:+.3f} nm)"
        elif clear and not cal.clear_sky:
            reason = "first clear-sky spectrum"
        elif clear and self._due(corrected.time):
            reason = "periodic"
        if reason:
            refit = self._calibrate(corrected, reason, start=self._params(result))
            if refit.ok:
                return refit
        if step is not None and not clear and abs(step.d_so2) > self.column_tolerance * abs(result.so2):
            # The column depends on the line shape more than the tolerance: free the shape for this
            # spectrum (as --fit-ils does) but keep the calibration, which comes from the sky.
            refined = self._refine(corrected, result, step)
            if refined is not None:
                self._plume_mode = True
                return refined
        return self._labelled(result, cal.label())

    @staticmethod
    def _refined_label(result: FitResult) -> str:
        v = result.values
        return (f"super-Gaussian FWEM={v['fwem']:.4f} k={v['k']:.3f} a_w={v['a_w']:.4f} a_k={v['a_k']:.3f} "
                "(refined for this spectrum)")

    def _refine(self, corrected: MeasuredSpectrum, result: FitResult, step: "ShapeStep") -> FitResult | None:
        """``result`` with the line shape freed: the linearised step itself when it is small and
        lowers the misfit (one Gauss-Newton step), else a full fit from the calibration."""
        self.refinements += 1
        model = self._fitting.model_for(corrected.wavelengths)
        if abs(step.d_so2) <= ONE_STEP_LIMIT * abs(result.so2):
            lower, upper = model.bounds()
            params = np.clip(step.start + step.delta, lower, upper)
            modelled, _ = model.evaluate(params, jacobian=False)
            residual = result.measured - modelled
            cost = float(residual @ residual)
            if cost <= result.chi2 * max(model.n_pixels - int(self._fixed.model_for(corrected.wavelengths).free.sum()), 1):
                dof = max(model.n_pixels - int(model.free.sum()), 1)
                errors = np.full(len(model.names), np.nan)
                errors[model.free] = step.errors * np.sqrt(cost / dof)
                refined = dataclasses.replace(
                    result, values=dict(zip(model.names, map(float, params))),
                    errors=dict(zip(model.names, map(float, errors))), model=modelled, residual=residual,
                    chi2=cost / dof, message="one Gauss-Newton step with the line shape freed")
                return self._labelled(refined, self._refined_label(refined))
        refined = self._fitting.fit(corrected, prepared=True,
                                    start=self._with_calibrated_shape(corrected, self._params(result)))
        return self._labelled(refined, self._refined_label(refined)) if refined.ok else None

    def _free_shape_step(self, corrected: MeasuredSpectrum, result: FitResult) -> "ShapeStep":
        """What freeing the line shape would do to a fixed-shape fit, from one linearised step:
        the fraction of the sum of squares it would remove (a score test for ILS-shaped structure
        left in the residual), the parameter step and the change of the SO2 column, and the
        parameter errors (unscaled by the misfit) with the shape free."""
        model = self._fitting.model_for(corrected.wavelengths)
        start = self._params(result)
        modelled, jac = model.evaluate(start, jacobian=True)
        residual = result.measured - modelled
        scale = np.sqrt(np.einsum("ij,ij->j", jac, jac))
        scale[scale == 0] = 1.0
        js = jac / scale
        gradient = residual @ js
        delta = np.zeros(len(model.names))
        try:
            inverse = np.linalg.inv(js.T @ js)
        except np.linalg.LinAlgError:
            return ShapeStep(0.0, 0.0, start, delta, np.full(int(model.free.sum()), np.nan))
        coeffs = inverse @ gradient
        total = float(residual @ residual)
        gain = float(coeffs @ gradient) / total if total > 0 else 0.0      # |J c|^2 = c.J'r at the solution
        delta[model.free] = coeffs / scale
        errors = np.sqrt(np.clip(np.diag(inverse), 0.0, None)) / scale
        return ShapeStep(gain, float(delta[model.index[SO2]]) if SO2 in model.index else 0.0, start, delta, errors)

    def _take_start(self):
        start, self._start = self._start, None
        return start

    @staticmethod
    def _params(result: FitResult) -> np.ndarray:
        return np.array([result.values[n] for n in result.names])

    def _with_calibrated_shape(self, corrected: MeasuredSpectrum, params: np.ndarray) -> np.ndarray:
        cal = self.current
        if cal is None:
            return params
        names = self._fitting.model_for(corrected.wavelengths).names
        params = params.copy()
        for name, value in zip(("fwem", "k", "a_w", "a_k"), (cal.fwem, cal.k, cal.a_w, cal.a_k)):
            params[names.index(name)] = value
        return params

    def _calibrate(self, corrected: MeasuredSpectrum, reason: str, start: np.ndarray | None = None) -> FitResult:
        if start is not None:
            start = self._with_calibrated_shape(corrected, start)
        result = self._fitting.fit(corrected, prepared=True, start=start)
        self.calibrations += 1
        if not result.ok:
            return self._labelled(result, "super-Gaussian fitted (calibration attempt failed: " + result.quality + ")")
        v = result.values
        centroid = kernel_centroid(v["fwem"], v["k"], v["a_w"], v["a_k"])
        calibration = self.history.append(InstrumentCalibration(
            time=corrected.time, source=Path(corrected.source).name, reason=reason, fwem=v["fwem"], k=v["k"],
            a_w=v["a_w"], a_k=v["a_k"], shift=v["shift"] - centroid, stretch=v["stretch"], rms_residual=_rms(result),
            clear_sky=is_clear_sky(result)))
        self.use(calibration)
        self._start = self._params(result)
        self.log(f"line shape calibrated on {calibration.source} ({reason}): FWEM {calibration.fwem:.4f} nm, "
                 f"k {calibration.k:.3f}, shift {calibration.shift:+.4f} nm, stretch {calibration.stretch:+.5f}"
                 + ("" if calibration.clear_sky else " [not clear sky]")
                 + (f" [drift: {calibration.flag}]" if calibration.flag else ""))
        return self._labelled(result, calibration.label().replace("(self-calibrated)", "(fitted: calibration)"))

    @staticmethod
    def _labelled(result: FitResult, label: str) -> FitResult:
        result.line_shape = label
        return result
