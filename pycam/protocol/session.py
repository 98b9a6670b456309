"""The session rules of one connection as a socket-free state machine (bytes in, events out),
and the client's request/reply matching (:class:`RequestTracker`).

Like h11 for HTTP, :class:`ServerSession` (the master's side) and :class:`ClientSession` (a
device's or a client's side) know nothing about sockets or time: feed them the bytes that
arrived (:meth:`receive_data`) or the messages already decoded (:meth:`handle_message`), act on
the events they return, and send what :meth:`data_to_send` gives.  The caller owns the clock
(the handshake deadline) and the socket.

Handshake (HMAC-SHA256 with the secret of the peer's *role*: ``[network] device_secret`` for
cameras and the spectrometer, ``[network] secret`` for the GUI and scripts, so one role's
credential never opens the other's port)::

    master -> peer   Challenge(nonce_s)
    peer -> master   Hello(role, name, device, nonce_p,
                           mac = HMAC(secret[role], "pycam-hello|nonce_s|nonce_p|role|name|device"))
    master -> peer   Welcome(session, mac = HMAC(secret[role], "pycam-welcome|nonce_p|nonce_s|session"))
                     or Error(key "auth") and the connection closes

Session key: ``K = HMAC(secret[role], "pycam-session|nonce_s|nonce_p|role|name|device")``; one
key per direction and algorithm is derived from it.  Every frame after the Welcome, in both
directions, carries a 16-byte MAC trailer over the whole frame (prefix, header, payload) bound
to the frame's sequence number in that direction: ``HMAC-SHA256(K_dir, seq || prefix || header
|| GMAC(K_dir', nonce=seq||i, payload block i) for each 128 KiB block)`` truncated to 16
bytes (GMAC: AES-128-GCM's authenticator, ~15 GB/s, from the ``cryptography`` package) or, flagged differently,
``HMAC-SHA256(K_dir, seq || whole frame)`` (stdlib only, ~30x slower on payloads).  A frame that was altered, injected,
replayed, reordered or dropped fails the check and closes the connection; a frame without a
MAC after the handshake closes it too.  Nothing is encrypted: see the threat model in README.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets as _secrets
from typing import Iterable, Mapping

from pycam.protocol.decoder import MessageDecoder
from pycam.protocol.errors import FrameError, MessageError, ProtocolError
from pycam.protocol.frames import (DEFAULT_MAX_PAYLOAD, FLAG_MAC_GMAC, FLAG_MAC_HMAC, PROTOCOL_VERSION,
                                   TAG_SIZE, add_frame_flags)
from pycam.protocol.messages import Challenge, Command, Error, Event, Hello, Message, Reply, Welcome, encode

try:  # fast MAC of the payload (GMAC); HMAC-SHA256 (stdlib) is the flagged fallback
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _AESGCM
except ImportError:  # pragma: no cover - depends on the installation
    _AESGCM = None

HAVE_GMAC = _AESGCM is not None
#: frame limits before authentication: a hello is small and carries no payload
PRE_AUTH_MAX_HEADER = 16 * 1024
PRE_AUTH_MAX_PAYLOAD = 0
#: largest payload the master accepts from a client (clients send commands, never data)
CLIENT_MAX_PAYLOAD = 64 * 1024
TO_MASTER = "to-master"
MAC_BLOCK = 1 << 17   # payload bytes per GMAC call: small enough to be MACed while in the cache
FROM_MASTER = "from-master"


# ------------------------------------------------------------------------------- MACs
def _mac_hex(secret: str, *parts: str) -> str:
    return hmac.new(secret.encode("utf-8"), "|".join(parts).encode("utf-8"), "sha256").hexdigest()


def hello_mac(secret: str, server_nonce: str, peer_nonce: str, role: str, name: str, device: str) -> str:
    return _mac_hex(secret, "pycam-hello", server_nonce, peer_nonce, role, name, device)


def welcome_mac(secret: str, peer_nonce: str, server_nonce: str, session: str) -> str:
    return _mac_hex(secret, "pycam-welcome", peer_nonce, server_nonce, session)


def session_key(secret: str, server_nonce: str, peer_nonce: str, role: str, name: str, device: str) -> bytes:
    return bytes.fromhex(_mac_hex(secret, "pycam-session", server_nonce, peer_nonce, role, name, device))


def new_nonce() -> str:
    return _secrets.token_hex(32)


class _GmacFrame:
    """HMAC-SHA256(key, seq || prefix || header || GMAC tags of the payload's blocks).

    The payload, the bulk of the data, goes through AES-GCM's GHASH (as fast as the CRC it
    replaces) in blocks of ``MAC_BLOCK`` bytes, each as soon as it has arrived (still in the
    cache), with the nonce ``seq || block index`` used once per key."""

    def __init__(self, hmac_key: bytes, gmac, seq: bytes) -> None:
        self._h = hmac.new(hmac_key, seq, hashlib.sha256)
        self._gmac = gmac
        self._seq = seq
        self._done = 0

    def update(self, data) -> None:
        self._h.update(data)

    def payload_progress(self, payload, received: int) -> None:
        size = len(payload)
        view = None
        while self._done < received and (received - self._done >= MAC_BLOCK or received == size):
            end = min(self._done + MAC_BLOCK, size)
            if view is None:
                view = memoryview(payload).cast("B")
            nonce = self._seq + (self._done // MAC_BLOCK).to_bytes(4, "big")
            self._h.update(self._gmac.encrypt(nonce, b"", view[self._done:end]))
            self._done = end

    def tag(self) -> bytes:
        return self._h.digest()[:TAG_SIZE]

    def verify(self, tag: bytes) -> bool:
        return hmac.compare_digest(self.tag(), tag)


class _HmacFrame:
    """HMAC-SHA256(key, seq || whole frame): the fallback without the cryptography package."""

    def __init__(self, key: bytes, seq: bytes) -> None:
        self._h = hmac.new(key, seq, hashlib.sha256)
        self._done = 0

    def update(self, data) -> None:
        self._h.update(data)

    def payload_progress(self, payload, received: int) -> None:
        self._h.update(memoryview(payload).cast("B")[self._done:received])
        self._done = received

    def tag(self) -> bytes:
        return self._h.digest()[:TAG_SIZE]

    def verify(self, tag: bytes) -> bool:
        return hmac.compare_digest(self.tag(), tag)


class FrameKeys:
    """The MAC keys of one direction with its frame counter (sender or receiver side)."""

    def __init__(self, key: bytes, direction: str) -> None:
        def derive(name: str) -> bytes:
            return hmac.new(key, f"{direction}|{name}".encode(), hashlib.sha256).digest()

        self._hmac_key = derive("hmac-sha256")
        self._gmac_hmac_key = derive("gmac-header")
        self._gmac = _AESGCM(derive("gmac")[:16]) if _AESGCM is not None else None
        self.seq = 0

    def begin(self, flags: int):
        """The verifier (or signer) of the next frame; ``flags`` names the algorithm."""
        seq = self.seq.to_bytes(8, "big")
        self.seq += 1
        if flags & FLAG_MAC_GMAC:
            if self._gmac is None:
                raise FrameError("auth", "the peer signs frames with GMAC but the cryptography package is not "
                                         "installed here")
            return _GmacFrame(self._gmac_hmac_key, self._gmac, seq)
        return _HmacFrame(self._hmac_key, seq)

    def seal(self, buffers: list) -> list:
        """``buffers`` of one encoded frame (prefix+header, then at most one payload buffer),
        flagged and followed by their MAC trailer."""
        flag = FLAG_MAC_GMAC if self._gmac is not None and _AESGCM is not None else FLAG_MAC_HMAC
        first = add_frame_flags(buffers[0], flag)
        mac = self.begin(flag)
        mac.update(first)
        for payload in buffers[1:]:
            mac.payload_progress(payload, len(payload))
        return [first, *buffers[1:], mac.tag()]


# ------------------------------------------------------------------------------ events
@dataclasses.dataclass(frozen=True)
class Authenticated:
    """(server) The peer proved it holds its role's secret: admit it with ``welcome()`` or ``refuse()``."""
    hello: Hello


@dataclasses.dataclass(frozen=True)
class Established:
    """(client) The master proved it holds the secret; frames are authenticated from now on."""
    welcome: Welcome


@dataclasses.dataclass(frozen=True)
class Refused:
    """The handshake failed (``reason``); send ``data_to_send()`` if any, then close."""
    reason: str


@dataclasses.dataclass(frozen=True)
class MessageReceived:
    """An authenticated message after the handshake."""
    message: Message


class SessionError(ProtocolError):
    """A session method was called in the wrong state."""


class _Session:
    _tell_peer = False   # answer a corrupt stream with an Error before closing (the master does)

    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.decoder = MessageDecoder(PRE_AUTH_MAX_PAYLOAD, PRE_AUTH_MAX_HEADER)
        self.state = "handshake"
        self._out: list[bytes] = []
        self._send_keys: FrameKeys | None = None

    @property
    def established(self) -> bool:
        return self.state == "established"

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def data_to_send(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    def _queue(self, message: Message) -> None:
        self._out.append(b"".join(bytes(b) for b in encode(message)))

    def seal(self, buffers: list) -> list:
        """The buffers of one outgoing frame as they must go on the wire (with the MAC once
        established; encode it with ``checksum=False`` then, the MAC covers the payload).  Call
        in sending order (the sequence number advances)."""
        if self._send_keys is None:
            return buffers
        return self._send_keys.seal(buffers)

    def send(self, message: Message) -> bytes:
        """``message`` as bytes to send (established sessions only)."""
        if not self.established:
            raise SessionError("session", f"cannot send {message.kind} in state {self.state}")
        return b"".join(bytes(b) for b in self.seal(encode(message, checksum=False)))

    def _establish(self, key: bytes, send_direction: str) -> None:
        self.state = "established"
        self.decoder.require_authenticated = True
        self.decoder.set_limits(self.max_payload_bytes)
        self._send_keys = FrameKeys(key, send_direction)

    def receive_data(self, data: bytes) -> list:
        """Feed received bytes; returns the events they complete.  A corrupt or forged stream,
        or any malformed message before authentication, gives :class:`Refused` (close the
        connection); after it a malformed message raises MessageError (answer it, carry on)."""
        events = []
        try:
            if data:
                self.decoder.feed(data)
            while self.state in ("handshake", "hello-sent", "established"):   # not while a decision is due
                msg = self.decoder.next_message()
                if msg is None:
                    break
                events.extend(self.handle_message(msg))
        except MessageError as exc:
            if self.established:
                raise   # one bad message: the caller answers it and carries on
            if self._tell_peer:   # nothing malformed is tolerated before authentication
                self._queue(Error(key=exc.key, reason=f"not authenticated: {exc.reason}"))
            self.state = "closed"
            events.append(Refused(f"{exc.key}: {exc.reason}"))
        except FrameError as exc:
            if self._tell_peer and not self.established:
                self._queue(Error(key=exc.key, reason=exc.reason))
            self.state = "closed"
            events.append(Refused(f"{exc.key}: {exc.reason}"))
        return events

    def handle_message(self, msg: Message) -> list:  # pragma: no cover - overridden
        raise NotImplementedError


class ServerSession(_Session):
    """The master's side.  ``secrets`` maps each role allowed on this port to its secret."""

    _tell_peer = True

    def __init__(self, secrets: Mapping[str, str], session_id: str,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD) -> None:
        super().__init__(max_payload_bytes)
        if not secrets:
            raise ValueError("at least one role with its secret is needed")
        self.secrets = dict(secrets)
        self.session_id = session_id
        self.nonce = new_nonce()
        self.hello: Hello | None = None
        self._key = b""
        self._queue(Challenge(nonce=self.nonce, version=PROTOCOL_VERSION))

    def _refuse(self, msg: Message | None, reason: str) -> list:
        key = msg.key if isinstance(msg, Command) else "auth"
        rid = msg.request_id if isinstance(msg, Command) else None
        self._queue(Error(key=key, reason=reason, request_id=rid))
        self.state = "closed"
        return [Refused(f"{key}: {reason}")]

    def handle_message(self, msg: Message) -> list:
        if self.established:
            return [MessageReceived(msg)]
        if self.state != "handshake":
            raise SessionError("session", f"message {msg.kind} in state {self.state}")
        if not isinstance(msg, Hello):
            return self._refuse(msg, "not authenticated: answer the challenge with a hello first")
        if msg.version != PROTOCOL_VERSION:
            return self._refuse(msg, f"protocol version {msg.version} not supported "
                                     f"(master speaks {PROTOCOL_VERSION})")
        if msg.role not in self.secrets:
            return self._refuse(msg, f"role {msg.role!r} not accepted on this port "
                                     f"(expected {' or '.join(self.secrets)})")
        secret = self.secrets[msg.role]
        expected = hello_mac(secret, self.nonce, msg.nonce, msg.role, msg.name, msg.device)
        if not hmac.compare_digest(expected, msg.mac):
            key = "device_secret" if msg.role == "device" else "secret"
            return self._refuse(msg, f"authentication failed: wrong {msg.role} secret ([network] {key})")
        self.hello = msg
        self._key = session_key(secret, self.nonce, msg.nonce, msg.role, msg.name, msg.device)
        # the peer's first frame after our welcome is already signed: verify from now on
        self.decoder.frames.authenticator = FrameKeys(self._key, TO_MASTER)
        self.state = "admitting"
        return [Authenticated(msg)]

    def welcome(self, devices: Iterable[str] = ()) -> None:
        """Admit the authenticated peer: queue the Welcome; later frames carry MACs."""
        if self.state != "admitting":
            raise SessionError("session", f"cannot welcome in state {self.state}")
        secret = self.secrets[self.hello.role]
        self._queue(Welcome(session=self.session_id, devices=tuple(devices),
                            mac=welcome_mac(secret, self.hello.nonce, self.nonce, self.session_id)))
        self._establish(self._key, FROM_MASTER)

    def refuse(self, reason: str) -> list:
        """Refuse an authenticated peer (e.g. unknown device id): queue the Error."""
        return self._refuse(self.hello, reason)


class ClientSession(_Session):
    """A device's or a client's side of the handshake."""

    def __init__(self, secret: str, *, role: str, name: str, device: str = "",
                 subscribe: tuple[str, ...] = (), max_payload_bytes: int = DEFAULT_MAX_PAYLOAD) -> None:
        super().__init__(max_payload_bytes)
        self.decoder.set_limits(max_payload_bytes)   # the master's messages are trusted by their MACs later
        self.secret, self.role, self.name, self.device = secret, role, name, device
        self.subscribe = tuple(subscribe)
        self.nonce = new_nonce()
        self._server_nonce = ""
        self.welcome: Welcome | None = None

    def handle_message(self, msg: Message) -> list:
        if self.established:
            return [MessageReceived(msg)]
        if isinstance(msg, Error):
            self.state = "closed"
            return [Refused(f"{msg.key}: {msg.reason}")]
        if self.state == "handshake":
            if not isinstance(msg, Challenge):
                self.state = "closed"
                return [Refused(f"expected a challenge from the master, got {msg.kind}")]
            if msg.version != PROTOCOL_VERSION:
                self.state = "closed"
                return [Refused(f"master speaks protocol version {msg.version}, we speak {PROTOCOL_VERSION}")]
            self._server_nonce = msg.nonce
            self._queue(Hello(role=self.role, name=self.name, nonce=self.nonce, device=self.device,
                              version=PROTOCOL_VERSION, subscribe=self.subscribe,
                              mac=hello_mac(self.secret, msg.nonce, self.nonce, self.role, self.name, self.device)))
            key = session_key(self.secret, msg.nonce, self.nonce, self.role, self.name, self.device)
            self.decoder.frames.authenticator = FrameKeys(key, FROM_MASTER)
            self._key = key
            self.state = "hello-sent"
            return []
        if not isinstance(msg, Welcome):
            self.state = "closed"
            return [Refused(f"expected welcome, got {msg.kind}")]
        if not hmac.compare_digest(msg.mac, welcome_mac(self.secret, self.nonce, self._server_nonce, msg.session)):
            self.state = "closed"
            return [Refused("the master failed to prove it holds the secret")]
        self.welcome = msg
        self._establish(self._key, TO_MASTER)
        return [Established(msg)]


# ----------------------------------------------------------------- request/reply matching
@dataclasses.dataclass
class PendingRequest:
    """One request a client is waiting for: the answers so far and, for ``device="all"``, the
    devices the master routed it to (from its ``routed`` event)."""

    answers: list = dataclasses.field(default_factory=list)
    targets: list[str] | None = None
    done: bool = False

    def _update(self) -> bool:
        if self.targets is None:   # one device, or an 'all' the master refused outright
            self.done = bool(self.answers)
        else:
            answered = {a.device for a in self.answers}
            self.done = all(t in answered for t in self.targets)
        return self.done


class RequestTracker:
    """The client side's request/reply matching, pure (the caller locks and waits): replies and
    errors of our ``session`` complete the request of their id; a ``routed`` event tells which
    devices an ``all`` request went to, and it completes once each of them has answered."""

    def __init__(self) -> None:
        self.session = ""
        self._pending: dict[int, PendingRequest] = {}

    def add(self, request_id: int) -> PendingRequest:
        request = self._pending[request_id] = PendingRequest()
        return request

    def pop(self, request_id: int) -> PendingRequest | None:
        return self._pending.pop(request_id, None)

    def on_message(self, msg: Message) -> int | None:
        """The id of the request ``msg`` completes, if any."""
        if isinstance(msg, Event) and msg.name == "routed":
            fields = msg.fields
            rid = fields.get("request_id") if fields.get("session") == self.session else None
            request = self._pending.get(rid) if isinstance(rid, int) else None
            if request is None:
                return None
            targets = fields.get("targets", [])
            request.targets = [t for t in targets if isinstance(t, str)] if isinstance(targets, list) else []
        elif isinstance(msg, (Reply, Error)) and msg.session == self.session and msg.request_id is not None:
            rid = msg.request_id
            request = self._pending.get(rid)
            if request is None:
                return None
            request.answers.append(msg)
        else:
            return None
        return rid if request._update() else None

    def fail_all(self, reason: str) -> list[int]:
        """The connection is gone: every waiting request gets an Error (key ``connection``);
        returns their ids."""
        for request in self._pending.values():
            request.answers.append(Error(key="connection", reason=reason))
            request.done = True
        return list(self._pending)

