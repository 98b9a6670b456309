"""The histogram analysis methods of pycam.processing.flow_analysis on synthetic vector sets
(the comparison with pyplis on real data is tests/realdata/test_pyplis_etna.py)."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.processing.flow_analysis import HIST_METHODS, analyse_flow_histogram


def vectors(rng, n, direction_deg, dir_sigma, length, len_sigma):
    ang = np.radians(rng.normal(direction_deg, dir_sigma, n))
    mag = rng.normal(length, len_sigma, n)
    return mag * np.sin(ang), -mag * np.cos(ang)


def two_motions(rng, side_frac):
    """A main motion at -54 deg and a second one at -105 deg (pyplis's Etna test pair's shape)."""
    n_side = int(1000 * side_frac)
    dx1, dy1 = vectors(rng, 1000 - n_side, -54, 6, 5.0, 0.8)
    dx2, dy2 = vectors(rng, n_side, -105, 6, 2.0, 0.5)
    return np.concatenate([dx1, dx2]), np.concatenate([dy1, dy2])


def test_one_motion_every_method_agrees():
    dx, dy = vectors(np.random.default_rng(1), 2000, 30, 5, 6.0, 0.7)
    for method in HIST_METHODS:
        h = analyse_flow_histogram(dx, dy, method=method)
        assert h.ok, method
        assert h.dir_mu == pytest.approx(30, abs=1), method
        assert h.len_mu == pytest.approx(6.0, rel=0.03), method


def test_second_motion_peak_rejects_moments_averages():
    dx, dy = two_motions(np.random.default_rng(2), 0.3)
    peak = analyse_flow_histogram(dx, dy, method="peak")
    assert not peak.ok and "outside the main orientation peak" in peak.reason
    assert peak.dir_mu == pytest.approx(-54, abs=1) and peak.dir_sigma == pytest.approx(6, rel=0.15)
    mom = analyse_flow_histogram(dx, dy, method="moments")
    assert mom.ok                                        # pyplis's moments cannot see the second motion
    mean = 0.7 * -54 + 0.3 * -105                        # the mixture's mean and spread
    spread = np.sqrt(0.7 * 6 ** 2 + 0.3 * 6 ** 2 + 0.7 * 0.3 * 51 ** 2)
    assert mom.dir_mu == pytest.approx(mean, abs=1.5)
    assert mom.dir_sigma == pytest.approx(spread, rel=0.05)


def test_moments_wrap_round_180_degrees():
    """A flow pointing down (180 deg) is not averaged to 0 deg (up) across the +-180 seam."""
    dx, dy = vectors(np.random.default_rng(3), 2000, 178, 5, 4.0, 0.5)
    for method in ("moments", "moments_binned"):
        h = analyse_flow_histogram(dx, dy, method=method)
        assert abs(((h.dir_mu - 178) + 180) % 360 - 180) < 1.5, method
        assert h.dir_sigma < 8, method
        assert h.displacement()[1] > 3.5                 # downwards (image y grows down)


def test_binned_moments_quantise_short_lengths():
    """1-2 px displacements: pyplis's 1-px length bins give 1.5 px and no spread whatever the
    lengths; the vectors' own moments do not."""
    dx, dy = vectors(np.random.default_rng(4), 2000, 45, 4, 1.3, 0.08)
    exact = analyse_flow_histogram(dx, dy, method="moments")
    binned = analyse_flow_histogram(dx, dy, method="moments_binned")
    assert exact.len_mu == pytest.approx(1.3, abs=0.02) and exact.len_sigma == pytest.approx(0.08, rel=0.2)
    assert binned.len_mu == 1.5 and binned.len_sigma == 0.0


def test_moments_reject_too_few_long_vectors():
    rng = np.random.default_rng(5)
    dx, dy = vectors(rng, 50, 0, 5, 4.0, 0.5)
    stalled = rng.normal(0, 0.2, (2, 950))
    dx, dy = np.concatenate([dx, stalled[0]]), np.concatenate([dy, stalled[1]])
    h = analyse_flow_histogram(dx, dy, method="moments", min_count_frac=0.1)
    assert not h.ok and "longer than min_length" in h.reason


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="flow histogram method.*'median'"):
        analyse_flow_histogram(np.ones(5), np.ones(5), method="median")


@pytest.mark.parametrize("method", HIST_METHODS)
def test_setting_chooses_the_chain_method(method):
    """flow_hist_method reaches the chain's histogram analysis: on a field with a second motion
    (30 % of the rows move at 155 deg instead of 95) the peak method flags the sample, the
    moments methods give a value between the two motions."""
    from processing_synthetic import LinearCalibration, SLOPE

    from pycam.formats.geometry import PCSLine
    from pycam.processing.chain import ProcessingChain
    from pycam.processing.flow import FlowField
    from pycam.processing.quality import Flag
    from pycam.processing.settings import default_settings

    shape = (486, 648)
    chain = ProcessingChain(default_settings(plume_distance_m=5000.0, flow_hist_method=method), shape,
                            calibration=LinearCalibration(SLOPE, 0.0), pcs_lines=[PCSLine(330, 120, 330, 360,
                                                                                          "right", "0")])
    so2 = np.full(shape, 2e17)
    flow = np.zeros(shape + (2,), np.float32)
    length = 5.5                      # bin centres (1 px, 10 deg): binned moments = exact ones
    side = (np.arange(shape[0]) % 10) < 3
    for rows, deg in ((~side, 95.0), (side, 155.0)):     # 95 deg: right, 5 deg off the normal
        flow[rows, :, 0] = length * np.sin(np.radians(deg))
        flow[rows, :, 1] = -length * np.cos(np.radians(deg))
    rates = chain.emission_rates(so2, FlowField(flow, (0, 0), 4.0), None, modes=("flow_histo",))
    r = rates["flow_histo"]["0"]
    if method == "peak":
        assert r.flag & Flag.HISTO_REJECTED and np.isnan(r.flux_kg_s)
    else:
        assert r.valid, r.flag_reason
        footprint = chain.lines[0].dists.mean()
        v_main = length * footprint / 4.0
        # the mixture's direction, 0.7 * 95 + 0.3 * 155 = 113 deg, 23 deg off the normal
        assert r.velo_eff == pytest.approx(v_main * np.cos(np.radians(23)), rel=0.01)
