"""The daily schedule's rules and the Witty Pi power schedule they imply (floor 1, pure).

``[schedule]`` gives ``start_time``, ``stop_time`` and ``dark_time`` (``HH:MM``, UTC).  Rules:
the stop is later than the start on the same UTC day, and the dark set lies inside the
window (``start <= dark < stop``).  The master applies them
(:class:`pycam.station.housekeeping.StationSchedule`) and the GUI's Schedule tab checks a form
with the same functions.

The Witty Pi 3 schedule (``schedule.wpi``) powers the master on ``power_on_lead_min`` before the
start and off ``power_off_lag_min`` after the stop::

    BEGIN 2024-05-01 00:25:00
    END   2099-12-31 23:59:59
    ON    H8 M45
    OFF   H15 M15

The Witty Pi keeps the Pi's clock, so the Pi should run on UTC (as PyCam stations do).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping

from pycam.config import ConfigError

WITTY_END = "2099-12-31 23:59:59"


def _clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


@dataclasses.dataclass(frozen=True)
class DailyTimes:
    start: dt.time
    stop: dt.time
    dark: dt.time

    def window_contains(self, t: dt.time) -> bool:
        return self.start <= t < self.stop


def daily_times(section: Mapping[str, Any]) -> DailyTimes:
    """Validated times of a ``[schedule]`` section; ConfigError names the offending key."""
    times = DailyTimes(_clock(section["start_time"]), _clock(section["stop_time"]), _clock(section["dark_time"]))
    if times.stop <= times.start:
        raise ConfigError(f"[schedule] stop_time = {section['stop_time']!r}: must be after start_time "
                          f"{section['start_time']!r} on the same UTC day")
    if not times.window_contains(times.dark):
        raise ConfigError(f"[schedule] dark_time = {section['dark_time']!r}: must lie inside the acquisition "
                          f"window {section['start_time']}-{section['stop_time']}")
    return times


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def witty_pi_schedule(section: Mapping[str, Any], today: dt.date) -> str:
    """The text of a Witty Pi schedule file for ``[schedule]`` (see the module docstring)."""
    times = daily_times(section)
    lead, lag = int(section["power_on_lead_min"]), int(section["power_off_lag_min"])
    on_minutes = _minutes(times.stop) + lag - (_minutes(times.start) - lead)
    if on_minutes >= 24 * 60:
        raise ConfigError("[schedule] power_off_lag_min: the window plus lead and lag covers the whole day, so "
                          "the Witty Pi would never switch the station off")
    begin = dt.datetime.combine(today, times.start) - dt.timedelta(minutes=lead)
    off_minutes = 24 * 60 - on_minutes

    def duration(total: int) -> str:
        hours, minutes = divmod(total, 60)
        return " ".join(part for part in (f"H{hours}" if hours else "", f"M{minutes}" if minutes else "") if part)

    return (f"# PyCam Witty Pi schedule, generated from [schedule] (times UTC): acquisition "
            f"{section['start_time']}-{section['stop_time']}, darks {section['dark_time']}\n"
            f"BEGIN {begin:%Y-%m-%d %H:%M:%S}\n"
            f"END   {WITTY_END}\n"
            f"ON    {duration(on_minutes)}\n"
            f"OFF   {duration(off_minutes)}\n")
