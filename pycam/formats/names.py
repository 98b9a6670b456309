"""PyCam file names for images and spectra.

Images: ``<YYYY-mm-ddTHHMMSS>_<fltrA|fltrB>_<gain>ag_<exposure_us>ss_<type>[_darkcorr].png``
Spectra: ``<YYYY-mm-ddTHHMMSS>_<integration_ms>ss_<coadd>coadd_<type>.npy``

``type`` is ``Plume``, ``Test``, ``Dark``, ``Clear`` or ``<N>ppmm`` (a gas cell of N ppm·m).
Times are whole seconds, no zone, treated as UTC.

This module is also the one definition of PyCam's time formats: :data:`TIME_FORMAT` (file
names), :data:`TEXT_TIME_FORMAT` (text outputs), :data:`ISO_TIME_FORMAT`, :data:`DAY_STAMP_FORMAT`
(emission-rate file names) and :data:`TIME_FORMS` (every form a PyCam text file carries), with
their helpers; nothing else writes these format strings out.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

#: The time in file names and image messages: ``2026-03-15T120000`` (UTC, whole seconds).
TIME_FORMAT = "%Y-%m-%dT%H%M%S"
#: The time in PyCam's text outputs (emission rates, calibration, DOAS results): ``2026-03-15 12:00:00``.
TEXT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: ISO 8601 with colons: ``2026-03-15T12:00:00`` (FITS ``DATE-OBS``, command-line times).
ISO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
#: The day in emission-rate file names: ``20260315``.
DAY_STAMP_FORMAT = "%Y%m%d"
#: Every form a time takes in PyCam's text files and spectrum headers (seconds may have a fraction).
TIME_FORMS = (TEXT_TIME_FORMAT, TEXT_TIME_FORMAT + ".%f", ISO_TIME_FORMAT, ISO_TIME_FORMAT + ".%f", TIME_FORMAT)
PLAIN_TYPES = ("Plume", "Test", "Dark", "Clear")
BAND_TO_FILTER = {"on": "fltrA", "off": "fltrB"}
FILTER_TO_BAND = {v: k for k, v in BAND_TO_FILTER.items()}

_TIME_RE = r"(?P<time>\d{4}-\d{2}-\d{2}T\d{6})"
_TYPE_RE = r"(?P<type>Plume|Test|Dark|Clear|\d+ppmm)"
_IMAGE_RE = re.compile(
    _TIME_RE + r"_(?P<filter>fltrA|fltrB)_(?P<gain>\d+)ag_(?P<exposure>\d+)ss_" + _TYPE_RE
    + r"(?P<darkcorr>_darkcorr)?\.(?P<ext>png|PNG)$"
)
_SPECTRUM_RE = re.compile(
    _TIME_RE + r"_(?P<integration>\d+)ss_(?P<coadd>\d+)coadd_" + _TYPE_RE + r"\.(?P<ext>npy)$"
)


class FileNameError(ValueError):
    """A file name does not follow the PyCam convention."""


def parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise FileNameError(f"bad time field {text!r}: expected {TIME_FORMAT}") from None


def naive_utc(when: dt.datetime) -> dt.datetime:
    """``when`` in UTC without its zone (a naive time is taken as UTC already)."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when


def aware_utc(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware UTC time (a naive time is taken as UTC already)."""
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)



def format_time(when: dt.datetime) -> str:
    """``when`` as a file-name time (:data:`TIME_FORMAT`)."""
    return naive_utc(when).strftime(TIME_FORMAT)


def format_text_time(when: dt.datetime, *, fraction: bool = False) -> str:
    """``when`` as a text-output time (:data:`TEXT_TIME_FORMAT`); with ``fraction`` a non-zero
    microsecond part is kept as ``.ffffff``."""
    when = naive_utc(when)
    text = when.strftime(TEXT_TIME_FORMAT)
    if fraction and when.microsecond:
        text += f".{when.microsecond:06d}"
    return text


def read_time(text: str, forms: tuple[str, ...] = TIME_FORMS) -> dt.datetime | None:
    """``text`` read in the first of ``forms`` it fits, as a UTC time; None when none fits."""
    for form in forms:
        try:
            return dt.datetime.strptime(text, form).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    return None


def day_stamp(when: dt.datetime) -> str:
    """The day of ``when`` (UTC) as in emission-rate file names, ``YYYYmmdd``."""
    return naive_utc(when).strftime(DAY_STAMP_FORMAT)


def check_frame_type(frame_type: str) -> str:
    """Return ``frame_type`` if it is a valid PyCam type, else raise ValueError."""
    if frame_type in PLAIN_TYPES or re.fullmatch(r"\d+ppmm", frame_type):
        return frame_type
    raise ValueError(f"bad frame type {frame_type!r}: expected one of {', '.join(PLAIN_TYPES)} or <N>ppmm")


def cell_ppmm(frame_type: str) -> int | None:
    """The cell amount in ppm·m for ``<N>ppmm`` types, else None."""
    m = re.fullmatch(r"(\d+)ppmm", frame_type)
    return int(m.group(1)) if m else None


@dataclasses.dataclass(frozen=True)
class ImageName:
    time: dt.datetime
    band: str  # "on" (fltrA) or "off" (fltrB)
    gain: int
    exposure_us: int
    frame_type: str
    darkcorr: bool = False

    def __post_init__(self) -> None:
        if self.band not in BAND_TO_FILTER:
            raise ValueError(f"bad band {self.band!r}: expected 'on' or 'off'")
        check_frame_type(self.frame_type)

    @property
    def filter_id(self) -> str:
        return BAND_TO_FILTER[self.band]

    @property
    def time_string(self) -> str:
        return format_time(self.time)

    @property
    def cell_ppmm(self) -> int | None:
        return cell_ppmm(self.frame_type)

    def filename(self) -> str:
        suffix = "_darkcorr" if self.darkcorr else ""
        return (f"{self.time_string}_{self.filter_id}_{self.gain}ag_{self.exposure_us}ss_"
                f"{self.frame_type}{suffix}.png")

    @classmethod
    def parse(cls, name: str) -> "ImageName":
        m = _IMAGE_RE.fullmatch(name.rsplit("/", 1)[-1])
        if not m:
            raise FileNameError(
                f"{name!r} is not a PyCam image name "
                "(<YYYY-mm-ddTHHMMSS>_<fltrA|fltrB>_<gain>ag_<exposure>ss_<type>.png)")
        return cls(time=parse_time(m["time"]), band=FILTER_TO_BAND[m["filter"]], gain=int(m["gain"]),
                   exposure_us=int(m["exposure"]), frame_type=m["type"], darkcorr=bool(m["darkcorr"]))


@dataclasses.dataclass(frozen=True)
class SpectrumName:
    time: dt.datetime
    integration_ms: int
    coadd: int
    frame_type: str

    def __post_init__(self) -> None:
        check_frame_type(self.frame_type)

    @property
    def time_string(self) -> str:
        return format_time(self.time)

    def filename(self) -> str:
        return f"{self.time_string}_{self.integration_ms}ss_{self.coadd}coadd_{self.frame_type}.npy"

    @classmethod
    def parse(cls, name: str) -> "SpectrumName":
        m = _SPECTRUM_RE.fullmatch(name.rsplit("/", 1)[-1])
        if not m:
            raise FileNameError(
                f"{name!r} is not a PyCam spectrum name (<YYYY-mm-ddTHHMMSS>_<ms>ss_<n>coadd_<type>.npy)")
        return cls(time=parse_time(m["time"]), integration_ms=int(m["integration"]),
                   coadd=int(m["coadd"]), frame_type=m["type"])


def parse_any(name: str) -> ImageName | SpectrumName:
    """Parse an image or spectrum name."""
    if name.endswith(".npy"):
        return SpectrumName.parse(name)
    return ImageName.parse(name)


def day_folder(when: dt.datetime) -> str:
    """The laptop/master layout's day folder name, ``YYYY-mm-dd``."""
    return naive_utc(when).date().isoformat()
