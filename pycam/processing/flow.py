"""Farneback optical flow between consecutive AA images, on the region the emission rates need.

Like pyplis's ``OptflowFarneback``, the AA images are byte-scaled to uint8 over a contrast
range (default ``auto``: min and max of the first image of the pair over the whole frame,
pyplis's auto-update; or a fixed ``flow_contrast: [aa_min, aa_max]``), then
``cv2.calcOpticalFlowFarneback`` runs with the Gaussian window flag and the settings
``pyr_scale, levels, winsize, iterations, poly_n, poly_sigma`` (pyplis defaults 0.5, 4, 20, 5,
5, 1.1).  Raw float AA would give zero flow.

Speed: unless ``flow_full_frame`` is set, the flow is computed only on the bounding box of
the PCS lines (and the cross-correlation lines) plus ``flow_roi_margin`` pixels.  The
contrast range is still taken from the whole frame, so the 8-bit input inside the box is
the same as pyplis's.  On the Villarrica data a 16-48 px margin keeps the emission rate
within about 1 % of the full-frame result (docs/performance_notes.md); a crop changes the
effective pyramid slightly.
"""
from __future__ import annotations

import dataclasses

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
    tmp = (data * 1.0 - cmin) * scale + 0.4999
    np.clip(tmp, 0, 255, out=tmp)
    np.copyto(out, tmp, casting="unsafe")
    return out


@dataclasses.dataclass
class FlowField:
    """Displacements (pixels per image step) on a crop whose top-left is ``origin``."""

    flow: np.ndarray             # (h, w, 2) float32: dx, dy
    origin: tuple[int, int]      # (x0, y0) of the crop in the full image
    dt_s: float                  # time between the two images

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
    """The bytescale range: ``contrast`` if given as [min, max], else min/max of ``aa`` (pyplis auto)."""
    if contrast is None or contrast == "auto":
        return float(aa.min()), float(aa.max())
    return float(contrast[0]), float(contrast[1])


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
                 box: tuple[int, int, int, int] | None = None) -> None:
        self.params = params
        self.contrast = contrast
        self.box = box

    def set_box(self, box: tuple[int, int, int, int] | None) -> None:
        self.box = box

    def prepare(self, aa_prev: np.ndarray, aa_next: np.ndarray):
        """The two uint8 images (cropped) fed to Farneback and the crop origin."""
        cmin, cmax = contrast_range(aa_prev, self.contrast)
        if self.box is None:
            x0, y0, x1, y1 = 0, 0, aa_prev.shape[1], aa_prev.shape[0]
        else:
            x0, y0, x1, y1 = self.box
        a = bytescale(aa_prev[y0:y1, x0:x1], cmin, cmax)
        b = bytescale(aa_next[y0:y1, x0:x1], cmin, cmax)
        return a, b, (x0, y0)

    def compute(self, aa_prev: np.ndarray, aa_next: np.ndarray, dt_s: float) -> FlowField:
        if aa_prev.shape != aa_next.shape:
            raise ValueError(f"flow: image shapes differ {aa_prev.shape} vs {aa_next.shape}")
        if not dt_s > 0:
            raise ValueError(f"flow: time step must be positive, got {dt_s}")
        a, b, origin = self.prepare(aa_prev, aa_next)
        return FlowField(farneback(a, b, self.params), origin, float(dt_s))
