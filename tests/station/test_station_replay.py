"""The replay drivers: a real PyCam archive served as if captured now, through the real station."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.waiting import wait_for
from station_helpers import InProcessStation, stored_files

from pycam.cli.demo_live import HeadlessLiveChain
from pycam.drivers.base import DriverError
from pycam.drivers.replay import ReplayCamera, ReplaySpectrometer
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName
from pycam.station.camera_service import CameraService
from pycam.station.spectrometer_service import SpectrometerService

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def pairs_dir(data_dir) -> Path:
    return data_dir / "pycam_images" / "2019-09-18_pairs"


@pytest.fixture
def spectra_dir(data_dir) -> Path:
    return data_dir / "pycam_spectra"


def _archive(directory: Path, band: str) -> list[Path]:
    return sorted((p for p in directory.glob("*.png") if ImageName.parse(p.name).band == band),
                  key=lambda p: p.name)


@pytest.mark.realdata
def test_camera_serves_the_archive_in_order_then_loops_or_stops(pairs_dir, tmp_path):
    expected = [read_image(p) for p in _archive(pairs_dir, "on")]
    cam = ReplayCamera(None, "on", replay_dir=pairs_dir)
    cam.open()
    assert cam.limits.shape == expected[0].shape and cam.limits.min_shutter_us == 999904
    served = [cam.capture(NOW + dt.timedelta(seconds=k)) for k in range(len(expected) + 1)]
    for frame, pixels in zip(served, expected + expected[:1]):   # loops by default
        assert np.array_equal(frame.pixels, pixels)
    assert served[1].time == NOW + dt.timedelta(seconds=1) and served[0].exposure_us == 999904
    assert cam.set_exposure(5000) == 999904                      # the archive fixes the exposure
    stop = ReplayCamera(None, "on", replay_dir=pairs_dir, end="stop")
    stop.open()
    for _ in expected:
        stop.capture(NOW)
    with pytest.raises(DriverError, match="end of the archive reached after 2 frames"):
        stop.capture(NOW)


@pytest.mark.realdata
def test_unreadable_file_is_skipped_with_a_warning(pairs_dir, tmp_path, caplog):
    for p in pairs_dir.glob("*.png"):
        shutil.copy(p, tmp_path / p.name)
    first = _archive(tmp_path, "on")[0]
    first.write_bytes(b"\x89PNG truncated")
    cam = ReplayCamera(None, "on", replay_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        cam.open()
        frames = [cam.capture(NOW) for _ in range(3)]
    good = read_image(_archive(tmp_path, "on")[1])
    assert all(np.array_equal(f.pixels, good) for f in frames)
    assert sum("skipping unreadable file" in r.getMessage() and first.name in r.getMessage()
               for r in caplog.records) == 1


def test_empty_or_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DriverError, match="is not a directory"):
        ReplayCamera(None, "on", replay_dir=tmp_path / "missing").open()
    (tmp_path / "notes.txt").write_text("no frames here")
    with pytest.raises(DriverError, match=r"no PyCam image files .* in "):
        ReplayCamera(None, "off", replay_dir=tmp_path).open()
    with pytest.raises(DriverError, match="no PyCam spectrum files"):
        ReplaySpectrometer(None, replay_dir=tmp_path).open()
    with pytest.raises(DriverError, match="--replay-dir"):
        ReplayCamera(None, "on")
    with pytest.raises(DriverError, match="end mode"):
        ReplayCamera(None, "on", replay_dir=tmp_path, end="rewind")


def test_all_files_unreadable_is_an_error(tmp_path):
    (tmp_path / "2019-09-18T074335_fltrA_1ag_999904ss_Plume.png").write_bytes(b"not a png")
    with pytest.raises(DriverError, match="none of the 1 images can be read"):
        ReplayCamera(None, "on", replay_dir=tmp_path).open()


@pytest.mark.realdata
def test_spectrometer_serves_plume_and_dark_spectra(spectra_dir):
    spec = ReplaySpectrometer(None, replay_dir=spectra_dir)
    spec.open()
    plume = sorted(spectra_dir.glob("*_Plume.npy"))
    frames = [spec.capture(NOW) for _ in plume]
    for frame, path in zip(frames, plume):
        assert np.array_equal(frame.counts, read_spectrum_npy(path)[1])
        assert frame.integration_ms == SpectrumName.parse(path.name).integration_ms
    dark = spec.capture(NOW, frame_type="Dark")
    assert np.array_equal(dark.counts, read_spectrum_npy(next(spectra_dir.glob("*_Dark.npy")))[1])
    with pytest.raises(DriverError, match="no Clear spectra"):
        spec.capture(NOW, frame_type="Clear")


@pytest.mark.slow
@pytest.mark.realdata
def test_station_stores_the_replayed_frames(station_config, pairs_dir, spectra_dir):
    """Master + CM1 + CM2 + SPC with replay drivers at 1 Hz: the archive holds the real pixels,
    paired under new (now) time strings."""
    station = InProcessStation(station_config, devices=())
    try:
        config = station.config
        services = {"CM1": CameraService(config, "on", ReplayCamera(config, "on", replay_dir=pairs_dir),
                                         framerate=1.0),
                    "CM2": CameraService(config, "off", ReplayCamera(config, "off", replay_dir=pairs_dir),
                                         framerate=1.0),
                    "SPC": SpectrometerService(config, ReplaySpectrometer(config, replay_dir=spectra_dir),
                                               framerate=1.0)}
        station.services.update(services)
        chain = HeadlessLiveChain(config, printer=lambda line: None)   # the live chain on the real frames
        chain.start()
        station.client(name="live", on_message=chain.on_message, subscribe=("image", "spectrum"))
        for service in services.values():
            service.start(acquire=True)
        station.wait_devices()

        def pairs():
            stored = stored_files(station.data_dir, "*_Plume.png")
            by_time: dict[str, dict[str, Path]] = {}
            for p in stored:
                name = ImageName.parse(p.name)
                by_time.setdefault(name.time_string, {})[name.band] = p
            return [v for _, v in sorted(by_time.items()) if len(v) == 2]

        wait_for(lambda: len(pairs()) >= 3 and len(stored_files(station.data_dir, "*_Plume.npy")) >= 3,
                 timeout=30, what="3 replayed pairs and spectra stored")
        wait_for(lambda: chain.pump() or len(chain.samples) >= 2, timeout=20, what="the live chain's results")
    finally:
        chain.stop()
        station.close()
    assert chain.errors == []
    assert chain.live.pairs_processed >= 2 and chain.live.spectra_processed >= 2
    assert all(s["flag_reason"].startswith("CAL_MISSING") for s in chain.samples)   # no plume, no calibration
    archive = {band: [read_image(p) for p in _archive(pairs_dir, band)] for band in ("on", "off")}
    stored_pairs = pairs()
    for pair in stored_pairs:
        for band in ("on", "off"):
            pixels = read_image(pair[band])
            assert any(np.array_equal(pixels, a) for a in archive[band]), f"{pair[band].name} is not an archived frame"
        # A and B of one stored pair come from the same archived pair (same index in both bands)
        ia = next(i for i, a in enumerate(archive["on"]) if np.array_equal(read_image(pair["on"]), a))
        ib = next(i for i, b in enumerate(archive["off"]) if np.array_equal(read_image(pair["off"]), b))
        assert ia == ib
        assert ImageName.parse(pair["on"].name).exposure_us == 999904
        assert ImageName.parse(pair["on"].name).time.year >= 2026     # stamped now, not 2019
    spectra = stored_files(station.data_dir, "*_Plume.npy")
    archived = [read_spectrum_npy(p)[1] for p in sorted(spectra_dir.glob("*_Plume.npy"))]
    for path in spectra:
        assert any(np.array_equal(read_spectrum_npy(path)[1], a) for a in archived)


def test_cli_names_a_missing_replay_dir(station_config):
    out = subprocess.run([sys.executable, "-m", "pycam", "camera", "--config", str(station_config), "--band", "on",
                          "--driver", "replay"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "--driver replay needs --replay-dir DIR" in out.stderr
    out = subprocess.run([sys.executable, "-m", "pycam", "spectrometer", "--config", str(station_config),
                          "--driver", "replay", "--replay-dir", str(station_config.parent / "nowhere")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "is not a directory" in out.stderr
