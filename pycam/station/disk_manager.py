"""Free disk space by deleting files the master has already confirmed, oldest first.

A file is *confirmed* when the master stored it and acknowledged it (``file_stored``).  The
:class:`ConfirmedFiles` ledger records those paths (fed by
``master.file_stored_callbacks.append(ledger.file_stored)``) in an append-only file (by default
``.pycam_confirmed`` in the data directory; the master keeps it beside its spool), so
confirmations survive restarts.  Nothing
else is ever deleted: unconfirmed files, processing results, users' files and anything
outside the managed directory stay.

:class:`DiskManager` checks every ``[schedule] disk_check_s``: while free space is below
``[schedule] disk_free_mb`` it deletes confirmed files, oldest first (PyCam time in the
name, else modification time), and reports a ``disk`` event with what it deleted, or a warning
when nothing deletable is left.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Callable

from pycam.formats.names import FileNameError, parse_any
from pycam.station.background import BackgroundLoop, periodic

log = logging.getLogger(__name__)

LEDGER_NAME = ".pycam_confirmed"
Publish = Callable[..., None]


class ConfirmedFiles:
    """Paths (under ``root``) the master confirmed; persisted in ``root/.pycam_confirmed``."""

    def __init__(self, root: Path, ledger: Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.ledger = Path(ledger) if ledger is not None else self.root / LEDGER_NAME
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._load()

    def _relative(self, path: Path) -> str | None:
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return None  # outside the managed directory: never ours to delete

    def _load(self) -> None:
        try:
            lines = self.ledger.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("disk manager: cannot read %s: %s (nothing will be deleted)", self.ledger, exc)
            return
        existing = {line for line in lines if line and (self.root / line).is_file()}
        self._paths = existing
        if len(existing) < len(lines):  # compact: forget files that are gone
            tmp = self.ledger.with_name(self.ledger.name + ".tmp")
            tmp.write_text("".join(p + "\n" for p in sorted(existing)), encoding="utf-8")
            os.replace(tmp, self.ledger)

    def add(self, path: Path) -> bool:
        rel = self._relative(path)
        if rel is None or "\n" in rel:
            return False
        with self._lock:
            if rel in self._paths:
                return True
            self.ledger.parent.mkdir(parents=True, exist_ok=True)
            with open(self.ledger, "a", encoding="utf-8") as fh:
                fh.write(rel + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._paths.add(rel)
        return True

    def file_stored(self, path: Path, device: str) -> None:
        """``master.file_stored_callbacks`` entry."""
        self.add(path)

    def __contains__(self, path: object) -> bool:
        rel = self._relative(Path(path))  # type: ignore[arg-type]
        with self._lock:
            return rel is not None and rel in self._paths

    def forget(self, path: Path) -> None:
        rel = self._relative(path)
        with self._lock:
            self._paths.discard(rel or "")

    def paths(self) -> list[Path]:
        with self._lock:
            return [self.root / p for p in self._paths]


def _age_key(path: Path) -> tuple[float, str]:
    try:
        return (parse_any(path.name).time.timestamp(), path.name)
    except (FileNameError, ValueError):
        try:
            return (path.stat().st_mtime, path.name)
        except OSError:
            return (0.0, path.name)


class DiskManager:
    def __init__(self, root: Path, min_free_mb: int, confirmed: ConfirmedFiles, *,
                 publish_event: Publish | None = None, check_s: float = 300.0,
                 free_bytes: Callable[[Path], int] | None = None) -> None:
        self.root = Path(root)
        self.min_free_bytes = int(min_free_mb) * 1024 * 1024
        self.confirmed = confirmed
        self._publish = publish_event or (lambda kind, **fields: None)
        self.check_s = float(check_s)
        self._free = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._loop = BackgroundLoop("disk-manager", periodic(self.check_s, self.check, "disk manager"))

    def check(self) -> list[Path]:
        """Delete confirmed files, oldest first, until free space is back above the threshold."""
        if not self.root.exists():
            return []
        free = self._free(self.root)
        if free >= self.min_free_bytes:
            return []
        deleted: list[Path] = []
        for path in sorted(self.confirmed.paths(), key=_age_key):
            if free >= self.min_free_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                self.confirmed.forget(path)
                continue
            except OSError as exc:
                log.error("disk manager: cannot delete %s: %s", path, exc)
                continue
            self.confirmed.forget(path)
            deleted.append(path)
            free = self._free(self.root)
        if deleted:
            log.warning("disk manager: free space below %d MB: deleted %d confirmed files (oldest %s)",
                        self.min_free_bytes // 2**20, len(deleted), deleted[0].name)
            self._publish("disk", action="deleted", count=len(deleted), oldest=deleted[0].name,
                          newest=deleted[-1].name, free_mb=free // 2**20)
        if free < self.min_free_bytes:
            self._publish("disk", action="low", free_mb=free // 2**20,
                          message="free space still below the threshold and no confirmed files left to delete")
        return deleted

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
