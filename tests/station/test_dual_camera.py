"""Single-Pi station pieces: the skew monitor, the per-pair sync records, the synced driver wrapper
and the ``pycam camera --band both`` / ``--camera-index`` options."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.drivers.sim import SimCamera
from pycam.formats.sensor_sync import (SyncRecord, SyncRecordError, find_for_image, read_record, record_path,
                                       write_record)
from pycam.station.dual_camera import MAX_PENDING, SkewMonitor, SyncedCamera

T0 = dt.datetime(2025, 3, 4, 10, 20, 30, tzinfo=dt.timezone.utc)


def meta(ts_ns: int, exposure: int = 100_000) -> dict:
    return {"SensorTimestamp": ts_ns, "ExposureTime": exposure}


def test_monitor_pairs_by_trigger_and_reports_only_above_threshold(tmp_path):
    events = []
    mon = SkewMonitor(10.0, tmp_path, fsync=False)
    mon.send_event = lambda name, **f: events.append((name, f))
    assert mon.report("on", T0, meta(5_000_000_000), 0) is None               # waits for its partner
    small = mon.report("off", T0.replace(microsecond=300), meta(5_009_000_000, 80_000), 1)
    assert small.skew_ms == pytest.approx(9.0) and not small.over_threshold and events == []
    t1 = T0 + dt.timedelta(seconds=4)
    late = mon.report("off", t1, meta(9_000_000_000), 1)
    assert late is None
    big = mon.report("on", t1, meta(9_012_500_000), 0)
    assert big.skew_ms == pytest.approx(-12.5) and big.over_threshold        # B started first: negative
    assert events == [("sensor_skew", {"time": "2025-03-04T102034", "skew_ms": -12.5, "threshold_ms": 10.0,
                                       "camera_index_on": 0, "camera_index_off": 1})]
    on_disk = read_record(record_path(tmp_path, t1))
    assert on_disk == big and on_disk.exposure_on_us == 100_000
    saved = json.loads(record_path(tmp_path, T0).read_text())
    assert saved["skew_ms"] == 9.0 and saved["over_threshold"] is False and saved["exposure_off_us"] == 80_000
    assert [r.time for r in mon.records] == [T0, t1]


def test_monitor_ignores_frames_without_timestamp_and_forgets_lone_frames(tmp_path):
    mon = SkewMonitor(10.0, None)
    assert mon.report("on", T0, {}, 0) is None                              # the simulator has none
    for i in range(MAX_PENDING + 5):                                        # camera B never delivers
        mon.report("on", T0 + dt.timedelta(seconds=i), meta(i), 0)
    assert len(mon._pending) == MAX_PENDING
    assert mon.report("off", T0, meta(1), 1) is None                        # its partner was dropped


def test_records_are_never_overwritten_and_errors_name_the_file(tmp_path):
    rec = SyncRecord(T0, 1, 2, 3, 4, 0, 1, 10.0)
    path = write_record(tmp_path, rec, fsync=False)
    assert path == tmp_path / "2025-03-04" / "sensor_sync" / "2025-03-04T102030_sync.json"
    with pytest.raises(SyncRecordError, match="already exists"):
        write_record(tmp_path, SyncRecord(T0, 5, 6, 7, 8, 0, 1, 10.0), fsync=False)
    assert read_record(path) == rec
    path.write_text("{")
    with pytest.raises(SyncRecordError, match=f"{path}: not valid JSON"):
        read_record(path)
    path.write_text(json.dumps({"time": "2025-03-04T102030"}))
    with pytest.raises(SyncRecordError, match="missing field 'sensor_timestamp_on_ns'"):
        read_record(path)


def test_find_for_image_locates_the_pairs_record(tmp_path):
    seq = tmp_path / "2025-03-04" / "Seq_2"
    seq.mkdir(parents=True)
    image = seq / "2025-03-04T102030_fltrB_1ag_99000ss_Plume.png"
    assert find_for_image(image) is None                                    # two-Pi stations write none
    write_record(tmp_path, SyncRecord(T0, 10, 8_000_010, 1, 1, 0, 1, 5.0), fsync=False)
    found = find_for_image(image)
    assert found.skew_ms == pytest.approx(8.0) and found.over_threshold


def test_synced_camera_delegates_and_reports(hw_config, fake_picamera2):
    fake_picamera2.ATTACHED, fake_picamera2.PLATFORM = 2, "pisp"   # Pi 5: camera 0 is the CAM0 port (i2c@88000)
    mon = SkewMonitor(1000.0, None)
    cfg = hw_config({"camera": {"shutter_us": 20_000}})
    cams = [SyncedCamera(Picamera2Camera(cfg, band, camera_index=i, clock=lambda: T0), i, mon)
            for i, band in enumerate(("on", "off"))]
    for cam in cams:
        cam.open()
    try:
        assert cams[1].control_specs()["ExposureTime"]["max"] == 3066985    # runtime config still works
        assert cams[1].set_exposure(30_000) == 30_000 and cams[1].limits.shape == (486, 648)
        cams[0].capture(T0)
        cams[1].capture(T0)
    finally:
        for cam in cams:
            cam.close()
    (rec,) = mon.records
    assert (rec.camera_index_on, rec.camera_index_off) == (0, 1) and rec.skew_ms > 0  # B captured after A
    assert [c.camera_idx for c in fake_picamera2.INSTANCES] == [0, 1]
    assert [c["Id"].split("/")[-2] for c in fake_picamera2.Picamera2.global_camera_info()] == ["i2c@88000",
                                                                                               "i2c@80000"]
    assert not hasattr(SyncedCamera(SimCamera(cfg, "on"), 0, mon), "control_specs")  # no runtime config for sim


def test_cli_camera_index_options(tmp_path, hw_config, capsys):
    from pycam.cli.main import main

    cfg = hw_config()
    assert main(["camera", "--config", str(cfg.path), "--band", "on", "--camera-index", "1"]) == 1
    assert "no camera index (--camera-index is for picamera2)" in capsys.readouterr().err
    assert main(["camera", "--config", str(cfg.path), "--band", "both", "--camera-index", "1",
                 "--driver", "picamera2"]) == 1
    assert "--band both takes [hardware] pair_camera_indices" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["camera", "--config", str(cfg.path), "--band", "on", "--camera-index", "9"])


def test_synced_camera_passes_the_frame_type_on(hw_config):
    """``pycam camera --band both``: a Dark or Clear request gives that frame, not a plume frame."""
    import numpy as np

    class Reports:
        def __init__(self):
            self.times = []

        def report(self, band, when, metadata, camera_index):
            self.times.append(when)

    mon = Reports()
    cfg = hw_config({"camera": {"shutter_us": 20_000}})
    cam = SyncedCamera(SimCamera(cfg, "on"), 0, mon)
    cam.open()
    try:
        plume = cam.capture(T0, frame_type="Plume")
        dark = cam.capture(T0 + dt.timedelta(seconds=1), frame_type="Dark")
    finally:
        cam.close()
    assert float(np.mean(dark.pixels)) < 0.5 * float(np.mean(plume.pixels))
    assert mon.times == [T0]   # only the plume frame went to the skew monitor
