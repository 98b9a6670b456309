"""StationClient: the authenticated client the GUI and ``pycam send`` use.

::

    client = StationClient(config, name="gui", on_message=print, on_state=print, subscribe=("image",))
    client.start()                       # background thread: connect, authenticate, reconnect forever
    client.wait_connected(10)
    reply = client.request("CM1", "SSA", 1000)     # blocking; raises CommandFailed on an error reply
    rid = client.send_command("all", "STC", 1)      # non-blocking; replies arrive in on_message
    client.stop()

``on_message`` is called from the client's thread with every message the master forwards
(:class:`~pycam.protocol.messages.Reply`, ``Error``, ``Event``, ``Data`` — see
pycam.protocol.messages): replies and errors of every client, events of every device, and
data frames of the subscribed types.  Keep it quick (hand work to your own thread/queue), and
never call the blocking ``request()`` from inside it (its answer could only be read by the
very thread that is waiting).
"""
from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Callable, Iterable

from pycam.config import Config
from pycam.net.auth import client_handshake
from pycam.net.connection import Connection, ConnectionClosed
from pycam.net.reconnect import MasterLink
from pycam.protocol import commands as vocab
from pycam.protocol.messages import Command, Error, Message, Welcome
from pycam.protocol.session import RequestTracker

log = logging.getLogger(__name__)


class NotConnected(ConnectionError):
    """The client is not connected to the master right now."""


class CommandFailed(RuntimeError):
    """A command was refused; ``error`` is the Error message (``key``, ``reason``, ``device``)."""

    def __init__(self, error: Error) -> None:
        where = f" ({error.device})" if error.device else ""
        super().__init__(f"{error.key}{where}: {error.reason}")
        self.error = error


class StationClient(MasterLink):
    """A client's :class:`~pycam.net.reconnect.MasterLink`: commands out, replies, events and
    data in (see the module docstring)."""

    def __init__(self, config: Config, *, name: str = "client",
                 on_message: Callable[[object], None] | None = None,
                 on_state: Callable[[str], None] | None = None,
                 subscribe: Iterable[str] = ()) -> None:
        net = config["network"]
        super().__init__(net, net["client_port"], net["secret"], name=name)
        self.on_message = on_message
        self.on_state = on_state
        self.subscribe = tuple(subscribe)
        self.session = ""
        self._state = "down"
        self._ids = itertools.count(1)
        self._requests = RequestTracker()   # request/reply matching (pure, under self._lock)
        self._waiting: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"client-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_link()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        self._set_state("down")

    def __enter__(self) -> "StationClient":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def state(self) -> str:
        """``connecting`` | ``connected`` | ``reconnecting`` | ``down``."""
        return self._state

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self.connected.wait(timeout)

    def _set_state(self, state: str) -> None:
        if state == self._state:
            return
        self._state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                log.exception("on_state callback failed")

    # ------------------------------------------------------------------------------ commands
    def send_command(self, device: str, key: str, value: Any) -> int:
        """Send a command without waiting; returns its request id.  Raises NotConnected."""
        return self._send(device, key, value, None)

    def _send(self, device: str, key: str, value: Any, done: threading.Event | None) -> int:
        conn = self._conn
        if conn is None or not self.connected.is_set():
            raise NotConnected(f"not connected to the master at {self.host}:{self.port} ({self.state})"
                               + (f": {self.last_error}" if self.last_error else ""))
        rid = next(self._ids)
        if done is not None:
            with self._lock:
                self._requests.add(rid)
                self._waiting[rid] = done
        try:
            conn.send(Command(request_id=rid, device=device, key=key, value=value))
        except ConnectionClosed as exc:
            with self._lock:
                self._requests.pop(rid)
                self._waiting.pop(rid, None)
            raise NotConnected(str(exc)) from None
        return rid

    def request(self, device: str, key: str, value: Any, timeout: float = 5.0):
        """Send and wait for the answer.  Returns the Reply, or raises CommandFailed on an
        error reply, TimeoutError, or NotConnected.  For ``device="all"`` it returns the list of
        answers (Reply or Error) of every device the master routed it to, and raises
        CommandFailed only when the master refused the command outright."""
        done = threading.Event()
        rid = self._send(device, key, value, done)
        try:
            if not done.wait(timeout):
                raise TimeoutError(f"no reply to {key}={value!r} for {device} within {timeout:g} s")
        finally:
            with self._lock:
                pending = self._requests.pop(rid)
                self._waiting.pop(rid, None)
        if device == vocab.ALL and pending.targets is not None:
            return list(pending.answers)
        errors = [a for a in pending.answers if isinstance(a, Error)]
        if errors:
            raise CommandFailed(errors[0])
        return pending.answers[0]

    # ---------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        self._set_state("connecting")
        self.run_link()
        self._set_state("down")

    def handshake(self, conn: Connection) -> Welcome:
        return client_handshake(conn, self.secret, role="client", name=self.name, subscribe=self.subscribe)

    def link_connected(self, welcome: Welcome) -> None:
        self.session = welcome.session
        with self._lock:
            self._requests.session = welcome.session
        self._set_state("connected")

    def link_message(self, msg: Message, conn: Connection) -> None:
        self._match(msg)
        if self.on_message is not None:
            try:
                self.on_message(msg)
            except Exception:
                log.exception("on_message callback failed")

    def link_down(self, reconnecting: bool) -> None:
        self._fail_pending("connection to the master lost")
        if reconnecting:
            self._set_state("reconnecting")

    def _match(self, msg: Message) -> None:
        with self._lock:
            rid = self._requests.on_message(msg)
            done = self._waiting.get(rid) if rid is not None else None
        if done is not None:
            done.set()

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            done = [self._waiting[rid] for rid in self._requests.fail_all(reason) if rid in self._waiting]
        for event in done:
            event.set()
