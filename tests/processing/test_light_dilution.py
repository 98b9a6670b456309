"""Camera light-dilution correction (pycam.processing.light_dilution) on synthetic frames that
follow the simulator contract I = I0*exp(-eps d) + I_sky*(1 - exp(-eps d)) per band."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pycam.formats.geometry import PCSLine, write_pcs_line
from pycam.processing.absorbance import AbsorbanceModel, ClearSky
from pycam.processing.chain import ProcessingChain
from pycam.processing.light_dilution import (DilutionError, DilutionSetup, LightDilution, fit_extinction)
from pycam.processing.settings import SettingsError, default_settings, settings_from_mapping

SHAPE = (486, 648)
EPS = {"on": 1.2e-4, "off": 0.9e-4}
PLUME_D = 5000.0
TERRAIN = ((400, 440, 8000.0), (440, 486, 2000.0))     # rows [y0, y1) and distance
RHO = 0.1
LINES = [(PCSLine(300, 420, 600, 420, "left", "far"), 8000.0), (PCSLine(300, 462, 600, 462, "left", "near"), 2000.0)]
SIGMA = {"on": 1.0, "off": 0.25}    # optical depth per unit "column" in each band


def _sky():
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(float)
    g = 0.8 + 0.4 * np.minimum(y, 380) / 485
    r2 = ((x - 324) ** 2 + (y - 243) ** 2) / (324 ** 2 + 243 ** 2)
    return g * (1 - 0.3 * r2), y           # sky radiance seen through a radial vignetting


def _column():
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(float)
    return 0.25 * np.exp(-0.5 * ((y - 220) / 40) ** 2) * (x > 80)


def frames(eps=EPS, noise=0.0, seed=0):
    """Raw (dark-free) on/off frames, clear-sky frames (the same terrain, no plume) and the true AA."""
    rng = np.random.default_rng(seed)
    sky, y = _sky()
    s = _column()
    out = {}
    for band, level in (("on", 800.0), ("off", 2000.0)):
        t_p = np.exp(-eps[band] * PLUME_D)
        img = sky * (np.exp(-SIGMA[band] * s) * t_p + 1 - t_p)
        clear = sky.copy()
        for y0, y1, d in TERRAIN:
            t = np.exp(-eps[band] * d)
            img[y0:y1] = clear[y0:y1] = sky[y0:y1] * (RHO * t + 1 - t)
        img = level * img * (1 + noise * rng.standard_normal(SHAPE))
        out[band] = img.astype(np.float32)
        out["clear_" + band] = (level * clear).astype(np.float32)
    out["aa_true"] = (SIGMA["on"] - SIGMA["off"]) * s
    return out


def _model(f, dilution=None):
    m = AbsorbanceModel(SHAPE, bg_mode=1, ambient_roi=[0, 0, 60, 60], clear=ClearSky(f["clear_on"], f["clear_off"]))
    m.dilution = dilution
    return m


def test_fit_recovers_extinction_and_terrain_ratio():
    rng = np.random.default_rng(1)
    for eps in (0.0, 2e-5, 1.5e-4, 6e-4):
        ratios = [RHO * np.exp(-eps * d) + 1 - np.exp(-eps * d) + 0.002 * rng.standard_normal(300)
                  for d in (1500.0, 4000.0, 9000.0)]
        fit = fit_extinction(ratios, [1500.0, 4000.0, 9000.0])
        assert fit.eps_per_m == pytest.approx(eps, abs=3e-6 + 0.03 * eps)
        assert fit.rho == pytest.approx(RHO, abs=0.01)
    with pytest.raises(DilutionError, match="two or more different distances"):
        fit_extinction([np.full(5, 0.3), np.full(5, 0.3)], [2000.0, 2000.0])
    with pytest.raises(DilutionError, match="no sample darker than the sky"):
        fit_extinction([np.full(5, 1.2), np.full(5, 0.3)], [2000.0, 5000.0])


def test_correction_restores_the_aa_that_dilution_lowers():
    f = frames(noise=0.002)
    core = (f["aa_true"] > 0.1) & (np.arange(SHAPE[0])[:, None] < 380)
    plain = _model(f).compute(f["on"], f["off"]).aa
    low = float(np.mean(plain[core]) / np.mean(f["aa_true"][core]))
    assert low < 0.6                                        # dilution hides > 40 % of the AA here
    dil = LightDilution(DilutionSetup([ln for ln, _ in LINES], [d for _, d in LINES], PLUME_D, 0.01), SHAPE)
    corrected = _model(f, dil).compute(f["on"], f["off"]).aa
    assert dil.eps["on"] == pytest.approx(EPS["on"], rel=0.05)
    assert dil.eps["off"] == pytest.approx(EPS["off"], rel=0.05)
    ratio = float(np.mean(corrected[core]) / np.mean(f["aa_true"][core]))
    assert ratio == pytest.approx(1.0, abs=0.03)
    sky = f["aa_true"] < 1e-4
    sky[380:] = False
    assert abs(float(np.mean(corrected[sky]))) < 0.005      # plume-free sky stays at AA 0
    # no dilution in the data: the fit finds ~0 and the correction changes nothing
    g = frames(eps={"on": 0.0, "off": 0.0})
    dil0 = LightDilution(DilutionSetup([ln for ln, _ in LINES], [d for _, d in LINES], PLUME_D, 0.01), SHAPE)
    aa0 = _model(g, dil0).compute(g["on"], g["off"]).aa
    assert dil0.eps["on"] < 1e-6 and dil0.eps["off"] < 1e-6
    np.testing.assert_allclose(aa0[core], g["aa_true"][core], atol=2e-3)


def _write_contract(tmp_path):
    """The simulator's files: dil_line_N.txt and light_dilution.json."""
    entries = []
    for i, (line, d) in enumerate(LINES):
        write_pcs_line(tmp_path / f"dil_line_{i}.txt", line)
        entries.append({"file": f"dil_line_{i}.txt", "distance_m": d})
    (tmp_path / "light_dilution.json").write_text(json.dumps({"lines": entries, "plume_distance_m": PLUME_D}))
    return tmp_path / "light_dilution.json"


def test_chain_reads_the_simulator_contract_and_corrects(tmp_path):
    path = _write_contract(tmp_path)
    settings = default_settings(use_light_dilution=True, dil_lines=str(path), ambient_roi=[0, 0, 60, 60],
                                flow_glob=False)
    setup = DilutionSetup.from_settings(settings)
    assert setup.distances_m == [8000.0, 2000.0] and setup.plume_distance_m == PLUME_D
    f = frames()
    chain = ProcessingChain(settings, SHAPE, clear=ClearSky(f["clear_on"], f["clear_off"]))
    aa = chain.absorbance.compute(f["on"], f["off"]).aa
    core = (f["aa_true"] > 0.1) & (np.arange(SHAPE[0])[:, None] < 380)
    assert float(np.mean(aa[core]) / np.mean(f["aa_true"][core])) == pytest.approx(1.0, abs=0.03)
    # fixed coefficients instead of the fit
    fixed = default_settings(use_light_dilution=True, dil_extinction_per_m=[EPS["on"], EPS["off"]],
                             plume_distance_m=PLUME_D, ambient_roi=[0, 0, 60, 60], flow_glob=False)
    chain = ProcessingChain(fixed, SHAPE, clear=ClearSky(f["clear_on"], f["clear_off"]))
    aa = chain.absorbance.compute(f["on"], f["off"]).aa
    assert float(np.mean(aa[core]) / np.mean(f["aa_true"][core])) == pytest.approx(1.0, abs=0.01)


def test_bad_dilution_settings_are_named(tmp_path):
    with pytest.raises(SettingsError, match="use_light_dilution = true needs dil_lines"):
        settings_from_mapping({"use_light_dilution": True})
    with pytest.raises(SettingsError, match="dil_extinction_per_m"):
        settings_from_mapping({"dil_extinction_per_m": [1e-4]})
    with pytest.raises(SettingsError, match="dil_distances_m"):
        settings_from_mapping({"dil_distances_m": [-3]})
    write_pcs_line(tmp_path / "a.txt", LINES[0][0])
    s = default_settings(use_light_dilution=True, dil_lines=[str(tmp_path / "a.txt")], plume_distance_m=PLUME_D)
    with pytest.raises(DilutionError, match="set dil_distances_m"):
        DilutionSetup.from_settings(s)
    s = default_settings(use_light_dilution=True, dil_lines=[str(tmp_path / "a.txt")], dil_distances_m=[1.0, 2.0],
                         plume_distance_m=PLUME_D)
    with pytest.raises(DilutionError, match="2 value"):
        DilutionSetup.from_settings(s)
    s = default_settings(use_light_dilution=True, dil_lines=str(tmp_path / "missing.json"))
    with pytest.raises(DilutionError, match="cannot read"):
        DilutionSetup.from_settings(s)
