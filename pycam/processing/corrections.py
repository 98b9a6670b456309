"""Image corrections before the optical depths: dark, vignetting and registration.

* :class:`DarkLibrary` averages ``Dark`` frames per band and exposure (exposures equal to
  ``sig_figs`` significant figures share darks, as PyCam matches them).  For an exposure
  without its own dark it uses the dark/offset model of pyplis: with darks at two or more
  exposures, ``D(t) = O + (D_L - O) * (t - t_O) / (t_L - t_O)`` (O the shortest, L the
  longest); with one exposure only, that dark as is (with a warning).
* :func:`vignetting_from_clear`: ``V = Clear / max(Clear)`` from dark-corrected clear sky.
* :func:`estimate_registration` (OpenCV ECC, Euclidean, 500 iterations, eps 1e-10) and
  :func:`warp_onto` warp the off-band image onto the on-band one; :func:`save_warp` /
  :func:`load_warp` keep the 2x3 matrix as PyCam's ``image_reg.npy``.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from pycam.formats.atomic import atomic_write
from pycam.formats.images import ImageFileError

log = logging.getLogger(__name__)

#: Smallest intensity kept after dark subtraction (values <= 0 become this).
INTENSITY_FLOOR = float(np.finfo(np.float32).eps)


def round_sig(value: float, figures: int) -> float:
    """``value`` rounded to ``figures`` significant figures (PyCam's dark matching)."""
    if value == 0:
        return 0.0
    return round(value, figures - 1 - int(math.floor(math.log10(abs(value)))))


class DarkLibrary:
    """Averaged dark frames per (band, exposure); see the module docstring for the model."""

    def __init__(self, sig_figs: int = 2) -> None:
        self.sig_figs = sig_figs
        self._sums: dict[tuple[str, float], np.ndarray] = {}
        self._counts: dict[tuple[str, float], int] = {}
        self._exposures: dict[tuple[str, float], list[int]] = {}
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._warned: set[tuple[str, int]] = set()

    def __len__(self) -> int:
        return sum(self._counts.values())

    def bands(self) -> set[str]:
        return {band for band, _ in self._counts}

    def add(self, band: str, exposure_us: int, image: np.ndarray) -> None:
        if band not in ("on", "off"):
            raise ValueError(f"band must be 'on' or 'off', got {band!r}")
        key = (band, round_sig(float(exposure_us), self.sig_figs))
        img = np.asarray(image, dtype=np.float64)
        if key in self._sums:
            if self._sums[key].shape != img.shape:
                raise ValueError(f"dark for {band} at {exposure_us} us has shape {img.shape}, "
                                 f"others {self._sums[key].shape}")
            self._sums[key] += img
            self._counts[key] += 1
            self._exposures[key].append(int(exposure_us))
        else:
            self._sums[key] = img.copy()
            self._counts[key] = 1
            self._exposures[key] = [int(exposure_us)]
        self._cache.clear()

    @classmethod
    def from_records(cls, records: Iterable, sig_figs: int = 2,
                     problems: list[str] | None = None) -> "DarkLibrary":
        """Build from :class:`~pycam.processing.archive.ImageRecord` objects of type ``Dark``
        (others are ignored; unreadable files are reported in ``problems`` and skipped)."""
        from pycam.processing.archive import read_record

        lib = cls(sig_figs)
        for rec in records:
            if rec.frame_type != "Dark":
                continue
            try:
                lib.add(rec.band, rec.exposure_us, read_record(rec))
            except ImageFileError as exc:
                log.warning("skipping dark %s", exc)
                if problems is not None:
                    problems.append(str(exc))
        return lib

    @classmethod
    def from_arrays(cls, darks: dict, sig_figs: int = 2) -> "DarkLibrary":
        """From ``{band: array}`` (one dark per band, any exposure) or ``{(band, exposure_us): array}``."""
        lib = cls(sig_figs)
        for key, img in darks.items():
            if isinstance(key, tuple):
                lib.add(key[0], int(key[1]), img)
            else:
                lib.add(key, 0, img)
        return lib

    def _band_keys(self, band: str) -> list[tuple[str, float]]:
        return sorted((k for k in self._counts if k[0] == band), key=lambda k: k[1])

    def get(self, band: str, exposure_us: int) -> np.ndarray | None:
        """The dark (float32) for this band and exposure, or None if the band has no darks."""
        cache_key = (band, int(exposure_us))
        if cache_key in self._cache:
            return self._cache[cache_key]
        keys = self._band_keys(band)
        if not keys:
            return None
        target = round_sig(float(exposure_us), self.sig_figs)
        exact = [k for k in keys if k[1] == target]
        if exact or (len(keys) == 1 and keys[0][1] == 0):
            k = exact[0] if exact else keys[0]
            dark = (self._sums[k] / self._counts[k]).astype(np.float32)
        elif len(keys) == 1:
            k = keys[0]
            if cache_key not in self._warned:
                log.warning("no %s-band dark at %d us: using the only one (%d us)", band, exposure_us,
                            self._exposures[k][0])
                self._warned.add(cache_key)
            dark = (self._sums[k] / self._counts[k]).astype(np.float32)
        else:
            ko, kl = keys[0], keys[-1]
            t_o = float(np.mean(self._exposures[ko]))
            t_l = float(np.mean(self._exposures[kl]))
            d_o = self._sums[ko] / self._counts[ko]
            d_l = self._sums[kl] / self._counts[kl]
            dark = (d_o + (d_l - d_o) * (float(exposure_us) - t_o) / (t_l - t_o)).astype(np.float32)
        self._cache[cache_key] = dark
        return dark


def subtract_dark(image: np.ndarray, dark: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
    """``image - dark`` as float32 with values <= 0 set to :data:`INTENSITY_FLOOR`."""
    if out is None:
        out = np.empty(image.shape, np.float32)
    if dark is None:
        np.copyto(out, image, casting="unsafe")
    else:
        np.subtract(image, dark, out=out, casting="unsafe")
    np.maximum(out, INTENSITY_FLOOR, out=out)
    return out


def vignetting_from_clear(clear: np.ndarray) -> np.ndarray:
    """``V = Clear / max(Clear)`` (dark-corrected clear sky in, float32 in (0, 1] out)."""
    c = np.asarray(clear, np.float64)
    peak = float(np.max(c))
    if not np.isfinite(peak) or peak <= 0:
        raise ValueError("clear-sky image has no positive pixels: cannot derive a vignetting mask")
    v = np.maximum(c / peak, INTENSITY_FLOOR)
    return v.astype(np.float32)


def estimate_registration(reference_a: np.ndarray, image_b: np.ndarray, iterations: int = 500,
                          eps: float = 1e-10, initial: np.ndarray | None = None) -> np.ndarray:
    """2x3 Euclidean warp mapping on-band pixel coordinates to off-band ones (OpenCV ECC).

    Use it with :func:`warp_onto` to bring the off-band image onto the on-band grid.
    Raises ValueError if ECC does not converge.
    """
    import cv2

    a = np.asarray(reference_a, np.float32)
    b = np.asarray(image_b, np.float32)
    a = (a - a.mean()) / (a.std() or 1.0)
    b = (b - b.mean()) / (b.std() or 1.0)
    warp = np.eye(2, 3, dtype=np.float32) if initial is None else np.asarray(initial, np.float32).copy()
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, eps)
    try:
        _, warp = cv2.findTransformECC(a, b, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 5)
    except cv2.error as exc:
        raise ValueError(f"image registration (ECC) failed: {exc}") from None
    return warp


def warp_onto(image_b: np.ndarray, warp: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Warp the off-band image onto the on-band grid with a matrix from :func:`estimate_registration`."""
    import cv2

    h, w = image_b.shape
    src = image_b if image_b.dtype == np.float32 else image_b.astype(np.float32)
    return cv2.warpAffine(src, np.asarray(warp, np.float32), (w, h), dst=out,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def save_warp(path: str | os.PathLike[str], warp: np.ndarray) -> Path:
    arr = np.asarray(warp, np.float64)
    if arr.shape != (2, 3):
        raise ValueError(f"warp matrix must be 2x3, got {arr.shape}")
    return atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))


def load_warp(path: str | os.PathLike[str]) -> np.ndarray:
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{p}: cannot read a warp matrix: {exc}") from None
    if arr.shape != (2, 3) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{p}: expected a finite 2x3 warp matrix, got shape {arr.shape}")
    return arr.astype(np.float32)
