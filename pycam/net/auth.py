"""The client side of the handshake over a blocking :class:`Connection` (devices, GUI, scripts).

The rules themselves (challenge, hello, welcome, per-role secrets, the session MAC on every
later frame) are the socket-free state machine in :mod:`pycam.protocol.session`; the master
runs its side in :mod:`pycam.net.gatekeeper`.  This module only moves bytes and keeps an
absolute deadline (it does not restart when a byte arrives).
"""
from __future__ import annotations

import time

from pycam.net.connection import Connection
from pycam.protocol.messages import Hello, Welcome
from pycam.protocol.session import Authenticated, ClientSession, Established, Refused, ServerSession

HANDSHAKE_TIMEOUT_S = 10.0


class AuthError(ConnectionError):
    """Authentication failed (wrong secret, wrong role, protocol mismatch, no hello)."""


def client_handshake(conn: Connection, secret: str, *, role: str, name: str, device: str = "",
                     subscribe: tuple[str, ...] = (), timeout: float = HANDSHAKE_TIMEOUT_S) -> Welcome:
    """Authenticate to the master on ``conn`` within ``timeout`` seconds in all; returns the
    Welcome (``conn`` now signs and checks every frame) or raises AuthError, TimeoutError,
    ConnectionClosed or a ProtocolError."""
    deadline = time.monotonic() + timeout
    session = ClientSession(secret, role=role, name=name, device=device, subscribe=subscribe,
                            max_payload_bytes=conn.max_payload_bytes)
    conn.use_session(session)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete handshake within {timeout:g} s")
        msg = conn.receive(timeout=left)
        for event in session.handle_message(msg):
            if isinstance(event, Refused):
                conn.close()
                raise AuthError(event.reason)
            if isinstance(event, Established):
                return event.welcome
        out = session.data_to_send()
        if out:
            conn.send_raw(out)


def server_handshake(conn: Connection, session: ServerSession, *, devices: tuple[str, ...] = (),
                     timeout: float = HANDSHAKE_TIMEOUT_S) -> Hello:
    """The master's side over a blocking connection, for tools and tests (the master itself runs
    it in :mod:`pycam.net.gatekeeper`): admits any authenticated peer; returns its Hello or
    raises AuthError, TimeoutError, ConnectionClosed."""
    deadline = time.monotonic() + timeout
    conn.use_session(session)
    conn.send_raw(session.data_to_send())
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete handshake within {timeout:g} s")
        for event in session.handle_message(conn.receive(timeout=left)):
            if isinstance(event, Refused):
                try:
                    conn.send_raw(session.data_to_send())
                finally:
                    conn.close()
                raise AuthError(event.reason)
            if isinstance(event, Authenticated):
                session.welcome(devices)
                conn.send_raw(session.data_to_send())
                return event.hello
