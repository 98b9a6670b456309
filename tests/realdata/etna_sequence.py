"""The Etna plume sequence (07:10-07:20, 89 pairs) through our chain and pyplis's, with the
same choices; used by test_pyplis_etna.py (computed once per session)."""
from __future__ import annotations

import dataclasses

import numpy as np
from etna_setup import (BG_FILE_OFF, BG_FILE_ON, CELLS, FOCAL_LENGTH_M, PIXEL_PITCH_M, PLUME_DISTANCE_M,
                        START_CALIB, START_PLUME, STOP_CALIB, STOP_PLUME, YOUNG_PLUME_L1, PyplisFrames,
                        pp_line_profile_dists, pp_setup)

from pycam.formats.ecii import EcIIDarks, pair_frames, read_frame, scan_ecii
from pycam.formats.geometry import PCSLine
from pycam.processing.absorbance import ClearSky
from pycam.processing.chain import ProcessingChain
from pycam.processing.ecii_data import cell_calibration, darks_at_level, frame_at_level
from pycam.processing.plume_geometry import MeasurementGeometry
from pycam.processing.settings import MOLAR_MASS_SO2, default_settings

LEVEL = 2                       # 336 x 256 (the stored frames are level 4, 84 x 64)
SKY_RECT = [265, 15, 300, 50]   # pyplis ex12's LOG_ROI_SKY [530, 30, 600, 100] (level 1) at level 2
FLOW_CONTRAST = [-0.05, 0.30]   # AA range bytescaled for Farneback, both chains
MIN_CD = 5e16                   # ex12's CD_MIN
MODES = ("flow_raw", "flow_histo")


def reference_coords(values, width):
    """Pixel coordinates of a ``width``-wide image in the chain's 648-px reference frame."""
    return [v * 648.0 / width for v in values]


@dataclasses.dataclass
class EtnaRun:
    times: list
    aa_corr: list                 # AA correlation ours/pyplis in the plume region, per image
    aa_max_diff: list
    ours: dict                    # mode -> array of rates (kg/s), pair k uses flow k -> k+1 on image k;
                                  # flow_histo: moments_binned, flow_histo_moments: moments
    pyplis: dict
    velo_ours: np.ndarray
    velo_pyplis: np.ndarray
    defaults: dict                # our chain with its default flow settings (flow contrast auto...)
    slope: float
    example: dict                 # one image of each, for figures


@dataclasses.dataclass
class EtnaInputs:
    """What our chain gets for the Etna sequence (level 2), and the pyplis line."""

    darks: object
    clear: ClearSky
    shape: tuple
    line_pp: object
    pcs: PCSLine
    cell: object
    calibration: object
    geometry: MeasurementGeometry
    common: dict

    def chain(self, **settings) -> ProcessingChain:
        return ProcessingChain(default_settings(**self.common, **settings), self.shape, darks=self.darks,
                               clear=self.clear, calibration=self.calibration, pcs_lines=[self.pcs],
                               geometry=self.geometry)


def etna_inputs(pyplis, etna_dir) -> EtnaInputs:
    darks = darks_at_level(EcIIDarks.from_directory(etna_dir), LEVEL)
    bg_on = frame_at_level(read_frame(etna_dir / BG_FILE_ON), LEVEL)
    bg_off = frame_at_level(read_frame(etna_dir / BG_FILE_OFF), LEVEL)
    shape = bg_on.image.shape
    h, w = shape
    clear = ClearSky.from_raw(bg_on.image, bg_off.image, bg_on.exposure_us, bg_off.exposure_us, darks)
    line_pp = pyplis.LineOnImage(*YOUNG_PLUME_L1[:4], pyrlevel_def=1, normal_orientation=YOUNG_PLUME_L1[4],
                                 line_id="young_plume").convert(to_pyrlevel=LEVEL)
    pcs = PCSLine(*reference_coords([line_pp.x0, line_pp.y0, line_pp.x1, line_pp.y1], w), YOUNG_PLUME_L1[4],
                  "young_plume")
    # the same calibration in both: our cell fit, applied as slope only (pyplis drops the offset)
    cell = cell_calibration(etna_dir, CELLS, START_CALIB, STOP_CALIB, level=LEVEL, fov=(w / 2, h / 2, 10))
    cal = dataclasses.replace(cell, use_mask=False, coeffs=np.array([0.0, cell.slope]))
    geom = MeasurementGeometry(shape, PIXEL_PITCH_M * 2 ** LEVEL, FOCAL_LENGTH_M, PLUME_DISTANCE_M)
    common = dict(bg_mode=1, ambient_roi=[int(round(v)) for v in reference_coords(SKY_RECT, w)], min_cd=MIN_CD,
                  ref_check_mode=False)
    return EtnaInputs(darks, clear, shape, line_pp, pcs, cell, cal, geom, common)


def run_sequence(pyplis, etna_dir) -> EtnaRun:
    from pyplis.fluxcalc import det_emission_rate

    inp = etna_inputs(pyplis, etna_dir)
    line_pp, cell = inp.line_pp, inp.cell
    cal_pp = pyplis.cellcalib.CellCalibData(tau_vec=cell.aa, cd_vec=cell.columns)
    cal_pp.fit_calib_data(polyorder=1)
    # pyplis's histogram analysis below is its dir_multi_gauss=False one: ours the same way
    # (pyplis's arithmetic on the bins), and with the moments of the vectors themselves
    chain = inp.chain(flow_contrast=FLOW_CONTRAST, flow_full_frame=True, flow_glob=False,
                      flow_hist_method="moments_binned")
    chain_moments = inp.chain(flow_contrast=FLOW_CONTRAST, flow_full_frame=True, flow_glob=False,
                              flow_hist_method="moments")
    assert chain.absorbance.roi == (slice(SKY_RECT[1], SKY_RECT[3]), slice(SKY_RECT[0], SKY_RECT[2]))
    chain_def = inp.chain(flow_glob=False)
    frames = PyplisFrames(pyplis, etna_dir, LEVEL)
    pbg_on, pbg_off = frames.corrected(etna_dir / BG_FILE_ON), frames.corrected(etna_dir / BG_FILE_OFF)
    dataset = pyplis.Dataset(pp_setup(pyplis, etna_dir, START_PLUME, STOP_PLUME))
    dists = pp_line_profile_dists(pyplis, dataset.meas_geometry, line_pp, LEVEL)
    normal = line_pp.normal_vector
    run = EtnaRun([], [], [], {m: [] for m in MODES + ("flow_histo_moments",)}, {m: [] for m in MODES}, [], [],
                  {m: [] for m in ("flow_raw", "flow_histo", "flow_hybrid")}, cell.slope, {})
    prev = None
    for on, off in pair_frames(scan_ecii(etna_dir), start=START_PLUME, stop=STOP_PLUME):
        fa, fb = frame_at_level(read_frame(on), LEVEL), frame_at_level(read_frame(off), LEVEL)
        aa = chain.absorbance.compute(fa.image, fb.image, fa.exposure_us, fb.exposure_us).aa.copy()
        so2 = chain.calibrate(aa)
        aa_pp = frames.aa(on, off, pbg_on, pbg_off, SKY_RECT)
        cd_pp = cal_pp(aa_pp.img)
        plume = aa_pp.img > 0.05
        run.aa_corr.append(float(np.corrcoef(aa[plume], aa_pp.img[plume])[0, 1]))
        run.aa_max_diff.append(float(np.max(np.abs(aa - aa_pp.img))))
        if not run.example:
            run.example = {"aa": aa, "aa_pp": aa_pp.img, "line": (line_pp.x0, line_pp.y0, line_pp.x1, line_pp.y1)}
        cur = (fa, aa, so2, aa_pp, cd_pp)
        if prev is not None:
            pfa, paa, pso2, paa_pp, pcd_pp = prev
            dt_s = (fa.start - pfa.start).total_seconds()
            run.times.append(pfa.start)
            flow = chain.flow(paa, aa, dt_s, pso2)
            rates = chain.emission_rates(pso2, flow, modes=MODES)
            for m in MODES:
                run.ours[m].append(rates[m]["young_plume"].flux_kg_s)
            moments = chain_moments.emission_rates(pso2, flow, modes=("flow_histo",))
            run.ours["flow_histo_moments"].append(moments["flow_histo"]["young_plume"].flux_kg_s)
            run.velo_ours.append(rates["flow_raw"]["young_plume"].velo_eff)
            rates = chain_def.emission_rates(pso2, chain_def.flow(paa, aa, dt_s, pso2))
            for m in run.defaults:
                run.defaults[m].append(rates[m]["young_plume"].flux_kg_s)
            # pyplis: its Farneback on its AA, its line profiles, footprints and rate formula
            fl = pyplis.OptflowFarneback()
            fl.settings.i_min, fl.settings.i_max = FLOW_CONTRAST
            fl.auto_update_contrast = False
            fl.set_images(paa_pp, aa_pp)
            fl.calc_flow()
            assert abs(fl.del_t - dt_s) < 1e-6
            cds = np.asarray(line_pp.get_line_profile(pcd_pp))
            cond = cds > MIN_CD
            dx, dy = line_pp.get_line_profile(fl.flow[:, :, 0]), line_pp.get_line_profile(fl.flow[:, :, 1])
            veff = np.dot(normal, (dx, dy))[cond] * dists[cond] / fl.del_t
            phi, _ = det_emission_rate(cds[cond], veff, dists[cond], 1e17, 0.15 * veff.mean(), 0.1, MOLAR_MASS_SO2)
            run.pyplis["flow_raw"].append(phi / 1000.0)
            run.velo_pyplis.append(float(veff.mean()))
            props = pyplis.LocalPlumeProperties()
            props.get_and_append_from_farneback(fl, line=line_pp, pix_mask=pcd_pp > MIN_CD, dir_multi_gauss=False)
            v, verr = props.get_velocity(-1, dists[cond].mean(), 0.1, normal, sigma_tol=fl.settings.hist_sigma_tol)
            phi, _ = det_emission_rate(cds[cond], v, dists[cond], 1e17, verr, 0.1, MOLAR_MASS_SO2)
            run.pyplis["flow_histo"].append(phi / 1000.0)
        prev = cur
    for d in (run.ours, run.pyplis, run.defaults):
        for m in d:
            d[m] = np.asarray(d[m], float)
    run.velo_ours = np.asarray(run.velo_ours)
    run.velo_pyplis = np.asarray(run.velo_pyplis)
    return run
