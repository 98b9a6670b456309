"""Command forms: typed entry rows validated against the protocol vocabulary before sending.

A :class:`CommandRow` is one setting (a command key for one device): an entry (or check
box), a *Set* button and a status label.  The value is checked with
:func:`pycam.protocol.commands.parse_value` and :func:`~pycam.protocol.commands.route`
first; a bad value is refused in the form (red status naming the problem) and never sent.
When the device's reply (or error) with the same request id arrives, the status label
shows it.
"""
from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable

from pycam.protocol.commands import VOCABULARY, parse_value, route
from pycam.protocol.errors import CommandValueError
from pycam.gui.ui_messages import MessageSummary

SendFunction = Callable[[str, str, object], "str | None"]


def validate_command(device: str, key: str, raw) -> object:
    """The typed value for ``key`` addressed to ``device``; raises ValueError naming the problem."""
    try:
        value = parse_value(key, raw)
        route(key, device, (device,))
    except CommandValueError as exc:
        raise ValueError(f"{exc.key}: {exc.reason}") from None
    return value


class ReplyTracker:
    """Maps request ids to callbacks; fed with every ``message`` event on the Tk thread."""

    def __init__(self) -> None:
        self._waiting: dict[str, Callable[[MessageSummary], None]] = {}

    def expect(self, request_id, callback: Callable[[MessageSummary], None]) -> None:
        if request_id is not None:
            self._waiting[str(request_id)] = callback

    def on_message(self, summary: MessageSummary) -> None:
        if summary.kind in ("reply", "error") and summary.request_id in self._waiting:
            self._waiting.pop(summary.request_id)(summary)


class CommandRow:
    """One setting row inside a grid: label, value widget, Set button, status."""

    def __init__(self, parent, row: int, device: str, key: str, label: str, send: SendFunction,
                 tracker: ReplyTracker, initial="", width: int = 10) -> None:
        self.device, self.key, self._send, self._tracker = device, key, send, tracker
        spec = VOCABULARY[key]
        self.spec = spec
        ttk.Label(parent, text=label).grid(row=row, column=0, sticky="w", padx=2, pady=1)
        if spec.kind == "bool":
            self.var = tk.BooleanVar(value=bool(initial))
            self.widget = ttk.Checkbutton(parent, variable=self.var, command=self.submit)
        else:
            self.var = tk.StringVar(value=str(initial))
            self.widget = ttk.Entry(parent, textvariable=self.var, width=width)
            self.widget.bind("<Return>", lambda _e: self.submit())
        self.widget.grid(row=row, column=1, sticky="w", padx=2)
        self.button = ttk.Button(parent, text="Set", width=4, command=self.submit)
        self.button.grid(row=row, column=2, padx=2)
        self.status = tk.StringVar(value=spec.describe_range())
        self.status_label = ttk.Label(parent, textvariable=self.status, width=26, foreground="#555555")
        self.status_label.grid(row=row, column=3, sticky="w")
        self.last_sent = None
        self.last_reply: MessageSummary | None = None

    def set_value(self, value) -> None:
        if self.spec.kind == "bool":
            self.var.set(bool(value))
        else:
            self.var.set(str(value))

    def submit(self) -> bool:
        """Validate and send; True if sent."""
        raw = self.var.get()
        try:
            value = validate_command(self.device, self.key, raw)
        except ValueError as exc:
            self._show(f"refused: {exc}", "#c02020")
            return False
        request_id = self._send(self.device, self.key, value)
        if request_id is None:
            self._show("not sent: not connected", "#c02020")
            return False
        self.last_sent = value
        self._show(f"sent {value!r}…", "#2050a0")
        self._tracker.expect(request_id, self._on_reply)
        return True

    def _on_reply(self, summary: MessageSummary) -> None:
        self.last_reply = summary
        if summary.kind == "error":
            self._show(f"{summary.device} error: {summary.text}", "#c02020")
        else:
            shown = summary.value if summary.value is not None else summary.text
            self._show(f"{summary.device}: {shown!r} ✓", "#2e7d32")

    def _show(self, text: str, colour: str) -> None:
        self.status.set(text[:60])
        self.status_label.configure(foreground=colour)

