"""The three-letter command vocabulary PyCam users know, with exact types and ranges.

Commands are addressed: a :class:`~pycam.protocol.messages.Command` names one device
(``CM1`` camera A / on-band / fltrA, ``CM2`` camera B / off-band / fltrB, ``SPC``
spectrometer), ``master``, or ``all`` (every connected device that understands the key).
Values keep their type end to end: ints stay ints, floats are never rounded, booleans are
JSON true/false (``1``/``0`` and the strings ``"1"``, ``"0"``, ``"true"``, ``"false"`` are
accepted on input and normalised).

Differences from PyCam, on purpose:

* ``SSA``/``SSB``/``SSS`` are accepted while auto-exposure is on: they set the exposure and
  switch auto-exposure off for that device (PyCam refused them, so settings took two rounds).
* ``CAD`` (co-adds) starts at 1: zero co-adds would produce no spectrum.
* ``LOG 2``..``LOG 5`` are valid values but answered with a "not implemented" error.

Additions (not in PyCam): ``AGA``/``AGB`` set a camera's analogue gain, and ``SCH`` (to
``master``) replaces the daily schedule with a JSON object holding every key of the
``[schedule]`` form (see :data:`SCHEDULE_KEYS`), checked by :func:`check_schedule`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from pycam.protocol.errors import CommandValueError

CAMERA_A = "CM1"
CAMERA_B = "CM2"
SPECTROMETER = "SPC"
DEVICES = (CAMERA_A, CAMERA_B, SPECTROMETER)
CAMERAS = (CAMERA_A, CAMERA_B)
MASTER = "master"
ALL = "all"
ADDRESSES = DEVICES + (MASTER, ALL)
#: camera device id -> band ("on" = fltrA, "off" = fltrB)
DEVICE_BAND = {CAMERA_A: "on", CAMERA_B: "off"}
BAND_DEVICE = {v: k for k, v in DEVICE_BAND.items()}

_CELL_RE = re.compile(r"\d+ppmm")
_CLOCK_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
#: the keys of an SCH value (the daily schedule, times HH:MM UTC) and their kinds
SCHEDULE_KEYS = {"enabled": "bool", "start_time": "clock", "stop_time": "clock", "dark_time": "clock",
                 "power_on_lead_min": "minutes", "power_off_lag_min": "minutes"}
_CAPTURE_TYPES = ("Test", "Dark", "Clear")


@dataclasses.dataclass(frozen=True)
class CommandSpec:
    """One command key: what it means, its value type and range, which devices handle it."""

    key: str
    kind: str                  # "int" | "float" | "bool" | "str" | "frame_type" | "schedule"
    devices: tuple[str, ...]   # devices (and/or "master") that handle this key
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    def describe_range(self) -> str:
        if self.kind == "bool":
            return "true/false (1/0)"
        if self.kind == "frame_type":
            return "Test, Dark, Clear or <N>ppmm"
        if self.kind == "schedule":
            return "{" + ", ".join(SCHEDULE_KEYS) + "}"
        if self.minimum is not None:
            return f"{self.kind} {self.minimum:g}..{self.maximum:g}"
        return self.kind


def _spec(key, kind, devices, minimum=None, maximum=None, doc=""):
    return CommandSpec(key, kind, tuple(devices), minimum, maximum, doc)


_CAM = CAMERAS
_SPEC = (SPECTROMETER,)
_EVERY = DEVICES + (MASTER,)

#: key -> CommandSpec.  The vocabulary of PyCam (pycam_compat.md section 5).
VOCABULARY: dict[str, CommandSpec] = {s.key: s for s in (
    _spec("IDN", "str", _EVERY, doc="identify: the reply's value is the device id"),
    _spec("SSA", "int", (CAMERA_A,), 1, 6_000_001, "camera A shutter, us (switches ATA off)"),
    _spec("SSB", "int", (CAMERA_B,), 1, 6_000_001, "camera B shutter, us (switches ATB off)"),
    _spec("SSS", "int", _SPEC, 1, 10_001, "spectrometer integration time, ms (switches ATS off)"),
    _spec("AGA", "float", (CAMERA_A,), 1, 16, "camera A analogue gain"),
    _spec("AGB", "float", (CAMERA_B,), 1, 16, "camera B analogue gain"),
    _spec("SCH", "schedule", (MASTER,), doc="replace the master's daily schedule (an object, see SCHEDULE_KEYS)"),
    _spec("FRC", "float", _CAM, 0, 1, "camera frame rate, Hz"),
    _spec("FRS", "float", _SPEC, 0, 10, "spectrometer frame rate, Hz"),
    _spec("ATA", "bool", (CAMERA_A,), doc="camera A auto exposure"),
    _spec("ATB", "bool", (CAMERA_B,), doc="camera B auto exposure"),
    _spec("ATS", "bool", _SPEC, doc="spectrometer auto integration"),
    _spec("CAD", "int", _SPEC, 1, 20, "spectrometer co-adds (mean of N reads)"),
    _spec("SMN", "float", _CAM, 0, 0.9, "camera auto-exposure minimum saturation"),
    _spec("SMX", "float", _CAM, 0.1, 1, "camera auto-exposure maximum saturation"),
    _spec("SNS", "float", _SPEC, 0, 0.9, "spectrometer auto-integration minimum saturation"),
    _spec("SXS", "float", _SPEC, 0.1, 1, "spectrometer auto-integration maximum saturation"),
    _spec("PXC", "int", _CAM, 0, 10_000, "camera: brightest pixels averaged"),
    _spec("PXS", "int", _SPEC, 0, 2048, "spectrometer: brightest pixels averaged"),
    _spec("RWC", "int", _CAM, -486, 486, "camera: rows checked (negative: from the bottom)"),
    _spec("WMN", "int", _SPEC, 300, 400, "spectrometer saturation window start, nm"),
    _spec("WMX", "int", _SPEC, 300, 400, "spectrometer saturation window end, nm"),
    _spec("TPA", "frame_type", (CAMERA_A,), doc="camera A: take one Test/Dark/Clear/<N>ppmm frame"),
    _spec("TPB", "frame_type", (CAMERA_B,), doc="camera B: take one Test/Dark/Clear/<N>ppmm frame"),
    _spec("TPS", "frame_type", _SPEC, doc="spectrometer: take one Test/Dark/Clear/<N>ppmm spectrum"),
    _spec("DKC", "bool", _CAM, doc="cameras: start a dark set (one Dark per shutter value)"),
    _spec("DKS", "bool", _SPEC, doc="spectrometer: start a dark set (one Dark per integration time)"),
    _spec("STC", "bool", _CAM, doc="cameras: start continuous capture"),
    _spec("STS", "bool", _SPEC, doc="spectrometer: start continuous capture"),
    _spec("SPC", "bool", _CAM, doc="cameras: stop continuous capture"),
    _spec("SPS", "bool", _SPEC, doc="spectrometer: stop continuous capture"),
    _spec("EXT", "bool", _EVERY, doc="shut down (to 'all': devices and master)"),
    _spec("RST", "bool", _EVERY, doc="restart everything (accepted, no-op as in PyCam)"),
    _spec("RSS", "bool", _SPEC, doc="restart the spectrometer software (re-open the driver)"),
    _spec("RSC", "bool", _CAM, doc="restart the camera software (re-open the driver)"),
    _spec("LOG", "int", _EVERY, 0, 5, "0 ping, 1 report all settings, 2-5 not implemented"),
)}



def parse_value(key: str, raw: Any) -> Any:
    """Check and normalise the value of command ``key``.

    Accepts the JSON-native type or its text form (``"1000"`` for ints); returns the typed
    value.  Raises :class:`CommandValueError` naming the key and the reason.
    """
    spec = VOCABULARY.get(key)
    if spec is None:
        raise CommandValueError(str(key)[:16], "unknown command key")
    kind = spec.kind
    if kind == "bool":
        value = _as_bool(key, raw)
    elif kind == "int":
        value = _as_int(key, raw)
    elif kind == "float":
        value = _as_float(key, raw)
    elif kind == "str":
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise CommandValueError(key, f"expected text, got {type(raw).__name__}")
        if len(raw) > 256:
            raise CommandValueError(key, "text longer than 256 characters")
        return raw
    elif kind == "schedule":
        return check_schedule(raw)
    elif kind == "frame_type":
        if not isinstance(raw, str):
            raise CommandValueError(key, f"expected a frame type (Test, Dark, Clear or <N>ppmm), got {raw!r}")
        if raw not in _CAPTURE_TYPES and not _CELL_RE.fullmatch(raw):
            raise CommandValueError(key, f"bad frame type {raw[:32]!r}: expected Test, Dark, Clear or <N>ppmm")
        return raw
    else:  # pragma: no cover - vocabulary error
        raise AssertionError(kind)
    if spec.minimum is not None and not (spec.minimum <= value <= spec.maximum):
        raise CommandValueError(key, f"value {value!r} out of range {spec.minimum:g}..{spec.maximum:g}")
    return value


def check_schedule(raw: Any, key: str = "SCH") -> dict[str, Any]:
    """A daily schedule: every key of SCHEDULE_KEYS, times ``HH:MM`` UTC with start < stop,
    the dark set inside start..stop, lead/lag 0-120 min and the power window within the day."""
    if isinstance(raw, str) and raw.lstrip().startswith("{") and len(raw) <= 1024:
        try:
            raw = json.loads(raw)   # `pycam send 'SCH={"enabled": true, ...}'`
        except ValueError:
            raise CommandValueError(key, f"not a JSON object: {_show(raw)}") from None
    if not isinstance(raw, dict):
        raise CommandValueError(key, f"expected an object with {', '.join(SCHEDULE_KEYS)}, got {_show(raw)}")
    unknown = sorted(set(raw) - set(SCHEDULE_KEYS))
    if unknown:
        raise CommandValueError(key, f"unknown schedule key {_show(unknown[0])} (known: {', '.join(SCHEDULE_KEYS)})")
    out: dict[str, Any] = {}
    minutes = {}
    for name, kind in SCHEDULE_KEYS.items():
        if name not in raw:
            raise CommandValueError(key, f"schedule key {name!r} missing")
        value = raw[name]
        if kind == "bool":
            out[name] = _as_bool(f"{key}.{name}", value)
        elif kind == "clock":
            m = _CLOCK_RE.fullmatch(value) if isinstance(value, str) else None
            if m is None:
                raise CommandValueError(key, f"{name}: {_show(value)} is not a time HH:MM (00:00-23:59, UTC)")
            out[name] = value
            minutes[name] = int(m.group(1)) * 60 + int(m.group(2))
        else:
            number = _as_int(f"{key}.{name}", value)
            if not 0 <= number <= 120:
                raise CommandValueError(key, f"{name}: {number} out of range 0..120 minutes")
            out[name] = number
    if minutes["stop_time"] <= minutes["start_time"]:
        raise CommandValueError(key, f"stop_time {out['stop_time']} must come after start_time {out['start_time']}")
    if not minutes["start_time"] <= minutes["dark_time"] < minutes["stop_time"]:
        raise CommandValueError(key, f"dark_time {out['dark_time']} must lie inside {out['start_time']}-"
                                     f"{out['stop_time']}")
    if (minutes["start_time"] - out["power_on_lead_min"] < 0
            or minutes["stop_time"] + out["power_off_lag_min"] >= 24 * 60):
        raise CommandValueError(key, "the power-on window (start - lead ... stop + lag) must stay within one day")
    return out


def _as_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in ("1", "0", "true", "false"):
        return raw.strip().lower() in ("1", "true")
    raise CommandValueError(key, f"expected a boolean (1/0/true/false), got {_show(raw)}")


def _as_int(key: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise CommandValueError(key, "expected a whole number, got a boolean")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", raw):
        return int(raw)
    raise CommandValueError(key, f"expected a whole number, got {_show(raw)}")


def _as_float(key: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise CommandValueError(key, "expected a number, got a boolean")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str) and len(raw) <= 64:
        try:
            value = float(raw)
        except ValueError:
            raise CommandValueError(key, f"expected a number, got {_show(raw)}") from None
    else:
        raise CommandValueError(key, f"expected a number, got {_show(raw)}")
    if not math.isfinite(value):
        raise CommandValueError(key, f"expected a finite number, got {_show(raw)}")
    return value


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def check_address(device: Any) -> str:
    if device not in ADDRESSES:
        raise CommandValueError("device", f"unknown device {_show(device)} (expected one of {', '.join(ADDRESSES)})")
    return device


def route(key: str, device: str, connected: tuple[str, ...] | list[str]) -> list[str]:
    """The devices a command goes to.

    ``device`` is a device id, ``master`` or ``all``.  Addressed to one device, the key must
    be one that device handles (else :class:`CommandValueError`).  For ``all`` it is every
    connected device handling the key, plus ``master`` for master keys; an empty list means
    nothing connected handles it.
    """
    spec = VOCABULARY.get(key)
    if spec is None:
        raise CommandValueError(str(key)[:16], "unknown command key")
    check_address(device)
    if device == ALL:
        return [d for d in spec.devices if d == MASTER or d in connected]
    if device not in spec.devices:
        handled = ", ".join(spec.devices)
        raise CommandValueError(key, f"not handled by {device} (handled by {handled})")
    return [device]


#: start/stop keys the master stamps with one effect time for every device it forwards them to
SYNCHRONISED_KEYS = frozenset({"STC", "SPC", "STS", "SPS"})
#: how long the master allows a start/stop command to reach every device
SYNC_MARGIN_S = 1.0
#: a device ignores an effect time further ahead than this (its clock must be wrong)
SYNC_MAX_WAIT_S = 10.0


def effect_time(now: float) -> float:
    """When a start or stop sent at ``now`` takes effect: the first whole second at least
    :data:`SYNC_MARGIN_S` later.  Cameras pair A and B by the wall-clock trigger, so both
    must take their first (and last) frame on the same trigger: a command that reached one
    camera just before a second boundary and the other just after would otherwise leave a
    frame without its partner."""
    return float(math.ceil(now + SYNC_MARGIN_S))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"SSA=1000"`` -> ``("SSA", 1000)`` with the value checked against the vocabulary."""
    if "=" not in text:
        raise CommandValueError(text[:16], "expected KEY=VALUE")
    key, _, raw = text.partition("=")
    key = key.strip().upper()
    return key, parse_value(key, raw.strip())
