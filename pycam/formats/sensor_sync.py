"""Per-pair sensor synchronisation records of a single-Pi station (both cameras on one Pi 5).

When one machine drives camera A and camera B, every trigger is captured on both sensors and
the two frames' libcamera ``SensorTimestamp`` values (ns, one clock for both cameras) are
compared.  One small JSON record per pair is written, atomically and never over another, to

    ``<data_dir>/<YYYY-mm-dd>/sensor_sync/<YYYY-mm-ddTHHMMSS>_sync.json``

beside the day's ``Seq_N`` folders, keyed by the pair's PyCam time string, so the processing
(or anyone copying the archive) can find the skew of any A/B pair with :func:`find_for_image`.

Fields: ``time`` (the pair's time string), ``sensor_timestamp_on_ns`` / ``_off_ns``,
``exposure_on_us`` / ``_off_us``, ``camera_index_on`` / ``_off``, ``skew_ms`` (off minus on,
signed), ``threshold_ms`` and ``over_threshold``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

from pycam.formats.atomic import atomic_write_text
from pycam.formats.names import FileNameError, day_folder, format_time, parse_any, parse_time

RECORD_DIR = "sensor_sync"
SUFFIX = "_sync.json"


class SyncRecordError(ValueError):
    """A sync record cannot be written (already exists) or read (missing field, bad JSON)."""


@dataclasses.dataclass(frozen=True)
class SyncRecord:
    time: dt.datetime
    sensor_timestamp_on_ns: int
    sensor_timestamp_off_ns: int
    exposure_on_us: int
    exposure_off_us: int
    camera_index_on: int
    camera_index_off: int
    threshold_ms: float

    @property
    def skew_ms(self) -> float:
        """Exposure start of camera B minus camera A, ms (signed)."""
        return (self.sensor_timestamp_off_ns - self.sensor_timestamp_on_ns) / 1e6

    @property
    def over_threshold(self) -> bool:
        return abs(self.skew_ms) > self.threshold_ms

    @property
    def time_string(self) -> str:
        return format_time(self.time)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["time"] = self.time_string
        d["skew_ms"] = round(self.skew_ms, 6)
        d["over_threshold"] = self.over_threshold
        return d


def record_path(data_dir: str | os.PathLike[str], when: dt.datetime) -> Path:
    return Path(data_dir) / day_folder(when) / RECORD_DIR / f"{format_time(when)}{SUFFIX}"


def write_record(data_dir: str | os.PathLike[str], record: SyncRecord, *, fsync: bool = True) -> Path:
    """Write ``record`` atomically; an existing record for the same time is never replaced."""
    path = record_path(data_dir, record.time)
    if path.exists():
        raise SyncRecordError(f"{path}: a sync record for {record.time_string} already exists")
    return atomic_write_text(path, json.dumps(record.to_dict(), indent=1) + "\n", fsync=fsync)


_INT_FIELDS = ("sensor_timestamp_on_ns", "sensor_timestamp_off_ns", "exposure_on_us", "exposure_off_us",
               "camera_index_on", "camera_index_off")


def read_record(path: str | os.PathLike[str]) -> SyncRecord:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SyncRecordError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SyncRecordError(f"{p}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SyncRecordError(f"{p}: expected a JSON object")
    try:
        when = parse_time(str(data["time"]))
        ints = {k: data[k] for k in _INT_FIELDS}
        threshold = data["threshold_ms"]
    except KeyError as exc:
        raise SyncRecordError(f"{p}: missing field {exc.args[0]!r}") from None
    except FileNameError as exc:
        raise SyncRecordError(f"{p}: {exc}") from None
    for key, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise SyncRecordError(f"{p}: {key} = {value!r}: must be a whole number")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise SyncRecordError(f"{p}: threshold_ms = {threshold!r}: must be a number")
    return SyncRecord(time=when, threshold_ms=float(threshold), **ints)


def find_for_image(image_path: str | os.PathLike[str]) -> SyncRecord | None:
    """The sync record of the pair an archived image belongs to (``<day>/Seq_N/<name>``), or
    None when the station wrote none (two-Pi stations, or a frame without its partner)."""
    p = Path(image_path)
    name = parse_any(p.name)
    candidate = p.parent.parent / RECORD_DIR / f"{name.time_string}{SUFFIX}"
    return read_record(candidate) if candidate.is_file() else None
