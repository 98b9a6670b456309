"""The chain gives the same answer on a full-resolution (2592x1944) frame as on the binned 648x486
one: thresholds in pixels are taken in pixels of the 648-px reference frame, and ``min_cd`` is not
applied to the (4x noisier) single pixels."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from processing_synthetic import SLOPE, LinearCalibration

from pycam.formats.geometry import PCSLine
from pycam.processing.chain import ProcessingChain
from pycam.processing.emission import ica_mass
from pycam.processing.flow import FlowField
from pycam.processing.settings import default_settings

LINE = PCSLine(330, 40, 330, 440, "right", "0")
SHAPES = {1: (486, 648), 4: (1944, 2592)}
SPEED_PX = 8.0            # plume motion along +x, px of the 648-px frame per image
PEAK_CD, SIGMA_Y, Y0 = 1.5e18, 40.0, 240.0
NOISE_CD = 3.7e16         # column noise of one 648-px pixel (the simulator's); 4x per full-res pixel


def _chain(scale: int) -> ProcessingChain:
    return ProcessingChain(default_settings(plume_distance_m=5000.0), SHAPES[scale],
                           calibration=LinearCalibration(SLOPE, 1e16), pcs_lines=[LINE])


def _columns(scale: int, noise: bool, seed: int = 0) -> np.ndarray:
    """A Gaussian plume across the line (rows, in 648-px units), plus white pixel noise whose
    sigma grows with the resolution as binning would shrink it (4x at 2592)."""
    h, w = SHAPES[scale]
    y = (np.arange(h) + 0.5) / scale - 0.5
    so2 = np.repeat((PEAK_CD * np.exp(-0.5 * ((y - Y0) / SIGMA_Y) ** 2))[:, None], w, axis=1).astype(np.float32)
    if noise:
        so2 += np.random.default_rng(seed).normal(0.0, NOISE_CD * scale, so2.shape).astype(np.float32)
    return so2


def _flow(scale: int, so2_clean: np.ndarray, seed: int = 1) -> FlowField:
    """The plume core moves SPEED_PX (x scale) to the right; where the column is weak (the
    plume's flanks, < 30 % of the peak) Farneback-like short vectors (0.3-0.9 reference px)
    point anywhere - they hold ~35 % of the samples above min_cd."""
    rng = np.random.default_rng(seed)
    h, w = so2_clean.shape
    flow = np.zeros((h, w, 2), np.float32)
    core = so2_clean >= 0.3 * PEAK_CD
    flow[core, 0] = SPEED_PX * scale
    n = int((~core).sum())
    length = rng.uniform(0.3, 0.9, n) * scale
    angle = rng.uniform(-np.pi, np.pi, n)
    flow[~core, 0] = length * np.cos(angle)
    flow[~core, 1] = length * np.sin(angle)
    return FlowField(flow, (0, 0), 4.0)


@pytest.mark.parametrize("scale", [1, 4])
def test_histogram_of_the_same_motion_is_accepted_at_both_resolutions(scale):
    chain = _chain(scale)
    so2 = _columns(scale, noise=False)
    hist = chain.lines[0].histogram(so2, _flow(scale, so2), chain.settings["min_cd"])
    # before: min_flow_length 1 px at 2592 counted the flanks' 1.2-3.6 px vectors, ~30 % of the long
    # ones, outside the main peak, and every sample lost its histo/hybrid rate (HISTO_REJECTED)
    assert hist.ok, hist.reason
    assert hist.len_mu / scale == pytest.approx(SPEED_PX, rel=1e-3)
    assert hist.dir_mu == pytest.approx(90.0, abs=1.0)


def test_hybrid_rate_at_full_resolution_equals_the_binned_one():
    fluxes = {}
    for scale in SHAPES:
        chain = _chain(scale)
        so2 = _columns(scale, noise=False)
        rate = chain.emission_rates(so2, _flow(scale, so2), None, modes=("flow_hybrid",))["flow_hybrid"]["total"]
        assert rate.valid, rate.flag_reason
        fluxes[scale] = rate.flux_kg_s
    assert fluxes[4] == pytest.approx(fluxes[1], rel=0.01)


def test_flow_thresholds_are_in_reference_pixels():
    le = _chain(4).lines[0]
    assert le.min_length == 4 * le.settings["min_flow_length"]
    assert le.min_flow_px == 4 * le.settings["flag_min_flow_px"]
    assert _chain(1).lines[0].min_length == le.settings["min_flow_length"]


def test_ica_of_a_noisy_full_resolution_frame_is_not_biased_by_min_cd():
    """min_cd on single full-resolution pixels keeps their positive noise (sky and flanks): the
    ICA came out ~+8 % at 2592 (as on the simulator's full-resolution scene); tested on the
    column of one 648-px pixel it matches the binned frame's."""
    icas = {}
    for scale in SHAPES:
        chain = _chain(scale)
        le = chain.lines[0]
        clean = le.sampler.sample(_columns(scale, noise=False))
        truth = ica_mass(clean[clean >= chain.settings["min_cd"]], le.dists[clean >= chain.settings["min_cd"]])
        noisy = _columns(scale, noise=True)
        rows = chain.emission_rates(noisy, None, None, modes=("flow_raw",))["flow_raw"]
        icas[scale] = rows["total"].ica_mass / truth - 1.0
        assert math.isnan(rows["total"].flux_kg_s)          # no flow: no rate, the ICA is kept
    assert abs(icas[1]) < 0.02
    assert abs(icas[4]) < 0.02, icas


def test_coarser_frames_keep_the_thresholds_in_their_own_pixels():
    """pyplis pyramid levels (e.g. Etna at 336 px): Farneback resolves no better than ~1 px there
    either, so the thresholds are not shrunk below the settings."""
    chain = ProcessingChain(default_settings(plume_distance_m=5000.0), (243, 324),
                            calibration=LinearCalibration(SLOPE, 1e16), pcs_lines=[LINE])
    assert chain.lines[0].px_scale == 1.0


@pytest.mark.slow
def test_simulated_full_resolution_scene_gives_hybrid_rates_cropped_and_full_frame(tmp_path):
    """``pycam simulate --full-resolution`` (clean scene, 5 kg/s, 8 m/s, 4 pairs) as in
    benchmarks/pipeline.py: before, full-frame flow gave no hybrid rate at any pair
    (HISTO_REJECTED) and the cropped flow's total was +12 % (ICA +8 %)."""
    from pycam.processing.archive import find_plume_pairs, read_pair
    from pycam.processing.setup import prepare_run
    from pycam.sim.dataset import DatasetOptions, write_dataset

    d = tmp_path / "full"
    write_dataset(d, DatasetOptions(pairs=4, seed=1, scene="clean", full_resolution=True))
    truth = json.loads((d / "truth.json").read_text())
    settings = default_settings(plume_distance_m=truth["plume_distance_m"], polyorder_cal=2)
    pairs = find_plume_pairs(d / "Seq_1").pairs
    inputs = prepare_run(d / "Seq_1", settings, cal_dir=d / "Cal_1", dark_dir=d / "Dark", clear_dir=d / "Clear",
                         pcs_files=[d / "pcs_line_0.txt", d / "pcs_line_1.txt"], pairs=pairs)
    images = [read_pair(p) for p in pairs]
    for full_frame in (False, True):
        chain = ProcessingChain(settings.replace(flow_full_frame=full_frame), images[0].img_a.shape,
                                darks=inputs.darks, clear=inputs.clear, calibration=inputs.calibration,
                                pcs_lines=inputs.pcs_lines)
        prev = None
        for i, (pair, img) in enumerate(zip(pairs, images)):
            aa = chain.absorbance.compute(img.img_a, img.img_b, pair.a.exposure_us, pair.b.exposure_us).aa.copy()
            so2 = chain.calibrate(aa, pair.time)
            if prev is not None:
                flow = chain.flow(prev, aa, (pair.time - pairs[i - 1].time).total_seconds(), so2)
                rates = chain.emission_rates(so2, flow, None, modes=("flow_hybrid",))["flow_hybrid"]
                for name, true in truth["pairs"][i]["lines"].items():
                    r = rates[name]
                    assert r.valid, (full_frame, i, name, r.flag_reason)
                    assert r.flux_kg_s == pytest.approx(true["flux_kg_s"], rel=0.05), (full_frame, i, name)
                    # the column integral alone, at the true speed (8 m/s across the vertical lines)
                    assert r.ica_mass * truth["plume_speed_m_s"] == pytest.approx(true["flux_kg_s"], rel=0.03)
            prev = aa
