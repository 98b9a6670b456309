"""Our chain on the shared real PyCam images (``PYCAM_DATA_DIR``): the 2019 pairs hold no
plume, so the AA is about 0 and no emission passes a line.  (The Villarrica cells are
compared with pyplis in tests/processing/test_pyplis_crosscheck.py, also marked realdata.)"""
from __future__ import annotations

import numpy as np
import pytest

from pycam.formats.geometry import PCSLine
from pycam.processing.absorbance import ClearSky
from pycam.processing.archive import pair_records, read_pair, scan_directory
from pycam.processing.chain import ProcessingChain
from pycam.processing.cell_calibration import calibrate_cells
from pycam.processing.settings import default_settings

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def pairs_2019(data_dir):
    d = data_dir / "pycam_images" / "2019-09-18_pairs"
    if not d.is_dir():
        pytest.skip(f"{d} missing")
    pairing = pair_records(scan_directory(d))
    assert len(pairing.pairs) == 2 and not pairing.unpaired
    read = [(p, read_pair(p)) for p in pairing.pairs]
    return [(p, images.img_a, images.img_b) for p, images in read]


def test_no_plume_2019_pairs_give_zero_aa_and_no_emission(pairs_2019, data_dir, artifacts_dir):
    """The first pair is the clear sky of the second (bg mode 1, sky rectangle top left);
    calibrated with the Villarrica cells of the same camera type; a line across the sky."""
    (p0, a0, b0), (p1, a1, b1) = pairs_2019
    cal = calibrate_cells(data_dir / "pycam_images" / "villarrica_2018_Cal_1")
    clear = ClearSky.from_raw(a0, b0)
    settings = default_settings(bg_mode=1, ambient_roi=[20, 20, 120, 120], plume_distance_m=3000.0,
                                flow_glob=False)
    line = PCSLine(100, 400, 450, 60, "left", "sky")
    chain = ProcessingChain(settings, a1.shape, clear=clear, calibration=cal, pcs_lines=[line])
    aa0 = chain.absorbance.compute(a0, b0, p0.a.exposure_us, p0.b.exposure_us).aa.copy()
    aa1 = chain.absorbance.compute(a1, b1, p1.a.exposure_us, p1.b.exposure_us).aa.copy()
    sky = np.s_[:, :560]                      # dark terrain along the right edge
    blocks = aa1[:480, :560].reshape(30, 16, 35, 16).mean(axis=(1, 3))    # 16x16 px means (pixel noise ~0.02)
    print("2019 no-plume AA: median", float(np.median(aa1[sky])), "block |mean| p95",
          float(np.percentile(np.abs(blocks), 95)))
    assert abs(float(np.median(aa1[sky]))) < 0.005
    assert float(np.percentile(np.abs(blocks), 95)) < 0.01
    so2 = chain.calibrate(aa1)
    dt_s = (p1.time - p0.time).total_seconds()
    rates = chain.emission_rates(so2, chain.flow(aa0, aa1, dt_s, so2))
    _plot(artifacts_dir / "pycam_2019_no_plume_aa.png", aa1, line)
    for mode, per_line in rates.items():
        r = per_line["sky"]
        # a degenerate sample may be missing (NaN), never a sizeable rate (measured flow_raw -0.0008 kg/s)
        assert not np.isfinite(r.flux_kg_s) or abs(r.flux_kg_s) < 0.01, (mode, r)


def _plot(path, aa, line):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    fig.colorbar(ax.imshow(aa, vmin=-0.05, vmax=0.05, cmap="RdBu"), ax=ax)
    ax.plot([line.x0, line.x1], [line.y0, line.y1], "k-")
    ax.set_title("2019-09-18 07:43:40 AA (clear sky = 07:43:35 pair)")
    fig.savefig(path, dpi=70)
    plt.close(fig)
