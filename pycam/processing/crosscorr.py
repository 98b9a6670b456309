"""Plume speed by cross-correlation of ICA time series on two parallel lines.

For each PCS line a second line is placed ``cross_corr_gap_px`` pixels downstream (along
the line's positive normal, pyplis's ``LineOnImage.offset``).  The integrated column
amounts ``ICA(t) = sum_i S_i dx_i`` on both lines form two time series; the downstream one
lags the upstream one by the travel time.  Both are resampled onto a uniform grid (the
median time step), the Pearson correlation is computed for every lag from 1 step to half
the series, and the peak is refined to a fraction of a step by a parabola through the
three highest points::

    v = gap[px] * mean(dx) / lag

The quoted error is the change of v for a lag error of a quarter step (a sub-sample
refinement is not trusted further on noisy, undersampled series) - an estimate, not a fit
statistic.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class CrossCorrelation:
    velocity: float        # m/s
    velocity_err: float
    lag_s: float
    r_max: float
    n: int


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


def cross_correlation_velocity(times: Sequence[dt.datetime] | np.ndarray, ica_up: Sequence[float],
                               ica_down: Sequence[float], gap_m: float, max_lag_s: float | None = None
                               ) -> CrossCorrelation | None:
    """Velocity from two ICA series; None if they are too short or never correlate positively."""
    if len(times) < 5:
        return None
    if isinstance(times[0], dt.datetime):
        t0 = times[0]
        ts = np.array([(t - t0).total_seconds() for t in times], float)
    else:
        ts = np.asarray(times, float)
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


class CrossCorrelationTracker:
    """Rolling ICA buffers (``img_buff_size`` pairs) and the latest velocity per line (real time)."""

    def __init__(self, gap_m: dict[str, float], buffer_size: int = 1500, recal_minutes: float = 30.0,
                 min_pairs: int = 10) -> None:
        self.gap_m = dict(gap_m)
        self.recal = dt.timedelta(minutes=recal_minutes)
        self.min_pairs = min_pairs
        self._buf: dict[str, collections.deque] = {k: collections.deque(maxlen=buffer_size) for k in gap_m}
        self._last_calc: dict[str, dt.datetime | None] = {k: None for k in gap_m}
        self.results: dict[str, CrossCorrelation | None] = {k: None for k in gap_m}

    def add(self, name: str, time: dt.datetime, ica_up: float, ica_down: float) -> CrossCorrelation | None:
        """Record a sample; recompute when due; return the current result for the line."""
        buf = self._buf[name]
        buf.append((time, ica_up, ica_down))
        last = self._last_calc[name]
        due = (last is None and len(buf) >= self.min_pairs) or (last is not None and time - last >= self.recal)
        if due:
            ts, up, down = zip(*buf)
            res = cross_correlation_velocity(list(ts), up, down, self.gap_m[name])
            self._last_calc[name] = time
            if res is not None and math.isfinite(res.velocity):
                self.results[name] = res
        return self.results[name]

    def velocity(self, name: str) -> tuple[float, float] | None:
        res = self.results.get(name)
        return None if res is None else (res.velocity, res.velocity_err)
