"""The master's storage state: one ``storage`` event when the disk fills, one when it clears.

While the data disk is full every file a device sends is refused (it stays in the device's
spool).  Instead of one error to every client and one log line per refused file, the master
reports the change of state once (``storage state=full`` with the reason), logs a one-line
summary at most every ``summary_every_s`` while it lasts, and reports ``state=ok`` (with the
number of refused files and the duration) at the first file stored again.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from pycam.protocol import events

log = logging.getLogger(__name__)


class StorageState:
    def __init__(self, publish: Callable[[events.StationEvent], None], *, summary_every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._publish = publish
        self._clock = clock
        self.summary_every_s = summary_every_s
        self._lock = threading.Lock()
        self.full = False
        self.reason = ""
        self.refused_files = 0
        self.episodes = 0
        self._since = 0.0
        self._last_summary = 0.0

    def refused(self, reason: str) -> None:
        """A file was refused because the disk is full."""
        now = self._clock()
        with self._lock:
            self.refused_files += 1
            if self.full:
                if now - self._last_summary < self.summary_every_s:
                    return
                self._last_summary = now
                count, since = self.refused_files, now - self._since
                first = False
            else:
                self.full, self.reason, self._since, self._last_summary = True, reason, now, now
                self.episodes += 1
                first = True
        if first:
            log.error("storage full: %s; files stay in the devices' spools until there is room", reason)
            self._publish(events.Storage(state="full", reason=reason, refused=1))
        else:
            log.warning("storage still full after %.0f s: %d files refused so far", since, count)

    def stored(self) -> None:
        """A file was stored: if the disk was full, it is not any more."""
        if not self.full:   # fast path, no lock: called for every stored file
            return
        with self._lock:
            if not self.full:
                return
            self.full = False
            count, duration = self.refused_files, self._clock() - self._since
            self.refused_files = 0
        log.info("storage available again after %.0f s (%d files were refused meanwhile)", duration, count)
        self._publish(events.Storage(state="ok", refused=count, duration_s=round(duration, 3)))

    def paused_reason(self) -> str | None:
        """For the watchdog: why silence is expected now (None: it is not)."""
        return f"storage full: {self.reason}" if self.full else None
