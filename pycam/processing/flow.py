"""Farneback optical flow between consecutive AA images, on the region the emission rates need.

Like pyplis's ``OptflowFarneback``, the AA images are byte-scaled to uint8 over a contrast
range, then ``cv2.calcOpticalFlowFarneback`` runs with the Gaussian window flag and the
settings ``pyr_scale, levels, winsize, iterations, poly_n, poly_sigma`` (pyplis defaults 0.5,
4, 20, 5, 5, 1.1).  Raw float AA would give zero flow.

Contrast range (``flow_contrast``):

* ``auto`` (default): from where the emission rates are measured, with robust statistics
  (:func:`robust_contrast`).  The pixels are those of PyCam's flow ROI ``roi_abs`` when it is
  set, else a band of +-``winsize`` px round the PCS lines; non-finite pixels and a frame of
  :data:`EDGE_FRACTION` of the width round the image (registration borders) are left out.
  Pixels whose column reaches ``min_cd`` are the plume, the rest the sky: the range runs from
  the sky median minus 3 robust sigma to the 99th percentile of the plume.  Terrain, snow,
  hot pixels and registration borders outside that region, or a few of them inside it,
  cannot set the range (the whole-frame min/max let them flatten a real plume to a few grey
  levels, and Farneback then read ~0 m/s).
* ``frame``: pyplis's auto-update, min and max of the first image of the pair over the whole
  frame (kept to reproduce pyplis exactly; fragile on real scenes).
* ``[aa_min, aa_max]``: fixed.

Whatever the mode, :class:`Contrast` carries the sky level, sky noise and plume level of the
region, from which :mod:`pycam.processing.quality` flags a plume that does not stand out of
the noise (or that a fixed range squeezes into a few grey levels).

Speed: unless ``flow_full_frame`` is set, the flow is computed only on a box: the line
samples that need it (all PCS line samples, or with ``flow_crop_to_plume`` only those whose
column reaches ``min_cd``) plus ``flow_roi_margin`` pixels.  The contrast range does not
depend on the box, so the 8-bit input inside the box is the same as on the full frame.

OpenCV drops pyramid levels whose image would be narrower than 32 px, so a thin crop loses
the coarse levels and with them the capture range for large displacements (a 100 px wide
box round two close vertical lines tracks 8 px per frame but fails at 12).  Two remedies:

* ``flow_coarse_init`` (default): a first Farneback pass on the whole frame reduced to about
  96 px wide (8x for 648x486, 32x for 2592x1944; INTER_AREA) supplies the large-scale motion; it is resampled onto
  the box and given to the run on the box as initial flow (``OPTFLOW_USE_INITIAL_FLOW``), so
  the box needs no coarse levels of its own and stays small.  On simulated plumes at 5-15
  m/s the emission rates (raw and hybrid) are within 0.1 % of full-frame flow.
* otherwise the box is grown to at least ``32 / pyr_scale**L`` px in both directions, L
  being the depth OpenCV uses on the full frame (3 on 648x486, so 257 px; 4 on 2592x1944).

Either way the result differs from full-frame flow only slightly (benchmarks/pipeline.py
measures it); ``flow_full_frame`` with ``flow_contrast: frame`` gives pyplis's behaviour exactly.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np


def bytescale(data: np.ndarray, cmin: float, cmax: float, out: np.ndarray | None = None) -> np.ndarray:
    """pyplis's ``bytescale``: ``(data - cmin) * 255 / (cmax - cmin) + 0.4999``, clipped, truncated to uint8."""
    if cmax < cmin:
        raise ValueError("contrast range: cmax must not be below cmin")
    if out is None:
        out = np.empty(data.shape, np.uint8)
    if cmax == cmin:
        out.fill(0)
        return out
    scale = 255.0 / (float(cmax) - float(cmin))
    tmp = (np.asarray(data, np.float64) - cmin) * scale + 0.4999
    np.clip(tmp, 0, 255, out=tmp)
    np.copyto(out, tmp, casting="unsafe")
    return out


@dataclasses.dataclass
class FlowField:
    """Displacements (pixels per image step) on a crop whose top-left is ``origin``."""

    flow: np.ndarray             # (h, w, 2) float32: dx, dy
    origin: tuple[int, int]      # (x0, y0) of the crop in the full image
    dt_s: float                  # time between the two images
    contrast: "Contrast | None" = None   # the bytescale range used (with its region statistics)

    @property
    def dx(self) -> np.ndarray:
        return self.flow[..., 0]

    @property
    def dy(self) -> np.ndarray:
        return self.flow[..., 1]

    @property
    def box(self) -> tuple[int, int, int, int]:
        x0, y0 = self.origin
        return x0, y0, x0 + self.flow.shape[1], y0 + self.flow.shape[0]


@dataclasses.dataclass(frozen=True)
class FarnebackParams:
    pyr_scale: float = 0.5
    levels: int = 4
    winsize: int = 20
    iterations: int = 5
    poly_n: int = 5
    poly_sigma: float = 1.1

    @classmethod
    def from_settings(cls, settings) -> "FarnebackParams":
        return cls(settings["pyr_scale"], settings["levels"], settings["winsize"], settings["iterations"],
                   settings["poly_n"], settings["poly_sigma"])


def contrast_range(aa: np.ndarray, contrast) -> tuple[float, float]:
    """The bytescale range: ``contrast`` if given as [min, max] or a :class:`Contrast`, else
    min/max of ``aa`` over the whole frame (pyplis's auto-update, ``flow_contrast: frame``)."""
    if isinstance(contrast, Contrast):
        return contrast.lo, contrast.hi
    if contrast is None or isinstance(contrast, str):
        finite = aa[np.isfinite(aa)]
        if finite.size == 0:
            return 0.0, 0.0
        return float(finite.min()), float(finite.max())
    return float(contrast[0]), float(contrast[1])


#: Fraction of the image width left out round the frame when estimating the contrast range
#: (registration borders, vignetted corners).
EDGE_FRACTION = 0.02
#: Fewest pixels a sky or plume subset needs to be used on its own.
MIN_SUBSET = 20
#: Percentile of the plume pixels taken as the top of the range (the top 1 % saturate).
PLUME_PERCENTILE = 99.0
#: Robust sigmas of the sky noise kept below the sky median.
SKY_SIGMAS = 3.0
#: Pixels whose local roughness exceeds this many times the median roughness of the region
#: are no sky or plume (hot/dead pixels, dark terrain where the AA is noise) and are left out.
ROUGHNESS_FACTOR = 6.0


def smooth_pixels(aa: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, float]:
    """Which of the pixels (ys, xs) (at least 1 px inside the image) are locally smooth: the
    absolute Laplacian ``|AA - mean of the 4 neighbours|`` is below ROUGHNESS_FACTOR times its
    median over the pixels.  Plume and sky are smooth at the pixel scale; specks and dark
    terrain (the difference of two large, noisy optical depths) are not.  Also returns the
    pixel noise sigma that median implies for white noise (NaN if unknown)."""
    with np.errstate(invalid="ignore"):
        lap = np.abs(aa[ys, xs] - 0.25 * (aa[ys - 1, xs] + aa[ys + 1, xs] + aa[ys, xs - 1] + aa[ys, xs + 1]))
    ok = np.isfinite(lap)
    if not ok.any():
        return ok, math.nan
    med = float(np.median(lap[ok]))
    noise = med / 0.6745 / math.sqrt(1.25)      # |N(0, 1.25 sigma^2)| has median 0.6745 * sqrt(1.25) sigma
    limit = ROUGHNESS_FACTOR * med
    return (ok & (lap <= limit) if limit > 0 else ok), noise


@dataclasses.dataclass(frozen=True)
class Contrast:
    """A bytescale range and the statistics of the region it was measured on."""

    lo: float
    hi: float
    source: str                   # "auto-lines", "auto-roi", "frame", "fixed"
    sky_level: float = math.nan   # median AA of the sky pixels of the region
    sky_noise: float = math.nan   # robust sigma (1.4826 MAD) of the sky pixels
    plume_level: float = math.nan  # 99th percentile AA of the plume pixels
    n_plume: int = 0
    plume_median: float = math.nan  # median AA of the plume pixels
    pixel_noise: float = math.nan   # pixel-to-pixel noise (robust, from the Laplacian), per 648-px-frame pixel

    @property
    def signal_to_noise(self) -> float:
        """(plume median - sky level) / pixel noise: how far the plume stands out of the noise
        Farneback sees (the median, so that noise peaks above min_cd do not pass for a plume;
        the pixel noise, so that smooth sky structure does not count as noise).  Falls back
        to the sky's spread when the pixel noise is unknown."""
        noise = self.pixel_noise if self.pixel_noise > 0 else self.sky_noise
        if not (noise > 0) or not math.isfinite(self.plume_median):
            return math.nan
        return (self.plume_median - self.sky_level) / noise

    @property
    def plume_grey_levels(self) -> float:
        """How many of the 255 grey levels the plume spans above the sky."""
        if not self.hi > self.lo or not math.isfinite(self.plume_level):
            return math.nan
        top = min(self.plume_level, self.hi)
        bottom = max(self.sky_level, self.lo)
        return max(0.0, (top - bottom) * 255.0 / (self.hi - self.lo))


def region_statistics(values: np.ndarray, plume: np.ndarray | None) -> tuple[float, float, float, int, float]:
    """(sky level, sky noise, plume level, n plume, plume median) of AA ``values`` (1-D,
    finite); ``plume`` marks the plume pixels (column >= min_cd), None when no columns are known."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan, 0, math.nan
    if plume is not None:
        plume = np.asarray(plume, bool)
        n_plume = int(np.count_nonzero(plume))
        if values.size - n_plume >= MIN_SUBSET:
            sky = values[~plume]
        else:                    # the plume fills the region: its lowest tenth stands for the sky
            sky = values[values <= np.percentile(values, 10)]
        gas = values[plume] if n_plume >= 5 else values
    else:
        sky = gas = values
        n_plume = 0
    sky_level = float(np.median(sky))
    sky_noise = 1.4826 * float(np.median(np.abs(sky - sky_level)))
    if not sky_noise > 0:
        sky_noise = float(np.std(sky)) or 1e-6
    plume_level = float(np.percentile(gas, PLUME_PERCENTILE))
    return sky_level, sky_noise, plume_level, n_plume, float(np.median(gas))


def robust_contrast(values: np.ndarray, plume: np.ndarray | None, source: str = "auto-lines") -> Contrast:
    """The ``auto`` range from AA ``values`` of the measurement region (see the module docstring)."""
    sky_level, sky_noise, plume_level, n_plume, plume_median = region_statistics(values, plume)
    if not math.isfinite(sky_level):
        return Contrast(0.0, 0.0, source)
    lo = sky_level - SKY_SIGMAS * sky_noise
    hi = plume_level
    if not hi > lo + 2 * SKY_SIGMAS * sky_noise:   # no plume above the noise: span the noise only
        hi = lo + 2 * SKY_SIGMAS * sky_noise
    return Contrast(lo, hi, source, sky_level, sky_noise, plume_level, n_plume, plume_median)


def with_statistics(lo: float, hi: float, source: str, values: np.ndarray, plume: np.ndarray | None) -> Contrast:
    """A given range (fixed or whole-frame) with the region statistics the quality flags need."""
    sky_level, sky_noise, plume_level, n_plume, plume_median = region_statistics(values, plume)
    return Contrast(float(lo), float(hi), source, sky_level, sky_noise, plume_level, n_plume, plume_median)


#: Width (px) the coarse first pass of ``flow_coarse_init`` aims at (factor a power of 2).
COARSE_TARGET_WIDTH = 96


def coarse_factor(width: int) -> int:
    """Power-of-two reduction giving a coarse image about COARSE_TARGET_WIDTH wide (8 for 648 px)."""
    return max(2, 2 ** int(round(math.log2(max(2.0, width / COARSE_TARGET_WIDTH)))))

#: OpenCV stops adding pyramid levels when the next level would be narrower than this.
OPENCV_MIN_PYRAMID_SIZE = 32


def effective_levels(shape: tuple[int, int], params: "FarnebackParams") -> int:
    """The number of pyramid levels OpenCV really uses on an image of ``shape``."""
    h, w = shape
    scale, k = 1.0, 0
    while k < params.levels:
        scale *= params.pyr_scale
        if w * scale < OPENCV_MIN_PYRAMID_SIZE or h * scale < OPENCV_MIN_PYRAMID_SIZE:
            break
        k += 1
    return k


def min_crop_side(full_shape: tuple[int, int], params: "FarnebackParams") -> int:
    """Smallest crop side that keeps the full frame's pyramid depth (and so its capture range)."""
    levels = effective_levels(full_shape, params)
    return int(math.ceil(OPENCV_MIN_PYRAMID_SIZE / params.pyr_scale ** levels)) + 1


def expand_box(box: tuple[int, int, int, int], min_side: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Grow ``box`` symmetrically to at least ``min_side`` in both directions, inside the image."""
    h, w = shape
    x0, y0, x1, y1 = box

    def grow(a: int, b: int, limit: int) -> tuple[int, int]:
        need = min(min_side, limit) - (b - a)
        if need > 0:
            a -= need // 2
            b += need - need // 2
            if a < 0:
                b, a = b - a, 0
            if b > limit:
                a, b = max(0, a - (b - limit)), limit
        return max(0, a), min(limit, b)

    x0, x1 = grow(x0, x1, w)
    y0, y1 = grow(y0, y1, h)
    return x0, y0, x1, y1


def farneback(prev_u8: np.ndarray, next_u8: np.ndarray, params: FarnebackParams) -> np.ndarray:
    import cv2

    return cv2.calcOpticalFlowFarneback(prev_u8, next_u8, None, params.pyr_scale, params.levels, params.winsize,
                                        params.iterations, params.poly_n, params.poly_sigma,
                                        cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


class FlowEngine:
    """Computes :class:`FlowField` between two AA images on a fixed box (or the whole frame).

    Thread safety: :meth:`compute` allocates its own uint8 buffers, so several threads may
    call it at once (OpenCV releases the GIL) - the batch pipeline does that to use two cores.
    """

    def __init__(self, params: FarnebackParams, contrast="auto",
                 box: tuple[int, int, int, int] | None = None, coarse_init: bool = False) -> None:
        self.params = params
        self.contrast = contrast
        self.box = box
        self.coarse_init = coarse_init

    def set_box(self, box: tuple[int, int, int, int] | None) -> None:
        self.box = box

    def prepare(self, aa_prev: np.ndarray, aa_next: np.ndarray, box=None, contrast=None):
        """The two uint8 images (cropped) fed to Farneback and the crop origin; ``contrast``
        (a :class:`Contrast` or [lo, hi]) overrides the engine's setting."""
        cmin, cmax = contrast_range(aa_prev, contrast if contrast is not None else self.contrast)
        box = box if box is not None else self.box
        if box is None:
            x0, y0, x1, y1 = 0, 0, aa_prev.shape[1], aa_prev.shape[0]
        else:
            x0, y0, x1, y1 = expand_box(box, min_crop_side(aa_prev.shape, self.params), aa_prev.shape)
        a = bytescale(aa_prev[y0:y1, x0:x1], cmin, cmax)
        b = bytescale(aa_next[y0:y1, x0:x1], cmin, cmax)
        return a, b, (x0, y0)

    def compute(self, aa_prev: np.ndarray, aa_next: np.ndarray, dt_s: float,
                box: tuple[int, int, int, int] | None = None, contrast: Contrast | None = None) -> FlowField:
        """Flow on ``box`` (default: the engine's box), grown so that OpenCV keeps the full
        frame's pyramid depth; ``contrast`` as in :meth:`prepare`."""
        if aa_prev.shape != aa_next.shape:
            raise ValueError(f"flow: image shapes differ {aa_prev.shape} vs {aa_next.shape}")
        if not dt_s > 0:
            raise ValueError(f"flow: time step must be positive, got {dt_s}")
        box = box if box is not None else self.box
        used = contrast if contrast is not None else self.contrast
        if box is not None and self.coarse_init:
            return FlowField(*self._compute_coarse_init(aa_prev, aa_next, box, used), float(dt_s),
                             used if isinstance(used, Contrast) else None)
        a, b, origin = self.prepare(aa_prev, aa_next, box, used)
        return FlowField(farneback(a, b, self.params), origin, float(dt_s),
                         used if isinstance(used, Contrast) else None)

    def _compute_coarse_init(self, aa_prev, aa_next, box, contrast):
        """Coarse flow on the reduced frame (:func:`coarse_factor`), resampled as the initial
        flow of a Farneback run on the (small) box."""
        import cv2

        h, w = aa_prev.shape
        f = coarse_factor(w)
        cmin, cmax = contrast_range(aa_prev, contrast)
        size = (max(8, w // f), max(8, h // f))
        sp = bytescale(cv2.resize(aa_prev, size, interpolation=cv2.INTER_AREA), cmin, cmax)
        sn = bytescale(cv2.resize(aa_next, size, interpolation=cv2.INTER_AREA), cmin, cmax)
        coarse = farneback(sp, sn, self.params)
        x0, y0, x1, y1 = expand_box(box, 2 * OPENCV_MIN_PYRAMID_SIZE, (h, w))
        sx, sy = size[0] / w, size[1] / h
        # the coarse field resampled onto the crop's pixel grid (pixel centres), in full-size pixels
        map_x = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * sx - 0.5)[None, :].repeat(y1 - y0, 0)
        map_y = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * sy - 0.5)[:, None].repeat(x1 - x0, 1)
        init = cv2.remap(coarse, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        init[..., 0] /= sx
        init[..., 1] /= sy
        a = bytescale(aa_prev[y0:y1, x0:x1], cmin, cmax)
        b = bytescale(aa_next[y0:y1, x0:x1], cmin, cmax)
        p = self.params
        flow = cv2.calcOpticalFlowFarneback(a, b, np.ascontiguousarray(init), p.pyr_scale, p.levels, p.winsize,
                                            p.iterations, p.poly_n, p.poly_sigma,
                                            cv2.OPTFLOW_FARNEBACK_GAUSSIAN | cv2.OPTFLOW_USE_INITIAL_FLOW)
        return flow, (x0, y0)
