"""The simulated volcanic scene: a drifting SO2 plume with an exactly known column field.

Geometry (all image coordinates are **binned 648x486 pixels**, origin at the top-left pixel
centre, x to the right, y down; full-resolution 2592x1944 frames sample the same scene at
``x_bin = (x_full + 0.5) / 4 - 0.5``):

* camera: pixel pitch ``p = 5.6 µm`` (binned; 1.4 µm full resolution), focal length
  ``f = (648 * p / 2) / tan(14°) = 7.2772 mm`` (28° horizontal field of view on 648 pixels);
* plume distance ``d`` (m), the same for every pixel; pixel footprint ``Δx = d·p/f`` (m);
* the plume travels in the image along the unit vector ``e = (cos θ, −sin θ)``
  (θ = ``wind_direction_deg``, counter-clockwise from +x as seen on the screen, so a
  positive angle rises) at ``u = v / Δx`` binned px s⁻¹ (``v`` = wind speed, m s⁻¹);
* plume coordinates of a pixel: along-flow ``ξ = (r − r0)·e`` and cross-flow
  ``n = (r − r0)·(sin θ, cos θ)`` relative to an axis point ``r0`` (``plume_axis_xy``).

Column field (molec cm⁻²), rigid advection::

    S(x, y, t) = q(ξ − u·t) · A((ξ − u·t) mod P, n)

* ``A`` is a periodic-in-ξ (period ``P`` = 1300 px) plume body: a Gaussian cross-section
  (σ = 40 px) of meandering centre δ(ξ) and varying width w(ξ), times
  ``max(0.05, 1 + 0.35·T_coarse + 0.2·T_fine)`` with two unit-std random textures
  (wavelengths ~40–160 px: the large eddies that make the spectrometer FOV identifiable;
  ~8–30 px: the small ones optical flow locks on to); it is **normalised per ξ** so that
  ∫A dn = Q (molec cm⁻² px) exactly, with ``Q = Φ / (K·v·Δx)`` and
  ``K = 1e4·M_SO2/N_A/1000`` kg m⁻² per molec cm⁻²;
* ``q`` is the puff (mass) modulation, 1 + a sum of cosines of period ``L_q`` =
  ``puff_length_px`` (std 0.12, wavelengths >= 30 px): the mass fluctuations that
  cross-correlation needs (the integrated column along a PCS line is Q·q).

Hence the flux through any line perpendicular to the flow is ``Φ·q(ξ_line − u·t)`` at every
instant (Σ S·v·Δx over the line's pixels; the pixel sum equals the integral to better than
1e-4), and its time average is exactly Φ: over a whole period ``L_q/u`` for any run, and
over a run of N samples spaced ``dt`` when ``L_q = N·u·dt / j`` for an integer j and no
harmonic m of q has m·j divisible by N (``pycam simulate`` sets this up).  t is POSIX time (s).

Vent plume (``vent_xy`` set; the realistic scenes): the axis point is ``vent_rise_px`` above
the vent across the flow, so the vent sits at ξ = 0, n = h.  With ``ξ⁺ = max(ξ, 0)``, the
centre line ``c(ξ) = h·exp(−ξ⁺/L_b)`` (the plume rises from the vent and bends over into the
wind) and the stretch ``s(ξ) = (σ_v + k·ξ⁺)/σ`` (spreading)::

    S(ξ, n, t) = q(ξ − u·t) · A((ξ − u·t) mod P, (n − c(ξ))/s(ξ)) / s(ξ) · o(ξ)

with a smooth onset ``o`` from 0 at ξ = −4 px to 1 at ξ = 8 px (nothing upstream of the vent).
∫S dn is still Q·q(ξ − u·t) for every ξ ≥ 8 px, so the flux through any line perpendicular to
the flow downstream of the vent is exactly Φ·q, as for the band; the texture still advects at u
along the flow (and spreads across it, which adds no flux through a perpendicular line).

Everything is a pure function of the parameters (seeded); nothing happens at import.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

#: Molar mass of SO2 used for masses and fluxes (g mol⁻¹), PyCam's value.
M_SO2 = 64.066
#: Avogadro constant (mol⁻¹).
N_A = 6.02214076e23
#: kg m⁻² per molec cm⁻²: 1e4 · M_SO2 / N_A / 1000.
KG_M2_PER_MOLEC_CM2 = 1e4 * M_SO2 / N_A / 1000.0
#: Binned image size (cols, rows) and the full sensor size.
BINNED_SHAPE = (486, 648)
FULL_SHAPE = (1944, 2592)
BINNING = 4
#: Binned pixel pitch (m) and the horizontal field of view (degrees).
PIXEL_PITCH_M = 5.6e-6
FOV_X_DEG = 28.0


def focal_length_m(pixel_pitch_m: float = PIXEL_PITCH_M, columns: int = BINNED_SHAPE[1],
                   fov_x_deg: float = FOV_X_DEG) -> float:
    """f = (columns·p/2) / tan(FOV/2): 7.2772 mm for 648 px of 5.6 µm over 28°."""
    return (columns * pixel_pitch_m / 2.0) / math.tan(math.radians(fov_x_deg / 2.0))


@dataclasses.dataclass(frozen=True)
class SceneParameters:
    """Everything that defines a scene; all positions in binned pixels."""

    seed: int = 1
    emission_rate_kg_s: float = 5.0
    wind_speed_m_s: float = 8.0
    wind_direction_deg: float = 0.0
    plume_distance_m: float = 5000.0
    plume_axis_xy: tuple[float, float] = (324.0, 243.0)
    plume_sigma_px: float = 40.0          # mean cross-wind standard deviation
    meander_px: float = 6.0               # rms-ish centre-line meander amplitude
    width_variation: float = 0.1          # relative width modulation
    texture_amplitude: float = 0.35       # relative coarse turbulent texture (std), ~40-160 px
    fine_texture_amplitude: float = 0.2   # relative fine texture (std), ~8-30 px
    puff_amplitude: float = 0.12          # std of the mass modulation q
    puff_length_px: float = 1300.0        # spatial period of q (L_q)
    puff_max_harmonic: int = 40           # highest harmonic of q
    # Exact run mean: with N samples spanning j whole puff periods (L_q = N·u·dt / j), harmonics
    # m with m·j divisible by N are left out, so the N-sample mean of q is exactly 1.
    puff_balance_samples: int = 0         # N (0: off)
    puff_balance_periods: int = 1         # j
    body_period_px: float = 1300.0        # spatial period of the body A (P)
    fov_xy: tuple[float, float] | None = None   # spectrometer FOV centre; None: on the axis, 78 px downstream
    fov_radius_px: float = 10.0
    misregistration_px: tuple[float, float] = (0.0, 0.0)  # B views the scene point of A's pixel (x+dx, y+dy)
    misregistration_rot_deg: float = 0.0  # rotation of B against A about the image centre (see optics)
    # A plume from a vent (None: the band of the clean scene).  The plume leaves the vent rising
    # vent_rise_px across the flow over bend_length_px, and spreads from vent_sigma_px by
    # spread_per_px per px downstream (see "Vent plume" in the module docstring).
    vent_xy: tuple[float, float] | None = None
    vent_rise_px: float = 60.0
    bend_length_px: float = 45.0
    vent_sigma_px: float = 12.0
    spread_per_px: float = 0.11

    def __post_init__(self) -> None:
        checks = [
            (self.emission_rate_kg_s >= 0, "emission_rate_kg_s must be >= 0"),
            (self.wind_speed_m_s > 0, "wind_speed_m_s must be > 0"),
            (self.plume_distance_m > 0, "plume_distance_m must be > 0"),
            (self.plume_sigma_px >= 3, "plume_sigma_px must be >= 3"),
            (0 <= self.puff_amplitude < 0.5, "puff_amplitude must be in [0, 0.5)"),
            (0 <= self.texture_amplitude < 0.6, "texture_amplitude must be in [0, 0.6)"),
            (0 <= self.fine_texture_amplitude < 0.6, "fine_texture_amplitude must be in [0, 0.6)"),
            (0 <= self.width_variation < 0.5, "width_variation must be in [0, 0.5)"),
            (self.puff_length_px >= 8, "puff_length_px must be >= 8"),
            (self.puff_max_harmonic >= 1, "puff_max_harmonic must be >= 1"),
            (self.puff_balance_samples >= 0 and self.puff_balance_periods >= 1, "bad puff balance"),
            (self.body_period_px >= 64, "body_period_px must be >= 64"),
            (self.fov_radius_px > 0, "fov_radius_px must be > 0"),
            (abs(self.misregistration_rot_deg) <= 5, "misregistration_rot_deg must be within ±5"),
            (self.vent_sigma_px >= 1 and self.spread_per_px >= 0 and self.bend_length_px > 0,
             "vent plume: need vent_sigma_px >= 1, spread_per_px >= 0, bend_length_px > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"scene: {message}")


def _harmonic_sum(x: np.ndarray, period: float, amplitudes: np.ndarray, phases: np.ndarray,
                  harmonics: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    for a, ph, m in zip(amplitudes, phases, harmonics):
        out += a * np.cos(2 * np.pi * m * x / period + ph)
    return out


class PlumeField:
    """The column field S(x, y, t) of :class:`SceneParameters` (see the module docstring)."""

    #: grid step of the tabulated body A (binned px)
    STEP = 0.5
    #: texture band-pass (px): spectrum exp(-(k·small)²/2)·(1 - exp(-(k·large)²/2)), k in cycles/px
    texture_small_px = 40.0
    texture_large_px = 160.0
    #: the fine texture (what optical flow locks on to)
    fine_small_px = 8.0
    fine_large_px = 30.0
    #: shortest wavelength of the puff modulation q (px)
    puff_min_wavelength_px = 30.0

    def __init__(self, params: SceneParameters) -> None:
        self.params = params
        self.focal_length_m = focal_length_m()
        self.pixel_size_m = params.plume_distance_m * PIXEL_PITCH_M / self.focal_length_m
        self.speed_px_s = params.wind_speed_m_s / self.pixel_size_m
        theta = math.radians(params.wind_direction_deg)
        self.along = np.array([math.cos(theta), -math.sin(theta)])
        self.across = np.array([math.sin(theta), math.cos(theta)])
        if params.vent_xy is None:
            self.axis = np.asarray(params.plume_axis_xy, dtype=np.float64)
        else:   # the axis point lies vent_rise_px above the vent (across the flow): the vent is at ξ = 0
            self.axis = np.asarray(params.vent_xy, dtype=np.float64) - params.vent_rise_px * self.across
        # Q: integral of the column across the plume in molec cm^-2 · px
        self.q_integral = params.emission_rate_kg_s / (
            KG_M2_PER_MOLEC_CM2 * params.wind_speed_m_s * self.pixel_size_m)
        rng = np.random.default_rng([params.seed, 0x5C3E])
        self._build_puffs(rng)
        self._build_body(rng)

    # ------------------------------------------------------------------ construction
    def _build_puffs(self, rng: np.random.Generator) -> None:
        p = self.params
        # Harmonics m = 1..M of L_q with wavelengths >= puff_min_wavelength_px and M <= puff_max_harmonic.
        m_max = int(max(1, min(p.puff_max_harmonic, p.puff_length_px // self.puff_min_wavelength_px)))
        harmonics = np.arange(1, m_max + 1)
        if p.puff_balance_samples > 1:
            harmonics = harmonics[(harmonics * p.puff_balance_periods) % p.puff_balance_samples != 0]
        m_max = harmonics.size
        weights = 1.0 / (1.0 + (harmonics / 4.0) ** 2)
        amplitudes = rng.normal(size=m_max) * weights
        rms = math.sqrt(0.5 * float(np.sum(amplitudes ** 2))) or 1.0
        self._puff_amp = amplitudes * (p.puff_amplitude / rms)
        self._puff_phase = rng.uniform(0, 2 * np.pi, m_max)
        self._puff_harm = harmonics
        # Guarantee q > 0.1 everywhere by shrinking the amplitudes when needed.
        grid = np.linspace(0, p.puff_length_px, 4096, endpoint=False)
        low = float(np.min(self.puff_factor_exact(grid)))
        if low < 0.1:
            self._puff_amp = self._puff_amp * (0.9 / (1.0 - low))
        # q tabulated at <= 0.02 px for fast per-pixel evaluation (error < 1e-5 relative)
        n_tab = int(math.ceil(p.puff_length_px / 0.02))
        self._puff_step = p.puff_length_px / n_tab
        self._puff_table = self.puff_factor_exact(self._puff_step * np.arange(n_tab + 1))

    def puff_factor_exact(self, xi: np.ndarray) -> np.ndarray:
        """q(ξ) = 1 + Σ a_m cos(2π m ξ / L_q + φ_m): the mass modulation (mean exactly 1)."""
        xi = np.asarray(xi, dtype=np.float64)
        return 1.0 + _harmonic_sum(xi, self.params.puff_length_px, self._puff_amp, self._puff_phase,
                                   self._puff_harm)

    def _build_body(self, rng: np.random.Generator) -> None:
        p = self.params
        n_xi = int(math.ceil(p.body_period_px / self.STEP))
        self._xi_step = p.body_period_px / n_xi
        n_half = int(math.ceil((5.5 * p.plume_sigma_px * (1 + 2 * p.width_variation) + 3 * p.meander_px) / self.STEP))
        self._n0 = -n_half * self.STEP
        n = self._n0 + self.STEP * np.arange(2 * n_half + 1)
        xi = self._xi_step * np.arange(n_xi)
        # meander and width: a few long harmonics of P
        harm = np.arange(1, 7)
        mean_amp = rng.normal(size=harm.size) / harm
        mean_amp *= p.meander_px / max(1e-12, math.sqrt(0.5 * float(np.sum(mean_amp ** 2))))
        centre = _harmonic_sum(xi, p.body_period_px, mean_amp, rng.uniform(0, 2 * np.pi, harm.size), harm)
        width_amp = rng.normal(size=harm.size) / harm
        width_amp *= p.width_variation / max(1e-12, math.sqrt(0.5 * float(np.sum(width_amp ** 2))))
        width_rel = 1.0 + _harmonic_sum(xi, p.body_period_px, width_amp, rng.uniform(0, 2 * np.pi, harm.size), harm)
        width = p.plume_sigma_px * np.clip(width_rel, 0.5, 1.5)
        gauss = np.exp(-0.5 * ((n[:, None] - centre[None, :]) / width[None, :]) ** 2)
        coarse = self._texture(rng, n.size, n_xi, self.texture_small_px, self.texture_large_px)
        fine = self._texture(rng, n.size, n_xi, self.fine_small_px, self.fine_large_px)
        texture = p.texture_amplitude * coarse + p.fine_texture_amplitude * fine
        body = gauss * np.clip(1.0 + texture, 0.05, None)
        norm = body.sum(axis=0) * self.STEP          # ∫ body dn (px), per ξ column
        body *= self.q_integral / norm[None, :]
        # one extra column = column 0, so that bilinear interpolation wraps around ξ
        self._body = np.concatenate([body, body[:, :1]], axis=1)
        self._n_count = n.size

    def _texture(self, rng: np.random.Generator, rows: int, cols: int, small_px: float, large_px: float) -> np.ndarray:
        """Zero-mean, unit-std random field, periodic, with wavelengths mostly between
        ``small_px`` and ``large_px`` (band-pass exp(-(k·small)²/2)·(1 - exp(-(k·large)²/2)))."""
        ky = np.fft.fftfreq(rows, d=self.STEP)[:, None]
        kx = np.fft.rfftfreq(cols, d=self._xi_step)[None, :]
        k = np.hypot(kx, ky)
        shape = np.exp(-0.5 * (k * small_px) ** 2) * (1 - np.exp(-0.5 * (k * large_px) ** 2))
        spectrum = (rng.standard_normal(shape.shape) + 1j * rng.standard_normal(shape.shape)) * shape
        field = np.fft.irfft2(spectrum, s=(rows, cols))
        field -= field.mean()
        std = field.std()
        return field / std if std > 0 else field

    # ------------------------------------------------------------------ evaluation
    def plume_coordinates(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ξ, n) of image points (binned px)."""
        dx = np.asarray(xs, dtype=np.float64) - self.axis[0]
        dy = np.asarray(ys, dtype=np.float64) - self.axis[1]
        return dx * self.along[0] + dy * self.along[1], dx * self.across[0] + dy * self.across[1]

    def footprint(self, xi: np.ndarray, n: np.ndarray) -> dict:
        """The time-independent part of :meth:`columns_from_coordinates` for points (ξ, n): the
        body row and weight of every point that can hold plume (reuse it for many frames)."""
        xi = np.asarray(xi, dtype=np.float64)
        n = np.asarray(n, dtype=np.float64)
        p = self.params
        factor = None
        if p.vent_xy is not None:   # vent plume: bent centre line and spreading cross-section
            xi_v = np.maximum(xi, 0.0)
            centre = p.vent_rise_px * np.exp(-xi_v / p.bend_length_px)
            stretch = (p.vent_sigma_px + p.spread_per_px * xi_v) / p.plume_sigma_px
            n = (n - centre) / stretch
            onset = np.clip((xi + 4.0) / 12.0, 0.0, 1.0)
            factor = onset * onset * (3.0 - 2.0 * onset) / stretch
        row_pos = (n - self._n0) / self.STEP
        weight = ((row_pos >= 0) & (row_pos <= self._n_count - 1)).astype(np.float64)
        if factor is not None:
            weight = weight * factor
        idx = np.flatnonzero(weight)
        row_pos = np.clip(row_pos.ravel()[idx], 0, self._n_count - 1 - 1e-9)
        j0 = np.floor(row_pos).astype(np.intp)
        return {"shape": xi.shape, "idx": idx, "xi": xi.ravel()[idx], "j0": j0, "fy": row_pos - j0,
                "weight": weight.ravel()[idx]}

    def columns_on(self, footprint: dict, t: float) -> np.ndarray:
        """S (molec cm⁻²) at the points of a :meth:`footprint` and POSIX time t."""
        p = self.params
        shifted = footprint["xi"] - self.speed_px_s * float(t)
        body_pos = np.mod(shifted, p.body_period_px) / self._xi_step
        i0 = np.minimum(np.floor(body_pos).astype(np.intp), self._body.shape[1] - 2)
        fx = body_pos - i0
        j0, fy = footprint["j0"], footprint["fy"]
        b = self._body
        top = b[j0, i0] * (1 - fx) + b[j0, i0 + 1] * fx
        bottom = b[j0 + 1, i0] * (1 - fx) + b[j0 + 1, i0 + 1] * fx
        body = (top * (1 - fy) + bottom * fy) * footprint["weight"]
        puff_pos = np.mod(shifted, p.puff_length_px) / self._puff_step
        k0 = np.minimum(puff_pos.astype(np.intp), self._puff_table.size - 2)
        fk = puff_pos - k0
        puff = self._puff_table[k0] * (1 - fk) + self._puff_table[k0 + 1] * fk
        out = np.zeros(footprint["shape"], dtype=np.float64)
        out.flat[footprint["idx"]] = body * puff
        return out

    def columns_from_coordinates(self, xi: np.ndarray, n: np.ndarray, t: float) -> np.ndarray:
        """S (molec cm⁻²) at plume coordinates (ξ, n) and POSIX time t."""
        return self.columns_on(self.footprint(xi, n), t)

    def columns(self, xs: np.ndarray, ys: np.ndarray, t: float) -> np.ndarray:
        """S (molec cm⁻²) at image points (binned px) and POSIX time t."""
        xi, n = self.plume_coordinates(xs, ys)
        return self.columns_from_coordinates(xi, n, t)

    def column_image(self, t: float, shape: tuple[int, int] = BINNED_SHAPE,
                     offset_xy: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """The column field on a pixel grid of ``shape`` (binned or full resolution)."""
        xs, ys = pixel_centres(shape)
        return self.columns(xs[None, :] + offset_xy[0], ys[:, None] + offset_xy[1], t)

    def column_image_fast(self, t: float, shape: tuple[int, int] = BINNED_SHAPE,
                          offset_xy: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Like :meth:`column_image`; larger-than-binned frames are bilinearly upsampled from
        the binned field (same pixel-centre mapping; the field has no structure below ~12 px)."""
        if tuple(shape) == BINNED_SHAPE:
            return self.column_image(t, shape, offset_xy)
        import cv2

        binned = self.column_image(t, BINNED_SHAPE, offset_xy).astype(np.float32)
        return cv2.resize(binned, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float64)

    # ------------------------------------------------------------------ truth helpers
    def flux_kg_s(self, columns: np.ndarray, normal_speed_m_s: float) -> float:
        """Φ = Σ S·v⊥·Δx·K for columns sampled at unit (pixel) steps along a line."""
        return float(np.sum(columns) * normal_speed_m_s * self.pixel_size_m * KG_M2_PER_MOLEC_CM2)

    def fov_mask(self, shape: tuple[int, int] = BINNED_SHAPE) -> np.ndarray:
        xs, ys = pixel_centres(shape)
        cx, cy = self.fov_centre
        scale = shape[1] / BINNED_SHAPE[1]
        r = self.params.fov_radius_px * scale
        xc, yc = (cx + 0.5) * scale - 0.5, (cy + 0.5) * scale - 0.5
        return (xs[None, :] - xc) ** 2 + (ys[:, None] - yc) ** 2 <= r * r

    @property
    def fov_centre(self) -> tuple[float, float]:
        if self.params.fov_xy is not None:
            return (float(self.params.fov_xy[0]), float(self.params.fov_xy[1]))
        # on the plume axis, 78 px downstream of the axis point (402, 243 for the defaults);
        # vent plume: 200 px downstream of the vent
        x, y = self.axis + (78.0 if self.params.vent_xy is None else 200.0) * self.along
        return (float(round(np.clip(x, 20, BINNED_SHAPE[1] - 20))), float(round(np.clip(y, 20, BINNED_SHAPE[0] - 20))))

    def fov_column(self, t: float) -> float:
        """The plume column averaged over the spectrometer FOV disk (binned pixels)."""
        mask = self.fov_mask()
        ys, xs = np.nonzero(mask)
        return float(np.mean(self.columns(xs.astype(np.float64), ys.astype(np.float64), t)))


def pixel_centres(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x (cols,) and y (rows,) of pixel centres in binned coordinates for a frame of ``shape``."""
    rows, cols = shape
    scale = BINNED_SHAPE[1] / cols
    xs = (np.arange(cols) + 0.5) * scale - 0.5
    ys = (np.arange(rows) + 0.5) * scale - 0.5
    return xs, ys
