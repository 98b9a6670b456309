"""A small synthetic SO2-camera scene with known columns and motion (tests and the memory check).

The plume is a textured band moving along +x by ``speed_px`` pixels per frame.  Columns
``S`` (molec cm^-2) map to optical depths by a known slope ``k`` (``AA = S / k``) with
``tau_A = 1.05 AA`` and ``tau_B = 0.05 AA``; intensities are ``bg * exp(-tau) + dark``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

DARK_DN = 15.0
SLOPE = 7.0e18  # molec cm^-2 per AA


@dataclasses.dataclass
class LinearCalibration:
    """A calibration stand-in for a chain: column = ``slope`` * AA (float32), a fixed column error."""

    slope: float = SLOPE
    column_error: float = 0.0

    def column_from_aa(self, aa, out=None, time=None):
        res = np.multiply(aa, np.float32(self.slope), dtype=np.float32)
        if out is not None:
            out[...] = res
            return out
        return res


@dataclasses.dataclass
class Scene:
    shape: tuple[int, int] = (486, 648)
    speed_px: float = 6.0
    peak_cd: float = 1.5e18
    y_centre: float = 240.0
    sigma_y: float = 50.0
    seed: int = 0
    noise_dn: float = 0.0

    def __post_init__(self) -> None:
        import cv2

        h, w = self.shape
        rng = np.random.default_rng(self.seed)
        tex_w = w + 4096
        noise = rng.normal(size=(h, tex_w)).astype(np.float32)
        tex = cv2.GaussianBlur(noise, (0, 0), 6.0)
        tex = tex / tex.std()
        self.texture = np.clip(1.0 + 0.45 * tex, 0.1, None)
        yy = np.arange(h, dtype=np.float32)[:, None]
        self.profile = np.exp(-0.5 * ((yy - self.y_centre) / self.sigma_y) ** 2).astype(np.float32)
        xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
        self.bg_a = (600.0 + 80.0 * (1 - yy / h) - 40 * xx).astype(np.float32) * np.ones((1, w), np.float32)
        self.bg_b = (520.0 + 60.0 * (1 - yy / h) + 30 * xx).astype(np.float32) * np.ones((1, w), np.float32)
        self.rng = rng

    def columns(self, frame: int) -> np.ndarray:
        import cv2

        h, w = self.shape
        shift = frame * self.speed_px
        start = int(np.floor(shift)) % 4000
        frac = shift - np.floor(shift)
        crop = self.texture[:, 4000 - start - 2: 4000 - start - 2 + w + 4]
        if frac:
            m = np.float32([[1, 0, frac], [0, 1, 0]])
            crop = cv2.warpAffine(crop, m, (crop.shape[1], h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return (self.peak_cd * self.profile * crop[:, 2:2 + w]).astype(np.float32)

    def frames(self, frame: int, cd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        cd = self.columns(frame) if cd is None else cd
        aa = cd / SLOPE
        ia = self.bg_a * np.exp(-1.05 * aa) + DARK_DN
        ib = self.bg_b * np.exp(-0.05 * aa) + DARK_DN
        if self.noise_dn:
            ia = ia + self.rng.normal(0, self.noise_dn, ia.shape)
            ib = ib + self.rng.normal(0, self.noise_dn, ib.shape)
        return (np.clip(np.rint(ia), 0, 1023).astype(np.uint16), np.clip(np.rint(ib), 0, 1023).astype(np.uint16))

    def clear(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.rint(self.bg_a + DARK_DN).astype(np.uint16), np.rint(self.bg_b + DARK_DN).astype(np.uint16))

    def dark(self) -> np.ndarray:
        return np.full(self.shape, DARK_DN, np.uint16)

    def cell(self, ppmm: float, ppmm_to_cd: float = 2.687e15) -> tuple[np.ndarray, np.ndarray]:
        cd = np.full(self.shape, ppmm * ppmm_to_cd, np.float32)
        aa = cd / SLOPE
        ia = self.bg_a * np.exp(-1.05 * aa) + DARK_DN
        ib = self.bg_b * np.exp(-0.05 * aa) + DARK_DN
        return np.rint(ia).astype(np.uint16), np.rint(ib).astype(np.uint16)

    def true_flux(self, frame: int, x: int, footprint_m: float, dt_s: float) -> float:
        """kg/s through the vertical line at column x (flow along +x)."""
        from pycam.processing.emission import KG_PER_COLUMN_AREA

        cd = self.columns(frame)[:, x].astype(float)
        v = self.speed_px * footprint_m / dt_s
        return float(cd.sum() * footprint_m * v * KG_PER_COLUMN_AREA)


def write_dataset(directory, scene: Scene, n_pairs: int, start: dt.datetime, step_s: int = 4,
                  exposure_a: int = 999904, exposure_b: int = 199994, cal_dir=None) -> list[dt.datetime]:
    """Write PyCam-named PNGs: n plume pairs, a dark and a clear per band; optional Cal dir with cells."""
    from pycam.formats.images import write_image
    from pycam.formats.names import ImageName

    times = []
    for i in range(n_pairs):
        t = start + dt.timedelta(seconds=i * step_s)
        a, b = scene.frames(i)
        write_image(directory / ImageName(t, "on", 1, exposure_a, "Plume").filename(), a, fsync=False)
        write_image(directory / ImageName(t, "off", 1, exposure_b, "Plume").filename(), b, fsync=False)
        times.append(t)
    t0 = start - dt.timedelta(minutes=5)
    write_image(directory / ImageName(t0, "on", 1, exposure_a, "Dark").filename(), scene.dark(), fsync=False)
    write_image(directory / ImageName(t0, "off", 1, exposure_b, "Dark").filename(), scene.dark(), fsync=False)
    if cal_dir is not None:
        cal_dir.mkdir(parents=True, exist_ok=True)
        tc = start - dt.timedelta(minutes=10)
        ca, cb = scene.clear()
        for k, (kind, pa, pb) in enumerate([("Dark", scene.dark(), scene.dark()), ("Clear", ca, cb)]
                                           + [(f"{p}ppmm", *scene.cell(p)) for p in (0, 304, 1257)]):
            tt = tc + dt.timedelta(seconds=10 * k)
            write_image(cal_dir / ImageName(tt, "on", 1, exposure_a, kind).filename(), pa, fsync=False)
            write_image(cal_dir / ImageName(tt, "off", 1, exposure_b, kind).filename(), pb, fsync=False)
    return times
