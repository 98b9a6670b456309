"""Where the master puts received files: ``<data>/<YYYY-mm-dd>/{Seq_N|Cal_N|test_images}/``.

* ``Plume`` frames and ``Dark`` frames go to the current sequence folder ``Seq_N``;
* ``Test`` frames go to ``test_images`` (they never start anything);
* ``Clear`` and ``<N>ppmm`` (gas cell) frames go to the calibration folder ``Cal_N``.

``N`` continues the highest existing number of the day (so a restarted master keeps A/B
pairs together) and advances when a new acquisition or calibration is started.  Every file
is written atomically (hidden temporary, fsync, link, directory fsync) and **never replaces a
stored file**: the same name with the same content is acknowledged again (idempotent resend);
with different content the new data is kept as ``<folder>/conflicts/<stem>.conflict-<n><ext>``
and reported (:class:`Stored` ``conflict``).  :func:`check_origin` says which device may send
which names (camera A only ``fltrA`` images, camera B only ``fltrB``, the spectrometer only
spectra).  The master's own half-written temporaries (``.<name>.part-*``) in the most recent
day folders are removed at start.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np

from pycam.formats.images import encode_png, encode_spectrum_npy
from pycam.formats.atomic import TEMP_MARKER, atomic_write_bytes
from pycam.formats.images import read_image, read_spectrum_npy
from pycam.formats.names import ImageName, day_folder, parse_any
from pycam.protocol import commands as vocab
from pycam.protocol.messages import Data, DataMeta

#: day folders (newest first) searched for the master's own leftover temporaries at start
CLEAN_RECENT_DAYS = 7
_MAX_CONFLICTS = 1000


class StorageError(RuntimeError):
    """A file could not be stored (bad name, disk full, I/O error); the message says which."""


class DiskFull(StorageError):
    """No room for the file (below ``min_free_mb``, or the system said ENOSPC/EDQUOT)."""


def folder_kind(frame_type: str) -> str:
    if frame_type in ("Plume", "Dark"):
        return "Seq"
    if frame_type == "Test":
        return "test_images"
    return "Cal"


@dataclasses.dataclass(frozen=True)
class Stored:
    """Where a file went.  ``conflict``: a different file of that name was already stored and
    this one was kept beside it under ``path``; ``duplicate``: the very same file was already
    stored at ``path`` (a resend)."""

    path: Path
    conflict: bool = False
    duplicate: bool = False


_ALLOWED = {vocab.CAMERA_A: ("image", "on"), vocab.CAMERA_B: ("image", "off"), vocab.SPECTROMETER: ("spectrum", "")}


def check_origin(device: str, meta: DataMeta) -> str | None:
    """Why ``device`` may not send the file ``meta`` describes (None when it may): its name
    must parse as a PyCam name of the device's own kind and filter, agreeing with the meta."""
    if device not in _ALLOWED:
        return f"{meta.filename}: unknown device {device!r}"
    data_type, band = _ALLOWED[device]
    what = {"on": "band 'on' (fltrA) images", "off": "band 'off' (fltrB) images", "": "spectra"}[band]
    try:
        parsed = parse_any(meta.filename)
    except ValueError as exc:
        return str(exc)
    name_type = "image" if isinstance(parsed, ImageName) else "spectrum"
    name_band = parsed.band if isinstance(parsed, ImageName) else ""
    meta_band = meta.band if meta.data_type == "image" else ""
    if (name_type, name_band) != (data_type, band) or (meta.data_type, meta_band) != (data_type, band):
        return f"{meta.filename}: {device} may only send {what}"
    return None


class DataStore:
    def __init__(self, data_dir: Path, min_free_mb: int = 0, fsync: bool = True) -> None:
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self.data_dir, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")
        except OSError as exc:
            raise StorageError(f"[storage] data_dir = {str(self.data_dir)!r}: cannot use it for data: "
                               f"{exc.strerror or exc}") from None
        self.min_free_mb = min_free_mb
        self.fsync = fsync
        self._lock = threading.Lock()
        self._numbers: dict[tuple[str, str], int] = {}   # (day, "Seq"/"Cal") -> N
        self._advance: set[str] = set()                 # kinds to advance at next file

    def new_sequence(self) -> None:
        with self._lock:
            self._advance.add("Seq")

    def _number(self, day: str, kind: str) -> int:
        key = (day, kind)
        if key not in self._numbers or kind in self._advance:
            existing = [int(m.group(1)) for p in (self.data_dir / day).glob(f"{kind}_*")
                        if (m := re.fullmatch(rf"{kind}_(\d+)", p.name)) and p.is_dir()]
            highest = max(existing, default=0)
            if kind in self._advance:
                self._advance.discard(kind)
                self._numbers[key] = highest + 1
            else:
                self._numbers[key] = max(highest, 1)
        return self._numbers[key]

    def path_for(self, filename: str) -> Path:
        try:
            parsed = parse_any(filename)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        day = day_folder(parsed.time)
        kind = folder_kind(parsed.frame_type)
        with self._lock:
            folder = kind if kind == "test_images" else f"{kind}_{self._number(day, kind)}"
        return self.data_dir / day / folder / filename

    def clean_temporaries(self, days: int = CLEAN_RECENT_DAYS) -> list[Path]:
        """Remove the master's own half-written files (``.<name>.part-*``, left by a kill or a
        power cut) in the ``days`` newest day folders; returns what was removed."""
        removed = []
        try:
            day_dirs = sorted((p for p in self.data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                              reverse=True)[:days]
        except OSError:
            return removed
        for day in day_dirs:
            for dirpath, _dirs, files in os.walk(day):
                for name in files:
                    if name.startswith(".") and TEMP_MARKER in name:
                        path = Path(dirpath) / name
                        try:
                            path.unlink()
                            removed.append(path)
                        except OSError:
                            pass
        return removed

    def store(self, data: Data) -> Stored:
        """Verify and write ``data`` without ever replacing a stored file (see the module
        docstring); raises StorageError."""
        meta = data.meta
        path = self.path_for(meta.filename)
        if meta.data_type == "image" and not meta.filename.endswith(".png"):
            raise StorageError(f"{meta.filename}: image data needs a .png PyCam name")
        if meta.data_type == "spectrum" and not meta.filename.endswith(".npy"):
            raise StorageError(f"{meta.filename}: spectrum data needs a .npy PyCam name")
        self._check_space(len(data.payload))
        try:
            arr = data.array()
            if meta.data_type == "image":
                blob = encode_png(np.asarray(arr, np.uint16))
            else:
                blob = encode_spectrum_npy(arr[0], arr[1])
        except ValueError as exc:
            raise StorageError(f"{meta.filename}: {exc}") from None
        try:
            try:
                atomic_write_bytes(path, blob, fsync=self.fsync, replace=False)
                return Stored(path)
            except FileExistsError:
                pass
            if self._same_content(path, blob, arr, meta.data_type):
                return Stored(path, duplicate=True)
            return Stored(self._write_conflict(path, blob), conflict=True)
        except OSError as exc:
            kind = DiskFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
            raise kind(f"{path}: cannot write: {exc.strerror or exc}") from None

    @staticmethod
    def _same_content(path: Path, blob: bytes, arr, data_type: str) -> bool:
        try:
            if path.read_bytes() == blob:
                return True
            old = read_image(path) if data_type == "image" else read_spectrum_npy(path)
        except (OSError, ValueError):
            return False
        return old.shape == arr.shape and bool(np.array_equal(old, arr))

    def _write_conflict(self, path: Path, blob: bytes) -> Path:
        folder = path.parent / "conflicts"
        for n in range(1, _MAX_CONFLICTS + 1):
            candidate = folder / f"{path.stem}.conflict-{n}{path.suffix}"
            try:
                return atomic_write_bytes(candidate, blob, fsync=self.fsync, replace=False)
            except FileExistsError:
                continue
        raise StorageError(f"{path.name}: more than {_MAX_CONFLICTS} different files of this name")

    def _check_space(self, nbytes: int) -> None:
        if not self.min_free_mb:
            return
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError as exc:
            raise StorageError(f"{self.data_dir}: cannot check free space: {exc.strerror}") from None
        if free - nbytes < self.min_free_mb * 1024 * 1024:
            raise DiskFull(f"disk full: {free // (1024 * 1024)} MB free in {self.data_dir}, "
                               f"[storage] min_free_mb = {self.min_free_mb}")
