"""Errors raised by the pure protocol layer.

Two families, so a connection knows what to do:

* :class:`FrameError` — the byte stream itself cannot be trusted any more (bad magic, bad
  header checksum, a frame larger than allowed).  The decoder is dead afterwards; the
  connection answers with one error message and closes.
* :class:`MessageError` — one frame arrived whole and intact, but what it says is wrong (bad
  JSON, unknown kind, missing or mistyped field, payload checksum mismatch).  The frame has
  been consumed; the connection answers with an error naming ``key`` and ``reason`` and
  carries on.

:class:`CommandValueError` is a :class:`MessageError` for a command value of the wrong type
or out of range.
"""
from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error the protocol layer raises."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class FrameError(ProtocolError):
    """The byte stream is corrupt or oversized: the connection must be closed."""


class MessageError(ProtocolError):
    """One complete frame holds an invalid message; the stream itself is still in sync.

    ``request_id`` is set when the bad message still told us which request it belonged to,
    so an error reply can reference it.
    """

    def __init__(self, key: str, reason: str, request_id: int | None = None) -> None:
        super().__init__(key, reason)
        self.request_id = request_id
        #: the JSON header of the damaged frame, when known (payload checksum errors)
        self.frame_header: bytes | None = None


class CommandValueError(MessageError):
    """A command key is unknown, or its value has the wrong type or is out of range."""
