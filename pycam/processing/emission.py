"""Emission rates through PCS lines, per velocity mode.

Formula (pycam_compat.md section 7.12; pyplis ``det_emission_rate``)::

    Phi [kg/s] = sum_i S_i * v_eff,i * dx_i * 1e4 * M_SO2 / N_A / 1000

with S in molec cm^-2, v_eff the velocity component along the line normal in m/s, dx the
pixel footprint in m, M_SO2 = 64.066 g/mol.  Only samples with ``S >= min_cd`` count (on images
finer than 648 px wide, S averaged over one 648-px pixel is tested: :meth:`LineEmission.plume_mask`).  The
error adds the S, v and dx terms in quadrature, each as a sum over the line (errors fully
correlated along the line, as pyplis does)::

    dPhi = C * sqrt( (sum v dx dS)^2 + (sum S dx dv)^2 + (sum S v d(dx))^2 )

ICA mass (kg/m) = ``sum_i S_i dx_i * 1e4 * M_SO2 / N_A / 1000``.

Modes: ``flow_raw`` (every flow vector along the line), ``flow_histo`` (the mean vector of
the histogram analysis for all samples), ``flow_hybrid`` (raw vectors, ill-constrained ones
replaced by the histogram mean) and ``flow_glob`` (one velocity for the whole line, here
the cross-correlation velocity).  The flow at a pair is the displacement from the previous
AA image to this one, applied to this image's columns.

Every sample carries a quality flag (:mod:`pycam.processing.quality`): the pair's flags
(background, calibration) plus those of its velocity - a degenerate flow field (plume below
the noise in the flow input, near-zero field, too few usable vectors), a rejected histogram
analysis, a weak or edge-of-window cross-correlation.  Invalidating flags blank the flux and
velocity (never a valid near-zero rate).

Flow is computed on a box round the plume body on the lines (:meth:`ProcessingChain.flow_box`);
isolated samples above ``min_cd`` outside it have no flow vector: they count with zero
displacement in ``flow_raw`` and as ill-constrained (replaced by the histogram mean) in
``flow_hybrid``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from pycam.processing.crosscorr import CrossCorrelation
from pycam.processing.flow import FlowField
from pycam.processing.flow_analysis import (FlowHistogram, analyse_flow_histogram, band_points,
                                            histogram_velocity_error, hybrid_vectors)
from pycam.processing.quality import Flag, FlagNotes, invalidates, reason
from pycam.processing.settings import AVOGADRO, MOLAR_MASS_SO2

#: kg per (molec cm^-2 * m^2): 1e4 * M / N_A / 1000
KG_PER_COLUMN_AREA = 1e4 * MOLAR_MASS_SO2 / AVOGADRO / 1000.0

NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class EmissionRate:
    """One emission-rate sample (PyCam CSV columns)."""

    flux_kg_s: float
    flux_err: float
    velo_eff: float
    velo_eff_err: float
    frac_ok: float | None = None
    ica_mass: float = NAN
    frac_ok_ica: float | None = None
    flag: int = 0                 # quality bitmask (pycam.processing.quality.Flag), 0 = good
    flag_reason: str = ""         # ';'-joined reason codes of the set bits

    @classmethod
    def missing(cls, ica_mass: float = NAN, flag: int = 0) -> "EmissionRate":
        return cls(NAN, NAN, NAN, NAN, None, ica_mass, None).flagged(flag)

    @property
    def valid(self) -> bool:
        """A good sample: no flag and a finite flux."""
        return self.flag == 0 and math.isfinite(self.flux_kg_s)

    def flagged(self, flag: int) -> "EmissionRate":
        """This sample with ``flag`` added; invalidating flags blank the flux and velocity."""
        flag = int(self.flag) | int(flag)
        if flag == self.flag:
            return self
        if invalidates(flag):
            return dataclasses.replace(self, flux_kg_s=NAN, flux_err=NAN, velo_eff=NAN, velo_eff_err=NAN,
                                       flag=flag, flag_reason=reason(flag))
        return dataclasses.replace(self, flag=flag, flag_reason=reason(flag))


def emission_rate(cds, velo, dists, cds_err, velo_err, dists_err,
                  molar_mass: float = MOLAR_MASS_SO2) -> tuple[float, float]:
    """(Phi, dPhi) in kg/s; arguments as pyplis's ``det_emission_rate`` (scalars or arrays)."""
    c = 1e4 * molar_mass / AVOGADRO / 1000.0
    cds = np.asarray(cds, float)
    velo = np.asarray(velo, float)
    dists = np.asarray(dists, float)
    phi = float(np.sum(cds * velo * dists)) * c
    d1 = float(np.sum(velo * dists * cds_err)) ** 2
    d2 = float(np.sum(cds * dists * velo_err)) ** 2
    d3 = float(np.sum(cds * velo * dists_err)) ** 2
    return phi, c * math.sqrt(d1 + d2 + d3)


def ica_mass(cds, dists) -> float:
    return float(np.sum(np.asarray(cds, float) * np.asarray(dists, float))) * KG_PER_COLUMN_AREA


def total_rate(rates: list[EmissionRate]) -> EmissionRate:
    """Sum over lines: fluxes and ICA masses add, errors in quadrature, velocities averaged."""
    if not rates:
        return EmissionRate.missing()
    flux = sum(r.flux_kg_s for r in rates)
    err = math.sqrt(sum(r.flux_err ** 2 for r in rates))
    v = [r.velo_eff for r in rates]
    ve = [r.velo_eff_err for r in rates]
    fr = [r.frac_ok for r in rates if r.frac_ok is not None]
    fi = [r.frac_ok_ica for r in rates if r.frac_ok_ica is not None]
    flag = 0
    for r in rates:
        flag |= int(r.flag)
    return EmissionRate(flux, err, float(np.mean(v)), float(np.mean(ve)),
                        float(np.mean(fr)) if fr else None, sum(r.ica_mass for r in rates),
                        float(np.mean(fi)) if fi else None).flagged(flag)


def glob_velocity(velo_glob) -> tuple[float, float] | None:
    """(v, v_err) of a cross-correlation result or tuple; None when there is no finite speed."""
    if velo_glob is None:
        return None
    if isinstance(velo_glob, CrossCorrelation):
        velo_glob = (velo_glob.velocity, velo_glob.velocity_err)
    v, verr = velo_glob
    return (float(v), float(verr)) if math.isfinite(v) else None


def glob_flags(velo_glob, min_r: float) -> int:
    """Flags of a cross-correlation velocity: none yet, edge of the window, weak peak."""
    if velo_glob is None:
        return int(Flag.XCORR_NONE)
    if not isinstance(velo_glob, CrossCorrelation):
        return 0 if math.isfinite(velo_glob[0]) else int(Flag.XCORR_NONE)
    if velo_glob.edge:
        return int(Flag.XCORR_EDGE)
    return int(Flag.XCORR_WEAK) if not velo_glob.r_max >= min_r else 0


class LineEmission:
    """Per-line emission-rate computation for all modes (footprints precomputed)."""

    def __init__(self, sampler, footprints: np.ndarray, settings, band_px: int = 6, px_scale: float = 1.0) -> None:
        self.sampler = sampler
        self.dists = np.asarray(footprints, float)
        self.settings = settings
        self.band_px = band_px
        #: image pixels per reference pixel (the chain: 4 at 2592x1944, 1 at 648x486 and coarser):
        #: ``min_flow_length`` and ``flag_min_flow_px`` are multiplied by it, and ``min_cd`` is
        #: tested on the column averaged over one reference pixel (see :meth:`plume_mask`)
        self.px_scale = float(px_scale)
        self._band: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def min_length(self) -> float:
        """``min_flow_length`` in this image's pixels."""
        return self.settings["min_flow_length"] * self.px_scale

    @property
    def min_flow_px(self) -> float:
        """``flag_min_flow_px`` in this image's pixels."""
        return self.settings["flag_min_flow_px"] * self.px_scale

    def plume_mask(self, so2: np.ndarray, cds: np.ndarray | None = None) -> np.ndarray:
        """The line samples that count (column >= ``min_cd``).  On images finer than the 648-px
        reference the test is made on the mean column of the reference pixel round each sample
        (:meth:`~pycam.processing.lines.LineSampler.sample_block_mean`): per-pixel noise grows
        with resolution (4x at 2592 px), and thresholding it keeps the positive noise of the sky
        and plume edges, which added +8 % to the ICA at 2592x1944 on simulated plumes."""
        size = int(round(self.px_scale))
        if size <= 1:
            return (self.sampler.sample(so2) if cds is None else cds) >= self.settings["min_cd"]
        return self.sampler.sample_block_mean(so2, size) >= self.settings["min_cd"]

    @property
    def name(self) -> str:
        return self.sampler.name

    def _band_points(self, shape):
        if self._band is None:
            xs, ys = band_points(self.sampler, self.band_px)
            h, w = shape
            keep = (xs >= 0) & (ys >= 0) & (xs < w) & (ys < h)
            self._band = (xs[keep], ys[keep])
        return self._band

    def histogram(self, so2: np.ndarray, flow: FlowField, min_cd: float) -> FlowHistogram:
        s = self.settings
        xs, ys = self._band_points(so2.shape)
        bx0, by0, bx1, by1 = flow.box
        inside = (xs >= bx0) & (xs < bx1) & (ys >= by0) & (ys < by1)
        xs, ys = xs[inside], ys[inside]
        cols = so2[ys, xs]
        sel = cols >= min_cd
        fx = flow.flow[ys[sel] - by0, xs[sel] - bx0]
        return analyse_flow_histogram(fx[:, 0], fx[:, 1], binres=s["hist_dir_binres"],
                                      sigma_tol=s["hist_sigma_tol"], min_length=self.min_length,
                                      min_count_frac=s["min_count_frac"], weights=cols[sel],
                                      method=s["flow_hist_method"])

    def flow_flags(self, flow: FlowField | None, cond: np.ndarray, dxs=None, dys=None, covered=None) -> FlagNotes:
        """Flags of the flow field on this line's plume samples (``cond``: column >= min_cd)."""
        s = self.settings
        notes = FlagNotes()
        if flow is None:
            notes.add(Flag.NO_FLOW, "no previous image")
            return notes
        c = flow.contrast
        if c is not None and c.n_plume:
            snr, grey = c.signal_to_noise, c.plume_grey_levels
            if math.isfinite(snr) and snr < s["flag_min_snr"]:
                notes.add(Flag.LOW_CONTRAST, f"plume median {snr:.1f} sky-noise sigmas above the sky")
            elif math.isfinite(grey) and grey < s["flag_min_grey_levels"]:
                notes.add(Flag.LOW_CONTRAST, f"plume spans {grey:.1f} grey levels of the flow input "
                                             f"[{c.lo:.3g}, {c.hi:.3g}]")
        if dxs is None:
            return notes
        length = np.hypot(dxs[cond], dys[cond])
        usable = covered[cond] & np.isfinite(length)
        if not usable.any():
            notes.add(Flag.FEW_VECTORS, "no flow vector on the plume")
            return notes
        med = float(np.median(length[usable]))
        if med < self.min_flow_px:
            notes.add(Flag.FLOW_NEAR_ZERO, f"median flow {med:.3f} px per image on the plume")
        else:
            frac = float(np.mean(usable & (length >= self.min_flow_px)))
            if frac < s["flag_min_vector_frac"]:
                notes.add(Flag.FEW_VECTORS, f"{frac:.0%} of the plume samples carry a usable vector")
        return notes

    def compute(self, so2: np.ndarray, flow: FlowField | None, *, cd_err: float | None, modes,
                velo_glob=None, base: FlagNotes | None = None) -> dict[str, EmissionRate]:
        """Emission rates of this line for each requested mode (missing ones as NaN rows), each
        flagged with ``base`` (the pair's flags) and its velocity's flags.  ``velo_glob`` is a
        :class:`~pycam.processing.crosscorr.CrossCorrelation`, a (v, v_err) tuple or None."""
        out = self._compute(so2, flow, cd_err=cd_err, modes=modes, velo_glob=velo_glob)
        base_flag = int(base.flag) if base is not None else 0
        return {m: r.flagged(base_flag) for m, r in out.items()}

    def _compute(self, so2: np.ndarray, flow: FlowField | None, *, cd_err: float | None, modes,
                 velo_glob=None) -> dict[str, EmissionRate]:
        s = self.settings
        min_cd = s["min_cd"]
        cds_all = self.sampler.sample(so2)
        cond = self.plume_mask(so2, cds_all)
        cds = cds_all[cond]
        dists = self.dists[cond]
        ica = ica_mass(cds, dists)
        out: dict[str, EmissionRate] = {}
        if cds.size == 0:      # no gas on the line: a valid zero rate
            zero = EmissionRate(0.0, 0.0, NAN, NAN, None, 0.0, None)
            return {m: zero for m in modes}
        cds_err = cd_err if cd_err is not None else s["cd_err_rel"] * float(np.mean(cds))
        dists_err = s["dist_err_rel"] * float(np.mean(dists))
        n = self.sampler.normal
        flow_modes = [m for m in ("flow_raw", "flow_histo", "flow_hybrid") if m in modes]
        if flow is None and flow_modes:
            notes = self.flow_flags(None, cond)
            out.update({m: EmissionRate.missing(ica, notes.flag) for m in flow_modes})
        if flow is not None and flow_modes:
            covered = self.sampler.inside(flow.flow.shape, flow.origin)
            dxs, dys = self.sampler.sample_vectors(flow.flow, flow.origin)
            dxs = np.where(covered, dxs, 0.0)
            dys = np.where(covered, dys, 0.0)
            field_notes = self.flow_flags(flow, cond, dxs, dys, covered)
            if "flow_raw" in modes:
                veff = (n[0] * dxs + n[1] * dys)[cond] * dists / flow.dt_s
                vavg = float(veff.mean())
                verr = vavg * s["optflow_err_rel_veff"]
                phi, err = emission_rate(cds, veff, dists, cds_err, verr, dists_err)
                out["flow_raw"] = EmissionRate(phi, err, vavg, abs(verr), None, ica, None).flagged(field_notes.flag)
            if "flow_histo" in modes or "flow_hybrid" in modes:
                hist = self.histogram(so2, flow, min_cd)
                if not hist.ok:
                    rejected = int(field_notes.flag | Flag.HISTO_REJECTED)
                    for m in ("flow_histo", "flow_hybrid"):
                        if m in modes:
                            out[m] = EmissionRate.missing(ica, rejected)
                else:
                    mean_dist = float(np.mean(dists))
                    v_h = float(np.dot(hist.displacement(), n)) * mean_dist / flow.dt_s
                    v_h_err = histogram_velocity_error(hist, n, mean_dist, flow.dt_s)
                    if "flow_histo" in modes:
                        phi, err = emission_rate(cds, v_h, dists, cds_err, v_h_err, dists_err)
                        out["flow_histo"] = EmissionRate(phi, err, v_h, v_h_err, hist.n_main / hist.n_candidates,
                                                         ica, None).flagged(field_notes.flag)
                    if "flow_hybrid" in modes:
                        hx, hy, bad = hybrid_vectors(dxs[cond], dys[cond], hist, s["hist_sigma_tol"],
                                                     self.min_length)
                        outside = ~covered[cond]
                        if outside.any():      # no flow computed there: replace like ill-constrained vectors
                            vx, vy = hist.displacement()
                            hx, hy = np.where(outside, vx, hx), np.where(outside, vy, hy)
                            bad = bad | outside
                        veff = (n[0] * hx + n[1] * hy) * dists / flow.dt_s
                        vavg = float(veff.mean())
                        verr_arr = np.full(veff.shape, abs(vavg) * s["optflow_err_rel_veff"])
                        verr_arr[bad] = v_h_err
                        phi, err = emission_rate(cds, veff, dists, cds_err, verr_arr, dists_err)
                        frac_ok = 1.0 - float(bad.mean())
                        tot = float(cds.sum())
                        frac_ica = float(cds[~bad].sum() / tot) if tot > 0 else None
                        out["flow_hybrid"] = EmissionRate(phi, err, vavg, float(verr_arr.mean()), frac_ok, ica,
                                                          frac_ica).flagged(field_notes.flag)
        if "flow_glob" in modes:
            xflag = glob_flags(velo_glob, s["flag_xcorr_min_r"])
            vel = glob_velocity(velo_glob)
            if vel is None:
                out["flow_glob"] = EmissionRate.missing(ica, xflag)
            else:
                v, verr = vel
                phi, err = emission_rate(cds, v, dists, cds_err, verr, dists_err)
                out["flow_glob"] = EmissionRate(phi, err, v, verr, None, ica, None).flagged(xflag)
        for m in modes:
            if m not in out:
                out[m] = EmissionRate.missing(ica)
        return out
