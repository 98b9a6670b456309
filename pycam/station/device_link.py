"""A device's link to the master: connect, authenticate, reconnect with backoff forever;
answer commands; forward spooled files and delete them only when the master acknowledges.

Two threads: the link thread (connect + read loop) and the sender thread (spool -> master,
at most ``WINDOW`` files unacknowledged).  Neither polls: they block on the socket, on a
condition variable, or on a backoff timer.  A file the master cannot store because its
storage fails (an Error with key ``storage``: disk full) pauses the whole sender with an
exponential back-off (pycam.station.resend); a file refused for itself (any other key) is
retried alone, its own delay doubling, while the others flow.  Events raised while the master
is out of reach are kept on disk and sent on reconnect (offline_events).
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from pycam.config import Config, require_device_secret
from pycam.net.auth import client_handshake
from pycam.net.connection import Connection, ConnectionClosed
from pycam.net.reconnect import MasterLink
from pycam.protocol import events
from pycam.protocol.messages import Ack, Command, Error, Event, Message, Reply, Welcome, utc_now_iso
from pycam.station.offline_events import OfflineEvents
from pycam.station.resend import ResendBackoff
from pycam.station.spool import Spool, SpoolError

log = logging.getLogger(__name__)

WINDOW = 4               # files sent but not yet acknowledged
ACK_TIMEOUT_S = 60.0     # resend a file whose acknowledgement never came


class DeviceLink(MasterLink):
    """A device's :class:`~pycam.net.reconnect.MasterLink` (see the module docstring)."""

    def __init__(self, config: Config, device: str, spool: Spool,
                 handle_command: Callable[[Command], Message],
                 on_connected: Callable[[], None] | None = None, name: str | None = None) -> None:
        net = config["network"]
        super().__init__(net, net["device_port"], require_device_secret(config), name=name or f"pycam-{device}",
                         who=device)
        self.device = device
        self.spool = spool
        self.handle_command = handle_command
        self.on_connected = on_connected
        self._cond = threading.Condition()
        self._waiting: collections.OrderedDict[str, None] = collections.OrderedDict(
            (n, None) for n in spool.pending())
        self._in_flight: dict[str, float] = {}
        self._retry_at: dict[str, float] = {}      # files refused for themselves -> when to retry
        self._retry_delay: dict[str, float] = {}
        storage = config["storage"]
        self.resend = ResendBackoff(storage["resend_initial_s"], storage["resend_max_s"])
        self.offline = OfflineEvents(spool.directory.parent / f"{device}_events")
        #: called on the link thread with each Event the master sends (clock replies)
        self.on_event: Callable[[Event], None] | None = None
        self._threads = [threading.Thread(target=self.run_link, name=f"{device}-link", daemon=True),
                         threading.Thread(target=self._send_loop, name=f"{device}-sender", daemon=True)]
        self.files_sent = 0
        self.files_confirmed = 0

    # ---------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, drain_timeout: float = 0.0) -> None:
        """Stop; first wait up to ``drain_timeout`` s for every spooled file to be confirmed."""
        if drain_timeout > 0:
            self.wait_drained(drain_timeout)
        self.stop_link()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=5)

    def wait_drained(self, timeout: float) -> bool:
        """Block until nothing is waiting or in flight (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._in_flight or self._retry_at:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._waiting) + len(self._in_flight) + len(self._retry_at)

    # ----------------------------------------------------------------------------- outbound
    def file_spooled(self, filename: str) -> None:
        """A new file is in the spool: send it when connected."""
        with self._cond:
            self._waiting[filename] = None
            self._cond.notify_all()

    def send(self, message: Message) -> bool:
        """Send a message now if connected (events, unsolicited replies); False otherwise."""
        conn = self._conn
        if conn is None or not self.connected.is_set():
            return False
        try:
            conn.send(message)
            return True
        except ConnectionClosed:
            return False

    def send_event(self, name: str, **fields) -> bool:
        """Send a declared event (pycam.protocol.events checks the fields); kept on disk
        while offline and sent on reconnect.  True if sent now."""
        return self.send_typed(events.build(name, **fields))

    def send_typed(self, event: events.StationEvent, keep_offline: bool = True) -> bool:
        message = event.as_event(self.device, utc_now_iso())
        if self.send(message):
            return True
        if keep_offline:
            self.offline.add(message)
        return False

    # --------------------------------------------------------------------------- link loop
    def handshake(self, conn: Connection) -> Welcome:
        return client_handshake(conn, self.secret, role="device", name=self.name, device=self.device)

    def link_connected(self, welcome: Welcome) -> None:
        log.info("%s: connected to master %s:%d", self.device, self.host, self.port)
        with self._cond:
            self._cond.notify_all()
        dropped, self.offline.dropped = self.offline.dropped, 0
        sent = self.offline.drain(self.send)
        if sent or dropped:
            log.info("%s: sent %d events raised while offline (%d dropped)", self.device, sent, dropped)
        if dropped:
            self.send_typed(events.Status("warning", f"{dropped} events raised while offline were dropped "
                                                     f"(at most {self.offline.limit} are kept)"))
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.exception("%s: on_connected failed", self.device)

    def link_down(self, reconnecting: bool) -> None:
        self._requeue_in_flight()
        if reconnecting:
            log.warning("%s: lost the master; reconnecting", self.device)

    def link_message(self, msg: Message, conn: Connection) -> None:
        if isinstance(msg, Command):
            try:
                answer = self.handle_command(msg)
            except Exception as exc:  # a handler bug must not break the link
                log.exception("%s: command %s failed", self.device, msg.key)
                answer = Error(key=msg.key, reason=f"internal error: {exc}", request_id=msg.request_id,
                               device=self.device, session=msg.session)
            conn.send(answer)   # ConnectionClosed ends this connection
        elif isinstance(msg, Ack):
            self._acked(msg.filename)
        elif isinstance(msg, Event):
            self._master_event(msg)
        elif isinstance(msg, Error):
            if msg.filename:
                self._refused(msg.filename, f"{msg.key}: {msg.reason}", link_wide=msg.key == "storage")
            else:
                log.warning("%s: master reports %s: %s", self.device, msg.key, msg.reason)
        elif not isinstance(msg, Reply):
            log.debug("%s: ignoring %s from master", self.device, msg.kind)

    def _master_event(self, msg: Event) -> None:
        if msg.name == events.Storage.name and msg.fields.get("state") == "ok":
            self.resend.stored()   # the master stores again: no need to wait for the next probe
            with self._cond:
                self._cond.notify_all()
        if self.on_event is not None:
            try:
                self.on_event(msg)
            except Exception:
                log.exception("%s: handling event %s failed", self.device, msg.name)

    # ------------------------------------------------------------------------- send loop
    def _acked(self, filename: str) -> None:
        self.spool.confirm(filename)
        self.resend.stored()
        with self._cond:
            self._in_flight.pop(filename, None)
            self._retry_at.pop(filename, None)
            self._retry_delay.pop(filename, None)
            self.files_confirmed += 1
            self._cond.notify_all()

    def _refused(self, filename: str, reason: str, link_wide: bool) -> None:
        if link_wide:   # the master's storage fails: every file would be refused
            first = self.resend.wait_left() == 0
            pause = self.resend.refused()
            if first:   # one line per pause, not one per file
                log.warning("%s: master cannot store %s (%s); keeping it, sending again in %.1f s", self.device,
                            filename, reason, pause)
            with self._cond:
                if self._in_flight.pop(filename, None) is not None:
                    self._waiting[filename] = None
                    self._waiting.move_to_end(filename, last=False)
                self._cond.notify_all()
            return
        with self._cond:   # this file only: retried alone, later and later
            delay = self._retry_delay.get(filename, self.resend.initial_s / self.resend.factor) * self.resend.factor
            delay = min(delay, self.resend.maximum_s)
            self._retry_delay[filename] = delay
            if self._in_flight.pop(filename, None) is not None:
                self._retry_at[filename] = time.monotonic() + delay
            self._cond.notify_all()
        log.warning("%s: master refused %s (%s); keeping it, retry in %.1f s", self.device, filename, reason, delay)

    def _requeue_in_flight(self) -> None:
        with self._cond:
            names = sorted(set(self._in_flight) | set(self._retry_at) | set(self._waiting))
            self._in_flight.clear()
            self._retry_at.clear()
            self._waiting = collections.OrderedDict((n, None) for n in names)
            self._cond.notify_all()

    def _next_to_send(self) -> str | None:
        """With the condition held: the next file name, or None after waiting a while."""
        now = time.monotonic()
        for name, due in list(self._retry_at.items()):
            if due <= now:
                del self._retry_at[name]
                self._waiting[name] = None
        for name, sent in list(self._in_flight.items()):
            if now - sent > ACK_TIMEOUT_S:
                del self._in_flight[name]
                self._waiting[name] = None
        pause = self.resend.wait_left()
        window = 1 if self.resend.probing else WINDOW
        if self.connected.is_set() and self._waiting and len(self._in_flight) < window and pause == 0:
            name, _ = self._waiting.popitem(last=False)
            self._in_flight[name] = now
            return name
        timeouts = [pause] if pause > 0 and self._waiting else []
        timeouts += [due - now for due in self._retry_at.values()]
        timeouts += [ACK_TIMEOUT_S - (now - sent) for sent in self._in_flight.values()]
        self._cond.wait(max(0.01, min(timeouts)) if timeouts else None)
        return None

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                name = self._next_to_send()
            if name is None:
                continue
            if name not in self.spool:
                with self._cond:   # confirmed meanwhile (duplicate ack) or removed by hand
                    self._in_flight.pop(name, None)
                    self._cond.notify_all()
                continue
            try:
                data = self.spool.load(name)
            except SpoolError as exc:
                log.error("%s: cannot read spooled file, leaving it for inspection: %s", self.device, exc)
                with self._cond:
                    self._in_flight.pop(name, None)
                    self._cond.notify_all()
                continue
            conn = self._conn
            try:
                if conn is None:
                    raise ConnectionClosed("not connected")
                conn.send(data)
                self.files_sent += 1
            except ConnectionClosed:
                with self._cond:
                    if self._in_flight.pop(name, None) is not None:
                        self._waiting[name] = None
                        self._waiting.move_to_end(name, last=False)
                    self._cond.notify_all()
                self._stop.wait(0.05)   # the link thread is noticing the loss and will reconnect
