"""Histogram analysis of the flow field near a PCS line, and the hybrid replacement of vectors.

Orientation convention (pyplis): ``phi = atan2(dx, -dy)`` in degrees, 0 = up (towards
negative y), 90 = right.

:func:`analyse_flow_histogram` takes candidate flow vectors (in the chain: a band of
``band_px`` either side of the line, default 6, sampled every pixel along it, where the column
is at least ``min_cd``); only vectors longer than ``min_length`` count.  Three methods
(``flow_hist_method``):

``peak`` (default) - the main peak only:

1. orientation histogram with ``hist_dir_binres`` bins; the main peak is the fullest bin;
2. a Gaussian is fitted to the main peak by moments: mean and standard deviation of the
   orientations within +-45 deg of the peak, then iterated twice within +-3 sigma (a robust
   stand-in for pyplis's multi-Gaussian fit; circular, so peaks near +-180 deg work);
3. vectors within ``mu +- hist_sigma_tol * sigma`` form the main flow; the length mean and
   standard deviation come from them, weighted by the column at each vector (the plume core
   carries the flux and constrains the flow best; unweighted, the weak-contrast plume edges
   pull the mean length down by ~5 % on simulated plumes);
4. the analysis is rejected (``ok = False``) if vectors outside the main peak are more than
   20 % of the long vectors (a second motion: pyplis's multi-Gauss mode rejects such a field
   too, when its other Gaussians hold more than 20 %), or if fewer than ``min_count_frac`` of
   all candidate vectors remain in the main peak.

``moments`` - pyplis's ``OptflowFarneback.local_flow_params(dir_multi_gauss=False)``:

1. rejected if fewer than ``min_count_frac`` of the candidates are longer than ``min_length``;
2. ``mu`` and ``sigma`` are the mean and standard deviation of ALL long vectors' orientations
   (every peak of the histogram counts, so a second motion pulls ``mu`` towards it and widens
   ``sigma``);
3. vectors strictly within ``mu +- hist_sigma_tol * sigma`` form the main flow (rejected if
   they are fewer than ``min_count_frac`` of the candidates); length mean and standard
   deviation are theirs, unweighted.

   The moments are those of the vectors themselves.  pyplis takes them from the histograms'
   bin centres (``hist_dir_binres`` deg; 1 px for the lengths), which adds the bin width to
   the spreads and moves the mean length by up to half a pixel: on displacements of 1-2 px
   per image (pyplis's Etna sequence at pyramid level 2) every length falls into one bin,
   pyplis reads ``len_sigma = 0`` and a mean of 1.5 px whatever the vectors are.

``moments_binned`` - the ``moments`` method on the bin centres, as pyplis computes it (to
reproduce pyplis's numbers; equal to 1e-4 on pyplis's test pair and field.  pyplis also drops
lengths up to 1 px from its length histogram whatever its ``min_length``; here ``min_length``
alone decides).

Both moments methods take the orientations relative to the fullest bin, wrapped into +-180 deg
(pyplis does not wrap: a flow pointing straight down, split between -175 and +175 deg,
averages to 0 deg, straight up); with every vector within 180 deg of the fullest bin, as on
pyplis's test pair, that is pyplis's result.

The hybrid mode then keeps each vector along the line whose orientation lies within
``mu +- tol * sigma`` and whose length exceeds ``max(len_mu - len_sigma, min_length)``, and
replaces every other one by the mean displacement vector ``len_mu * (sin mu, -cos mu)``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

SIDE_PEAK_MAX_FRAC = 0.2
#: The methods of :func:`analyse_flow_histogram` (setting ``flow_hist_method``).
HIST_METHODS = ("peak", "moments", "moments_binned")


@dataclasses.dataclass(frozen=True)
class FlowHistogram:
    ok: bool
    dir_mu: float          # degrees
    dir_sigma: float       # degrees
    len_mu: float          # pixels per image step
    len_sigma: float
    n_candidates: int
    n_main: int
    reason: str = ""

    def displacement(self) -> np.ndarray:
        """Mean displacement vector (dx, dy) in pixels."""
        r = math.radians(self.dir_mu)
        return np.array([self.len_mu * math.sin(r), -self.len_mu * math.cos(r)])


def orientation_deg(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(dx, -dy))


def _wrap(angle):
    """Angles (degrees) wrapped into [-180, 180)."""
    return angle - 360.0 * np.floor((angle + 180.0) / 360.0)


def band_points(sampler, band_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel positions in a band of +-``band_px`` around the line (along its normal)."""
    nx, ny = sampler.normal
    offs = np.arange(-band_px, band_px + 1, dtype=float)
    xs = (sampler.x[None, :] + offs[:, None] * nx).ravel()
    ys = (sampler.y[None, :] + offs[:, None] * ny).ravel()
    return np.rint(xs).astype(np.intp), np.rint(ys).astype(np.intp)


def analyse_flow_histogram(dx: np.ndarray, dy: np.ndarray, *, binres: float = 10.0, sigma_tol: float = 2.0,
                           min_length: float = 1.0, min_count_frac: float = 0.1,
                           weights: np.ndarray | None = None, method: str = "peak") -> FlowHistogram:
    """Main flow direction and length from candidate vectors ``dx, dy`` (already masked by
    column), by ``method`` ``"peak"``, ``"moments"`` or ``"moments_binned"`` (see the module docstring).

    ``weights`` (e.g. the columns at the vectors) weight the length mean and spread of the
    main-peak vectors in the ``peak`` method, so that the gas-rich core, where the flow is
    best constrained and most of the flux passes, dominates the histogram velocity; the
    moments methods, like pyplis, ignore them.
    """
    if method not in HIST_METHODS:
        raise ValueError(f"flow histogram method must be one of {HIST_METHODS}, got {method!r}")
    dx = np.asarray(dx, float).ravel()
    dy = np.asarray(dy, float).ravel()
    n_cand = dx.size
    if n_cand == 0:
        return FlowHistogram(False, math.nan, math.nan, math.nan, math.nan, 0, 0, "no pixel above min_cd")
    length = np.hypot(dx, dy)
    long_ = length > min_length
    n_long = int(long_.sum())
    if n_long < 3:
        return FlowHistogram(False, math.nan, math.nan, math.nan, math.nan, n_cand, 0,
                             "fewer than 3 vectors longer than min_length")
    phi = orientation_deg(dx[long_], dy[long_])
    mu = fullest_bin(phi, binres)
    if method in ("moments", "moments_binned"):
        return _moments_histogram(phi, length[long_], mu, n_cand, sigma_tol, min_count_frac, binres,
                                  binned=method == "moments_binned")
    half = 45.0
    sigma = half
    for _ in range(3):
        rel = _wrap(phi - mu)
        sel = np.abs(rel) <= half
        if sel.sum() < 3:
            break
        mu = float(_wrap(mu + rel[sel].mean()))
        sigma = float(max(rel[sel].std(), binres / math.sqrt(12.0) / 2.0))
        half = min(90.0, 3.0 * sigma)
    rel = _wrap(phi - mu)
    main = np.abs(rel) <= sigma_tol * sigma
    n_main = int(main.sum())
    lengths = length[long_][main]
    if n_main and weights is not None:
        w = np.clip(np.asarray(weights, float).ravel()[long_][main], 0, None)
        if w.sum() <= 0:
            w = np.ones_like(lengths)
        len_mu = float(np.average(lengths, weights=w))
        len_sigma = float(np.sqrt(np.average((lengths - len_mu) ** 2, weights=w)))
    else:
        len_mu = float(lengths.mean()) if n_main else math.nan
        len_sigma = float(lengths.std()) if n_main else math.nan
    ok, reason = True, ""
    outside = 1.0 - n_main / n_long
    if outside > SIDE_PEAK_MAX_FRAC:
        ok, reason = False, f"{outside:.0%} of the vectors lie outside the main orientation peak"
    elif n_main < min_count_frac * n_cand:
        ok, reason = False, f"only {n_main} of {n_cand} vectors in the main peak (< min_count_frac)"
    return FlowHistogram(ok, mu, sigma, len_mu, len_sigma, n_cand, n_main, reason)


def orientation_histogram(phi: np.ndarray, binres: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin centres (degrees) of the orientation histogram of ``phi`` (pyplis's
    bins: ``round(360 / binres)`` over [-180, 180))."""
    counts, edges = np.histogram(phi, bins=int(round(360.0 / binres)), range=(-180.0, 180.0))
    return counts, 0.5 * (edges[1:] + edges[:-1])


def fullest_bin(phi: np.ndarray, binres: float) -> float:
    """Centre (degrees) of the fullest bin of the orientation histogram of ``phi``."""
    counts, centres = orientation_histogram(phi, binres)
    return float(centres[int(np.argmax(counts))])


def length_histogram(length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pyplis's length histogram: counts and centres of 1-px bins from 0 to the longest vector
    (rounded up, plus one, made even)."""
    upper = int(math.ceil(float(length.max()))) + 1
    upper += upper % 2
    counts, edges = np.histogram(length, bins=upper, range=(0, upper))
    return counts, 0.5 * (edges[1:] + edges[:-1])


def _weighted_moments(x: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    mu = float(np.average(x, weights=w))
    return mu, float(np.sqrt(np.average((x - mu) ** 2, weights=w)))


def _moments_histogram(phi: np.ndarray, length: np.ndarray, peak: float, n_cand: int, sigma_tol: float,
                       min_count_frac: float, binres: float, binned: bool) -> FlowHistogram:
    """The ``moments`` method on the long vectors' orientations ``phi`` and lengths; ``binned``:
    moments of the histograms' bin centres (``moments_binned``)."""
    n_long = phi.size
    if n_long < min_count_frac * n_cand:
        return FlowHistogram(False, math.nan, math.nan, math.nan, math.nan, n_cand, 0,
                             f"only {n_long} of {n_cand} vectors longer than min_length (< min_count_frac)")
    if binned:
        counts, centres = orientation_histogram(phi, binres)
        rel_mu, sigma = _weighted_moments(_wrap(centres - peak), counts)
    else:
        rel_mu, sigma = _weighted_moments(_wrap(phi - peak))
    mu = float(_wrap(peak + rel_mu))
    main = np.abs(_wrap(phi - mu)) < sigma_tol * sigma
    n_main = int(main.sum())
    if n_main == 0 or n_main < min_count_frac * n_cand:
        return FlowHistogram(False, mu, sigma, math.nan, math.nan, n_cand, n_main,
                             f"only {n_main} of {n_cand} vectors within mu +- {sigma_tol:g} sigma (< min_count_frac)")
    if binned:
        counts, centres = length_histogram(length[main])
        len_mu, len_sigma = _weighted_moments(centres, counts)
    else:
        len_mu, len_sigma = _weighted_moments(length[main])
    return FlowHistogram(True, mu, sigma, len_mu, len_sigma, n_cand, n_main)


def hybrid_vectors(dx: np.ndarray, dy: np.ndarray, hist: FlowHistogram, sigma_tol: float,
                   min_length: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace ill-constrained vectors; returns (dx, dy, bad) with ``bad`` True where replaced."""
    phi = orientation_deg(dx, dy)
    mag = np.hypot(dx, dy)
    min_len = max(hist.len_mu - hist.len_sigma, min_length)
    lo = hist.dir_mu - sigma_tol * hist.dir_sigma
    hi = hist.dir_mu + sigma_tol * hist.dir_sigma
    rel = _wrap(phi - hist.dir_mu)
    in_dir = (rel > lo - hist.dir_mu) & (rel < hi - hist.dir_mu)
    bad = ~(in_dir & (mag > min_len))
    vx, vy = hist.displacement()
    return np.where(bad, vx, dx), np.where(bad, vy, dy), bad


def histogram_velocity_error(hist: FlowHistogram, normal: np.ndarray, footprint_m: float, dt_s: float) -> float:
    """1-sigma error of the histogram velocity through the line: length spread along the
    normal plus the direction spread across it."""
    theta = math.radians(hist.dir_mu)
    u = np.array([math.sin(theta), -math.cos(theta)])
    cos_t = float(np.dot(u, normal))
    sin_t = math.sqrt(max(0.0, 1 - cos_t ** 2))
    err_px = math.hypot(hist.len_sigma * cos_t, hist.len_mu * sin_t * math.radians(hist.dir_sigma))
    return err_px * footprint_m / dt_s
