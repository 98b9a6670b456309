"""HMAC-SHA256 challenge-response authentication with the shared ``[network] secret``.

1. The master sends :class:`Challenge` (32 random bytes, hex) as the first frame.
2. The peer answers :class:`Hello` with its own nonce and
   ``HMAC(secret, "pycam-hello|<server nonce>|<peer nonce>|<role>|<name>|<device>")``.
3. The master checks it (constant-time) and answers :class:`Welcome` with a session id and
   ``HMAC(secret, "pycam-welcome|<peer nonce>|<server nonce>|<session>")`` so the peer knows
   it reached a master holding the same secret; otherwise an :class:`Error` with key
   ``auth`` and the connection closes.

Anything other than ``Hello`` before authentication is refused with an error naming the key
(for a command, its three-letter key) and the reason ``not authenticated``.  The secret never
crosses the wire; nonces make replays useless.
"""
from __future__ import annotations

import hmac
import secrets
from typing import Callable

from pycam.net.connection import Connection
from pycam.protocol.frames import PROTOCOL_VERSION
from pycam.protocol.messages import Challenge, Command, Error, Hello, Message, Welcome

HANDSHAKE_TIMEOUT_S = 10.0
#: frame limits before authentication: a hello is small and carries no payload
PRE_AUTH_MAX_HEADER = 16 * 1024
PRE_AUTH_MAX_PAYLOAD = 0


class AuthError(ConnectionError):
    """Authentication failed (wrong secret, wrong role, protocol mismatch, no hello)."""


def _mac(secret: str, *parts: str) -> str:
    return hmac.new(secret.encode("utf-8"), "|".join(parts).encode("utf-8"), "sha256").hexdigest()


def hello_mac(secret: str, server_nonce: str, peer_nonce: str, role: str, name: str, device: str) -> str:
    return _mac(secret, "pycam-hello", server_nonce, peer_nonce, role, name, device)


def welcome_mac(secret: str, peer_nonce: str, server_nonce: str, session: str) -> str:
    return _mac(secret, "pycam-welcome", peer_nonce, server_nonce, session)


def new_nonce() -> str:
    return secrets.token_hex(32)


def _refuse(conn: Connection, msg: Message | None, reason: str) -> None:
    key = msg.key if isinstance(msg, Command) else "auth"
    rid = msg.request_id if isinstance(msg, Command) else None
    try:
        conn.send(Error(key=key, reason=reason, request_id=rid))
    except ConnectionError:
        pass
    conn.close()
    raise AuthError(f"{key}: {reason}")


def server_handshake(conn: Connection, secret: str, session: str, *, allowed_roles: tuple[str, ...],
                     devices: tuple[str, ...] = (), timeout: float = HANDSHAKE_TIMEOUT_S,
                     before_welcome: Callable[[Hello], str | None] | None = None) -> Hello:
    """Authenticate the peer on ``conn``; returns its Hello or raises AuthError (closed).

    ``before_welcome(hello)`` runs once the peer is authenticated and before it is told so
    (register it there, so nothing sent to it afterwards can be missed); a returned string
    refuses the peer with that reason.  Until authenticated, frames are limited to a 16 KiB
    header and no payload; the caller's limits apply afterwards."""
    limits = (conn.decoder.frames.max_payload_bytes, conn.decoder.frames.max_header_bytes)
    conn.decoder.set_limits(PRE_AUTH_MAX_PAYLOAD, PRE_AUTH_MAX_HEADER)
    nonce = new_nonce()
    conn.send(Challenge(nonce=nonce, version=PROTOCOL_VERSION))
    msg = conn.receive(timeout=timeout)
    if not isinstance(msg, Hello):
        _refuse(conn, msg, "not authenticated: answer the challenge with a hello first")
    if msg.version != PROTOCOL_VERSION:
        _refuse(conn, msg, f"protocol version {msg.version} not supported (master speaks {PROTOCOL_VERSION})")
    expected = hello_mac(secret, nonce, msg.nonce, msg.role, msg.name, msg.device)
    if not hmac.compare_digest(expected, msg.mac):
        _refuse(conn, msg, "authentication failed: wrong shared secret")
    if msg.role not in allowed_roles:
        _refuse(conn, msg, f"role {msg.role!r} not accepted on this port (expected {' or '.join(allowed_roles)})")
    if before_welcome is not None:
        problem = before_welcome(msg)
        if problem:
            _refuse(conn, msg, problem)
    conn.decoder.set_limits(*limits)
    conn.send(Welcome(session=session, mac=welcome_mac(secret, msg.nonce, nonce, session), devices=devices))
    return msg


def client_handshake(conn: Connection, secret: str, *, role: str, name: str, device: str = "",
                     subscribe: tuple[str, ...] = (), timeout: float = HANDSHAKE_TIMEOUT_S) -> Welcome:
    """Authenticate to the master on ``conn``; returns the Welcome or raises AuthError."""
    challenge = conn.receive(timeout=timeout)
    if isinstance(challenge, Error):
        raise AuthError(f"{challenge.key}: {challenge.reason}")
    if not isinstance(challenge, Challenge):
        raise AuthError(f"expected a challenge from the master, got {challenge.kind}")
    if challenge.version != PROTOCOL_VERSION:
        raise AuthError(f"master speaks protocol version {challenge.version}, we speak {PROTOCOL_VERSION}")
    nonce = new_nonce()
    conn.send(Hello(role=role, name=name, nonce=nonce, device=device, version=PROTOCOL_VERSION,
                    subscribe=tuple(subscribe),
                    mac=hello_mac(secret, challenge.nonce, nonce, role, name, device)))
    reply = conn.receive(timeout=timeout)
    if isinstance(reply, Error):
        raise AuthError(f"{reply.key}: {reply.reason}")
    if not isinstance(reply, Welcome):
        raise AuthError(f"expected welcome, got {reply.kind}")
    if not hmac.compare_digest(reply.mac, welcome_mac(secret, nonce, challenge.nonce, reply.session)):
        raise AuthError("the master failed to prove it holds the shared secret")
    return reply
