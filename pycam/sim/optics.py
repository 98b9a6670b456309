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
* ``C`` gas cell: 1 without cell, 0.95·T_b(S_cell) with a cell (window loss common to both
  bands); ``S_cell = ppmm · 2.687e15`` molec cm⁻² (273.15 K, 1 atm).
* ``offset`` ≈ 15 DN (fixed pattern, std 0.6 DN); dark current ``D`` ≈ 3 DN s⁻¹ (log-normal
  fixed pattern) plus 40 hot pixels of 50–150 DN s⁻¹ (binned frame).
* noise: shot noise of the electrons (64 e⁻/DN at gain 1 for the 4x4-binned frame, 4 e⁻/DN
  full resolution; variance = signal·g/(e⁻/DN)) and read noise (0.5 DN binned, 2 DN full).
* the off-band camera may be misregistered: its pixel (x, y) views the scene point of the
  on-band pixel (x + dx, y + dy) (``SceneParameters.misregistration_px``).
* a ``Dark`` frame has no light (only offset, dark current and noise).
"""
from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

from pycam.sim.plume import BINNED_SHAPE, PIXEL_PITCH_M, PlumeField, focal_length_m, pixel_centres
from pycam.reference_spectra import ReferenceSet

#: Gas-cell column per ppm·m (molec cm⁻²), ideal gas at 273.15 K and 1 atm.
MOLEC_CM2_PER_PPMM = 2.687e15
MAX_DN = 1023
CELL_WINDOW_TRANSMISSION = 0.95


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

    def __init__(self, references: ReferenceSet, band_filter: BandFilter) -> None:
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
        self.table = np.exp(-np.outer(self.columns, self.sigma)) @ self.weights

    def exact(self, column: float) -> float:
        return float(np.sum(self.weights * np.exp(-self.sigma * column)))

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
                 full_resolution: bool = False, noise: bool = True) -> None:
        if band not in FILTERS:
            raise ValueError(f"band must be 'on' or 'off', got {band!r}")
        self.field = field
        self.band = band
        self.seed = int(seed)
        self.noise = noise
        self.shape = (1944, 2592) if full_resolution else BINNED_SHAPE
        self.full_resolution = full_resolution
        self.transmission = BandTransmission(references, FILTERS[band])
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

    def columns(self, t: float) -> np.ndarray:
        return self.field.column_image_fast(t, self.shape, self.registration_offset)

    def expected_counts(self, t: float, exposure_us: int, gain: float, frame_type: str = "Plume",
                        brightness: float = 1.0, columns: np.ndarray | None = None) -> np.ndarray:
        """The noise-free, unclipped mean counts (float32)."""
        exposure_s = exposure_us * 1e-6
        dark_part = self.offset + (gain * exposure_s) * self.dark_rate
        if frame_type == "Dark":
            return dark_part
        light = self.flat * np.float32(illumination(t, brightness))
        if frame_type in ("Plume", "Test"):
            cols = self.columns(t) if columns is None else columns
            light = light * self.transmission(cols).astype(np.float32)
        elif frame_type.endswith("ppmm"):
            ppmm = int(frame_type[:-4])
            light = light * np.float32(CELL_WINDOW_TRANSMISSION * self.transmission.exact(ppmm * MOLEC_CM2_PER_PPMM))
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
            "cell_window_transmission": CELL_WINDOW_TRANSMISSION,
            "shape": list(self.shape),
        }

