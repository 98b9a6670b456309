"""Live registration of B onto A: kept only when it makes A and B clearly more alike."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from pycam.processing.realtime import live_registration


def _scene(rng) -> np.ndarray:
    """A sky with a dark ridge and some texture (what ECC can lock on to)."""
    rows, cols = np.mgrid[0:486, 0:648]
    sky = 600 + 0.3 * rows
    ridge = 330 + 40 * np.sin(cols / 70.0)
    image = np.where(rows > ridge, 120.0, sky)
    return ndimage.gaussian_filter(image + 40 * ndimage.gaussian_filter(rng.standard_normal(image.shape), 6), 1.5)


def test_a_shifted_rotated_b_is_registered():
    rng = np.random.default_rng(0)
    a = _scene(rng).astype(np.float32)
    true = cv2.getRotationMatrix2D((324, 243), 0.5, 1.0)
    true[:, 2] += (12.0, -7.0)
    b = cv2.warpAffine(a, true, (648, 486), borderMode=cv2.BORDER_REPLICATE)   # B(p) = A(true^-1 p)
    b += rng.normal(0, 2, b.shape).astype(np.float32)
    warp, note = live_registration(a, b)
    assert warp is not None, note
    corners = np.array([[0, 0, 1], [647, 0, 1], [0, 485, 1], [647, 485, 1]], float)
    assert np.abs(corners @ warp.T.astype(float) - corners @ true.T).max() < 1.0
    assert "correlation" in note


def test_a_featureless_sky_is_left_unregistered():
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:486, 0:648]
    sky = (600 + 0.3 * rows + 0.05 * cols).astype(np.float32)
    a = sky + rng.normal(0, 3, sky.shape).astype(np.float32)
    b = 0.8 * sky + rng.normal(0, 3, sky.shape).astype(np.float32)
    warp, note = live_registration(a, b)
    assert warp is None and "not registered" in note
