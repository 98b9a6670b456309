"""The station's health at a glance (top of the Overview tab): one row per device.

Each device's heartbeat (a ``health`` event, see :class:`pycam.protocol.events.Health`) fills
its row: link state, age of the last frame, spool backlog, free disk, CPU temperature,
uptime, clock offset to the master; anything worth a look is spelled out in the warnings
column (red).  A clock offset above ``[health] clock_offset_warn_ms`` (50 ms) is always
named, because camera A and B images are paired by their time stamps: with the clocks
that far apart, a pair may mix two different moments.  The ``master`` row shows the data
disk (a ``storage`` event when it fills up, and when it clears).
"""
from __future__ import annotations

import time
import tkinter as tk
from tkinter import ttk
from typing import Any

from pycam.gui.ui_messages import MessageSummary
from pycam.gui.worker import GuiQueue
from pycam.protocol import events

DEVICES = ("CM1", "CM2", "SPC")
TITLES = {"CM1": "CM1 camera A", "CM2": "CM2 camera B", "SPC": "SPC spectrometer", "master": "master"}
COLUMNS = (("device", "Device", 135), ("link", "Link", 85), ("frame", "Last frame", 75),
           ("backlog", "Backlog", 60), ("disk", "Disk free", 75), ("temp", "CPU", 50), ("uptime", "Uptime", 65),
           ("clock", "Clock offset", 155), ("warnings", "Warnings", 540))
LOW_DISK_MB = 500.0
HOT_C = 75.0
BACKLOG_WARN = 50


def health_warnings(health: events.Health, *, clock_warn_ms: float, heartbeat_age_s: float | None = None,
                    heartbeat_s: float = 10.0) -> list[str]:
    """What is wrong with one device's heartbeat, in words (empty: all is well)."""
    out = []
    if health.clock_offset_ms is not None and abs(health.clock_offset_ms) > clock_warn_ms:
        out.append(f"clock {health.clock_offset_ms:+.0f} ms off the master (> {clock_warn_ms:g} ms): "
                   f"A/B pairs are matched by time stamp, pairing breaks - fix NTP")
    if health.acquiring and health.framerate > 0 and health.last_frame_age_s is not None:
        late = max(3.0 / health.framerate, 5.0)
        if health.last_frame_age_s > late:
            out.append(f"no frame for {health.last_frame_age_s:.0f} s")
    if health.spool_backlog > BACKLOG_WARN:
        out.append(f"{health.spool_backlog} files not yet confirmed")
    if health.disk_free_mb is not None and health.disk_free_mb < LOW_DISK_MB:
        out.append(f"spool disk nearly full ({health.disk_free_mb:.0f} MB)")
    if health.cpu_temp_c is not None and health.cpu_temp_c > HOT_C:
        out.append(f"hot ({health.cpu_temp_c:.0f} °C)")
    if health.events_dropped:
        out.append(f"{health.events_dropped} events dropped while offline")
    if heartbeat_age_s is not None and heartbeat_age_s > 3 * heartbeat_s:
        out.append(f"no heartbeat for {heartbeat_age_s:.0f} s")
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class HealthPanel(ttk.Frame):
    def __init__(self, master, queue: GuiQueue, *, clock_warn_ms: float = 50.0, heartbeat_s: float = 10.0,
                 refresh_ms: int = 1000) -> None:
        super().__init__(master)
        self.clock_warn_ms = float(clock_warn_ms)
        self.heartbeat_s = float(heartbeat_s)
        self.health: dict[str, events.Health] = {}
        self.received: dict[str, float] = {}
        self.link: dict[str, str] = {d: "?" for d in DEVICES}
        self.storage = "ok"
        self.warnings: dict[str, list[str]] = {}
        self.tree = ttk.Treeview(self, columns=[c[0] for c in COLUMNS], show="headings", height=4)
        for key, title, width in COLUMNS:
            self.tree.heading(key, text=title)
            self.tree.column(key, width=width, stretch=key == "warnings", anchor="w")
        self.tree.tag_configure("warn", foreground="#c02020")
        self.tree.tag_configure("ok", foreground="#1d6b2a")
        self.tree.pack(fill="x")
        for device in DEVICES + ("master",):
            self.tree.insert("", "end", iid=device, values=(TITLES[device],) + ("-",) * (len(COLUMNS) - 1))
        self.summary = tk.StringVar(value="waiting for heartbeats")
        self.summary_label = ttk.Label(self, textvariable=self.summary, foreground="#555555")
        self.summary_label.pack(anchor="w")
        self._refresh_ms = refresh_ms
        queue.subscribe("message", self.on_message)
        self.after(refresh_ms, self._tick)

    # --- incoming ------------------------------------------------------------------------
    def on_message(self, s: MessageSummary) -> None:
        if s.kind != "event" or not isinstance(s.value, dict):
            return
        ev = events.parse_quietly(s.key or "", s.value)
        if isinstance(ev, events.Health) and s.device in DEVICES:
            self.health[s.device] = ev
            self.received[s.device] = time.monotonic()
            self.link[s.device] = "connected"
        elif isinstance(ev, events.DeviceConnected) and ev.device in DEVICES:
            self.link[ev.device] = "connected"
        elif isinstance(ev, events.DeviceDisconnected) and ev.device in DEVICES:
            self.link[ev.device] = "offline"
        elif isinstance(ev, events.Storage):
            self.storage = "full" if ev.state == "full" else "ok"
        else:
            return
        self.refresh()

    def _tick(self) -> None:
        try:
            self.refresh()
        finally:
            if self.winfo_exists():
                self.after(self._refresh_ms, self._tick)

    # --- display -------------------------------------------------------------------------
    def refresh(self) -> None:
        now = time.monotonic()
        problems = []
        for device in DEVICES:
            h = self.health.get(device)
            if h is None:
                warnings = [] if self.link[device] != "offline" else ["offline"]
                values = (TITLES[device], self.link[device]) + ("-",) * 6 + ("; ".join(warnings),)
            else:
                beat_age = now - self.received[device]
                warnings = health_warnings(h, clock_warn_ms=self.clock_warn_ms, heartbeat_age_s=beat_age,
                                           heartbeat_s=self.heartbeat_s)
                if self.link[device] == "offline":
                    warnings.insert(0, "offline")
                clock = "-" if h.clock_offset_ms is None else \
                    f"{h.clock_offset_ms:+.1f} ms (rtt {h.clock_rtt_ms:.1f})"
                values = (TITLES[device], self.link[device], _age(h.last_frame_age_s), str(h.spool_backlog),
                          "-" if h.disk_free_mb is None else f"{h.disk_free_mb / 1024:.1f} GB",
                          "-" if h.cpu_temp_c is None else f"{h.cpu_temp_c:.0f} °C", _age(h.uptime_s), clock,
                          "; ".join(warnings) or "ok")
            self.warnings[device] = warnings
            self.tree.item(device, values=values, tags=("warn" if warnings else "ok",))
            problems += [f"{device}: {w}" for w in warnings]
        master_warn = ["data disk full: files wait in the devices' spools"] if self.storage == "full" else []
        self.warnings["master"] = master_warn
        self.tree.item("master", values=("master", "-", "-", "-", "-", "-", "-", "-",
                                         "; ".join(master_warn) or f"storage {self.storage}"),
                       tags=("warn" if master_warn else "ok",))
        problems += [f"master: {w}" for w in master_warn]
        if problems:
            self.summary.set("⚠ " + " | ".join(problems))
            self.summary_label.configure(foreground="#c02020")
        elif self.health:
            self.summary.set("all devices healthy")
            self.summary_label.configure(foreground="#1d6b2a")

    def values(self, device: str) -> dict[str, Any]:
        """The row of ``device`` as shown (for tests)."""
        return dict(zip([c[0] for c in COLUMNS], self.tree.item(device, "values")))
