"""SimCamera / SimSpectrometer: interface, determinism, sensor linearity, spectra sanity."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.drivers.base import DriverError
from pycam.drivers.registry import camera_driver_class, spectrometer_driver_class
from pycam.drivers.sim import SimCamera, SimSpectrometer, quantise_shutter
from pycam.sim.optics import MOLEC_CM2_PER_PPMM
from pycam.sim.plume import SceneParameters
from pycam.sim.scene import Scene

T0 = dt.datetime(2026, 11, 21, 9, 0, 0, tzinfo=dt.timezone.utc)


def _camera(scene, band, shutter=200_000):
    cam = SimCamera(None, band, scene=scene)
    cam.open()
    cam.set_exposure(shutter)
    return cam


def test_registry_resolves_sim_drivers(sim_config):
    assert camera_driver_class("sim") is SimCamera
    assert spectrometer_driver_class("sim") is SimSpectrometer


@pytest.mark.slow
def test_camera_from_config_shapes_and_dtype(sim_config):
    with SimCamera(sim_config, "on") as cam:
        frame = cam.capture(T0)
        assert frame.pixels.dtype == np.uint16 and frame.pixels.shape == (486, 648) == cam.limits.shape
        assert frame.band == "on" and frame.exposure_us == cam.exposure_us and frame.time == T0
        assert 0 < frame.pixels.min() and frame.pixels.max() <= 1023


@pytest.mark.slow
def test_full_resolution_frames(references):
    scene = Scene(SceneParameters(seed=7), references, full_resolution=True)
    cam = _camera(scene, "off", 100_000)
    frame = cam.capture(T0)
    assert frame.pixels.shape == (1944, 2592) and frame.pixels.dtype == np.uint16
    assert frame.pixels.max() <= 1023


@pytest.mark.slow
def test_frames_are_pure_functions_of_their_identity(scene, references):
    cam = _camera(scene, "on")
    a = cam.capture(T0).pixels
    np.testing.assert_array_equal(a, cam.capture(T0).pixels)
    other = _camera(Scene(SceneParameters(seed=7), references), "on")   # a new world, same seed
    np.testing.assert_array_equal(a, other.capture(T0).pixels)
    assert not np.array_equal(a, cam.capture(T0 + dt.timedelta(seconds=4)).pixels)
    different_seed = _camera(Scene(SceneParameters(seed=8), references), "on")
    assert not np.array_equal(a, different_seed.capture(T0).pixels)


def test_exposure_quantisation_and_limits(scene):
    cam = _camera(scene, "on")
    assert cam.set_exposure(1_000_000) == 1_000_000
    assert cam.set_exposure(100_001) == 100_000 == quantise_shutter(100_000)
    assert cam.set_exposure(1) == cam.limits.min_shutter_us
    assert cam.set_exposure(10**9) == cam.limits.max_shutter_us
    assert cam.set_gain(100.0) == cam.limits.max_gain
    with pytest.raises(DriverError, match="shutter"):
        cam.set_exposure(-5)
    with pytest.raises(DriverError, match="frame type"):
        cam.capture(T0, frame_type="Bogus")
    with pytest.raises(DriverError, match="before open"):
        SimCamera(None, "on", scene=scene).capture(T0)
    with pytest.raises(DriverError, match="band"):
        SimCamera(None, "x", scene=scene)


@pytest.mark.slow
def test_counts_scale_linearly_with_exposure_and_gain(quiet_scene):
    model = quiet_scene.camera("on")
    t = T0.timestamp()
    dark = model.expected_counts(t, 100_000, 1.0, "Dark")
    base = model.expected_counts(t, 100_000, 1.0) - dark
    for exposure, gain in ((200_000, 1.0), (50_000, 2.0), (100_000, 3.5)):
        d = model.expected_counts(t, exposure, gain, "Dark")
        signal = model.expected_counts(t, exposure, gain) - d
        np.testing.assert_allclose(signal, base * (exposure / 100_000) * gain, rtol=1e-5)
    # measured (noisy, quantised) frames: the sky signal doubles with the exposure
    cam = _camera(quiet_scene, "on", 100_000)
    low = cam.capture(T0).pixels.astype(float) - 15
    cam.set_exposure(200_000)
    high = cam.capture(T0).pixels.astype(float) - 15
    roi = (slice(400, 480), slice(20, 200))
    assert high[roi].mean() / low[roi].mean() == pytest.approx(2.0, rel=0.01)


def test_saturation_dark_and_noise(scene):
    cam = _camera(scene, "off", 5_000_000)
    assert (cam.capture(T0).pixels == 1023).mean() > 0.9
    dark = cam.capture(T0, frame_type="Dark").pixels
    assert 12 < dark.mean() < 40 and dark.max() <= 1023
    cam.set_exposure(100_000)
    sky = cam.capture(T0, frame_type="Clear").pixels.astype(float)
    again = cam.capture(T0 + dt.timedelta(seconds=1), frame_type="Clear").pixels.astype(float)
    noise = np.std(sky[10:60, 10:60] - again[10:60, 10:60]) / np.sqrt(2)
    expected = np.sqrt((sky[10:60, 10:60].mean() - 15) / 64 + 0.25)   # shot + read, binned sensor
    assert noise == pytest.approx(expected, rel=0.15)
    # vertical radiance gradient: brighter toward the horizon (bottom)
    assert sky[440:480, 300:340].mean() > 1.2 * sky[5:45, 300:340].mean()


def test_plume_absorbs_more_on_band_and_cells_follow_the_aa_curve(quiet_scene):
    t = T0.timestamp()
    on, off = quiet_scene.camera("on"), quiet_scene.camera("off")
    columns = on.columns(t)
    y, x = np.unravel_index(np.argmax(columns), columns.shape)
    tau = {}
    for band, model in (("on", on), ("off", off)):
        clear = model.expected_counts(t, 100_000, 1.0, "Clear") - model.expected_counts(t, 100_000, 1.0, "Dark")
        plume = model.expected_counts(t, 100_000, 1.0) - model.expected_counts(t, 100_000, 1.0, "Dark")
        tau[band] = np.log(clear / plume)
    aa = tau["on"] - tau["off"]
    truth = quiet_scene.truth([])
    curve = truth["aa_curve"]
    assert aa[y, x] == pytest.approx(np.interp(columns[y, x], curve["column_molec_cm2"], curve["aa"]), rel=1e-3)
    assert tau["on"][y, x] > 5 * tau["off"][y, x] > 0
    for ppmm in (304, 1257):
        aa_cell = []
        for model in (on, off):
            clear = model.expected_counts(t, 100_000, 1.0, "0ppmm")
            cell = model.expected_counts(t, 100_000, 1.0, f"{ppmm}ppmm")
            dark = model.expected_counts(t, 100_000, 1.0, "Dark")
            aa_cell.append(np.log((clear - dark) / (cell - dark)).mean())
        expected = np.interp(ppmm * MOLEC_CM2_PER_PPMM, curve["column_molec_cm2"], curve["aa"])
        assert aa_cell[0] - aa_cell[1] == pytest.approx(expected, rel=1e-3)


@pytest.mark.slow
def test_misregistration_shifts_the_off_band_scene(references):
    scene = Scene(SceneParameters(seed=7, misregistration_px=(3.0, -2.0)), references, noise=False)
    t = T0.timestamp()
    a = scene.camera("on").columns(t)
    b = scene.camera("off").columns(t)
    np.testing.assert_allclose(b[10:-10, 10:-10], a[8:-12, 13:-7], rtol=1e-6, atol=1e12)


def test_spectrometer_interface_and_sanity(scene, sim_config):
    spec = SimSpectrometer(None, scene=scene)
    with pytest.raises(DriverError, match="before open"):
        spec.capture(T0)
    spec.open()
    wl = spec.wavelengths()
    assert wl.shape == (2048,) and np.all(np.diff(wl) > 0) and 250 < wl[0] < 253 and 404 < wl[-1] < 408
    assert spec.set_integration_time(500) == 500
    s = spec.capture(T0, coadd=2)
    assert s.counts.shape == (2048,) and s.counts.dtype == np.float64 and s.coadd == 2 and s.integration_ms == 500
    assert spec.last_column == pytest.approx(scene.field.fov_column(T0.timestamp()))
    np.testing.assert_array_equal(s.counts, spec.capture(T0, coadd=2).counts)   # deterministic
    dark = spec.capture(T0, frame_type="Dark").counts
    assert 950 < np.median(dark) < 1050
    clear = spec.capture(T0, frame_type="Clear").counts
    band = (wl > 309) & (wl < 312)
    red = (wl > 340) & (wl < 360)
    ratio_uv = (s.counts[band] - dark[band]).sum() / (clear[band] - dark[band]).sum()
    ratio_red = (s.counts[red] - dark[red]).sum() / (clear[red] - dark[red]).sum()
    assert ratio_uv < 0.95 and ratio_red == pytest.approx(1.0, abs=0.01)
    spec.set_integration_time(200)
    short = spec.capture(T0, frame_type="Clear").counts
    window = (wl > 300) & (wl < 340)
    assert (short[window] - dark[window]).max() == pytest.approx(0.4 * (clear[window] - dark[window]).max(), rel=0.03)
    spec.set_integration_time(10_000)
    assert spec.capture(T0).counts.max() == 65535.0
    with pytest.raises(DriverError, match="frame type"):
        spec.capture(T0, frame_type="300ppmm")
    with pytest.raises(DriverError, match="integration"):
        spec.set_integration_time(0)


def test_noise_free_spectrum_matches_the_documented_forward_model(quiet_scene):
    """Rebuild the counts from the documented recipe (truth['spectrometer']) independently."""
    _check_forward_model(quiet_scene)


@pytest.mark.slow
@pytest.mark.realdata
def test_forward_model_with_the_real_reference_set(data_dir):
    from pycam.reference_spectra import load_reference_dir

    scene = Scene(SceneParameters(seed=7), load_reference_dir(data_dir / "reference"), noise=False)
    _check_forward_model(scene)
    truth = scene.truth([])
    assert truth["reference_set"]["synthetic"] is False
    assert 0.15 < np.interp(1e18, truth["aa_curve"]["column_molec_cm2"], truth["aa_curve"]["aa"]) < 0.3


def _check_forward_model(quiet_scene):
    model = quiet_scene.spectrometer()
    desc = model.describe()
    refs = quiet_scene.references
    grid = model.grid
    column = 1.1e18
    x = (grid - 330.0) / 80.0
    poly = np.polyval(desc["polynomial"]["coefficients"][::-1], x)
    hires = (refs.solar.resample(grid, fill=None) * poly
             * np.exp(-refs.cross_sections["SO2"].resample(grid) * column
                      - refs.cross_sections["O3"].resample(grid) * desc["o3_column_molec_cm2"]
                      - refs.cross_sections["Ring"].resample(grid, fill=None) * desc["ring_amount"]))
    step = grid[1] - grid[0]
    half = int(np.ceil(2 * desc["ils"]["fwem_nm"] / step))
    off = np.arange(-half, half + 1) * step
    kernel = np.exp(-np.abs(2 * off / desc["ils"]["fwem_nm"]) ** desc["ils"]["k"])
    conv = np.convolve(hires, kernel / kernel.sum(), mode="same")
    c0, c1, c2 = desc["wavelength_nm"]["coefficients"]
    i = np.arange(2048)
    pix = np.interp(c0 + c1 * i + c2 * i * i, grid, conv)
    counts = model.expected_counts(column, 1000) - model.expected_counts(0.0, 1000, frame_type="Dark")
    lit = pix > 1e-3 * pix.max()
    assert lit.sum() > 1200
    ratio = counts[lit] / pix[lit]
    assert np.ptp(ratio) / ratio.mean() < 1e-9   # identical up to the documented scale factor


def test_spectra_for_given_columns_without_a_scene(references):
    from pycam.sim.spectrometer_model import SpectrometerModel

    noisy = SpectrometerModel(None, references, seed=3)
    quiet = SpectrometerModel(None, references, seed=3, noise=False)
    a = noisy.spectrum_for_column(5e17, 800, realisation=1)
    np.testing.assert_array_equal(a, noisy.spectrum_for_column(5e17, 800, realisation=1))
    assert not np.array_equal(a, noisy.spectrum_for_column(5e17, 800, realisation=2))
    clean = quiet.spectrum_for_column(5e17, 800)
    lit = clean > 5000
    assert 0.002 < np.std((a - clean)[lit] / clean[lit]) < 0.02
    assert (quiet.spectrum_for_column(2e18, 800) <= clean + 1e-9).all()   # more SO2, never more light
    with pytest.raises(ValueError, match="no scene"):
        noisy.spectrum(0.0, 100)
