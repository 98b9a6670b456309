"""The DOAS retrieval: settings, one fit per spectrum, quality flags and warm starts.

:class:`DoasRetrieval` checks a raw spectrum, subtracts the dark and the stray light, builds
(and caches, per pixel grid) the :class:`~pycam.doas.model.IntensityModel`, and fits it with
:func:`~pycam.doas.fitter.levenberg_marquardt`.  With ``warm_start`` each fit starts from the
previous result (polynomial re-solved linearly for the new intensity); a warm-started fit
that fails is repeated from the cold first guess.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Mapping

import numpy as np

from pycam.doas.fitter import levenberg_marquardt
from pycam.doas.model import SO2, IntensityModel, LineShapeSpec, ReferenceArrays
from pycam.doas.spectra import (DEFAULT_BAD_PIXELS, FLAME_MAX_COUNTS, MeasuredSpectrum, check_spectrum,
                                good_pixel_mask, preprocess)

#: Quality flags of a fit, in order of severity.
QUALITY_OK = "ok"
QUALITY_LOW_INTENSITY = "intensity out of range"
QUALITY_HIGH_RESIDUAL = "residual above limit"
QUALITY_FAILED = "fit failed"

DEFAULT_FIRST_GUESS: Mapping[str, float] = {"SO2": 1e16, "O3": 1e19, "Ring": 0.1}


@dataclasses.dataclass(frozen=True)
class RetrievalSettings:
    """Everything that configures a fit (PyCam defaults: 308-318 nm fit, 293-296 nm stray light)."""

    fit_window: tuple[float, float] = (308.0, 318.0)
    stray_window: tuple[float, float] | None = (293.0, 296.0)
    absorbers: tuple[str, ...] | None = None          # None: every cross-section of the references
    first_guess: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_FIRST_GUESS))
    poly_order: int = 3
    offset_order: int = 0                              # -1: no intensity offset
    fit_shift: bool = True
    fit_stretch: bool = True
    line_shape: LineShapeSpec = LineShapeSpec()
    warm_start: bool = True
    max_residual: float = 0.1                          # max |measured-model|/model in the window
    min_intensity: float = 200.0                       # counts (dark-subtracted), max in the window
    max_counts: float = FLAME_MAX_COUNTS               # saturation level of the raw counts
    bad_pixels: tuple[int, ...] = DEFAULT_BAD_PIXELS
    ftol: float = 1e-6
    max_iterations: int = 100

    def __post_init__(self) -> None:
        lo, hi = self.fit_window
        if not hi > lo:
            raise ValueError(f"fit window {lo:g}-{hi:g} nm: the upper limit must exceed the lower")
        if self.stray_window is not None and not self.stray_window[1] > self.stray_window[0]:
            raise ValueError(f"stray-light window {self.stray_window[0]:g}-{self.stray_window[1]:g} nm is empty")
        if not 0 <= self.poly_order <= 8:
            raise ValueError(f"polynomial order {self.poly_order} out of range 0-8")
        if not -1 <= self.offset_order <= 3:
            raise ValueError(f"offset order {self.offset_order} out of range -1-3")


@dataclasses.dataclass
class FitResult:
    """One retrieval.  Columns in molec cm⁻²; ``residual`` is measured − model in counts."""

    source: str
    time: dt.datetime | None
    names: list[str]
    values: dict[str, float]
    errors: dict[str, float]            # NaN for parameters that were held fixed
    wavelengths: np.ndarray             # fit pixels, nm (as measured, before shift)
    measured: np.ndarray                # dark- and stray-corrected counts at the fit pixels
    model: np.ndarray
    residual: np.ndarray
    chi2: float                         # sum of squared residuals / degrees of freedom
    iterations: int
    converged: bool
    quality: str
    message: str = ""
    ldf: float = float("nan")           # light-dilution factor (when the two-waveband correction ran)
    line_shape: str = ""                # which instrument line shape the fit used (for the results and the log)

    @property
    def so2(self) -> float:
        return self.values.get(SO2, float("nan"))

    @property
    def so2_error(self) -> float:
        return self.errors.get(SO2, float("nan"))

    @property
    def relative_residual(self) -> np.ndarray:
        return self.residual / np.where(self.model != 0, self.model, np.nan)

    @property
    def ok(self) -> bool:
        return self.quality == QUALITY_OK


def line_shape_label(spec: LineShapeSpec, params: np.ndarray | None = None, model: IntensityModel | None = None) -> str:
    """A short description of the line shape a fit used (fitted values when it was fitted)."""
    if spec.measured is not None:
        return f"measured {Path(spec.measured.source).name}"
    if spec.fit and params is not None and model is not None:
        fwem, k, a_w, a_k = (float(params[model.index[n]]) for n in ("fwem", "k", "a_w", "a_k"))
        return f"super-Gaussian FWEM={fwem:.4f} k={k:.3f} a_w={a_w:.4f} a_k={a_k:.3f} (fitted per spectrum)"
    return f"super-Gaussian FWEM={spec.fwem:.4f} k={spec.k:.3f} a_w={spec.a_w:.4f} a_k={spec.a_k:.3f} (fixed)"


class DoasRetrieval:
    """Fit spectra from one spectrometer with fixed references and settings."""

    def __init__(self, references: ReferenceArrays, settings: RetrievalSettings = RetrievalSettings(),
                 dark: MeasuredSpectrum | None = None) -> None:
        self.references = references
        self.settings = settings
        self.dark = dark
        self.absorbers = tuple(settings.absorbers) if settings.absorbers else tuple(references.cross_sections)
        self._models: dict[bytes, IntensityModel] = {}
        self._previous: np.ndarray | None = None
        self._previous_model: np.ndarray | None = None
        self._previous_grid: bytes | None = None

    def reset(self) -> None:
        """Forget the previous result (the next fit starts cold)."""
        self._previous = None

    def model_for(self, wavelengths: np.ndarray) -> IntensityModel:
        key = np.ascontiguousarray(wavelengths, dtype=np.float64).tobytes()
        model = self._models.get(key)
        if model is None:
            s = self.settings
            model = IntensityModel(self.references, wavelengths, s.fit_window, absorbers=self.absorbers,
                                   poly_order=s.poly_order, offset_order=s.offset_order, line_shape=s.line_shape,
                                   fit_shift=s.fit_shift, fit_stretch=s.fit_stretch,
                                   good_pixels=good_pixel_mask(len(wavelengths), s.bad_pixels))
            if len(self._models) > 8:
                self._models.clear()
            self._models[key] = model
        return model

    def prepare(self, spectrum: MeasuredSpectrum, dark: MeasuredSpectrum | None = None) -> MeasuredSpectrum:
        """Check the raw spectrum and return it dark- and stray-light-corrected.

        ``dark`` replaces the retrieval's own dark for this spectrum.
        """
        s = self.settings
        dark = dark if dark is not None else self.dark
        windows = [s.fit_window] + ([s.stray_window] if s.stray_window else [])
        check_spectrum(spectrum, expected_pixels=dark.pixels if dark is not None else None,
                       max_counts=s.max_counts * (1.0 - 1e-9), saturation_windows=windows, bad_pixels=s.bad_pixels)
        return preprocess(spectrum, dark=dark, stray_window=s.stray_window, bad_pixels=s.bad_pixels)

    def fit(self, spectrum: MeasuredSpectrum, *, prepared: bool = False, dark: MeasuredSpectrum | None = None,
            start: np.ndarray | None = None) -> FitResult:
        """Retrieve one spectrum.  Raises :class:`~pycam.doas.spectra.SpectrumError` for unusable input.

        ``prepared=True``: ``spectrum`` is already dark- and stray-light-corrected.
        """
        corrected = spectrum if prepared else self.prepare(spectrum, dark)
        model = self.model_for(corrected.wavelengths)
        measured = corrected.counts[model.pixel_index]
        key = model.wavelengths.tobytes()
        warm = start is None and self.settings.warm_start and self._previous is not None \
            and self._previous_grid == key
        if start is not None:
            first = np.asarray(start, dtype=np.float64)
        elif warm:
            first = self._previous
        else:
            first = model.default_parameters(self.settings.first_guess)
        result = self._solve(model, measured, first, rescale_only=warm,
                             first_model=self._previous_model if warm else None)
        if warm and not result[1]:
            result = self._solve(model, measured, model.default_parameters(self.settings.first_guess))
        params, converged, fit = result
        quality = self._quality(model, measured, fit, converged)
        if quality == QUALITY_OK:
            self._previous, self._previous_model, self._previous_grid = params, fit.model, key
        errors = np.full(len(model.names), np.nan)
        errors[model.free] = fit.errors
        dof = max(model.n_pixels - int(model.free.sum()), 1)
        return FitResult(source=spectrum.source, time=spectrum.time, names=list(model.names),
                         values=dict(zip(model.names, map(float, params))),
                         errors=dict(zip(model.names, map(float, errors))), wavelengths=model.wavelengths,
                         measured=measured, model=fit.model, residual=fit.residual, chi2=fit.cost / dof,
                         iterations=fit.iterations, converged=converged, quality=quality, message=fit.message,
                         line_shape=line_shape_label(self.settings.line_shape, params, model))

    def _solve(self, model: IntensityModel, measured: np.ndarray, first: np.ndarray, rescale_only: bool = False,
               first_model: np.ndarray | None = None):
        s = self.settings
        start = (model.rescale_intensity(first, measured, first_model) if rescale_only
                 else model.fit_polynomial(first, measured))
        free = model.free
        lower, upper = model.bounds()
        full = start.copy()

        def evaluate(x: np.ndarray):
            full[free] = x
            return model.evaluate(full, jacobian=True)

        fit = levenberg_marquardt(evaluate, measured, start[free], lower=lower[free], upper=upper[free],
                                  max_iterations=s.max_iterations, ftol=s.ftol)
        params = start.copy()
        params[free] = fit.x
        ok = fit.converged and np.isfinite(fit.cost) and bool(np.all(np.isfinite(fit.errors)))
        return params, ok, fit

    def _quality(self, model: IntensityModel, measured: np.ndarray, fit, converged: bool) -> str:
        s = self.settings
        if not converged:
            return QUALITY_FAILED
        peak = float(np.nanmax(measured))
        if peak < s.min_intensity:
            return QUALITY_LOW_INTENSITY
        relative = np.abs(fit.residual) / np.maximum(np.abs(fit.model), 1e-12)
        if float(np.max(relative)) > s.max_residual:
            return QUALITY_HIGH_RESIDUAL
        return QUALITY_OK
