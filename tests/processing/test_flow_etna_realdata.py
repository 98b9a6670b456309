"""Our flow, histogram/hybrid and cross-correlation on real images: pyplis's Etna 2015 test data.

pyplis (the pinned wheel) loads the plume sequence 07:10-07:20 (ECII camera, on/off band,
dark-corrected) and makes the AA images with its background model; we reduce them to 168x128
(the stored data are 84x64, Gauss pyramid level 4) and run our chain's flow on consecutive
frames (about 4 s apart) with a linear calibration of 8.5e18 molec/cm2 per AA (pyplis's DOAS
slope for this camera) and pyplis's line (630,780)-(1000,350) of its own tests.  pyplis's
cross-correlation speed on this scene is 4.43 m/s (pycam_compat.md section 8).

These are our quick real-data checks; the formal pyplis comparison lives with the ECII adapter.
"""
from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pytest
from processing_synthetic import LinearCalibration

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

PYPLIS_XCORR_SPEED = 4.43
SLOPE = 8.5e18
LEVEL = 8                      # 1344x1024 -> 168x128


def _pyplis_aa():
    pyplis = pytest.importorskip("pyplis")
    from os.path import exists, join

    img_dir = join(pyplis.__dir__, "data", "testdata_minimal", "images")
    if not exists(img_dir):
        pytest.skip("pyplis test data missing")
    warnings.filterwarnings("ignore")
    cam = pyplis.Camera("ecII", filter_list=[pyplis.Filter(type="on", acronym="F01"),
                                             pyplis.Filter(type="off", acronym="F02")],
                        lon=15.1129, lat=37.73122, elev=20.0, azim=270.0, alt_offset=15.0, focal_length=25e-3)
    setup = pyplis.MeasSetup(img_dir, camera=cam, source=pyplis.Source("etna"),
                             wind_info={"dir": 0.0, "dir_err": 1.0}, auto_topo_access=False)
    setup.start, setup.stop = dt.datetime(2015, 9, 16, 7, 10), dt.datetime(2015, 9, 16, 7, 20)
    ds = pyplis.Dataset(setup)
    on, off = ds.get_list("on"), ds.get_list("off")
    on.activate_darkcorr()
    off.activate_darkcorr()
    bg_on = pyplis.Img(join(img_dir, "EC2_1106307_1R02_2015091607022602_F01_Etna.fts"))
    bg_off = pyplis.Img(join(img_dir, "EC2_1106307_1R02_2015091607022216_F02_Etna.fts"))
    bg_on.subtract_dark_image(on.get_dark_image())
    bg_off.subtract_dark_image(off.get_dark_image())
    on.set_bg_img(bg_on)
    off.set_bg_img(bg_off)
    on.bg_model.set_missing_ref_areas(on.this)
    on.aa_mode = True
    aa, times = [], []
    for k in range(on.nof):
        on.goto_img(k)
        img = on.this.img
        h, w = img.shape
        aa.append(img.reshape(h // LEVEL, LEVEL, w // LEVEL, LEVEL).mean(axis=(1, 3)).astype(np.float32))
        t = on.this.meta["start_acq"]
        times.append(t.replace(tzinfo=dt.timezone.utc))
    return np.array(aa), times


@pytest.fixture(scope="module")
def etna(artifacts_dir):
    from pycam.formats.geometry import PCSLine
    from pycam.processing.chain import ProcessingChain
    from pycam.processing.crosscorr import space_time_velocity
    from pycam.processing.settings import default_settings

    aa, times = _pyplis_aa()
    h, w = aa.shape[1:]
    s = 648 / w                 # our lines are given in 648-px-wide coordinates
    line = PCSLine(*(int(round(v / LEVEL * s)) for v in (630, 780, 1000, 350)), "left", "0")
    settings = default_settings(plume_distance_m=10232.0, focal_length_m=0.025, pix_size_m=4.65e-6 * LEVEL / s,
                                ref_check_mode=False, cross_corr_gap_px=40)
    chain = ProcessingChain(settings, (h, w), calibration=LinearCalibration(SLOPE), pcs_lines=[line])
    modes = ("flow_raw", "flow_histo", "flow_hybrid")
    rows = {m: [] for m in modes}
    medians, profiles, flows = [], [], []
    for i in range(1, len(aa)):
        so2 = chain.calibrate(aa[i])
        flow = chain.flow(aa[i - 1], aa[i], (times[i] - times[i - 1]).total_seconds(), so2)
        rates = chain.emission_rates(so2, flow, None, modes=modes, base=chain.pair_flags(so2, times[i]))
        for m in modes:
            rows[m].append(rates[m]["0"])
        le = chain.lines[0]
        dx, dy = le.sampler.sample_vectors(flow.flow, flow.origin)
        plume = le.sampler.sample(so2) >= settings["min_cd"]
        medians.append(float(np.median(np.hypot(dx, dy)[plume])) if plume.any() else math.nan)
        profiles.append(chain.cross_correlation_icas(so2)["0"])
        flows.append(flow)
    xcorr = space_time_velocity(times[1:], np.array(profiles), chain.crosscorr.footprint_m["0"])
    _plot(artifacts_dir, aa, chain, flows, len(aa) // 2)
    return chain, rows, medians, xcorr


def _plot(artifacts_dir, aa, chain, flows, i):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flow = flows[i - 1]
    full = chain.flow_engine.compute(aa[i - 1], aa[i], flow.dt_s, (0, 0, aa.shape[2], aa.shape[1]), flow.contrast)
    fig, ax = plt.subplots(figsize=(8, 6.4))
    ax.imshow(aa[i], vmin=flow.contrast.lo, vmax=flow.contrast.hi, cmap="viridis")
    yy, xx = np.mgrid[2:aa.shape[1]:5, 2:aa.shape[2]:5]
    ax.quiver(xx, yy, full.flow[yy, xx, 0], full.flow[yy, xx, 1], color="w", angles="xy", scale_units="xy", scale=0.5)
    smp = chain.lines[0].sampler
    ax.plot(smp.x, smp.y, "r", lw=1.5)
    x0, y0, x1, y1 = flow.box
    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="orange", lw=1))
    ax.set_title(f"Etna 2015-09-16 (pyplis test data) AA, flow x2 (white), auto contrast "
                 f"[{flow.contrast.lo:.3f}, {flow.contrast.hi:.3f}]; box: flow region", fontsize=8)
    fig.savefig(artifacts_dir / "etna_flow_realdata.png", dpi=80)
    plt.close(fig)


def test_every_mode_gives_a_value_or_says_why(etna):
    chain, rows, medians, xcorr = etna
    n = len(rows["flow_raw"])
    raw_ok = sum(r.valid for r in rows["flow_raw"])
    assert raw_ok >= 0.9 * n
    for mode in ("flow_histo", "flow_hybrid"):
        ok = sum(r.valid for r in rows[mode])
        assert ok >= 0.8 * raw_ok, mode
        assert all(r.valid or r.flag_reason for r in rows[mode])


def test_no_near_zero_flow_field_is_left_unflagged(etna):
    chain, rows, medians, xcorr = etna
    limit = chain.settings["flag_min_flow_px"]
    for r, med in zip(rows["flow_raw"], medians):
        if med < limit:
            assert r.flag and math.isnan(r.flux_kg_s)


def test_speeds_agree_with_each_other_and_with_pyplis(etna):
    chain, rows, medians, xcorr = etna
    hybrid = np.mean([r.velo_eff for r in rows["flow_hybrid"] if r.valid])
    assert xcorr is not None and not xcorr.edge and xcorr.r_max > 0.9
    assert hybrid == pytest.approx(PYPLIS_XCORR_SPEED, rel=0.10)
    assert xcorr.velocity == pytest.approx(PYPLIS_XCORR_SPEED, rel=0.15)
    assert xcorr.velocity == pytest.approx(hybrid, rel=0.15)
