"""Frames: the length-prefixed envelope every message travels in.

Layout (all integers big-endian)::

    offset  size  field
    0       4     magic  b"\\xffPYC"   (0xFF: never the start of text)
    4       1     protocol version  (PROTOCOL_VERSION)
    5       1     flags  (bit 0: the payload checksum is CRC-32C; bit 1: a 16-byte session MAC
                  trailer follows the payload (GMAC of the payload bound by HMAC-SHA256);
                  bit 2: the same with HMAC-SHA256 alone; other bits reserved, 0)
    6       4     header length H   (1 .. MAX_HEADER_BYTES)
    10      8     payload length P  (0 .. max_payload_bytes)
    18      4     CRC-32 of bytes 0..17 followed by the header
    22      4     checksum of the payload (0 when P == 0): CRC-32C (Castagnoli) when flag bit 0
                  is set, else zlib CRC-32
    26      H     header: UTF-8 JSON object (the typed message, see messages.py)
    26+H    P     payload: raw binary (image pixels, spectrum array), never parsed as text
    26+H+P  16    (only with flag bit 1 or 2) the session MAC over bytes 0..26+H+P-1, keyed per
                  frame and direction (see pycam.protocol.session); such frames carry no
                  payload checksum (0): the MAC covers the payload, one pass instead of two

The header CRC is zlib's CRC-32 (IEEE 802.3 polynomial).  Payloads use the hardware-accelerated
CRC-32C of the ``crc32c`` package (~20 GB/s) when it is installed, else zlib's CRC-32
(~2 GB/s); the flag tells the receiver which.  A bad prefix/header CRC means the lengths can't
be trusted: :class:`FrameError`, the connection closes.  A bad payload CRC means only that
frame is damaged: :class:`MessageError` (key ``payload``), the stream stays in sync and the
sender is told to send it again.

:class:`FrameDecoder` is a pure state machine (bytes in, frames out) with bounded memory:
at most one prefix+header (<= 26 + MAX_HEADER_BYTES) and one payload (<= max_payload_bytes)
are held (plus the previous payload's buffer, kept for reuse once the consumer has dropped every
reference to it), and every input byte is copied at most once, so decoding is linear in the input.
Frames carrying a MAC are checked by the decoder's ``authenticator`` (set by the session once the
handshake has given it a key): a mismatch is a :class:`FrameError` (close); the frame is marked
``authenticated``.  Without an authenticator such frames are decoded but not marked, and the
session refuses unmarked frames once it is established.

The zero-copy path for sockets is ``recv_buffer()`` / ``commit(n)``; ``feed(data)`` is the
same thing for bytes already in hand.
"""
from __future__ import annotations

import dataclasses
import struct
import sys
import zlib

import numpy as np

try:  # hardware CRC-32C; optional, zlib's CRC-32 is the fallback
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover - depends on the installation
    _crc32c = None

from pycam.protocol.errors import FrameError, MessageError

MAGIC = b"\xffPYC"
PROTOCOL_VERSION = 1
PREFIX = struct.Struct(">4sBBIQII")
PREFIX_SIZE = PREFIX.size  # 26
_CRC_COVERED = 18  # prefix bytes covered by the header CRC (everything before the CRCs)
MAX_HEADER_BYTES = 1 << 20
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
_SCRATCH = 1 << 12  # receive chunk between frames: holds a usual prefix+header; small, because payload
#                     bytes read here are copied once more (64 KiB cost ~10 us per 630 kB frame)
_PAYLOAD_CHUNK = 1 << 22  # payload receive chunk (bounded so the checksum runs while data is fresh)
FLAG_CRC32C = 0x01
FLAG_MAC_GMAC = 0x02
FLAG_MAC_HMAC = 0x04
FLAG_MAC = FLAG_MAC_GMAC | FLAG_MAC_HMAC
KNOWN_FLAGS = FLAG_CRC32C | FLAG_MAC
TAG_SIZE = 16
HAVE_CRC32C = _crc32c is not None
_MAC_MISMATCH = "frame authentication failed (session MAC mismatch): data altered or injected on the way"
_getrefcount = getattr(sys, "getrefcount", None)   # CPython; elsewhere payload buffers are never reused


def payload_checksum(data, flags: int, value: int = 0) -> int:
    """The running payload checksum selected by ``flags`` (see the frame layout)."""
    if flags & FLAG_CRC32C:
        return _crc32c(data, value)
    return zlib.crc32(data, value)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: the raw JSON header bytes and the payload."""

    header: bytes
    payload: bytes | bytearray | np.ndarray = b""   # numpy uint8 buffer when received by FrameDecoder
    authenticated: bool = False   # its session MAC was verified (see FrameDecoder.authenticator)


def encode_frame(header: bytes, payload=b"", *, crc32c: bool | None = None,
                 checksum: bool = True) -> list[bytes | memoryview]:
    """The frame for ``header`` + ``payload`` as buffers to send in order (payload not copied).

    ``crc32c`` chooses the payload checksum (default: CRC-32C when available);
    ``checksum=False`` leaves it out (0) for a frame the session MAC will cover."""
    if not 0 < len(header) <= MAX_HEADER_BYTES:
        raise ValueError(f"header length {len(header)} outside 1..{MAX_HEADER_BYTES}")
    view = memoryview(payload).cast("B") if len(payload) else memoryview(b"")
    use_c = HAVE_CRC32C if crc32c is None else crc32c
    if use_c and not HAVE_CRC32C:
        raise ValueError("CRC-32C requested but the crc32c package is not installed")
    flags = FLAG_CRC32C if use_c and len(view) else 0
    if not checksum:
        flags = 0
    payload_crc = payload_checksum(view, flags) if len(view) and checksum else 0
    head = struct.pack(">4sBBIQ", MAGIC, PROTOCOL_VERSION, flags, len(header), len(view))
    header_crc = zlib.crc32(header, zlib.crc32(head))
    first = head + struct.pack(">II", header_crc, payload_crc) + header
    return [first, view] if len(view) else [first]


def add_frame_flags(first: bytes | bytearray, flags: int) -> bytes:
    """``first`` (prefix + header as returned by :func:`encode_frame`) with ``flags`` set and the
    header CRC recomputed (the session marks frames that carry a MAC this way)."""
    out = bytearray(first)
    out[5] |= flags
    header_crc = zlib.crc32(memoryview(out)[PREFIX_SIZE:], zlib.crc32(memoryview(out)[:_CRC_COVERED]))
    struct.pack_into(">I", out, _CRC_COVERED, header_crc)
    return bytes(out)


def encode_frame_bytes(header: bytes, payload=b"", *, crc32c: bool | None = None) -> bytes:
    """The whole frame as one bytes object (convenient for tests and small messages)."""
    return b"".join(bytes(p) for p in encode_frame(header, payload, crc32c=crc32c))


class FrameDecoder:
    """Bytes in, :class:`Frame` objects out.

    Usage::

        dec = FrameDecoder(max_payload_bytes)
        dec.feed(data)                # or: n = sock.recv_into(dec.recv_buffer()); dec.commit(n)
        while (frame := dec.next_frame()) is not None: ...

    ``next_frame`` raises :class:`MessageError` for a frame whose payload CRC is wrong (the
    frame is dropped, decoding continues) and :class:`FrameError` when the stream is
    corrupt; after a FrameError the decoder stays dead and raises it again.
    """

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        if max_payload_bytes < 0 or not 0 < max_header_bytes <= MAX_HEADER_BYTES:
            raise ValueError("max_payload_bytes must be >= 0 and max_header_bytes in 1..MAX_HEADER_BYTES")
        #: limits may be raised once the peer is authenticated (see pycam.net.connection)
        self.max_payload_bytes = max_payload_bytes
        self.max_header_bytes = max_header_bytes
        self._buf = bytearray()         # prefix + header bytes being assembled
        self._scratch = bytearray(_SCRATCH)
        self._ready: list[Frame | MessageError] = []
        self._dead: FrameError | None = None
        # payload state
        self._header: bytes | None = None
        self._payload: np.ndarray | None = None
        self._payload_data: np.ndarray | None = None   # the payload part of _payload (without a MAC trailer)
        self._spare: np.ndarray | None = None   # the last payload buffer, reused once unreferenced
        self._payload_got = 0
        self._payload_crc_expected = 0
        self._payload_crc = 0
        self._flags = 0
        #: input bytes taken by the decoder, each copied (or, a whole prefix, read in place)
        #: exactly once (for the linear-time test)
        self.bytes_copied = 0
        #: verifies MAC trailers: ``begin(flags)`` returns an object with ``update(data)`` (given
        #: the prefix and the header), ``payload_progress(payload, received)`` (the first
        #: ``received`` bytes of the payload buffer are in) and ``verify(tag) -> bool`` for the
        #: next MAC-carrying frame (pycam.protocol.session)
        self.authenticator = None
        self._mac = None                      # the current frame's verifier
        self._awaiting: tuple | None = None   # (header, payload, error) waiting for its MAC trailer
        self._tag = bytearray()

    # -- state ---------------------------------------------------------------------------
    @property
    def buffered_bytes(self) -> int:
        """Bytes currently held (prefix/header buffer plus a partial payload)."""
        return len(self._buf) + len(self._tag) + (self._payload_got if self._payload is not None else 0)

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has been received but not all of it."""
        return bool(self._buf) or self._payload is not None or self._awaiting is not None

    # -- input -----------------------------------------------------------------------------
    def recv_buffer(self) -> memoryview:
        """A writable buffer for ``sock.recv_into``; follow with ``commit(n)``.

        Inside a payload this is the payload's own storage (no extra copy)."""
        self._raise_if_dead()
        if self._payload is not None:
            return memoryview(self._payload)[self._payload_got:self._payload_got + _PAYLOAD_CHUNK]
        return memoryview(self._scratch)

    def commit(self, n: int) -> None:
        """``n`` bytes were written into the last ``recv_buffer()``."""
        if n <= 0:
            return
        if self._payload is not None:
            start = self._payload_got
            self._payload_got += n
            self._payload_received(memoryview(self._payload)[start:start + n])
            if self._payload_got == len(self._payload):
                self._finish_payload()
            return
        self._consume(memoryview(self._scratch)[:n])

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes."""
        self._raise_if_dead()
        self._consume(memoryview(data).cast("B"))

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None if more bytes are needed."""
        if self._ready:
            item = self._ready.pop(0)
            if isinstance(item, MessageError):
                raise item
            return item
        self._raise_if_dead()
        return None

    # -- internals ---------------------------------------------------------------------------
    def _raise_if_dead(self) -> None:
        if self._dead is not None:
            raise self._dead

    def _fail(self, key: str, reason: str) -> None:
        self._dead = FrameError(key, reason)
        self._buf = bytearray()
        self._payload = self._payload_data = None
        self._awaiting = None
        self._mac = None
        raise self._dead

    def _consume(self, data: memoryview) -> None:
        pos = 0
        total = len(data)
        while pos < total:
            if self._dead is not None:
                raise self._dead
            if self._payload is not None:
                need = len(self._payload) - self._payload_got
                take = min(need, total - pos)
                chunk = data[pos:pos + take]
                self._payload[self._payload_got:self._payload_got + take] = chunk
                self._payload_got += take
                self._payload_received(chunk)
                self.bytes_copied += take
                pos += take
                if self._payload_got == len(self._payload):
                    self._finish_payload()
                continue
            if self._awaiting is not None:
                take = min(TAG_SIZE - len(self._tag), total - pos)
                self._tag += data[pos:pos + take]
                self.bytes_copied += take
                pos += take
                if len(self._tag) == TAG_SIZE:
                    self._finish_tag()
                continue
            if not self._buf and total - pos >= PREFIX_SIZE:
                # fast path: a whole prefix in hand -- validate it where it lies (no copy)
                header_len = self._check_prefix(data, pos)
                end = pos + PREFIX_SIZE + header_len
                if end <= total:   # ... and the whole header too: no reassembly at all
                    self.bytes_copied += PREFIX_SIZE + header_len   # prefix read in place, header copied
                    self._finish_header(data[pos:pos + PREFIX_SIZE], bytes(data[pos + PREFIX_SIZE:end]))
                    pos = end
                    continue
            # slow path: assemble prefix (+ header) across reads
            if len(self._buf) < PREFIX_SIZE:
                take = min(PREFIX_SIZE - len(self._buf), total - pos)
                self._buf += data[pos:pos + take]
                self.bytes_copied += take
                pos += take
                self._check_partial_magic()
                if len(self._buf) < PREFIX_SIZE:
                    continue
                self._check_prefix(self._buf, 0)
            header_len = self._header_len
            need = PREFIX_SIZE + header_len - len(self._buf)
            take = min(need, total - pos)
            self._buf += data[pos:pos + take]
            self.bytes_copied += take
            pos += take
            if len(self._buf) == PREFIX_SIZE + header_len:
                buf = self._buf
                self._buf = bytearray()
                self._finish_header(memoryview(buf)[:PREFIX_SIZE], bytes(buf[PREFIX_SIZE:]))

    def _check_partial_magic(self) -> None:
        n = min(len(self._buf), len(MAGIC))
        if bytes(self._buf[:n]) != MAGIC[:n]:
            self._fail("frame", f"bad magic {bytes(self._buf[:n])!r}: not a PyCam protocol stream")

    def _check_prefix(self, buf, offset: int) -> int:
        """Validate the prefix at ``buf[offset:]``; remember its fields; return the header length."""
        magic, version, flags, header_len, payload_len, _hcrc, _pcrc = PREFIX.unpack_from(buf, offset)
        if magic != MAGIC:
            self._fail("frame", f"bad magic {magic!r}: not a PyCam protocol stream")
        if version != PROTOCOL_VERSION:
            self._fail("version", f"protocol version {version} not supported (this side speaks {PROTOCOL_VERSION})")
        if flags & ~KNOWN_FLAGS or flags & FLAG_MAC == FLAG_MAC:
            self._fail("frame", f"unknown flags 0x{flags:02x}")
        if flags & FLAG_CRC32C and not HAVE_CRC32C:
            self._fail("payload", "the payload checksum is CRC-32C but the crc32c package is not installed here")
        self._flags = flags
        if not 0 < header_len <= self.max_header_bytes:
            self._fail("frame", f"header length {header_len} outside 1..{self.max_header_bytes}")
        if payload_len > self.max_payload_bytes:
            self._fail("frame", f"payload of {payload_len} bytes exceeds the limit of {self.max_payload_bytes}")
        self._header_len = header_len
        self._payload_len = payload_len
        return header_len

    def _finish_header(self, prefix, header: bytes) -> None:
        """``prefix``: the 26 validated prefix bytes; ``header``: the header bytes after them."""
        _m, _v, _f, _hl, payload_len, header_crc, payload_crc = PREFIX.unpack_from(prefix)
        crc = zlib.crc32(header, zlib.crc32(prefix[:_CRC_COVERED]))
        if crc != header_crc:
            self._fail("frame", "header checksum mismatch: stream corrupt")
        self._mac = None
        if self._flags & FLAG_MAC and self.authenticator is not None:
            self._mac = self.authenticator.begin(self._flags)
            self._mac.update(prefix)
            self._mac.update(header)
        if payload_len == 0:
            if payload_crc != 0:
                self._fail("frame", "payload checksum set on an empty payload")
            self._complete(header, b"", None)
            return
        self._header = header
        # a MAC trailer is received into the same buffer, right behind the payload
        self._payload = self._payload_storage(payload_len + (TAG_SIZE if self._flags & FLAG_MAC else 0))
        self._payload_data = self._payload[:payload_len]
        self._payload_got = 0
        self._payload_crc_expected = payload_crc
        self._payload_crc = 0

    def _payload_storage(self, size: int) -> np.ndarray:
        """Storage for the next payload: the previous payload's buffer when it has the same size
        and nobody else refers to it any more (the consumer dropped the frame and every view
        or memoryview of it), else a new one.  Every byte is overwritten by received data
        before a frame is handed out.  Reusing it spares the kernel zeroing fresh pages for
        every frame (~1 ms per 10 MB frame); memory stays bounded (one idle buffer at most)."""
        spare = self._spare
        # 3 references: self._spare, the local name ``spare`` and getrefcount's argument
        if spare is not None and spare.size == size and _getrefcount is not None and _getrefcount(spare) == 3:
            return spare
        self._spare = None
        storage = np.empty(size, dtype=np.uint8)
        self._spare = storage
        return storage

    def _payload_received(self, chunk) -> None:
        """Check received payload bytes (``chunk``, now stored) while they are fresh in the
        cache: the MAC when the frame has one (verified with the trailer), else the checksum."""
        if self._flags & FLAG_MAC:
            if self._mac is not None:
                self._mac.payload_progress(self._payload_data, min(self._payload_got, len(self._payload_data)))
        else:
            self._payload_crc = payload_checksum(chunk, self._flags, self._payload_crc)

    def _finish_payload(self) -> None:
        header, payload = self._header, self._payload
        ok = bool(self._flags & FLAG_MAC) or self._payload_crc == self._payload_crc_expected
        self._header = None
        self._payload = self._payload_data = None
        self._payload_got = 0
        if self._flags & FLAG_MAC:   # payload and trailer are in: verify before handing it out
            n = len(payload) - TAG_SIZE
            mac, self._mac = self._mac, None
            if mac is not None and not mac.verify(bytes(payload[n:])):
                self._fail("auth", _MAC_MISMATCH)
            self._ready.append(Frame(header, payload[:n], mac is not None))
            return
        error = None
        if not ok:
            algorithm = "CRC-32C" if self._flags & FLAG_CRC32C else "CRC-32"
            err = MessageError(
                "payload", f"payload checksum mismatch ({algorithm} {self._payload_crc:08x}, "
                           f"expected {self._payload_crc_expected:08x}): data damaged in transit")
            err.frame_header = header  # lets the receiver name the damaged file
            error = err
        self._complete(header, payload, error)

    def _complete(self, header: bytes, payload, error: MessageError | None) -> None:
        """A frame's header (and payload) are in; with a MAC flag its trailer comes next (for a
        frame without payload; otherwise it came with the payload)."""
        if self._flags & FLAG_MAC:
            self._awaiting = (header, payload, error)
            self._tag = bytearray()
            return
        self._ready.append(error if error is not None else Frame(header, payload))

    def _finish_tag(self) -> None:
        header, payload, error = self._awaiting
        mac, tag = self._mac, bytes(self._tag)
        self._awaiting, self._mac, self._tag = None, None, bytearray()
        if mac is not None and not mac.verify(tag):
            self._fail("auth", _MAC_MISMATCH)
        self._ready.append(error if error is not None else Frame(header, payload, mac is not None))
