"""Instrument line shapes (ILS) on the model's fine wavelength grid.

The parametric shape is the asymmetric super-Gaussian of Beirle et al. (AMT 2017)::

    G(x) = exp(-(|x| / w_s) ** k_s)   with  w_s = FWEM/2 -+ a_w,  k_s = k -+ a_k

(the minus sign on the blue side x < 0, plus on the red side).  FWEM is the full width at
1/e of the maximum; ``k = 2`` is a Gaussian.  Kernels are normalised to unit sum, so that
convolution preserves the integral of the spectrum.  :func:`super_gaussian` also returns
the analytic derivatives of the normalised kernel with respect to (FWEM, k, a_w, a_k), which
the fitter needs when the line shape is fitted.

A measured ILS (:func:`read_ils_file`) is a two-column text file (wavelength offset in nm,
intensity), such as PyCam's ``*_ILS.txt``; it is centred on its centroid, resampled to the
fine grid and normalised.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

#: Names of the super-Gaussian parameters, in the order used everywhere.
ILS_PARAMETERS = ("fwem", "k", "a_w", "a_k")
#: FWHM/FWEM for a Gaussian: sqrt(ln 2).
GAUSS_FWHM_PER_FWEM = float(np.sqrt(np.log(2.0)))


class LineShapeError(ValueError):
    """An ILS file is unreadable or an ILS parameter is out of range."""


def kernel_offsets(half_width_nm: float, step_nm: float) -> np.ndarray:
    """Symmetric offsets ``-n*step .. +n*step`` covering ``half_width_nm``."""
    n = int(np.ceil(half_width_nm / step_nm))
    return np.arange(-n, n + 1, dtype=np.float64) * step_nm


def super_gaussian(offsets: np.ndarray, fwem: float, k: float = 2.0, a_w: float = 0.0, a_k: float = 0.0,
                   derivatives: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The normalised kernel on ``offsets`` and, optionally, d(kernel)/d(fwem, k, a_w, a_k) as a (4, n) array."""
    w_left, w_right = 0.5 * fwem - a_w, 0.5 * fwem + a_w
    k_left, k_right = k - a_k, k + a_k
    if min(w_left, w_right) <= 0 or min(k_left, k_right) <= 0:
        raise LineShapeError(f"super-Gaussian parameters out of range: fwem={fwem:g}, k={k:g}, a_w={a_w:g}, a_k={a_k:g}")
    left = offsets < 0
    w = np.where(left, w_left, w_right)
    kk = np.where(left, k_left, k_right)
    u = np.abs(offsets) / w
    with np.errstate(divide="ignore"):
        log_u = np.where(u > 0, np.log(np.where(u > 0, u, 1.0)), 0.0)
    u_k = np.exp(kk * log_u) * (u > 0)
    g = np.exp(-u_k)
    total = g.sum()
    kernel = g / total
    if not derivatives:
        return kernel, None
    side = np.where(left, -1.0, 1.0)
    dg_dw = g * kk * u_k / w          # d g / d w_s
    dg_dk = -g * u_k * log_u          # d g / d k_s
    raw = np.empty((4, offsets.size))
    raw[0] = 0.5 * dg_dw              # fwem: dw_s/dfwem = 1/2 on both sides
    raw[1] = dg_dk                    # k:    dk_s/dk = 1
    raw[2] = side * dg_dw             # a_w:  dw_s/da_w = -1 (blue), +1 (red)
    raw[3] = side * dg_dk             # a_k
    d_kernel = raw / total - np.outer(raw.sum(axis=1), g) / total ** 2
    return kernel, d_kernel


def super_gaussian_half_width(fwem: float, k: float = 2.0, a_w: float = 0.0, a_k: float = 0.0,
                              tail: float = 1e-6) -> float:
    """Half-width (nm) beyond which the unnormalised kernel is below ``tail`` on both sides."""
    reach = 0.0
    for w, kk in ((0.5 * fwem - a_w, k - a_k), (0.5 * fwem + a_w, k + a_k)):
        if w <= 0 or kk <= 0:
            raise LineShapeError(f"super-Gaussian parameters out of range: fwem={fwem:g}, k={k:g}")
        reach = max(reach, w * (-np.log(tail)) ** (1.0 / kk))
    return float(reach)


@dataclasses.dataclass(frozen=True)
class MeasuredILS:
    """A measured line shape: offsets from its centroid (nm, increasing) and intensities."""

    offsets: np.ndarray
    values: np.ndarray
    source: str = "<memory>"

    @property
    def half_width(self) -> float:
        return float(max(-self.offsets[0], self.offsets[-1]))

    def fwhm(self) -> float:
        peak = self.values.max()
        above = self.offsets[self.values >= 0.5 * peak]
        return float(above[-1] - above[0])

    def kernel(self, offsets: np.ndarray) -> np.ndarray:
        """Resampled (linear interpolation, zero outside) and normalised to unit sum."""
        k = np.interp(offsets, self.offsets, self.values, left=0.0, right=0.0)
        total = k.sum()
        if total <= 0:
            raise LineShapeError(f"{self.source}: line shape has no positive area")
        return k / total


def measured_ils_from_arrays(offsets: np.ndarray, values: np.ndarray, source: str = "<memory>") -> MeasuredILS:
    x = np.asarray(offsets, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size != y.size or x.size < 3:
        raise LineShapeError(f"{source}: a line shape needs at least 3 (offset, intensity) rows")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise LineShapeError(f"{source}: line shape contains NaN or infinite values")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise LineShapeError(f"{source}: repeated wavelength offsets in the line shape")
    y = np.clip(y - min(0.0, y.min()), 0.0, None)
    # Remove a constant pedestal estimated from the two end samples (measured lines sit on a floor).
    floor = min(y[0], y[-1])
    y = np.clip(y - floor, 0.0, None)
    if y.max() <= 0:
        raise LineShapeError(f"{source}: line shape has no positive values")
    centroid = float(np.sum(x * y) / np.sum(y))
    return MeasuredILS(offsets=x - centroid, values=y / y.max(), source=source)


def read_ils_file(path: str | os.PathLike[str]) -> MeasuredILS:
    """Read a two-column ILS file (``#`` header lines; offset or wavelength in nm, intensity)."""
    p = Path(path)
    try:
        data = np.loadtxt(p, comments="#", ndmin=2)
    except OSError as exc:
        raise LineShapeError(f"{p}: cannot read line-shape file: {exc}") from None
    except ValueError as exc:
        raise LineShapeError(f"{p}: not a two-column line-shape file: {exc}") from None
    if data.shape[1] < 2:
        raise LineShapeError(f"{p}: not a two-column line-shape file")
    return measured_ils_from_arrays(data[:, 0], data[:, 1], str(p))


def fit_super_gaussian_to(ils: MeasuredILS) -> tuple[float, float]:
    """A quick (fwem, k) estimate of a measured line shape (width at 1/e and shape from the FWHM ratio)."""
    peak = ils.values.max()
    above_e = ils.offsets[ils.values >= peak / np.e]
    fwem = float(above_e[-1] - above_e[0])
    fwhm = ils.fwhm()
    # For a symmetric super-Gaussian FWHM/FWEM = ln(2)^(1/k).
    ratio = np.clip(fwhm / fwem, 0.05, 0.999)
    k = float(np.log(np.log(2.0)) / np.log(ratio))
    return fwem, k
