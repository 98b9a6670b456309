"""Events a device raises while the master is out of reach, kept until it is back.

Each event is written atomically as one small JSON file (``<seq>.json``, the wire header of
the Event) in ``<spool_dir>/<device>_events/``, beside the spooled data files, so events
survive a restart of the device too.  At most ``limit`` are kept: the oldest are dropped
first and counted (``dropped``; the link reports the count once it is connected).
On reconnect :meth:`drain` sends them in the order they were raised, each one deleted once
sent.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
from pathlib import Path
from typing import Callable

from pycam.formats.atomic import atomic_write_text, is_temporary_name
from pycam.protocol.errors import MessageError
from pycam.protocol.messages import Event

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 500


class OfflineEvents:
    def __init__(self, directory: Path, limit: int = DEFAULT_LIMIT, fsync: bool = True) -> None:
        if limit < 1:
            raise ValueError("the offline event limit must be at least 1")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.limit = limit
        self.fsync = fsync
        self.dropped = 0
        self._lock = threading.Lock()
        files = self._files()
        last = int(files[-1].stem) if files else 0
        self._seq = itertools.count(last + 1)

    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.glob("*.json") if not is_temporary_name(p.name) and p.stem.isdigit())

    def __len__(self) -> int:
        return len(self._files())

    def add(self, event: Event) -> None:
        header = event.header()
        with self._lock:
            path = self.directory / f"{next(self._seq):012d}.json"
            try:
                atomic_write_text(path, json.dumps(header, separators=(",", ":")), fsync=self.fsync)
            except OSError as exc:
                self.dropped += 1
                log.warning("cannot keep event %s while offline: %s", event.name, exc)
                return
            files = self._files()
            for old in files[:max(0, len(files) - self.limit)]:
                old.unlink(missing_ok=True)
                self.dropped += 1

    def drain(self, send: Callable[[Event], bool]) -> int:
        """Send the kept events, oldest first; stops at the first failed send.  Returns the
        number sent."""
        sent = 0
        with self._lock:
            for path in self._files():
                try:
                    d = json.loads(path.read_text())
                    event = Event.from_header(d, b"")
                except (OSError, ValueError, MessageError, TypeError) as exc:
                    log.warning("dropping unreadable offline event %s: %s", path.name, exc)
                    path.unlink(missing_ok=True)
                    self.dropped += 1
                    continue
                if not send(event):
                    break
                path.unlink(missing_ok=True)
                sent += 1
        return sent
