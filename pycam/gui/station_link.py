"""The GUI's link to the station: the client wrapper (no Tk) and the status/messages pane.

:class:`StationLink` owns a :class:`pycam.client.StationClient`.  The client calls
``on_message`` / ``on_state`` on its own thread; the link only turns them into GUI events
(``state``, ``message``) and hands data frames to the live-processing worker.  Commands
are sent with the client's non-blocking ``send_command``; anything blocking
(``request``) goes through the :class:`~pycam.gui.worker.TaskRunner`.

:class:`ConnectionPane` is the Tk side: the coloured status indicator, the station
address, and the messages pane listing every reply, event and error with time and device.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
import tkinter as tk
from tkinter import ttk
from typing import Any, Callable

from pycam.gui.ui_messages import MessageSummary, summarize_message
from pycam.gui.worker import GuiQueue

STATE_COLOURS = {
    "connecting": "#d9a400",
    "connected": "#2e9e3e",
    "reconnecting": "#e07000",
    "down": "#c02020",
    "stopped": "#808080",
}


def default_client_factory(config, *, name, on_message, on_state, subscribe):
    from pycam.client import StationClient  # floor 3, imported when connecting

    return StationClient(config, name=name, on_message=on_message, on_state=on_state, subscribe=subscribe)


class StationLink:
    """The GUI's link to the station: its StationClient's callbacks become queue events (never touch Tk here)."""

    def __init__(self, queue: GuiQueue, config, *, data_sink: Callable[[Any], None] | None = None,
                 client_factory=default_client_factory, name: str = "pycam-gui") -> None:
        self.queue = queue
        self.config = config
        self.data_sink = data_sink
        self.client_factory = client_factory
        self.name = name
        self.client = None
        self._token = None
        self._last_error = ""
        self.state = "stopped"

    # client thread ----------------------------------------------------------------------
    def _on_message(self, message, token=None) -> None:
        if token is not self._token:
            return  # a message of a client we already let go
        if getattr(message, "kind", "") == "event" and getattr(message, "name", "") == "routed":
            return  # the master's routing receipt: internal to request()
        summary = summarize_message(message)
        session = getattr(message, "session", "")
        client = self.client
        if summary.request_id is not None and session and client is not None \
                and session != getattr(client, "session", session):
            # another client's reply: shown, but never matched against our request ids
            summary = dataclasses.replace(summary, request_id=None, text=f"{summary.text} (other client)")
        if summary.is_data and self.data_sink is not None:
            self.data_sink(message)
        if summary.is_data:
            # data frames are many and large: the pane shows a one-line note, coalesced per device
            self.queue.post("message", summary, coalesce=f"data-{summary.device}")
        else:
            self.queue.post("message", summary)

    def _on_state(self, state: str, token=None) -> None:
        if token is not self._token:
            return  # the old client of a reconnect saying goodbye
        self.state = state
        self.queue.post("state", state)
        self.check_error()

    def check_error(self) -> str | None:
        """Post the client's latest connection problem (e.g. a wrong shared secret) once;
        called on state changes and periodically (the client retries without changing state)."""
        client = self.client
        why = getattr(client, "last_error", "") if client is not None else ""
        if why and why != self._last_error and getattr(client, "state", "") != "connected":
            self._last_error = why
            self.queue.post("error", f"station {client.state}: {why}")
            return why
        if not why:
            self._last_error = ""
        return None

    # Tk thread --------------------------------------------------------------------------
    def connect(self) -> None:
        self.disconnect()
        self.queue.post("state", "connecting")
        token = self._token = object()
        self.client = self.client_factory(self.config, name=self.name,
                                          on_message=lambda m: self._on_message(m, token),
                                          on_state=lambda st: self._on_state(st, token),
                                          subscribe=("image", "spectrum"))
        self.client.start()

    def disconnect(self, wait: bool = False) -> None:
        """Stop the client; its socket is closed on a helper thread (never on the Tk thread),
        joined only when ``wait`` (closing the window)."""
        client, self.client = self.client, None
        self._token = None
        if client is None:
            return
        stopper = threading.Thread(target=client.stop, name="pycam-gui-disconnect", daemon=True)
        stopper.start()
        if wait:
            stopper.join(10)
        self.state = "stopped"
        self.queue.post("state", "stopped")

    @property
    def connected(self) -> bool:
        return self.client is not None and getattr(self.client, "state", None) == "connected"

    def send(self, device: str, key: str, value) -> str | None:
        """Send one validated command (non-blocking); returns the request id or None if offline."""
        if self.client is None:
            self.queue.post("error", f"not connected: {device} {key}={value!r} not sent")
            return None
        try:
            request_id = self.client.send_command(device, key, value)
        except (ConnectionError, OSError) as exc:  # NotConnected is a ConnectionError
            self.queue.post("error", f"{device} {key}={value!r} not sent: {exc}")
            return None
        when = _dt.datetime.now().strftime("%H:%M:%S")
        self.queue.post("message", MessageSummary(when, device, "sent", f"{key} = {value!r}",
                                                  request_id=str(request_id)))
        return request_id

    def request(self, device: str, key: str, value, timeout: float = 10.0):
        """Blocking request: call only from a worker thread (TaskRunner)."""
        if self.client is None:
            raise ConnectionError("not connected to the station")
        return self.client.request(device, key, value, timeout)


class ConnectionPane(ttk.Frame):
    """Status indicator, address and connect/disconnect buttons, and the messages pane."""

    MAX_ROWS = 2000

    def __init__(self, master, queue: GuiQueue, *, on_connect: Callable[[], None],
                 on_disconnect: Callable[[], None], on_edit_address: Callable[[], None]) -> None:
        super().__init__(master)
        self.queue = queue
        bar = ttk.Frame(self)
        bar.pack(fill="x")
        self.indicator = tk.Canvas(bar, width=16, height=16, highlightthickness=0)
        self._dot = self.indicator.create_oval(2, 2, 14, 14, fill=STATE_COLOURS["stopped"], outline="")
        self.indicator.pack(side="left", padx=(4, 2))
        self.state_var = tk.StringVar(value="stopped")
        self.state_label = ttk.Label(bar, textvariable=self.state_var, width=13)
        self.state_label.pack(side="left")
        self.address_var = tk.StringVar(value="")
        ttk.Label(bar, textvariable=self.address_var).pack(side="left", padx=6)
        ttk.Button(bar, text="Address…", command=on_edit_address).pack(side="right", padx=2)
        ttk.Button(bar, text="Disconnect", command=on_disconnect).pack(side="right", padx=2)
        ttk.Button(bar, text="Connect (Ctrl+K)", command=on_connect).pack(side="right", padx=2)
        self.history: list[str] = []

        columns = ("time", "device", "kind", "text")
        frame = ttk.Frame(self)
        frame.pack(fill="both", expand=True)
        self.tree = ttk.Treeview(frame, columns=columns, show="headings", height=5)
        for col, width in zip(columns, (80, 70, 70, 700)):
            self.tree.heading(col, text=col.capitalize())
            self.tree.column(col, width=width, stretch=(col == "text"))
        self.tree.tag_configure("error", foreground="#c02020")
        self.tree.tag_configure("sent", foreground="#2050a0")
        scroll = ttk.Scrollbar(frame, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.pack(side="left", fill="both", expand=True)
        scroll.pack(side="right", fill="y")
        self.messages: list[MessageSummary] = []

        queue.subscribe("state", self.show_state)
        queue.subscribe("message", self.add_message)
        queue.subscribe("error", self.add_error)

    def set_address(self, text: str) -> None:
        self.address_var.set(text)

    def show_state(self, state: str) -> None:
        self.state_var.set(state)
        self.history.append(state)
        self.indicator.itemconfigure(self._dot, fill=STATE_COLOURS.get(state, "#808080"))
        self._insert(MessageSummary(_dt.datetime.now().strftime("%H:%M:%S"), "link", "state", state))

    def add_message(self, summary: MessageSummary) -> None:
        self.messages.append(summary)
        if len(self.messages) > self.MAX_ROWS:
            del self.messages[: self.MAX_ROWS // 2]
        self._insert(summary)

    def add_error(self, text: str) -> None:
        self.add_message(MessageSummary(_dt.datetime.now().strftime("%H:%M:%S"), "gui", "error", str(text)))

    def _insert(self, s: MessageSummary) -> None:
        tag = "error" if s.kind == "error" else ("sent" if s.kind == "sent" else "")
        self.tree.insert("", "end", values=(s.time, s.device, s.kind, s.text), tags=(tag,) if tag else ())
        children = self.tree.get_children()
        if len(children) > self.MAX_ROWS:
            self.tree.delete(*children[: len(children) - self.MAX_ROWS])
        self.tree.yview_moveto(1.0)
