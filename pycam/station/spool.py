"""Store-and-forward: a device keeps every captured file on its own disk until the master
confirms it stored it.

Files are written atomically in the PyCam format (16-bit PNG / (2, N) float64 .npy) under
``<spool_dir>/<device>/`` with their PyCam names, so a spool is also a readable archive if the
master is never reached.  ``confirm(name)`` deletes a file once the master's Ack arrives.
After a crash, everything still in the directory is pending and is sent again.
"""
from __future__ import annotations

import collections
import datetime as dt
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from pycam.formats.atomic import atomic_write_bytes, is_temporary_name
from pycam.formats.images import encode_png, read_image, read_spectrum_npy, write_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName, parse_any
from pycam.protocol.messages import IMAGE_DTYPE, SPECTRUM_DTYPE, Data, DataMeta

#: recently spooled frames kept in memory so sending them needs no read back from disk
RECENT_IN_MEMORY = 4


class SpoolError(RuntimeError):
    """A spooled file cannot be written or read back (the message names it)."""


class Spool:
    def __init__(self, directory: Path, device: str) -> None:
        self.device = device
        self.directory = Path(directory) / device
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._recent: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._writing: set[str] = set()                    # announced, file not complete yet
        self._confirmed_while_writing: set[str] = set()    # acknowledged before that
        self._cleanup_temporaries()

    def _cleanup_temporaries(self) -> None:
        """Remove half-written temporaries left by a crash (their data was never confirmed
        as captured, so nothing is lost)."""
        for p in self.directory.iterdir():
            if p.name.startswith(".") and ".part-" in p.name:
                try:
                    p.unlink()
                except OSError:
                    pass

    # -- writing -------------------------------------------------------------------------
    def put_image(self, name: ImageName, pixels: np.ndarray,
                  announce: Callable[[str], None] | None = None) -> Path:
        """Spool an image atomically (temporary name, fsync, rename).

        ``announce(filename)``, when given, is called before the write starts: the frame is
        then already in memory and :meth:`load` serves it from there, so it can travel to
        the master while it is being written here.  The spool still counts it as pending
        until the master's Ack; an Ack that arrives before the write has finished deletes the
        file as soon as it is complete (:meth:`confirm`)."""
        filename = name.filename()
        pixels = np.ascontiguousarray(pixels, np.uint16)
        with self._lock:
            self._writing.add(filename)
        self._remember(filename, pixels)
        try:
            if announce is not None:
                announce(filename)
            try:
                path = atomic_write_bytes(self.directory / filename, encode_png(pixels))
            except OSError as exc:
                raise SpoolError(f"{self.directory / filename}: cannot spool image: {exc.strerror}") from None
        finally:
            with self._lock:
                self._writing.discard(filename)
                confirmed = filename in self._confirmed_while_writing
                self._confirmed_while_writing.discard(filename)
        if confirmed:   # the master has it already
            self.confirm(filename)
        return path

    def put_spectrum(self, name: SpectrumName, wavelengths: np.ndarray, counts: np.ndarray) -> Path:
        try:
            path = write_spectrum_npy(self.directory / name.filename(), wavelengths, counts)
        except OSError as exc:
            raise SpoolError(f"{self.directory / name.filename()}: cannot spool spectrum: {exc.strerror}") from None
        self._remember(name.filename(), np.vstack([np.asarray(wavelengths, np.float64),
                                                   np.asarray(counts, np.float64)]))
        return path

    def _remember(self, filename: str, array: np.ndarray) -> None:
        with self._lock:
            self._recent[filename] = array
            while len(self._recent) > RECENT_IN_MEMORY:
                self._recent.popitem(last=False)

    def _recall(self, filename: str) -> np.ndarray | None:
        """The in-memory copy (kept while the file is still being written: a resend may need it)."""
        with self._lock:
            if filename in self._writing:
                return self._recent.get(filename)
            return self._recent.pop(filename, None)

    def _being_written(self, filename: str) -> bool:
        with self._lock:
            return filename in self._writing

    # -- reading -------------------------------------------------------------------------
    def pending(self) -> list[str]:
        """Names of files not yet confirmed, oldest (by PyCam time, then name) first."""
        names = [p.name for p in self.directory.iterdir() if not is_temporary_name(p.name) and p.is_file()]
        return sorted(names)

    def __contains__(self, filename: str) -> bool:
        return self._being_written(filename) or (self.directory / filename).exists()

    @staticmethod
    def valid_name(filename: str) -> bool:
        """A plain PyCam file name (the only names a spool holds)."""
        if not isinstance(filename, str) or not filename or "/" in filename or "\\" in filename \
                or filename.startswith("."):
            return False
        try:
            parse_any(filename)
        except ValueError:
            return False
        return True

    def confirm(self, filename: str) -> bool:
        """The master stored ``filename``: delete the spooled copy.  False if not spooled (or
        not a spool file name at all: an acknowledgement can never delete anything else)."""
        if not self.valid_name(filename):
            return False
        with self._lock:
            if filename in self._writing:    # deleted by put_image once the file is complete
                self._confirmed_while_writing.add(filename)
                self._recent.pop(filename, None)
                return True
        self._recall(filename)
        path = self.directory / filename
        try:
            if not path.is_file() or path.is_symlink():
                return False
            path.unlink()
            return True
        except OSError:
            return False

    def load(self, filename: str, *, capture_time: dt.datetime | None = None) -> Data:
        """The spooled file as a Data message ready to send."""
        path = self.directory / filename
        try:
            parsed = parse_any(filename)
        except ValueError as exc:
            raise SpoolError(f"{path}: {exc}") from None
        when = (capture_time or parsed.time).isoformat()
        in_memory = self._recall(filename)
        if in_memory is not None and not (path.exists() or self._being_written(filename)):
            in_memory = None   # confirmed and deleted meanwhile
        try:
            if isinstance(parsed, ImageName):
                pixels = in_memory if in_memory is not None else read_image(path)
                meta = DataMeta(data_type="image", filename=filename, device=self.device, shape=pixels.shape,
                                dtype=IMAGE_DTYPE, time=when, frame_type=parsed.frame_type, band=parsed.band,
                                exposure_us=parsed.exposure_us, gain=float(parsed.gain))
                return Data.from_array(meta, pixels)
            arr = in_memory if in_memory is not None else read_spectrum_npy(path)
            meta = DataMeta(data_type="spectrum", filename=filename, device=self.device, shape=arr.shape,
                            dtype=SPECTRUM_DTYPE, time=when, frame_type=parsed.frame_type,
                            integration_ms=parsed.integration_ms, coadd=parsed.coadd)
            return Data.from_array(meta, arr)
        except ValueError as exc:  # ImageFileError / SpectrumFileError
            raise SpoolError(str(exc)) from None
