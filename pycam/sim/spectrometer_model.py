"""Simulated UV spectrometer (Flame-S like): 2048-pixel spectra of the plume in the FOV.

Forward model (the same construction an iFit-style retrieval inverts, so a retrieval with the
same reference set returns the simulated column)::

    I_hr(λ) = I0*(λ) · P(λ) · exp(−σ_SO2(λ)·S_fov − σ_O3(λ)·O3 − Ring(λ)·a_ring)
    I_pix   = interp_linear(λ_pix, (G ⊗ I_hr)(λ))        on the reference's 0.01 nm grid
    counts  = K · t_int · L(t) · I_pix / N  + dark + noise,   clipped at 65535

* ``I0*`` the reference set's solar spectrum (native 0.01 nm grid; SAO2010 or synthetic);
  σ resampled linearly to that grid.
* ``P(λ) = 1 − 0.55·x − 0.35·x²``, ``x = (λ − 330 nm)/80 nm`` (smooth instrument/sky shape).
* ``G`` symmetric super-Gaussian ``exp(−|2Δλ/FWEM|^k)``, FWEM = 0.6 nm, k = 2.2 (a_w = a_k = 0),
  sampled at the grid step over ±2·FWEM and normalised to unit sum; ``np.convolve(…, 'same')``.
* pixel wavelengths ``λ_i = 251.5 + 0.085·i − 4.53e-6·i²`` nm (i = 0…2047; 251.5–406.5 nm).
* light dilution (realistic scenes): ``exp(−σ_SO2·S)`` becomes ``exp(−σ_SO2·S)·e(λ) + 1 − e(λ)``
  with ``e(λ) = exp(−ε(λ)·d_plume)`` and ε(λ) a power law through the cameras' ε_on (310 nm) and
  ε_off (330 nm): the sky light scattered between plume and spectrometer (as for the cameras).
* ``S_fov`` = mean plume column over the FOV disk (``PlumeField.fov_column``), evaluated at
  the trigger time (no motion during the integration).  O3 = 8e18 molec cm⁻² and a_ring = 0.02
  are constant.  ``L(t)`` is the scene illumination shared with the cameras.
* ``N`` = max of G ⊗ (I0*·P·exp(−σ_O3·O3 − Ring·a_ring)) over 300–340 nm, so that
  ``K = 50 000`` counts s⁻¹ is the clear-sky peak rate in the auto-integration window.
* dark = 1000 counts + fixed pattern (std 8) + 20 counts s⁻¹ · t_int; pixel 0 reads ~17 and
  pixel 1 ~30 670 counts (Flame-S status pixels, as in real PyCam spectra).
* noise (``noise=True``): shot noise (2 e⁻ per count, on the light and dark-current signal) and
  read noise (6 counts) per read; the returned spectrum is the mean of ``coadd`` reads.
"""
from __future__ import annotations

import math

import numpy as np

from pycam.sim.optics import frame_rng, illumination
from pycam.sim.plume import PlumeField
from pycam.reference_spectra import ReferenceSet

PIXELS = 2048
MAX_COUNTS = 65535.0
WAVELENGTH_COEFFS = (251.5, 0.085, -4.53e-6)   # λ = c0 + c1·i + c2·i²
ILS_FWEM_NM = 0.6
ILS_K = 2.2
O3_COLUMN = 8e18
RING_AMOUNT = 0.02
PEAK_RATE = 50_000.0          # clear-sky counts/s at the 300–340 nm maximum (L = 1)
DARK_LEVEL = 1000.0
DARK_RATE = 20.0
E_PER_COUNT = 2.0
READ_NOISE = 6.0
POLY_CENTRE_NM, POLY_SCALE_NM, POLY_COEFFS = 330.0, 80.0, (1.0, -0.55, -0.35)
SATURATION_WINDOW = (300.0, 340.0)


def pixel_wavelengths() -> np.ndarray:
    i = np.arange(PIXELS, dtype=np.float64)
    c0, c1, c2 = WAVELENGTH_COEFFS
    return c0 + c1 * i + c2 * i * i


def super_gaussian_kernel(step_nm: float, fwem: float = ILS_FWEM_NM, k: float = ILS_K) -> np.ndarray:
    half = int(math.ceil(2 * fwem / step_nm))
    x = np.arange(-half, half + 1) * step_nm
    g = np.exp(-np.abs(2 * x / fwem) ** k)
    return g / g.sum()


class SpectrometerModel:
    """Spectra of a :class:`PlumeField` scene (see the module docstring); ``field=None`` gives a
    model that only makes spectra for given columns (:meth:`spectrum_for_column`)."""

    def __init__(self, field: PlumeField | None, references: ReferenceSet, seed: int = 1, noise: bool = True,
                 extinction: tuple[float, float] = (0.0, 0.0), plume_distance_m: float = 0.0) -> None:
        self.field = field
        self.extinction = (float(extinction[0]), float(extinction[1]))
        self.plume_distance_m = float(plume_distance_m)
        self.references = references
        self.seed = int(seed)
        self.noise = noise
        self.wavelengths = pixel_wavelengths()
        solar = references.solar
        lo, hi = self.wavelengths[0] - 1.5, self.wavelengths[-1] + 1.5
        keep = (solar.wavelength >= lo) & (solar.wavelength <= hi)
        grid = solar.wavelength[keep]
        steps = np.diff(grid)
        if grid.size < 100 or grid[0] > lo + 0.05 or grid[-1] < hi - 0.05 or np.ptp(steps) > 1e-6 * 50:
            # not a uniform grid covering the range: resample the solar spectrum to 0.01 nm
            grid = np.arange(lo, hi + 1e-9, 0.01)
            self.solar = solar.resample(grid, fill=None)
        else:
            self.solar = solar.values[keep]
        self.grid = grid
        self.step = float(np.mean(np.diff(grid)))
        xs = references.cross_sections
        self.sigma_so2 = xs["SO2"].resample(grid, fill=0.0)
        self.sigma_o3 = xs["O3"].resample(grid, fill=0.0)
        self.ring = xs["Ring"].resample(grid, fill=None)
        x = (grid - POLY_CENTRE_NM) / POLY_SCALE_NM
        self.poly = POLY_COEFFS[0] + POLY_COEFFS[1] * x + POLY_COEFFS[2] * x * x
        self.kernel = super_gaussian_kernel(self.step)
        self.dilution = self._dilution_transmission(grid)
        self.shift_nm = 0.0
        self._background = self.solar * self.poly * np.exp(-self.sigma_o3 * O3_COLUMN - self.ring * RING_AMOUNT)
        window = (self.wavelengths >= SATURATION_WINDOW[0]) & (self.wavelengths <= SATURATION_WINDOW[1])
        self.norm = float(np.max(self._convolved(0.0)[window]))
        rng = frame_rng(self.seed, "spectrometer-fixed-pattern")
        dark = DARK_LEVEL + 8.0 * rng.standard_normal(PIXELS)
        dark[0], dark[1] = 17.0, 30670.0
        self.dark_pattern = dark

    def _dilution_transmission(self, grid: np.ndarray) -> np.ndarray | None:
        """exp(−ε(λ)·d) on the model grid; ε(λ) = ε_on·(λ/310 nm)^−k through the camera bands'
        values (ε_off at 330 nm); None without light dilution."""
        eps_on, eps_off = self.extinction
        if self.plume_distance_m <= 0 or (eps_on <= 0 and eps_off <= 0):
            return None
        if eps_on > 0 and eps_off > 0:
            k = math.log(eps_on / eps_off) / math.log(330.0 / 310.0)
            eps = eps_on * (grid / 310.0) ** (-k)
        else:
            eps = max(eps_on, eps_off) * (grid / (310.0 if eps_on > 0 else 330.0)) ** -4.0
        return np.exp(-eps * self.plume_distance_m)

    def set_instrument(self, *, fwem: float = ILS_FWEM_NM, k: float = ILS_K, shift_nm: float = 0.0,
                       measured: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Change the instrument: its line shape (a super-Gaussian of ``fwem``/``k``, or a
        ``measured`` (offsets from the line centre in nm, intensities) profile resampled
        linearly to the grid, zero outside) and its wavelength-calibration error ``shift_nm``
        (the light at pixel i has wavelength λ_i + shift).  Call it again to let the instrument
        drift (e.g. per spectrum time).  The count normalisation ``N`` stays that of the start."""
        if measured is None:
            if not (fwem > 0 and k > 0):
                raise ValueError(f"line shape: fwem {fwem:g} nm and k {k:g} must be positive")
            self.kernel = super_gaussian_kernel(self.step, fwem, k)
        else:
            x, y = (np.asarray(a, dtype=np.float64) for a in measured)
            half = int(math.ceil(max(-x.min(), x.max()) / self.step))
            g = np.interp(np.arange(-half, half + 1) * self.step, x, y, left=0.0, right=0.0)
            if not g.sum() > 0:
                raise ValueError("line shape: the measured profile has no positive area")
            self.kernel = g / g.sum()
        self.shift_nm = float(shift_nm)

    def _convolved(self, column: float) -> np.ndarray:
        absorbed = np.exp(-self.sigma_so2 * column)
        if self.dilution is not None:       # I = I0·exp(−εd) + I_sky·(1 − exp(−εd)), per wavelength
            absorbed = absorbed * self.dilution + (1.0 - self.dilution)
        hires = self._background * absorbed
        conv = np.convolve(hires, self.kernel, mode="same")
        return np.interp(self.wavelengths + self.shift_nm, self.grid, conv)

    def expected_counts(self, column: float, integration_ms: int, brightness: float = 1.0, t: float = 0.0,
                        frame_type: str = "Plume") -> np.ndarray:
        """Noise-free mean counts (unclipped) for an SO2 column in the FOV."""
        t_s = integration_ms * 1e-3
        dark = self.dark_pattern + DARK_RATE * t_s
        if frame_type == "Dark":
            return dark.copy()
        if frame_type == "Clear":
            column = 0.0
        light = PEAK_RATE * t_s * illumination(t, brightness) * self._convolved(column) / self.norm
        return dark + light

    def _add_noise(self, mean: np.ndarray, coadd: int, rng: np.random.Generator) -> np.ndarray:
        if self.noise:
            signal = np.maximum(mean - self.dark_pattern, 0.0)
            std = np.sqrt(signal / E_PER_COUNT + READ_NOISE ** 2) / math.sqrt(max(1, coadd))
            mean = mean + std * rng.standard_normal(PIXELS)
        return np.clip(mean, 0.0, MAX_COUNTS)

    def spectrum(self, t: float, integration_ms: int, coadd: int = 1, frame_type: str = "Plume",
                 brightness: float = 1.0) -> tuple[np.ndarray, float]:
        """(counts, S_fov): a pure function of (seed, t, integration, coadd, type, brightness)."""
        if self.field is None:
            raise ValueError("this spectrometer model has no scene: use spectrum_for_column")
        column = self.field.fov_column(t) if frame_type in ("Plume", "Test") else 0.0
        mean = self.expected_counts(column, integration_ms, brightness, t, frame_type)
        rng = frame_rng(self.seed, "spectrum", frame_type, int(round(t * 1000)), integration_ms, coadd,
                        int(round(brightness * 1e6)))
        return self._add_noise(mean, coadd, rng), column

    def spectrum_for_column(self, column: float, integration_ms: int = 1000, coadd: int = 1,
                            frame_type: str = "Plume", realisation: int = 0) -> np.ndarray:
        """Counts for a given SO2 column (no scene needed), e.g. to test a retrieval over a range
        of columns; with noise, ``realisation`` selects the (deterministic) noise draw."""
        mean = self.expected_counts(float(column), integration_ms, 1.0, 0.0, frame_type)
        rng = frame_rng(self.seed, "column-spectrum", frame_type, int(realisation), integration_ms, coadd,
                        int(round(float(column) / 1e12)))
        return self._add_noise(mean, coadd, rng)

    def describe(self) -> dict:
        """The forward-model constants, for truth.json."""
        return {
            "pixels": PIXELS,
            "wavelength_nm": {"formula": "c0 + c1*i + c2*i^2", "coefficients": list(WAVELENGTH_COEFFS)},
            "ils": {"shape": "super-Gaussian exp(-|2*dl/fwem|^k), symmetric, unit sum on the 0.01 nm grid",
                    "fwem_nm": ILS_FWEM_NM, "k": ILS_K, "a_w": 0.0, "a_k": 0.0},
            "o3_column_molec_cm2": O3_COLUMN,
            "ring_amount": RING_AMOUNT,
            "polynomial": {"x": f"(wavelength - {POLY_CENTRE_NM}) / {POLY_SCALE_NM}", "coefficients": list(POLY_COEFFS)},
            "peak_rate_counts_s": PEAK_RATE,
            "dark_level_counts": DARK_LEVEL, "dark_rate_counts_s": DARK_RATE,
            "status_pixels": {"0": 17.0, "1": 30670.0},
            "electrons_per_count": E_PER_COUNT, "read_noise_counts": READ_NOISE,
            "noise": self.noise,
            "saturation_counts": MAX_COUNTS,
            "light_dilution": {"eps_on_per_m_at_310nm": self.extinction[0], "eps_off_per_m_at_330nm": self.extinction[1],
                               "plume_distance_m": self.plume_distance_m,
                               "model": "I = I_sky*exp(-sigma*S)*exp(-eps(l)*d) + I_sky*(1 - exp(-eps(l)*d)), "
                                        "eps(l) = eps_on*(l/310)^-k through eps_off at 330 nm (k = 4 if one is 0)"},
        }
