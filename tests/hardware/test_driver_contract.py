"""The driver contract, run against every driver and every test fake.

Drivers: the simulator, the replay drivers (on a small archive written here), picamera2, gphoto2
and seabreeze on their faithful library fakes (``tests/helpers/hwfakes/``), and the single-Pi
:class:`~pycam.station.dual_camera.SyncedCamera` wrapping a simulated and a picamera2 camera.
Test fakes: ``tests/station/fake_drivers.py`` and the transfer benchmark's ``BenchCamera``.

Each must behave the same: it is a :class:`CameraDriver` or :class:`SpectrometerDriver`; capturing
before ``open`` or after ``close`` is a :class:`DriverError`; ``with driver:`` opens it; the
limits are consistent; settings come back inside the limits; a capture's frame matches the
limits (shape, band, dtype, range, wavelengths); ``close`` twice is harmless and a closed driver
opens again (the services' RSC/RSS restart); and what it *declares* in ``capabilities`` (the one
resolver :func:`supports`) is exactly what it offers, no more and no less.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import inspect
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from pycam.drivers.base import (CameraDriver, CameraFrame, CameraLimits, Capability, Driver, DriverError,
                                SpectrometerDriver, SpectrometerLimits, SpectrumFrame, supports)
from pycam.drivers.gphoto2_camera import Gphoto2Camera
from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.drivers.replay import ReplayCamera, ReplaySpectrometer
from pycam.drivers.seabreeze_spectrometer import SeabreezeSpectrometer
from pycam.drivers.sim import SimCamera, SimSpectrometer
from pycam.formats.images import write_image, write_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName
from pycam.reference_spectra import synthetic_reference_set
from pycam.sim.plume import SceneParameters
from pycam.sim.scene import Scene
from pycam.station.dual_camera import SkewMonitor, SyncedCamera

TESTS = Path(__file__).resolve().parents[1]
WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def past_clock() -> dt.datetime:
    return WHEN + dt.timedelta(seconds=1)  # trigger time already reached: no waiting


def _load(path: Path, name: str):
    """A module by file path (the fakes live beside other tests and the benchmarks)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene(SceneParameters(seed=7), synthetic_reference_set())


@pytest.fixture(scope="module")
def test_fakes():
    return _load(TESTS / "station" / "fake_drivers.py", "contract_fake_drivers")


@pytest.fixture(scope="module")
def bench_transfer():
    return _load(TESTS.parent / "benchmarks" / "transfer.py", "contract_bench_transfer")


@pytest.fixture
def archive(tmp_path) -> Path:
    """A tiny PyCam archive: two Plume pairs and one Dark pair of images, two Plume spectra and a Dark."""
    root = tmp_path / "archive" / "2024-05-01" / "Seq_1"
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for k, frame_type in enumerate(("Plume", "Plume", "Dark")):
        t = WHEN + dt.timedelta(seconds=10 * k)
        for band, exposure in (("on", 50_000 + 1000 * k), ("off", 40_000 + 1000 * k)):
            name = ImageName(time=t, band=band, gain=1, exposure_us=exposure, frame_type=frame_type)
            write_image(root / name.filename(), rng.integers(0, 1024, (48, 64), dtype=np.uint16), fsync=False)
        name = SpectrumName(time=t, integration_ms=100 + 50 * k, coadd=2, frame_type=frame_type)
        write_spectrum_npy(root / name.filename(), np.linspace(280.0, 420.0, 512), rng.random(512) * 4e4,
                           fsync=False)
    return tmp_path / "archive"


@dataclasses.dataclass
class Env:
    """What the driver factories need; fixtures (library fakes, scene, archive) are built on demand."""

    request: Any
    config: Any

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    def picamera2(self, **kw) -> Picamera2Camera:
        self.fixture("fake_picamera2")   # installed as ``picamera2``
        return Picamera2Camera(self.config, "on", clock=past_clock, **kw)

    def gphoto2(self) -> Gphoto2Camera:
        from helpers.hwfakes import fake_gphoto2

        gp = fake_gphoto2.module(fake_gphoto2.World())
        return Gphoto2Camera(self.config, "off", gp_module=gp, clock=past_clock)

    def seabreeze(self) -> SeabreezeSpectrometer:
        self.fixture("fake_seabreeze").plug("FLMS12345")
        return SeabreezeSpectrometer(self.config, clock=past_clock)

    def sim_camera(self, band: str) -> SimCamera:
        return SimCamera(self.config, band, scene=self.fixture("scene"))


def synced(camera: CameraDriver, index: int) -> SyncedCamera:
    return SyncedCamera(camera, index, SkewMonitor(10.0, None))


CAMERAS: dict[str, Callable[[Env], CameraDriver]] = {
    "sim": lambda env: env.sim_camera("on"),
    "replay": lambda env: ReplayCamera(env.config, "off", replay_dir=env.fixture("archive")),
    "picamera2": lambda env: env.picamera2(),
    "gphoto2": lambda env: env.gphoto2(),
    "dual-sim": lambda env: synced(env.sim_camera("off"), 1),
    "dual-picamera2": lambda env: synced(env.picamera2(camera_index=0), 0),
    "fake": lambda env: env.fixture("test_fakes").FakeCamera(env.config, "on"),
    "bench": lambda env: env.fixture("bench_transfer").BenchCamera(env.config, "off", (48, 64)),
}
SPECTROMETERS: dict[str, Callable[[Env], SpectrometerDriver]] = {
    "sim": lambda env: SimSpectrometer(env.config, scene=env.fixture("scene")),
    "replay": lambda env: ReplaySpectrometer(env.config, replay_dir=env.fixture("archive")),
    "seabreeze": lambda env: env.seabreeze(),
    "fake": lambda env: env.fixture("test_fakes").FakeSpectrometer(env.config),
}
DRIVERS = [("camera", name) for name in CAMERAS] + [("spectrometer", name) for name in SPECTROMETERS]


@pytest.fixture(params=DRIVERS, ids=[f"{kind}-{name}" for kind, name in DRIVERS])
def driver(request, hw_config) -> Driver:
    kind, name = request.param
    env = Env(request, hw_config())
    made = (CAMERAS if kind == "camera" else SPECTROMETERS)[name](env)
    yield made
    made.close()


# -------------------------------------------------------------------------------- helpers
def _inside(value: float, lo: float, hi: float) -> bool:
    return lo <= value <= hi


def _set_inside_limits(driver: Driver) -> Any:
    """Request a middle setting; returns the values in force (checked against the limits)."""
    lim = driver.limits
    if isinstance(driver, CameraDriver):
        shutter = driver.set_exposure(int((lim.min_shutter_us + lim.max_shutter_us) // 2))
        gain = driver.set_gain((lim.min_gain + lim.max_gain) / 2)
        assert isinstance(shutter, (int, np.integer)) and _inside(shutter, lim.min_shutter_us, lim.max_shutter_us)
        assert _inside(float(gain), lim.min_gain, lim.max_gain)
        return shutter
    integration = driver.set_integration_time(int((lim.min_integration_ms + lim.max_integration_ms) // 2))
    assert isinstance(integration, (int, np.integer))
    assert _inside(integration, lim.min_integration_ms, lim.max_integration_ms)
    return integration


def _capture(driver: Driver, **extra) -> CameraFrame | SpectrumFrame:
    if isinstance(driver, CameraDriver):
        return driver.capture(WHEN, **extra)
    return driver.capture(WHEN, 1, **extra)


def _check_frame(driver: Driver, frame: Any, setting: Any) -> None:
    lim = driver.limits
    if isinstance(driver, CameraDriver):
        assert isinstance(frame, CameraFrame)
        assert frame.pixels.dtype == np.uint16 and frame.pixels.shape == tuple(lim.shape)
        assert int(frame.pixels.max()) <= lim.max_dn
        assert frame.band == driver.band
        assert _inside(frame.exposure_us, lim.min_shutter_us, lim.max_shutter_us)
        assert _inside(frame.gain, lim.min_gain, lim.max_gain)
    else:
        assert isinstance(frame, SpectrumFrame)
        assert frame.wavelengths.shape == frame.counts.shape == (lim.pixels,)
        np.testing.assert_array_equal(frame.wavelengths, driver.wavelengths())
        assert np.all(np.isfinite(frame.counts)) and float(frame.counts.max()) <= lim.max_counts
        assert frame.integration_ms == setting   # the integration time in force is the one used
        assert isinstance(frame.coadd, int) and frame.coadd >= 1
    assert frame.time == WHEN


# -------------------------------------------------------------------------------- the contract
def test_kind_and_declared_capabilities_are_well_formed(driver):
    assert isinstance(driver, (CameraDriver, SpectrometerDriver)) and isinstance(driver, Driver)
    declared = driver.capabilities
    assert isinstance(declared, frozenset) and all(isinstance(c, Capability) for c in declared)
    assert {c for c in Capability if supports(driver, c)} == set(declared)
    if isinstance(driver, CameraDriver):
        assert driver.band in ("on", "off")
    # the CLI asks the class whether a camera index can be given: class and object agree
    assert supports(type(driver), Capability.CAMERA_INDEX) == supports(driver, Capability.CAMERA_INDEX)


def test_capture_while_closed_is_a_driver_error(driver):
    with pytest.raises(DriverError):
        _capture(driver)
    try:
        limits = driver.limits     # before open: known (simulator, fakes) or a DriverError
    except DriverError:
        pass
    else:
        assert isinstance(limits, (CameraLimits, SpectrometerLimits))
    driver.open()
    driver.close()
    with pytest.raises(DriverError):
        _capture(driver)


def test_open_limits_settings_capture_close_reopen(driver):
    with driver as opened:
        assert opened is driver
        lim = driver.limits
        if isinstance(driver, CameraDriver):
            assert isinstance(lim, CameraLimits)
            assert 0 < lim.min_shutter_us <= lim.max_shutter_us and 0 < lim.min_gain <= lim.max_gain
            assert len(lim.shape) == 2 and min(lim.shape) > 0 and lim.max_dn > 0
        else:
            assert isinstance(lim, SpectrometerLimits)
            assert 0 < lim.min_integration_ms <= lim.max_integration_ms and lim.pixels > 0 and lim.max_counts > 0
            assert driver.wavelengths().shape == (lim.pixels,)
        setting = _set_inside_limits(driver)
        _check_frame(driver, _capture(driver), setting)
    driver.close()                 # twice: harmless
    driver.open()                  # the services' restart (RSC/RSS): close, then open again
    try:
        setting = _set_inside_limits(driver)
        _check_frame(driver, _capture(driver), setting)
    finally:
        driver.close()


def test_frame_types_declared_exactly_when_capture_takes_them(driver):
    takes = "frame_type" in inspect.signature(driver.capture).parameters
    assert supports(driver, Capability.FRAME_TYPES) == takes
    if not takes:
        return
    with driver:
        setting = _set_inside_limits(driver)
        dark = _capture(driver, frame_type="Dark")
        assert isinstance(dark, CameraFrame if isinstance(driver, CameraDriver) else SpectrumFrame)
        with pytest.raises(DriverError):
            _capture(driver, frame_type="Bogus")
        _check_frame(driver, _capture(driver, frame_type="Plume"), setting)


def test_runtime_controls_declared_exactly_when_offered(driver):
    offered = callable(getattr(driver, "control_specs", None)) and callable(getattr(driver, "apply_controls", None))
    assert supports(driver, Capability.RUNTIME_CONTROLS) == offered
    if not offered:
        return
    with driver:
        specs = driver.control_specs()
        assert specs and all(set(s) == {"min", "max", "default", "type"} and s["min"] <= s["max"]
                             for s in specs.values())
        assert driver.apply_controls({}) == {}
        name, spec = next(iter(specs.items()))
        applied = driver.apply_controls({name: spec["max"]})
        assert set(applied) == {name} and _inside(applied[name], spec["min"], spec["max"])


def test_events_declared_exactly_when_listeners_are_kept(driver):
    listeners = getattr(driver, "event_listeners", None)
    assert supports(driver, Capability.EVENTS) == isinstance(listeners, list)


def test_camera_index_declared_exactly_when_the_constructor_takes_it(driver):
    takes = "camera_index" in inspect.signature(type(driver)).parameters
    if isinstance(driver, SyncedCamera):   # a wrapper: built by the dual station, never by --camera-index
        takes = False
    assert supports(driver, Capability.CAMERA_INDEX) == takes


def test_sensor_metadata_declared_exactly_when_frames_carry_it(driver):
    with driver:
        _capture(driver)
        metadata = getattr(driver, "last_metadata", None)
    declared = supports(driver, Capability.SENSOR_METADATA)
    assert declared == isinstance(metadata, dict)
    if declared:
        assert isinstance(metadata["SensorTimestamp"], int) and metadata["ExposureTime"] > 0


# -------------------------------------------------------------------------------- the resolver
def test_resolver_refuses_what_is_not_a_declaration():
    class Bad(SimCamera):
        capabilities = {"frame_types"}   # a set of strings, not a frozenset of Capability

    with pytest.raises(DriverError, match="Bad: capabilities must be a frozenset of Capability"):
        supports(Bad, Capability.FRAME_TYPES)
    with pytest.raises(TypeError, match="not a driver capability"):
        supports(SimCamera, "frame_types")
    assert not supports(object(), Capability.FRAME_TYPES)   # a non-driver declares nothing


def test_every_registered_driver_is_covered():
    from pycam.drivers.registry import CAMERA_DRIVERS, SPECTROMETER_DRIVERS

    assert set(CAMERA_DRIVERS) <= set(CAMERAS) and set(SPECTROMETER_DRIVERS) <= set(SPECTROMETERS)
