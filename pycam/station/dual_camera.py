"""Single-Pi station: camera A and camera B on one machine (a Raspberry Pi 5 carries both).

``pycam camera --band both`` runs one process with two camera services, ``CM1`` (on-band,
Picamera2 camera ``[hardware] pair_camera_indices[0]``) and ``CM2`` (off-band, index ``[1]``).
Each keeps its own link, spool and capture thread, so the master, the protocol and the archive
are exactly those of the two-Pi station: both capture every wall-clock trigger and A/B pair by
the trigger's time string.

What the single machine adds is a common clock: after each frame the driver's metadata
(``SensorTimestamp``, ns) is handed to a :class:`SkewMonitor`.  When both frames of a trigger
are in, the skew of the two exposure starts (B minus A) is written as the pair's record
(:mod:`pycam.formats.sensor_sync`, under ``[storage] data_dir`` — on a single Pi the master
writes there too) and, above ``[hardware] skew_warn_ms``, reported as a ``sensor_skew`` event
from CM1.  Drivers without a ``SensorTimestamp`` (the simulator) give no record.

Two separate services (``pycam camera --band on --camera-index 0`` and ``--band off
--camera-index 1``) also work on one Pi, but then no process sees both timestamps and no skew
is recorded.  The USB/FTP runtime config's ``camera`` section applies to both cameras here (on
two Pis each Pi's file served its own camera).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from pycam.config import Config
from pycam.drivers.base import Capability, CameraDriver, CameraFrame, CameraLimits, supports
from pycam.formats.sensor_sync import SyncRecord, SyncRecordError, write_record
from pycam.station.camera_service import CameraService

log = logging.getLogger(__name__)

#: triggers waiting for their partner frame before being dropped (a camera that failed)
MAX_PENDING = 16
#: what a :class:`SyncedCamera` passes on from the driver it wraps (its ``capture`` takes no frame type)
SYNCED_CAPABILITIES = frozenset({Capability.RUNTIME_CONTROLS, Capability.EVENTS, Capability.SENSOR_METADATA,
                                 Capability.FRAME_TYPES})

EventSender = Callable[..., Any]  # send_event(name, **fields)


class SkewMonitor:
    """Pairs the two cameras' frame metadata by trigger time and records the skew."""

    def __init__(self, threshold_ms: float, data_dir: Path | None, *, fsync: bool = True) -> None:
        self.threshold_ms = float(threshold_ms)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.fsync = fsync
        self.send_event: EventSender | None = None
        self.records: list[SyncRecord] = []     # the most recent pairs, newest last
        self._pending: dict[dt.datetime, dict[str, tuple[int, int, int]]] = {}
        self._lock = threading.Lock()

    def report(self, band: str, when: dt.datetime, metadata: dict, camera_index: int) -> SyncRecord | None:
        """One camera's frame for trigger ``when``; returns the pair's record once both are in."""
        stamp = metadata.get("SensorTimestamp")
        if stamp is None:
            return None
        key = when.replace(microsecond=0)
        with self._lock:
            slot = self._pending.setdefault(key, {})
            slot[band] = (int(stamp), int(metadata.get("ExposureTime", 0)), int(camera_index))
            if len(slot) < 2:
                while len(self._pending) > MAX_PENDING:
                    self._pending.pop(min(self._pending))
                return None
            del self._pending[key]
        (ts_on, exp_on, idx_on), (ts_off, exp_off, idx_off) = slot["on"], slot["off"]
        record = SyncRecord(time=key, sensor_timestamp_on_ns=ts_on, sensor_timestamp_off_ns=ts_off,
                            exposure_on_us=exp_on, exposure_off_us=exp_off, camera_index_on=idx_on,
                            camera_index_off=idx_off, threshold_ms=self.threshold_ms)
        self._keep(record)
        return record

    def _keep(self, record: SyncRecord) -> None:
        with self._lock:
            self.records.append(record)
            del self.records[:-MAX_PENDING]
        if self.data_dir is not None:
            try:
                write_record(self.data_dir, record, fsync=self.fsync)
            except (OSError, SyncRecordError) as exc:
                log.error("sensor sync record for %s not written: %s", record.time_string, exc)
        if record.over_threshold and self.send_event is not None:
            self.send_event("sensor_skew", time=record.time_string, skew_ms=round(record.skew_ms, 3),
                            threshold_ms=self.threshold_ms, camera_index_on=record.camera_index_on,
                            camera_index_off=record.camera_index_off)


class SyncedCamera(CameraDriver):
    """A camera driver whose every frame's metadata also goes to a :class:`SkewMonitor`."""

    def __new__(cls, driver: CameraDriver, *args: Any, **kwargs: Any) -> "SyncedCamera":
        if cls is SyncedCamera and supports(driver, Capability.FRAME_TYPES):
            cls = _SyncedTypedCamera
        return super().__new__(cls)

    def __init__(self, driver: CameraDriver, camera_index: int, monitor: SkewMonitor) -> None:
        self.inner = driver
        self.band = driver.band
        self.capabilities = frozenset(c for c in SYNCED_CAPABILITIES if supports(driver, c))
        self.camera_index = int(camera_index)
        self.monitor = monitor

    def __getattr__(self, name: str) -> Any:  # control_specs, apply_controls, event_listeners...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    @property
    def limits(self) -> CameraLimits:
        return self.inner.limits

    def set_exposure(self, shutter_us: int) -> int:
        return self.inner.set_exposure(shutter_us)

    def set_gain(self, gain: float) -> float:
        return self.inner.set_gain(gain)

    def capture(self, when: dt.datetime) -> CameraFrame:
        return self._capture(when, "Plume")

    def _capture(self, when: dt.datetime, frame_type: str) -> CameraFrame:
        """Continuous (Plume) frames go to the skew monitor, which pairs them by trigger."""
        extra = {"frame_type": frame_type} if Capability.FRAME_TYPES in self.capabilities else {}
        frame = self.inner.capture(when, **extra)
        if frame_type == "Plume":
            metadata = self.inner.last_metadata if supports(self.inner, Capability.SENSOR_METADATA) else None
            self.monitor.report(self.band, when, dict(metadata or {}), self.camera_index)
        return frame


class _SyncedTypedCamera(SyncedCamera):
    """A SyncedCamera over a driver that takes ``frame_type`` (Dark, Clear, cells...): it takes
    it too, as the driver contract wants (declared exactly when ``capture`` accepts it)."""

    def capture(self, when: dt.datetime, frame_type: str = "Plume") -> CameraFrame:
        return self._capture(when, frame_type)


class DualCameraStation:
    """Camera A and camera B services in one process, sharing one :class:`SkewMonitor`."""

    def __init__(self, config: Config, make_driver: Callable[[str, int], CameraDriver], *,
                 spool_dir: Path | None = None, framerate: float | None = None, fsync: bool = True) -> None:
        hw = config["hardware"]
        on_index, off_index = (int(v) for v in hw["pair_camera_indices"])
        self.monitor = SkewMonitor(hw["skew_warn_ms"], config["storage"]["data_dir"], fsync=fsync)
        self.services: dict[str, CameraService] = {}
        for band, index in (("on", on_index), ("off", off_index)):
            driver = SyncedCamera(make_driver(band, index), index, self.monitor)
            self.services[band] = CameraService(config, band, driver, spool_dir=spool_dir, framerate=framerate)
        self.monitor.send_event = self.services["on"].link.send_event

    def start(self, acquire: bool = False) -> None:
        started: list[CameraService] = []
        try:
            for service in self.services.values():
                service.start(acquire=acquire)
                started.append(service)
        except Exception:
            for service in started:
                service.stop(drain_timeout=0.0)
            raise

    def stop(self, drain_timeout: float = 5.0) -> None:
        for service in self.services.values():
            service.stop(drain_timeout=drain_timeout)

    def wait(self, timeout: float | None = None) -> bool:
        return all(service.wait(timeout) for service in self.services.values())
