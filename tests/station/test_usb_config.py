"""USB-drive runtime JSON config: copy + apply, template from the driver's controls, errors naming
the key with the previous good settings kept; driven by the Picamera2 driver on its fake."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.station.usb_config import RuntimeConfig, RuntimeConfigError, validate


@pytest.fixture
def camera(hw_config, fake_picamera2):
    cam = Picamera2Camera(hw_config(), "on", clock=lambda: dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    cam.open()
    yield cam
    cam.close()


@pytest.fixture
def setup(tmp_path, camera):
    events = []
    usb = tmp_path / "usb" / "pycam" / "pycam_config.json"
    rc = RuntimeConfig(usb, tmp_path / "work", "camera", camera.control_specs, camera.apply_controls,
                       publish=lambda kind, **f: events.append((kind, f)), device="picamera2")
    return rc, usb, events


def test_missing_drive_is_not_an_error(setup, tmp_path):
    rc, usb, events = setup
    assert rc.startup() == {}
    assert events == []
    template = json.loads((tmp_path / "work" / "pycam_config.json.default").read_text())
    assert template["_controls"]["camera"]["ExposureTime"] == {"min": 130, "max": 3066985, "default": 20000,
                                                               "type": "int"}
    assert template["camera"] == {"ExposureTime": 20000, "AnalogueGain": 1.0}


def test_usb_file_copied_applied_and_template_next_to_it(setup, tmp_path, fake_picamera2):
    rc, usb, events = setup
    usb.parent.mkdir(parents=True)
    usb.write_text(json.dumps({"camera": {"ExposureTime": 5000, "AnalogueGain": 2.5}}))
    assert rc.startup() == {"ExposureTime": 5000, "AnalogueGain": 2.5}
    assert (tmp_path / "work" / "pycam_config.json").read_text() == usb.read_text()
    assert (usb.parent / "pycam_config.json.default").is_file()
    assert events[-1][0] == "runtime_config" and events[-1][1]["state"] == "applied"
    sent = fake_picamera2.INSTANCES[-1].set_controls_calls
    assert any(c.get("ExposureTime") == 5000 for c in sent) and any(c.get("AnalogueGain") == 2.5 for c in sent)
    # the template itself is a valid config
    template = json.loads((usb.parent / "pycam_config.json.default").read_text())
    assert validate(template, "camera", rc._specs()) == {"ExposureTime": 20000, "AnalogueGain": 1.0}


@pytest.mark.parametrize("content,key", [
    ('{"camera": {"ExposureTime": 5000,}}', ""),                        # invalid JSON
    ('{"camera": {"Exposure": 5000}}', "camera.Exposure"),              # unknown key
    ('{"camera": {"ExposureTime": 99999999}}', "camera.ExposureTime"),  # out of range
    ('{"camera": {"AnalogueGain": "high"}}', "camera.AnalogueGain"),    # wrong type
    ('{"picamera": {"AnalogueGain": 2}}', "picamera"),                  # the seed's section name
])
def test_bad_file_names_key_and_keeps_previous_settings(setup, tmp_path, content, key):
    rc, usb, events = setup
    work = tmp_path / "work"
    work.mkdir()
    (work / "pycam_config.json").write_text('{"camera": {"ExposureTime": 7000}}')
    assert rc.startup() == {"ExposureTime": 7000}     # no drive: the working copy
    bad = work / "pycam_config.json"
    bad.write_text(content)
    with pytest.raises(RuntimeConfigError) as err:
        rc.apply_file(bad)
    assert err.value.key == key
    if key:
        assert key.split(".")[-1] in str(err.value)
    else:
        assert "invalid JSON at line 1" in str(err.value)
    assert rc.settings == {"ExposureTime": 7000}
    # restart with the broken working copy: the last good settings come back
    usb.parent.mkdir(parents=True)
    usb.write_text(content)
    events.clear()
    assert rc.startup() == {"ExposureTime": 7000}
    assert events[0][1]["state"] == "error" and events[0][1]["key"] == key


def test_integer_valued_float_accepted_for_int(setup):
    rc, usb, events = setup
    assert validate({"camera": {"ExposureTime": 1000.0}}, "camera", rc._specs()) == {"ExposureTime": 1000}
    with pytest.raises(RuntimeConfigError, match="whole number"):
        validate({"camera": {"ExposureTime": 1000.5}}, "camera", rc._specs())
    with pytest.raises(RuntimeConfigError, match="must be a number"):
        validate({"camera": {"ExposureTime": True}}, "camera", rc._specs())


def test_shared_file_and_merged_template(setup, tmp_path):
    """Camera B and the spectrometer share one file: each applies its own section only."""
    rc, usb, events = setup
    applied = []
    spectro = RuntimeConfig(usb, tmp_path / "work", "spectrometer",
                            lambda: {"IntegrationTime": {"min": 1, "max": 655349, "default": 100, "type": "int"}},
                            lambda values: applied.append(values) or values)
    usb.parent.mkdir(parents=True)
    usb.write_text(json.dumps({"camera": {"ExposureTime": 6000}, "spectrometer": {"IntegrationTime": 250}}))
    assert rc.startup() == {"ExposureTime": 6000}
    assert spectro.startup() == {"IntegrationTime": 250} and applied == [{"IntegrationTime": 250}]
    for template_path in (tmp_path / "work" / "pycam_config.json.default", usb.parent / "pycam_config.json.default"):
        merged = json.loads(template_path.read_text())
        assert set(merged["_controls"]) == {"camera", "spectrometer"}
        assert merged["camera"]["ExposureTime"] == 20000 and merged["spectrometer"]["IntegrationTime"] == 100
        assert validate(merged, "spectrometer", spectro._specs()) == {"IntegrationTime": 100}
    bad_camera = tmp_path / "work" / "pycam_config.json"
    bad_camera.write_text(json.dumps({"camera": {"Nope": 1}, "spectrometer": {"IntegrationTime": 250}}))
    assert spectro.read_file(bad_camera) == {"IntegrationTime": 250}  # not the spectrometer's problem
    with pytest.raises(RuntimeConfigError, match="camera.Nope"):
        rc.read_file(bad_camera)
