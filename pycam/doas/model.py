"""The intensity forward model (iFit-style) with its analytic Jacobian.

On a fine wavelength grid (0.01 nm, the fit window plus padding) the model is::

    F(λ) = I0*(λ) · P(λ) · T_other(λ) · [L + (1 − L) · T_SO2(λ)]
    T_other = exp(−Σ_{i≠SO2} a_i σ_i),   T_SO2 = exp(−a_SO2 σ_SO2)

with I0* the high-resolution solar spectrum (normalised to mean 1 over the grid), P a
polynomial in x = (λ − centre)/half-span of the fit window, a_i the slant columns (Ring is a
pseudo-absorber with its −ln spectrum as "cross-section"), and L the light-dilution factor
(0 by default; only the SO2 absorption is diluted).  F is convolved with the instrument
line shape G and sampled at the pixel wavelengths corrected by a shift and stretch::

    I(λ_j) = (G ⊗ F)(λ_j + s0 + s1·(λ_j − centre)) + Σ o_k x_j^k

Everything that does not depend on the parameters (references on the grid, polynomial
basis, the fixed kernel's FFT, interpolation set-up) is computed once in the constructor.
The convolution is a circular FFT convolution of the grid's length (the grid is padded by the
kernel half-width plus the largest shift, so no sampled point sees the wrap-around); the
sampled model is a Catmull-Rom cubic through the fine grid, so its shift derivative is exact.
Convolution is linear, so the Jacobian columns for the absorbers, polynomial and L are the
convolutions of dF/dθ; they are convolved together with F in one batched FFT.  For a fitted
line shape, d(G⊗F)/dθ_ILS = (dG/dθ_ILS) ⊗ F uses the analytic kernel derivatives.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from pycam.doas.interpolation import cubic_spline
from pycam.doas.lineshape import (ILS_PARAMETERS, LineShapeError, MeasuredILS, kernel_offsets, super_gaussian,
                                  super_gaussian_half_width)

FINE_STEP_NM = 0.01
#: Largest wavelength stretch fitted (nm per nm from the window centre).
MAX_STRETCH = 0.02
SO2 = "SO2"


def fast_fft_length(n: int) -> int:
    """The smallest 2^a·3^b >= n (numpy's pocketfft is fastest on such lengths; factors of 5
    measured ~20 % slower here).

    numpy.fft rather than scipy.fft: as fast on these lengths, and importing scipy.fft costs
    more than the rest of the start-up of ``pycam doas``."""
    best = 1 << max(int(n - 1).bit_length(), 0)
    p3 = 1
    while p3 < best:
        m = p3
        while m < n:
            m *= 2
        best = min(best, m)
        p3 *= 3
    return best


class ModelError(ValueError):
    """The model cannot be built (e.g. a reference does not cover the fit window)."""


@dataclasses.dataclass(frozen=True)
class ReferenceArrays:
    """Reference spectra as plain arrays: the solar spectrum and absorber cross-sections (nm)."""

    solar_wavelengths: np.ndarray
    solar: np.ndarray
    cross_sections: Mapping[str, tuple[np.ndarray, np.ndarray]]
    label: str = ""


@dataclasses.dataclass(frozen=True)
class LineShapeSpec:
    """Either a super-Gaussian (``measured is None``) or a measured kernel."""

    fwem: float = 0.6
    k: float = 2.0
    a_w: float = 0.0
    a_k: float = 0.0
    fit: bool = False
    measured: MeasuredILS | None = None
    #: relative range allowed for the fitted FWEM (the kernel support is sized for the upper bound)
    fwem_range: tuple[float, float] = (0.5, 1.6)

    def __post_init__(self) -> None:
        if self.measured is not None and self.fit:
            raise LineShapeError("a measured line shape cannot be fitted; use a super-Gaussian to fit the ILS")
        if self.measured is None and not (0.01 <= self.fwem <= 5.0):
            raise LineShapeError(f"FWEM {self.fwem:g} nm out of range (0.01-5 nm)")


def _on_grid(wl: np.ndarray, values: np.ndarray, grid: np.ndarray, name: str) -> np.ndarray:
    wl = np.asarray(wl, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if wl.size < 2 or wl[0] > grid[0] or wl[-1] < grid[-1]:
        lo, hi = (wl[0], wl[-1]) if wl.size else (np.nan, np.nan)
        raise ModelError(f"reference {name} ({lo:.2f}-{hi:.2f} nm) does not cover the model grid "
                         f"{grid[0]:.2f}-{grid[-1]:.2f} nm")
    if np.any(np.diff(wl) <= 0):
        order = np.argsort(wl)
        wl, values = wl[order], values[order]
        keep = np.concatenate([[True], np.diff(wl) > 0])
        wl, values = wl[keep], values[keep]
    # A cubic spline, as iFit resamples its references: linear interpolation of a coarsely
    # sampled cross-section (Bogumil's SO2, 0.11 nm) rounds its bands off.
    return cubic_spline(wl, values, grid)


class IntensityModel:
    """The forward model for one pixel grid and fit window; see the module docstring."""

    def __init__(self, references: ReferenceArrays, pixel_wavelengths: np.ndarray, fit_window: tuple[float, float],
                 *, absorbers: Sequence[str] | None = None, poly_order: int = 3, offset_order: int = 0,
                 line_shape: LineShapeSpec = LineShapeSpec(), fit_shift: bool = True, fit_stretch: bool = True,
                 fit_ldf: bool = False, good_pixels: np.ndarray | None = None, max_shift_nm: float = 0.5,
                 step_nm: float = FINE_STEP_NM) -> None:
        lo, hi = float(fit_window[0]), float(fit_window[1])
        if not hi > lo:
            raise ModelError(f"fit window {lo:g}-{hi:g} nm is empty")
        wl = np.asarray(pixel_wavelengths, dtype=np.float64)
        in_window = (wl >= lo) & (wl <= hi)
        if good_pixels is not None:
            in_window &= good_pixels
        self.pixel_index = np.flatnonzero(in_window)
        self.n_pixels = int(self.pixel_index.size)
        if self.n_pixels < 10:
            raise ModelError(f"fit window {lo:g}-{hi:g} nm holds only {self.n_pixels} pixels "
                             f"(spectrum covers {wl[0]:.1f}-{wl[-1]:.1f} nm)")
        self.fit_window = (lo, hi)
        self.wavelengths = wl[self.pixel_index]
        self.centre = 0.5 * (lo + hi)
        self.half_span = 0.5 * (hi - lo)
        self.step = float(step_nm)
        self.line_shape = line_shape
        absorbers = list(absorbers if absorbers is not None else references.cross_sections)
        for name in absorbers:
            if name not in references.cross_sections:
                raise ModelError(f"no cross-section for absorber {name!r} (have: {', '.join(references.cross_sections)})")
        self.absorbers = absorbers
        self.so2_index = absorbers.index(SO2) if SO2 in absorbers else -1

        # Kernel support: fixed kernel, or sized for the largest FWEM the fit may reach.
        if line_shape.measured is not None:
            half_width = line_shape.measured.half_width
        else:
            if line_shape.fit:
                # sized for the largest FWEM and a_w the fit may reach, at k = 2 with a_k = 0.25
                upper = line_shape.fwem * line_shape.fwem_range[1]
                half_width = super_gaussian_half_width(upper, min(line_shape.k, 2.0), 0.2 * line_shape.fwem, 0.25,
                                                       tail=1e-5)
            else:
                half_width = super_gaussian_half_width(line_shape.fwem, line_shape.k, abs(line_shape.a_w),
                                                       abs(line_shape.a_k), tail=1e-5)
        self.kernel_offsets = kernel_offsets(half_width, self.step)
        self.kernel_half = (self.kernel_offsets.size - 1) // 2
        # The pixels may move by the largest shift plus the largest stretch at the window edges.
        self.max_stretch = MAX_STRETCH
        pad = half_width + max_shift_nm + self.max_stretch * self.half_span + 0.1
        # The grid starts on a multiple of the step, so that models with different padding sample the
        # references at the same wavelengths (their parameters then describe the same spectrum).
        start = np.floor((lo - pad) / self.step) * self.step
        n_grid = int(np.ceil((hi + pad - start) / self.step)) + 1
        self.grid = start + self.step * np.arange(n_grid)
        self.max_shift_nm = max_shift_nm

        solar = _on_grid(references.solar_wavelengths, references.solar, self.grid, "solar")
        if not np.all(solar > 0):
            raise ModelError("solar reference has non-positive values inside the model grid")
        # Normalised over the fit window (not the padded grid), so that parameters carry over between
        # models whose kernel support (hence padding) differs.
        self.solar = solar / solar[(self.grid >= lo) & (self.grid <= hi)].mean()
        self.sigma = np.array([_on_grid(*references.cross_sections[n], self.grid, n) for n in absorbers])
        x_grid = (self.grid - self.centre) / self.half_span
        self.poly_basis = np.vander(x_grid, poly_order + 1, increasing=True).T    # (P, grid)
        self.x_pixels = (self.wavelengths - self.centre) / self.half_span
        self.offset_basis = (np.vander(self.x_pixels, offset_order + 1, increasing=True).T
                             if offset_order >= 0 else np.zeros((0, self.n_pixels)))
        self.poly_order, self.offset_order = poly_order, offset_order

        # Circular convolution of length n_fft >= n_grid: with the kernel starting at index 0,
        # output j = (centred index + kernel_half) is free of wrap-around for j >= 2·kernel_half,
        # and the pad (kernel half-width + maximum shift) keeps every sampled j in that range.
        self.n_fft = fast_fft_length(n_grid)
        if int(round((pad - max_shift_nm - self.max_stretch * self.half_span) / self.step)) <= self.kernel_half + 3:  # pragma: no cover - by construction
            raise ModelError("internal: model grid padding too small for the line shape")
        if line_shape.measured is not None:
            kernel = line_shape.measured.kernel(self.kernel_offsets)
        else:
            kernel, _ = super_gaussian(self.kernel_offsets, line_shape.fwem, line_shape.k, line_shape.a_w, line_shape.a_k)
        self.fixed_kernel_fft = None if line_shape.fit else np.fft.rfft(kernel, self.n_fft)

        # Parameter layout.
        names = list(absorbers) + [f"poly{k}" for k in range(poly_order + 1)] \
            + [f"offset{k}" for k in range(offset_order + 1)] + ["shift", "stretch", "ldf"] + list(ILS_PARAMETERS)
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        free = np.ones(len(names), dtype=bool)
        free[self.index["shift"]] = fit_shift
        free[self.index["stretch"]] = fit_stretch
        free[self.index["ldf"]] = fit_ldf
        for n in ILS_PARAMETERS:
            free[self.index[n]] = line_shape.fit
        self.free = free
        self._slice_abs = slice(0, len(absorbers))
        self._slice_poly = slice(len(absorbers), len(absorbers) + poly_order + 1)
        o0 = self._slice_poly.stop
        self._slice_offset = slice(o0, o0 + offset_order + 1)
        self._i_shift = self.index["shift"]
        self._i_stretch = self.index["stretch"]
        self._i_ldf = self.index["ldf"]
        self._slice_ils = slice(self.index["fwem"], self.index["fwem"] + 4)
        self._pixel_rel = self.wavelengths - self.centre
        self._grid0 = self.grid[0]
        self._n_grid = n_grid
        self._four = np.arange(4)
        self._gather_offsets = (self.kernel_half - 1 + self._four)[:, None]       # (4, 1)
        self._row_buffers: dict[int | str, np.ndarray] = {}    # FFT-length, zero-tailed work rows

    # ------------------------------------------------------------------ parameters
    def default_parameters(self, first_guess: Mapping[str, float] | None = None) -> np.ndarray:
        first_guess = dict(first_guess or {})
        p = np.zeros(len(self.names))
        for name in self.absorbers:
            p[self.index[name]] = first_guess.get(name, 0.0)
        p[self.index["poly0"]] = 1.0
        ls = self.line_shape
        p[self._slice_ils] = (ls.fwem, ls.k, ls.a_w, ls.a_k)
        for name in ("shift", "stretch", "ldf"):
            p[self.index[name]] = first_guess.get(name, 0.0)
        return p

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lower = np.full(len(self.names), -np.inf)
        upper = np.full(len(self.names), np.inf)
        lower[self._i_shift], upper[self._i_shift] = -self.max_shift_nm, self.max_shift_nm
        lower[self._i_stretch], upper[self._i_stretch] = -self.max_stretch, self.max_stretch
        lower[self._i_ldf], upper[self._i_ldf] = 0.0, 0.99
        ls = self.line_shape
        i = self._slice_ils.start
        lower[i], upper[i] = ls.fwem * ls.fwem_range[0], ls.fwem * ls.fwem_range[1]
        lower[i + 1], upper[i + 1] = 1.0, 6.0
        lower[i + 2], upper[i + 2] = -0.2 * ls.fwem, 0.2 * ls.fwem
        lower[i + 3], upper[i + 3] = -0.5, 0.5
        return lower, upper

    def fit_polynomial(self, params: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Return ``params`` with the polynomial (and offset zeroed) solved linearly for ``measured``.

        With the other parameters held, I(λ_j) is linear in the polynomial coefficients.
        """
        p = np.array(params, dtype=np.float64)
        p[self._slice_offset] = 0.0
        _, jac = self.evaluate(p, jacobian=True, all_columns=True)
        basis = jac[:, self._slice_poly]
        coeffs, *_ = np.linalg.lstsq(basis, measured, rcond=None)
        p[self._slice_poly] = coeffs
        return p

    def rescale_intensity(self, params: np.ndarray, measured: np.ndarray,
                          model: np.ndarray | None = None) -> np.ndarray:
        """Return ``params`` with polynomial and offset scaled to ``measured``.

        A cheap warm start: the previous spectrum's shape, this spectrum's brightness.
        ``model`` is the model at ``params`` if already known (else one evaluation).
        """
        p = np.array(params, dtype=np.float64)
        if model is None:
            model, _ = self.evaluate(p, jacobian=False)
        denominator = float(model @ model)
        if denominator <= 0 or not np.isfinite(denominator):
            return self.fit_polynomial(p, measured)
        factor = float(model @ measured) / denominator
        if not np.isfinite(factor) or factor <= 0:
            return self.fit_polynomial(p, measured)
        p[self._slice_poly] *= factor
        p[self._slice_offset] *= factor
        return p

    # ------------------------------------------------------------------ evaluation
    def _kernel_fft(self, params: np.ndarray, derivatives: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if self.fixed_kernel_fft is not None:
            return self.fixed_kernel_fft, None
        fwem, k, a_w, a_k = params[self._slice_ils]
        kernel, d_kernel = super_gaussian(self.kernel_offsets, fwem, k, a_w, a_k, derivatives=derivatives)
        if derivatives:
            buffer = self._row_buffers.get("kernel")
            if buffer is None:
                buffer = self._row_buffers["kernel"] = np.zeros((5, self.n_fft))
            buffer[0, :kernel.size] = kernel
            buffer[1:, :kernel.size] = d_kernel
            both = np.fft.rfft(buffer, axis=-1)
            return both[0], both[1:]
        return np.fft.rfft(kernel, self.n_fft), None

    def _transmissions(self, a: np.ndarray, ldf: float, poly: np.ndarray):
        """(F, I0*·T_other, T_SO2, dilution term); without dilution only F and I0*·T·D are formed."""
        if ldf == 0.0 or self.so2_index < 0:
            transmitted = self.solar * np.exp(-(a @ self.sigma))      # I0*·T_other·T_SO2 = I0*·T·D
            return transmitted * poly, None, None, transmitted
        tau_other = a @ self.sigma - a[self.so2_index] * self.sigma[self.so2_index]
        t_so2 = np.exp(-a[self.so2_index] * self.sigma[self.so2_index])
        base = self.solar * np.exp(-tau_other)          # I0* T_other
        dilution = ldf + (1.0 - ldf) * t_so2
        transmitted = base * dilution
        return transmitted * poly, base, t_so2, transmitted

    def evaluate(self, params: np.ndarray, jacobian: bool = True,
                 all_columns: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Model intensities at the fit pixels and the Jacobian (pixels × free parameters).

        ``all_columns=True`` returns the Jacobian for every parameter (fixed ones included,
        except the line shape's when it is not fitted, which are left at zero).
        """
        params = np.asarray(params, dtype=np.float64)
        a = params[self._slice_abs]
        ldf = float(params[self._i_ldf])
        coeffs = params[self._slice_poly]
        poly = coeffs @ self.poly_basis
        spectrum, base, t_so2, transmitted = self._transmissions(a, ldf, poly)
        want = self.free if not all_columns else np.ones(len(self.names), dtype=bool)
        fit_ils = jacobian and self.fixed_kernel_fft is None and bool(want[self._slice_ils].any())
        n_abs, n_poly = len(self.absorbers), self.poly_order + 1
        k_fft, dk_fft = self._kernel_fft(params, fit_ils)
        if jacobian:
            # Rows: d/dpoly_k = I0*·T·D·x^k (F itself is Σ p_k of these rows, so it needs no row
            # of its own), d/da_i = −σ_i·F, and d/dL.
            with_ldf = bool(want[self._i_ldf])
            # Rows padded to the FFT length once (zero tail), so the transform needs no padding copy.
            n_rows = n_poly + n_abs + int(with_ldf)
            buffer = self._row_buffers.get(n_rows)
            if buffer is None:
                buffer = self._row_buffers[n_rows] = np.zeros((n_rows, self.n_fft))
            rows = buffer[:, :self._n_grid]
            np.multiply(self.poly_basis, transmitted, out=rows[:n_poly])
            np.multiply(self.sigma, -spectrum, out=rows[n_poly:n_poly + n_abs])
            if base is not None:
                rows[n_poly + self.so2_index] = -self.sigma[self.so2_index] * base * poly * (1.0 - ldf) * t_so2
            if with_ldf:
                t = t_so2 if t_so2 is not None else np.exp(-a[self.so2_index] * self.sigma[self.so2_index])
                b = base if base is not None else transmitted / t
                rows[-1] = b * poly * (1.0 - t)
            spec_fft = np.fft.rfft(buffer, axis=-1)
            if fit_ils:
                products = np.empty((n_rows + 4, spec_fft.shape[1]), dtype=spec_fft.dtype)
                np.multiply(spec_fft, k_fft, out=products[:n_rows])
                np.multiply(coeffs @ spec_fft[:n_poly], dk_fft, out=products[n_rows:])
            else:
                products = np.multiply(spec_fft, k_fft, out=spec_fft)
            conv = np.fft.irfft(products, self.n_fft, axis=-1)
        else:
            conv = np.fft.irfft(np.fft.rfft(spectrum, self.n_fft) * k_fft, self.n_fft)[None, :]

        # Catmull-Rom (C1 cubic) interpolation at the shifted pixel wavelengths, so that the
        # shift/stretch derivatives are exact derivatives of the sampled model.
        shift, stretch = params[self._i_shift], params[self._i_stretch]
        positions = (self.wavelengths + shift + stretch * self._pixel_rel - self._grid0) / self.step
        idx = positions.astype(np.intp)                  # positions > 0: truncation is floor
        np.maximum(idx, 1, out=idx)
        np.minimum(idx, self._n_grid - 3, out=idx)
        t = positions - idx
        t2 = t * t
        t3 = t2 * t
        weights = np.empty((4, t.size))                                            # (4, pixels)
        weights[0] = -0.5 * t + t2 - 0.5 * t3
        weights[1] = 1.0 - 2.5 * t2 + 1.5 * t3
        weights[2] = 0.5 * t + 2.0 * t2 - 1.5 * t3
        weights[3] = -0.5 * t2 + 0.5 * t3
        gathered = conv[:, idx + self._gather_offsets]                             # (rows, 4, pixels)
        sampled = np.einsum("rkp,kp->rp", gathered, weights)
        offset = params[self._slice_offset] @ self.offset_basis if self.offset_basis.size else 0.0
        if not jacobian:
            return sampled[0] + offset, None
        model = coeffs @ sampled[:n_poly] + offset

        jac = np.zeros((self.n_pixels, len(self.names)))
        jac[:, self._slice_poly] = sampled[:n_poly].T
        row = n_poly
        jac[:, self._slice_abs] = sampled[row:row + n_abs].T
        row += n_abs
        if want[self._i_ldf]:
            jac[:, self._i_ldf] = sampled[row]
            row += 1
        if fit_ils:
            jac[:, self._slice_ils] = sampled[row:row + 4].T
        if self.offset_basis.size:
            jac[:, self._slice_offset] = self.offset_basis.T
        d_weights = weights                                                        # reused: (4, pixels)
        d_weights[0] = -0.5 + 2.0 * t - 1.5 * t2
        d_weights[1] = -5.0 * t + 4.5 * t2
        d_weights[2] = 0.5 + 4.0 * t - 4.5 * t2
        d_weights[3] = -t + 1.5 * t2
        local = np.einsum("r,rkp->kp", coeffs, gathered[:n_poly])
        slope = np.einsum("kp,kp->p", local, d_weights) / self.step
        jac[:, self._i_shift] = slope
        jac[:, self._i_stretch] = slope * self._pixel_rel
        if all_columns:
            return model, jac
        return model, jac[:, self.free]
