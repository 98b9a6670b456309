"""What a real SO2 camera sees besides the plume: terrain, clouds, sensor dust, A/B misregistration.

A :class:`SceneStyle` says which of these a scene has; :func:`scene_preset` gives the three named
scenes of ``pycam simulate --scene``:

* ``clean``: the uniform gradient sky of the original simulator (a full-width plume band, no
  terrain, clouds, specks, misregistration or light dilution; linear-ish cells);
* ``realistic`` (default): a volcano (snow-capped summit, dark flanks) at the plume distance
  + 300 m and a dark foreground ridge at 0.45 × the plume distance below the sky; a plume from
  the summit vent that rises, bends over and spreads (``pycam.sim.plume``, vent plume); a few
  clouds drifting through the top of the sky (above the PCS lines); dust specks on each sensor
  (70, in every frame, plus 8 that arrived after the clear-sky and cell frames were taken, so
  they do not cancel in the plume frames' optical depths: sharp AA spikes as in real data);
  camera B shifted by (−24, 17) px and rotated by 0.6° against A; mild light dilution; an
  on-band camera whose AA curve bends like the real Villarrica cells (``pycam.sim.optics``);
  stronger vignetting, a faint fixed row banding and (on-band) a vertical stray-light band near
  x = 230 (as real PyCam frames; all sensor-fixed, so they cancel against the clear sky);
* ``cloudy``: ``realistic`` with more and larger clouds that cross the plume and the PCS lines
  (the main source of false AA; a stress test for the quality flags).

Scene coordinates are camera A's binned 648x486 pixels (x right, y down); everything here is
a pure function of the seed and the parameters.

Terrain (binned px, scene coordinates): the volcano's top edge is
``y_s + 0.55·max(0, |x − x_c| − 18) + r(x)`` (summit row ``y_s``, crater half-width 18 px,
roughness r of a few px), cut by a far ridge ``y = 415 + 10·sin(x/90)``; the foreground ridge
rises from ``y = 470`` at x = 430 to ``y ≈ 361`` at the right edge.  Snow covers the volcano down
to about 45 px below the summit (ragged).  Intrinsic radiance relative to the local sky: snow
0.85, dark terrain 0.12·(1 ± 10 % texture).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

#: scene presets of ``pycam simulate --scene`` and ``[simulator] scene``
SCENES = ("realistic", "clean", "cloudy")

SNOW_RADIANCE = 0.85
TERRAIN_RADIANCE = 0.12
FLANK_SLOPE = 0.55
CRATER_HALF_WIDTH_PX = 18.0
SNOW_DEPTH_PX = 45.0
CLOUD_PERIOD_PX = 2048


@dataclasses.dataclass(frozen=True)
class SceneStyle:
    """Everything about a scene besides the plume (all off: the clean scene)."""

    name: str = "clean"
    terrain: bool = False
    snow: bool = True
    summit_xy: tuple[float, float] = (170.0, 318.0)   # vent / summit (binned px)
    clouds: float = 0.0                  # cloud cover (0 none .. 1 overcast)
    cloud_rows: tuple[float, float] = (0.0, 60.0)     # rows the clouds drift through (soft edges)
    cloud_speed_factor: float = 0.7      # cloud drift speed / plume speed (to the right)
    cloud_brightening: tuple[float, float] = (0.35, 0.45)   # on, off: I = I_sky·(1 + a·C)
    specks: int = 0                      # dust specks per sensor
    new_specks: int = 0                  # specks that arrived after the clear-sky and cell references
    vignetting_quadratic: tuple[float, float] = (0.0, 0.0)  # on, off: extra (1 − b·(r/r_corner)²)
    row_banding: float = 0.0             # std of the fixed per-row gain pattern
    stray_band: tuple[float, float] = (0.0, 0.0)   # on-band vertical stray-light band: (column, relative height)
    extinction_on_per_m: float = 0.0
    extinction_off_per_m: float = 0.0
    on_band_leak: float = 0.0            # fraction of the on-band signal that SO2 does not absorb
    on_band_saturating: tuple[float, float] = (0.0, 0.0)   # (fraction w, sigma_s cm²): strongly absorbed part
    cell_window_transmission: float = 0.95
    horizon_knee_row: float | None = None   # the sky gradient stops below this row (horizon haze)

    def __post_init__(self) -> None:
        checks = [
            (self.name in SCENES, f"scene must be one of {', '.join(SCENES)}"),
            (0 <= self.clouds <= 1, "clouds must be in [0, 1]"),
            (self.cloud_rows[0] < self.cloud_rows[1], "cloud_rows must be (top, bottom) with top < bottom"),
            (0 <= self.specks <= 2000, "specks must be between 0 and 2000"),
            (0 <= self.extinction_on_per_m <= 1e-3 and 0 <= self.extinction_off_per_m <= 1e-3,
             "extinction coefficients must be between 0 and 1e-3 per m"),
            (0 <= self.on_band_leak < 0.5, "on_band_leak must be in [0, 0.5)"),
            (0 < self.cell_window_transmission <= 1, "cell_window_transmission must be in (0, 1]"),
            (0 <= self.row_banding < 0.05, "row_banding must be in [0, 0.05)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"scene style: {message}")

    def extinction(self, band: str) -> float:
        return self.extinction_on_per_m if band == "on" else self.extinction_off_per_m

    def describe(self) -> dict:
        return dataclasses.asdict(self)


#: the realistic default extinction (1/m): a few % dilution of the plume AA at 5 km
REALISTIC_EXTINCTION = (6e-6, 5e-6)
#: the realistic A/B misregistration: B pixel q views scene point R(0.6°)(q − c) + c + (−24, 17)
REALISTIC_MISREGISTRATION = ((-24.0, 17.0), 0.6)


def scene_preset(name: str) -> tuple[SceneStyle, dict]:
    """(style, SceneParameters overrides) of a named scene (see the module docstring)."""
    if name == "clean":
        return SceneStyle(), {}
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}: use one of {', '.join(SCENES)}")
    summit = (170.0, 318.0)
    style = SceneStyle(
        name=name, terrain=True, summit_xy=summit, clouds=0.5, cloud_rows=(0.0, 60.0), specks=70, new_specks=8,
        vignetting_quadratic=(0.3, 0.25), row_banding=0.004, stray_band=(230.0, 0.05),
        extinction_on_per_m=REALISTIC_EXTINCTION[0], extinction_off_per_m=REALISTIC_EXTINCTION[1],
        on_band_leak=0.2, on_band_saturating=(0.1, 1e-18), cell_window_transmission=0.79, horizon_knee_row=summit[1] - 8.0)
    if name == "cloudy":
        style = dataclasses.replace(style, clouds=0.75, cloud_rows=(0.0, 330.0))
    (dx, dy), rot = REALISTIC_MISREGISTRATION
    params = {"vent_xy": summit, "wind_direction_deg": 8.0, "plume_sigma_px": 40.0,
              "vent_sigma_px": 10.0, "spread_per_px": 0.06, "width_variation": 0.05, "vent_rise_px": 60.0, "bend_length_px": 45.0,
              "misregistration_px": (dx, dy), "misregistration_rot_deg": rot, "fov_radius_px": 10.0}
    return style, params


# ---------------------------------------------------------------------------- geometry helpers
def scene_points(xs: np.ndarray, ys: np.ndarray, shift_xy: tuple[float, float], rotation_deg: float,
                 centre_xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates viewed by sensor pixels (xs, ys): p = R(q − c) + c + shift (2-D arrays)."""
    xx, yy = np.meshgrid(np.asarray(xs, np.float64), np.asarray(ys, np.float64))
    if rotation_deg == 0.0:
        return xx + shift_xy[0], yy + shift_xy[1]
    a = math.radians(rotation_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = centre_xy
    u, v = xx - cx, yy - cy
    return ca * u - sa * v + cx + shift_xy[0], sa * u + ca * v + cy + shift_xy[1]


def warp_a_to_b(shift_xy: tuple[float, float], rotation_deg: float, centre_xy: tuple[float, float]) -> np.ndarray:
    """The 2x3 matrix mapping A pixel coordinates to the B pixel that sees the same scene point
    (OpenCV's convention for ``warpAffine(B, M, WARP_INVERSE_MAP)``; the inverse of
    :func:`scene_points`)."""
    a = math.radians(rotation_deg)
    rinv = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    c = np.asarray(centre_xy, np.float64)
    offset = c - rinv @ (c + np.asarray(shift_xy, np.float64))
    return np.hstack([rinv, offset[:, None]])


def _noise_1d(rng: np.random.Generator, n: int, scale_px: float) -> np.ndarray:
    k = np.fft.rfftfreq(n)
    spectrum = (rng.standard_normal(k.size) + 1j * rng.standard_normal(k.size)) * np.exp(-0.5 * (k * scale_px) ** 2)
    spectrum[0] = 0
    out = np.fft.irfft(spectrum, n)
    return out / (out.std() or 1.0)


def band_noise_2d(rng: np.random.Generator, rows: int, cols: int, small_px: float, large_px: float) -> np.ndarray:
    """Zero-mean, unit-std periodic random field with wavelengths mostly in [small_px, large_px]."""
    ky = np.fft.fftfreq(rows)[:, None]
    kx = np.fft.rfftfreq(cols)[None, :]
    k = np.hypot(kx, ky)
    shape = np.exp(-0.5 * (k * small_px) ** 2) * (1 - np.exp(-0.5 * (k * large_px) ** 2))
    spectrum = (rng.standard_normal(shape.shape) + 1j * rng.standard_normal(shape.shape)) * shape
    field = np.fft.irfft2(spectrum, s=(rows, cols))
    field -= field.mean()
    return field / (field.std() or 1.0)


# ---------------------------------------------------------------------------- terrain
class Terrain:
    """Silhouette, distances and intrinsic radiance of the ground (scene coordinates)."""

    X_MIN, X_MAX = -200, 900      # tabulated range of the 1-D profiles (binned px)

    def __init__(self, style: SceneStyle, plume_distance_m: float, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x7E44A1])
        self.style = style
        self.volcano_distance_m = plume_distance_m + 300.0
        self.ridge_distance_m = 0.45 * plume_distance_m
        self._x = np.arange(self.X_MIN, self.X_MAX + 1, dtype=np.float64)
        xc, ys = style.summit_xy
        rough = 4.0 * _noise_1d(rng, self._x.size, 40.0) + 0.8 * _noise_1d(rng, self._x.size, 6.0)
        volcano = ys + FLANK_SLOPE * np.maximum(0.0, np.abs(self._x - xc) - CRATER_HALF_WIDTH_PX) + rough
        far = 415.0 + 10.0 * np.sin(self._x / 90.0) + 3.0 * _noise_1d(rng, self._x.size, 30.0)
        self._volcano_top = np.minimum(volcano, far)
        self._ridge_top = 470.0 - 0.5 * np.maximum(0.0, self._x - 430.0) + 3.0 * _noise_1d(rng, self._x.size, 25.0)
        # ragged snow line: gullies reach further down (a smooth profile plus short tongues)
        tongues = np.maximum(0.0, _noise_1d(rng, self._x.size, 12.0)) ** 2
        self._snow_bottom = ys + SNOW_DEPTH_PX + 7.0 * _noise_1d(rng, self._x.size, 60.0) + 5.0 * tongues
        self._texture = band_noise_2d(rng, 512, 1024, 3.0, 40.0)

    def _profile(self, table: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return np.interp(xs, self._x, table)

    def dil_line_points(self) -> list[tuple[tuple[int, int, int, int], float]]:
        """Two horizontal lines on dark terrain: ((x0, y0, x1, y1), distance_m): the foreground
        ridge and the volcano's left flank below the snow."""
        xc, ys = self.style.summit_xy
        row1 = int(round(ys + 80.0))
        half = CRATER_HALF_WIDTH_PX + 80.0 / FLANK_SLOPE
        return [((560, 455, 635, 455), self.ridge_distance_m),
                ((int(round(xc - half + 20)), row1, int(round(xc - 40)), row1), self.volcano_distance_m)]

    def sky_above(self, x0: int, x1: int) -> tuple[int, int, int, int]:
        """A sky rectangle (x0, y0, x1, y1) just above the terrain over columns x0..x1: the
        ambient (horizon) sky radiance of a light-dilution fit (the sky is flat in y there)."""
        xs = np.arange(x0, x1 + 1, dtype=np.float64)
        top = float(np.min(np.minimum(self._profile(self._volcano_top, xs), self._profile(self._ridge_top, xs))))
        return (int(x0), int(math.floor(top - 22.0)), int(x1), int(math.floor(top - 8.0)))

    def maps(self, px: np.ndarray, py: np.ndarray) -> dict[str, np.ndarray]:
        """Per scene point: ``ridge`` (foreground ridge, in front of the plume), ``volcano``
        (terrain behind the plume), ``radiance`` (intrinsic, relative to the local sky)."""
        ridge = py >= self._profile(self._ridge_top, px)
        volcano = (py >= self._profile(self._volcano_top, px)) & ~ridge
        tx = np.mod(np.rint(px).astype(np.intp), self._texture.shape[1])
        ty = np.mod(np.rint(py).astype(np.intp), self._texture.shape[0])
        radiance = TERRAIN_RADIANCE * (1.0 + 0.1 * self._texture[ty, tx])
        if self.style.snow:
            snow = volcano & (py < self._profile(self._snow_bottom, px))
            radiance = np.where(snow, SNOW_RADIANCE * (1.0 + 0.03 * self._texture[ty, tx]), radiance)
        return {"ridge": ridge, "volcano": volcano, "radiance": radiance}


# ---------------------------------------------------------------------------- clouds
class Clouds:
    """Cloud opacity C(x, y, t) in [0, 1], drifting to the right (periodic in x)."""

    def __init__(self, style: SceneStyle, plume_speed_px_s: float, seed: int) -> None:
        rng = np.random.default_rng([seed, 0xC10D])
        self.style = style
        self.speed_px_s = style.cloud_speed_factor * plume_speed_px_s
        # cumulus: a large-scale field sets where clouds are (feathered edges), a finer one their
        # inner structure (denser cores, thinner parts)
        field = band_noise_2d(rng, 512, CLOUD_PERIOD_PX, 110.0, 700.0)
        inner = band_noise_2d(rng, 512, CLOUD_PERIOD_PX, 18.0, 120.0)
        threshold = 1.5 - 1.6 * style.clouds         # more cover: lower threshold
        c = np.clip((field - threshold) / 0.9, 0.0, 1.0)
        c = c * np.clip(0.8 + 0.2 * inner, 0.4, 1.0)
        self.texture = (c * c * (3 - 2 * c)).astype(np.float32)

    def envelope(self, py: np.ndarray) -> np.ndarray:
        top, bottom = self.style.cloud_rows
        edge = 15.0
        a = np.clip((py - (top - edge)) / edge, 0.0, 1.0) if top > 0 else 1.0
        b = np.clip(((bottom + edge) - py) / edge, 0.0, 1.0)
        return a * b

    def prepare(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The time-independent part of :meth:`opacity` for scene points (px, py)."""
        return (np.asarray(px, np.float64), np.mod(py, self.texture.shape[0]).astype(np.float32),
                self.envelope(np.asarray(py, np.float64)).astype(np.float32))

    def opacity(self, px: np.ndarray, py: np.ndarray, t: float, prepared=None) -> np.ndarray:
        import cv2

        x, map_y, envelope = prepared if prepared is not None else self.prepare(px, py)
        shift = math.fmod(self.speed_px_s * float(t), CLOUD_PERIOD_PX)
        map_x = np.mod(x - shift, CLOUD_PERIOD_PX).astype(np.float32)
        c = cv2.remap(self.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        return c * envelope


# ---------------------------------------------------------------------------- sensor dust
def speck_transmission(shape: tuple[int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    """Fixed dark dust blobs on a sensor (transmission map, 1 = clean); sizes in binned px,
    scaled for full-resolution frames."""
    rows, cols = shape
    scale = cols / 648.0
    out = np.ones(shape, np.float64)
    big = max(1, count // 15)
    for i in range(count):
        sigma = (rng.uniform(1.5, 3.5) if i < big else rng.uniform(0.45, 1.1)) * scale
        depth = rng.uniform(0.15, 0.35) if i < big else rng.uniform(0.3, 0.75)
        cx, cy = rng.uniform(0, cols), rng.uniform(0, rows)
        r = int(math.ceil(4 * sigma)) + 1
        x0, x1 = max(0, int(cx) - r), min(cols, int(cx) + r + 1)
        y0, y1 = max(0, int(cy) - r), min(rows, int(cy) + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1] *= 1 - depth * np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / sigma ** 2)
    return out
