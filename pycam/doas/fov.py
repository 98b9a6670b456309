"""Where the spectrometer looks in the camera image, and the AA/column samples found there.

1. **Time alignment** (:func:`align_columns`): each camera image gets the DOAS column of the
   nearest spectrum, or the column interpolated between the spectra before and after it
   (the nearest one when only one of them is within ``max_gap_s``); an image with no
   spectrum within ``max_gap_s`` is not used.
2. **FOV search** (:func:`search_fov`): the Pearson correlation r(x, y) between each pixel's
   AA time series and the DOAS column series, computed for all pixels at once (one matrix
   product on the centred stack).  Because the spectrometer averages the plume texture over
   its FOV, the images are first box-averaged over trial FOV sizes (coarse search on a 4×4
   averaged stack, then full resolution around the best position); the blurred maximum,
   refined to sub-pixel by a parabola, is the FOV centre.  For radii 1…``max_radius`` the mean
   AA inside the disk is correlated with the columns (all radii at once from per-ring sums)
   and the best radius is kept.
3. **Samples**: the mean AA inside the FOV disk paired with the DOAS column and its error.

:func:`calibrate_fov` runs them and returns a plain :class:`FovCalibration` (FOV, r-map, the
matched samples) that the camera processing chain and the GUI consume (this module does not
import them).  The AA → column fit itself is made in one place for the batch and the live
chain: :func:`pycam.processing.doas_calibration.fit_calibration` (``DoasCalibration``), fed with
:attr:`FovCalibration.samples`.
:class:`FovCalibrator` keeps a rolling buffer and recalibrates on a configurable interval.
Only ``Plume`` images are ever used: ``Test``, ``Dark``, ``Clear`` and cell images are ignored.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from typing import Sequence

import numpy as np
from scipy import ndimage

PLUME = "Plume"
MIN_SAMPLES = 15  # PyCam requires at least 15 images and 15 spectra


class FovError(ValueError):
    """The FOV search or calibration cannot run (too few samples, no variation, bad shapes)."""


def _seconds(times) -> np.ndarray:
    out = []
    for t in times:
        if isinstance(t, dt.datetime):
            if t.tzinfo is None:
                t = t.replace(tzinfo=dt.timezone.utc)
            out.append(t.timestamp())
        else:
            out.append(float(t))
    return np.asarray(out, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Alignment:
    """Which images have a DOAS column, and that column (NaN where unmatched)."""

    matched: np.ndarray     # bool (T,)
    columns: np.ndarray     # (T,)
    errors: np.ndarray      # (T,)
    gaps_s: np.ndarray      # time to the (nearest) spectrum used, s


def align_columns(image_times, doas_times, columns, errors, *, mode: str = "nearest",
                  max_gap_s: float = 2.0) -> Alignment:
    """Pair camera images with DOAS columns (``mode`` ``nearest`` or ``interpolate``)."""
    if mode not in ("nearest", "interpolate"):
        raise FovError(f"time alignment {mode!r}: expected 'nearest' or 'interpolate'")
    ti = _seconds(image_times)
    td = _seconds(doas_times)
    col = np.asarray(columns, dtype=np.float64)
    err = np.asarray(errors, dtype=np.float64)
    if not (td.size == col.size == err.size):
        raise FovError("DOAS times, columns and errors differ in length")
    good = np.isfinite(td) & np.isfinite(col) & np.isfinite(err)
    td, col, err = td[good], col[good], err[good]
    order = np.argsort(td, kind="stable")
    td, col, err = td[order], col[order], err[order]
    n = ti.size
    out_col, out_err, gaps = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.inf)
    if td.size == 0 or n == 0:
        return Alignment(np.zeros(n, bool), out_col, out_err, gaps)
    after = np.clip(np.searchsorted(td, ti), 0, td.size - 1)
    before = np.clip(after - 1, 0, td.size - 1)
    gap_after = np.abs(td[after] - ti)
    gap_before = np.abs(ti - td[before])
    nearest = np.where(gap_before <= gap_after, before, after)
    nearest_gap = np.minimum(gap_before, gap_after)
    if mode == "nearest":
        ok = nearest_gap <= max_gap_s
        out_col[ok], out_err[ok], gaps[ok] = col[nearest[ok]], err[nearest[ok]], nearest_gap[ok]
    else:
        exact = nearest_gap == 0
        bracket = (td[before] <= ti) & (td[after] >= ti) & (after != before) \
            & (gap_before <= max_gap_s) & (gap_after <= max_gap_s)
        span = np.where(bracket, td[after] - td[before], 1.0)
        w = np.where(bracket, (ti - td[before]) / span, 0.0)
        single = ~bracket & (nearest_gap <= max_gap_s)     # only one neighbour close enough: use it
        use_nearest = exact | single
        ok = bracket | use_nearest
        interp_col = col[before] * (1 - w) + col[after] * w
        interp_err = err[before] * (1 - w) + err[after] * w
        out_col[ok] = np.where(use_nearest, col[nearest], interp_col)[ok]
        out_err[ok] = np.where(use_nearest, err[nearest], interp_err)[ok]
        gaps[ok] = np.where(use_nearest, nearest_gap, np.maximum(gap_before, gap_after))[ok]
    return Alignment(ok, out_col, out_err, gaps)


def correlation_map(aa_stack: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Pearson r of every pixel's AA series with ``columns`` (T, H, W) → (H, W); 0 where AA is constant."""
    stack = np.asarray(aa_stack)
    t, h, w = stack.shape
    y = np.asarray(columns, dtype=np.float64)
    y = y - y.mean()
    y_norm = float(np.sqrt(y @ y))
    if y_norm == 0:
        raise FovError("the DOAS columns do not vary: no correlation can be computed")
    flat = stack.reshape(t, h * w).astype(np.float32, copy=False)
    mean = flat.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = flat - mean
    cov = (y.astype(np.float32) @ centred).astype(np.float64)
    var = np.einsum("ij,ij->j", centred, centred, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / (np.sqrt(var) * y_norm)
    r[~np.isfinite(r)] = 0.0
    return r.reshape(h, w)


def disk_series(aa_stack: np.ndarray, centre: tuple[float, float], max_radius: int) -> np.ndarray:
    """Mean AA inside disks of radius 0…max_radius around ``centre`` = (x, y): (T, max_radius + 1)."""
    t, h, w = aa_stack.shape
    cx, cy = centre
    x0, x1 = max(int(np.floor(cx - max_radius)), 0), min(int(np.ceil(cx + max_radius)) + 1, w)
    y0, y1 = max(int(np.floor(cy - max_radius)), 0), min(int(np.ceil(cy + max_radius)) + 1, h)
    crop = np.asarray(aa_stack[:, y0:y1, x0:x1], dtype=np.float64)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dist = np.hypot(xx - cx, yy - cy)
    ring = np.ceil(dist).astype(np.intp).ravel()   # pixel in disk r  <=>  dist <= r  <=>  ceil(dist) <= r
    keep = ring <= max_radius
    ring = ring[keep]
    nb = max_radius + 1
    values = crop.reshape(t, -1)[:, keep]
    index = (np.arange(t)[:, None] * nb + ring[None, :]).ravel()
    sums = np.bincount(index, weights=values.ravel(), minlength=t * nb).reshape(t, nb)
    counts = np.bincount(ring, minlength=nb).astype(np.float64)
    cum_counts = np.cumsum(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.cumsum(sums, axis=1) / np.where(cum_counts > 0, cum_counts, np.nan)


def disk_mask(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.hypot(xx - centre[0], yy - centre[1]) <= radius


def _vertex(three: np.ndarray) -> float:
    """Sub-pixel offset of a parabola's vertex through three samples (0 at an edge or flat top)."""
    if three.size != 3:
        return 0.0
    a, b, c = (float(v) for v in three)
    if not (np.isfinite(a) and np.isfinite(c)):
        return 0.0
    denom = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0


@dataclasses.dataclass(frozen=True)
class FovSearch:
    centre_x: float
    centre_y: float
    radius: int
    correlation: np.ndarray       # blurred r-map (H, W)
    max_correlation: float        # r of the best disk's mean AA with the columns
    aa_in_fov: np.ndarray         # (T,) mean AA inside the best disk


def _downsample(stack: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor×factor blocks (strided adds: several times faster than a reshaped mean)."""
    t, h, w = stack.shape
    hh, ww = h // factor, w // factor
    cropped = stack[:, :hh * factor, :ww * factor]
    columns = np.zeros((t, hh * factor, ww), np.float32)
    for k in range(factor):
        columns += cropped[:, :, k::factor]
    blocks = np.zeros((t, hh, ww), np.float32)
    for k in range(factor):
        blocks += columns[:, k::factor, :]
    blocks *= 1.0 / (factor * factor)
    return blocks


def _radius_scales(max_radius: int, factor: int) -> list[int]:
    """Trial FOV radii (full-resolution px) for the coarse search: about 1.5x apart."""
    radii, r = [], float(max(1, factor // 2))
    while r < max_radius:
        radii.append(int(round(r)))
        r *= 1.5
    radii.append(max_radius)
    return sorted(set(radii))


def _peak(r_map: np.ndarray) -> tuple[float, float]:
    cy_i, cx_i = np.unravel_index(int(np.argmax(r_map)), r_map.shape)
    return (float(cx_i) + _vertex(r_map[cy_i, max(cx_i - 1, 0):cx_i + 2]),
            float(cy_i) + _vertex(r_map[max(cy_i - 1, 0):cy_i + 2, cx_i]))


def _fits(x, y, radius: float, shape: tuple[int, int]):
    """True where a disk of ``radius`` around pixel (x, y) lies inside the image: the
    spectrometer's field of view must be seen whole by the camera to calibrate it (candidates
    at the border, where filters replicate edge pixels, give spurious correlations)."""
    h, w = shape
    return (x >= radius) & (x <= w - 1 - radius) & (y >= radius) & (y <= h - 1 - radius)


def _inside_only(r_coarse: np.ndarray, radius: float, factor: int, shape: tuple[int, int]) -> np.ndarray:
    cy, cx = np.mgrid[0:r_coarse.shape[0], 0:r_coarse.shape[1]]
    centre_x, centre_y = (cx + 0.5) * factor - 0.5, (cy + 0.5) * factor - 0.5
    out = np.where(_fits(centre_x, centre_y, radius, shape), r_coarse, -np.inf)
    return out if np.isfinite(out).any() else r_coarse


def search_fov(aa_stack: np.ndarray, columns: np.ndarray, *, max_radius: int = 30, blur_sigma: float = 4.0,
               fixed_centre: tuple[float, float] | None = None, fixed_radius: int | None = None,
               coarse_factor: int = 4) -> FovSearch:
    """Find the spectrometer's FOV in a stack of AA images whose DOAS columns are ``columns``.

    A single pixel's AA carries plume texture the spectrometer averages away, so the r-map is
    computed on images box-averaged over each trial FOV size: first on the stack averaged
    ``coarse_factor``×``coarse_factor`` (all trial radii), then at full resolution in a window
    around the best coarse position with the best radius, blurred with ``blur_sigma``
    (scaled to that radius) and refined to sub-pixel.  Last, the disk radius with the highest
    correlation of its mean AA is kept.
    """
    stack = np.asarray(aa_stack)
    if stack.ndim != 3 or stack.shape[0] != len(columns):
        raise FovError(f"AA stack shape {stack.shape} does not match {len(columns)} columns")
    t, h, w = stack.shape
    y = np.asarray(columns, dtype=np.float64)
    factor = max(1, min(int(coarse_factor), h // 8, w // 8))
    coarse = _downsample(stack, factor) if factor > 1 else stack.astype(np.float32, copy=False)
    best = (-np.inf, 0, None)
    for radius in ([fixed_radius] if fixed_radius is not None else _radius_scales(max_radius, factor)):
        size = max(1, 2 * int(round(radius / factor)) + 1)
        smooth = ndimage.uniform_filter(coarse, size=(1, size, size), mode="nearest") if size > 1 else coarse
        r_coarse = _inside_only(correlation_map(smooth, y), radius, factor, (h, w))
        peak = float(r_coarse.max())
        if peak > best[0]:
            best = (peak, radius, r_coarse)
    _, scale_radius, r_coarse = best
    r_full = np.kron(np.where(np.isfinite(r_coarse), r_coarse, 0.0), np.ones((factor, factor)))
    r_map = np.zeros((h, w))
    r_map[:r_full.shape[0], :r_full.shape[1]] = r_full
    if fixed_centre is not None:
        cx, cy = float(fixed_centre[0]), float(fixed_centre[1])
    else:
        ccx, ccy = _peak(r_coarse)
        gx, gy = (ccx + 0.5) * factor - 0.5, (ccy + 0.5) * factor - 0.5
        margin = 2 * factor + scale_radius + 2
        x0, x1 = max(int(gx - margin), 0), min(int(gx + margin) + 1, w)
        y0, y1 = max(int(gy - margin), 0), min(int(gy + margin) + 1, h)
        pad = scale_radius + 1
        px0, px1, py0, py1 = max(x0 - pad, 0), min(x1 + pad, w), max(y0 - pad, 0), min(y1 + pad, h)
        crop = stack[:, py0:py1, px0:px1].astype(np.float32)
        size = 2 * int(scale_radius) + 1
        smooth = ndimage.uniform_filter(crop, size=(1, size, size), mode="nearest") if size > 1 else crop
        r_fine = correlation_map(smooth, y)[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        if blur_sigma > 0:
            r_fine = ndimage.gaussian_filter(r_fine, min(blur_sigma, max(1.0, scale_radius / 4.0)), mode="nearest")
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = _fits(xx, yy, scale_radius, (h, w))
        fx, fy = _peak(np.where(inside, r_fine, -np.inf) if inside.any() else r_fine)
        cx, cy = fx + x0, fy + y0
        r_map[y0:y1, x0:x1] = r_fine
    series = disk_series(stack, (cx, cy), max_radius)
    yc = y - y.mean()
    sc = series - series.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_radius = (yc @ sc) / (np.sqrt(np.einsum("ij,ij->j", sc, sc)) * np.sqrt(yc @ yc))
    r_radius[~np.isfinite(r_radius)] = -np.inf
    r_radius[0] = -np.inf if max_radius >= 1 else r_radius[0]
    radius = int(fixed_radius) if fixed_radius is not None else int(np.argmax(r_radius))
    if not 0 <= radius <= max_radius:
        raise FovError(f"FOV radius {radius} outside 0-{max_radius}")
    return FovSearch(cx, cy, radius, r_map, float(r_radius[radius]), series[:, radius].copy())


@dataclasses.dataclass(frozen=True)
class FovCalibration:
    """The result handed to the camera chain (``pycam.processing``) and the GUI."""

    centre_x: float
    centre_y: float
    radius: int
    correlation: np.ndarray       # r-map
    mask: np.ndarray              # bool (H, W), the FOV disk
    times: list                   # image times actually used (as given: datetime or seconds)
    aa_in_fov: np.ndarray         # matched mean-AA series
    columns: np.ndarray           # DOAS columns at those times
    column_errors: np.ndarray
    max_correlation: float

    @property
    def samples(self) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """(time, aa_in_fov, column, column_err) for ``DoasCalibration.add_samples``."""
        return list(self.times), self.aa_in_fov, self.columns, self.column_errors

    def to_doas_fov(self):
        """The FOV as :class:`pycam.formats.geometry.DoasFov` (PyCam's ``x_pos``/``y_pos``/``radius`` file)."""
        from pycam.formats.geometry import DoasFov

        return DoasFov(x=float(self.centre_x), y=float(self.centre_y), radius=float(self.radius))


def calibrate_fov(image_times: Sequence, aa_stack: np.ndarray, doas_times: Sequence, columns, errors, *,
                  frame_types: Sequence[str] | None = None, mode: str = "nearest", max_gap_s: float = 2.0,
                  max_radius: int = 30, blur_sigma: float = 4.0, min_samples: int = MIN_SAMPLES,
                  fixed_centre: tuple[float, float] | None = None, fixed_radius: int | None = None) -> FovCalibration:
    """Align the columns to the images and search the FOV; see the module docstring."""
    stack = np.asarray(aa_stack)
    if stack.ndim != 3 or stack.shape[0] != len(image_times):
        raise FovError(f"{len(image_times)} image times for an AA stack of shape {stack.shape}")
    use = np.ones(len(image_times), dtype=bool)
    if frame_types is not None:
        if len(frame_types) != len(image_times):
            raise FovError("frame_types and image_times differ in length")
        use &= np.array([ft == PLUME for ft in frame_types], dtype=bool)
    if len(doas_times) < min_samples:
        raise FovError(f"only {len(doas_times)} spectra; the FOV search needs at least {min_samples}")
    aligned = align_columns(image_times, doas_times, columns, errors, mode=mode, max_gap_s=max_gap_s)
    use &= aligned.matched
    if int(use.sum()) < min_samples:
        raise FovError(f"only {int(use.sum())} plume images have a spectrum within {max_gap_s:g} s; "
                       f"the FOV search needs at least {min_samples}")
    index = np.flatnonzero(use)
    sub = stack[index] if index.size != stack.shape[0] else stack
    found = search_fov(sub, aligned.columns[index], max_radius=max_radius, blur_sigma=blur_sigma,
                       fixed_centre=fixed_centre, fixed_radius=fixed_radius)
    return FovCalibration(found.centre_x, found.centre_y, found.radius, found.correlation,
                          disk_mask(stack.shape[1:], (found.centre_x, found.centre_y), found.radius),
                          [image_times[i] for i in index], found.aa_in_fov, aligned.columns[index],
                          aligned.errors[index], found.max_correlation)


class FovCalibrator:
    """Rolling buffers of AA images and DOAS columns, recalibrated every ``recal_minutes``.

    Only ``Plume`` images are buffered.  At most ``max_images`` images are kept (the oldest go
    first) so memory stays bounded (200 × 648×486 float32 ≈ 250 MB).  Samples older than
    ``window_minutes`` before the calibration time are not used.

    With ``confirm_px`` set (the live chain), a search result is only adopted when the previous
    search, ``confirm_s`` seconds earlier, found the same FOV (centres within ``confirm_px``,
    radii within ``confirm_px``) and its disk correlates with the columns at least
    ``min_correlation``; until then :attr:`candidate` holds it and :attr:`last_error` says why.
    On short windows the correlation map has spurious maxima far from the true FOV (on the
    demo's plume, 20-60 one-second samples gave centres 150-230 px away, r = 0.87-0.95, and
    slopes off by up to 17x); they move from one search to the next, the true FOV does not.
    """

    def __init__(self, *, recal_minutes: float = 30.0, window_minutes: float = 30.0, mode: str = "nearest",
                 max_gap_s: float = 2.0, max_radius: int = 30, min_samples: int = MIN_SAMPLES,
                 max_images: int = 200, fixed_centre: tuple[float, float] | None = None,
                 fixed_radius: int | None = None, confirm_px: float | None = None, confirm_s: float = 15.0,
                 min_correlation: float = 0.0) -> None:
        self.recal_s = recal_minutes * 60.0
        self.window_s = window_minutes * 60.0
        self.options = dict(mode=mode, max_gap_s=max_gap_s, max_radius=max_radius,
                            min_samples=min_samples, fixed_centre=fixed_centre, fixed_radius=fixed_radius)
        self.images: collections.deque = collections.deque(maxlen=max_images)
        self.spectra: collections.deque = collections.deque()
        self.current: FovCalibration | None = None
        self.candidate: FovCalibration | None = None
        self.confirm_px = confirm_px
        self.confirm_s = float(confirm_s)
        self.min_correlation = float(min_correlation)
        self.last_time: float | None = None
        self.last_try: float | None = None
        self.last_error: str | None = None
        self.searches = 0

    def add_image(self, time, aa: np.ndarray, frame_type: str = PLUME) -> bool:
        """Buffer an AA image; returns False (and ignores it) unless it is a Plume image."""
        if frame_type != PLUME:
            return False
        self.images.append((time, _seconds([time])[0], np.asarray(aa, dtype=np.float32)))
        return True

    def add_column(self, time, column: float, error: float, ok: bool = True) -> None:
        if ok and np.isfinite(column) and np.isfinite(error):
            self.spectra.append((time, _seconds([time])[0], float(column), float(error)))

    def due(self, now) -> bool:
        t = _seconds([now])[0]
        if self.candidate is not None or self.current is None or self.last_time is None:
            # searching (or confirming a candidate): retry every confirm_s
            return self.last_try is None or self.confirm_px is None or t - self.last_try >= self.confirm_s
        return self.recal_s > 0 and t - self.last_time >= self.recal_s

    def _confirms(self, result: FovCalibration) -> str | None:
        """None if ``result`` may be adopted, else why not (see the class docstring)."""
        if self.confirm_px is None:
            return None
        if result.max_correlation < self.min_correlation:
            return (f"FOV candidate ({result.centre_x:.0f}, {result.centre_y:.0f}) r={result.radius} px correlates "
                    f"only {result.max_correlation:.2f} < {self.min_correlation:.2f}")
        previous = self.candidate
        if previous is None:
            previous = self.current
        if previous is None:
            return (f"FOV candidate ({result.centre_x:.0f}, {result.centre_y:.0f}) r={result.radius} px "
                    f"waits for a second search to confirm it")
        shift = float(np.hypot(result.centre_x - previous.centre_x, result.centre_y - previous.centre_y))
        if shift > self.confirm_px or abs(result.radius - previous.radius) > self.confirm_px:
            return (f"FOV candidate ({result.centre_x:.0f}, {result.centre_y:.0f}) r={result.radius} px not "
                    f"confirmed: the previous search found ({previous.centre_x:.0f}, {previous.centre_y:.0f}) "
                    f"r={previous.radius} px")
        return None

    def update(self, now) -> FovCalibration | None:
        """Recalibrate if due and possible; returns the new calibration or None."""
        if not self.due(now):
            return None
        t = _seconds([now])[0]
        cutoff = t - self.window_s
        while self.spectra and self.spectra[0][1] < cutoff - self.options["max_gap_s"]:
            self.spectra.popleft()
        while self.images and self.images[0][1] < cutoff:
            self.images.popleft()
        if not self.images or not self.spectra:
            self.last_error = "no buffered plume images or spectra"
            return None
        self.last_try = t
        try:
            result = calibrate_fov([i[0] for i in self.images], np.stack([i[2] for i in self.images]),
                                   [s[0] for s in self.spectra], [s[2] for s in self.spectra],
                                   [s[3] for s in self.spectra], **self.options)
        except FovError as exc:
            self.last_error = str(exc)
            return None
        self.searches += 1
        why_not = self._confirms(result)
        if why_not is not None:
            self.candidate = result if result.max_correlation >= self.min_correlation else None
            self.last_error = why_not
            return None
        self.current, self.candidate, self.last_time, self.last_error = result, None, t, None
        return result
