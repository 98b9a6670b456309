"""Plume background and optical depths: tau_A, tau_B and AA = tau_A - tau_B.

Background modes (``bg_mode``; pyplis numbering where it exists):

* **1** (default) clear-sky image scaled on a sky region: ``tau = ln(I_bg / I)`` per band,
  then AA is shifted so that its mean over ``ambient_roi`` is 0 (pyplis mode 1 applies the
  same shift to the AA image; because the mean is linear this equals shifting each tau).
* **99** clear-sky image, no scaling (pyplis mode 99).
* **0** a 2-D polynomial surface fitted to plume-free pixels of each (vignetting-corrected)
  image is the background (pyplis mode 0); the pixels are ``surface_fit_rois`` (default: a
  frame 8 % wide round the image), the fit runs on a 1/8-size image.
* **7** PyCam's ``tau = ln(mean(I_vc in ambient_roi) / I_vc)``; I_vc = I / V.

Vignetting: in modes 1 and 99 plume and clear-sky images share the same V, which cancels in
``I_bg / I``, so it is not applied (saving two divisions per pair).

Speed: all work arrays are float32 and allocated once per image shape; the AA itself is
written into a caller-supplied ``out`` array (the pipeline cycles a small ring of them).
The fast path for AA needs a single ``log``: ``AA = ln(R * I_B / I_A) - offset`` with
``R = bg_A / bg_B`` precomputed.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from pycam.formats.image_pair import ImagePair
from pycam.processing.corrections import (INTENSITY_FLOOR, DarkLibrary, subtract_dark, vignetting_from_clear,
                                          warp_onto)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ClearSky:
    """Dark-corrected clear-sky intensities per band (float32), as used by bg modes 1/99 and V."""

    on: np.ndarray
    off: np.ndarray

    @classmethod
    def from_raw(cls, on: np.ndarray, off: np.ndarray, exposure_a_us: int | None = None,
                 exposure_b_us: int | None = None, darks: DarkLibrary | None = None) -> "ClearSky":
        """Dark-correct raw clear-sky frames (darks at their exposures when known)."""
        d_on = darks.get("on", exposure_a_us or 0) if darks is not None else None
        d_off = darks.get("off", exposure_b_us or 0) if darks is not None else None
        return cls(subtract_dark(np.asarray(on), d_on), subtract_dark(np.asarray(off), d_off))

    @classmethod
    def coerce(cls, value, darks: DarkLibrary | None = None) -> "ClearSky | None":
        """Accept a ClearSky, or the raw clear-sky :class:`~pycam.formats.image_pair.ImagePair`
        (dark-corrected here at its exposures)."""
        if value is None or isinstance(value, ClearSky):
            return value
        if isinstance(value, ImagePair):
            return cls.from_raw(value.img_a, value.img_b, value.exposure_a_us, value.exposure_b_us, darks)
        raise TypeError(f"clear must be a ClearSky or a raw clear-sky ImagePair, got {type(value).__name__}")


def default_surface_rois(shape: tuple[int, int], frac: float = 0.08) -> list[list[int]]:
    h, w = shape
    bw, bh = max(1, int(w * frac)), max(1, int(h * frac))
    return [[0, 0, w, bh], [0, h - bh, w, h], [0, 0, bw, h], [w - bw, 0, w, h]]


class PolySurface:
    """Least-squares 2-D polynomial surface on masked pixels, fitted at reduced resolution."""

    def __init__(self, shape: tuple[int, int], rois: list[list[int]], order: int = 2, reduce: int = 8) -> None:
        h, w = shape
        self.shape = shape
        self.order = order
        self.reduce = reduce
        hs, ws = max(2, h // reduce), max(2, w // reduce)
        self.small_shape = (hs, ws)
        mask = np.zeros(shape, bool)
        for x0, y0, x1, y1 in rois:
            mask[y0:y1, x0:x1] = True
        import cv2

        small_mask = cv2.resize(mask.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA) > 0.999
        if small_mask.sum() < (order + 1) * (order + 2):
            raise ValueError("bg_mode 0: too few plume-free pixels for the surface fit (enlarge surface_fit_rois)")
        ys, xs = np.nonzero(small_mask)
        self._idx = (ys, xs)
        # normalised coordinates in [-1, 1] at the pixel centres of both grids
        self._terms = [(i, j) for i in range(order + 1) for j in range(order + 1 - i)]
        xn_s = (xs + 0.5) / ws * 2 - 1
        yn_s = (ys + 0.5) / hs * 2 - 1
        self._design = np.stack([xn_s ** i * yn_s ** j for i, j in self._terms], axis=1)
        xn = ((np.arange(w) + 0.5) / w * 2 - 1).astype(np.float32)
        yn = ((np.arange(h) + 0.5) / h * 2 - 1).astype(np.float32)
        self._xpow = [xn ** i for i in range(order + 1)]
        self._ypow = [yn ** j for j in range(order + 1)]

    def fit(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        import cv2

        small = cv2.resize(image, (self.small_shape[1], self.small_shape[0]), interpolation=cv2.INTER_AREA)
        coeffs, *_ = np.linalg.lstsq(self._design, small[self._idx].astype(np.float64), rcond=None)
        if out is None:
            out = np.empty(self.shape, np.float32)
        out.fill(0)
        for c, (i, j) in zip(coeffs, self._terms):
            out += np.float32(c) * np.outer(self._ypow[j], self._xpow[i])
        np.maximum(out, INTENSITY_FLOOR, out=out)
        return out


@dataclasses.dataclass
class AbsorbanceResult:
    aa: np.ndarray
    tau_a: np.ndarray | None
    tau_b: np.ndarray | None
    intensity_a: np.ndarray   # dark-corrected on-band (work buffer: copy if kept)


class AbsorbanceModel:
    """Turns raw A/B frames into AA (and optionally tau_A, tau_B) with preallocated buffers."""

    def __init__(self, shape: tuple[int, int], *, bg_mode: int = 1, ambient_roi=(0, 0, 60, 60),
                 darks: DarkLibrary | None = None, clear: ClearSky | None = None,
                 warp: np.ndarray | None = None, use_vign_corr: bool = True,
                 surface_rois: list[list[int]] | None = None, surface_order: int = 2) -> None:
        self.shape = tuple(shape)
        self.darks = darks
        self.warp = warp
        h, w = self.shape
        x0, y0, x1, y1 = ambient_roi
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"ambient_roi {list(ambient_roi)} lies outside the {w}x{h} image")
        self.roi = (slice(y0, y1), slice(x0, x1))
        if bg_mode in (1, 99) and clear is None:
            log.warning("bg_mode %d needs clear-sky images; none given: using bg_mode 7 "
                        "(ln(mean(ambient_roi)/I))", bg_mode)
            bg_mode = 7
        self.bg_mode = bg_mode
        #: optional light-dilution correction (:class:`pycam.processing.light_dilution.LightDilution`),
        #: applied to the dark-corrected intensities before tau
        self.dilution = None
        self._fa = np.empty(self.shape, np.float32)
        self._fb = np.empty(self.shape, np.float32)
        self._fb_reg = np.empty(self.shape, np.float32) if warp is not None else None
        self._tmp = np.empty(self.shape, np.float32)
        self._bg_a = self._bg_b = None
        self.ratio_bg = None        # R = bg_A / bg_B  (modes 1, 99)
        self.vign_a = self.vign_b = None
        if clear is not None:
            if clear.on.shape != self.shape or clear.off.shape != self.shape:
                raise ValueError(f"clear-sky images {clear.on.shape}/{clear.off.shape} do not match "
                                 f"the plume images {self.shape}")
            bg_a = np.asarray(clear.on, np.float32)
            bg_b = np.asarray(clear.off, np.float32)
            if warp is not None:
                bg_b = warp_onto(bg_b, warp)
            bg_b = np.maximum(bg_b, INTENSITY_FLOOR)
            bg_a = np.maximum(bg_a, INTENSITY_FLOOR)
            self._bg_a, self._bg_b = bg_a, bg_b
            self.ratio_bg = (bg_a / bg_b).astype(np.float32)
            if use_vign_corr:
                self.vign_a = vignetting_from_clear(bg_a)
                self.vign_b = vignetting_from_clear(bg_b)
        self.vign_ratio = (self.vign_a / self.vign_b).astype(np.float32) if self.vign_a is not None else None
        self.surface = None
        if bg_mode == 0:
            self.surface = PolySurface(self.shape, surface_rois or default_surface_rois(self.shape), surface_order)
            self._bgs_a = np.empty(self.shape, np.float32)
            self._bgs_b = np.empty(self.shape, np.float32)

    def _corrected(self, raw_a, raw_b, exposure_a_us, exposure_b_us):
        if raw_a.shape != self.shape or raw_b.shape != self.shape:
            raise ValueError(f"image shapes {raw_a.shape}/{raw_b.shape} differ from the model's {self.shape}")
        d_a = self.darks.get("on", exposure_a_us) if self.darks is not None else None
        d_b = self.darks.get("off", exposure_b_us) if self.darks is not None else None
        fa = subtract_dark(raw_a, d_a, self._fa)
        fb = subtract_dark(raw_b, d_b, self._fb)
        if self.warp is not None:
            fb = warp_onto(fb, self.warp, self._fb_reg)
            np.maximum(fb, INTENSITY_FLOOR, out=fb)
        return fa, fb

    def background(self, fa: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The plume-free intensity images (on, off) this mode assumes for dark-corrected ``fa, fb``."""
        out = []
        for img, clear, vign in ((fa, self._bg_a, self.vign_a), (fb, self._bg_b, self.vign_b)):
            if self.bg_mode == 7:   # ln(mean(ambient_roi of I/V) * V / I)
                if vign is None:
                    out.append(np.full(self.shape, np.mean(img[self.roi], dtype=np.float64), np.float32))
                else:
                    out.append(vign * np.float32(np.mean(img[self.roi] / vign[self.roi], dtype=np.float64)))
            elif self.bg_mode == 99:
                out.append(clear)
            elif self.bg_mode == 1:
                scale = np.mean(img[self.roi], dtype=np.float64) / np.mean(clear[self.roi], dtype=np.float64)
                out.append(clear * np.float32(scale))
            else:   # 0: the fitted surface (on I / V), times V
                v = vign if vign is not None else np.float32(1)
                out.append(self.surface.fit(img / v) * v)
        return out[0], out[1]

    @property
    def clear_images(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Dark-corrected (and registered) clear-sky images (on, off), or None."""
        return None if self._bg_a is None else (self._bg_a, self._bg_b)

    def compute(self, raw_a: np.ndarray, raw_b: np.ndarray, exposure_a_us: int = 0, exposure_b_us: int = 0,
                *, out: np.ndarray | None = None, want_tau: bool = False) -> AbsorbanceResult:
        """AA (float32, written to ``out``) and, if ``want_tau``, new tau_A/tau_B arrays."""
        fa, fb = self._corrected(raw_a, raw_b, exposure_a_us, exposure_b_us)
        if self.dilution is not None:
            self.dilution.apply(fa, fb, self)
        if out is None:
            out = np.empty(self.shape, np.float32)
        tmp = self._tmp
        mode = self.bg_mode
        tau_a = tau_b = None
        if mode in (1, 99):
            # AA = ln(R * I_B / I_A)
            np.divide(fb, fa, out=tmp)
            np.multiply(tmp, self.ratio_bg, out=tmp)
            np.log(tmp, out=out)
            if want_tau:
                tau_a = np.log(self._bg_a / fa)
                tau_b = np.log(self._bg_b / fb)
        elif mode == 7:
            # tau = ln(mean_roi(I/V) * V / I)
            if self.vign_a is not None:
                m_a = float(np.mean(fa[self.roi] / self.vign_a[self.roi], dtype=np.float64))
                m_b = float(np.mean(fb[self.roi] / self.vign_b[self.roi], dtype=np.float64))
                np.divide(fb, fa, out=tmp)
                np.multiply(tmp, self.vign_ratio, out=tmp)
            else:
                m_a = float(np.mean(fa[self.roi], dtype=np.float64))
                m_b = float(np.mean(fb[self.roi], dtype=np.float64))
                np.divide(fb, fa, out=tmp)
            np.multiply(tmp, np.float32(m_a / m_b), out=tmp)
            np.log(tmp, out=out)
            if want_tau:
                va = self.vign_a if self.vign_a is not None else np.float32(1)
                vb = self.vign_b if self.vign_b is not None else np.float32(1)
                tau_a = np.log(m_a * va / fa)
                tau_b = np.log(m_b * vb / fb)
        elif mode == 0:
            ia, ib = fa, fb
            if self.vign_a is not None:
                ia = fa / self.vign_a
                ib = fb / self.vign_b
            bga = self.surface.fit(ia, self._bgs_a)
            bgb = self.surface.fit(ib, self._bgs_b)
            np.divide(bga, ia, out=tmp)
            np.log(tmp, out=out)
            np.divide(bgb, ib, out=tmp)
            np.log(tmp, out=tmp)
            if want_tau:
                tau_a = out.copy()
                tau_b = tmp.copy()
            np.subtract(out, tmp, out=out)
        else:
            raise ValueError(f"unknown bg_mode {mode}")
        if mode == 1:
            offset = np.float32(np.mean(out[self.roi], dtype=np.float64))
            np.subtract(out, offset, out=out)
            if want_tau:
                tau_a -= np.float32(np.mean(tau_a[self.roi], dtype=np.float64))
                tau_b -= np.float32(np.mean(tau_b[self.roi], dtype=np.float64))
        if want_tau:
            tau_a = tau_a.astype(np.float32, copy=False)
            tau_b = tau_b.astype(np.float32, copy=False)
        return AbsorbanceResult(out, tau_a, tau_b, fa)
