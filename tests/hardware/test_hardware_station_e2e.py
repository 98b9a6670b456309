"""End to end: the real master, camera and spectrometer services and protocol (sockets on
127.0.0.1) with Picamera2 cameras on the fake picamera2 and a seabreeze spectrometer on the fake
backend acquire pairs and spectra exactly as the same station does with the simulator drivers.

Library calls relied on: those listed in test_picamera2_driver.py and test_seabreeze_driver.py.
"""
from __future__ import annotations

import collections
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from pycam.config import generate_secret, load_config, render_config
from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.drivers.seabreeze_spectrometer import SeabreezeSpectrometer
from pycam.drivers.sim import SimCamera, SimSpectrometer
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName, parse_any
from pycam.station.camera_service import CameraService
from pycam.station.master import Master
from pycam.station.spectrometer_service import SpectrometerService

COMPLETE_SECONDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return value


def write_config(path: Path, root: Path, ports: tuple[int, int], secret: str, camera_index: int = 0) -> Path:
    path.write_text(render_config({
        "network": {"device_port": ports[0], "client_port": ports[1], "reconnect_max_s": 1.0},
        "storage": {"data_dir": str(root / "data"), "spool_dir": str(root / "spool")},
        "camera": {"framerate": 0.5, "auto_exposure": False, "shutter_us": 100_000},  # 2 s: headroom on a busy CI
        "spectrometer": {"framerate": 0.5, "auto_integration": False, "integration_ms": 100},
        "hardware": {"camera_index": camera_index},
    }, secret=secret))
    return path


def complete_seconds(data_dir: Path) -> dict[str, set[str]]:
    by_time: dict[str, set[str]] = collections.defaultdict(set)
    for p in data_dir.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
        parsed = parse_any(p.name)
        if parsed.frame_type != "Plume":
            continue
        by_time[parsed.time_string].add(parsed.filter_id if isinstance(parsed, ImageName) else "spectrum")
    return by_time


def run_station(root: Path, kind: str) -> Path:
    ports, secret = (free_port(), free_port()), generate_secret()
    root.mkdir(parents=True)
    config = load_config(write_config(root / "station.toml", root, ports, secret))
    master = Master(config, fsync=False)
    master.start()
    if kind == "hardware":
        # one process plays both Pis: camera B is camera 1 of the fake (two are attached)
        config_b = load_config(write_config(root / "station_b.toml", root, ports, secret, camera_index=1))
        drivers = (Picamera2Camera(config, "on"), Picamera2Camera(config_b, "off"), SeabreezeSpectrometer(config))
    else:
        drivers = (SimCamera(config, "on"), SimCamera(config, "off"), SimSpectrometer(config))
    services = [CameraService(config, "on", drivers[0]), CameraService(config, "off", drivers[1]),
                SpectrometerService(config, drivers[2])]
    try:
        for service in services:
            service.start()
        wait_for(lambda: set(master.connected_devices) == {"CM1", "CM2", "SPC"}, 20, "devices to connect")
        master.start_acquisition()

        def enough():
            seen = complete_seconds(config["storage"]["data_dir"])
            return sum(1 for s in seen.values() if s == {"fltrA", "fltrB", "spectrum"}) >= COMPLETE_SECONDS

        wait_for(enough, 60, f"{COMPLETE_SECONDS} complete seconds ({kind})")
        master.stop_acquisition()
        wait_for(lambda: all(s.link.backlog == 0 and not s.spool.pending() for s in services), 20, "spools drained")
    finally:
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
    for p in data_dir.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
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
