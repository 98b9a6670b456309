"""`pycam simulate`: the complete data set, in PyCam formats, with a consistent truth.json."""
from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest

from pycam.cli.main import main
from pycam.formats.geometry import read_camera_geometry, read_doas_fov, read_pcs_line
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "D"
    started = time.perf_counter()
    code = main(["simulate", "--out", str(out), "--pairs", "20", "--emission-rate", "3.5", "--wind-speed", "6",
                 "--seed", "4", "--scene", "clean", "--quiet"])
    elapsed = time.perf_counter() - started
    print(f"\n[info] pycam simulate --pairs 20 took {elapsed:.2f} s (budget: < 60 s; not asserted)")
    assert code == 0
    return out, json.loads((out / "truth.json").read_text())


def test_layout_and_names(dataset):
    out, truth = dataset
    plume = sorted((out / "Seq_1").iterdir())
    names = [ImageName.parse(p.name) for p in plume]
    assert len(names) == 40 and all(n.frame_type == "Plume" for n in names)
    by_time = Counter(n.time_string for n in names)
    assert len(by_time) == 20 and set(by_time.values()) == {2}          # A/B share the time string
    for n in names:
        assert {m.band for m in names if m.time_string == n.time_string} == {"on", "off"}
    # darks for every (filter, exposure) used anywhere
    dark_keys = {(n.band, n.exposure_us) for n in map(ImageName.parse, (p.name for p in (out / "Dark").iterdir()))}
    used = {(n.band, n.exposure_us) for n in names}
    cal = [ImageName.parse(p.name) for p in (out / "Cal_1").iterdir()]
    used |= {(n.band, n.exposure_us) for n in cal}
    clear = [ImageName.parse(p.name) for p in (out / "Clear").iterdir()]
    used |= {(n.band, n.exposure_us) for n in clear}
    assert used <= dark_keys
    assert {n.frame_type for n in clear} == {"Clear"} and {n.band for n in clear} == {"on", "off"}
    cal_types = Counter((n.frame_type, n.band) for n in cal)
    cells = {n.frame_type for n in cal if n.cell_ppmm}
    assert len(cells) >= 3 and ("0ppmm", "on") in cal_types and ("Dark", "off") in cal_types
    assert len({n.exposure_us for n in cal if n.band == "on"}) == 1                 # one fixed exposure
    spectra = [SpectrumName.parse(p.name) for p in (out / "Spectra").iterdir()]
    assert Counter(s.frame_type for s in spectra) == {"Plume": 20, "Dark": 1, "Clear": 1}
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_file_contents(dataset):
    out, truth = dataset
    img = read_image(out / truth["pairs"][0]["files"]["A"])
    assert img.dtype == np.uint16 and img.shape == (486, 648) and img.max() <= 1023
    spec = read_spectrum_npy(out / truth["pairs"][0]["files"]["spectrum"])
    assert spec.shape == (2, 2048) and spec.dtype == np.float64
    line = read_pcs_line(out / "pcs_line_0.txt")
    line1 = read_pcs_line(out / "pcs_line_1.txt")
    assert line.x0 == line.x1 and line1.x0 == line1.x1 and line1.x0 > line.x0     # flow along +x: vertical lines
    fov = read_doas_fov(out / "doas_fov.txt")
    assert (fov.x, fov.y, fov.radius) == (truth["spectrometer_fov"]["x"], truth["spectrometer_fov"]["y"],
                                          truth["spectrometer_fov"]["radius_px"])
    read_camera_geometry(out / "cam_geom.txt")


def test_truth_is_complete_and_consistent(dataset):
    out, truth = dataset
    for key in ("emission_rate_kg_s", "plume_speed_m_s", "plume_speed_px_s", "wind_direction_deg", "plume_distance_m",
                "pixel_pitch_m", "focal_length_m", "pixel_size_m", "spectrometer_fov", "aa_per_column",
                "aa_curve", "cells", "pcs_lines", "pairs", "mean_flux_kg_s", "spectrometer", "dataset"):
        assert key in truth, key
    assert truth["emission_rate_kg_s"] == 3.5 and truth["plume_speed_m_s"] == 6.0
    assert truth["pixel_size_m"] == pytest.approx(truth["plume_distance_m"] * truth["pixel_pitch_m"]
                                                  / truth["focal_length_m"])
    assert truth["plume_speed_px_s"] == pytest.approx(6.0 / truth["pixel_size_m"])
    for name, mean_flux in truth["mean_flux_kg_s"].items():
        assert mean_flux == pytest.approx(3.5, rel=1e-3), name     # mass conserved over the run
    pair = truth["pairs"][3]
    assert len(pair["lines"]["0"]["columns_molec_cm2"]) == truth["pcs_lines"][0]["samples"]
    assert 1e16 < pair["fov_column_molec_cm2"] < 5e18
    assert {c["ppmm"] for c in truth["cells"]} >= {0, 304, 600, 1257}
    assert truth["cells"][0]["aa"] == 0.0
    assert json.loads(json.dumps(truth)) == truth    # plain JSON


@pytest.fixture(scope="module")
def aa_images(dataset):
    """AA images by a plain, independent processing of the written files (dark, clear sky
    scaled on the plume-free top rows, AA = τ_A − τ_B)."""
    out, truth = dataset

    def mean_of(folder, band):
        files = [p for p in (out / folder).iterdir() if f"_{band}_" in p.name]
        return np.mean([read_image(p).astype(float) for p in files], axis=0)

    dark = {b: mean_of("Dark", b) for b in ("fltrA", "fltrB")}
    clear = {b: mean_of("Clear", b) - dark[b] for b in ("fltrA", "fltrB")}
    top = truth["plume_free_rows"]["top"]
    sky = (slice(top[0], top[1] + 1), slice(5, 640))
    images = []
    for pair in truth["pairs"]:
        tau = {}
        for key, b in (("A", "fltrA"), ("B", "fltrB")):
            img = read_image(out / pair["files"][key]) - dark[b]
            tau[b] = np.log(clear[b] / img) - np.log(clear[b][sky].mean() / img[sky].mean())
        images.append(tau["fltrA"] - tau["fltrB"])
    return np.array(images)


def test_measured_aa_matches_truth_in_the_fov(dataset, aa_images):
    out, truth = dataset
    fov = truth["spectrometer_fov"]
    yy, xx = np.mgrid[:486, :648]
    mask = (xx - fov["x"]) ** 2 + (yy - fov["y"]) ** 2 <= fov["radius_px"] ** 2
    errors = []
    for pair, aa in zip(truth["pairs"], aa_images):
        column = np.interp(aa[mask], truth["aa_curve"]["aa"], truth["aa_curve"]["column_molec_cm2"]).mean()
        errors.append(column / pair["fov_column_molec_cm2"] - 1)
    assert np.max(np.abs(errors)) < 0.03, errors


def test_optical_flow_sees_the_true_plume_speed(dataset, aa_images):
    import cv2

    out, truth = dataset
    expected = truth["plume_speed_px_s"] * truth["dataset"]["period_s"]
    speeds = []
    for a, b in zip(aa_images[:4], aa_images[1:5]):
        a8, b8 = (np.clip((x + 0.05) / 0.75 * 255, 0, 255).astype(np.uint8) for x in (a, b))
        flow = cv2.calcOpticalFlowFarneback(a8, b8, None, 0.5, 4, 20, 5, 5, 1.1, 0)
        plume = a > 0.05
        speeds.append(np.median(flow[..., 0][plume]))
        assert abs(np.median(flow[..., 1][plume])) < 0.05 * expected
    assert np.mean(speeds) == pytest.approx(expected, rel=0.02)


def test_the_spectrometer_fov_is_identifiable(dataset, aa_images):
    """Correlating disk-mean AA series with the true FOV columns peaks at the true centre."""
    import cv2

    out, truth = dataset
    fov = truth["spectrometer_fov"]
    r = int(fov["radius_px"])
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    kernel = ((xx ** 2 + yy ** 2) <= r * r).astype(np.float32)
    kernel /= kernel.sum()
    disk = np.array([cv2.filter2D(a.astype(np.float32), -1, kernel) for a in aa_images])
    columns = np.array([p["fov_column_molec_cm2"] for p in truth["pairs"]])
    z = (disk - disk.mean(0)) / disk.std(0)
    zc = (columns - columns.mean()) / columns.std()
    corr = (z * zc[:, None, None]).mean(0)
    y, x = np.unravel_index(np.argmax(corr), corr.shape)
    assert np.hypot(x - fov["x"], y - fov["y"]) <= 1.5
    assert corr[y, x] > 0.95


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x"), "--pairs", "0", "--quiet"]) == 1
    assert "--pairs" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["simulate", "--out", str(tmp_path / "full"), "--pairs", "2", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_processing_settings_match_the_scene(dataset):
    """`pycam process --config OUT/process_config.yml` gets the scene's distance and line gap."""
    from pycam.processing.settings import load_settings

    out, truth = dataset
    settings = load_settings(out / truth["dataset"]["layout"]["processing_settings"])
    assert settings["plume_distance_m"] == truth["plume_distance_m"]
    assert settings["polyorder_cal"] == 2
    line0, line1 = (truth["pcs_lines"][i] for i in (0, 1))
    gap = np.hypot(line1["x0"] - line0["x0"], line1["y0"] - line0["y0"])
    assert settings["cross_corr_gap_px"] == pytest.approx(gap, abs=1.5)
