"""Plume speed by cross-correlation of ICA series on parallel lines.

Two-line method (:func:`cross_correlation_velocity`, pyplis's): the ICA series on a PCS line
and on a second line ``gap`` px downstream; the downstream series lags by the travel time,
``v = gap * dx / lag``.  On real slow plumes it fails: at 1-3 m/s and 4-8 s cadence the plume
moves a few px per frame, so a 40 px gap means a lag of 10-40 frames - more than the half
series searched in a short window (10 pairs: 5 lags) - and the peak found lies at a short,
wrong lag (a 5x too fast speed), with no sign that it sits at the edge of the window.  The lag
resolution is one frame (a 1-frame error is 10-100 % of a few-frame lag), and static
structure on the lines (terrain, the plume's mean shape) correlates at every lag.

Method used by the chain (:func:`space_time_velocity`): the ICA is taken on 2G+1 parallel
lines at offsets -G..G px (G = ``cross_corr_gap_px``) along each PCS line's normal, giving a
space-time array ``P[t, g]``.  Each line's mean over time is removed (static structure: it
would correlate best at zero shift; a linear detrend in time would also remove a slow
plume's signal over a short window) and each line scaled to unit variance (so that one noisy
line cannot dominate), then for
every frame lag k = 1, 2, ... (while at least :data:`MIN_OVERLAP` frames overlap) the shift
s (px) maximising the Pearson correlation of ``P[t, g]`` with ``P[t + k, g + s]`` over all
(t, g) is found and refined to a fraction of a pixel; from the second lag on, only near the
shift the earlier lags predict (puffs recur, so a far peak can be an alias).  The spatial shift is resolved to a
fraction of a pixel at every lag instead of the lag to a whole frame at one gap; the search
window (|s| <= G) covers 1 px per window up to G px per frame; lags whose best shift lies at
the edge of the window are not used, and if none is left the result is marked ``edge``.
The speed is the least-squares slope of shift against lag (weighted by the correlation)::

    v = sum(w_k s_k k) / sum(w_k k^2) * dx / step

The quoted error is the weighted scatter of ``s_k / k`` about that slope (at least a tenth
of a pixel per lag).
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
from typing import Sequence

import numpy as np


#: Fewest overlapping frames a lag needs.
MIN_OVERLAP = 4
#: Least correlation for a lag to enter the slope fit.
MIN_LAG_R = 0.2
#: After the first lag, the peak is searched within this many px (or this fraction of the
#: predicted shift, whichever is larger) of the shift the lags so far predict.
TRACK_TOL_PX = 3.0
TRACK_TOL_FRAC = 0.3
#: Most frame lags used (more add little precision and cost time on long series).
MAX_LAGS = 20


@dataclasses.dataclass(frozen=True)
class CrossCorrelation:
    velocity: float        # m/s (along the line normal)
    velocity_err: float
    lag_s: float           # the (first) lag used
    r_max: float           # best correlation of the lags used
    n: int                 # samples in the series
    edge: bool = False     # the peak lay at the edge of the search window (value not trusted)


def _resample(times_s: np.ndarray, values: np.ndarray, step: float) -> np.ndarray:
    grid = np.arange(times_s[0], times_s[-1] + 1e-9, step)
    return np.interp(grid, times_s, values)


def pearson_lags(up: np.ndarray, down: np.ndarray, max_lag: int) -> np.ndarray:
    """r(k) = corr(up[:-k], down[k:]) for k = 0..max_lag (NaN where undefined)."""
    r = np.full(max_lag + 1, np.nan)
    for k in range(max_lag + 1):
        a = up[: len(up) - k] if k else up
        b = down[k:]
        if len(a) < 3:
            break
        sa, sb = a.std(), b.std()
        if sa > 0 and sb > 0:
            r[k] = float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))
    return r


def _refine_lag(up: np.ndarray, down: np.ndarray, k: int, max_lag: int, step: float = 0.02) -> tuple[float, float]:
    """Sub-sample refinement of the integer lag ``k``: Pearson r of ``up`` against the
    cubic-spline interpolated ``down`` at lags ``k-1 ... k+1`` in ``step`` increments; returns
    (offset from k, r at the best lag)."""
    from scipy.interpolate import CubicSpline

    n = len(up)
    grid = np.arange(n, dtype=float)
    spline = CubicSpline(grid, down)
    best_off, best_r = 0.0, -np.inf
    for off in np.arange(-1.0, 1.0 + 1e-9, step):
        lag = k + off
        if lag <= 0 or lag > max_lag:
            continue
        m = int(np.floor(n - 1 - lag)) + 1          # samples t with t + lag <= n - 1
        if m < 3:
            continue
        a = up[:m]
        b = spline(grid[:m] + lag)
        sa, sb = a.std(), b.std()
        if sa == 0 or sb == 0:
            continue
        r = float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))
        if r > best_r:
            best_off, best_r = float(off), r
    return best_off, best_r


def _seconds(times: Sequence[dt.datetime] | np.ndarray) -> np.ndarray:
    """Sample times in seconds: datetimes from the first one, numbers as given."""
    if isinstance(times[0], dt.datetime):
        t0 = times[0]
        return np.array([(t - t0).total_seconds() for t in times], float)
    return np.asarray(times, float)


def cross_correlation_velocity(times: Sequence[dt.datetime] | np.ndarray, ica_up: Sequence[float],
                               ica_down: Sequence[float], gap_m: float, max_lag_s: float | None = None
                               ) -> CrossCorrelation | None:
    """Velocity from two ICA series; None if they are too short or never correlate positively."""
    if len(times) < 5:
        return None
    ts = _seconds(times)
    up = np.asarray(ica_up, float)
    down = np.asarray(ica_down, float)
    ok = np.isfinite(up) & np.isfinite(down)
    ts, up, down = ts[ok], up[ok], down[ok]
    if len(ts) < 5:
        return None
    order = np.argsort(ts)
    ts, up, down = ts[order], up[order], down[order]
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    step = float(np.median(steps))
    u = _resample(ts, up, step)
    d = _resample(ts, down, step)
    max_lag = len(u) // 2
    if max_lag_s is not None:
        max_lag = min(max_lag, int(max_lag_s / step))
    if max_lag < 2:
        return None
    r = pearson_lags(u, d, max_lag)
    r[0] = np.nan   # zero lag means no motion
    if np.all(~np.isfinite(r)):
        return None
    k = int(np.nanargmax(r))
    if not r[k] > 0:
        return None
    frac, r_best = _refine_lag(u, d, k, max_lag)
    lag = (k + frac) * step
    if lag <= 0:
        return None
    v = gap_m / lag
    v_err = abs(gap_m / max(lag - 0.25 * step, 1e-9) - v)
    return CrossCorrelation(v, v_err, lag, float(r_best), len(ts))


def _detrend(series: np.ndarray) -> np.ndarray:
    """Remove each line's mean over time from ``series`` (t, g): the static structure (terrain,
    the plume's mean shape), which would otherwise correlate best at zero shift.  No trend in
    time is removed: over a short window a slow plume's signal at a line is such a trend."""
    return series - series.mean(axis=0)


def _shift_correlation(a: np.ndarray, b: np.ndarray, max_shift: int, only: np.ndarray | None = None) -> np.ndarray:
    """r(s) = Pearson of a[:, g] and b[:, g + s] over all (t, g) that exist, s = -max..max
    (NaN where fewer than half the lines overlap, or where ``only`` is False)."""
    n_g = a.shape[1]
    r = np.full(2 * max_shift + 1, np.nan)
    for i, sh in enumerate(range(-max_shift, max_shift + 1)):
        if only is not None and not only[i]:
            continue
        lo, hi = max(0, -sh), min(n_g, n_g - sh)
        if hi - lo < max(3, n_g // 2):
            continue
        x = a[:, lo:hi].ravel()
        y = b[:, lo + sh:hi + sh].ravel()
        x = x - x.mean()
        y = y - y.mean()
        den = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
        if den > 0:
            r[i] = float(np.dot(x, y)) / den
    return r


def space_time_velocity(times: Sequence[dt.datetime] | np.ndarray, profiles: np.ndarray, footprint_m: float,
                        max_shift_px: int | None = None) -> CrossCorrelation | None:
    """Speed along the line normal from the space-time ICA array ``profiles`` (t, 2G+1) on lines
    at offsets -G..G px (see the module docstring); None if the series is too short or never
    correlates.  ``footprint_m`` is the pixel footprint (m per px)."""
    prof = np.asarray(profiles, float)
    if prof.ndim != 2 or prof.shape[0] < MIN_OVERLAP + 1 or prof.shape[1] < 3:
        return None
    ts = _seconds(times)
    ok = np.all(np.isfinite(prof), axis=1)
    ts, prof = ts[ok], prof[ok]
    order = np.argsort(ts)
    ts, prof = ts[order], prof[order]
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if len(ts) < MIN_OVERLAP + 1 or steps.size == 0:
        return None
    step = float(np.median(steps))
    grid = np.arange(ts[0], ts[-1] + 1e-9, step)
    prof = np.column_stack([np.interp(grid, ts, prof[:, j]) for j in range(prof.shape[1])])
    prof = _detrend(prof)
    scale = prof.std(axis=0)           # every offset line counts alike (a noisy one cannot dominate)
    prof = prof / np.where(scale > 0, scale, 1.0)
    n_t, n_g = prof.shape
    max_shift = (n_g - 1) // 2 if max_shift_px is None else min(int(max_shift_px), n_g - 2)
    shifts, lags, weights, r_best = [], [], [], -np.inf
    edge_seen = False
    all_shifts = np.arange(-max_shift, max_shift + 1)
    for k in range(1, min(n_t - MIN_OVERLAP, MAX_LAGS) + 1):
        window = None
        if shifts:       # follow the peak: near the shift the lags so far predict
            pred = k * float(np.sum(np.asarray(weights) * np.asarray(shifts) * np.asarray(lags))
                             / np.sum(np.asarray(weights) * np.asarray(lags, float) ** 2))
            if abs(pred) > max_shift:
                break
            tol = max(TRACK_TOL_PX, TRACK_TOL_FRAC * abs(pred))
            window = np.abs(all_shifts - pred) <= tol + 1      # +1: the neighbours of the peak
        r = _shift_correlation(prof[:-k], prof[k:], max_shift, window)
        search = r if window is None else np.where(np.abs(all_shifts - pred) <= tol, r, np.nan)
        if not np.any(np.isfinite(search)):
            continue
        i = int(np.nanargmax(search))
        if not r[i] >= MIN_LAG_R:
            continue
        if i == 0 or i == len(r) - 1 or not (np.isfinite(r[i - 1]) and np.isfinite(r[i + 1])):
            if not shifts:
                edge_seen = True
                break        # the first lag's peak at the window edge: the plume moves too far per frame
            continue
        den = r[i - 1] - 2 * r[i] + r[i + 1]
        frac = 0.5 * (r[i - 1] - r[i + 1]) / den if den < 0 else 0.0
        shifts.append(i - max_shift + float(np.clip(frac, -0.5, 0.5)))
        lags.append(k)
        weights.append(float(r[i]))
        r_best = max(r_best, float(r[i]))
    if not shifts:
        if edge_seen:
            return CrossCorrelation(math.nan, math.nan, math.nan, math.nan, n_t, True)
        return None
    s_k, k_, w = np.asarray(shifts), np.asarray(lags, float), np.asarray(weights)
    px_per_step = float(np.sum(w * s_k * k_) / np.sum(w * k_ ** 2))
    scatter = np.sqrt(np.sum(w * (s_k / k_ - px_per_step) ** 2) / np.sum(w)) if len(s_k) > 1 else 0.0
    err_px = max(float(scatter) / math.sqrt(len(s_k)), 0.1 / float(k_.max()))
    v = px_per_step * footprint_m / step
    return CrossCorrelation(v, err_px * footprint_m / step, float(k_[0]) * step, r_best, n_t, False)


class CrossCorrelationTracker:
    """Rolling ICA-profile buffers (``img_buff_size`` pairs) and the latest velocity per line
    (real time); ``footprint_m`` maps line name -> pixel footprint (m)."""

    def __init__(self, footprint_m: dict[str, float], buffer_size: int = 1500, recal_minutes: float = 30.0,
                 min_pairs: int = 10) -> None:
        self.footprint_m = dict(footprint_m)
        self.recal = dt.timedelta(minutes=recal_minutes)
        self.min_pairs = min_pairs
        self._buf: dict[str, collections.deque] = {k: collections.deque(maxlen=buffer_size) for k in footprint_m}
        self._last_calc: dict[str, dt.datetime | None] = {k: None for k in footprint_m}
        self.results: dict[str, CrossCorrelation | None] = {k: None for k in footprint_m}

    def add(self, name: str, time: dt.datetime, profile: np.ndarray) -> CrossCorrelation | None:
        """Record the ICA profile of a pair; recompute when due; return the current result for the line."""
        buf = self._buf[name]
        buf.append((time, np.asarray(profile, float)))
        last = self._last_calc[name]
        due = (last is None and len(buf) >= self.min_pairs) or (last is not None and time - last >= self.recal)
        if due:
            ts, prof = zip(*buf)
            res = space_time_velocity(list(ts), np.vstack(prof), self.footprint_m[name])
            self._last_calc[name] = time
            if res is not None:
                self.results[name] = res
        return self.results[name]

    def result(self, name: str) -> CrossCorrelation | None:
        return self.results.get(name)

    def velocity(self, name: str) -> tuple[float, float] | None:
        res = self.results.get(name)
        return None if res is None or not math.isfinite(res.velocity) else (res.velocity, res.velocity_err)
