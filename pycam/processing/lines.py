"""Plume cross-section (PCS) lines on the image: sampling points, normals, offsets.

Conventions follow pyplis's ``LineOnImage`` so results compare one to one:

* a line from (x0, y0) to (x1, y1) is sampled at ``n = round(length)`` points evenly spaced
  from start to stop (inclusive), values by bilinear interpolation (``map_coordinates``
  order 1);
* the two normals are ``(-dy, dx)`` and ``(dy, -dx)`` (normalised); ``left`` is the first
  and ``right`` the second, swapped when ``dx * dy < 0`` (pyplis's rule);
* flux through the line counts positive along the chosen normal.

Lines are given in the coordinates of a 648x486 frame (PyCam's line files); for other
image sizes they are scaled by ``width / 648``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from pycam.formats.geometry import PCSLine

REFERENCE_WIDTH = 648


@dataclasses.dataclass
class LineSampler:
    """Sampling points of one PCS line on an image of a given shape."""

    line: PCSLine
    shape: tuple[int, int]
    x: np.ndarray = dataclasses.field(init=False)
    y: np.ndarray = dataclasses.field(init=False)
    normal: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        h, w = self.shape
        scale = w / REFERENCE_WIDTH
        x0, y0, x1, y1 = (self.line.x0 * scale, self.line.y0 * scale, self.line.x1 * scale, self.line.y1 * scale)
        dx, dy = x1 - x0, y1 - y0
        n = int(round(math.hypot(dx, dy)))
        if n < 2:
            raise ValueError(f"PCS line {self.line.name!r} is shorter than 2 pixels")
        self.x = np.linspace(x0, x1, n)
        self.y = np.linspace(y0, y1, n)
        if (self.x.min() < 0 or self.y.min() < 0 or self.x.max() > w - 1 or self.y.max() > h - 1):
            raise ValueError(f"PCS line {self.line.name!r} ({self.line.x0},{self.line.y0})-"
                             f"({self.line.x1},{self.line.y1}) leaves the {w}x{h} image")
        v1 = np.array([-dy, dx]) / math.hypot(dx, dy)
        v2 = -v1
        left, right = (v2, v1) if dx * dy < 0 else (v1, v2)
        self.normal = left if self.line.orientation == "left" else right
        self._cache: dict = {}

    @property
    def name(self) -> str:
        return self.line.name

    @property
    def n(self) -> int:
        return len(self.x)

    def _weights(self, shape: tuple[int, int], origin: tuple[int, int]):
        """Indices and bilinear weights for a crop of ``shape`` at ``origin`` (cached: the
        pipeline alternates between full images and a few flow boxes)."""
        key = (shape[0], shape[1], origin[0], origin[1])
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        h, w = shape
        xs = self.x - origin[0]
        ys = self.y - origin[1]
        ix = np.floor(xs).astype(np.intp)
        iy = np.floor(ys).astype(np.intp)
        fx = xs - ix
        fy = ys - iy
        inside = (ix >= 0) & (iy >= 0) & (ix < w) & (iy < h)
        ix0 = np.clip(ix, 0, w - 1)
        iy0 = np.clip(iy, 0, h - 1)
        ix1 = np.minimum(ix0 + 1, w - 1)
        iy1 = np.minimum(iy0 + 1, h - 1)
        weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)
        cached = (iy0 * w + ix0, iy0 * w + ix1, iy1 * w + ix0, iy1 * w + ix1, weights, inside)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = cached
        return cached

    def bbox(self) -> tuple[int, int, int, int]:
        """Integer box ``(x0, y0, x1, y1)`` (exclusive end) holding all sampling points and their neighbours."""
        return (int(math.floor(self.x.min())), int(math.floor(self.y.min())),
                int(math.floor(self.x.max())) + 2, int(math.floor(self.y.max())) + 2)

    def inside(self, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """True for sampling points that a crop of ``shape`` at ``origin`` covers."""
        return self._weights(tuple(shape[:2]), tuple(origin))[5]

    def sample(self, array: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Bilinear values along the line; ``array`` (2-D) may be a crop whose top-left is
        ``origin`` (points outside the crop get edge values: mask them with :meth:`inside`)."""
        i00, i01, i10, i11, (w00, w01, w10, w11), _ = self._weights(array.shape[:2], tuple(origin))
        if array.flags.c_contiguous:
            flat = array.reshape(-1)
            a, b, c, d = flat[i00], flat[i01], flat[i10], flat[i11]
        else:
            w = array.shape[1]
            a, b, c, d = (array[i // w, i % w] for i in (i00, i01, i10, i11))
        return (a * w00 + b * w01) + (c * w10 + d * w11)

    def sample_block_mean(self, array: np.ndarray, size: int) -> np.ndarray:
        """Mean of the ``size`` x ``size`` pixels of the full image ``array`` round each sampling
        point (the block centred on the point's bilinear cell, clipped to the image); ``size`` 1:
        :meth:`sample`.  With ``size = width / 648`` this is the value the point would have on
        the binned 648-px frame (same pixel area, same noise)."""
        if size <= 1:
            return self.sample(array)
        key = ("block", array.shape[0], array.shape[1], size)
        idx = self._cache.get(key)
        if idx is None:
            h, w = array.shape[:2]
            offs = np.arange(size) - (size - 1) // 2
            ix = np.clip(np.floor(self.x).astype(np.intp)[None, :] + offs[:, None], 0, w - 1)
            iy = np.clip(np.floor(self.y).astype(np.intp)[None, :] + offs[:, None], 0, h - 1)
            idx = (iy[:, None, :] * w + ix[None, :, :]).reshape(size * size, -1)
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = idx
        return np.asarray(array).reshape(-1)[idx].mean(axis=0, dtype=np.float64)

    def sample_vectors(self, field: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear (dx, dy) along the line from an (h, w, 2) flow field (crop at ``origin``)."""
        i00, i01, i10, i11, (w00, w01, w10, w11), _ = self._weights(field.shape[:2], tuple(origin))
        flat = np.ascontiguousarray(field).reshape(-1, 2)
        out = (flat[i00] * w00[:, None] + flat[i01] * w01[:, None]) + (flat[i10] * w10[:, None]
                                                                        + flat[i11] * w11[:, None])
        return out[:, 0], out[:, 1]


def offset_line(line: PCSLine, pixels: float, name: str | None = None) -> PCSLine:
    """A parallel line shifted ``pixels`` along its positive normal (pyplis ``LineOnImage.offset``:
    the shift is truncated to whole pixels)."""
    dx, dy = _normal(line) * pixels
    return PCSLine(line.x0 + int(dx), line.y0 + int(dy), line.x1 + int(dx), line.y1 + int(dy),
                   line.orientation, name or f"{line.name}_offset{int(pixels)}")


def _normal(line: PCSLine) -> np.ndarray:
    dx, dy = float(line.x1 - line.x0), float(line.y1 - line.y0)
    v1 = np.array([-dy, dx]) / math.hypot(dx, dy)
    left, right = (-v1, v1) if dx * dy < 0 else (v1, -v1)
    return left if line.orientation == "left" else right


def lines_bbox(samplers, shape: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """Bounding box of several lines plus ``margin`` pixels, clipped to the image."""
    h, w = shape
    boxes = [s.bbox() for s in samplers]
    x0 = max(0, min(b[0] for b in boxes) - margin)
    y0 = max(0, min(b[1] for b in boxes) - margin)
    x1 = min(w, max(b[2] for b in boxes) + margin)
    y1 = min(h, max(b[3] for b in boxes) + margin)
    return x0, y0, x1, y1
