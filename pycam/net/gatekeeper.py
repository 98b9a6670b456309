"""The master's door: accepts connections and runs every handshake in ONE selector thread,
so unauthenticated peers cost no thread and cannot starve anyone.

Policy (:class:`ConnectionPolicy`, from ``[network]``):

* an **absolute handshake deadline** per connection (not restarted by arriving bytes);
* at most ``max_pending`` unauthenticated connections in all and ``max_pending_per_host`` per
  address; a new connection beyond a cap evicts the *oldest* pending one of the address with
  the most pending connections (a legitimate client completes its handshake in one round trip,
  a flood's connections are the old ones);
* bounded buffers before authentication: 16 KiB of header, no payload
  (:data:`pycam.protocol.session.PRE_AUTH_MAX_HEADER`);
* when ``accept()`` fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listeners
  pause with exponential back-off instead of spinning, and repeated failures are logged at most
  once per ``log_interval_s`` (:class:`~pycam.net.ratelog.RateLimitedLog`).

An authenticated peer is handed over as a blocking :class:`~pycam.net.connection.Connection`
that already signs and checks frames with the session key: ``admit(conn, hello, tag)`` runs
before the Welcome (return a refusal reason, or a handle) and ``established(handle)`` after it.
"""
from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import selectors
import socket
import threading
import time
from typing import Any, Callable, Mapping

from pycam.net.connection import Connection, ConnectionClosed
from pycam.net.ratelog import RateLimitedLog
from pycam.protocol.messages import Hello
from pycam.protocol.session import Authenticated, Refused, ServerSession

log = logging.getLogger(__name__)

_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RECV_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class ConnectionPolicy:
    handshake_timeout_s: float = 5.0
    max_pending: int = 64
    max_pending_per_host: int = 16
    accept_backoff_min_s: float = 0.05
    accept_backoff_max_s: float = 2.0
    log_interval_s: float = 10.0
    accepts_per_wakeup: int = 64

    @classmethod
    def from_network(cls, net: Mapping[str, Any]) -> "ConnectionPolicy":
        return cls(handshake_timeout_s=net["handshake_timeout_s"], max_pending=net["max_pending_handshakes"],
                   max_pending_per_host=net["max_pending_per_host"])


class _Pending:
    __slots__ = ("sock", "tag", "host", "session", "deadline")

    def __init__(self, sock, tag, host, session, deadline) -> None:
        self.sock, self.tag, self.host, self.session, self.deadline = sock, tag, host, session, deadline


class Gatekeeper:
    def __init__(self, listeners: Mapping[str, socket.socket], *, new_session: Callable[[str], ServerSession],
                 admit: Callable[[Connection, Hello, str], Any], established: Callable[[Any], None],
                 welcome_devices: Callable[[], tuple] = tuple, max_payload_bytes: int, policy: ConnectionPolicy,
                 name: str = "gatekeeper") -> None:
        self.listeners = dict(listeners)
        self.new_session = new_session
        self.admit = admit
        self.established = established
        self.welcome_devices = welcome_devices
        self.max_payload_bytes = max_payload_bytes
        self.policy = policy
        self.ratelog = RateLimitedLog(log, policy.log_interval_s)
        self._pending: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self._per_host: collections.Counter[str] = collections.Counter()
        self._backoff = policy.accept_backoff_min_s
        self._paused_until: float | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        #: counters for tests and telemetry
        self.stats = collections.Counter()

    # -------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        for sock in self.listeners.values():
            sock.setblocking(False)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        for sock in self.listeners.values():
            _close(sock)
        for p in list(self._pending.values()):
            _close(p.sock)
        self._pending.clear()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------------------- loop
    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        self._sel = sel
        for tag, sock in self.listeners.items():
            sel.register(sock, selectors.EVENT_READ, ("listen", tag))
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stopping.is_set():
                for key, _ in sel.select(self._timeout()):
                    if key.data is None:
                        return
                    kind, what = key.data
                    try:
                        if kind == "listen":
                            self._accept(key.fileobj, what)
                        elif what.sock.fileno() in self._pending:
                            self._readable(what)
                    except Exception:  # a bug with one connection must not close the door
                        log.exception("gatekeeper: error handling a connection")
                self._expire()
                self._resume()
        finally:
            sel.close()

    def _timeout(self) -> float | None:
        now = time.monotonic()
        times = []
        if self._pending:
            times.append(next(iter(self._pending.values())).deadline - now)
        if self._paused_until is not None:
            times.append(self._paused_until - now)
        return max(0.0, min(times)) if times else None

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            p = next(iter(self._pending.values()))
            if p.deadline > now:
                return
            self.stats["deadline"] += 1
            self.ratelog.log("deadline", logging.INFO, "%s connection from %s: no complete handshake within "
                             "%.3g s; closed", p.tag, p.host, self.policy.handshake_timeout_s)
            self._drop(p)

    # ----------------------------------------------------------------------------- accept
    def _pause(self) -> None:
        for sock in self.listeners.values():
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass
        self._paused_until = time.monotonic() + self._backoff
        self._backoff = min(self.policy.accept_backoff_max_s, self._backoff * 2)

    def _resume(self) -> None:
        if self._paused_until is None or time.monotonic() < self._paused_until:
            return
        self._paused_until = None
        for tag, sock in self.listeners.items():
            self._sel.register(sock, selectors.EVENT_READ, ("listen", tag))

    def _accept(self, listener: socket.socket, tag: str) -> None:
        for _ in range(self.policy.accepts_per_wakeup):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.stats["accept_failed"] += 1
                if exc.errno in _RESOURCE_ERRNOS:
                    delay = self._backoff
                    self._pause()
                    self.ratelog.log("accept", logging.WARNING, "accept failed on the %s port: %s; not accepting "
                                     "for %.2g s", tag, exc.strerror or exc, delay)
                    return
                self.ratelog.log("accept-other", logging.INFO, "accept failed on the %s port: %s", tag, exc)
                continue
            self._backoff = self.policy.accept_backoff_min_s
            self.stats["accepted"] += 1
            self._open(sock, addr, tag)

    def _open(self, sock: socket.socket, addr, tag: str) -> None:
        host = addr[0] if isinstance(addr, tuple) and addr else "local"
        if self._per_host[host] >= self.policy.max_pending_per_host:
            self._evict(host)
        elif len(self._pending) >= self.policy.max_pending:
            self._evict(self._per_host.most_common(1)[0][0])
        session = self.new_session(tag)
        try:
            sock.setblocking(False)
            sock.send(session.data_to_send())   # the challenge: ~150 bytes into an empty buffer
        except OSError:
            _close(sock)
            return
        p = _Pending(sock, tag, host, session, time.monotonic() + self.policy.handshake_timeout_s)
        self._pending[sock.fileno()] = p
        self._per_host[host] += 1
        self._sel.register(sock, selectors.EVENT_READ, ("peer", p))

    def _evict(self, host: str) -> None:
        for p in self._pending.values():
            if p.host == host:
                self.stats["evicted"] += 1
                self.ratelog.log("evict", logging.INFO, "too many unauthenticated connections (from %s): closing "
                                 "the oldest", host)
                self._drop(p)
                return

    def _forget(self, p: _Pending) -> None:
        if self._pending.pop(p.sock.fileno(), None) is None:
            return
        self._per_host[p.host] -= 1
        if self._per_host[p.host] <= 0:
            del self._per_host[p.host]
        try:
            self._sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass

    def _drop(self, p: _Pending) -> None:
        self._forget(p)
        _close(p.sock)

    # -------------------------------------------------------------------------- handshake
    def _readable(self, p: _Pending) -> None:
        try:
            data = p.sock.recv(_RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(p)
            return
        for event in p.session.receive_data(data):
            if isinstance(event, Refused):
                self.stats["refused"] += 1
                self.ratelog.log("refused", logging.INFO, "%s connection from %s refused: %s", p.tag, p.host,
                                 event.reason)
                try:
                    p.sock.send(p.session.data_to_send())
                except OSError:
                    pass
                self._drop(p)
                return
            if isinstance(event, Authenticated):
                self._hand_over(p, event.hello)
                return

    def _hand_over(self, p: _Pending, hello: Hello) -> None:
        self._forget(p)
        conn = Connection(p.sock, self.max_payload_bytes, name=p.tag, session=p.session)
        try:
            handle = self.admit(conn, hello, p.tag)
        except Exception:
            log.exception("%s connection from %s: admission failed", p.tag, p.host)
            handle = "internal error admitting the connection"
        if isinstance(handle, str):
            log.info("%s connection from %s refused: %s", p.tag, p.host, handle)
            p.session.refuse(handle)
            try:
                conn.send_raw(p.session.data_to_send())
            except ConnectionClosed:
                pass
            conn.close()
            return
        p.session.welcome(self.welcome_devices())
        try:
            conn.send_raw(p.session.data_to_send())
        except ConnectionClosed:
            pass   # the reader notices and the owner cleans up as for any lost connection
        self.stats["authenticated"] += 1
        self.established(handle)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
