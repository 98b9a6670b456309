"""The replay drivers (``--driver replay --replay-dir DIR``): serve a real PyCam archive's frames
as if they were being captured now, so the station, the GUI and the live chain run on real data.

* :class:`ReplayCamera` serves the images of its band (``fltrA`` for "on", ``fltrB`` for
  "off"), :class:`ReplaySpectrometer` the ``.npy`` spectra; both find files by their PyCam
  names anywhere below the directory (the laptop layout ``<day>/Seq_N/...`` or a flat folder).
  Other files are ignored; ``.lock``-ed files (still being written) are skipped.
* The k-th capture of a run serves the k-th archived frame of the requested type (``Plume`` for
  continuous capture), in time order, stamped with the *trigger* time: the service names and
  stores it as a frame taken now, at the configured rate.  The archive's own cadence is not
  reproduced.  The two cameras stay paired because both step through the same list of times:
  the archive's Plume times that exist in **both** bands (unpaired frames are left out, with a
  warning), so start them together (one ``STC`` to ``all``, as the station does).
* The exposure, gain and integration time are the archived ones (they are facts of the
  recorded frame): ``set_exposure``/``set_integration_time`` record the request and return the
  value of the next frame to be served; the limits declare the archive's range.  Auto-exposure
  therefore changes nothing.
* At the end of the archive the driver loops (``end="loop"``, the default) or stops
  (``end="stop"``: every later capture raises :class:`DriverError` saying the end was reached).
* Frame types other than Plume (``Dark``, ``Clear``, ``Test``, ``<N>ppmm``) are served from the
  archive's frames of that type (cycling); a type the archive lacks raises a clear error.
* A file that cannot be read is skipped with a logged warning (once) and the next one is served;
  an empty or missing directory, or one where nothing can be read, is an error from ``open()``.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pycam.drivers.base import (Capability, CameraDriver, CameraFrame, CameraLimits, DriverError, SpectrometerDriver,
                                SpectrometerLimits, SpectrumFrame)
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import FileNameError, ImageName, SpectrumName

log = logging.getLogger(__name__)

END_MODES = ("loop", "stop")
PLUME = "Plume"


@dataclasses.dataclass(frozen=True)
class ArchiveEntry:
    path: Path
    name: ImageName | SpectrumName


def scan_archive(directory: str | os.PathLike[str], kind: str) -> list[ArchiveEntry]:
    """Every PyCam ``kind`` file ("image" or "spectrum") below ``directory``, in time order.

    Raises :class:`DriverError` for a missing directory or one without such files."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DriverError(f"replay: {root} is not a directory")
    suffix, parser = (".png", ImageName.parse) if kind == "image" else (".npy", SpectrumName.parse)
    entries = []
    for path in root.rglob(f"*{suffix}"):
        if not path.is_file() or path.with_name(path.stem + ".lock").exists():
            continue
        try:
            name = parser(path.name)
        except (FileNameError, ValueError):
            continue
        if isinstance(name, ImageName) and name.darkcorr:
            continue   # a processed copy, not a capture
        entries.append(ArchiveEntry(path, name))
    if not entries:
        raise DriverError(f"replay: no PyCam {kind} files (*{suffix} with PyCam names) in {root}")
    entries.sort(key=lambda e: (e.name.time, e.path.name))
    return entries


class _Sequence:
    """The frames of one type, served in order, looping or stopping at the end, skipping
    unreadable files (warned once each)."""

    def __init__(self, label: str, entries: list[ArchiveEntry], reader: Callable[[Path], Any], end: str) -> None:
        self.label = label
        self.entries = entries
        self.reader = reader
        self.end = end
        self.position = 0
        self.served = 0
        self.bad: set[Path] = set()

    def peek(self) -> ArchiveEntry | None:
        good = [e for e in self.entries if e.path not in self.bad]
        if not good:
            return None
        if self.position >= len(self.entries) and self.end == "stop":
            return None
        for k in range(len(self.entries)):
            entry = self.entries[(self.position + k) % len(self.entries)]
            if entry.path not in self.bad:
                return entry
        return None

    def next(self) -> tuple[ArchiveEntry, Any]:
        for _ in range(len(self.entries) + 1):
            if self.position >= len(self.entries):
                if self.end == "stop":
                    raise DriverError(f"replay {self.label}: end of the archive reached after {self.served} "
                                      f"frames (end mode 'stop')")
                self.position = 0
                log.info("replay %s: end of the archive after %d frames, starting again (end mode 'loop')",
                         self.label, self.served)
            entry = self.entries[self.position]
            self.position += 1
            if entry.path in self.bad:
                continue
            try:
                data = self.reader(entry.path)
            except (OSError, ValueError) as exc:
                self.bad.add(entry.path)
                log.warning("replay %s: skipping unreadable file %s: %s", self.label, entry.path, exc)
                continue
            self.served += 1
            return entry, data
        raise DriverError(f"replay {self.label}: none of the {len(self.entries)} files can be read")


def _check_end(end: str) -> str:
    if end not in END_MODES:
        raise DriverError(f"replay: end mode must be one of {', '.join(END_MODES)}, got {end!r}")
    return end


def _group(entries: list[ArchiveEntry]) -> dict[str, list[ArchiveEntry]]:
    groups: dict[str, list[ArchiveEntry]] = collections.defaultdict(list)
    for e in entries:
        groups[e.name.frame_type].append(e)
    return dict(groups)


def _replay_dir(replay_dir) -> Path:
    if replay_dir in (None, ""):
        raise DriverError("replay driver: no archive given (--replay-dir DIR)")
    return Path(replay_dir)


class ReplayCamera(CameraDriver):
    """Serves an archive's images of one band; see the module docstring."""

    capabilities = frozenset({Capability.FRAME_TYPES})

    def __init__(self, config: Any, band: str, replay_dir: str | os.PathLike[str] | None = None,
                 end: str = "loop") -> None:
        if band not in ("on", "off"):
            raise DriverError(f"replay camera: band must be 'on' or 'off', got {band!r}")
        self.band = band
        self.directory = _replay_dir(replay_dir)
        self.end = _check_end(end)
        self._sequences: dict[str, _Sequence] | None = None
        self._limits: CameraLimits | None = None
        self.requested_shutter_us: int | None = None
        self.requested_gain: float | None = None

    @property
    def label(self) -> str:
        return f"camera {self.band} ({self.directory})"

    def open(self) -> None:
        entries = scan_archive(self.directory, "image")
        mine = [e for e in entries if e.name.band == self.band]
        if not mine:
            raise DriverError(f"replay {self.label}: no {self.band}-band (fltr{'A' if self.band == 'on' else 'B'}) "
                              f"images")
        groups = _group(mine)
        plume = groups.get(PLUME, [])
        other_times = {e.name.time for e in entries if e.name.band != self.band and e.name.frame_type == PLUME}
        if plume and other_times:
            paired = [e for e in plume if e.name.time in other_times]
            if len(paired) < len(plume):
                log.warning("replay %s: %d of %d Plume images have no partner of the other band and are left out",
                            self.label, len(plume) - len(paired), len(plume))
            if paired:
                groups[PLUME] = paired
        self._sequences = {t: _Sequence(f"{self.label} {t}", g, read_image, self.end) for t, g in groups.items()}
        shape = None
        for seq in self._sequences.values():
            for entry in seq.entries:
                try:
                    shape = read_image(entry.path).shape
                    break
                except (OSError, ValueError) as exc:
                    seq.bad.add(entry.path)
                    log.warning("replay %s: skipping unreadable file %s: %s", self.label, entry.path, exc)
            if shape is not None:
                break
        if shape is None:
            raise DriverError(f"replay {self.label}: none of the {len(mine)} images can be read")
        shutters = [e.name.exposure_us for e in mine]
        gains = [float(e.name.gain) for e in mine]
        self._limits = CameraLimits(min(shutters), max(shutters), min(gains), max(gains), tuple(shape), 1023)
        log.info("replay %s: %s", self.label, ", ".join(f"{len(s.entries)} {t}" for t, s in self._sequences.items()))

    def close(self) -> None:
        self._sequences = None

    def _sequence(self, frame_type: str) -> _Sequence:
        if self._sequences is None:
            raise DriverError(f"replay {self.label}: not open")
        try:
            return self._sequences[frame_type]
        except KeyError:
            raise DriverError(f"replay {self.label}: the archive has no {frame_type} images "
                              f"(it has {', '.join(sorted(self._sequences)) or 'none'})") from None

    @property
    def limits(self) -> CameraLimits:
        if self._limits is None:
            raise DriverError(f"replay {self.label}: limits are known after open()")
        return self._limits

    def _next_plume_name(self) -> ImageName | None:
        if self._sequences is None or PLUME not in self._sequences:
            return None
        entry = self._sequences[PLUME].peek()
        return None if entry is None else entry.name

    def set_exposure(self, shutter_us: int) -> int:
        """Recorded, but the archive fixes the exposure: returns the next frame's."""
        self.requested_shutter_us = int(shutter_us)
        name = self._next_plume_name()
        return int(name.exposure_us) if name is not None else int(shutter_us)

    def set_gain(self, gain: float) -> float:
        self.requested_gain = float(gain)
        name = self._next_plume_name()
        return float(name.gain) if name is not None else float(gain)

    def capture(self, when: dt.datetime, frame_type: str = PLUME) -> CameraFrame:
        entry, pixels = self._sequence(frame_type).next()
        if pixels.ndim != 2 or (self._limits is not None and pixels.shape != self._limits.shape):
            raise DriverError(f"replay {self.label}: {entry.path.name} has shape {pixels.shape}, "
                              f"the archive's first image {self.limits.shape}")
        return CameraFrame(pixels=np.asarray(pixels, np.uint16), time=when, exposure_us=int(entry.name.exposure_us),
                           gain=float(entry.name.gain), band=self.band)


def _read_spectrum(path: Path) -> np.ndarray:
    data = read_spectrum_npy(path)
    if data.ndim != 2 or data.shape[0] != 2:
        raise ValueError(f"{path.name}: expected a (2, N) spectrum, got shape {data.shape}")
    return data


class ReplaySpectrometer(SpectrometerDriver):
    """Serves an archive's spectra; see the module docstring."""

    capabilities = frozenset({Capability.FRAME_TYPES})

    def __init__(self, config: Any, replay_dir: str | os.PathLike[str] | None = None, end: str = "loop") -> None:
        self.directory = _replay_dir(replay_dir)
        self.end = _check_end(end)
        self._sequences: dict[str, _Sequence] | None = None
        self._wavelengths: np.ndarray | None = None
        self._limits: SpectrometerLimits | None = None
        self.requested_integration_ms: int | None = None

    @property
    def label(self) -> str:
        return f"spectrometer ({self.directory})"

    def open(self) -> None:
        entries = scan_archive(self.directory, "spectrum")
        self._sequences = {t: _Sequence(f"{self.label} {t}", g, _read_spectrum, self.end)
                           for t, g in _group(entries).items()}
        for seq in self._sequences.values():
            for entry in seq.entries:
                try:
                    self._wavelengths = _read_spectrum(entry.path)[0].astype(np.float64)
                    break
                except (OSError, ValueError) as exc:
                    seq.bad.add(entry.path)
                    log.warning("replay %s: skipping unreadable file %s: %s", self.label, entry.path, exc)
            if self._wavelengths is not None:
                break
        if self._wavelengths is None:
            raise DriverError(f"replay {self.label}: none of the {len(entries)} spectra can be read")
        times = [e.name.integration_ms for e in entries]
        self._limits = SpectrometerLimits(float(min(times)), float(max(times)), int(self._wavelengths.size))

    def close(self) -> None:
        self._sequences = None

    @property
    def limits(self) -> SpectrometerLimits:
        if self._limits is None:
            raise DriverError(f"replay {self.label}: limits are known after open()")
        return self._limits

    def wavelengths(self) -> np.ndarray:
        if self._wavelengths is None:
            raise DriverError(f"replay {self.label}: not open")
        return self._wavelengths.copy()

    def set_integration_time(self, integration_ms: int) -> int:
        """Recorded, but the archive fixes it: returns the next Plume spectrum's."""
        self.requested_integration_ms = int(integration_ms)
        seq = (self._sequences or {}).get(PLUME)
        entry = seq.peek() if seq is not None else None
        return int(entry.name.integration_ms) if entry is not None else int(integration_ms)

    def capture(self, when: dt.datetime, coadd: int = 1, frame_type: str = PLUME) -> SpectrumFrame:
        if self._sequences is None:
            raise DriverError(f"replay {self.label}: not open")
        if frame_type not in self._sequences:
            raise DriverError(f"replay {self.label}: the archive has no {frame_type} spectra "
                              f"(it has {', '.join(sorted(self._sequences)) or 'none'})")
        entry, data = self._sequences[frame_type].next()
        if data.shape[1] != self.limits.pixels:
            raise DriverError(f"replay {self.label}: {entry.path.name} has {data.shape[1]} pixels, "
                              f"the archive's first spectrum {self.limits.pixels}")
        return SpectrumFrame(wavelengths=data[0].astype(np.float64), counts=data[1].astype(np.float64), time=when,
                             integration_ms=int(entry.name.integration_ms), coadd=int(entry.name.coadd))
