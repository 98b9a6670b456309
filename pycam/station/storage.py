"""Where the master puts received files: ``<data>/<YYYY-mm-dd>/{Seq_N|Cal_N|test_images}/``.

* ``Plume`` frames and ``Dark`` frames go to the current sequence folder ``Seq_N``;
* ``Test`` frames go to ``test_images`` (they never start anything);
* ``Clear`` and ``<N>ppmm`` (gas cell) frames go to the calibration folder ``Cal_N``.

``N`` continues the highest existing number of the day (so a restarted master keeps A/B
pairs together) and advances when a new acquisition or calibration is started.  Every file
is written atomically (hidden temporary, fsync, rename, directory fsync).
"""
from __future__ import annotations

import errno
import re
import shutil
import threading
from pathlib import Path

import numpy as np

from pycam.formats.images import encode_png, encode_spectrum_npy
from pycam.formats.atomic import atomic_write_bytes
from pycam.formats.names import day_folder, parse_any
from pycam.protocol.messages import Data


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


class DataStore:
    def __init__(self, data_dir: Path, min_free_mb: int = 0, fsync: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.min_free_mb = min_free_mb
        self.fsync = fsync
        self._lock = threading.Lock()
        self._numbers: dict[tuple[str, str], int] = {}   # (day, "Seq"/"Cal") -> N
        self._advance: set[str] = set()                 # kinds to advance at next file

    def new_sequence(self) -> None:
        with self._lock:
            self._advance.add("Seq")

    def new_calibration(self) -> None:
        with self._lock:
            self._advance.add("Cal")

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

    def store(self, data: Data) -> Path:
        """Verify and write ``data``; returns the final path.  Raises StorageError."""
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
            atomic_write_bytes(path, blob, fsync=self.fsync)
        except OSError as exc:
            kind = DiskFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
            raise kind(f"{path}: cannot write: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise StorageError(f"{meta.filename}: {exc}") from None
        return path

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
