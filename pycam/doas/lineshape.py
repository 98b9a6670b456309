"""Instrument line shapes (ILS) on the model's fine wavelength grid.

The parametric shape is the asymmetric super-Gaussian of Beirle et al. (AMT 2017)::

    G(x) = exp(-(|x| / w_s) ** k_s)   with  w_s = FWEM/2 -+ a_w,  k_s = k -+ a_k

(the minus sign on the blue side x < 0, plus on the red side).  FWEM is the full width at
1/e of the maximum; ``k = 2`` is a Gaussian.  Kernels are normalised to unit sum, so that
convolution preserves the integral of the spectrum.  :func:`super_gaussian` also returns
the analytic derivatives of the normalised kernel with respect to (FWEM, k, a_w, a_k), which
the fitter needs when the line shape is fitted.

A measured ILS (:func:`read_ils_file`) is a two-column text file (wavelength offset in nm,
intensity), such as PyCam's ``*_ILS.txt``.  It is used as iFit uses it: samples as measured
(no floor removed), resampled to the fine grid by a cubic spline and normalised to unit sum;
we centre it on its centroid (iFit on the middle of the sampled range), which only moves
the fitted wavelength shift.
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
    """A measured line shape: offsets from its centroid (nm, increasing) and intensities (peak 1).

    The samples are kept as measured (no floor removed, no clipping), as iFit and PyCam use
    them: a measured line sits on wings of a few percent of its peak that belong to the
    instrument's response, and removing them narrows the kernel (for PyCam's 302 nm file the
    columns then come out ~4.5 % low).
    """

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
        """Resampled onto ``offsets`` and normalised to unit sum.

        Resampling is a cubic spline through the samples (as iFit's ``griddata(..., 'cubic')``;
        natural end conditions, which differ from its not-a-knot ones only next to the ends,
        in the wings), zero outside the measured range.
        """
        from pycam.doas.interpolation import cubic_spline

        k = cubic_spline(self.offsets, self.values, offsets, outside=0.0)
        total = k.sum()
        if not total > 0:
            raise LineShapeError(f"{self.source}: line shape has no positive area")
        return k / total


def measured_ils_from_arrays(offsets: np.ndarray, values: np.ndarray, source: str = "<memory>") -> MeasuredILS:
    """A :class:`MeasuredILS` from samples (offset or wavelength in nm, intensity).

    The samples are sorted, scaled to a peak of 1 and centred on their centroid (the first
    moment of the samples as given).  Centring only moves the fitted wavelength shift: iFit
    centres a measured kernel on the middle of its sampled range, so its shift differs from
    ours by (centroid - middle); the columns do not.
    """
    x = np.asarray(offsets, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size != y.size or x.size < 4:
        raise LineShapeError(f"{source}: a line shape needs at least 4 (offset, intensity) rows")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise LineShapeError(f"{source}: line shape contains NaN or infinite values")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise LineShapeError(f"{source}: repeated wavelength offsets in the line shape")
    peak = y.max()
    if not peak > 0 or not y.sum() > 0:
        raise LineShapeError(f"{source}: line shape has no positive values")
    if y.min() < -0.2 * peak:
        raise LineShapeError(f"{source}: line shape has values below -20 % of its peak ({y.min():g} vs {peak:g}): "
                             "not an intensity profile")
    centroid = float(np.sum(x * y) / np.sum(y))
    return MeasuredILS(offsets=x - centroid, values=y / peak, source=source)


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


def fit_super_gaussian_to(ils: MeasuredILS) -> dict[str, float]:
    """Least-squares super-Gaussian (fwem, k, a_w, a_k) through a measured line shape.

    The model is ``amplitude · G(x − centre)`` with G the unnormalised asymmetric
    super-Gaussian, fitted to the samples as given (peak 1).  Returns the four shape
    parameters plus ``centre`` (nm) and the rms misfit ``rms`` (fraction of the peak).
    """
    from scipy.optimize import least_squares

    x, y = ils.offsets, ils.values
    peak = y.max()
    above_e = x[y >= peak / np.e]
    fwem0 = float(above_e[-1] - above_e[0])

    def shape(p: np.ndarray) -> np.ndarray:
        fwem, k, a_w, a_k, centre, amplitude = p
        u = x - centre
        left = u < 0
        w = np.where(left, 0.5 * fwem - a_w, 0.5 * fwem + a_w)
        kk = np.where(left, k - a_k, k + a_k)
        return amplitude * np.exp(-(np.abs(u) / w) ** kk)

    start = np.array([fwem0, 2.0, 0.0, 0.0, float(x[np.argmax(y)]), 1.0])
    lower = np.array([0.2 * fwem0, 1.0, -0.3 * fwem0, -0.9, x[0], 0.5])
    upper = np.array([5.0 * fwem0, 8.0, 0.3 * fwem0, 0.9, x[-1], 2.0])
    fit = least_squares(lambda p: shape(p) - y, start, bounds=(lower, upper))
    fwem, k, a_w, a_k, centre, _ = fit.x
    return {"fwem": float(fwem), "k": float(k), "a_w": float(a_w), "a_k": float(a_k), "centre": float(centre),
            "rms": float(np.sqrt(np.mean(fit.fun ** 2)))}
