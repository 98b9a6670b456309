"""What the GUI needs from protocol messages: one-line summaries and decoded data frames.

The typed messages come from :mod:`pycam.protocol.messages` (on the client's thread);
:func:`summarize_message` turns any of them into a :class:`MessageSummary` for the
messages pane, and :func:`decode_data` turns an image/spectrum data frame into an
:class:`ImageFrame` / :class:`~pycam.formats.spectrum.SpectrumFrame` with numpy arrays.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any

import numpy as np

from pycam.formats.names import ImageName, SpectrumName
from pycam.formats.spectrum import SpectrumFrame


@dataclasses.dataclass(frozen=True)
class MessageSummary:
    time: str
    device: str
    kind: str          # reply | error | event | data | sent | state
    text: str
    request_id: str | None = None
    key: str | None = None
    value: Any = None

    @property
    def is_data(self) -> bool:
        return self.kind == "data"


@dataclasses.dataclass(frozen=True)
class ImageFrame:
    """One camera image: band ``A`` (on, fltrA) or ``B`` (off, fltrB)."""

    band: str
    time_string: str
    frame_type: str
    exposure_us: int
    pixels: np.ndarray
    filename: str
    device: str = ""


def _now() -> str:
    return _dt.datetime.now().strftime("%H:%M:%S")


def _attr(message, *names, default=None):
    for name in names:
        if isinstance(message, dict) and name in message:
            return message[name]
        if hasattr(message, name):
            return getattr(message, name)
    return default


def _short(value, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize_message(message) -> MessageSummary:
    """A one-line description of a :mod:`pycam.protocol.messages` message (never raises).

    For events ``key`` is the event name and ``value`` its fields; for replies they are the
    command key and the value now in force.
    """
    kind = str(_attr(message, "kind", default=type(message).__name__)).lower()
    request_id = _attr(message, "request_id")
    rid = None if request_id is None else str(request_id)
    if kind == "data":
        meta = _attr(message, "meta")
        device = str(_attr(meta, "device", default="?"))
        return MessageSummary(_now(), device, "data", str(_attr(meta, "filename", default="data")))
    device = str(_attr(message, "device", default="") or "master")
    if kind == "reply":
        key, value = _attr(message, "key"), _attr(message, "value")
        return MessageSummary(_now(), device, "reply", f"{key} = {_short(value)}", rid, key, value)
    if kind == "error":
        key = _attr(message, "key", default="")
        return MessageSummary(_now(), device, "error", f"{key}: {_attr(message, 'reason', default='')}", rid, key)
    if kind == "event":
        name = str(_attr(message, "name", default="event"))
        fields = _attr(message, "fields", default={}) or {}
        detail = " ".join(f"{k}={_short(v, 60)}" for k, v in fields.items()) if isinstance(fields, dict) else ""
        return MessageSummary(_now(), device, "event", f"{name} {detail}".strip(), None, name, fields)
    return MessageSummary(_now(), device, kind, _short(message), rid)


def decode_data(message) -> ImageFrame | SpectrumFrame | None:
    """The image or spectrum of a :class:`~pycam.protocol.messages.Data` message.

    Returns None for anything that is not a data message; raises ValueError for a data
    message whose file name or array does not fit its type.
    """
    meta = _attr(message, "meta")
    if meta is None or not hasattr(message, "array"):
        return None
    array = message.array()
    filename = meta.filename
    if meta.data_type == "image":
        name = ImageName.parse(filename)
        if array.ndim != 2:
            raise ValueError(f"{filename}: image is not 2-D")
        return ImageFrame("A" if name.band == "on" else "B", name.time_string, name.frame_type,
                          name.exposure_us, array, filename, meta.device)
    if meta.data_type == "spectrum":
        spec = SpectrumName.parse(filename)
        if array.ndim != 2 or array.shape[0] != 2:
            raise ValueError(f"{filename}: spectrum is not a (2, N) array")
        return SpectrumFrame(np.asarray(array[0], float), np.asarray(array[1], float), spec.time, spec.integration_ms,
                             spec.coadd, spec.frame_type, filename)
    return None
