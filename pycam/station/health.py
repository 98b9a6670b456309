"""Health telemetry: each device's heartbeat, and the master's view of all of them.

Device side, :class:`HealthReporter` (started by every device service): every
``[health] heartbeat_s`` it first sends a ``clock_probe`` event carrying the device's clock
``t0``; the master answers at once with a ``clock_reply`` (``t1`` when it received the probe,
``t2`` when it answered) and the device notes ``t3`` on arrival, which gives the clock
offset and the round trip as NTP does (:func:`pycam.protocol.events.clock_offset`).  Of the
last few probes the one with the shortest round trip is used (the least queueing).  Then it
sends a ``health`` event: uptime, age of the last frame, spool backlog, free disk space of
the spool, CPU temperature where the kernel shows one, the clock offset, acquisition state.

Master side, :class:`StationHealth` answers the probes, keeps the newest heartbeat of each
device (for LOG, the Prometheus metrics and the watchdog) and knows which devices are not in
continuous capture (manual mode: the operator stopped them, or frame rate 0), so the watchdog
does not restart acquisition because of them.
"""
from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pycam.protocol import events
from pycam.protocol.messages import Event, Message, utc_now_iso
from pycam.station.background import BackgroundLoop

log = logging.getLogger(__name__)

THERMAL_ZONES = Path("/sys/class/thermal")
PROBES_KEPT = 8
#: how long the reporter waits for the clock reply before sending the heartbeat anyway
PROBE_WAIT_S = 0.5


def cpu_temperature_c(root: Path = THERMAL_ZONES) -> float | None:
    """The first CPU thermal zone's temperature in °C (a Raspberry Pi has thermal_zone0),
    None where the kernel shows none (containers, most laptops' VMs)."""
    try:
        zones = sorted(root.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in zones:
        try:
            millideg = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        if -40_000 < millideg < 150_000:
            return round(millideg / 1000.0, 1)
    return None


def disk_free_mb(path: Path) -> float | None:
    try:
        return round(shutil.disk_usage(path).free / 2**20, 1)
    except OSError:
        return None


class HealthReporter:
    """Sends the heartbeat of one device service (see the module docstring).

    ``service`` needs ``device``, ``link`` (a DeviceLink), ``spool``, ``acquiring``,
    ``framerate``, ``frames_captured`` and ``last_frame_time`` (UNIX s or None)."""

    def __init__(self, service: Any, interval_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.interval_s = float(interval_s)
        self.clock = clock            # the device's wall clock (tests shift it)
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._pending: dict[float, None] = {}
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=PROBES_KEPT)
        self._reply = threading.Event()
        self._loop = BackgroundLoop(f"{service.device}-health", self._run)
        service.link.on_event = self.on_master_event
        self.heartbeats_sent = 0

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    # -- clock -----------------------------------------------------------------------------
    def probe(self) -> bool:
        t0 = self.clock()
        with self._lock:
            self._pending[t0] = None
            while len(self._pending) > PROBES_KEPT:
                self._pending.pop(next(iter(self._pending)))
        self._reply.clear()
        return self.service.link.send_typed(events.ClockProbe(t0=t0), keep_offline=False)

    def on_master_event(self, message: Event) -> None:
        if message.name != events.ClockReply.name:
            return
        t3 = self.clock()
        reply = events.parse_quietly(message.name, message.fields)
        if not isinstance(reply, events.ClockReply):
            return
        with self._lock:
            if reply.t0 not in self._pending:
                return   # not ours, or far too late
            del self._pending[reply.t0]
            self._samples.append(events.clock_offset(reply.t0, reply.t1, reply.t2, t3))
        self._reply.set()

    def clock_estimate(self) -> tuple[float, float] | None:
        """(offset s, round trip s) of the best recent probe, None before the first reply."""
        with self._lock:
            if not self._samples:
                return None
            return min(self._samples, key=lambda s: s[1])

    # -- heartbeat -------------------------------------------------------------------------
    def snapshot(self) -> events.Health:
        service = self.service
        estimate = self.clock_estimate()
        last = getattr(service, "last_frame_time", None)
        return events.Health(
            uptime_s=round(time.monotonic() - self._started, 1),
            spool_backlog=int(service.link.backlog),
            disk_free_mb=disk_free_mb(service.spool.directory),
            last_frame_age_s=None if last is None else round(max(0.0, time.time() - last), 2),
            cpu_temp_c=cpu_temperature_c(),
            clock_offset_ms=None if estimate is None else round(estimate[0] * 1000.0, 2),
            clock_rtt_ms=None if estimate is None else round(estimate[1] * 1000.0, 2),
            acquiring=bool(service.acquiring), framerate=float(service.framerate),
            frames_captured=int(service.frames_captured), events_dropped=int(service.link.offline.dropped))

    def beat(self) -> bool:
        """One probe and one heartbeat (now); True if the heartbeat was sent."""
        if not self.service.link.connected.is_set():
            return False
        if self.probe():
            self._reply.wait(PROBE_WAIT_S)
        sent = self.service.link.send_typed(self.snapshot(), keep_offline=False)   # stale heartbeats are useless
        self.heartbeats_sent += sent
        return sent

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.beat()
            except Exception:
                log.exception("%s: heartbeat failed", self.service.device)
            stop.wait(self.interval_s)


class StationHealth:
    """The master's view of its devices' health (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time, clock_warn_ms: float = 50.0) -> None:
        self.clock = clock
        self.clock_warn_ms = clock_warn_ms
        self._clock_off: set[str] = set()   # devices whose clock offset is above the warning now
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[events.Health, float]] = {}
        self._capturing: dict[str, bool] = {}
        self._framerate: dict[str, float] = {}

    def from_device(self, device: str, message: Event, reply: Callable[[Message], Any]) -> bool:
        """Note what a device's event says; True if the event was for the master alone (a
        clock probe, answered through ``reply``) and must not go to the clients."""
        if message.name == events.ClockProbe.name:
            t1 = self.clock()
            probe = events.parse_quietly(message.name, message.fields)
            if isinstance(probe, events.ClockProbe):
                reply(events.ClockReply(t0=probe.t0, t1=t1, t2=self.clock()).as_event("master", utc_now_iso()))
            return True
        ev = events.parse_quietly(message.name, message.fields)
        with self._lock:
            if isinstance(ev, events.Health):
                self._latest[device] = (ev, self.clock())
                self._capturing[device] = ev.acquiring
                self._framerate[device] = ev.framerate
                self._note_clock(device, ev.clock_offset_ms)
            elif isinstance(ev, events.Acquisition):
                self._capturing[device] = ev.acquiring
            elif isinstance(ev, events.Settings):
                values = ev.values
                if isinstance(values.get("acquiring"), bool):
                    self._capturing[device] = values["acquiring"]
                rate = values.get("FRS" if device == "SPC" else "FRC")
                if isinstance(rate, (int, float)) and not isinstance(rate, bool):
                    self._framerate[device] = float(rate)
        return False

    def _note_clock(self, device: str, offset_ms: float | None) -> None:
        """Log (once per change) a device clock too far from the master's: A/B pairing breaks."""
        if offset_ms is None:
            return
        off = abs(offset_ms) > self.clock_warn_ms
        if off and device not in self._clock_off:
            self._clock_off.add(device)
            log.warning("%s: clock %+.0f ms off the master's (more than %g ms): camera A/B pairs are matched by "
                        "time stamp and may mix two moments; check NTP on that computer", device, offset_ms,
                        self.clock_warn_ms)
        elif not off and device in self._clock_off:
            self._clock_off.discard(device)
            log.info("%s: clock within %g ms of the master's again (%+.1f ms)", device, self.clock_warn_ms, offset_ms)

    def forget(self, device: str) -> None:
        with self._lock:
            self._capturing.pop(device, None)

    def not_capturing(self) -> list[str]:
        """Devices that said they are not in continuous capture (manual mode or frame rate 0)."""
        with self._lock:
            return sorted(d for d, on in self._capturing.items()
                          if not on or self._framerate.get(d, 1.0) <= 0)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """device -> the newest heartbeat's fields plus ``heartbeat_age_s``."""
        now = self.clock()
        with self._lock:
            return {d: {**h.fields(), "heartbeat_age_s": round(now - at, 2)} for d, (h, at) in self._latest.items()}
