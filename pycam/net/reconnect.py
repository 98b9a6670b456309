"""Staying connected to the master: exponential backoff (with jitter) and :class:`MasterLink`,
the one connect -> handshake -> serve -> back off loop.  The station client
(pycam.client.StationClient) and a device's link (pycam.station.device_link.DeviceLink) are
both MasterLinks; they differ only in their handshake and in what they do with a connection."""
from __future__ import annotations

import logging
import random
import socket
import threading
from typing import Any, Mapping

from pycam.net.auth import AuthError
from pycam.net.connection import Connection, ConnectionClosed, receive_until_closed, tune_socket
from pycam.protocol.errors import FrameError, MessageError
from pycam.protocol.messages import Message, Welcome

#: what a failed handshake raises: the link backs off and tries again
HANDSHAKE_ERRORS = (AuthError, ConnectionClosed, TimeoutError, MessageError, FrameError, OSError)


class Backoff:
    """Delays 0.1, 0.2, 0.4 … up to ``maximum`` seconds, +/-20 % jitter; ``reset()`` after success."""

    def __init__(self, maximum: float = 10.0, initial: float = 0.1, factor: float = 2.0,
                 jitter: float = 0.2, rng: random.Random | None = None) -> None:
        self.maximum = maximum
        self.initial = min(initial, maximum)
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._next = self.initial

    def reset(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return max(0.0, delay * (1 + self._rng.uniform(-self.jitter, self.jitter)))


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """One TCP connection attempt (raises OSError); the returned socket is blocking."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(None)
    tune_socket(sock)
    return sock


def connect_with_backoff(host: str, port: int, stop: threading.Event, backoff: Backoff,
                         on_failure=None) -> socket.socket | None:
    """Try until connected (returns the socket) or ``stop`` is set (returns None)."""
    while not stop.is_set():
        try:
            sock = connect(host, port)
        except OSError as exc:
            if on_failure is not None:
                on_failure(exc)
            stop.wait(backoff.next_delay())
            continue
        return sock
    return None


class MasterLink:
    """A connection to the master, kept up until :meth:`stop_link`.  :meth:`run_link` (the
    caller's thread) connects with backoff, authenticates (:meth:`handshake`), calls
    :meth:`link_connected` and then :meth:`link_message` for every message until the connection
    ends, calls :meth:`link_down`, backs off and starts again.  Whatever the master sends or
    does ends at most one connection, never the loop.

    ``connected`` is set while authenticated and ``_conn`` is that connection (None otherwise);
    ``last_error`` says why the last attempt failed ('' once connected).  Log lines go to the
    logger of the subclass's module and start with ``who``.
    """

    def __init__(self, network: Mapping[str, Any], port: int, secret: str, *, name: str,
                 who: str | None = None) -> None:
        self.host = network["master_host"]
        self.port = port
        self.secret = secret
        self.max_payload = network["max_frame_bytes"]
        self.backoff = Backoff(maximum=network["reconnect_max_s"])
        self.name = name
        self.who = who or name
        self.last_error = ""
        self.connected = threading.Event()
        self.log = logging.getLogger(type(self).__module__)
        self._stop = threading.Event()
        self._conn: Connection | None = None
        self._opening: Connection | None = None   # still in its handshake: stop_link closes it too

    # what a subclass says ----------------------------------------------------------------
    def handshake(self, conn: Connection) -> Welcome:
        """Authenticate on ``conn`` (pycam.net.auth.client_handshake with this side's role)."""
        raise NotImplementedError

    def link_connected(self, welcome: Welcome) -> None:
        """Authenticated (``connected`` is set): anything to do before the messages are read."""

    def link_message(self, msg: Message, conn: Connection) -> None:
        """One message from the master (raising ConnectionClosed ends this connection quietly)."""

    def link_down(self, reconnecting: bool) -> None:
        """The connection is gone (``connected`` is clear); ``reconnecting`` unless stopping."""

    # the loop ------------------------------------------------------------------------------
    def run_link(self) -> None:
        while not self._stop.is_set():
            opened = self._open()
            if opened is None:
                continue
            conn, welcome = opened
            try:
                self.link_connected(welcome)
                for msg in receive_until_closed(conn, self._stop, self.who, self.log):
                    self.link_message(msg, conn)
            except ConnectionClosed:
                pass   # it closed while we were answering: as if it closed while we were reading
            except Exception:   # whatever the master sent or did: end this connection, never the loop
                self.log.exception("%s: connection to the master failed; reconnecting", self.who)
            finally:
                self.connected.clear()
                self._conn = None
                conn.close()
                self.link_down(reconnecting=not self._stop.is_set())
            if not self._stop.is_set():
                self._stop.wait(self.backoff.next_delay())

    def stop_link(self) -> None:
        """Ask :meth:`run_link` to end; closes the connection so its thread notices at once."""
        self._stop.set()
        for conn in (self._conn, self._opening):
            if conn is not None:
                conn.close()

    def _unreachable(self, exc: OSError) -> None:
        self.last_error = f"cannot reach {self.host}:{self.port}: {exc.strerror or exc}"
        self.log.debug("%s: %s", self.who, self.last_error)

    def _open(self) -> tuple[Connection, Welcome] | None:
        """Connect and authenticate: the connection and the master's Welcome, or None after a
        failed handshake (having backed off) or when stopping."""
        sock = connect_with_backoff(self.host, self.port, self._stop, self.backoff, self._unreachable)
        if sock is None:
            return None
        conn = self._opening = Connection(sock, self.max_payload, name=f"{self.who}->master")
        try:
            welcome = self.handshake(conn)
        except HANDSHAKE_ERRORS as exc:
            self.last_error = f"authentication failed: {exc}"
            self.log.warning("%s: %s", self.who, self.last_error)
            conn.close()
            self._stop.wait(self.backoff.next_delay())
            return None
        finally:
            self._opening = None
        self.last_error = ""
        self.backoff.reset()
        self._conn = conn
        self.connected.set()
        return conn, welcome
