"""Cell calibration as PyCam applies it and as we do (setting ``cell_cal_style``), on real cells."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pycam.processing.cell_calibration import CalibrationError, calibrate_cells

#: PyCam's own fit of the Villarrica cells (cal_coeff.txt: log10 tau = slope * ppmm + offset,
#: then (ppmm, tau) of each cell over the full frame)
PYCAM_SLOPE, PYCAM_OFFSET = 0.000152642932975, 0.0106376050014
PYCAM_TAU10 = {0: 0.00153816224089, 304: 0.0690431547896, 1257: 0.199607116348}


@pytest.fixture(scope="module")
def cal_dir(data_dir):
    d = data_dir / "pycam_images" / "villarrica_2018_Cal_1"
    if not d.is_dir():
        pytest.skip(f"{d} missing")
    return d


@pytest.mark.realdata
def test_pycam_style_reproduces_pycams_cell_fit(cal_dir):
    cal = calibrate_cells(cal_dir, style="pycam")
    tau10 = cal.aa / math.log(10)            # PyCam's cell tau uses log10
    for ppmm, expected in PYCAM_TAU10.items():
        got = float(tau10[list(cal.ppmm).index(ppmm)])
        assert got == pytest.approx(expected, rel=3e-3, abs=1e-5), ppmm
    slope, offset = np.polyfit(cal.ppmm, tau10, 1)
    assert slope == pytest.approx(PYCAM_SLOPE, rel=5e-3)
    assert offset == pytest.approx(PYCAM_OFFSET, rel=1e-2)
    # only the slope is applied (intercept dropped), and no sensitivity mask
    aa = np.full((486, 648), 0.1, np.float32)
    assert float(cal.column_from_aa(np.zeros_like(aa))[100, 100]) == 0.0
    np.testing.assert_allclose(cal.column_from_aa(aa), 0.1 * cal.coeffs[1], rtol=1e-5)
    assert cal.coeffs[0] < -1e17           # the fit has an intercept; it is just not applied


@pytest.mark.realdata
def test_disk_style_applies_intercept_and_mask_and_follows_the_cells_better(cal_dir):
    disk = calibrate_cells(cal_dir)            # the default style
    pycam = calibrate_cells(cal_dir, style="pycam")
    assert disk.style == "disk" and disk.sensitivity_mask is not None
    lo, hi = np.percentile(disk.sensitivity_mask, [1, 99])
    assert lo < 0.8 and hi > 1.1                  # the filter sensitivity varies across the frame
    aa = np.full((486, 648), 0.1, np.float32)
    cx, cy = int(disk.fov[0]), int(disk.fov[1])
    got = disk.column_from_aa(aa)
    expected = disk.coeffs[0] + disk.coeffs[1] * 0.1 / disk.sensitivity_mask[cy, cx]
    assert got[cy, cx] == pytest.approx(expected, rel=1e-4)
    # against the cells themselves (linear interpolation between the cell points) the disk
    # style is closer at every plume AA
    for a in (0.05, 0.1, 0.3):
        for cal in (disk, pycam):
            truth = float(np.interp(a, cal.aa, cal.columns))
            err = abs(cal.coeffs[0] * cal.apply_intercept + cal.coeffs[1] * a - truth) / truth
            if cal is disk:
                err_disk = err
            else:
                assert err_disk < err, a


def test_unknown_style_is_an_error(tmp_path):
    with pytest.raises(CalibrationError, match="style"):
        calibrate_cells(tmp_path, style="circle")
