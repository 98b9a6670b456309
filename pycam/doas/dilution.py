"""Light-dilution correction by the two-waveband method (Varban et al. 2021 style).

Light scattered into the line of sight between the plume and the instrument has not passed
through the plume.  With a dilution factor L the measured intensity is
``I = I0·[L + (1 − L)·exp(−σ S)]`` (the forward model's ``ldf`` parameter), so a normal fit
returns an *apparent* column that is too small.  For weak absorption both fit windows see the
same factor (1 − L); for strong absorption the window with the larger cross-sections (e.g.
306–316 or 308–318 nm) saturates sooner than a redder one (312–322 nm), so the pair of
apparent columns (A1, A2) identifies (S, L).

We compute a look-up grid ourselves: noise-free spectra are generated with our forward model
for every (S, L) on a grid, on the instrument's pixel grid and line shape, and retrieved in
both windows with the same retrieval settings as the measurements.  The grid is cached in
memory and, if a cache directory is given, on disk (``.npz``, no pickle, written atomically).
Inversion: along each L row, S is found where A1(S) equals the measured A1, then L where the
predicted A2 crosses the measured A2 (linear interpolation).  With no crossing (usually weak
absorption, where the method carries no information) the column is left uncorrected, L is
NaN and ``DilutionResult.constrained`` is False.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from pycam.doas.model import SO2, IntensityModel, LineShapeSpec, ReferenceArrays
from pycam.doas.retrieval import DoasRetrieval, FitResult, RetrievalSettings
from pycam.doas.spectra import MeasuredSpectrum, check_spectrum, good_pixel_mask
from pycam.formats.atomic import atomic_write_bytes

DEFAULT_LDF_VALUES = tuple(np.round(np.arange(0.0, 0.91, 0.05), 3))
GRID_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class DilutionGrid:
    so2: np.ndarray          # (n,) true columns, molec/cm2
    ldf: np.ndarray          # (m,) dilution factors
    apparent_1: np.ndarray   # (m, n) apparent column in window 1
    apparent_2: np.ndarray   # (m, n) apparent column in window 2
    windows: tuple[tuple[float, float], tuple[float, float]]


@dataclasses.dataclass(frozen=True)
class DilutionResult:
    so2: float               # corrected column, molec/cm2
    so2_error: float
    ldf: float
    apparent_1: float
    apparent_2: float
    constrained: bool        # False when the two windows did not constrain L (weak absorption)


def invert(grid: DilutionGrid, apparent_1: float, apparent_2: float) -> tuple[float, float, bool]:
    """(true column, LDF, constrained) for a pair of apparent columns.

    When the pair does not constrain the dilution (no crossing on the grid, typically weak
    absorption or noise), the apparent column is returned uncorrected with LDF = NaN.
    """
    m = grid.ldf.size
    so2_rows = np.full(m, np.nan)
    predicted_2 = np.full(m, np.nan)
    for j in range(m):
        a1 = grid.apparent_1[j]
        # the increasing part of A1(S) (it saturates, and may turn over, at large L and S)
        stop = int(np.argmax(np.concatenate([np.diff(a1) <= 0, [True]])))
        a1_mono, s_mono = a1[:stop + 1], grid.so2[:stop + 1]
        if a1_mono.size < 2 or not a1_mono[0] <= apparent_1 <= a1_mono[-1]:
            continue
        so2_rows[j] = np.interp(apparent_1, a1_mono, s_mono)
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


class LightDilutionCorrection:
    """Fit a spectrum in two windows and correct the SO2 column for light dilution."""

    def __init__(self, references: ReferenceArrays, settings: RetrievalSettings, second_window: tuple[float, float],
                 *, dark: MeasuredSpectrum | None = None, so2_max: float = 1e19, n_so2: int = 26,
                 ldf_values=DEFAULT_LDF_VALUES, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if so2_max <= 0 or n_so2 < 3:
            raise ValueError("the dilution grid needs so2_max > 0 and at least 3 columns")
        self.references = references
        self.settings = settings
        self.second_settings = dataclasses.replace(settings, fit_window=tuple(second_window))
        self.first = DoasRetrieval(references, settings, dark)
        self.second = DoasRetrieval(references, self.second_settings, dark)
        self.so2_grid = np.linspace(0.0, so2_max, n_so2)
        self.ldf_values = np.asarray(ldf_values, dtype=np.float64)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._grids: dict[str, DilutionGrid] = {}

    # ----------------------------------------------------------------------------- grid
    def _generation_line_shape(self) -> LineShapeSpec:
        return dataclasses.replace(self.settings.line_shape, fit=False)

    def _key(self, wavelengths: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(f"v{GRID_FORMAT_VERSION}".encode())
        h.update(np.ascontiguousarray(wavelengths, dtype=np.float64).tobytes())
        h.update(self.so2_grid.tobytes())
        h.update(self.ldf_values.tobytes())
        ls = self.settings.line_shape
        h.update(repr((ls.fwem, ls.k, ls.a_w, ls.a_k, ls.fit, self.settings.fit_window, self.second_settings.fit_window,
                       self.settings.poly_order, self.settings.offset_order, sorted(self.first.absorbers),
                       sorted(self.settings.first_guess.items()))).encode())
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

    def grid_for(self, wavelengths: np.ndarray) -> DilutionGrid:
        """The look-up grid for a pixel grid (memory cache, then disk cache, else computed)."""
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
        return IntensityModel(self.references, wavelengths, (lo, hi), absorbers=self.first.absorbers,
                              poly_order=0, offset_order=-1, line_shape=self._generation_line_shape(),
                              fit_shift=False, fit_stretch=False,
                              good_pixels=good_pixel_mask(len(wavelengths), self.settings.bad_pixels))

    def compute_grid(self, wavelengths: np.ndarray) -> DilutionGrid:
        wavelengths = np.asarray(wavelengths, dtype=np.float64)
        model = self._generation_model(wavelengths)
        fit_settings = dataclasses.replace(self.settings, warm_start=False, min_intensity=0.0, max_residual=np.inf)
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
        grid = self.grid_for(wavelengths)
        so2, ldf, constrained = invert(grid, first.so2, second.so2)
        scale = so2 / first.so2 if first.so2 != 0 else 1.0
        error = abs(first.so2_error * scale) if np.isfinite(scale) else first.so2_error
        return DilutionResult(so2, error, ldf, first.so2, second.so2, constrained)

    def fit(self, spectrum: MeasuredSpectrum, *, prepared: bool = False,
            dark: MeasuredSpectrum | None = None) -> tuple[FitResult, DilutionResult]:
        """Fit both windows; return the first window's fit (SO2 corrected, ``ldf`` set) and the details."""
        if not prepared:
            check_spectrum(spectrum, max_counts=self.settings.max_counts * (1.0 - 1e-9),
                           saturation_windows=[self.second_settings.fit_window], bad_pixels=self.settings.bad_pixels)
        corrected = spectrum if prepared else self.first.prepare(spectrum, dark)
        first = self.first.fit(corrected, prepared=True)
        second = self.second.fit(corrected, prepared=True)
        result = self.correct(corrected.wavelengths, first, second)
        values, errors = dict(first.values), dict(first.errors)
        values[SO2], errors[SO2] = result.so2, result.so2_error
        quality = first.quality if first.quality != "ok" else second.quality
        return dataclasses.replace(first, values=values, errors=errors, ldf=result.ldf, quality=quality), result
