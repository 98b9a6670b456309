"""Camera light-dilution correction, image-based (Campion et al. 2015; the method of pyplis's
``DilutionCorr``, written independently).

Light scattered into the line of sight between the plume and the camera adds radiance that
never crossed the plume, so the plume looks thinner.  With an extinction coefficient ``eps``
(1/m) per band and ``T = exp(-eps d)`` over a distance ``d``, a radiance ``I0`` at distance ``d``
is seen as

    I = I0 * T + I_A * (1 - T)

``I_A`` being the ambient (sky) radiance.

* For the fit, ``I_A`` at a terrain pixel is the sky radiance the camera would see there:
  :func:`sky_surface` of the clear-sky image (or of the frame itself without one) - a radial
  vignetting times a sky-gradient plane, fitted to the sky pixels and extrapolated over the
  terrain - scaled to the frame's brightness on ``ambient_roi``.  Below the horizon the
  gradient stays at its horizon value (the airlight of a long path approaches the horizon
  sky; Campion et al. 2015).  Sky pixels are found iteratively: everything below 90 % of the
  current model (terrain, snow, plume, specks) is left out and the model refitted.
* For the correction, ``I_A`` at a pixel is the chain's plume-free background of that pixel
  (as pyplis's ``correct_img``): right where the plume is seen against the sky; over terrain
  behind the plume the additive light is under-estimated.

**Fit.** Dilution lines lie on dark terrain at known distances ``d_i`` (PyCam line files;
one distance per line, or a start and end distance varying linearly along it).  Along them
``r = I / I_A = rho * T + 1 - T`` with ``rho`` the terrain to sky radiance ratio (taken the
same for all lines), so ``ln(1 - r) = ln(1 - rho) - eps d``: a straight line in ``d`` fitted
to every sample of every line (least squares weighted by ``1 - r``, the inverse noise of the
logarithm).  ``eps`` is clipped to ``[0, 1e-3]`` 1/m; two or more distinct distances are
needed.  The fit is done per band on the first pair processed (or ``dil_extinction_per_m``
gives both values) and kept for the run.

**Correction.** Before tau, for pixels where ``tau = ln(I_A / I) > tau_thresh`` (PyCam's key),
with ``T_p = exp(-eps d_p)`` at the plume distance ``d_p``::

    I* = (I - I_A * (1 - T_p)) / T_p

(plume-free pixels, ``I = I_A``, are unchanged by this formula anyway; the threshold keeps
noise and terrain from being amplified).

Settings (PyCam keys ``use_light_dilution``, ``tau_thresh``, ``dil_lines``; ours
``dil_distances_m``, ``dil_extinction_per_m``): ``dil_lines`` is a list of line files, or the
simulator's ``light_dilution.json`` (``{"lines": [{"file", "distance_m"}], "plume_distance_m"}``),
whose distances are then used.  The plume distance is ``plume_distance_m`` of the settings, or
the JSON's.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pycam.formats.geometry import GeometryFileError, PCSLine, read_pcs_line
from pycam.processing.lines import LineSampler

log = logging.getLogger(__name__)

#: Range of the fitted extinction coefficient, 1/m.
EPS_RANGE = (0.0, 1e-3)


class DilutionError(ValueError):
    """Light-dilution settings or data that cannot be used (the message names the problem)."""


@dataclasses.dataclass(frozen=True)
class DilutionFit:
    eps_per_m: float
    rho: float               # terrain / sky radiance ratio
    n_samples: int
    r_squared: float


def fit_extinction(ratios: Sequence[np.ndarray], distances_m: Sequence) -> DilutionFit:
    """Fit ``eps`` and ``rho`` to terrain/sky ratios ``ratios[i]`` sampled at ``distances_m[i]``
    (one distance per line, or one per sample)."""
    if len(ratios) != len(distances_m):
        raise DilutionError(f"{len(ratios)} dilution line(s) but {len(distances_m)} distance(s)")
    xs, ys = [], []
    for i, (r, d) in enumerate(zip(ratios, distances_m)):
        r = np.asarray(r, float).ravel()
        d = np.broadcast_to(np.asarray(d, float), r.shape).ravel()
        ok = np.isfinite(r) & (r < 1.0) & (r > 0.0) & np.isfinite(d)
        if not ok.any():
            raise DilutionError(f"dilution line {i}: no sample darker than the sky (is it on terrain?)")
        xs.append(d[ok])
        ys.append(np.log1p(-r[ok]))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if np.ptp(x) <= 0:
        raise DilutionError("light dilution needs lines at two or more different distances")
    # ln(1 - r) has the noise of r divided by (1 - r): weight each sample by (1 - r)
    w = np.exp(y)
    slope, intercept = np.polyfit(x, y, 1, w=w)
    resid = y - (slope * x + intercept)
    ybar = float(np.average(y, weights=w ** 2))
    var = float(np.average((y - ybar) ** 2, weights=w ** 2))
    r2 = 1.0 - float(np.average(resid ** 2, weights=w ** 2)) / var if var > 0 else float("nan")
    eps = float(np.clip(-slope, *EPS_RANGE))
    if eps != -slope:
        log.warning("light dilution: fitted extinction %.3g 1/m clipped to %.3g (range %s)", -slope, eps, EPS_RANGE)
    rho = float(1.0 - math.exp(intercept))
    return DilutionFit(eps, rho, int(x.size), r2)


@dataclasses.dataclass
class DilutionSetup:
    """What a user knows: dilution lines with distances, and the plume distance."""

    lines: list[PCSLine]
    distances_m: list            # per line: a distance, or (start, end) varying linearly along it
    plume_distance_m: float
    tau_thresh: float = 0.01
    extinction_per_m: tuple[float, float] | None = None   # (on, off) if given instead of fitted

    @classmethod
    def from_settings(cls, settings) -> "DilutionSetup":
        base = Path(settings.source).parent if getattr(settings, "source", None) else None
        spec = settings["dil_lines"]
        distances = settings["dil_distances_m"]
        plume_d = settings["plume_distance_m"]
        ext = settings["dil_extinction_per_m"]
        if ext is not None:
            ext = (float(ext[0]), float(ext[1]))
        if not spec and ext is not None:
            if plume_d is None:
                raise DilutionError("light dilution needs the plume distance: set plume_distance_m")
            return cls([], [], float(plume_d), float(settings["tau_thresh"]), ext)
        if isinstance(spec, (str, os.PathLike)) and str(spec).endswith(".json"):
            path = _resolve(spec, base)
            try:
                meta = json.loads(path.read_text())
                entries = meta["lines"]
                files = [_resolve(e["file"], path.parent) for e in entries]
                if distances is None:
                    distances = [float(e["distance_m"]) for e in entries]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DilutionError(f"dil_lines: cannot read {path}: {exc}") from None
            if plume_d is None:
                plume_d = meta.get("plume_distance_m")
        elif isinstance(spec, (list, tuple)) and spec:
            files = [_resolve(f, base) for f in spec]
        else:
            raise DilutionError("use_light_dilution = true needs dil_lines: a list of line files or a "
                                "light_dilution.json")
        try:
            lines = [read_pcs_line(f) for f in files]
        except GeometryFileError as exc:
            raise DilutionError(f"dil_lines: {exc}") from None
        if distances is None:
            raise DilutionError("dil_lines given without distances: set dil_distances_m (one per line)")
        if len(distances) != len(lines):
            raise DilutionError(f"dil_distances_m has {len(distances)} value(s) for {len(lines)} dil_lines")
        if plume_d is None:
            raise DilutionError("light dilution needs the plume distance: set plume_distance_m")
        return cls(lines, [_distance(d) for d in distances], float(plume_d), float(settings["tau_thresh"]), ext)


def _distance(value):
    if isinstance(value, (list, tuple)):
        return (float(value[0]), float(value[1]))
    return float(value)


def _resolve(path, base: Path | None) -> Path:
    p = Path(path)
    return base / p if base is not None and not p.is_absolute() else p


def sky_surface(image: np.ndarray, reduce: int = 8, iterations: int = 5, keep_frac: float = 0.9) -> np.ndarray:
    """Sky radiance over the whole image from its sky pixels (module docstring):
    ``S = V(r) * G(x, min(y, y_h(x)))`` with a radial vignetting ``V`` (even polynomial of
    the distance to the image centre, order 6), a plane ``G`` for the sky gradient, and
    ``y_h(x)`` the lowest sky row of each column (the horizon: below it the sky radiance of
    the horizon continues).  Fitted on a reduced image by alternating least squares, with
    pixels below ``keep_frac`` of the current model (terrain, snow, plume, specks) left out."""
    import cv2

    img = np.asarray(image, np.float32)
    h, w = img.shape
    hs, ws = max(4, h // reduce), max(4, w // reduce)
    small = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA).astype(np.float64)

    def grids(ny, nx):
        yy, xx = np.mgrid[0:ny, 0:nx]
        xn = (xx + 0.5) / nx * 2 - 1
        yn = (yy + 0.5) / ny * 2 - 1
        r2 = (xn ** 2 * w ** 2 + yn ** 2 * h ** 2) / float(w ** 2 + h ** 2)
        return xn, yn, r2

    xn, yn, r2 = grids(hs, ws)
    radial = np.stack([r2 ** k for k in range(4)], axis=-1)
    values = small
    keep = values >= np.percentile(values, 30)          # first guess: the brighter part is sky
    vign = np.ones_like(values)
    horizon = np.ones(ws)
    for _ in range(iterations):
        if keep.sum() < 20:
            raise DilutionError("light dilution: too few sky pixels to model the sky radiance")
        horizon = _horizon(keep, yn)
        yc = np.minimum(yn, horizon[None, :])
        plane = np.stack([np.ones_like(xn), xn, yc], axis=-1)
        for _ in range(4):
            g_coef, *_ = np.linalg.lstsq(plane[keep], values[keep] / vign[keep], rcond=None)
            sky_g = plane @ g_coef
            v_coef, *_ = np.linalg.lstsq(radial[keep], values[keep] / sky_g[keep], rcond=None)
            vign = radial @ (v_coef / v_coef[0])
        keep = values >= keep_frac * vign * sky_g
    xf, yf, r2f = grids(h, w)
    hz = np.interp((np.arange(w) + 0.5) / w * 2 - 1, (np.arange(ws) + 0.5) / ws * 2 - 1, horizon)
    out = (np.stack([r2f ** k for k in range(4)], axis=-1) @ (v_coef / v_coef[0])) * (
        g_coef[0] + g_coef[1] * xf + g_coef[2] * np.minimum(yf, hz[None, :]))
    return np.maximum(out, np.finfo(np.float32).eps).astype(np.float32)


def _horizon(sky: np.ndarray, yn: np.ndarray) -> np.ndarray:
    """Lowest sky row (normalised y) of each column; columns without sky take their neighbours'."""
    rows = np.where(sky, yn, -np.inf).max(axis=0)
    ok = np.isfinite(rows)
    if not ok.any():
        return np.ones(sky.shape[1])
    idx = np.arange(sky.shape[1])
    return np.interp(idx, idx[ok], rows[ok])


class LightDilution:
    """Fits (once) and applies the correction to dark-corrected on/off intensities."""

    def __init__(self, setup: DilutionSetup, shape: tuple[int, int]) -> None:
        self.setup = setup
        self.samplers = [LineSampler(ln, shape) for ln in setup.lines]
        self.eps: dict[str, float] | None = None
        self.fits: dict[str, DilutionFit] = {}
        if setup.extinction_per_m is not None:
            self.eps = {"on": setup.extinction_per_m[0], "off": setup.extinction_per_m[1]}

    def fit(self, intensity: dict[str, np.ndarray], sky: dict[str, np.ndarray]) -> dict[str, float]:
        """Fit eps per band from intensities and the sky radiance images (``I_A``) per band."""
        eps = {}
        dists = [np.linspace(d[0], d[1], s.n) if isinstance(d, tuple) else d
                 for s, d in zip(self.samplers, self.setup.distances_m)]
        for band in ("on", "off"):
            ratios = [s.sample(intensity[band]) / s.sample(sky[band]) for s in self.samplers]
            f = fit_extinction(ratios, dists)
            self.fits[band] = f
            eps[band] = f.eps_per_m
        log.info("light dilution: eps_on %.3g, eps_off %.3g 1/m (terrain/sky %.3f, %.3f)", eps["on"], eps["off"],
                 self.fits["on"].rho, self.fits["off"].rho)
        self.eps = eps
        return eps

    def correct(self, intensity: np.ndarray, background: np.ndarray, band: str) -> np.ndarray:
        """Correct ``intensity`` in place where tau exceeds ``tau_thresh``; returns it."""
        t = math.exp(-self.eps[band] * self.setup.plume_distance_m)
        if t >= 1.0:
            return intensity
        mask = background > intensity * math.exp(self.setup.tau_thresh)      # tau > tau_thresh
        corrected = (intensity[mask] - background[mask] * np.float32(1.0 - t)) / np.float32(t)
        intensity[mask] = np.maximum(corrected, np.float32(np.finfo(np.float32).eps))
        return intensity

    def apply(self, fa: np.ndarray, fb: np.ndarray, model) -> None:
        """Fit on first use (sky radiance: :func:`sky_surface` of the clear-sky images, else
        of the frame), then correct both bands in place against the background of the chain
        (``model`` is the :class:`~pycam.processing.absorbance.AbsorbanceModel`)."""
        if self.eps is None:
            refs = model.clear_images or (fa, fb)
            amb = {}
            for band, img, ref in (("on", fa, refs[0]), ("off", fb, refs[1])):
                surface = sky_surface(ref)
                scale = np.mean(img[model.roi], dtype=np.float64) / np.mean(surface[model.roi], dtype=np.float64)
                amb[band] = surface * np.float32(scale)
            self.fit({"on": fa, "off": fb}, amb)
        bg_a, bg_b = model.background(fa, fb)
        self.correct(fa, bg_a, "on")
        self.correct(fb, bg_b, "off")
