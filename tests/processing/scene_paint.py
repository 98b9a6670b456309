"""Paint what a real PyCam view holds into a clean simulated data set (tests only).

A clean ``pycam.sim`` frame is a gradient sky with a band of plume.  Real frames also hold
dark terrain (both bands near the dark level, so the AA there is the difference of two large,
noisy optical depths), a bright snow cap (the off-band camera saturates on it), hot or dead
sensor pixels, and the empty border a registration warp leaves in the off-band frame.  These
set the whole-frame min/max of the AA and flatten the plume to a few grey levels when the
flow contrast is taken from the whole frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pycam.formats.images import read_image, write_image


def ground_row(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """Row of the terrain silhouette at column ``x``: a hill on each side and a valley in the
    middle, where the PCS lines of the simulated set end (so the lines stay in the sky)."""
    left = 360 + 0.0065 * (x - 100.0) ** 2
    right = 380 + 0.0025 * (x - 540.0) ** 2
    return np.minimum(np.minimum(left, right), height + 10).astype(float)


def paint_real_scene(seq_dir: Path, seed: int = 0, border_px: int = 8, n_specks: int = 60) -> dict:
    """Paint terrain, snow, hot/dead pixels and a registration border into every Plume frame
    of ``seq_dir`` (in place).  Returns the masks painted (for assertions)."""
    rng = np.random.default_rng(seed)
    files = sorted(Path(seq_dir).glob("*_Plume.png"))
    if not files:
        raise FileNotFoundError(f"no Plume frames in {seq_dir}")
    h, w = read_image(files[0]).shape
    yy, xx = np.mgrid[:h, :w]
    ground = yy >= ground_row(xx[0], w, h)[None, :]
    snow = ground & (yy < ground_row(xx[0], w, h)[None, :] + 25) & (xx > 470)
    specks_yx = np.column_stack([rng.integers(0, h, n_specks), rng.integers(0, w, n_specks)])
    for f in files:
        img = read_image(f).astype(np.int32)
        band_b = "_fltrB_" in f.name
        dark_level = 16
        terrain = dark_level + rng.integers(0, 6, size=img.shape)
        img = np.where(ground, terrain, img)
        img = np.where(snow, 1023 if band_b else 900, img)
        ys, xs = specks_yx[:, 0], specks_yx[:, 1]
        if band_b:
            img[ys[::2], xs[::2]] = 0             # dead pixels
            img[h - border_px:, :] = 0            # registration border (bottom and right)
            img[:, w - border_px:] = 0
        else:
            img[ys[1::2], xs[1::2]] = 1023        # hot pixels
        write_image(f, np.clip(img, 0, 1023).astype(np.uint16), fsync=False)
    return {"ground": ground, "snow": snow}
