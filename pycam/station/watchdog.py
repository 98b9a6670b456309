"""Acquisition watchdog: restart acquisition when files stop arriving (PyCam's watchdog, in the master).

Feed it from the master: ``master.file_stored_callbacks.append(watchdog.file_stored)``.  While
the master is acquiring, every ``[schedule] watchdog_check_s`` it looks at each expected device
(the connected ones, or every device seen since acquisition started): one silent for
``watchdog_timeout_s`` (PyCam: 150 s) triggers ``stop_acquisition()`` then
``start_acquisition()`` and a ``watchdog`` event naming the silent devices.  If
``max_restarts`` restarts in a row did not help, ``escalate()`` runs (e.g. power-cycle the
second Pi, as PyCam did) and is reported too.

Silence that has a known cause restarts nothing: while ``paused()`` names a reason (the
master's disk is full, so files are refused, not missing) the watchdog only reports
``paused`` once and gives every device a full timeout again when the reason clears
(``resumed``); devices listed by ``manual_devices()`` (in manual mode: the operator stopped
their continuous capture, or their frame rate is 0) are not expected to deliver at all.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from pycam.station.background import BackgroundLoop, periodic

log = logging.getLogger(__name__)

Publish = Callable[..., None]


class AcquisitionWatchdog:
    def __init__(self, *, timeout_s: float, check_s: float, is_acquiring: Callable[[], bool],
                 start_acquisition: Callable[[], Any], stop_acquisition: Callable[[], Any],
                 publish_event: Publish | None = None,
                 expected_devices: Callable[[], Iterable[str]] | None = None,
                 escalate: Callable[[], Any] | None = None, max_restarts: int = 2,
                 paused: Callable[[], str | None] | None = None,
                 manual_devices: Callable[[], Iterable[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if timeout_s <= 0 or check_s <= 0:
            raise ValueError("watchdog timeout and check interval must be positive")
        self.timeout_s = float(timeout_s)
        self.check_s = float(check_s)
        self._is_acquiring = is_acquiring
        self._start = start_acquisition
        self._stop_acq = stop_acquisition
        self._publish = publish_event or (lambda kind, **fields: None)
        self._expected = expected_devices
        self._escalate = escalate
        self._paused = paused or (lambda: None)
        self._manual = manual_devices or (lambda: ())
        self.paused_for: str | None = None
        self.max_restarts = int(max_restarts)
        self._clock = clock
        self._lock = threading.Lock()
        self._armed_at: float | None = None
        self._last: dict[str, float] = {}
        self.restarts_in_a_row = 0
        self._loop = BackgroundLoop("acquisition-watchdog", periodic(self.check_s, self.check, "watchdog"))

    # -- inputs ---------------------------------------------------------------------------
    def file_stored(self, path: Path, device: str) -> None:
        """A ``file_stored_callbacks`` entry: ``device`` just delivered ``path``."""
        with self._lock:
            self._last[device] = self._clock()
            if self.restarts_in_a_row and not self._silent_locked(self._clock()):
                self.restarts_in_a_row = 0

    # -- the check ------------------------------------------------------------------------
    def _silent_locked(self, now: float) -> list[str]:
        if self._armed_at is None:
            return []
        expected = set(self._expected()) if self._expected is not None else set()
        expected |= set(self._last)
        expected -= set(self._manual())
        silent = []
        for device in sorted(expected):
            since = max(self._last.get(device, self._armed_at), self._armed_at)
            if now - since >= self.timeout_s:
                silent.append(device)
        if not expected and not self._expected_all_manual() and now - self._armed_at >= self.timeout_s:
            silent.append("all devices")
        return silent

    def _expected_all_manual(self) -> bool:
        return bool(set(self._manual()))

    def _pause_check(self, now: float) -> bool:
        """With the lock held: True while silence has a known cause (then re-armed)."""
        reason = self._paused()
        if reason is None:
            if self.paused_for is not None:
                self.paused_for = None
                self._armed_at = now   # a full timeout for everybody after the pause
                self._last = {d: now for d in self._last}
                self._publish("watchdog", action="resumed")
            return False
        if self.paused_for is None:
            log.info("watchdog: paused (%s)", reason)
            self._publish("watchdog", action="paused", message=reason)
        self.paused_for = reason
        return True

    def check(self) -> list[str]:
        """One look; returns the silent devices that caused a restart ([] when all is well)."""
        now = self._clock()
        with self._lock:
            if not self._is_acquiring():
                self._armed_at = None
                self._last.clear()
                self.restarts_in_a_row = 0
                return []
            if self._armed_at is None:
                self._armed_at = now  # grace: every device gets a full timeout after the start
                return []
            if self._pause_check(now):
                return []
            silent = self._silent_locked(now)
            if not silent:
                return []
            self.restarts_in_a_row += 1
            attempt = self.restarts_in_a_row
        log.warning("watchdog: no new files from %s for %.0f s: restarting acquisition (attempt %d)",
                    ", ".join(silent), self.timeout_s, attempt)
        if self._escalate is not None and attempt > self.max_restarts:
            try:
                self._escalate()
                self._publish("watchdog", action="escalate", silent=silent, restarts=attempt - 1)
            except Exception as exc:
                log.exception("watchdog: escalation failed")
                self._publish("watchdog", action="escalate", state="failed", silent=silent, message=str(exc))
            with self._lock:
                self.restarts_in_a_row = 0
        try:
            self._stop_acq()
            self._start()
        except Exception as exc:
            log.exception("watchdog: restart failed")
            self._publish("watchdog", action="restart", state="failed", silent=silent, message=str(exc))
        else:
            self._publish("watchdog", action="restart", state="done", silent=silent,
                          timeout_s=self.timeout_s, attempt=attempt)
        with self._lock:
            self._armed_at = self._clock()
            self._last = {d: self._armed_at for d in self._last}
        return silent

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
