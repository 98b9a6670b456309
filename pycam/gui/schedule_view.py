"""Schedule tab: daily acquisition start/stop, dark-capture time and the power-on window.

The form is validated before anything leaves it: times are ``HH:MM`` (UTC), the stop
comes after the start, the dark set lies inside the acquisition window, and the Witty Pi
power window (start − lead … stop + lag) stays within the day.  The station's own rules
(:func:`pycam.schedule.daily_times` and :func:`~pycam.schedule.witty_pi_schedule`,
what the master applies) then check it once more, and the Witty Pi file it implies is shown.

Sending: *Send to station* sends the valid schedule as the ``SCH`` command to the master
(:func:`pycam.protocol.commands.check_schedule` has the same rules), which applies it at
once and answers with the values in force; *Save station config…* writes it as the
``[schedule]`` section of a complete station configuration file (atomically), so it also
holds after the master restarts.
"""
from __future__ import annotations

import re
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any

from pycam.formats.atomic import atomic_write_text
from pycam.gui.ui_messages import MessageSummary
from pycam.schedule import daily_times, witty_pi_schedule

FIELDS = (
    ("enabled", "Schedule enabled", bool),
    ("start_time", "Acquisition start (HH:MM UTC)", str),
    ("stop_time", "Acquisition stop (HH:MM UTC)", str),
    ("dark_time", "Dark set (HH:MM UTC)", str),
    ("power_on_lead_min", "Power on before start (min)", int),
    ("power_off_lag_min", "Power off after stop (min)", int),
)


def _minutes(text: str, label: str) -> int:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{label}: {text!r} is not a time HH:MM (00:00-23:59)")
    return int(m.group(1)) * 60 + int(m.group(2))


def validate_schedule(values: dict[str, Any]) -> dict[str, Any]:
    """Typed, checked schedule values; raises ValueError naming the first problem."""
    out: dict[str, Any] = {}
    for key, label, kind in FIELDS:
        raw = values[key]
        if kind is bool:
            out[key] = bool(raw)
        elif kind is int:
            try:
                out[key] = int(str(raw).strip())
            except ValueError:
                raise ValueError(f"{label}: {raw!r} is not a whole number") from None
            if not 0 <= out[key] <= 120:
                raise ValueError(f"{label}: must be 0-120 minutes")
        else:
            _minutes(str(raw), label)
            h, m = str(raw).strip().split(":")
            out[key] = f"{int(h):02d}:{m}"
    start = _minutes(out["start_time"], "start")
    stop = _minutes(out["stop_time"], "stop")
    dark = _minutes(out["dark_time"], "dark")
    if stop <= start:
        raise ValueError(f"acquisition stop {out['stop_time']} must come after start {out['start_time']}")
    if not start <= dark <= stop:
        raise ValueError(f"dark set {out['dark_time']} must lie inside the acquisition window "
                         f"{out['start_time']}-{out['stop_time']}")
    if start - out["power_on_lead_min"] < 0 or stop + out["power_off_lag_min"] >= 24 * 60:
        raise ValueError("the power-on window (start - lead ... stop + lag) must stay within one day")
    _station_check(out)
    return out


def _station_check(values: dict[str, Any]) -> None:
    """The station's own rules have the last word: the config schema's per-key checks and
    :func:`pycam.schedule.daily_times` / :func:`witty_pi_schedule` (what the master
    applies at start)."""
    import datetime as dt

    from pycam.config import SCHEMA, ConfigError

    for key, value in values.items():
        field = SCHEMA.get("schedule", {}).get(key)
        if field is None:
            continue
        problem = field.check(value) if field.check is not None else None
        if problem is None and field.minimum is not None and not field.minimum <= value <= field.maximum:
            problem = f"must be {field.minimum:g}-{field.maximum:g}"
        if problem:
            raise ValueError(f"[schedule] {key}: {problem}")
    try:
        daily_times(values)
        witty_pi_schedule(values, dt.date.today())
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def witty_preview(values: dict[str, Any]) -> str:
    import datetime as dt

    return witty_pi_schedule(values, dt.datetime.now(dt.timezone.utc).date())


def config_with_schedule(config, schedule: dict[str, Any]) -> str:
    """The whole station configuration as TOML with ``[schedule]`` replaced."""
    from pycam.config import render_config

    overrides = {section: dict(values) for section, values in config.values.items()}
    overrides["schedule"] = {**overrides.get("schedule", {}), **schedule}
    secret = overrides.get("network", {}).get("secret")
    return render_config(overrides, secret=secret)


class ScheduleView(ttk.Frame):
    def __init__(self, master, app) -> None:
        super().__init__(master, padding=8)
        self.app = app
        current = {}
        try:
            current = dict(app.config["schedule"])
        except (KeyError, TypeError):
            pass
        box = ttk.LabelFrame(self, text="Daily schedule (UTC)", padding=6)
        box.pack(anchor="nw")
        self.vars: dict[str, tk.Variable] = {}
        defaults = {"enabled": False, "start_time": "00:30", "stop_time": "09:00", "dark_time": "08:40",
                    "power_on_lead_min": 5, "power_off_lag_min": 10}
        for row, (key, label, kind) in enumerate(FIELDS):
            ttk.Label(box, text=label).grid(row=row, column=0, sticky="w", pady=2)
            value = current.get(key, defaults[key])
            if kind is bool:
                var: tk.Variable = tk.BooleanVar(value=bool(value))
                ttk.Checkbutton(box, variable=var).grid(row=row, column=1, sticky="w")
            else:
                var = tk.StringVar(value=str(value))
                ttk.Entry(box, textvariable=var, width=10).grid(row=row, column=1, sticky="w")
            self.vars[key] = var
        buttons = ttk.Frame(box)
        buttons.grid(row=len(FIELDS), column=0, columnspan=2, pady=6, sticky="w")
        ttk.Button(buttons, text="Validate", command=self.validate).pack(side="left", padx=2)
        ttk.Button(buttons, text="Send to station", command=self.send).pack(side="left", padx=2)
        ttk.Button(buttons, text="Save station config…", command=self.save_dialog).pack(side="left", padx=2)
        self.status = tk.StringVar(value="")
        self.status_label = ttk.Label(self, textvariable=self.status, wraplength=700)
        self.status_label.pack(anchor="w", pady=4)
        self.power_var = tk.StringVar(value="")
        ttk.Label(self, textvariable=self.power_var, foreground="#2050a0").pack(anchor="w")
        self.validated: dict[str, Any] | None = None
        self.station_reply: MessageSummary | None = None

    def values(self) -> dict[str, Any]:
        return {key: var.get() for key, var in self.vars.items()}

    def validate(self) -> dict[str, Any] | None:
        try:
            schedule = validate_schedule(self.values())
        except ValueError as exc:
            self.validated = None
            self.status.set(f"refused: {exc}")
            self.status_label.configure(foreground="#c02020")
            return None
        self.validated = schedule
        start, stop = _minutes(schedule["start_time"], ""), _minutes(schedule["stop_time"], "")
        on, off = start - schedule["power_on_lead_min"], stop + schedule["power_off_lag_min"]
        self.power_var.set(f"Witty Pi: ON {on // 60:02d}:{on % 60:02d}, OFF {off // 60:02d}:{off % 60:02d} UTC\n\n"
                           + witty_preview(schedule))
        self.status.set("schedule valid")
        self.status_label.configure(foreground="#2e7d32")
        return schedule

    def send(self) -> bool:
        """Validate, then send the schedule to the master (SCH); the reply shows in the status."""
        schedule = self.validate()
        if schedule is None:
            return False
        request_id = self.app.send("master", "SCH", schedule)
        if request_id is None:
            self.status.set("not sent: not connected to the station")
            self.status_label.configure(foreground="#c02020")
            return False
        self.station_reply = None
        self.status.set("schedule sent to the master…")
        self.status_label.configure(foreground="#2050a0")
        self.app.tracker.expect(request_id, self._on_reply)
        return True

    def _on_reply(self, summary: MessageSummary) -> None:
        self.station_reply = summary
        if summary.kind == "error":
            self.status.set(f"the station refused the schedule: {summary.text}")
            self.status_label.configure(foreground="#c02020")
        else:
            self.status.set("the station applies this schedule now (save the station config to keep it "
                            "after a restart of the master)")
            self.status_label.configure(foreground="#2e7d32")

    def save(self, path: str | Path) -> Path | None:
        schedule = self.validate()
        if schedule is None:
            return None
        written = atomic_write_text(path, config_with_schedule(self.app.config, schedule))
        self.status.set(f"schedule saved in {written}; the master reads it when it starts "
                        "(Send to station applies it now)")
        return written

    def save_dialog(self) -> None:
        if self.validate() is None:
            return
        initial = Path(self.app.config.path) if self.app.config.path else Path.cwd() / "station.toml"
        path = filedialog.asksaveasfilename(parent=self, title="Save station configuration",
                                            initialdir=str(initial.parent), initialfile=initial.name,
                                            defaultextension=".toml")
        if path:
            self.save(path)
