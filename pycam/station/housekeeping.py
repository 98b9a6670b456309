"""What the master runs besides routing: the daily acquisition schedule applied by the master
itself (no cron edits; the rules and the Witty Pi file are :mod:`pycam.schedule`), the acquisition
watchdog, the disk manager and the metrics server.

:class:`StationSchedule` calls the master's ``start_acquisition()``, ``start_dark_set()`` and
``stop_acquisition()`` at the ``[schedule]`` times every day and reports each as a ``schedule``
event; started inside the window (a reboot), it starts acquisition at once.  It writes the Witty
Pi schedule (``witty_pi_file``) when it starts.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from pycam.formats.atomic import atomic_write_text
from pycam.schedule import daily_times, witty_pi_schedule
from pycam.station.background import BackgroundLoop

log = logging.getLogger(__name__)

Action = Callable[[], Any]
Publish = Callable[..., None]


def write_witty_pi_schedule(section: Mapping[str, Any], path: Path, today: dt.date | None = None) -> Path:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return atomic_write_text(path, witty_pi_schedule(section, today))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class StationSchedule:
    """Runs the daily start / dark / stop actions (see the module docstring)."""

    def __init__(self, section: Mapping[str, Any], *, start_acquisition: Action, stop_acquisition: Action,
                 start_dark_set: Action, publish_event: Publish | None = None,
                 clock: Callable[[], dt.datetime] = _utcnow, max_wait_s: float = 60.0) -> None:
        self.times = daily_times(section)
        self.section = dict(section)
        self._actions = {"start": start_acquisition, "dark": start_dark_set, "stop": stop_acquisition}
        self._publish = publish_event or (lambda kind, **fields: None)
        self._clock = clock
        self._max_wait = max_wait_s
        self._background = BackgroundLoop("station-schedule", self._loop)
        self._last_fired: dict[str, dt.date] = {}
        self._since: dt.datetime | None = None

    def next_action(self, now: dt.datetime) -> tuple[dt.datetime, str]:
        """The next (time, action) not yet fired.  Actions due since the schedule started but
        missed (the loop was late, the clock jumped) come first, so a stop is never skipped."""
        if self._since is None:
            self._since = now.replace(second=0, microsecond=0)
        first_day = max(self._since.date(), now.date() - dt.timedelta(days=1))
        candidates = []
        for offset in range((now.date() - first_day).days + 2):
            day = first_day + dt.timedelta(days=offset)
            for name, t in (("start", self.times.start), ("dark", self.times.dark), ("stop", self.times.stop)):
                when = dt.datetime.combine(day, t, tzinfo=dt.timezone.utc)
                fired = self._last_fired.get(name)
                if when < self._since or (fired is not None and fired >= day):
                    continue
                candidates.append((when, name))
        return min(candidates)

    def fire(self, name: str, when: dt.datetime) -> None:
        self._last_fired[name] = when.date()
        log.info("schedule: %s at %s", name, when.isoformat())
        try:
            result = self._actions[name]()
        except Exception as exc:
            log.exception("schedule: %s failed", name)
            self._publish("schedule", action=name, state="failed", message=str(exc), time=when.isoformat())
            return
        self._publish("schedule", action=name, state="done", time=when.isoformat(),
                      devices=list(result) if isinstance(result, (list, tuple)) else None)

    def catch_up(self, now: dt.datetime) -> bool:
        """Started inside today's window (e.g. after a reboot): start acquisition now."""
        if self._since is None:
            self._since = now.replace(second=0, microsecond=0)
        if self.times.window_contains(now.time().replace(tzinfo=None)):
            self.fire("start", now)
            return True
        return False

    def run_pending(self, now: dt.datetime) -> list[str]:
        """Fire every action whose time has come (the loop calls this; tests call it directly)."""
        fired = []
        while True:
            when, name = self.next_action(now)
            if when > now:
                return fired
            self.fire(name, when)
            fired.append(name)

    def _loop(self, stop: threading.Event) -> None:
        self.catch_up(self._clock())
        while not stop.is_set():
            now = self._clock()
            self.run_pending(now)
            when, _ = self.next_action(self._clock())
            wait = max(0.05, min(self._max_wait, (when - self._clock()).total_seconds()))
            stop.wait(wait)

    def start(self) -> None:
        path = self.section.get("witty_pi_file")
        if path:
            try:
                write_witty_pi_schedule(self.section, Path(path))
            except OSError as exc:
                log.error("schedule: cannot write the Witty Pi schedule %s: %s", path, exc)
                self._publish("schedule", action="witty_pi", state="failed", message=f"{path}: {exc}")
        self._background.start()

    def stop(self) -> None:
        self._background.stop()


class MasterHousekeeping:
    """What the master runs besides routing: the daily schedule (``[schedule] enabled``), the
    acquisition watchdog (``watchdog_enabled``) and the disk manager (``disk_free_mb`` > 0).

    ``master`` needs ``start_acquisition``, ``stop_acquisition``, ``start_dark_set``,
    ``publish_event``, ``acquiring``, ``connected_devices``, ``file_stored_callbacks`` and
    ``store.data_dir`` (pycam.station.master.Master).  When ``RPi.GPIO`` is available, a watchdog
    whose restarts did not help power-cycles the second Pi (PyCam's last resort).
    """

    def __init__(self, master: Any, config: Any) -> None:
        from pycam.station.disk_manager import ConfirmedFiles, DiskManager
        from pycam.station.power import PowerError, SecondPiPower
        from pycam.station.watchdog import AcquisitionWatchdog

        section = config["schedule"]
        self.section = dict(section)
        publish = master.publish_event
        self.schedule = None
        if section["enabled"]:
            self.schedule = StationSchedule(section, start_acquisition=master.start_acquisition,
                                            stop_acquisition=master.stop_acquisition,
                                            start_dark_set=master.start_dark_set, publish_event=publish)
        self.watchdog = None
        if section["watchdog_enabled"]:
            try:
                escalate = SecondPiPower.from_config(config).power_cycle
            except PowerError:
                escalate = None  # not on a Pi: restarts only
            self.watchdog = AcquisitionWatchdog(
                timeout_s=section["watchdog_timeout_s"], check_s=section["watchdog_check_s"],
                is_acquiring=lambda: master.acquiring, start_acquisition=master.start_acquisition,
                stop_acquisition=master.stop_acquisition, publish_event=publish,
                expected_devices=lambda: master.connected_devices, escalate=escalate,
                paused=getattr(getattr(master, "storage_state", None), "paused_reason", None),
                manual_devices=getattr(getattr(master, "health", None), "not_capturing", None))
            master.file_stored_callbacks.append(self.watchdog.file_stored)
        self.disk = None
        if section["disk_free_mb"] > 0:
            ledger = ConfirmedFiles(master.store.data_dir,
                                    Path(config["storage"]["spool_dir"]) / "master_confirmed_files.txt")
            master.file_stored_callbacks.append(ledger.file_stored)
            self.disk = DiskManager(master.store.data_dir, section["disk_free_mb"], ledger, publish_event=publish,
                                    check_s=section["disk_check_s"])
        self.metrics = None
        master_section = config.values.get("master", {}) if hasattr(config, "values") else {}
        if master_section.get("metrics_port"):
            from pycam.station.metrics import MetricsServer

            self.metrics = MetricsServer(master, master_section["metrics_port"], master_section["metrics_host"])
        self._master = master
        if hasattr(master, "command_handlers"):
            master.command_handlers["SCH"] = self.replace_schedule

    def replace_schedule(self, values: dict) -> dict:
        """The SCH command: a new daily schedule from the GUI, in force at once (until the
        master restarts: the configuration file is not rewritten)."""
        section = {**self.section, **values}
        daily_times(section)   # the station's rules have the last word (ConfigError is a ValueError)
        witty_pi_schedule(section, _utcnow().date())
        if self.schedule is not None:
            self.schedule.stop()
            self.schedule = None
        self.section = section
        master = self._master
        if section["enabled"]:
            self.schedule = StationSchedule(section, start_acquisition=master.start_acquisition,
                                            stop_acquisition=master.stop_acquisition,
                                            start_dark_set=master.start_dark_set, publish_event=master.publish_event)
            self.schedule.start()
        master.publish_event("schedule", action="changed", state="done",
                             message=f"{'enabled' if section['enabled'] else 'disabled'}: "
                                     f"{section['start_time']}-{section['stop_time']}, darks {section['dark_time']}")
        return {key: section[key] for key in values}

    def parts(self) -> list:
        return [p for p in (self.schedule, self.watchdog, self.disk, self.metrics) if p is not None]

    def start(self) -> "MasterHousekeeping":
        now = _utcnow()
        if (self.schedule is not None and getattr(self._master, "acquiring", False)
                and not self.schedule.times.window_contains(now.time().replace(tzinfo=None))):
            # a master restarted outside the daily window remembers it was acquiring: the
            # stop it missed while down is made now
            log.info("schedule: outside the acquisition window at start: stopping the acquisition resumed")
            self._master.stop_acquisition()
        for part in self.parts():
            part.start()
        return self

    def stop(self) -> None:
        for part in self.parts():
            part.stop()
