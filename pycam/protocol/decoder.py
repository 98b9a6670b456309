"""Bytes in, typed messages out: a :class:`FrameDecoder` plus :func:`messages.decode`."""
from __future__ import annotations

from pycam.protocol.errors import FrameError
from pycam.protocol.frames import DEFAULT_MAX_PAYLOAD, MAX_HEADER_BYTES, FrameDecoder
from pycam.protocol.messages import Message, decode


class MessageDecoder:
    """Feed bytes (or ``recv_into(recv_buffer())`` + ``commit(n)``), pull messages.

    ``next_message()`` returns the next complete message or None; it raises
    :class:`~pycam.protocol.errors.MessageError` for one bad message (skip it, carry on) and
    :class:`~pycam.protocol.errors.FrameError` when the stream is unusable (close).
    """

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.frames = FrameDecoder(max_payload_bytes, max_header_bytes)
        #: set by an established session: a frame without a verified MAC is a FrameError
        self.require_authenticated = False

    def set_limits(self, max_payload_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        """Change the frame limits (e.g. raise them once the peer is authenticated)."""
        self.frames.max_payload_bytes = max_payload_bytes
        self.frames.max_header_bytes = max_header_bytes

    def feed(self, data) -> None:
        self.frames.feed(data)

    def recv_buffer(self) -> memoryview:
        return self.frames.recv_buffer()

    def commit(self, n: int) -> None:
        self.frames.commit(n)

    @property
    def in_frame(self) -> bool:
        return self.frames.in_frame

    def next_message(self) -> Message | None:
        frame = self.frames.next_frame()
        if frame is None:
            return None
        if self.require_authenticated and not frame.authenticated:
            self.frames._dead = FrameError("auth", "a frame without the session MAC after the handshake: injected "
                                                   "or from an unauthenticated sender")
            raise self.frames._dead
        return decode(frame)
