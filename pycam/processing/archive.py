"""Reading PyCam image archives: listing, A/B pairing and streaming reads.

Nothing here holds a whole sequence in memory: :func:`scan_directory` lists names only,
:func:`read_pair` reads one :class:`FilePair` into an :class:`~pycam.formats.image_pair.ImagePair`,
and :class:`DirectoryWatcher` yields pairs as their two files appear.  Temporary names
(leading ``.``, PyCam ``.lock`` companions) are skipped, and a file whose ``<stem>.lock``
sits beside it is treated as still being written.

Pairing follows PyCam: on-band (``fltrA``) and off-band (``fltrB``) frames share the same
time string.  With ``tolerance_s > 0`` the nearest partner within the tolerance is taken
(one-to-one, in time order).  Unpaired frames are reported, never guessed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from pycam.formats.atomic import is_temporary_name
from pycam.formats.image_pair import ImagePair
from pycam.formats.images import ImageFileError, read_image
from pycam.formats.names import FileNameError, ImageName

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image file and its parsed name."""

    path: Path
    name: ImageName

    @property
    def time(self) -> dt.datetime:
        return self.name.time

    @property
    def band(self) -> str:
        return self.name.band

    @property
    def exposure_us(self) -> int:
        return self.name.exposure_us

    @property
    def frame_type(self) -> str:
        return self.name.frame_type


@dataclasses.dataclass(frozen=True)
class FilePair:
    """The on-band (A) and off-band (B) file of one time, not read yet (:func:`read_pair` reads them)."""

    time: dt.datetime
    a: ImageRecord
    b: ImageRecord


def _locked(directory: Path, filename: str, names: set[str]) -> bool:
    stem = filename.rsplit(".", 1)[0]
    return f"{stem}.lock" in names or f"{filename}.lock" in names


def scan_directory(directory: str | os.PathLike[str], *, frame_types: Sequence[str] | None = None,
                   include_darkcorr: bool = False) -> list[ImageRecord]:
    """All PyCam image files in ``directory`` (not recursive), sorted by time then band.

    ``frame_types`` filters on the type field (``"Plume"``, ``"Dark"``, ``"Clear"``,
    ``"ppmm"`` matching any cell).  ``_darkcorr`` copies are derived products and skipped
    unless ``include_darkcorr``.  Files that are not PyCam images are ignored.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory")
    names = set(os.listdir(d))
    out: list[ImageRecord] = []
    for filename in names:
        if is_temporary_name(filename) or not filename.lower().endswith(".png"):
            continue
        if _locked(d, filename, names):
            continue
        try:
            parsed = ImageName.parse(filename)
        except (FileNameError, ValueError):
            log.debug("ignoring %s: not a PyCam image name", filename)
            continue
        if parsed.darkcorr and not include_darkcorr:
            continue
        if frame_types is not None and not _type_matches(parsed.frame_type, frame_types):
            continue
        out.append(ImageRecord(d / filename, parsed))
    out.sort(key=lambda r: (r.time, r.band, r.path.name))
    return out


def _type_matches(frame_type: str, wanted: Sequence[str]) -> bool:
    for w in wanted:
        if frame_type == w or (w == "ppmm" and frame_type.endswith("ppmm")):
            return True
    return False


@dataclasses.dataclass
class PairingResult:
    pairs: list[FilePair]
    unpaired: list[ImageRecord]


def pair_records(records: Iterable[ImageRecord], tolerance_s: float = 0.0) -> PairingResult:
    """Pair on-band with off-band records of the same type by time.

    ``tolerance_s == 0`` pairs identical time stamps only (PyCam).  Otherwise each A frame
    takes the nearest unused B frame of the same type within the tolerance, in time order.
    """
    by_type: dict[str, tuple[list[ImageRecord], list[ImageRecord]]] = {}
    for r in records:
        a_list, b_list = by_type.setdefault(r.frame_type, ([], []))
        (a_list if r.band == "on" else b_list).append(r)
    pairs: list[FilePair] = []
    unpaired: list[ImageRecord] = []
    for a_list, b_list in by_type.values():
        a_list.sort(key=lambda r: r.time)
        b_list.sort(key=lambda r: r.time)
        used = [False] * len(b_list)
        j0 = 0
        for a in a_list:
            best, best_dt = -1, None
            while j0 < len(b_list) and (a.time - b_list[j0].time).total_seconds() > tolerance_s:
                j0 += 1
            j = j0
            while j < len(b_list) and (b_list[j].time - a.time).total_seconds() <= tolerance_s:
                if not used[j]:
                    gap = abs((b_list[j].time - a.time).total_seconds())
                    if best_dt is None or gap < best_dt:
                        best, best_dt = j, gap
                j += 1
            if best >= 0:
                used[best] = True
                pairs.append(FilePair(a.time, a, b_list[best]))
            else:
                unpaired.append(a)
        unpaired.extend(b for b, u in zip(b_list, used) if not u)
    pairs.sort(key=lambda p: p.time)
    unpaired.sort(key=lambda r: (r.time, r.band))
    return PairingResult(pairs, unpaired)


def find_plume_pairs(directory: str | os.PathLike[str], tolerance_s: float = 0.0,
                     frame_types: Sequence[str] = ("Plume",)) -> PairingResult:
    """Pairs of ``Plume`` frames (or other types) in ``directory``, in time order."""
    return pair_records(scan_directory(directory, frame_types=frame_types), tolerance_s)


def read_record(record: ImageRecord) -> np.ndarray:
    """Read one image (uint16); raises :class:`ImageFileError` naming the file."""
    return read_image(record.path)


def read_pair(pair: FilePair) -> ImagePair:
    """Read both images of a pair; raises :class:`ImageFileError` naming the bad file."""
    a = read_image(pair.a.path)
    b = read_image(pair.b.path)
    if a.shape != b.shape:
        raise ImageFileError(f"{pair.b.path}: shape {b.shape} differs from its on-band partner {a.shape}")
    return ImagePair(pair.time, a, b, pair.a.exposure_us, pair.b.exposure_us, pair.a.frame_type,
                     str(pair.a.path), str(pair.b.path))


def iter_pair_images(pairs: Iterable[FilePair], problems: list[str] | None = None) -> Iterator[ImagePair]:
    """Read pairs one at a time; corrupt or truncated files are logged, appended to
    ``problems`` and skipped."""
    for pair in pairs:
        try:
            images = read_pair(pair)
        except ImageFileError as exc:
            log.warning("skipping pair %s: %s", pair.time.isoformat(), exc)
            if problems is not None:
                problems.append(str(exc))
            continue
        yield images


class DirectoryWatcher:
    """Yield new pairs from a directory as both halves appear (``pycam process --watch``).

    New files are expected to appear atomically (written under a temporary name, then
    renamed) or guarded by PyCam ``.lock`` files.  Only names are remembered, and only for
    pairs newer than ``memory_s`` before the latest one, so memory stays bounded.
    """

    def __init__(self, directory: str | os.PathLike[str], tolerance_s: float = 0.0,
                 memory_s: float = 3600.0) -> None:
        self.directory = Path(directory)
        self.tolerance_s = tolerance_s
        self.memory_s = memory_s
        self._done: dict[str, dt.datetime] = {}   # file name -> pair time
        self._latest: dt.datetime | None = None

    def mark_done(self, pair: FilePair) -> None:
        self._done[pair.a.path.name] = pair.time
        self._done[pair.b.path.name] = pair.time
        if self._latest is None or pair.time > self._latest:
            self._latest = pair.time

    def _prune(self) -> None:
        if self._latest is None or len(self._done) < 64:
            return
        cutoff = self._latest - dt.timedelta(seconds=self.memory_s)
        self._done = {k: t for k, t in self._done.items() if t >= cutoff}

    def poll(self) -> list[FilePair]:
        """Pairs whose two files are present and that were not yielded before."""
        records = [r for r in scan_directory(self.directory, frame_types=("Plume",))
                   if r.path.name not in self._done]
        if self._latest is not None:
            cutoff = self._latest - dt.timedelta(seconds=self.memory_s)
            records = [r for r in records if r.time >= cutoff]
        pairs = pair_records(records, self.tolerance_s).pairs
        for pair in pairs:
            self.mark_done(pair)
        self._prune()
        return pairs
