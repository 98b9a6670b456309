"""Typed station events: the one definition of every event name and its fields.

An :class:`~pycam.protocol.messages.Event` carries a ``name`` and a JSON object ``fields``.
This module declares, for every name the station sends, a frozen dataclass with typed
fields; the station builds events from these classes, and the GUI (and its test stand-ins)
read them back with :func:`parse`, so a field one side sends is the field the other side
reads (no more ``running`` read where ``acquiring`` was sent).

* ``ev.as_event(device, time)`` gives the wire :class:`Event`; :func:`parse` turns an
  ``Event`` (or a name and a fields dict) back into the typed object, raising
  :class:`EventFieldError` naming the field for a missing or mistyped one.  Fields a newer
  sender adds are ignored, so old readers keep working.
* :func:`build` checks ``name`` + keyword fields against the declaration (what
  ``publish_event(name, **fields)`` in the station uses).

Pure: standard library only, no I/O.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, ClassVar

from pycam.protocol.messages import Event


class EventFieldError(ValueError):
    """An event whose name is unknown or whose fields do not match the declaration."""

    def __init__(self, name: str, field: str, reason: str) -> None:
        super().__init__(f"event {name!r}, field {field!r}: {reason}")
        self.name, self.field, self.reason = name, field, reason


@dataclasses.dataclass(frozen=True)
class StationEvent:
    """Base of every typed event; ``name`` is the wire name."""

    name: ClassVar[str] = ""
    #: the one field holding all of ``fields`` (settings: the fields ARE the settings)
    flat: ClassVar[str | None] = None

    def fields(self) -> dict[str, Any]:
        if self.flat is not None:
            return dict(getattr(self, self.flat))
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def as_event(self, device: str, time: str = "") -> Event:
        return Event(name=self.name, device=device, fields=self.fields(), time=time)


# ------------------------------------------------------------------------ acquisition state
@dataclasses.dataclass(frozen=True)
class Acquisition(StationEvent):
    """Continuous capture switched on or off (a device about itself; the master about the
    station, with the devices it told)."""

    name: ClassVar[str] = "acquisition"
    acquiring: bool
    devices: tuple[str, ...] = ()
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Settings(StationEvent):
    """A device's settings in force (the fields are the settings, keyed by command key)."""

    name: ClassVar[str] = "settings"
    flat: ClassVar[str | None] = "values"
    values: dict


@dataclasses.dataclass(frozen=True)
class Exposure(StationEvent):
    """Auto exposure changed the shutter (``key`` SSA/SSB, µs) or integration time (SSS, ms)."""

    name: ClassVar[str] = "exposure"
    key: str
    value: int
    saturation: float
    action: str = ""


@dataclasses.dataclass(frozen=True)
class FileStored(StationEvent):
    name: ClassVar[str] = "file_stored"
    filename: str
    path: str
    data_type: str
    frame_type: str


@dataclasses.dataclass(frozen=True)
class DeviceConnected(StationEvent):
    name: ClassVar[str] = "device_connected"
    device: str


@dataclasses.dataclass(frozen=True)
class DeviceDisconnected(StationEvent):
    name: ClassVar[str] = "device_disconnected"
    device: str


@dataclasses.dataclass(frozen=True)
class Status(StationEvent):
    name: ClassVar[str] = "status"
    level: str        # info | warning | error
    message: str


@dataclasses.dataclass(frozen=True)
class Progress(StationEvent):
    name: ClassVar[str] = "progress"
    task: str
    state: str = ""
    done: int | None = None
    total: int | None = None


@dataclasses.dataclass(frozen=True)
class DarkFinishedCameras(StationEvent):
    name: ClassVar[str] = "DFC"
    files: int = 0


@dataclasses.dataclass(frozen=True)
class DarkFinishedSpectrometer(StationEvent):
    name: ClassVar[str] = "DFS"
    files: int = 0


@dataclasses.dataclass(frozen=True)
class Routed(StationEvent):
    """The master's answer to a command for ``all``: which devices it went to."""

    name: ClassVar[str] = "routed"
    request_id: int
    session: str
    key: str
    targets: tuple[str, ...]


# ----------------------------------------------------------------------------- housekeeping
@dataclasses.dataclass(frozen=True)
class Watchdog(StationEvent):
    name: ClassVar[str] = "watchdog"
    action: str                      # restart | escalate | paused | resumed
    state: str = ""                  # done | failed
    silent: tuple[str, ...] = ()
    message: str = ""
    timeout_s: float | None = None
    attempt: int | None = None
    restarts: int | None = None


@dataclasses.dataclass(frozen=True)
class Schedule(StationEvent):
    name: ClassVar[str] = "schedule"
    action: str                      # start | dark | stop | witty_pi | changed
    state: str = ""
    time: str = ""
    devices: tuple[str, ...] | None = None
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Disk(StationEvent):
    """The disk manager deleted confirmed files, or free space stays low."""

    name: ClassVar[str] = "disk"
    action: str                      # deleted | low
    free_mb: int
    count: int = 0
    oldest: str = ""
    newest: str = ""
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Storage(StationEvent):
    """The master's storage state: ``full`` (files are refused and stay in the devices'
    spools), then ``ok`` once a file is stored again.  One event per change, never one
    per refused file."""

    name: ClassVar[str] = "storage"
    state: str                       # full | ok
    reason: str = ""
    refused: int = 0                 # files refused while full (on "ok": in total)
    duration_s: float | None = None  # on "ok": how long the disk was full


@dataclasses.dataclass(frozen=True)
class RuntimeConfig(StationEvent):
    name: ClassVar[str] = "runtime_config"
    state: str
    file: str = ""
    key: str = ""
    message: str = ""
    settings: dict | None = None


@dataclasses.dataclass(frozen=True)
class ConfigReload(StationEvent):
    name: ClassVar[str] = "config_reload"
    state: str
    file: str = ""
    key: str = ""
    message: str = ""
    settings: dict | None = None
    test_photo: str | None = None


# ---------------------------------------------------------------------------------- health
@dataclasses.dataclass(frozen=True)
class Health(StationEvent):
    """A device's heartbeat (every ``[health] heartbeat_s``).  Ages and offsets in seconds
    and milliseconds; None where not measurable (no frame yet, no thermal sensor, no clock
    probe answered yet).  ``clock_offset_ms`` is the master's clock minus the device's,
    measured NTP-style over the protocol, ``clock_rtt_ms`` the round trip of that probe."""

    name: ClassVar[str] = "health"
    uptime_s: float
    spool_backlog: int
    disk_free_mb: float | None = None
    last_frame_age_s: float | None = None
    cpu_temp_c: float | None = None
    clock_offset_ms: float | None = None
    clock_rtt_ms: float | None = None
    acquiring: bool = False
    framerate: float = 0.0
    frames_captured: int = 0
    events_dropped: int = 0


@dataclasses.dataclass(frozen=True)
class ClockProbe(StationEvent):
    """Device -> master: ``t0`` is the device's clock (UNIX s) when sent."""

    name: ClassVar[str] = "clock_probe"
    t0: float


@dataclasses.dataclass(frozen=True)
class ClockReply(StationEvent):
    """Master -> device: ``t1`` the master's clock on receiving the probe, ``t2`` on answering."""

    name: ClassVar[str] = "clock_reply"
    t0: float
    t1: float
    t2: float


@dataclasses.dataclass(frozen=True)
class SensorSkew(StationEvent):
    """Single-Pi station: the two sensors' exposure starts (``SensorTimestamp``) of one pair
    differ by more than ``[hardware] skew_warn_ms`` (``time`` is the pair's PyCam time)."""

    name: ClassVar[str] = "sensor_skew"
    time: str
    skew_ms: float
    threshold_ms: float
    camera_index_on: int
    camera_index_off: int


#: every declared event, by wire name
EVENT_TYPES: dict[str, type[StationEvent]] = {cls.name: cls for cls in (
    Acquisition, Settings, Exposure, FileStored, DeviceConnected, DeviceDisconnected, Status, Progress,
    DarkFinishedCameras, DarkFinishedSpectrometer, Routed, Watchdog, Schedule, Disk, Storage, RuntimeConfig,
    ConfigReload, Health, ClockProbe, ClockReply, SensorSkew)}

#: dark set finished, by device kind (PyCam's DFC / DFS)
DARK_FINISHED = {"camera": DarkFinishedCameras, "spectrometer": DarkFinishedSpectrometer}


def clock_offset(t0: float, t1: float, t2: float, t3: float) -> tuple[float, float]:
    """NTP's estimate from one probe: (offset, round trip) in seconds, where the offset is
    the master's clock minus the device's (t0, t3: device send/receive; t1, t2: master
    receive/send)."""
    return ((t1 - t0) + (t2 - t3)) / 2.0, (t3 - t0) - (t2 - t1)


# ---------------------------------------------------------------------------- validation
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type[StationEvent]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _check(name: str, key: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(name, key, value, inner[0])
    if hint is bool:
        if not isinstance(value, bool):
            raise EventFieldError(name, key, f"expected true/false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventFieldError(name, key, f"expected a whole number, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise EventFieldError(name, key, f"expected a finite number, got {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise EventFieldError(name, key, f"expected text, got {_kind(value)}")
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise EventFieldError(name, key, f"expected an object, got {_kind(value)}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise EventFieldError(name, key, f"expected a list of text, got {_kind(value)}")
        return tuple(value)
    raise AssertionError(f"undeclared field type {hint!r}")  # pragma: no cover - declaration error


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def from_fields(name: str, fields: Any) -> StationEvent:
    """The typed event for ``name`` and its wire ``fields``; raises EventFieldError."""
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise EventFieldError(str(name)[:40], "name", "unknown event name")
    if not isinstance(fields, dict):
        raise EventFieldError(name, "fields", "expected an object")
    if cls.flat is not None:
        return cls(**{cls.flat: dict(fields)})
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in fields:
            values[f.name] = _check(name, f.name, fields[f.name], hints[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise EventFieldError(name, f.name, "required field missing")
    return cls(**values)


def build(name: str, **fields: Any) -> StationEvent:
    """``build("acquisition", acquiring=True)``: check keyword fields against the declaration
    (unlike :func:`from_fields`, an undeclared field is an error here: the sender is us)."""
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise EventFieldError(str(name)[:40], "name", "unknown event name: declare it in pycam.protocol.events")
    if cls.flat is None:
        declared = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(fields) - declared)
        if extra:
            raise EventFieldError(name, extra[0], "not a declared field")
    return from_fields(name, fields)


def parse(event: Event) -> StationEvent | None:
    """The typed form of a received Event; None for a name this version does not know.
    Raises EventFieldError for a known name with bad fields."""
    if event.name not in EVENT_TYPES:
        return None
    return from_fields(event.name, event.fields)


def parse_quietly(name: str, fields: Any) -> StationEvent | None:
    """Like :func:`parse` from a name and fields, but None for anything unusable (GUI
    handlers must never raise on a station's message)."""
    try:
        return from_fields(name, fields)
    except EventFieldError:
        return None
