"""A blocking, thread-safe message connection over one TCP socket.

``send`` may be called from any thread (a lock keeps frames whole); ``receive`` from one
reader thread.  ``close`` from any thread wakes a blocked ``receive`` (it returns
:class:`ConnectionClosed`).  With a session (:mod:`pycam.protocol.session`) the connection
decodes through the session's decoder and every frame it sends is sealed with the session MAC.  Payloads are received straight into their final buffer
(``recv_into``) and sent without concatenation (``sendmsg``).
"""
from __future__ import annotations

import select
import socket
import threading
import time
from typing import Iterator

from pycam.protocol.decoder import MessageDecoder
from pycam.protocol.errors import FrameError, MessageError
from pycam.protocol.frames import DEFAULT_MAX_PAYLOAD
from pycam.protocol.messages import Message, encode


class ConnectionClosed(ConnectionError):
    """The peer closed the connection (or it broke); ``mid_frame`` if inside a frame."""

    def __init__(self, message: str = "connection closed", mid_frame: bool = False) -> None:
        super().__init__(message)
        self.mid_frame = mid_frame


SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


def tune_socket(sock: socket.socket) -> None:
    """Low latency for small messages, keepalive so dead peers are noticed, and socket
    buffers big enough that a frame moves in a few system calls."""
    for level, option, value in ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
                                 (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
                                 (socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES),
                                 (socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)):
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            pass


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    """True when ``sock`` has data (or EOF) within ``timeout`` seconds.  Uses poll where the
    platform has it: ``select`` cannot watch a descriptor numbered 1024 or above, which a busy
    station (hundreds of peers after ``raise_fd_limit``) does hand out."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(max(0, int(timeout * 1000 + 0.999))))
    ready, _, _ = select.select([sock], [], [], timeout)   # pragma: no cover - Windows: no fd-number limit
    return bool(ready)


class Connection:
    def __init__(self, sock: socket.socket, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD, name: str = "",
                 session=None) -> None:
        sock.setblocking(True)
        tune_socket(sock)
        self.sock = sock
        self.name = name
        self.max_payload_bytes = max_payload_bytes
        self.session = None
        self.decoder = MessageDecoder(max_payload_bytes)
        if session is not None:
            self.use_session(session)
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        try:
            address = sock.getpeername()
            self.peer = "%s:%s" % address[:2] if isinstance(address, tuple) else str(address or "local")
        except OSError:
            self.peer = "?"

    def use_session(self, session) -> None:
        """Decode through ``session``'s decoder and seal every frame sent from now on with it."""
        self.session = session
        self.decoder = session.decoder

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, message: Message) -> None:
        """Send one message; raises ConnectionClosed if the connection is gone."""
        session = self.session   # an established session's MAC covers the payload: no checksum pass
        self.send_buffers(encode(message, checksum=session is None or not session.established))

    def send_raw(self, data: bytes) -> None:
        """Send bytes a session produced itself (its handshake frames), never sealed again."""
        self.send_buffers([data], seal=False)

    def send_buffers(self, buffers, seal: bool = True) -> None:
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionClosed("connection closed")
            if seal and self.session is not None:   # in sending order: the MAC's sequence number advances
                buffers = self.session.seal(buffers)
            views = [memoryview(b).cast("B") for b in buffers]
            try:
                while views:
                    sent = self.sock.sendmsg(views[:64])
                    while sent:
                        if sent >= len(views[0]):
                            sent -= len(views[0])
                            views.pop(0)
                        else:
                            views[0] = views[0][sent:]
                            sent = 0
            except OSError as exc:
                self.close()
                raise ConnectionClosed(f"send failed: {exc.strerror or exc}") from None

    def receive(self, timeout: float | None = None) -> Message:
        """The next message.  Raises ConnectionClosed, TimeoutError (only when ``timeout`` is
        given and nothing complete arrived), or a ProtocolError from the decoder."""
        dec = self.decoder
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            msg = dec.next_message()
            if msg is not None:
                return msg
            if self._closed.is_set():
                raise ConnectionClosed("connection closed", dec.in_frame)
            if deadline is not None:   # absolute: a peer dripping bytes does not extend it
                try:
                    ready = wait_readable(self.sock, max(0.0, deadline - time.monotonic()))
                except (OSError, ValueError):
                    raise ConnectionClosed("connection closed", dec.in_frame) from None
                if not ready:
                    raise TimeoutError(f"no message within {timeout:g} s")
            try:
                n = self.sock.recv_into(dec.recv_buffer())
            except OSError as exc:
                self.close()
                raise ConnectionClosed(f"receive failed: {exc.strerror or exc}", dec.in_frame) from None
            if n == 0:
                self.close()
                raise ConnectionClosed("peer closed the connection", dec.in_frame)
            dec.commit(n)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"<Connection {self.name or self.peer}{' closed' if self.closed else ''}>"


def receive_until_closed(conn: Connection, stop: threading.Event, who: str, log) -> Iterator[Message]:
    """Yield messages from ``conn`` until it closes, its stream turns corrupt, or ``stop`` is
    set.  A single malformed message is logged (naming ``who`` and the problem) and skipped;
    a corrupt stream is logged and ends the iteration (the caller reconnects)."""
    while not stop.is_set():
        try:
            msg = conn.receive()
        except ConnectionClosed:
            return
        except FrameError as exc:
            log.error("%s: corrupt stream from the master (%s); reconnecting", who, exc)
            return
        except MessageError as exc:
            log.error("%s: bad message from the master: %s", who, exc)
            continue
        yield msg
