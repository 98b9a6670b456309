"""Typed protocol messages and their encoding (a JSON header plus an optional binary payload).

Every message is a frozen dataclass; ``encode(msg)`` gives the buffers of one frame and
``decode(frame)`` turns a :class:`~pycam.protocol.frames.Frame` back into a message, raising
:class:`~pycam.protocol.errors.MessageError` (naming the field and the reason) for anything
malformed.  No pickle: headers are JSON, payloads are raw arrays described by the header.

Message kinds (the ``kind`` field of the JSON header):

Handshake (rules in pycam.protocol.session; every later frame carries the session MAC):
  * :class:`Challenge` master -> peer, first frame on every connection: a random nonce.
  * :class:`Hello` peer -> master: role (``client`` or ``device``), name, device id, its own
    nonce and an HMAC-SHA256 of both nonces with its role's secret.
  * :class:`Welcome` master -> peer: the session id and the master's own HMAC proof.

Commands and answers:
  * :class:`Command` ``request_id``, ``device`` (``CM1``/``CM2``/``SPC``/``master``/``all``),
    ``key`` (three-letter, see commands.py), ``value`` (typed); ``at`` (optional, set by the
    master on start/stop keys it forwards to devices): the UTC time, in seconds since the
    epoch, the command takes effect (``commands.effect_time``).
  * :class:`Reply` the answer of one device to one command: ``device`` is who answered,
    ``value`` the value now in force (for ``LOG 1``: a dict of all settings).
    ``session`` + ``request_id`` identify the request (``session`` is the asking client's
    session id, so a client can tell its own replies from everybody else's: the master
    forwards every reply to every client).
  * :class:`Error` a refused command or malformed message: ``key`` names what was wrong
    (a command key, a field name, ``auth``, ``payload``, ``frame``, ``data``, ``storage`` when
    the master cannot store any file now, e.g. a full disk…), ``reason``
    says why; ``filename`` is set when one data file could not be stored.
  * :class:`Event` something happened: ``name`` is ``status``, ``progress``,
    ``file_stored``, ``settings``, ``device_connected`` / ``device_disconnected``,
    ``DFC``/``DFS`` (dark set finished), ``acquisition``, ``storage``, ``health``…;
    ``fields`` is a JSON object whose keys and types are declared, once, by the typed
    events of :mod:`pycam.protocol.events`.

Data (device -> master, and master -> subscribed clients):
  * :class:`Data` ``meta`` (:class:`DataMeta`) + ``payload``.  For ``data_type == "image"``
    the payload is the raw pixel array, ``dtype`` ``"<u2"`` (uint16 little-endian, 10-bit
    values 0..1023), C order, ``shape`` (rows, cols); ``band`` is ``on``/``off``,
    ``exposure_us`` the actual exposure, ``gain``, ``time`` (ISO 8601 UTC), ``frame_type``
    (``Plume``/``Test``/``Dark``/``Clear``/``<N>ppmm``) and ``filename`` the PyCam file name.
    For ``data_type == "spectrum"`` the payload is a ``"<f8"`` array of shape (2, N): row 0
    wavelengths in nm, row 1 counts; ``integration_ms`` and ``coadd`` are set.
    ``Data.array()`` rebuilds the numpy array (read-only view, no copy); ``Data.wavelengths``
    and ``Data.counts`` give the spectrum rows.
  * :class:`Ack` master -> device: ``filename`` is stored safely (fsynced) at ``path``; the
    device may delete its spooled copy.

  * :class:`Subscribe` client -> master: which data types to receive (``image``,
    ``spectrum``); replaces the previous subscription.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any, ClassVar

import numpy as np

from pycam.protocol.errors import MessageError
from pycam.protocol.frames import Frame, encode_frame

ROLES = ("client", "device")
DATA_TYPES = ("image", "spectrum")
IMAGE_DTYPE = "<u2"
SPECTRUM_DTYPE = "<f8"
_MAX_TEXT = 4096


# ---------------------------------------------------------------------------------------
# field checking helpers (raise MessageError naming the field)
def _get(d: dict, key: str, kinds: tuple, *, required: bool = True, default: Any = None,
         request_id: int | None = None) -> Any:
    if key not in d or d[key] is None:
        if required:
            raise MessageError(key, "required field missing", request_id)
        return default
    value = d[key]
    if bool not in kinds and isinstance(value, bool):
        raise MessageError(key, f"expected {_kind_names(kinds)}, got a boolean", request_id)
    if not isinstance(value, kinds):
        raise MessageError(key, f"expected {_kind_names(kinds)}, got {type(value).__name__}", request_id)
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        raise MessageError(key, f"text longer than {_MAX_TEXT} characters", request_id)
    if isinstance(value, float) and not math.isfinite(value):
        raise MessageError(key, "must be a finite number", request_id)
    return value


def _kind_names(kinds: tuple) -> str:
    names = {int: "integer", float: "number", str: "text", bool: "boolean", dict: "object", list: "list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _request_id(d: dict) -> int | None:
    rid = d.get("request_id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def _json_value(value: Any, key: str = "value") -> Any:
    """Reject values JSON would not round-trip exactly (NaN, non-str keys, odd types)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key}: non-finite number {value!r} cannot be sent")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v, key) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return _json_value(float(value), key)
    raise ValueError(f"{key}: {type(value).__name__} cannot be sent")


# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Message:
    """Base class; ``kind`` names the JSON ``kind`` field."""

    kind: ClassVar[str] = ""

    def header(self) -> dict:
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if f.name == "payload":
                continue
            out[f.name] = getattr(self, f.name)
        return out

    @property
    def payload_bytes(self) -> bytes | bytearray | memoryview:
        return b""


@dataclasses.dataclass(frozen=True)
class Challenge(Message):
    kind: ClassVar[str] = "challenge"
    nonce: str
    server: str = "master"
    version: int = 1

    @classmethod
    def from_header(cls, d: dict, payload) -> "Challenge":
        return cls(nonce=_get(d, "nonce", (str,)), server=_get(d, "server", (str,), required=False, default="master"),
                   version=_get(d, "version", (int,)))


@dataclasses.dataclass(frozen=True)
class Hello(Message):
    kind: ClassVar[str] = "hello"
    role: str            # "client" or "device"
    name: str            # free text for logs (e.g. "gui", "pycam-send")
    nonce: str
    mac: str
    device: str = ""     # CM1/CM2/SPC for role "device"
    version: int = 1
    subscribe: tuple[str, ...] = ()

    def header(self) -> dict:
        out = super().header()
        out["subscribe"] = list(self.subscribe)
        return out

    @classmethod
    def from_header(cls, d: dict, payload) -> "Hello":
        role = _get(d, "role", (str,))
        if role not in ROLES:
            raise MessageError("role", f"unknown role {role[:20]!r} (expected {' or '.join(ROLES)})")
        return cls(role=role, name=_get(d, "name", (str,)), nonce=_get(d, "nonce", (str,)),
                   mac=_get(d, "mac", (str,)), device=_get(d, "device", (str,), required=False, default=""),
                   version=_get(d, "version", (int,)),
                   subscribe=_subscription(d.get("subscribe", [])))


def _subscription(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise MessageError("subscribe", "expected a list of data types")
    bad = [x for x in raw if x not in DATA_TYPES]
    if bad:
        raise MessageError("subscribe", f"unknown data type {bad[0][:20]!r} (expected {', '.join(DATA_TYPES)})")
    return tuple(dict.fromkeys(raw))


@dataclasses.dataclass(frozen=True)
class Welcome(Message):
    kind: ClassVar[str] = "welcome"
    session: str
    mac: str
    devices: tuple[str, ...] = ()   # devices connected right now

    def header(self) -> dict:
        out = super().header()
        out["devices"] = list(self.devices)
        return out

    @classmethod
    def from_header(cls, d: dict, payload) -> "Welcome":
        devices = d.get("devices", [])
        if not isinstance(devices, list) or not all(isinstance(x, str) for x in devices):
            raise MessageError("devices", "expected a list of device ids")
        return cls(session=_get(d, "session", (str,)), mac=_get(d, "mac", (str,)), devices=tuple(devices))


@dataclasses.dataclass(frozen=True)
class Subscribe(Message):
    kind: ClassVar[str] = "subscribe"
    data_types: tuple[str, ...] = ()

    def header(self) -> dict:
        return {"kind": self.kind, "data_types": list(self.data_types)}

    @classmethod
    def from_header(cls, d: dict, payload) -> "Subscribe":
        return cls(data_types=_subscription(d.get("data_types", [])))


@dataclasses.dataclass(frozen=True)
class Command(Message):
    kind: ClassVar[str] = "command"
    request_id: int
    device: str
    key: str
    value: Any = None
    session: str = ""   # set by the master when it forwards a client's command
    # set by the master on start/stop commands: the wall-clock time (UTC, seconds since the
    # epoch) they take effect, so that every device starts and stops on the same trigger
    at: float | None = None

    def header(self) -> dict:
        out = super().header()
        out["value"] = _json_value(self.value, self.key)
        if self.at is None:
            del out["at"]
        return out

    @classmethod
    def from_header(cls, d: dict, payload) -> "Command":
        rid = _get(d, "request_id", (int,))
        at = _get(d, "at", (int, float), required=False, request_id=rid)
        if at is not None and at <= 0:
            raise MessageError("at", "must be a positive time (seconds since 1970)", rid)
        return cls(request_id=rid, device=_get(d, "device", (str,), request_id=rid),
                   key=_get(d, "key", (str,), request_id=rid), value=d.get("value"),
                   session=_get(d, "session", (str,), required=False, default=""),
                   at=None if at is None else float(at))


@dataclasses.dataclass(frozen=True)
class Reply(Message):
    kind: ClassVar[str] = "reply"
    request_id: int
    device: str
    key: str
    value: Any = None
    session: str = ""

    def header(self) -> dict:
        out = super().header()
        out["value"] = _json_value(self.value, self.key)
        return out

    @classmethod
    def from_header(cls, d: dict, payload) -> "Reply":
        return cls(request_id=_get(d, "request_id", (int,)), device=_get(d, "device", (str,)),
                   key=_get(d, "key", (str,)), value=d.get("value"),
                   session=_get(d, "session", (str,), required=False, default=""))


@dataclasses.dataclass(frozen=True)
class Error(Message):
    kind: ClassVar[str] = "error"
    key: str
    reason: str
    request_id: int | None = None
    device: str = ""
    session: str = ""
    filename: str = ""   # set when the error is about one data file (it stays spooled)

    @classmethod
    def from_header(cls, d: dict, payload) -> "Error":
        return cls(key=_get(d, "key", (str,)), reason=_get(d, "reason", (str,)),
                   request_id=_get(d, "request_id", (int,), required=False),
                   device=_get(d, "device", (str,), required=False, default=""),
                   session=_get(d, "session", (str,), required=False, default=""),
                   filename=_get(d, "filename", (str,), required=False, default=""))


@dataclasses.dataclass(frozen=True)
class Event(Message):
    kind: ClassVar[str] = "event"
    name: str
    device: str = ""
    fields: dict = dataclasses.field(default_factory=dict)
    time: str = ""   # ISO 8601 UTC

    def header(self) -> dict:
        out = super().header()
        out["fields"] = _json_value(self.fields, "fields")
        return out

    @classmethod
    def from_header(cls, d: dict, payload) -> "Event":
        return cls(name=_get(d, "name", (str,)), device=_get(d, "device", (str,), required=False, default=""),
                   fields=_get(d, "fields", (dict,), required=False, default={}),
                   time=_get(d, "time", (str,), required=False, default=""))


@dataclasses.dataclass(frozen=True)
class Ack(Message):
    kind: ClassVar[str] = "ack"
    filename: str
    path: str = ""

    @classmethod
    def from_header(cls, d: dict, payload) -> "Ack":
        filename = _get(d, "filename", (str,))
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
            raise MessageError("filename", f"not a plain file name: {filename[:60]!r}")
        return cls(filename=filename, path=_get(d, "path", (str,), required=False, default=""))


@dataclasses.dataclass(frozen=True)
class DataMeta:
    """What a :class:`Data` payload is.  See the module docstring for the payload layout."""

    data_type: str                 # "image" | "spectrum"
    filename: str                  # PyCam file name
    device: str                    # CM1 / CM2 / SPC
    shape: tuple[int, ...]
    dtype: str                     # "<u2" for images, "<f8" for spectra
    time: str                      # ISO 8601 UTC, e.g. 2024-05-01T12:00:04+00:00
    frame_type: str                # Plume, Test, Dark, Clear, <N>ppmm
    band: str = ""                 # images: "on" / "off"
    exposure_us: int = 0           # images: actual exposure
    gain: float = 1.0              # images
    integration_ms: int = 0        # spectra
    coadd: int = 1                 # spectra

    @property
    def datetime(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.time)

    @property
    def nbytes(self) -> int:
        n = _ITEMSIZE.get(self.dtype) or np.dtype(self.dtype).itemsize
        for s in self.shape:
            n *= s
        return n

    def to_dict(self) -> dict:
        # field by field: dataclasses.asdict deep-copies and costs ~40 us per frame
        d = {f: getattr(self, f) for f in _META_FIELDS}
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "DataMeta":
        meta = _data_meta_fast(cls, d)
        if meta is not None:
            return meta
        return cls._from_dict_checked(d)

    @classmethod
    def _from_dict_checked(cls, d: Any) -> "DataMeta":
        """Field by field, raising MessageError naming the first bad field (the reference
        validation; :func:`_data_meta_fast` accepts a subset of what this accepts)."""
        if not isinstance(d, dict):
            raise MessageError("meta", "expected an object")
        data_type = _get(d, "data_type", (str,))
        if data_type not in DATA_TYPES:
            raise MessageError("data_type", f"unknown data type {data_type[:20]!r}")
        shape = d.get("shape")
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 1 << 20 for s in shape)):
            raise MessageError("shape", "expected a list of 1-3 positive integers")
        dtype = _get(d, "dtype", (str,))
        expected = IMAGE_DTYPE if data_type == "image" else SPECTRUM_DTYPE
        if dtype != expected:
            raise MessageError("dtype", f"{data_type} payloads must be {expected}, got {dtype[:10]!r}")
        time = _get(d, "time", (str,))
        try:
            dt.datetime.fromisoformat(time)
        except ValueError:
            raise MessageError("time", f"not an ISO 8601 time: {time[:40]!r}") from None
        meta = cls(data_type=data_type, filename=_get(d, "filename", (str,)), device=_get(d, "device", (str,)),
                   shape=tuple(shape), dtype=dtype, time=time, frame_type=_get(d, "frame_type", (str,)),
                   band=_get(d, "band", (str,), required=False, default=""),
                   exposure_us=_get(d, "exposure_us", (int,), required=False, default=0),
                   gain=float(_get(d, "gain", (int, float), required=False, default=1.0)),
                   integration_ms=_get(d, "integration_ms", (int,), required=False, default=0),
                   coadd=_get(d, "coadd", (int,), required=False, default=1))
        if "/" in meta.filename or "\\" in meta.filename or meta.filename.startswith("."):
            raise MessageError("filename", f"not a plain file name: {meta.filename[:60]!r}")
        if data_type == "spectrum" and (len(shape) != 2 or shape[0] != 2):
            raise MessageError("shape", f"spectra must have shape (2, N), got {tuple(shape)}")
        if data_type == "image" and len(shape) != 2:
            raise MessageError("shape", f"images must be 2-D, got {tuple(shape)}")
        return meta


_META_FIELDS = tuple(f.name for f in dataclasses.fields(DataMeta))
_EXPECTED_DTYPE = {"image": IMAGE_DTYPE, "spectrum": SPECTRUM_DTYPE}
_ITEMSIZE = {IMAGE_DTYPE: 2, SPECTRUM_DTYPE: 8}
_MAX_DIM = 1 << 20


def _text_ok(value: Any) -> bool:
    return type(value) is str and len(value) <= _MAX_TEXT


def _optional_int_ok(value: Any) -> bool:
    return value is None or type(value) is int


def _data_meta_fast(cls: type, d: Any) -> "DataMeta | None":
    """The DataMeta for a well-formed header in a few checks per field, or None when
    anything is unusual (then ``_from_dict_checked`` decides, and names the problem).

    Every check of ``_from_dict_checked`` is made here too, only stricter (exact types), so
    whatever this accepts the checked path accepts with the same result (a property test
    compares the two)."""
    if type(d) is not dict:
        return None
    get = d.get
    data_type, shape, dtype, time = get("data_type"), get("shape"), get("dtype"), get("time")
    filename, device, frame_type = get("filename"), get("device"), get("frame_type")
    band, exposure_us, gain = get("band"), get("exposure_us"), get("gain")
    integration_ms, coadd = get("integration_ms"), get("coadd")
    if (type(data_type) is not str or data_type not in _EXPECTED_DTYPE or dtype != _EXPECTED_DTYPE[data_type]
            or type(shape) is not list
            or len(shape) != 2 or not (_text_ok(filename) and _text_ok(device) and _text_ok(frame_type)
                                       and _text_ok(time) and (band is None or _text_ok(band)))
            or not (_optional_int_ok(exposure_us) and _optional_int_ok(integration_ms) and _optional_int_ok(coadd))):
        return None
    rows, cols = shape
    if (type(rows) is not int or type(cols) is not int or not 0 < rows <= _MAX_DIM or not 0 < cols <= _MAX_DIM
            or (data_type == "spectrum" and rows != 2)):
        return None
    if "/" in filename or "\\" in filename or filename.startswith("."):
        return None
    if gain is None:
        gain = 1.0
    elif type(gain) is float:
        if not math.isfinite(gain):
            return None
    elif type(gain) is int:
        gain = float(gain)
    else:
        return None
    try:
        dt.datetime.fromisoformat(time)
    except ValueError:
        return None
    # every field checked above: fill the frozen instance directly (its generated __init__
    # costs as much as all the checks together)
    meta = object.__new__(cls)
    meta.__dict__.update(data_type=data_type, filename=filename, device=device, shape=(rows, cols), dtype=dtype,
                         time=time, frame_type=frame_type, band="" if band is None else band,
                         exposure_us=0 if exposure_us is None else exposure_us, gain=gain,
                         integration_ms=0 if integration_ms is None else integration_ms,
                         coadd=1 if coadd is None else coadd)
    return meta


@dataclasses.dataclass(frozen=True)
class Data(Message):
    kind: ClassVar[str] = "data"
    meta: DataMeta
    payload: bytes | bytearray | memoryview = b""

    def header(self) -> dict:
        return {"kind": self.kind, "meta": self.meta.to_dict()}

    @property
    def payload_bytes(self):
        return self.payload

    def array(self) -> np.ndarray:
        """The image (rows, cols) uint16 or the spectrum (2, N) float64; a view on the payload."""
        return np.frombuffer(self.payload, dtype=self.meta.dtype).reshape(self.meta.shape)

    @property
    def wavelengths(self) -> np.ndarray:
        return self.array()[0]

    @property
    def counts(self) -> np.ndarray:
        return self.array()[1]

    @classmethod
    def from_header(cls, d: dict, payload) -> "Data":
        meta = DataMeta.from_dict(d.get("meta"))
        if len(payload) != meta.nbytes:
            raise MessageError("payload", f"{meta.filename}: payload is {len(payload)} bytes, "
                                          f"shape {meta.shape} {meta.dtype} needs {meta.nbytes}")
        return cls(meta=meta, payload=payload)

    @classmethod
    def from_array(cls, meta: DataMeta, array: np.ndarray) -> "Data":
        """Build a Data message; ``array`` is converted to the meta's dtype and C order."""
        arr = np.ascontiguousarray(array, dtype=np.dtype(meta.dtype))
        if tuple(arr.shape) != tuple(meta.shape):
            raise ValueError(f"array shape {arr.shape} does not match meta shape {meta.shape}")
        return cls(meta=meta, payload=memoryview(arr).cast("B"))


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.kind: cls for cls in (Challenge, Hello, Welcome, Subscribe, Command, Reply, Error, Event, Ack, Data)
}


_HEADER_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)   # stateless, like a struct.Struct


def encode(message: Message, *, checksum: bool = True) -> list[bytes | memoryview]:
    """The buffers of the frame carrying ``message`` (send them in order); ``checksum=False``
    for a frame the session MAC will cover (pycam.protocol.session)."""
    header = _HEADER_JSON.encode(message.header()).encode("utf-8")
    return encode_frame(header, message.payload_bytes, checksum=checksum)


def encode_bytes(message: Message) -> bytes:
    return b"".join(bytes(b) for b in encode(message))


def decode(frame: Frame) -> Message:
    """The message in ``frame``; raises :class:`MessageError` naming the bad field."""
    try:
        d = json.loads(frame.header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError("header", f"not valid UTF-8 JSON ({str(exc)[:80]})") from None
    if not isinstance(d, dict):
        raise MessageError("header", "expected a JSON object")
    kind = d.get("kind")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError("kind", f"unknown message kind {str(kind)[:20]!r}", _request_id(d))
    if cls is not Data and len(frame.payload):
        raise MessageError("payload", f"{kind} messages carry no payload", _request_id(d))
    try:
        return cls.from_header(d, frame.payload)
    except MessageError as exc:
        if exc.request_id is None:
            exc.request_id = _request_id(d)
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # defensive: never leak other errors
        raise MessageError(str(kind), f"malformed message ({str(exc)[:80]})", _request_id(d)) from None


def header_filename(header: bytes | None) -> str:
    """Best effort: the ``meta.filename`` in a raw header (for naming a damaged frame)."""
    if not header:
        return ""
    try:
        d = json.loads(header.decode("utf-8"))
        name = d["meta"]["filename"]
        return name if isinstance(name, str) else ""
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return ""


def utc_now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()
