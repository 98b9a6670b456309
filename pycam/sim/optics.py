"""Simulated SO2 camera optics and sensor: band filters, sky, vignetting, dark and noise.

Counts of pixel (x, y) for band b at trigger time t (POSIX s), exposure t_exp (s) and
analog gain g::

    DN = offset(x,y) + g·t_exp·[ R_b·L(t)·sky(x,y)·V_b(x,y)·C·T_b(S(x,y,t)) + D(x,y) ] + noise

then rounded and clipped to 0..1023 (10-bit; 1023 = saturated).

* ``T_b(S)`` = filter-weighted mean of exp(−σ_SO2(λ)·S) over the band: Gaussian filters
  310 nm (on, fltrA) and 330 nm (off, fltrB), both 10 nm FWHM, evaluated on a 0.02 nm
  grid over ±2 FWHM with the reference set's SO2 cross-section; tabulated for
  S = 0 … 1e19 molec cm⁻² in 5e15 steps and up to 1e20 in 5e16 steps (linear interpolation
  error < 1e-6 and < 3e-5 relative).
  The apparent absorbance is AA(S) = −ln T_on(S) + ln T_off(S).
* ``R_b`` sky radiance at the frame centre (DN s⁻¹ at gain 1): on 2500, off 6000;
  ``sky`` = (0.8 + 0.4·y/(H−1))·(1 + 0.06·(x/(W−1) − 0.5)) (brighter toward the horizon);
  ``L(t)`` = brightness · (1 + 0.02·sin(2πt/900 s)) common to both bands and the spectrometer.
* ``V_b`` vignetting = cos⁴(atan(r·p/f)) · (1 − b·(r/r_corner)⁴), b = 0.12 (on), 0.08 (off).
* ``C`` gas cell: 1 without cell, w·T_b(S_cell) with a cell (window loss w common to both
  bands: 0.95 clean, 0.79 realistic as the real Villarrica cells); ``S_cell = ppmm · 2.687e15``
  molec cm⁻² (273.15 K, 1 atm).
* realistic on-band camera (clean scene: f = w = 0): a stray-light leak ``f`` = 0.2 that SO2
  does not absorb and a fraction ``w`` = 0.1 of the passband (its blue wing) where SO2 absorbs
  strongly (σ_s = 1e-18 cm²): ``T_on,eff = f + (1 − f)·((1 − w)·T_on(S) + w·exp(−σ_s·S))`` for
  plume and cells alike.  The AA curve then bends like the real Villarrica cells: the 0–304
  ppm·m column-per-AA slope is 30 % below the linear fit of 0, 304, 1257 ppm·m (real: 29 %),
  AA(304 ppm·m) = 0.164 (real 0.149), AA(1257) = 0.48 (real 0.445), synthetic references.
* ``offset`` ≈ 15 DN (fixed pattern, std 0.6 DN); dark current ``D`` ≈ 3 DN s⁻¹ (log-normal
  fixed pattern) plus 40 hot pixels of 50–150 DN s⁻¹ (binned frame).
* noise: shot noise of the electrons (64 e⁻/DN at gain 1 for the 4x4-binned frame, 4 e⁻/DN
  full resolution; variance = signal·g/(e⁻/DN)) and read noise (0.5 DN binned, 2 DN full).
* the off-band camera may be misregistered: its pixel (x, y) views the scene point of the
  on-band pixel (x + dx, y + dy) (``SceneParameters.misregistration_px``).
* a ``Dark`` frame has no light (only offset, dark current and noise).

Realistic scenes (a :class:`~pycam.sim.landscape.SceneStyle` other than ``clean``) replace
``sky·C·T_b(S)`` by the radiance of the world as each camera sees it (scene point of sensor
pixel q: ``p = R(θ)(q − c) + c + (dx, dy)`` for B, p = q for A)::

    I = T_b(S)·(B·e_p + g·a_b·C(t)·e_p) + g·(1 − e_p),     e_p = exp(−ε_b·d_plume)

``g`` the sky gradient (flat below the horizon knee row), ``C`` the cloud opacity (sky only,
brightening a_b), ``B`` the background at the plume plane (g for sky; for the volcano behind the
plume ``g·(ρ·e_v + 1 − e_v)``, e_v over the distance volcano−plume); on the foreground ridge in
front of the plume ``I = g·(ρ·e_r + 1 − e_r)`` (no plume).  This is the contract's light
dilution ``I = I0·exp(−ε d) + I_sky·(1 − exp(−ε d))`` per band.  The sensor multiplies by its
fixed vignetting (an extra ``1 − b·(r/r_corner)²``), dust specks and row banding; plume and
test frames also by the dust that arrived after the references (``SceneStyle.new_specks``).
"""
from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

from pycam.sim.landscape import Clouds, SceneStyle, Terrain, scene_points, speck_transmission
from pycam.sim.plume import BINNED_SHAPE, PIXEL_PITCH_M, PlumeField, focal_length_m, pixel_centres
from pycam.reference_spectra import ReferenceSet

#: Gas-cell column per ppm·m (molec cm⁻²), ideal gas at 273.15 K and 1 atm.
MOLEC_CM2_PER_PPMM = 2.687e15
MAX_DN = 1023


@dataclasses.dataclass(frozen=True)
class BandFilter:
    centre_nm: float
    fwhm_nm: float

    def weights(self, wavelengths: np.ndarray) -> np.ndarray:
        sigma = self.fwhm_nm / (2 * math.sqrt(2 * math.log(2)))
        return np.exp(-0.5 * ((wavelengths - self.centre_nm) / sigma) ** 2)


FILTERS = {"on": BandFilter(310.0, 10.0), "off": BandFilter(330.0, 10.0)}
SKY_RATE_DN_S = {"on": 2500.0, "off": 6000.0}
VIGNETTING_EDGE = {"on": 0.12, "off": 0.08}
TABLE_STEP = 5e15          # table step up to TABLE_FINE_MAX
TABLE_FINE_MAX = 1e19
TABLE_COARSE_STEP = 5e16   # table step from TABLE_FINE_MAX to TABLE_MAX
TABLE_MAX = 1e20           # columns beyond are treated as TABLE_MAX (transmission ~0 on-band)


class BandTransmission:
    """T_b(S) for one band filter and SO2 cross-section, tabulated (see module docstring)."""

    def __init__(self, references: ReferenceSet, band_filter: BandFilter, leak: float = 0.0,
                 saturating: tuple[float, float] = (0.0, 0.0)) -> None:
        lo = band_filter.centre_nm - 2 * band_filter.fwhm_nm
        hi = band_filter.centre_nm + 2 * band_filter.fwhm_nm
        wl = np.arange(lo, hi + 1e-9, 0.02)
        weights = band_filter.weights(wl)
        self.weights = weights / weights.sum()
        self.wavelengths = wl
        self.sigma = references.cross_sections["SO2"].resample(wl, fill=0.0)
        fine = np.arange(0.0, TABLE_FINE_MAX + TABLE_STEP / 2, TABLE_STEP)
        coarse = np.arange(TABLE_FINE_MAX + TABLE_COARSE_STEP, TABLE_MAX + TABLE_COARSE_STEP / 2, TABLE_COARSE_STEP)
        self.columns = np.concatenate([fine, coarse])
        self.leak = float(leak)
        self.saturating = (float(saturating[0]), float(saturating[1]))
        self.table = self._response(np.exp(-np.outer(self.columns, self.sigma)) @ self.weights, self.columns)

    def _response(self, filtered: np.ndarray | float, column: np.ndarray | float) -> np.ndarray | float:
        """leak + (1 − leak)·((1 − w)·T_filter + w·exp(−σ_s·S)) (the realistic on-band camera)."""
        w, sigma_s = self.saturating
        return self.leak + (1.0 - self.leak) * ((1.0 - w) * filtered + w * np.exp(-sigma_s * column))

    def exact(self, column: float) -> float:
        return float(self._response(float(np.sum(self.weights * np.exp(-self.sigma * column))), column))

    def __call__(self, columns: np.ndarray) -> np.ndarray:
        return np.interp(columns, self.columns, self.table)


def aa_of_column(on: BandTransmission, off: BandTransmission, columns: np.ndarray) -> np.ndarray:
    """Apparent absorbance AA = τ_on − τ_off of a homogeneous column (molec cm⁻²)."""
    return -np.log(on(columns)) + np.log(off(columns))


def _stable_code(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def frame_rng(seed: int, *parts) -> np.random.Generator:
    """A generator that is a pure function of the seed and the frame's identity."""
    words = [int(seed)]
    for p in parts:
        words.append(_stable_code(p) if isinstance(p, str) else int(p) & 0xFFFFFFFFFFFF)
    return np.random.default_rng(words)


def illumination(t: float, brightness: float = 1.0) -> float:
    """L(t): the common slow sky-brightness variation (2 %, 900 s period) times ``brightness``."""
    return brightness * (1.0 + 0.02 * math.sin(2 * math.pi * t / 900.0))


class CameraModel:
    """Renders 10-bit frames of one band camera (binned 648x486 or full 2592x1944)."""

    def __init__(self, field: PlumeField, references: ReferenceSet, band: str, seed: int,
                 full_resolution: bool = False, noise: bool = True, style: SceneStyle | None = None) -> None:
        if band not in FILTERS:
            raise ValueError(f"band must be 'on' or 'off', got {band!r}")
        self.field = field
        self.band = band
        self.seed = int(seed)
        self.noise = noise
        self.style = style if style is not None else SceneStyle()
        self.shape = (1944, 2592) if full_resolution else BINNED_SHAPE
        self.full_resolution = full_resolution
        st = self.style
        self.transmission = BandTransmission(references, FILTERS[band], *(
            (st.on_band_leak, st.on_band_saturating) if band == "on" else (0.0, (0.0, 0.0))))
        rows, cols = self.shape
        scale = cols / BINNED_SHAPE[1]
        self.e_per_dn = 64.0 / scale ** 2
        self.read_noise_dn = 0.5 * scale
        xs, ys = pixel_centres(self.shape)   # binned units
        sky = (0.8 + 0.4 * ys / (BINNED_SHAPE[0] - 1))[:, None] * (1 + 0.06 * (xs / (BINNED_SHAPE[1] - 1) - 0.5))[None, :]
        r_px = np.hypot(xs[None, :] - (BINNED_SHAPE[1] - 1) / 2, ys[:, None] - (BINNED_SHAPE[0] - 1) / 2)
        r_corner = math.hypot(BINNED_SHAPE[1] / 2, BINNED_SHAPE[0] / 2)
        angle = np.arctan(r_px * PIXEL_PITCH_M / focal_length_m())
        vignetting = np.cos(angle) ** 4 * (1 - VIGNETTING_EDGE[band] * (r_px / r_corner) ** 4)
        self.flat = (SKY_RATE_DN_S[band] * sky * vignetting).astype(np.float32)   # DN/s at gain 1, L=1
        rng = frame_rng(self.seed, "fixed-pattern", band, rows)
        self.offset = (15.0 + 0.6 * rng.standard_normal(self.shape)).astype(np.float32)
        dark = 3.0 * np.exp(0.3 * rng.standard_normal(self.shape))
        hot = rng.integers(0, dark.size, size=int(40 * scale ** 2))
        dark.flat[hot] = rng.uniform(50.0, 150.0, hot.size)
        self.dark_rate = dark.astype(np.float32)
        self.registration_offset = field.params.misregistration_px if band == "off" else (0.0, 0.0)
        self.registration_rotation_deg = field.params.misregistration_rot_deg if band == "off" else 0.0
        self.terrain: Terrain | None = None
        self._world = None if self.style.name == "clean" and self.registration_rotation_deg == 0.0 else \
            self._build_world(vignetting, rng)

    # ------------------------------------------------------------------ the realistic world
    def _build_world(self, vignetting: np.ndarray, rng: np.random.Generator) -> dict:
        """Static maps of the scene as this camera sees it (see pycam.sim.landscape):
        radiance I = T(S)·(Be + Ge·C) + Add, with T the plume transmission, C the cloud opacity."""
        st, p = self.style, self.field.params
        centre = ((BINNED_SHAPE[1] - 1) / 2, (BINNED_SHAPE[0] - 1) / 2)
        bx, by = pixel_centres(BINNED_SHAPE)
        px_b, py_b = scene_points(bx, by, self.registration_offset, self.registration_rotation_deg, centre)
        xs, ys = pixel_centres(self.shape)
        px, py = scene_points(xs, ys, self.registration_offset, self.registration_rotation_deg, centre)
        knee = st.horizon_knee_row if st.horizon_knee_row is not None else np.inf
        g = (0.8 + 0.4 * np.minimum(py, knee) / (BINNED_SHAPE[0] - 1)) * (1 + 0.06 * (px / (BINNED_SHAPE[1] - 1) - 0.5))
        eps = st.extinction(self.band)
        e_plume = math.exp(-eps * p.plume_distance_m)
        be, ge, add = g * e_plume, g * (st.cloud_brightening[0 if self.band == "on" else 1] * e_plume), g * (1 - e_plume)
        sky = np.ones(self.shape, bool)
        plume_visible = np.ones(self.shape, bool)
        if st.terrain:
            self.terrain = Terrain(st, p.plume_distance_m, p.seed)
            m = self.terrain.maps(px, py)
            sky = ~(m["ridge"] | m["volcano"])
            plume_visible = ~m["ridge"]
            e_v = math.exp(-eps * (self.terrain.volcano_distance_m - p.plume_distance_m))
            be = np.where(m["volcano"], g * (m["radiance"] * e_v + 1 - e_v) * e_plume, be)
            e_r = math.exp(-eps * self.terrain.ridge_distance_m)
            be = np.where(m["ridge"], 0.0, be)
            add = np.where(m["ridge"], g * (m["radiance"] * e_r + 1 - e_r), add)
            ge = np.where(sky, ge, 0.0)
        # sensor: stronger vignetting, dust specks and a faint row banding (fixed patterns)
        r_px = np.hypot(xs[None, :] - (BINNED_SHAPE[1] - 1) / 2, ys[:, None] - (BINNED_SHAPE[0] - 1) / 2)
        r_corner = math.hypot(BINNED_SHAPE[1] / 2, BINNED_SHAPE[0] / 2)
        b = st.vignetting_quadratic[0 if self.band == "on" else 1]
        sensor = vignetting * (1 - b * (r_px / r_corner) ** 2)
        if st.specks:
            sensor = sensor * speck_transmission(self.shape, st.specks, frame_rng(self.seed, "specks", self.band))
        column, height = st.stray_band
        if height and self.band == "on":
            sensor = sensor * (1 + height * np.exp(-0.5 * ((xs - column) / 22.0) ** 2))[None, :]
        if st.row_banding:
            sensor = sensor * (1 + st.row_banding * rng.standard_normal(self.shape[0]))[:, None]
        self.flat = (SKY_RATE_DN_S[self.band] * sensor).astype(np.float32)
        clouds = Clouds(st, self.field.speed_px_s, p.seed) if st.clouds > 0 else None
        new_dust = None
        if st.new_specks:
            new_dust = speck_transmission(self.shape, st.new_specks,
                                          frame_rng(self.seed, "new-specks", self.band)).astype(np.float32)
        footprint = self.field.footprint(*self.field.plume_coordinates(px_b, py_b))
        return {"footprint": footprint, "cloud_points": clouds.prepare(px_b, py_b) if clouds else None, "be": be.astype(np.float32), "ge": ge.astype(np.float32),
                "add": add.astype(np.float32), "plume_visible": plume_visible, "sky": sky, "clouds": clouds,
                "new_dust": new_dust}

    def _binned_to_frame(self, image: np.ndarray) -> np.ndarray:
        if self.shape == BINNED_SHAPE:
            return image
        import cv2

        return cv2.resize(np.asarray(image, np.float32), (self.shape[1], self.shape[0]), interpolation=cv2.INTER_LINEAR)

    def columns(self, t: float) -> np.ndarray:
        if self._world is None:
            return self.field.column_image_fast(t, self.shape, self.registration_offset)
        w = self._world
        cols = self._binned_to_frame(self.field.columns_on(w["footprint"], t))
        return np.where(w["plume_visible"], cols, 0.0)

    def cloud_opacity(self, t: float) -> np.ndarray | None:
        """C(x, y, t) as this camera sees it (None: no clouds in this scene)."""
        if self._world is None or self._world["clouds"] is None:
            return None
        w = self._world
        return self._binned_to_frame(w["clouds"].opacity(None, None, t, w["cloud_points"]))

    def scene_radiance(self, t: float, frame_type: str, columns: np.ndarray | None = None) -> np.ndarray:
        """Relative radiance (float32, 1 = the sky at the frame centre) reaching the lens."""
        w = self._world
        static = w["be"] + w["add"]
        if frame_type in ("Plume", "Test"):
            cols = self.columns(t) if columns is None else columns
            trans = self.transmission(cols).astype(np.float32)
            clouds = self.cloud_opacity(t)
            front = w["be"] if clouds is None else w["be"] + w["ge"] * clouds
            radiance = trans * front + w["add"]
            # dust that arrived after the Clear/cell references (a sensor property, applied here
            # so that only the plume frames carry it)
            return radiance if w["new_dust"] is None else radiance * w["new_dust"]
        if frame_type.endswith("ppmm"):
            ppmm = int(frame_type[:-4])
            cell = self.style.cell_window_transmission * self.transmission.exact(ppmm * MOLEC_CM2_PER_PPMM)
            return static * np.float32(cell)
        if frame_type != "Clear":
            raise ValueError(f"unknown frame type {frame_type!r}")
        return static

    def expected_counts(self, t: float, exposure_us: int, gain: float, frame_type: str = "Plume",
                        brightness: float = 1.0, columns: np.ndarray | None = None) -> np.ndarray:
        """The noise-free, unclipped mean counts (float32)."""
        exposure_s = exposure_us * 1e-6
        dark_part = self.offset + (gain * exposure_s) * self.dark_rate
        if frame_type == "Dark":
            return dark_part
        light = self.flat * np.float32(illumination(t, brightness))
        if self._world is not None:
            return dark_part + (gain * exposure_s) * (light * self.scene_radiance(t, frame_type, columns))
        if frame_type in ("Plume", "Test"):
            cols = self.columns(t) if columns is None else columns
            light = light * self.transmission(cols).astype(np.float32)
        elif frame_type.endswith("ppmm"):
            ppmm = int(frame_type[:-4])
            window = self.style.cell_window_transmission
            light = light * np.float32(window * self.transmission.exact(ppmm * MOLEC_CM2_PER_PPMM))
        elif frame_type != "Clear":
            raise ValueError(f"unknown frame type {frame_type!r}")
        return dark_part + (gain * exposure_s) * light

    def render(self, t: float, exposure_us: int, gain: float, frame_type: str = "Plume",
               brightness: float = 1.0) -> np.ndarray:
        """A uint16 frame (0..1023): a pure function of (seed, t, band, exposure, gain, type, brightness)."""
        mean = self.expected_counts(t, exposure_us, gain, frame_type, brightness)
        if self.noise:
            rng = frame_rng(self.seed, "frame", self.band, frame_type, int(round(t * 1000)), exposure_us,
                            int(round(gain * 1000)), int(round(brightness * 1e6)))
            electrons_var = np.maximum(mean - self.offset, 0) * np.float32(gain / self.e_per_dn)
            std = np.sqrt(electrons_var + np.float32(self.read_noise_dn ** 2))
            mean = mean + std * rng.standard_normal(self.shape, dtype=np.float32)
        return np.clip(np.rint(mean), 0, MAX_DN).astype(np.uint16)

    def describe(self) -> dict:
        """The sensor and optics constants of this camera, for truth.json."""
        return {
            "band": self.band,
            "filter": {"centre_nm": FILTERS[self.band].centre_nm, "fwhm_nm": FILTERS[self.band].fwhm_nm,
                       "shape": "Gaussian"},
            "sky_rate_dn_s_at_gain_1": SKY_RATE_DN_S[self.band],
            "sky_shape": "(0.8 + 0.4*y/485) * (1 + 0.06*(x/647 - 0.5)), binned coordinates",
            "vignetting": f"cos^4(atan(r*p/f)) * (1 - {VIGNETTING_EDGE[self.band]}*(r/r_corner)^4)",
            "illumination": "brightness * (1 + 0.02*sin(2*pi*t/900 s)), common to all devices",
            "offset_dn": 15.0, "offset_fixed_pattern_std_dn": 0.6,
            "dark_current_dn_s": "3 * lognormal(0, 0.3) fixed pattern, plus hot pixels of 50-150 DN/s",
            "electrons_per_dn_at_gain_1": self.e_per_dn, "read_noise_dn": self.read_noise_dn,
            "noise": self.noise, "saturation_dn": MAX_DN,
            "cell_window_transmission": self.style.cell_window_transmission,
            "on_band_leak": self.transmission.leak,
            "on_band_saturating_fraction_sigma_cm2": list(self.transmission.saturating),
            "extinction_per_m": self.style.extinction(self.band),
            "vignetting_quadratic": self.style.vignetting_quadratic[0 if self.band == "on" else 1],
            "dust_specks": self.style.specks,
            "dust_specks_after_references": self.style.new_specks,
            "row_banding_std": self.style.row_banding,
            "shape": list(self.shape),
        }

