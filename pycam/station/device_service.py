"""What the camera and spectrometer services share: the capture thread, the command handler
skeleton, the wall-clock trigger, the store-and-forward link, taking and spooling one frame,
the dark set and the automatic exposure step.

Timing (PyCam's rule): continuous frames are taken when the UTC second is a multiple of the
period ``round(1/framerate)`` (at least 1 s), so every device fires in the same second and
camera A/B files share an identical time string.  Manual jobs (test frames, dark sets) are
queued to the same thread and run between two triggers: a test frame requested during
continuous capture is always taken, never dropped, and never changes anything else.

Start and stop commands forwarded by the master carry an effect time (``Command.at``, see
:func:`pycam.protocol.commands.effect_time`): the first frame is the first trigger at or after
it, the last one the last trigger before it, on every device alike, so no frame at either end
lacks its partner.  Stopping the service (SIGTERM, EXT) while such a stop is pending waits
for it.  An effect time more than ``SYNC_MAX_WAIT_S`` ahead means this device's clock
disagrees with the master's: it is logged and the command acts at once.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pycam.config import Config
from pycam.drivers.base import Capability, Driver, supports
from pycam.drivers.exposure import ExposureDecision
from pycam.protocol import commands as vocab
from pycam.protocol import events
from pycam.protocol.errors import CommandValueError
from pycam.protocol.messages import Command, Error, Message, Reply
from pycam.station.device_link import DeviceLink
from pycam.station.health import HealthReporter
from pycam.station.spool import Spool

log = logging.getLogger(__name__)

_RECENT_NAMES = 4096
_STOP = object()   # queued by stop(): jobs queued before it still run (requested frames are taken)


def period_seconds(framerate: float) -> int | None:
    """Whole seconds between continuous frames (None: framerate 0 means no frames)."""
    if framerate <= 0:
        return None
    return max(1, round(1.0 / framerate))


def next_trigger(now: float, period: int, last: float | None) -> float:
    """The first wall-clock multiple of ``period`` at or after ``now`` and after ``last``."""
    slot = math.ceil(now / period - 1e-9) * period
    if last is not None and slot <= last:
        slot = last + period
    return float(slot)


class DeviceService:
    """Base of CameraService and SpectrometerService (see those for the keys they handle)."""

    device: str = ""
    kind: str = ""   # "camera" or "spectrometer": the config section, the dark-set event
    start_key = stop_key = dark_key = capture_key = restart_key = framerate_key = ""
    exposure_key = ""   # the key an automatic exposure change is reported under (SSA/SSB/SSS)
    saturation_keys = ("", "")   # the keys of the saturation band's bottom and top (SMN/SMX, SNS/SXS)
    driver: Driver

    def __init__(self, config: Config, *, spool_dir: Path | None = None, framerate: float | None = None) -> None:
        self.config = config
        section = config[self.kind]   # the saturation band and its pixel count: same keys for both kinds
        self.min_saturation = section["min_saturation"]
        self.max_saturation = section["max_saturation"]
        self.saturation_pixels = section["saturation_pixels"]
        spool_root = Path(spool_dir or config["storage"]["spool_dir"])
        self.spool = Spool(spool_root, self.device)
        self.framerate = float(framerate) if framerate is not None else float(section["framerate"])
        self.acquiring = False
        self.stopped = threading.Event()    # set when stopping begins
        self.finished = threading.Event()   # set when stop() has completed
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._state_lock = threading.RLock()
        # held while the driver is in use (a capture, a setting, a re-open): drivers need not be
        # thread-safe.  Lock order: _driver_lock before _state_lock.
        self._driver_lock = threading.RLock()
        self._last_trigger: float | None = None
        self._start_at = 0.0                 # no continuous trigger before this (a synchronised start)
        self._stop_at: float | None = None   # a synchronised stop: capture the triggers before it
        self._recent_names: dict[str, None] = {}
        self._thread = threading.Thread(target=self._capture_loop, name=f"{self.device}-capture", daemon=True)
        self.link = DeviceLink(config, self.device, self.spool, self.handle_command,
                               on_connected=self._announce)
        self.frames_captured = 0
        self.last_frame_time: float | None = None   # UNIX time of the last continuous frame
        self.last_frame: Any = None                 # the driver's last Plume frame (auto exposure)
        self.health = HealthReporter(self, config["health"]["heartbeat_s"])

    # ---------------------------------------------------------------------- to implement
    def open_driver(self) -> None:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def apply_setting(self, key: str, value: Any) -> Any:
        """Apply a device-specific key; return the value in force, raise CommandValueError.
        Handles the saturation band here (its bottom must stay below its top)."""
        low_key, high_key = self.saturation_keys
        if key == low_key:
            if value >= self.max_saturation:
                raise CommandValueError(key, f"{value} must be below {high_key} {self.max_saturation}")
            self.min_saturation = value
            return value
        if key == high_key:
            if value <= self.min_saturation:
                raise CommandValueError(key, f"{value} must be above {low_key} {self.min_saturation}")
            self.max_saturation = value
            return value
        raise CommandValueError(key, f"not handled by {self.device}")

    # the exposure (camera: shutter µs; spectrometer: integration ms), its automatic control and
    # the saturation band that control keeps the brightest pixels in
    exposure: int
    auto_exposure: bool
    min_saturation: float
    max_saturation: float

    def set_driver_exposure(self, value: int) -> int:
        """Ask the driver for exposure ``value``; returns the one in force."""
        raise NotImplementedError

    def dark_exposures(self) -> list[int]:
        """The exposures of a dark set (one Dark frame each)."""
        raise NotImplementedError

    def next_exposure(self, frame: Any) -> ExposureDecision:
        """One automatic exposure step from the last Plume frame."""
        raise NotImplementedError

    def capture_arguments(self) -> tuple:
        """The driver's ``capture`` arguments after the trigger time."""
        return ()

    def frame_name(self, frame: Any, when: dt.datetime, frame_type: str) -> Any:
        """The PyCam file name (ImageName / SpectrumName) of ``frame`` stamped ``when``."""
        raise NotImplementedError

    def spool_frame(self, name: Any, frame: Any) -> None:
        """Write ``frame`` to the spool under ``name`` and announce it to the link."""
        raise NotImplementedError

    # --------------------------------------------------------------------- shared device work
    def close_driver(self) -> None:
        try:
            self.driver.close()
        except Exception:
            log.exception("%s: closing the driver failed", self.device)

    def capture(self, when: dt.datetime, frame_type: str) -> str:
        """Take one frame, spool it, return its file name."""
        extra = {"frame_type": frame_type} if supports(self.driver, Capability.FRAME_TYPES) else {}
        frame = self.driver.capture(when, *self.capture_arguments(), **extra)
        t, _ = self.unique_time(when.replace(microsecond=0),
                                lambda t: self.frame_name(frame, t, frame_type).filename())
        name = self.frame_name(frame, t, frame_type)
        self.spool_frame(name, frame)
        if frame_type == "Plume":
            self.last_frame = frame
        return name.filename()

    def run_dark_set(self) -> list[str]:
        """One Dark frame at each of :meth:`dark_exposures`, then the exposure in force before."""
        names = []
        keep = self.exposure
        try:
            for value in self.dark_exposures():
                with self._driver_lock:   # per frame: settings may still change between two darks
                    self.set_driver_exposure(value)
                    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                    names.append(self.capture(now, "Dark"))
        finally:
            with self._driver_lock:
                self.exposure = self.set_driver_exposure(keep)
        return names

    def after_continuous_frame(self) -> None:
        """Automatic exposure: one proportional step per frame, see drivers/exposure.py."""
        if not self.auto_exposure or self.last_frame is None:
            return
        with self._state_lock:
            decision = self.next_exposure(self.last_frame)
            changed = decision.value != self.exposure
            if changed:
                self.exposure = self.set_driver_exposure(decision.value)
        if changed:
            self.link.send_typed(events.Exposure(key=self.exposure_key, value=int(self.exposure),
                                                 saturation=round(float(decision.saturation), 4),
                                                 action=str(decision.action)))

    # ---------------------------------------------------------------------------- lifecycle
    def start(self, acquire: bool = False) -> None:
        self.open_driver()
        self.acquiring = acquire
        self._thread.start()
        self.link.start()
        self.health.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop capturing, give the link ``drain_timeout`` s to deliver the spool, close."""
        if self.stopped.is_set():
            self.finished.wait(60)
            return
        self._await_pending_stop()
        self.stopped.set()
        self.acquiring = False
        self._jobs.put(_STOP)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)
        self.health.stop()
        self.link.stop(drain_timeout=drain_timeout)
        self.close_driver()
        self.finished.set()

    def _await_pending_stop(self) -> None:
        """A synchronised stop is pending: keep capturing until it (the partner device stops
        on the same trigger), at most SYNC_MAX_WAIT_S."""
        with self._state_lock:
            stop_at = self._stop_at if self.acquiring else None
        if stop_at is None or threading.current_thread() is self._thread:
            return
        deadline = time.time() + vocab.SYNC_MAX_WAIT_S
        while time.time() < min(stop_at, deadline):
            with self._state_lock:
                if self._stop_at is None or not self.acquiring:
                    return
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the service has stopped completely (after stop(), EXT or a signal)."""
        return self.finished.wait(timeout)

    def run_in_capture_thread(self, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Run ``fn()`` on the capture thread between two triggers and return its result (the
        runtime config uses it to apply settings and take its test photo without racing a capture)."""
        if threading.current_thread() is self._thread:
            return fn()
        done: queue.Queue = queue.Queue(maxsize=1)

        def job() -> None:
            try:
                done.put((True, fn()))
            except Exception as exc:
                done.put((False, exc))

        self._jobs.put(job)
        try:
            ok, value = done.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.device}: capture thread busy for {timeout} s") from None
        if not ok:
            raise value
        return value

    def _announce(self) -> None:
        self.link.send_typed(events.Settings(self.settings()), keep_offline=False)   # the newest only

    # ------------------------------------------------------------------------------ commands
    def handle_command(self, cmd: Command) -> Message:
        def reply(value: Any) -> Reply:
            return Reply(request_id=cmd.request_id, device=self.device, key=cmd.key, value=value,
                         session=cmd.session)

        try:
            if cmd.device not in (self.device, vocab.ALL):
                raise CommandValueError("device", f"command for {cmd.device} reached {self.device}")
            value = vocab.parse_value(cmd.key, cmd.value)
            vocab.route(cmd.key, self.device, (self.device,))
            key = cmd.key
            if key == "IDN":
                return reply(self.device)
            if key == "LOG":
                if value == 0:
                    return reply({"device": self.device, "acquiring": self.acquiring, "backlog": self.link.backlog})
                if value == 1:
                    return reply(self.settings())
                raise CommandValueError(key, f"LOG {value} is not implemented (0 ping, 1 settings)")
            if key == self.start_key:
                self._set_acquiring(bool(value), self._effect_time(cmd))
                return reply(bool(value))
            if key == self.stop_key:
                self._set_acquiring(not value, self._effect_time(cmd))
                return reply(bool(value))
            if key == self.capture_key:
                self._jobs.put(lambda: self._manual_capture(value))
                return reply(value)
            if key == self.dark_key:
                if value:
                    self._jobs.put(self._dark_job)
                return reply(bool(value))
            if key == self.restart_key:
                if value:
                    self._jobs.put(self._restart_driver)
                return reply(bool(value))
            if key == "EXT":
                if value:
                    threading.Thread(target=self.stop, kwargs={"drain_timeout": 5.0}, daemon=True).start()
                return reply(bool(value))
            if key == "RST":
                return reply(bool(value))
            if key == self.framerate_key:
                with self._state_lock:
                    self.framerate = float(value)
                    self._jobs.put(lambda: None)   # wake the capture thread to re-plan
                result = self.framerate
            else:
                with self._driver_lock, self._state_lock:
                    result = self.apply_setting(key, value)
            self.link.send_typed(events.Settings(self.settings()), keep_offline=False)
            return reply(result)
        except CommandValueError as exc:
            return Error(key=exc.key, reason=exc.reason, request_id=cmd.request_id, device=self.device,
                         session=cmd.session)

    def _effect_time(self, cmd: Command) -> float | None:
        if cmd.at is None:
            return None
        ahead = cmd.at - time.time()
        if ahead > vocab.SYNC_MAX_WAIT_S:
            log.warning("%s: %s is to take effect %.1f s from now: this device's clock differs from the "
                        "master's; acting at once", self.device, cmd.key, ahead)
            return None
        return cmd.at

    def _set_acquiring(self, on: bool, at: float | None = None) -> None:
        """Start or stop continuous capture, at once or (``at``) from that wall-clock time."""
        with self._state_lock:
            if on:
                changed = not self.acquiring
                self._start_at = at or 0.0
                self._stop_at = None
                self.acquiring = True
            elif at is not None and self.acquiring and at > time.time():
                changed = False   # the Acquisition event follows when the stop takes effect
                self._stop_at = at
            else:
                changed = self.acquiring
                self._stop_at = None
                self.acquiring = False
            self._jobs.put(lambda: None)   # wake the capture thread to re-plan
        if changed:
            self.link.send_typed(events.Acquisition(acquiring=on))

    def _stop_due(self, trigger: float) -> bool:
        """True (and acquisition ends) if a synchronised stop falls at or before ``trigger``."""
        with self._state_lock:
            if self._stop_at is None or trigger < self._stop_at or not self.acquiring:
                return False
            self._stop_at = None
            self.acquiring = False
        self.link.send_typed(events.Acquisition(acquiring=False))
        return True

    # ------------------------------------------------------------------------- capture loop
    def _capture_loop(self) -> None:
        while True:
            with self._state_lock:
                period = period_seconds(self.framerate) if self.acquiring and not self.stopped.is_set() else None
                start_at = self._start_at
            trigger = next_trigger(max(time.time(), start_at), period, self._last_trigger) if period else None
            if trigger is not None and self._stop_due(trigger):
                continue
            timeout = None if trigger is None else max(0.0, trigger - time.time())
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                job = None
            if job is _STOP:
                return
            if job is not None:
                self._run_job(job)
                continue
            if trigger is None or not self.acquiring or self.stopped.is_set():
                continue
            self._last_trigger = trigger
            when = dt.datetime.fromtimestamp(trigger, dt.timezone.utc)
            try:
                with self._driver_lock:
                    self.capture(when, "Plume")
                    self.frames_captured += 1
                    self.last_frame_time = time.time()
                    self.after_continuous_frame()
            except Exception as exc:
                log.exception("%s: continuous capture failed", self.device)
                self.link.send_typed(events.Status(level="error", message=f"capture failed: {exc}"))

    def _run_job(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:
            log.exception("%s: job failed", self.device)
            self.link.send_typed(events.Status(level="error", message=str(exc)))

    def _manual_capture(self, frame_type: str) -> None:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        with self._driver_lock:
            self.capture(now, frame_type)

    def _dark_job(self) -> None:
        was = self.acquiring
        self.acquiring = False
        self.link.send_typed(events.Progress(task="dark_set", state="started"))
        try:
            names = self.run_dark_set()
        finally:
            self.acquiring = was
        finished = events.DARK_FINISHED[self.kind]
        self.link.send_typed(finished(files=len(names)))

    def _restart_driver(self) -> None:
        with self._driver_lock:
            self.close_driver()
            self.open_driver()
        self.link.send_typed(events.Status(level="info", message="driver restarted"))

    def unique_time(self, when: dt.datetime, make_name: Callable[[dt.datetime], str]) -> tuple[dt.datetime, str]:
        """PyCam names have whole seconds: if ``make_name(when)`` was already used by this
        device, move to the next free second so no file ever overwrites another."""
        name = make_name(when)
        while name in self._recent_names:
            when += dt.timedelta(seconds=1)
            name = make_name(when)
        self._recent_names[name] = None
        if len(self._recent_names) > _RECENT_NAMES:
            self._recent_names.pop(next(iter(self._recent_names)))
        return when, name

    def spooled(self, filename: str) -> str:
        self.link.file_spooled(filename)
        return filename
