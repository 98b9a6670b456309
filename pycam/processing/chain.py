"""The per-pair processing chain shared by the real-time processor and the batch pipeline.

Steps: dark -> registration -> background/tau/AA (:mod:`absorbance`) -> calibration to SO2
columns -> reference check on ``ambient_roi`` and the pair's quality flags (:meth:`pair_flags`)
-> contrast range (:meth:`flow_contrast`) and optical flow on the PCS bounding box
(:mod:`flow`) -> emission rates per line and mode, each flagged (:mod:`emission`,
:mod:`quality`) -> cross-correlation velocity (:mod:`crosscorr`, ICA profiles on lines at
-G..G px, :meth:`cross_correlation_icas`).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from typing import Iterable

import numpy as np

from pycam.formats.geometry import CameraGeometry, PCSLine
from pycam.processing.absorbance import AbsorbanceModel, ClearSky
from pycam.processing.corrections import DarkLibrary
from pycam.processing.crosscorr import CrossCorrelationTracker
from pycam.processing.emission import KG_PER_COLUMN_AREA, EmissionRate, LineEmission, ica_mass, total_rate
from pycam.processing.flow import (EDGE_FRACTION, Contrast, FarnebackParams, FlowEngine, FlowField,
                                   contrast_range, robust_contrast, smooth_pixels, with_statistics)
from pycam.processing.flow_analysis import band_points
from pycam.processing.plume_geometry import GeometryError, MeasurementGeometry
from pycam.processing.lines import REFERENCE_WIDTH, LineSampler, lines_bbox
from pycam.processing.quality import Flag, FlagNotes
from pycam.processing.settings import ProcessingSettings

log = logging.getLogger(__name__)

#: Running-median length (line samples) used to find the plume body on a line for the flow box.
PLUME_MEDIAN_SAMPLES = 9
#: The cross-correlation ICA takes every this-th sample along a line (each standing for that many).
ICA_STRIDE = 4


class ProcessingChain:
    """Everything that depends on the image shape, built once and reused for every pair."""

    def __init__(self, settings: ProcessingSettings, shape: tuple[int, int], *, darks: DarkLibrary | None = None,
                 clear: ClearSky | None = None, calibration=None, pcs_lines: Iterable[PCSLine] = (),
                 geometry: MeasurementGeometry | CameraGeometry | None = None, warp: np.ndarray | None = None
                 ) -> None:
        self.settings = settings
        self.shape = tuple(shape)
        self.darks = darks
        self.calibration = calibration
        self.absorbance = AbsorbanceModel(
            self.shape, bg_mode=settings["bg_mode"], ambient_roi=self._roi_for_shape(settings["ambient_roi"]),
            darks=darks, clear=clear, warp=warp, use_vign_corr=settings["use_vign_corr"],
            surface_rois=settings["surface_fit_rois"], surface_order=settings["surface_fit_polyorder"])
        if settings["use_light_dilution"]:
            from pycam.processing.light_dilution import DilutionSetup, LightDilution

            self.absorbance.dilution = LightDilution(DilutionSetup.from_settings(settings), self.shape)
        self.geometry = self._make_geometry(geometry)
        self.flow_engine = FlowEngine(FarnebackParams.from_settings(settings), settings["flow_contrast"],
                                      coarse_init=settings["flow_coarse_init"])
        self._contrast_idx: tuple[np.ndarray, np.ndarray] | None = None
        self.modes = settings.velocity_modes
        self.lines: list[LineEmission] = []
        self.cc_samplers: dict[str, LineSampler] = {}      # line -> its offset lines, stacked
        self.crosscorr: CrossCorrelationTracker | None = None
        self.set_pcs_lines(pcs_lines)

    def _roi_for_shape(self, roi):
        scale = self.shape[1] / 648.0
        return [int(round(v * scale)) for v in roi] if scale != 1 else list(roi)

    def _px_scale(self) -> float:
        """Image pixels per pixel of the 648-px-wide reference frame, at least 1: the pixel
        thresholds of the flow analysis (``min_flow_length``, ``flag_min_flow_px``) and the
        ``min_cd`` test grow with finer frames so that they mean the same motion and the same
        noise (at 2592x1944 a 1 px floor counted the flanks' random 1-4 px vectors and rejected
        every histogram); on coarser frames (pyplis pyramid levels) they stay in the image's own
        pixels, as pyplis's settings are, since Farneback resolves no better than ~1 px anywhere."""
        return max(1.0, self.shape[1] / REFERENCE_WIDTH)

    def _make_geometry(self, geometry) -> MeasurementGeometry | None:
        if isinstance(geometry, MeasurementGeometry):
            return geometry
        try:
            return MeasurementGeometry.from_settings(self.settings, self.shape, geometry)
        except GeometryError as exc:
            log.warning("no measurement geometry (%s): emission rates are not computed", exc)
            return None

    # --- lines ---------------------------------------------------------------------------
    def set_pcs_lines(self, pcs_lines: Iterable[PCSLine]) -> None:
        """Replace the PCS lines (validated against the image; raises ValueError naming the line)."""
        pcs_lines = list(pcs_lines)
        names = [ln.name for ln in pcs_lines]
        if len(set(names)) != len(names) or "total" in names:
            raise ValueError(f"PCS line names must be unique and not 'total': {names}")
        samplers = [LineSampler(ln, self.shape) for ln in pcs_lines]
        lines, cc = [], {}
        if self.geometry is not None:
            for smp in samplers:
                lines.append(LineEmission(smp, self.geometry.footprints(smp.x, smp.y), self.settings,
                                          px_scale=self._px_scale()))
                if "flow_glob" in self.modes:
                    offsets = self._offset_samplers(smp)
                    if offsets is not None:
                        cc[smp.name] = offsets
        self.lines = lines
        self.cc_samplers = cc
        self._cc_dists = {k: ICA_STRIDE * self.geometry.footprints(st.x, st.y).reshape(-1, st.n_along)
                          for k, st in cc.items()}     # each sample stands for ICA_STRIDE
        footprint = {k: float(np.mean(d[len(d) // 2])) / ICA_STRIDE for k, d in self._cc_dists.items()}
        self.crosscorr = CrossCorrelationTracker(footprint, self.settings["img_buff_size"],
                                                 self.settings["cross_corr_recal"],
                                                 self.settings["cross_corr_min_pairs"]) if cc else None
        self._contrast_idx = self._contrast_pixels(samplers)
        if self.settings["flow_full_frame"] or not samplers:
            self.flow_engine.set_box(None)
        else:
            self.flow_engine.set_box(lines_bbox(samplers, self.shape, self.settings["flow_roi_margin"]))

    def _offset_samplers(self, smp: LineSampler) -> LineSampler | None:
        """One sampler over the lines at offsets -G..G image px along the normal (G =
        ``cross_corr_gap_px`` in 648-px-wide units, scaled to the image, shrunk until every
        offset line lies in the image), stacked
        offset by offset, for the cross-correlation; None if G < 2."""
        gap = int(round(self.settings["cross_corr_gap_px"] * self.shape[1] / REFERENCE_WIDTH))
        while gap >= 2:
            try:                        # every ICA_STRIDE-th sample along the line is enough for the ICA
                return _shifted_sampler(smp, np.arange(-gap, gap + 1, dtype=float), self.shape, stride=ICA_STRIDE)
            except ValueError:
                gap = gap * 3 // 4
        log.warning("line %s: no room for cross-correlation lines in the image", smp.name)
        return None

    def _contrast_pixels(self, samplers) -> tuple[np.ndarray, np.ndarray] | None:
        """Pixels the contrast range is measured on: ``roi_abs`` (every 2nd pixel), else a band of
        +-winsize px round the PCS lines (every 4th px across, every 2nd along); a frame of EDGE_FRACTION of the
        width round the image is left out, and of the rest only the locally smooth pixels are
        used (:func:`~pycam.processing.flow.smooth_pixels`).  None: no region (the whole frame)."""
        h, w = self.shape
        edge = max(2, int(round(EDGE_FRACTION * w)))
        roi = self.settings["roi_abs"]
        if roi is not None:
            x0, y0, x1, y1 = self._roi_for_shape(roi)
            x0, y0, x1, y1 = max(x0, edge), max(y0, edge), min(x1, w - edge), min(y1, h - edge)
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"roi_abs {roi} lies outside the image ({w}x{h}) or in its edge frame")
            yy, xx = np.mgrid[y0:y1:2, x0:x1:2]
            return yy.ravel(), xx.ravel()
        if not samplers:
            return None
        half = max(2, int(self.settings["winsize"]))
        ys, xs = [], []
        for smp in samplers:        # every 4th offset, every 2nd sample: a few thousand pixels
            bx, by = band_points(smp, half)
            n_off = 2 * half + 1
            bx, by = bx.reshape(n_off, -1)[::4, ::2], by.reshape(n_off, -1)[::4, ::2]
            ys.append(by.ravel())
            xs.append(bx.ravel())
        y, x = np.concatenate(ys), np.concatenate(xs)
        keep = (x >= edge) & (x < w - edge) & (y >= edge) & (y < h - edge)
        if not keep.any():
            return None
        flat = np.unique(y[keep].astype(np.int64) * w + x[keep])
        return flat // w, flat % w

    def flow_contrast(self, aa: np.ndarray, so2: np.ndarray | None) -> Contrast:
        """The bytescale range for a pair whose later image has AA ``aa`` and columns ``so2``
        (``flow_contrast`` setting; see :mod:`pycam.processing.flow`), with the statistics of
        the measurement region."""
        idx = self._contrast_idx
        pixel_noise = math.nan
        if idx is None:
            values = aa[np.isfinite(aa)].ravel()
            plume = None if so2 is None else (so2[np.isfinite(aa)] >= self.settings["min_cd"]).ravel()
        else:
            keep, pixel_noise = smooth_pixels(aa, *idx)          # no specks, no noisy dark terrain
            ys, xs = idx[0][keep], idx[1][keep]
            values = aa[ys, xs]
            plume = None if so2 is None else so2[ys, xs] >= self.settings["min_cd"]
        mode = self.settings["flow_contrast"]
        source = "auto-roi" if self.settings["roi_abs"] is not None else "auto-lines"
        if mode == "auto":
            contrast = robust_contrast(values, plume, source)
        else:
            lo, hi = contrast_range(aa, "frame" if mode == "frame" else mode)
            contrast = with_statistics(lo, hi, "frame" if mode == "frame" else "fixed", values, plume)
        # white noise scales with the pixel size: quote it per pixel of the 648-px-wide frame, so
        # that the LOW_CONTRAST test does not depend on binning (2592 px frames are 4x noisier)
        return dataclasses.replace(contrast, pixel_noise=pixel_noise * REFERENCE_WIDTH / self.shape[1])

    # --- steps ---------------------------------------------------------------------------
    def calibrate(self, aa: np.ndarray, time=None, out: np.ndarray | None = None) -> np.ndarray | None:
        if self.calibration is None:
            return None
        return self.calibration.column_from_aa(aa, out=out, time=time)

    def column_error(self) -> float | None:
        try:
            err = float(self.calibration.column_error)
        except (AttributeError, Exception):  # noqa: BLE001 - calibrations without an error estimate
            return None
        return err if math.isfinite(err) and err > 0 else None

    def zero_column(self, time=None) -> float:
        """The column the calibration gives for AA = 0 (its intercept; 0 for slope-only)."""
        if self.calibration is None:
            return 0.0
        try:
            zero = self.calibration.column_from_aa(np.zeros((1, 1), np.float32), time=time)
        except (LookupError, ValueError, AttributeError):
            return 0.0
        value = float(np.asarray(zero).ravel()[0])
        return value if math.isfinite(value) else 0.0

    def reference_column(self, so2: np.ndarray, time=None) -> float:
        """Mean column in ``ambient_roi`` relative to the calibration's zero (so that the check
        tests the background, not the calibration intercept)."""
        return float(np.mean(so2[self.absorbance.roi], dtype=np.float64)) - self.zero_column(time)

    def reference_ok(self, so2: np.ndarray | None, time=None) -> bool:
        """PyCam's reference check: the mean column in ``ambient_roi`` (relative to the
        calibration's zero) within [ref_check_lower, ref_check_upper]."""
        s = self.settings
        if so2 is None or not s["ref_check_mode"]:
            return True
        return s["ref_check_lower"] <= self.reference_column(so2, time) <= s["ref_check_upper"]

    def pair_flags(self, so2: np.ndarray | None, time=None) -> FlagNotes:
        """Flags every sample of this pair shares: calibration missing, stale or from a poor DOAS
        fit; sky reference out of bounds (PyCam's check) or cloudy (see :mod:`quality`)."""
        s = self.settings
        notes = FlagNotes()
        if so2 is None:
            notes.add(Flag.CAL_MISSING, "no calibration")
            return notes
        roi = so2[self.absorbance.roi]
        mean = self.reference_column(so2, time)
        if s["ref_check_mode"] and not s["ref_check_lower"] <= mean <= s["ref_check_upper"]:
            notes.add(Flag.BG_OUT_OF_BOUNDS, f"ambient_roi column {mean:.3g} outside "
                                             f"[{s['ref_check_lower']:.3g}, {s['ref_check_upper']:.3g}]")
        spread = _structure(roi, 8)
        if spread > s["flag_bg_cloud_cd"]:
            notes.add(Flag.BG_CLOUD, f"ambient_roi column varies by {spread:.3g} about a plane (8x8 px blocks)")
        fit_at = getattr(self.calibration, "fit_at", None)
        if fit_at is not None and time is not None:
            try:
                fit = fit_at(time)
            except (LookupError, ValueError, AttributeError):
                fit = None
            if fit is None:
                notes.add(Flag.CAL_MISSING, "no calibration fit")
            else:
                age_min = (time - fit.time).total_seconds() / 60.0
                max_age = s["cal_max_age_mins"]
                if max_age is not None and abs(age_min) > max_age:
                    when = "old" if age_min > 0 else "after the image (carried back)"
                    notes.add(Flag.CAL_STALE, f"calibration fit {abs(age_min):.0f} min {when}")
                r2 = getattr(fit, "r_squared", math.nan)
                if math.isfinite(r2) and r2 < s["flag_min_cal_r2"]:
                    notes.add(Flag.DOAS_FLAGGED, f"DOAS calibration r^2 {r2:.2f}")
        return notes

    def flagged_rates(self, so2: np.ndarray, base: FlagNotes, modes=None) -> dict[str, dict[str, EmissionRate]]:
        """Rows for a pair that is not measured (e.g. its background failed): ICA mass only,
        every mode flagged with ``base``."""
        modes = tuple(modes if modes is not None else self.modes)
        icas = {}
        for le in self.lines:
            cds = le.sampler.sample(so2)
            cond = le.plume_mask(so2, cds)
            icas[le.name] = ica_mass(cds[cond], le.dists[cond])
        result = {}
        for m in modes:
            rates = {name: EmissionRate.missing(ica, int(base.flag)) for name, ica in icas.items()}
            if rates:
                rates["total"] = total_rate(list(rates.values()))
            result[m] = rates
        return result

    def flow_box(self, so2: np.ndarray | None) -> tuple[int, int, int, int] | None:
        """The box flow is needed on for this image: the PCS samples whose column, after a
        running median over 9 samples, reaches ``min_cd`` (+ margin), or the engine's fixed
        box; None means the whole frame.  Isolated samples above ``min_cd`` outside the box
        count as ill-constrained (see :mod:`pycam.processing.emission`)."""
        s = self.settings
        if s["flow_full_frame"] or not self.lines:
            return None
        if so2 is None or not s["flow_crop_to_plume"]:
            return self.flow_engine.box
        from scipy.ndimage import median_filter

        xs, ys = [], []
        for le in self.lines:
            # a running median ignores isolated noisy samples above min_cd far from the plume body
            keep = median_filter(le.sampler.sample(so2), size=PLUME_MEDIAN_SAMPLES, mode="nearest") >= s["min_cd"]
            xs.append(le.sampler.x[keep])
            ys.append(le.sampler.y[keep])
        x = np.concatenate(xs)
        if x.size == 0:
            return self.flow_engine.box
        y = np.concatenate(ys)
        m = s["flow_roi_margin"]
        h, w = self.shape
        return (max(0, int(x.min()) - m), max(0, int(y.min()) - m), min(w, int(x.max()) + 2 + m),
                min(h, int(y.max()) + 2 + m))

    def flow(self, aa_prev: np.ndarray, aa_next: np.ndarray, dt_s: float, so2: np.ndarray | None = None
             ) -> FlowField:
        """Flow from ``aa_prev`` to ``aa_next`` on :meth:`flow_box` of ``so2`` (this image's columns),
        over the contrast range of :meth:`flow_contrast`."""
        contrast = self.flow_contrast(aa_next, so2)
        if self.settings["flow_contrast"] == "frame":      # pyplis: the first image of the pair
            contrast = dataclasses.replace(contrast, **dict(zip(("lo", "hi"), contrast_range(aa_prev, "frame"))))
        return self.flow_engine.compute(aa_prev, aa_next, dt_s, self.flow_box(so2), contrast)

    def cross_correlation_icas(self, so2: np.ndarray) -> dict[str, np.ndarray]:
        """The ICA profile (kg/m on the lines at offsets -G..G px) of each PCS line.  Samples that
        are not finite or stand out of their neighbours along the line (specks, noisy dark
        terrain: :func:`~pycam.processing.flow.smooth_pixels` criterion), and the two end
        samples, count as zero."""
        out = {}
        for name, stacked in self.cc_samplers.items():
            dists = self._cc_dists[name]
            cds = stacked.sample(so2).astype(np.float64).reshape(dists.shape)
            good = np.isfinite(cds)
            good[:, 0] = good[:, -1] = False            # the ends cannot be checked against two neighbours
            if cds.shape[1] >= 3:
                with np.errstate(invalid="ignore"):
                    lap = np.abs(cds[:, 1:-1] - 0.5 * (cds[:, :-2] + cds[:, 2:]))
                fin = np.isfinite(lap)
                if fin.any():
                    limit = 6.0 * float(np.median(lap[fin]))
                    if limit > 0:
                        good[:, 1:-1] &= ~(lap > limit)
            out[name] = np.sum(np.where(good, cds, 0.0) * dists, axis=1) * KG_PER_COLUMN_AREA
        return out

    def update_cross_correlation(self, time, so2: np.ndarray) -> dict:
        """Real time: add this pair's ICA profiles to the tracker; line -> latest
        :class:`~pycam.processing.crosscorr.CrossCorrelation` (or None)."""
        if self.crosscorr is None:
            return {}
        for name, profile in self.cross_correlation_icas(so2).items():
            self.crosscorr.add(name, time, profile)
        return {name: self.crosscorr.result(name) for name in self.cc_samplers}

    def emission_rates(self, so2: np.ndarray, flow: FlowField | None, velo_glob: dict | None = None,
                       modes=None, base: FlagNotes | None = None) -> dict[str, dict[str, EmissionRate]]:
        """mode -> {line name -> EmissionRate, ..., "total" -> EmissionRate}, flagged with
        ``base`` (the pair's flags, :meth:`pair_flags`) and each velocity's own."""
        modes = tuple(modes if modes is not None else self.modes)
        per_line = {}
        cd_err = self.column_error()
        for le in self.lines:
            vg = (velo_glob or {}).get(le.name)
            per_line[le.name] = le.compute(so2, flow, cd_err=cd_err, modes=modes, velo_glob=vg, base=base)
        result: dict[str, dict[str, EmissionRate]] = {}
        for m in modes:
            rates = {name: r[m] for name, r in per_line.items()}
            if rates:
                rates["total"] = total_rate(list(rates.values()))
            result[m] = rates
        return result


def _shifted_sampler(smp: LineSampler, pixels: np.ndarray, shape: tuple[int, int], stride: int = 1) -> LineSampler:
    """A copy of ``smp`` whose sampling points are every ``stride``-th of ``smp``'s moved by each
    of ``pixels`` image px along its normal, stacked (offset-major, ``n_along`` per offset; not
    rounded, in the image's own pixels whatever its size); ValueError if any leaves the image."""
    out = copy.copy(smp)
    pixels = np.atleast_1d(np.asarray(pixels, float))
    x, y = smp.x[::stride], smp.y[::stride]
    out.n_along = x.size
    out.x = (x[None, :] + pixels[:, None] * smp.normal[0]).ravel()
    out.y = (y[None, :] + pixels[:, None] * smp.normal[1]).ravel()
    out._cache = {}
    h, w = shape
    if out.x.min() < 0 or out.y.min() < 0 or out.x.max() > w - 1 or out.y.max() > h - 1:
        raise ValueError(f"line {smp.name!r} moved by up to {np.abs(pixels).max():g} px leaves the {w}x{h} image")
    return out


def _structure(a: np.ndarray, size: int) -> float:
    """Std of the ``size`` x ``size`` block means of ``a`` about a fitted plane: structure such
    as cloud, not pixel noise (averaged out) nor a smooth sky gradient (the plane); 0 if the
    region holds fewer than 4 blocks."""
    h, w = (a.shape[0] // size) * size, (a.shape[1] // size) * size
    if h < 2 * size or w < 2 * size:
        return 0.0
    blocks = a[:h, :w].reshape(h // size, size, w // size, size).mean(axis=(1, 3), dtype=np.float64)
    ok = np.isfinite(blocks)
    if ok.sum() < 4:
        return 0.0
    yy, xx = np.nonzero(ok)
    design = np.column_stack([np.ones(yy.size), xx, yy])
    coef, *_ = np.linalg.lstsq(design, blocks[ok], rcond=None)
    return float(np.std(blocks[ok] - design @ coef))
