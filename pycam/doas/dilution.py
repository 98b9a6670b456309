"""Light-dilution correction by the two-waveband method (Varnam et al. 2021), as PyCam applies it.

Light scattered into the line of sight between the plume and the instrument has not passed
through the plume.  With a dilution factor L the measured intensity is
``I = I0·[L + (1 − L)·exp(−σ S)]`` (the forward model's ``ldf`` parameter), so a normal fit
returns an *apparent* column that is too small.  For weak absorption both fit windows see the
same factor (1 − L); for strong absorption the window with the larger cross-sections (e.g.
306–316 or 308–318 nm) saturates sooner than a redder one (312–322 nm), so the pair of
apparent columns (A1, A2) identifies (S, L).

We compute the look-up grid ourselves (PyCam loads two pre-computed tables, ``ld_lookup_1``
and ``ld_lookup_2``): noise-free spectra are generated with our forward model for every
(S, L) on a grid, on the instrument's pixel grid and with the line shape the measurements
are fitted with (a self-calibrated one included), and retrieved in both windows with the
same retrieval settings as the measurements.  Grids are cached in memory and, if a cache
directory is given, on disk (``.npz``, no pickle, written atomically).

Inversion: along each L row, S is found where A1(S) equals the measured A1, then L where the
predicted A2 crosses the measured A2 (linear interpolation).  The errors of A1 and A2 are
propagated to L and S by inverting the perturbed pairs.  A spectrum constrains L when a
crossing exists and L's error is at most ``max_ldf_error``; otherwise (weak absorption, where
the method carries no information) its own estimate is not used.

``recal_minutes`` (PyCam's ``spec_recal_time``): 0 corrects every spectrum with its own L
(unconstrained spectra stay uncorrected, L = NaN).  Above 0, L is the inverse-variance mean
of the constrained estimates of the last ``recal_minutes`` minutes of spectrum time (L changes
with visibility and plume distance, slowly); every spectrum, weak ones included, is then
corrected with that L, S read from the A1 curve at that L.  The results' LDF column says
which L each spectrum was corrected with.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np

from pycam.doas.model import SO2, IntensityModel, LineShapeSpec, ReferenceArrays
from pycam.doas.retrieval import DoasRetrieval, FitResult, RetrievalSettings
from pycam.doas.spectra import MeasuredSpectrum, check_spectrum, good_pixel_mask
from pycam.formats.atomic import atomic_write_bytes
from pycam.formats.names import naive_utc

DEFAULT_LDF_VALUES = tuple(np.round(np.arange(0.0, 0.91, 0.05), 3))
GRID_FORMAT_VERSION = 2
#: a grid is recomputed when the line shape moves more than this (relative FWEM, absolute k; the
#: asymmetries: a_w by 5 % of the FWEM, a_k by 0.1): smaller changes move the grid by far less than the noise
GRID_FWEM_TOLERANCE, GRID_K_TOLERANCE, GRID_A_W_TOLERANCE = 0.02, 0.1, 0.05


@dataclasses.dataclass(frozen=True)
class DilutionGrid:
    so2: np.ndarray          # (n,) true columns, molec/cm2
    ldf: np.ndarray          # (m,) dilution factors
    apparent_1: np.ndarray   # (m, n) apparent column in window 1
    apparent_2: np.ndarray   # (m, n) apparent column in window 2
    windows: tuple[tuple[float, float], tuple[float, float]]


@dataclasses.dataclass(frozen=True)
class DilutionResult:
    so2: float               # corrected column, molec/cm2 (the apparent one when no L was applied)
    so2_error: float
    ldf: float               # the L the column was corrected with (NaN: none)
    ldf_error: float
    apparent_1: float
    apparent_2: float
    constrained: bool        # this spectrum's two windows constrained L (crossing, error <= max_ldf_error)
    own_ldf: float = float("nan")        # this spectrum's own estimate (NaN without a crossing)
    own_ldf_error: float = float("inf")


def _column_on_row(grid: DilutionGrid, j: int, apparent_1: float) -> float:
    """S on the grid's L row j where A1(S) = apparent_1 (NaN outside the increasing part)."""
    a1 = grid.apparent_1[j]
    # the increasing part of A1(S) (it saturates, and may turn over, at large L and S)
    stop = int(np.argmax(np.concatenate([np.diff(a1) <= 0, [True]])))
    a1_mono, s_mono = a1[:stop + 1], grid.so2[:stop + 1]
    if a1_mono.size < 2 or not a1_mono[0] <= apparent_1 <= a1_mono[-1]:
        return float("nan")
    return float(np.interp(apparent_1, a1_mono, s_mono))


def invert(grid: DilutionGrid, apparent_1: float, apparent_2: float) -> tuple[float, float, bool]:
    """(true column, LDF, constrained) for a pair of apparent columns.

    When the pair does not constrain the dilution (no crossing on the grid, typically weak
    absorption or noise), the apparent column is returned uncorrected with LDF = NaN.
    """
    m = grid.ldf.size
    so2_rows = np.array([_column_on_row(grid, j, apparent_1) for j in range(m)])
    predicted_2 = np.full(m, np.nan)
    for j in np.flatnonzero(np.isfinite(so2_rows)):
        predicted_2[j] = np.interp(so2_rows[j], grid.so2, grid.apparent_2[j])
    valid = np.flatnonzero(np.isfinite(predicted_2))
    if valid.size == 0:
        return float(apparent_1), float("nan"), False
    diff = predicted_2[valid] - apparent_2
    sign_change = np.flatnonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) <= 0)
    if sign_change.size:
        k = sign_change[0]
        j0, j1 = valid[k], valid[k + 1]
        d0, d1 = diff[k], diff[k + 1]
        t = 0.0 if d0 == d1 else d0 / (d0 - d1)
        ldf = grid.ldf[j0] + t * (grid.ldf[j1] - grid.ldf[j0])
        so2 = so2_rows[j0] + t * (so2_rows[j1] - so2_rows[j0])
        return float(so2), float(ldf), True
    return float(apparent_1), float("nan"), False


def column_at_ldf(grid: DilutionGrid, apparent_1: float, ldf: float) -> float:
    """The true column for an apparent window-1 column at a known dilution factor ``ldf``
    (A1 inverted on the grid's L rows, interpolated linearly in L); NaN off the grid."""
    if not grid.ldf[0] <= ldf <= grid.ldf[-1]:
        return float("nan")
    j1 = int(min(max(np.searchsorted(grid.ldf, ldf, side="right"), 1), grid.ldf.size - 1))
    j0 = j1 - 1
    s0, s1 = _column_on_row(grid, j0, apparent_1), _column_on_row(grid, j1, apparent_1)
    t = (ldf - grid.ldf[j0]) / (grid.ldf[j1] - grid.ldf[j0])
    if t == 0.0:
        return s0
    return float(s0 + t * (s1 - s0)) if np.isfinite(s1) else float("nan")


def invert_with_errors(grid: DilutionGrid, apparent_1: float, error_1: float, apparent_2: float,
                       error_2: float) -> tuple[float, float, float, float, bool]:
    """(S, S error, L, L error, crossing) with the apparent columns' errors propagated to S and L
    (each apparent column moved by its error; an unconstrained perturbed pair gives an infinite
    L error)."""
    so2, ldf, crossing = invert(grid, apparent_1, apparent_2)
    if not crossing:
        return so2, float("nan"), ldf, float("inf"), False
    d_so2, d_ldf = [], []
    for a1, a2 in ((apparent_1 + error_1, apparent_2), (apparent_1, apparent_2 + error_2)):
        s, l, ok = invert(grid, a1, a2)
        if not ok:
            return so2, float("nan"), ldf, float("inf"), True
        d_so2.append(s - so2)
        d_ldf.append(l - ldf)
    return so2, float(math.hypot(*d_so2)), ldf, float(math.hypot(*d_ldf)), True


class LdfHold:
    """Constrained LDF estimates in time; their inverse-variance mean over the last minutes."""

    def __init__(self, minutes: float) -> None:
        self.window = dt.timedelta(minutes=minutes)
        self.entries: list[tuple[dt.datetime | None, float, float]] = []

    def add(self, when: dt.datetime | None, ldf: float, error: float) -> None:
        self.entries.append((None if when is None else naive_utc(when), ldf, max(error, 1e-4)))

    def estimate(self, when: dt.datetime | None) -> tuple[float, float]:
        """(LDF, error) from the entries within the window before ``when`` (NaN, inf: none)."""
        when = None if when is None else naive_utc(when)
        if when is not None:
            self.entries = [e for e in self.entries if e[0] is None or when - e[0] <= self.window]
            use = [e for e in self.entries if e[0] is None or e[0] <= when]
        else:
            use = self.entries
        if not use:
            return float("nan"), float("inf")
        weights = np.array([1.0 / e[2] ** 2 for e in use])
        values = np.array([e[1] for e in use])
        return float(weights @ values / weights.sum()), float(1.0 / math.sqrt(weights.sum()))


def _shape_of(result: FitResult, settings: RetrievalSettings) -> LineShapeSpec:
    """The (fixed) line shape a window-1 fit used: a measured one as configured, else its
    super-Gaussian parameters (fitted or fixed)."""
    if settings.line_shape.measured is not None:
        return dataclasses.replace(settings.line_shape, fit=False)
    v = result.values
    return LineShapeSpec(fwem=round(v["fwem"], 4), k=round(v["k"], 3), a_w=round(v["a_w"], 4), a_k=round(v["a_k"], 3))


def _close(a: LineShapeSpec, b: LineShapeSpec | None) -> bool:
    if b is None:
        return False
    if a.measured is not None or b.measured is not None:
        return a.measured is b.measured
    return (abs(a.fwem / b.fwem - 1.0) <= GRID_FWEM_TOLERANCE and abs(a.k - b.k) <= GRID_K_TOLERANCE
            and abs(a.a_w - b.a_w) <= GRID_A_W_TOLERANCE * b.fwem and abs(a.a_k - b.a_k) <= GRID_K_TOLERANCE)


class LightDilutionCorrection:
    """Fit a spectrum in two windows and correct the SO2 column for light dilution.

    ``primary`` fits window 1 (``settings.fit_window``); by default a plain
    :class:`DoasRetrieval`, e.g. a :class:`~pycam.doas.selfcal.SelfCalibratingRetrieval` for a
    self-calibrated line shape.  Window 2 and the look-up grid use the line shape of the
    window-1 fit, or the sky calibration of a self-calibrating one (a new grid when it moves by
    more than 2 % in FWEM or 0.1 in k).
    """

    def __init__(self, references: ReferenceArrays, settings: RetrievalSettings, second_window: tuple[float, float],
                 *, dark: MeasuredSpectrum | None = None, so2_max: float = 1e19, n_so2: int = 26,
                 ldf_values=DEFAULT_LDF_VALUES, cache_dir: str | os.PathLike[str] | None = None,
                 primary=None, recal_minutes: float = 0.0, max_ldf_error: float = 0.1) -> None:
        if so2_max <= 0 or n_so2 < 3:
            raise ValueError("the dilution grid needs so2_max > 0 and at least 3 columns")
        if recal_minutes < 0 or not max_ldf_error > 0:
            raise ValueError("light dilution: recal_minutes >= 0 and max_ldf_error > 0 needed")
        self.references = references
        self.settings = settings
        self.second_settings = dataclasses.replace(settings, fit_window=tuple(second_window))
        self.first = primary if primary is not None else DoasRetrieval(references, settings, dark)
        self.so2_grid = np.linspace(0.0, so2_max, n_so2)
        self.ldf_values = np.asarray(ldf_values, dtype=np.float64)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.max_ldf_error = float(max_ldf_error)
        self.hold = LdfHold(recal_minutes) if recal_minutes > 0 else None
        self._grids: dict[str, DilutionGrid] = {}
        self._shape: LineShapeSpec | None = None          # the line shape of the current grid and window 2
        self._second: DoasRetrieval | None = None
        self._dark = dark
        if primary is None and settings.line_shape.measured is None and not settings.line_shape.fit:
            self._use_shape(settings.line_shape)

    @property
    def history(self):
        """The self-calibration history of the window-1 retrieval (None without one)."""
        return getattr(self.first, "history", None)

    @property
    def dark(self) -> MeasuredSpectrum | None:
        return self._dark

    @dark.setter
    def dark(self, value: MeasuredSpectrum | None) -> None:
        self._dark = value
        self.first.dark = value
        if self._second is not None:
            self._second.dark = value

    def _use_shape(self, shape: LineShapeSpec) -> None:
        self._shape = shape
        line_shape = dataclasses.replace(shape, fit=self.settings.line_shape.fit)
        self._second = DoasRetrieval(self.references, dataclasses.replace(self.second_settings, line_shape=line_shape),
                                     self._dark)

    # ----------------------------------------------------------------------------- grid
    def _key(self, wavelengths: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(f"v{GRID_FORMAT_VERSION}".encode())
        h.update(np.ascontiguousarray(wavelengths, dtype=np.float64).tobytes())
        h.update(self.so2_grid.tobytes())
        h.update(self.ldf_values.tobytes())
        ls = self._shape
        h.update(repr((ls.fwem, ls.k, ls.a_w, ls.a_k, self.settings.line_shape.fit, self.settings.fit_window,
                       self.second_settings.fit_window, self.settings.poly_order, self.settings.offset_order,
                       sorted(self._absorbers()), sorted(self.settings.first_guess.items()))).encode())
        if ls.measured is not None:
            h.update(ls.measured.offsets.tobytes())
            h.update(ls.measured.values.tobytes())
        lo = min(self.settings.fit_window[0], self.second_settings.fit_window[0]) - 3
        hi = max(self.settings.fit_window[1], self.second_settings.fit_window[1]) + 3
        refs = self.references
        inside = (refs.solar_wavelengths >= lo) & (refs.solar_wavelengths <= hi)
        h.update(refs.solar[inside].tobytes())
        for name in sorted(refs.cross_sections):
            wl, values = refs.cross_sections[name]
            h.update(name.encode())
            h.update(np.asarray(values)[(wl >= lo) & (wl <= hi)].tobytes())
        return h.hexdigest()[:32]

    def _absorbers(self) -> tuple[str, ...]:
        s = self.settings
        return tuple(s.absorbers) if s.absorbers else tuple(self.references.cross_sections)

    def grid_for(self, wavelengths: np.ndarray) -> DilutionGrid:
        """The look-up grid for a pixel grid (memory cache, then disk cache, else computed)."""
        if self._shape is None:
            raise ValueError("light dilution: no line shape yet (fit a spectrum first)")
        key = self._key(wavelengths)
        grid = self._grids.get(key)
        if grid is not None:
            return grid
        path = self.cache_dir / f"light_dilution_grid_{key}.npz" if self.cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    grid = DilutionGrid(data["so2"], data["ldf"], data["apparent_1"], data["apparent_2"],
                                        (tuple(data["window_1"]), tuple(data["window_2"])))
            except (OSError, ValueError, KeyError):
                grid = None  # a corrupt cache file is recomputed and replaced
        if grid is None:
            grid = self.compute_grid(wavelengths)
            if path is not None:
                buf = io.BytesIO()
                np.savez(buf, so2=grid.so2, ldf=grid.ldf, apparent_1=grid.apparent_1, apparent_2=grid.apparent_2,
                         window_1=np.array(grid.windows[0]), window_2=np.array(grid.windows[1]))
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, buf.getvalue())
        self._grids[key] = grid
        return grid

    def synthetic_spectrum(self, wavelengths: np.ndarray, so2: float, ldf: float,
                           model: IntensityModel | None = None) -> MeasuredSpectrum:
        """A noise-free, dark- and stray-free spectrum on ``wavelengths`` with a dilution ``ldf``."""
        model = model or self._generation_model(wavelengths)
        params = model.default_parameters(self.settings.first_guess)
        for name in model.absorbers:
            params[model.index[name]] = 0.0 if name == "Ring" else self.settings.first_guess.get(name, 0.0)
        params[model.index[SO2]] = so2
        params[model.index["ldf"]] = ldf
        params[model.index["poly0"]] = 1e4
        counts = np.full(wavelengths.size, np.nan)
        counts[model.pixel_index] = model.evaluate(params, jacobian=False)[0]
        return MeasuredSpectrum(np.asarray(wavelengths, dtype=np.float64), counts, source="<dilution grid>")

    def _generation_model(self, wavelengths: np.ndarray) -> IntensityModel:
        lo = min(self.settings.fit_window[0], self.second_settings.fit_window[0])
        hi = max(self.settings.fit_window[1], self.second_settings.fit_window[1])
        return IntensityModel(self.references, wavelengths, (lo, hi), absorbers=self._absorbers(),
                              poly_order=0, offset_order=-1, line_shape=dataclasses.replace(self._shape, fit=False),
                              fit_shift=False, fit_stretch=False,
                              good_pixels=good_pixel_mask(len(wavelengths), self.settings.bad_pixels))

    def compute_grid(self, wavelengths: np.ndarray) -> DilutionGrid:
        wavelengths = np.asarray(wavelengths, dtype=np.float64)
        model = self._generation_model(wavelengths)
        line_shape = dataclasses.replace(self._shape, fit=self.settings.line_shape.fit)
        fit_settings = dataclasses.replace(self.settings, warm_start=False, min_intensity=0.0, max_residual=np.inf,
                                           line_shape=line_shape)
        first = DoasRetrieval(self.references, fit_settings)
        second = DoasRetrieval(self.references, dataclasses.replace(fit_settings,
                                                                     fit_window=self.second_settings.fit_window))
        shape = (self.ldf_values.size, self.so2_grid.size)
        apparent_1, apparent_2 = np.empty(shape), np.empty(shape)
        for j, ldf in enumerate(self.ldf_values):
            for i, so2 in enumerate(self.so2_grid):
                spectrum = self.synthetic_spectrum(wavelengths, so2, ldf, model)
                apparent_1[j, i] = first.fit(spectrum, prepared=True).so2
                apparent_2[j, i] = second.fit(spectrum, prepared=True).so2
        return DilutionGrid(self.so2_grid.copy(), self.ldf_values.copy(), apparent_1, apparent_2,
                            (tuple(self.settings.fit_window), tuple(self.second_settings.fit_window)))

    # ----------------------------------------------------------------------------- use
    def correct(self, wavelengths: np.ndarray, first: FitResult, second: FitResult) -> DilutionResult:
        """Correct window 1's column with the two windows' apparent columns (and the held L)."""
        grid = self.grid_for(wavelengths)
        a1, a2 = first.so2, second.so2
        so2, so2_err, own, own_err, crossing = invert_with_errors(grid, a1, first.so2_error, a2, second.so2_error)
        constrained = crossing and own_err <= self.max_ldf_error
        if self.hold is None:
            if not constrained:
                return DilutionResult(a1, first.so2_error, float("nan"), float("nan"), a1, a2, False, own, own_err)
            error = so2_err if np.isfinite(so2_err) else abs(first.so2_error * so2 / a1)
            return DilutionResult(so2, error, own, own_err, a1, a2, True, own, own_err)
        if constrained:
            self.hold.add(first.time, own, own_err)
        ldf, ldf_err = self.hold.estimate(first.time)
        column = column_at_ldf(grid, a1, ldf) if np.isfinite(ldf) else float("nan")
        if not np.isfinite(column):
            return DilutionResult(a1, first.so2_error, float("nan"), float("nan"), a1, a2, constrained, own, own_err)
        scale = column / a1 if a1 != 0 else 1.0
        return DilutionResult(column, abs(first.so2_error * scale), ldf, ldf_err, a1, a2, constrained, own, own_err)

    def fit_detail(self, spectrum: MeasuredSpectrum, *, prepared: bool = False,
                   dark: MeasuredSpectrum | None = None) -> tuple[FitResult, DilutionResult]:
        """Fit both windows; return the first window's fit (SO2 corrected, ``ldf`` set) and the details."""
        if not prepared:
            check_spectrum(spectrum, max_counts=self.settings.max_counts * (1.0 - 1e-9),
                           saturation_windows=[self.second_settings.fit_window], bad_pixels=self.settings.bad_pixels)
        corrected = spectrum if prepared else self.first.prepare(spectrum, dark)
        first = self.first.fit(corrected, prepared=True)
        calibration = getattr(self.first, "current", None)      # a self-calibrated line shape: the sky's
        shape = calibration.line_shape() if calibration is not None else _shape_of(first, self.settings)
        if not _close(shape, self._shape):
            self._use_shape(shape)
        second = self._second.fit(corrected, prepared=True)
        result = self.correct(corrected.wavelengths, first, second)
        values, errors = dict(first.values), dict(first.errors)
        values[SO2], errors[SO2] = result.so2, result.so2_error
        quality = first.quality if first.quality != "ok" else second.quality
        return dataclasses.replace(first, values=values, errors=errors, ldf=result.ldf, quality=quality), result

    def fit(self, spectrum: MeasuredSpectrum, *, prepared: bool = False,
            dark: MeasuredSpectrum | None = None) -> FitResult:
        """Like :meth:`DoasRetrieval.fit`: the window-1 fit with the corrected column and its ``ldf``."""
        return self.fit_detail(spectrum, prepared=prepared, dark=dark)[0]
