"""End to end: the real master, camera and spectrometer services and protocol (sockets on
127.0.0.1) with Picamera2 cameras on the fake picamera2 and a seabreeze spectrometer on the fake
backend acquire pairs and spectra exactly as the same station does with the simulator drivers.

The single-Pi layout (a Pi 5 carrying both cameras: one ``DualCameraStation`` driving camera
numbers 0 and 1, spectrometer on the same machine, its IPv4 scan failing as on a Pi) produces the
same archive, plus one sensor-sync record per pair; an injected SensorTimestamp skew above
``[hardware] skew_warn_ms`` arrives at a client as a ``sensor_skew`` event and is in the records.

Library calls relied on: those listed in test_picamera2_driver.py and test_seabreeze_driver.py.
"""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from helpers.net import free_ports
from helpers.station_config import write_station_toml
from helpers.waiting import wait_for

from pycam.config import generate_secret, load_config
from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.drivers.seabreeze_spectrometer import SeabreezeSpectrometer
from pycam.drivers.sim import SimCamera, SimSpectrometer
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName, parse_any
from pycam.formats.sensor_sync import RECORD_DIR, find_for_image
from pycam.protocol.messages import Event
from pycam.station.camera_service import CameraService
from pycam.client import StationClient
from pycam.station.dual_camera import DualCameraStation
from pycam.station.master import Master
from pycam.station.spectrometer_service import SpectrometerService

pytestmark = pytest.mark.slow

COMPLETE_SECONDS = 3
SKEW_WARN_MS = 50.0
INJECTED_SKEW_MS = 200.0   # camera 1's SensorTimestamp runs this far ahead (thread jitter: well under 150 ms)


def write_config(path: Path, ports: tuple[int, int], secret: str, camera_index: int = 0) -> Path:
    return write_station_toml(path, {
        "network": {"device_port": ports[0], "client_port": ports[1]},
        "camera": {"framerate": 0.5, "auto_exposure": False, "shutter_us": 100_000},  # 2 s: headroom on a busy CI
        "spectrometer": {"framerate": 0.5, "auto_integration": False, "integration_ms": 100},
        "hardware": {"camera_index": camera_index, "skew_warn_ms": SKEW_WARN_MS},
    }, secret=secret)


def archive_files(data_dir: Path) -> list[Path]:
    """The stored images and spectra (not temporary files, not the single-Pi sensor-sync records)."""
    return [p for p in data_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
            and p.parent.name != RECORD_DIR]


def complete_seconds(data_dir: Path) -> dict[str, set[str]]:
    by_time: dict[str, set[str]] = collections.defaultdict(set)
    for p in archive_files(data_dir):
        parsed = parse_any(p.name)
        if parsed.frame_type != "Plume":
            continue
        by_time[parsed.time_string].add(parsed.filter_id if isinstance(parsed, ImageName) else "spectrum")
    return by_time


def run_station(root: Path, kind: str, events: list | None = None) -> Path:
    ports, secret = tuple(free_ports(2)), generate_secret()
    root.mkdir(parents=True)
    config = load_config(write_config(root / "station.toml", ports, secret))
    master = Master(config, fsync=False)
    master.start()
    if kind == "hardware":
        # one process plays both Pis: camera B is camera 1 of the fake (two are attached)
        config_b = load_config(write_config(root / "station_b.toml", ports, secret, camera_index=1))
        drivers = (Picamera2Camera(config, "on"), Picamera2Camera(config_b, "off"), SeabreezeSpectrometer(config))
    elif kind == "sim":
        drivers = (SimCamera(config, "on"), SimCamera(config, "off"), SimSpectrometer(config))
    if kind == "single":  # one Pi 5: one service object drives camera numbers 0 and 1
        pair = DualCameraStation(config, lambda band, index: Picamera2Camera(config, band, camera_index=index),
                                 fsync=False)
        services = [*pair.services.values(), SpectrometerService(config, SeabreezeSpectrometer(config))]
    else:
        services = [CameraService(config, "on", drivers[0]), CameraService(config, "off", drivers[1]),
                    SpectrometerService(config, drivers[2])]
    client = None
    if events is not None:
        client = StationClient(config, name="e2e",
                               on_message=lambda m: events.append(m) if isinstance(m, Event) else None)
        client.start()
    try:
        for service in services:
            service.start()
        wait_for(lambda: set(master.connected_devices) == {"CM1", "CM2", "SPC"}, 20, "devices to connect")
        assert client is None or client.wait_connected(20)
        master.start_acquisition()

        def enough():
            seen = complete_seconds(config["storage"]["data_dir"])
            return sum(1 for s in seen.values() if s == {"fltrA", "fltrB", "spectrum"}) >= COMPLETE_SECONDS

        wait_for(enough, 60, f"{COMPLETE_SECONDS} complete seconds ({kind})")
        master.stop_acquisition()
        wait_for(lambda: all(s.link.backlog == 0 and not s.spool.pending() for s in services), 20, "spools drained")
    finally:
        if client is not None:
            client.stop()
        for service in services:
            service.stop(drain_timeout=2.0)
        master.stop()
    return Path(config["storage"]["data_dir"])


def signature(data_dir: Path) -> dict:
    """What a consumer of the archive sees, minus pixel values and the exact times."""
    seen = complete_seconds(data_dir)
    full = [t for t, kinds in seen.items() if kinds == {"fltrA", "fltrB", "spectrum"}]
    incomplete = sorted(t for t, kinds in seen.items() if kinds != {"fltrA", "fltrB", "spectrum"})
    kinds = set()
    for p in archive_files(data_dir):
        parsed = parse_any(p.name)
        folder = p.parent.relative_to(data_dir).parts[1]
        if isinstance(parsed, ImageName):
            px = read_image(p)
            assert px.max() <= 1023, p
            kinds.add(("image", parsed.filter_id, parsed.frame_type, px.shape, str(px.dtype), folder))
        else:
            arr = read_spectrum_npy(p)
            assert isinstance(parsed, SpectrumName)
            kinds.add(("spectrum", parsed.frame_type, parsed.coadd, arr.shape, str(arr.dtype), folder))
    # a busy machine may skip a slot (on every camera alike), and start/stop can cut the first or
    # last second short on one device; but a camera frame is never left without its partner
    for t in incomplete:
        if t not in (min(seen), max(seen)):
            assert ("fltrA" in seen[t]) == ("fltrB" in seen[t]), (t, seen)
    return {"complete_seconds_at_least": len(full) >= COMPLETE_SECONDS, "kinds": kinds}


def test_fake_hardware_station_matches_the_simulator(tmp_path, fake_picamera2, fake_seabreeze):
    fake_picamera2.ATTACHED = 2
    fake_seabreeze.plug("FLMS04321")
    hardware = run_station(tmp_path / "hardware", "hardware")
    simulated = run_station(tmp_path / "sim", "sim")
    sig_hw, sig_sim = signature(hardware), signature(simulated)
    assert sig_hw == sig_sim
    assert sig_hw["complete_seconds_at_least"]
    # the hardware frames really came through the fakes: exposure as the sensor reported it
    images = sorted(hardware.rglob("*_fltrA_*.png"))
    assert images and all(93_000 <= ImageName.parse(p.name).exposure_us <= 100_000 for p in images)
    spectra = sorted(hardware.rglob("*.npy"))
    arr = read_spectrum_npy(spectra[0])
    np.testing.assert_allclose(arr[0], fake_seabreeze.wavelengths())
    assert SpectrumName.parse(spectra[0].name).integration_ms == 100
    assert fake_seabreeze.READS and all(r == ("FLMS04321", 100_000) for r in fake_seabreeze.READS)


def test_single_pi_station_matches_the_two_pi_station(tmp_path, fake_picamera2, fake_seabreeze):
    fake_picamera2.ATTACHED = 2
    fake_picamera2.PLATFORM = "pisp"                           # Pi 5: unpacked raw as SGBRG16, HdrMode control
    fake_picamera2.SKEW_NS[1] = int(INJECTED_SKEW_MS * 1e6)    # camera 1 (off-band) starts late
    fake_seabreeze.plug("FLMS04321")
    fake_seabreeze.NETWORK_SCAN_ERROR = OSError(19, "No such device")  # the Pi's pyseabreeze quirk
    events: list[Event] = []
    single = run_station(tmp_path / "single", "single", events)
    two_pi = run_station(tmp_path / "two_pi", "hardware")
    sig_single = signature(single)
    assert sig_single == signature(two_pi)
    assert sig_single["complete_seconds_at_least"]
    # the archive: the same folders and names (other times), plus one sync record per pair
    assert sorted({p.relative_to(single).parts[1] for p in archive_files(single)}) == \
        sorted({p.relative_to(two_pi).parts[1] for p in archive_files(two_pi)}) == ["Seq_1"]
    assert not list(two_pi.rglob(RECORD_DIR))
    assert fake_seabreeze.NETWORK_SCANS[0] == 0
    # both cameras of one Pi: numbers 0 and 1, noise reduction and HDR off
    cams = {cam.camera_idx: cam for cam in fake_picamera2.INSTANCES[:2]}
    assert sorted(cams) == [0, 1]
    for cam in cams.values():
        assert {"NoiseReductionMode": 0, "HdrMode": 0}.items() <= cam.set_controls_calls[0].items()
    # every complete pair has its record with the injected skew; over the threshold -> events
    pairs = [p for p in sorted(single.rglob("*_fltrA_*.png"))
             if any(single.rglob(f"{ImageName.parse(p.name).time_string}_fltrB_*.png"))]
    assert len(pairs) >= COMPLETE_SECONDS
    records = [find_for_image(p) for p in pairs]
    assert all(r is not None for r in records), pairs
    for r in records:
        assert abs(r.skew_ms - INJECTED_SKEW_MS) < 150.0, r
        assert r.over_threshold and r.threshold_ms == SKEW_WARN_MS
        assert (r.camera_index_on, r.camera_index_off) == (0, 1)
        assert 93_000 <= r.exposure_on_us <= 100_000
    skew_events = [e for e in events if e.name == "sensor_skew"]
    assert {e.device for e in skew_events} == {"CM1"}
    by_time = {e.fields["time"]: e.fields for e in skew_events}
    for r in records:
        assert by_time[r.time_string]["skew_ms"] == pytest.approx(r.skew_ms, abs=1e-3)
        assert by_time[r.time_string]["threshold_ms"] == SKEW_WARN_MS
