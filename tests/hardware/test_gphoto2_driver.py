"""gphoto2 DSLR workflow and driver against the fake python-gphoto2 (``helpers/hwfakes/fake_gphoto2.py``).

Library calls relied on (python-gphoto2 2.x): ``Camera()``, ``init()``, ``capture(GP_CAPTURE_IMAGE)``
(``.folder``, ``.name``), ``folder_list_files`` -> ``CameraList`` (``count``, ``get_name``),
``file_get_info`` -> ``CameraFileInfo.file`` (``size``, ``mtime``, ``fields``),
``file_get(folder, name, GP_FILE_TYPE_NORMAL)`` -> ``CameraFile.get_data_and_size()``,
``file_delete``, ``get_config``/``set_config`` and widget ``get_child_by_name``/``count_choices``/
``get_choice``/``set_value``, ``exit()``; errors are ``GPhoto2Error`` with ``.code``/``.string``.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid

import gphoto2 as real_gp
import numpy as np
import pytest

from pycam.drivers.base import DriverError, DriverUnavailable
from pycam.drivers.gphoto2_camera import (OUTCOME_CODES, DslrCapture, Gphoto2Camera,
                                          end_processes_by_exact_name, find_processes_by_exact_name,
                                          parse_shutter)
from pycam.drivers.registry import camera_driver_class

WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def dslr():
    from helpers.hwfakes import fake_gphoto2

    world = fake_gphoto2.World()
    return world, fake_gphoto2.module(world)


def workflow(tmp_path, gp, **kw):
    return DslrCapture(tmp_path / "dslr", gp_module=gp, **kw)


def test_codes_are_the_seed_mapping():
    assert OUTCOME_CODES == {"captured": 4, "no_camera": 100, "no_focus": 101, "error": 102}
    assert camera_driver_class("gphoto2") is Gphoto2Camera


def test_success_downloads_renames_and_clears(tmp_path, dslr):
    world, gp = dslr
    world.shot_types = ("CR2", "JPG")
    outcome = workflow(tmp_path, gp).run(WHEN, "fltrA")
    assert outcome.ok and outcome.code == 4
    names = sorted(p.name for p in outcome.files)
    assert names == ["2024-05-01T120000_fltrA_IMG_0001.CR2", "2024-05-01T120000_fltrA_IMG_0001.JPG"]
    assert all(p.parent == tmp_path / "dslr" / "2024-05-01" for p in outcome.files)
    from helpers.hwfakes.fake_gphoto2 import jpeg_bytes
    jpg = next(p for p in outcome.files if p.suffix == ".JPG")
    assert jpg.read_bytes() == jpeg_bytes(1)  # complete, byte for byte
    assert world.card["/store_00020001/DCIM/100CANON"] == {}  # cleared after the good download
    fields = outcome.event_fields()
    assert fields["outcome"] == "captured" and fields["code"] == 4 and len(fields["files"]) == 2


def test_no_camera(tmp_path, dslr):
    world, gp = dslr
    world.attached = False
    outcome = workflow(tmp_path, gp).run(WHEN, "fltrA")
    assert (outcome.outcome, outcome.code) == ("no_camera", 100)
    assert outcome.library_code == real_gp.GP_ERROR_MODEL_NOT_FOUND


def test_no_focus(tmp_path, dslr):
    world, gp = dslr
    world.capture_error = real_gp.GP_ERROR
    outcome = workflow(tmp_path, gp).run(WHEN, "fltrA")
    assert (outcome.outcome, outcome.code) == ("no_focus", 101)


def test_generic_error_carries_library_message(tmp_path, dslr):
    world, gp = dslr
    world.capture_error = real_gp.GP_ERROR_CAMERA_BUSY
    outcome = workflow(tmp_path, gp).run(WHEN, "fltrA")
    assert (outcome.outcome, outcome.code) == ("error", 102)
    assert real_gp.gp_result_as_string(real_gp.GP_ERROR_CAMERA_BUSY) in outcome.message


@pytest.mark.parametrize("how", ["io", "short"])
def test_download_failing_halfway_keeps_everything_on_card(tmp_path, dslr, how):
    world, gp = dslr
    world.shot_types = ("CR2", "JPG")
    world.fail_download = {"IMG_0001.JPG": how}
    flow = workflow(tmp_path, gp)
    outcome = flow.run(WHEN, "fltrB")
    assert outcome.code == 102 and "nothing was deleted" in outcome.message
    assert sorted(world.card["/store_00020001/DCIM/100CANON"]) == ["IMG_0001.CR2", "IMG_0001.JPG"]
    assert world.deleted == []
    day = tmp_path / "dslr" / "2024-05-01"
    assert not any(p.name.endswith("IMG_0001.JPG") for p in day.iterdir())  # no half file
    # next capture: the leftovers come down too, then everything is cleared
    world.fail_download = {}
    later = flow.run(WHEN + dt.timedelta(seconds=10), "fltrB")
    assert later.ok
    got = sorted(p.name for p in later.files)
    assert got[0].endswith("IMG_0001.CR2") and any(n.endswith("IMG_0001.JPG") for n in got)
    assert any(n.endswith("IMG_0002.JPG") for n in got)
    assert world.card["/store_00020001/DCIM/100CANON"] == {}
    from helpers.hwfakes.fake_gphoto2 import jpeg_bytes
    jpg1 = next(p for p in later.files if p.name.endswith("IMG_0001.JPG"))
    assert jpg1.read_bytes() == jpeg_bytes(1)


def test_delete_failure_is_not_data_loss(tmp_path, dslr):
    world, gp = dslr
    world.fail_delete = True
    outcome = workflow(tmp_path, gp).run(WHEN, "fltrA")
    assert outcome.ok and "could not delete" in outcome.message
    assert outcome.files[0].exists()


def test_output_folder_problem_is_an_error_naming_it(tmp_path, dslr):
    world, gp = dslr
    (tmp_path / "dslr").write_text("a file where the folder should be")
    outcome = workflow(tmp_path, gp).run(WHEN, "fltrA")
    assert outcome.code == 102 and "output folder" in outcome.message
    assert world.card == {}  # nothing was shot, nothing deleted


def _spawn(name: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", f'exec -a {name} sleep 60'])


def test_holder_process_ended_by_exact_name_only(tmp_path, dslr):
    world, gp = dslr
    name = f"pycam-test-monitor-{uuid.uuid4().hex[:8]}"
    holder, lookalike = _spawn(name), _spawn(name + "x")
    try:
        for _ in range(100):
            if find_processes_by_exact_name(name) and find_processes_by_exact_name(name + "x"):
                break
            __import__("time").sleep(0.02)
        assert find_processes_by_exact_name(name) == [holder.pid]
        world.holder_process = name
        blocked = workflow(tmp_path, gp).run(WHEN, "fltrA")  # not configured to end it
        assert blocked.code == 102 and blocked.library_code == real_gp.GP_ERROR_IO_USB_CLAIM
        flow = workflow(tmp_path, gp, kill_process=name)
        outcome = flow.run(WHEN, "fltrA")
        assert outcome.ok and flow.ended_pids == [holder.pid]
        holder.wait(timeout=5)
        assert lookalike.poll() is None  # a longer name is not the same process
    finally:
        for p in (holder, lookalike):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_absent_process_is_not_an_error(tmp_path, dslr):
    ended = end_processes_by_exact_name(f"no-such-process-{uuid.uuid4().hex}")
    assert ended == []
    world, gp = dslr
    assert workflow(tmp_path, gp, kill_process="no-such-process-xyz").run(WHEN, "fltrA").ok


def test_parse_shutter():
    assert parse_shutter("1/100") == 10_000
    assert parse_shutter("30") == 30_000_000
    assert parse_shutter("0.5s") == 500_000
    assert parse_shutter("bulb") is None


def test_driver_capture_events_and_frame(hw_config, dslr):
    world, gp = dslr
    cam = Gphoto2Camera(hw_config(), "on", gp_module=gp, clock=lambda: WHEN)
    events = []
    cam.event_listeners.append(lambda kind, **f: events.append((kind, f)))
    cam.open()
    assert cam.limits.min_shutter_us == 250 and cam.limits.max_shutter_us == 30_000_000
    assert cam.set_exposure(90_000) == 100_000  # nearest choice 1/10
    assert cam.set_gain(3.5) == 4.0  # nearest ISO 400
    frame = cam.capture(WHEN)
    assert world.config_values["shutterspeed"] == "1/10"
    assert frame.pixels.shape == (486, 648) and frame.pixels.dtype == np.uint16
    assert 0 < frame.pixels.min() and frame.pixels.max() <= 1023
    assert frame.exposure_us == 100_000
    assert events[-1][0] == "dslr_capture" and events[-1][1]["code"] == 4
    world.capture_error = real_gp.GP_ERROR
    with pytest.raises(DriverError, match="code 101"):
        cam.capture(WHEN)
    assert events[-1][1]["outcome"] == "no_focus"
    world.attached = False
    with pytest.raises(DriverError, match="code 100"):
        cam.capture(WHEN)
    assert [e[1]["code"] for e in events] == [4, 101, 100]


def test_driver_open_without_camera(hw_config, dslr):
    world, gp = dslr
    world.attached = False
    with pytest.raises(DriverUnavailable, match="no camera found"):
        Gphoto2Camera(hw_config(), "on", gp_module=gp).open()


def test_real_library_without_camera(hw_config, tmp_path):
    """The installed python-gphoto2 (no camera on this machine) maps to 'no camera' (100)."""
    outcome = DslrCapture(tmp_path / "dslr", kill_process="").run(WHEN, "fltrA")
    assert outcome.code == 100, outcome
