"""Camera adapter for the NILU EnviCam-2 (ECII) SO2 camera: file names, FITS frames, dark model.

pyplis ships an ECII data set (Etna, 16 Sep 2015) with its wheel; this module lets our chain
read it beside PyCam's own files.

File names: ``EC2_<serial>_<revision>_<YYYYmmddHHMMSSff>_<code>_<place>.fts``, ``ff`` being
hundredths of a second (UTC).  ``code``:

* ``F01`` on-band (310 nm) image, ``F02`` off-band (330 nm) image (one sensor, filter wheel);
* ``D0L`` / ``D0H`` offset frames (shortest exposure) at low / high read gain;
* ``D1L`` / ``D1H`` dark frames (long exposure) at low / high read gain.

Frames are single-HDU FITS files (read here with a small reader for the primary HDU: any
BITPIX, BZERO/BSCALE applied).  Header keys used: ``EXP`` exposure in microseconds, ``GAIN``
``LOW``/``HIGH``, ``STIME`` start of acquisition, ``PYRLEVEL`` (the reduced copies in pyplis's
test data are Gaussian-pyramid level 4, 84x64 px).

Dark/offset model (as pyplis does for this camera): for an image of exposure ``t`` at read
gain g, with offset ``O`` and dark ``D_L`` of exposures ``t_O`` and ``t_L`` at that gain,

    D(t) = O + (D_L - O) * t / (t_L - t_O)

:class:`EcIIDarks` gives it through ``get(band, exposure_us)`` (the interface of
:class:`~pycam.processing.corrections.DarkLibrary`); both bands share the sensor and so the darks.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

FITS_BLOCK = 2880
FITS_CARD = 80
_BITPIX_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

#: code in the file name -> (band or None, frame kind, read gain or None)
ECII_CODES = {
    "F01": ("on", "Plume", None),
    "F02": ("off", "Plume", None),
    "D0L": (None, "Offset", "LOW"),
    "D1L": (None, "Dark", "LOW"),
    "D0H": (None, "Offset", "HIGH"),
    "D1H": (None, "Dark", "HIGH"),
}
_NAME_RE = re.compile(r"^(?P<cam>EC2)_(?P<serial>\w+?)_(?P<rev>\w+?)_(?P<time>\d{16})_(?P<code>[A-Z0-9]{3})"
                      r"_(?P<place>[^.]*)\.(?P<ext>fts|fits|FTS|FITS)$")


class EcIIFileError(ValueError):
    """An ECII file name or FITS file is not what this adapter expects (the message says why)."""


@dataclasses.dataclass(frozen=True)
class EcIIName:
    """Parsed ECII file name."""

    serial: str
    time: dt.datetime          # UTC, to 1/100 s
    code: str                  # F01, F02, D0L, D1L, D0H, D1H
    place: str

    @property
    def band(self) -> str | None:
        return ECII_CODES[self.code][0]

    @property
    def kind(self) -> str:
        """``Plume`` (a filter image: sky, plume, cell or clear), ``Dark`` or ``Offset``."""
        return ECII_CODES[self.code][1]

    @property
    def gain(self) -> str | None:
        """Read gain of a dark/offset frame (``LOW``/``HIGH``); None for filter images."""
        return ECII_CODES[self.code][2]

    @classmethod
    def parse(cls, name: str) -> "EcIIName":
        base = os.path.basename(str(name))
        m = _NAME_RE.match(base)
        if not m:
            raise EcIIFileError(f"{base!r} is not an ECII file name "
                                "(EC2_<serial>_<rev>_<YYYYmmddHHMMSSff>_<code>_<place>.fts)")
        code = m.group("code")
        if code not in ECII_CODES:
            raise EcIIFileError(f"{base!r}: unknown ECII frame code {code!r} (expected one of "
                                f"{', '.join(ECII_CODES)})")
        t = m.group("time")
        try:
            when = dt.datetime.strptime(t[:14], "%Y%m%d%H%M%S").replace(
                microsecond=int(t[14:]) * 10000, tzinfo=dt.timezone.utc)
        except ValueError:
            raise EcIIFileError(f"{base!r}: bad time field {t!r}") from None
        return cls(m.group("serial"), when, code, m.group("place"))


def read_fits(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict]:
    """Primary-HDU image and header (keys upper case; strings stripped, numbers as numbers).

    Raises :class:`EcIIFileError` naming the file for anything that is not a 2-D image.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise EcIIFileError(f"{p}: cannot read: {exc}") from None
    header: dict = {}
    pos, end_found = 0, False
    while pos + FITS_BLOCK <= len(raw) and not end_found:
        block = raw[pos:pos + FITS_BLOCK]
        pos += FITS_BLOCK
        for i in range(0, FITS_BLOCK, FITS_CARD):
            card = block[i:i + FITS_CARD].decode("ascii", "replace")
            key = card[:8].strip()
            if key == "END":
                end_found = True
                break
            if card[8:10] == "= ":
                header[key] = _card_value(card[10:])
    if not end_found or header.get("SIMPLE") is not True:
        raise EcIIFileError(f"{p}: not a FITS file (no SIMPLE = T header ending in END)")
    bitpix = header.get("BITPIX")
    naxis = header.get("NAXIS")
    if bitpix not in _BITPIX_DTYPE or naxis != 2:
        raise EcIIFileError(f"{p}: expected a 2-D image HDU, got BITPIX={bitpix} NAXIS={naxis}")
    w, h = int(header["NAXIS1"]), int(header["NAXIS2"])
    dtype = np.dtype(_BITPIX_DTYPE[bitpix])
    nbytes = w * h * dtype.itemsize
    if pos + nbytes > len(raw):
        raise EcIIFileError(f"{p}: truncated FITS data ({len(raw) - pos} of {nbytes} bytes)")
    data = np.frombuffer(raw, dtype, w * h, pos).reshape(h, w)
    scale, zero = header.get("BSCALE", 1), header.get("BZERO", 0)
    if scale != 1 or zero != 0:
        data = data.astype(np.float64) * scale + zero
    else:
        data = data.astype(dtype.newbyteorder("="))
    return data, header


def _card_value(text: str):
    text = text.strip()
    if text.startswith("'"):
        end = text.find("'", 1)
        while end != -1 and text[end + 1:end + 2] == "'":   # '' is a quote inside the string
            end = text.find("'", end + 2)
        return text[1:end if end != -1 else None].replace("''", "'").strip()
    value = text.split("/", 1)[0].strip()
    if value == "T":
        return True
    if value == "F":
        return False
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


@dataclasses.dataclass
class EcIIFrame:
    """One ECII frame: the image (float64) and what the adapter knows about it."""

    path: Path
    name: EcIIName
    image: np.ndarray
    exposure_us: float
    gain: str
    start: dt.datetime
    pyrlevel: int

    @property
    def band(self) -> str | None:
        return self.name.band

    @property
    def kind(self) -> str:
        return self.name.kind


def _header_float(header: dict, key: str, path) -> float:
    try:
        return float(header[key])
    except (KeyError, TypeError, ValueError):
        raise EcIIFileError(f"{path}: FITS header lacks a numeric {key}") from None


def read_frame(path: str | os.PathLike[str]) -> EcIIFrame:
    """Read an ECII FITS frame: name fields, image, exposure (``EXP``, us), gain, start time."""
    p = Path(path)
    name = EcIIName.parse(p.name)
    img, header = read_fits(p)
    exposure = _header_float(header, "EXP", p)
    if not exposure > 0:
        raise EcIIFileError(f"{p}: exposure EXP={exposure} is not positive")
    gain = str(header.get("GAIN", "LOW")).upper()
    if gain not in ("LOW", "HIGH"):
        raise EcIIFileError(f"{p}: GAIN {gain!r} is neither LOW nor HIGH")
    start = name.time
    stime = header.get("STIME")
    if isinstance(stime, str):
        try:
            start = dt.datetime.strptime(stime, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return EcIIFrame(p, name, img.astype(np.float64), exposure, gain, start, int(header.get("PYRLEVEL", 0) or 0))


def scan_ecii(directory: str | os.PathLike[str]) -> list[tuple[Path, EcIIName]]:
    """``(path, name)`` of every ECII file in ``directory``, in time order (others are ignored)."""
    d = Path(directory)
    if not d.is_dir():
        raise EcIIFileError(f"{d} is not a directory")
    out = []
    for p in d.iterdir():
        try:
            out.append((p, EcIIName.parse(p.name)))
        except EcIIFileError:
            continue
    out.sort(key=lambda item: item[1].time)
    return out


def select(files: Iterable[tuple[Path, EcIIName]], *, code: str | None = None, kind: str | None = None,
           band: str | None = None, start: dt.datetime | None = None, stop: dt.datetime | None = None
           ) -> list[Path]:
    """Paths of the scanned files matching every given criterion (times inclusive, UTC)."""
    out = []
    for p, n in files:
        if code is not None and n.code != code:
            continue
        if kind is not None and n.kind != kind:
            continue
        if band is not None and n.band != band:
            continue
        if start is not None and n.time < start:
            continue
        if stop is not None and n.time > stop:
            continue
        out.append(p)
    return out


def pair_frames(files: Iterable[tuple[Path, EcIIName]], max_dt_s: float = 5.0, start: dt.datetime | None = None,
                stop: dt.datetime | None = None) -> list[tuple[Path, Path]]:
    """On/off pairs of the scanned files in ``[start, stop]``: each F01 frame with the nearest
    unused F02 frame within ``max_dt_s`` (one sensor with a filter wheel: the off-band frame
    comes a moment after)."""
    files = [(p, n) for p, n in files if (start is None or n.time >= start) and (stop is None or n.time <= stop)]
    ons = [(p, n) for p, n in files if n.code == "F01"]
    offs = [(p, n) for p, n in files if n.code == "F02"]
    used: set[Path] = set()
    pairs = []
    for p, n in ons:
        best, best_dt = None, max_dt_s
        for q, m in offs:
            d = abs((m.time - n.time).total_seconds())
            if q not in used and d <= best_dt:
                best, best_dt = q, d
        if best is not None:
            used.add(best)
            pairs.append((p, best))
    return pairs


class EcIIDarks:
    """Dark/offset model of the ECII (module docstring); duck-compatible with ``DarkLibrary.get``.

    Build it with :meth:`for_gain` / :meth:`from_directory` (``gain`` selects the frames; the
    plume images of pyplis's data set are all low gain).
    """

    def __init__(self, offset: EcIIFrame, dark: EcIIFrame) -> None:
        self.offset = offset
        self.dark = dark
        if offset.image.shape != dark.image.shape:
            raise EcIIFileError(f"offset {offset.path} and dark {dark.path} differ in shape")
        span = self.dark.exposure_us - self.offset.exposure_us
        if not span > 0:
            raise EcIIFileError(f"dark {self.dark.path} ({self.dark.exposure_us} us) is not longer than "
                                f"offset {self.offset.path} ({self.offset.exposure_us} us)")
        self._span = span
        self._cache: dict[float, np.ndarray] = {}

    @classmethod
    def for_gain(cls, offsets: dict[str, EcIIFrame], darks: dict[str, EcIIFrame], gain: str = "LOW") -> "EcIIDarks":
        """The model from the offset and dark frame of read gain ``gain`` (``LOW``/``HIGH``)."""
        if gain not in offsets or gain not in darks:
            raise EcIIFileError(f"no {gain}-gain offset and dark frame (have offsets {sorted(offsets)}, "
                                f"darks {sorted(darks)})")
        return cls(offsets[gain], darks[gain])

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str], gain: str = "LOW") -> "EcIIDarks":
        """The first offset and dark frame of each gain found in ``directory``."""
        offsets: dict[str, EcIIFrame] = {}
        darks: dict[str, EcIIFrame] = {}
        for p, n in scan_ecii(directory):
            if n.kind == "Offset" and n.gain not in offsets:
                offsets[n.gain] = read_frame(p)
            elif n.kind == "Dark" and n.gain not in darks:
                darks[n.gain] = read_frame(p)
        return cls.for_gain(offsets, darks, gain)

    def bands(self) -> set[str]:
        return {"on", "off"}

    def get(self, band: str, exposure_us: float) -> np.ndarray:
        """Modelled dark (float32) for an image of ``exposure_us`` (either band)."""
        if band not in ("on", "off"):
            raise ValueError(f"band must be 'on' or 'off', got {band!r}")
        key = float(exposure_us)
        if key not in self._cache:
            o = self.offset.image
            self._cache[key] = (o + (self.dark.image - o) * (key / self._span)).astype(np.float32)
        return self._cache[key]
