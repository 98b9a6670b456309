"""The realistic scenes: vent plume with exact flux, terrain and light dilution per the contract,
clouds (false AA), dust specks, A/B warp in truth.json, cells that bend like the real ones."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from pycam.cli.main import main
from pycam.formats.geometry import read_pcs_line
from pycam.sim.dataset import pcs_lines
from pycam.sim.landscape import scene_points, warp_a_to_b
from pycam.sim.optics import MOLEC_CM2_PER_PPMM, aa_of_column, illumination
from pycam.sim.plume import KG_M2_PER_MOLEC_CM2
from pycam.sim.scene import Scene, line_normal, line_samples

T0 = 1_773_576_000.0


@pytest.fixture(scope="module")
def realistic(references):
    return Scene.preset("realistic", references, noise=False, seed=4, emission_rate_kg_s=2.0, wind_speed_m_s=4.0)


def _flux(scene: Scene, line, t: float) -> float:
    xs, ys, spacing = line_samples(line)
    v = scene.params.wind_speed_m_s * float(np.dot(scene.field.along, line_normal(line)))
    return float(np.sum(scene.field.columns(xs, ys, t)) * spacing * v * scene.field.pixel_size_m * KG_M2_PER_MOLEC_CM2)


@pytest.mark.slow
def test_vent_plume_flux_through_the_lines_is_rate_times_puff(realistic):
    field = realistic.field
    for line in pcs_lines(realistic, 40.0):
        centre = np.array([(line.x0 + line.x1) / 2, (line.y0 + line.y1) / 2])
        xi = float(np.dot(centre - field.axis, field.along))
        for t in (T0, T0 + 37.0):
            q = float(field.puff_factor_exact(np.array([(xi - field.speed_px_s * t) % field.params.puff_length_px]))[0])
            assert _flux(realistic, line, t) == pytest.approx(2.0 * q, rel=2e-3)
    # nothing upstream of the vent; the plume is narrow at the vent and wide at the lines
    vx, vy = realistic.params.vent_xy
    assert field.columns(np.array([vx - 30.0]), np.array([vy]), T0)[0] == 0.0
    img = field.column_image(T0)
    near = img[:, int(vx) + 15]
    far = img[:, int(vx) + 280]
    width = [np.count_nonzero(c > 0.2 * c.max()) for c in (near, far)]
    assert width[1] > 2 * width[0]


@pytest.mark.slow
def test_lines_in_clear_sky_and_the_plume_inside_them(realistic):
    cam = realistic.camera("on")
    world = cam._world
    for line in pcs_lines(realistic, 40.0):
        xs, ys, _ = line_samples(line)
        ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
        assert world["sky"][iy, ix].all()                                  # no terrain on the lines
        cloud = cam.cloud_opacity(T0)
        assert float(cloud[iy, ix].max()) == 0.0                           # realistic: clouds above the lines
        cols = realistic.field.columns(xs, ys, T0)
        assert cols[[0, -1]].max() < 2e-3 * cols.max()                    # the plume ends inside the line


@pytest.mark.slow
def test_light_dilution_follows_the_contract(references):
    eps_on, eps_off = 8e-5, 6e-5
    scene = Scene.preset("realistic", references, noise=False, extinction=(eps_on, eps_off), seed=2)
    truth = scene.truth([], [])
    assert truth["light_dilution"]["eps_on_per_m"] == eps_on and truth["light_dilution"]["eps_off_per_m"] == eps_off
    for band, eps in (("on", eps_on), ("off", eps_off)):
        cam = scene.camera(band)
        terrain = cam.terrain
        for (x0, y0, x1, y1), distance in terrain.dil_line_points():
            if band == "off":
                continue      # B is rotated: the lines are in A's pixels
            xs = np.arange(x0, x1 + 1)
            rel = cam.scene_radiance(T0, "Clear")[y0, xs]
            g = (0.8 + 0.4 * terrain.style.horizon_knee_row / 485) * (1 + 0.06 * (xs / 647 - 0.5))
            m = terrain.maps(xs.astype(float), np.full(xs.size, float(y0)))
            on_ridge = distance == terrain.ridge_distance_m
            assert m["ridge"].all() if on_ridge else m["volcano"].all()      # the whole line at that distance
            e = math.exp(-eps * distance)
            assert rel == pytest.approx(g * (m["radiance"] * e + 1 - e), rel=1e-5)
            assert rel.mean() < 0.5 * g.mean()                                 # dark terrain
    # a plume pixel: I/I_clear = T·e + (1 − e) (the apparent absorbance shrinks)
    cam = scene.camera("on")
    cols = cam.columns(T0)
    y, x = np.unravel_index(np.argmax(np.where(cam._world["sky"], cols, 0)), cols.shape)
    ratio = cam.scene_radiance(T0, "Plume")[y, x] / cam.scene_radiance(T0, "Clear")[y, x]
    e = math.exp(-eps_on * scene.params.plume_distance_m)
    clouds = cam.cloud_opacity(T0)
    assert clouds[y, x] == 0
    assert ratio == pytest.approx(cam.transmission(np.array([cols[y, x]]))[0] * e + 1 - e, rel=1e-5)


@pytest.mark.slow
def test_clouds_give_false_aa_and_cloudy_clouds_cross_the_lines(references):
    for name in ("realistic", "cloudy"):
        scene = Scene.preset(name, references, noise=False, seed=2, extinction=(0.0, 0.0),
                             misregistration_px=(0.0, 0.0), misregistration_rot_deg=0.0)   # same pixels in A and B
        on, off = scene.camera("on"), scene.camera("off")
        c_on = on.cloud_opacity(T0)
        aa = (-np.log(on.scene_radiance(T0, "Plume") / on.scene_radiance(T0, "Clear"))
              + np.log(off.scene_radiance(T0, "Plume") / off.scene_radiance(T0, "Clear")))
        plume_free = on.columns(T0) == 0
        cloudy_px = (c_on > 0.8) & plume_free
        assert cloudy_px.sum() > 100
        # brighter in both bands, more so off-band: positive false AA (up to ~0.07)
        assert 0.02 < float(np.median(aa[cloudy_px])) < 0.08
        lines = pcs_lines(scene, 40.0)
        xs, ys, _ = line_samples(lines[0])
        on_line = c_on[np.rint(ys).astype(int), np.rint(xs).astype(int)]
        assert (on_line.max() > 0.3) == (name == "cloudy")
        # clouds drift: a later frame differs
        assert not np.allclose(c_on, on.cloud_opacity(T0 + 60))


def test_dust_specks_in_clear_plume_and_cell_frames(realistic):
    cam = realistic.camera("on")
    clear = cam.expected_counts(T0, 200_000, 1.0, "Clear") - cam.expected_counts(T0, 200_000, 1.0, "Dark")
    cell = cam.expected_counts(T0, 200_000, 1.0, "304ppmm") - cam.expected_counts(T0, 200_000, 1.0, "Dark")
    smooth = np.asarray(__import__("cv2").medianBlur(clear.astype(np.float32), 5))
    specks = (clear < 0.8 * smooth) & cam._world["sky"]
    assert 20 < specks.sum() < 3000
    # fixed on the sensor: the cell frame has the same dips (the ratio is flat over them)
    ratio = cell / clear
    assert float(np.ptp(ratio[specks])) < 1e-4
    other = realistic.camera("off")
    clear_b = other.expected_counts(T0, 200_000, 1.0, "Clear")
    smooth_b = np.asarray(__import__("cv2").medianBlur(clear_b.astype(np.float32), 5))
    specks_b = (clear_b < 0.8 * smooth_b) & other._world["sky"]
    assert (specks & specks_b).sum() < 0.2 * specks.sum()        # each sensor has its own dust


@pytest.mark.slow
def test_truth_warp_maps_a_to_the_b_pixel_seeing_the_same_point(references):
    scene = Scene.preset("realistic", references, noise=False, seed=2)
    reg = scene.truth([], [])["registration"]
    m = np.array(reg["warp_a_to_b"])
    assert reg["shift_px"] == [-24.0, 17.0] and reg["rotation_deg"] == 0.6
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 600, (2, 50))
    b = m @ np.vstack([a, np.ones(50)])
    for (xa, ya), (xb, yb) in zip(a.T, b.T):
        px, py = scene_points(np.array([xb]), np.array([yb]), tuple(reg["shift_px"]), reg["rotation_deg"],
                              tuple(reg["centre_xy"]))
        assert (px[0, 0], py[0, 0]) == pytest.approx((xa, ya), abs=1e-9)
    assert np.allclose(warp_a_to_b((0, 0), 0.0, (10, 10)), np.eye(2, 3))


@pytest.mark.slow
def test_processing_registration_recovers_the_warp(references):
    """ECC (reg_mode ecc, what process_config.yml asks for) on the clear-sky frames finds the
    true warp within 1 px over the frame."""
    from pycam.processing.corrections import estimate_registration

    scene = Scene.preset("realistic", references, seed=2)
    frames = []
    for band in ("on", "off"):
        cam = scene.camera(band)
        frames.append(cam.render(T0, 150_000 if band == "on" else 60_000, 1.0, "Clear").astype(np.float32)
                      - cam.offset)
    warp = estimate_registration(*frames)
    true = np.array(scene.truth([], [])["registration"]["warp_a_to_b"])
    corners = np.array([[0, 0, 1], [647, 0, 1], [0, 485, 1], [647, 485, 1], [323, 242, 1]], float).T
    err = np.abs(warp @ corners - true @ corners).max()
    print(f"ECC warp error: {err:.3f} px")
    assert err < 1.0


@pytest.mark.slow
def test_cells_bend_like_the_real_villarrica_cells(references):
    """0–304 ppm·m column-per-AA slope vs the linear fit of 0, 304, 1257 ppm·m: real ~0.71."""
    scene = Scene.preset("realistic", references, noise=False)
    on, off = scene.camera("on").transmission, scene.camera("off").transmission
    ppmm = np.array([0.0, 304.0, 1257.0])
    aa = aa_of_column(on, off, ppmm * MOLEC_CM2_PER_PPMM)
    ratio = (304 / aa[1]) / np.polyfit(aa, ppmm, 1)[0]
    assert 0.65 < ratio < 0.76
    clean = Scene.preset("clean", references, noise=False)
    aa_clean = aa_of_column(clean.camera("on").transmission, clean.camera("off").transmission, ppmm * MOLEC_CM2_PER_PPMM)
    assert (304 / aa_clean[1]) / np.polyfit(aa_clean, ppmm, 1)[0] > 0.8       # the clean scene is nearly linear
    data = os.environ.get("PYCAM_DATA_DIR")
    if data:
        from pycam.formats.images import read_image

        cal = Path(data) / "pycam_images" / "villarrica_2018_Cal_1"
        means = {}
        for band in "AB":
            dark = np.mean([read_image(p) for p in cal.glob(f"*fltr{band}*_Dark.png")], axis=0)
            for kind in ("0ppmm", "304ppmm", "1257ppmm"):
                img = np.mean([read_image(p) for p in cal.glob(f"*fltr{band}*_{kind}.png")], axis=0) - dark
                means[band, kind] = float(img[150:330, 230:420].mean())
        real = np.array([0.0] + [math.log(means["A", "0ppmm"] / means["A", k]) - math.log(means["B", "0ppmm"] / means["B", k])
                                 for k in ("304ppmm", "1257ppmm")])
        real_ratio = (304 / real[1]) / np.polyfit(real, ppmm, 1)[0]
        print(f"0-304 slope / 3-cell fit: simulated {ratio:.3f}, real {real_ratio:.3f}")
        assert abs(ratio - real_ratio) < 0.05
        assert aa[1] == pytest.approx(real[1], rel=0.2) and aa[2] == pytest.approx(real[2], rel=0.2)


@pytest.fixture(scope="module")
def realistic_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("realistic") / "D"
    assert main(["simulate", "--out", str(out), "--pairs", "3", "--seed", "2", "--extinction-on", "2e-5",
                 "--extinction-off", "1.5e-5", "--quiet"]) == 0
    return out, json.loads((out / "truth.json").read_text())


@pytest.mark.slow
def test_realistic_dataset_files(realistic_dataset):
    from pycam.formats.images import read_image
    from pycam.processing.settings import load_settings

    out, truth = realistic_dataset
    assert truth["scene"] == "realistic"
    assert truth["light_dilution"] == {"eps_on_per_m": 2e-5, "eps_off_per_m": 1.5e-5, "plume_distance_m": 5000.0,
                                       "model": truth["light_dilution"]["model"]}
    info = json.loads((out / "light_dilution.json").read_text())
    assert [l["file"] for l in info["lines"]] == ["dil_line_0.txt", "dil_line_1.txt"]
    assert info["plume_distance_m"] == 5000.0
    distances = [l["distance_m"] for l in info["lines"]]
    assert distances[0] < 5000.0 < distances[1]
    clear_a = next(p for p in (out / "Clear").iterdir() if "fltrA" in p.name)
    img = read_image(clear_a).astype(float)
    sky = float(np.median(img[120:180, 12:72]))
    for entry in info["lines"]:
        line = read_pcs_line(out / entry["file"])
        xs, ys, _ = line_samples(line)
        values = img[np.rint(ys).astype(int), np.rint(xs).astype(int)]
        assert values.mean() < 0.5 * sky                                   # dark terrain
    settings = load_settings(out / "process_config.yml")
    assert settings["reg_mode"] == "ecc" and settings["ambient_roi"] == [12, 120, 72, 180]
    assert settings["polyorder_cal"] == 3
    assert truth["registration"]["rotation_deg"] == 0.6
    assert abs(truth["mean_flux_kg_s"]["0"] / truth["emission_rate_kg_s"] - 1) < 0.05   # 3 pairs: puffs


@pytest.mark.slow
def test_clean_dataset_has_no_dilution_files(tmp_path):
    out = tmp_path / "C"
    assert main(["simulate", "--out", str(out), "--pairs", "2", "--scene", "clean", "--quiet"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["scene"] == "clean" and truth["light_dilution"]["eps_on_per_m"] == 0.0
    assert not (out / "light_dilution.json").exists() and not (out / "dil_line_0.txt").exists()
    assert truth["registration"]["warp_a_to_b"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


@pytest.mark.slow
def test_scene_from_station_config(sim_config):
    from pycam.config import validate, generate_secret

    assert sim_config["simulator"]["scene"] == "realistic"
    scene = Scene.from_config(sim_config)
    assert scene.style.name == "realistic" and scene.params.misregistration_rot_deg == 0.6
    clean = Scene.from_config(validate({"network": {"secret": generate_secret()}, "simulator": {"scene": "clean"}}))
    assert clean.style.name == "clean" and clean.params.vent_xy is None
    custom = Scene.from_config(validate({"network": {"secret": generate_secret()},
                                         "simulator": {"scene": "cloudy", "extinction_on_per_m": 0.0,
                                                       "misregistration_x_px": 5.0}}))
    assert custom.style.clouds > 0.5 and custom.style.extinction_on_per_m == 0.0
    assert custom.params.misregistration_px == (5.0, 0.0) and custom.params.misregistration_rot_deg == 0.0


def test_bad_scene_options_are_named(tmp_path):
    assert main(["simulate", "--out", str(tmp_path / "a"), "--pairs", "2", "--extinction-on", "0.1", "--quiet"]) == 1
    assert main(["simulate", "--out", str(tmp_path / "b"), "--pairs", "2", "--rotation", "9", "--quiet"]) == 1
    with pytest.raises(SystemExit):
        main(["simulate", "--out", str(tmp_path / "c"), "--scene", "foggy"])


def test_new_dust_only_in_plume_frames(realistic):
    """Dust that arrived after the references: dips in the plume frames that the clear frame lacks
    (the AA spikes real data show), none in the clear/cell frames."""
    cam = realistic.camera("on")
    plume = cam.scene_radiance(T0, "Plume")
    clear = cam.scene_radiance(T0, "Clear")
    no_plume = cam.columns(T0) == 0
    ratio = np.where(no_plume, plume / clear, 1.0)
    assert 3 <= np.count_nonzero(ratio < 0.8) < 400
    assert realistic.truth([], [])["cameras"]["A"]["dust_specks_after_references"] == 8


@pytest.mark.slow
def test_spectrometer_sees_the_same_light_dilution(references):
    ods = {}
    for eps in ((0.0, 0.0), (8e-5, 6e-5)):
        model = Scene.preset("realistic", references, noise=False, extinction=eps).spectrometer()
        sel = (model.wavelengths > 310) & (model.wavelengths < 320)
        plume = model.expected_counts(1e17, 1000) - model.dark_pattern
        clear = model.expected_counts(0.0, 1000) - model.dark_pattern
        ods[eps] = float(np.mean(-np.log(plume[sel] / clear[sel])))
    # weak absorber: the optical depth shrinks by about exp(-eps(315 nm)·d)
    expected = math.exp(-8e-5 * (315 / 310) ** (-math.log(8 / 6) / math.log(330 / 310)) * 5000)
    assert ods[(8e-5, 6e-5)] / ods[(0.0, 0.0)] == pytest.approx(expected, rel=0.02)


def test_dilution_lines_let_a_user_recover_the_extinction(realistic_dataset):
    """What light_dilution.json gives (lines, distances, sky ROIs, flat fields) is enough to fit
    the extinction coefficients from a plume frame: r = I_line/I_sky = ρ·e + 1 − e, e = exp(−ε d),
    with the same terrain ρ for both lines."""
    from pycam.formats.images import read_image
    from pycam.formats.names import ImageName

    out, truth = realistic_dataset
    info = json.loads((out / "light_dilution.json").read_text())
    for band, key, eps_true in (("on", "A", 2e-5), ("off", "B", 1.5e-5)):
        if band == "off":
            continue          # B's lines need registration first (the lines are in A pixels)
        frame = out / truth["pairs"][0]["files"][key]
        exposure = ImageName.parse(frame.name).exposure_us
        darks = [p for p in (out / "Dark").iterdir()
                 if ImageName.parse(p.name).band == band and ImageName.parse(p.name).exposure_us == exposure]
        dark = np.mean([read_image(p).astype(float) for p in darks], axis=0)
        img = (read_image(frame).astype(float) - dark) / np.load(out / info["flat_fields"][key])
        ratios = []
        for entry in info["lines"]:
            line = read_pcs_line(out / entry["file"])
            x0, y0, x1, y1 = entry["sky_roi"]
            ratios.append(img[line.y0, line.x0:line.x1 + 1].mean() / img[y0:y1 + 1, x0:x1 + 1].mean())
        d = [e["distance_m"] for e in info["lines"]]
        eps = math.log((1 - ratios[0]) / (1 - ratios[1])) / (d[1] - d[0])
        print(f"fitted extinction {band}: {eps:.3e} 1/m (truth {eps_true:.1e})")
        assert eps == pytest.approx(eps_true, rel=0.1)
