"""When the master refuses files (its disk is full, it cannot write), a device backs off.

Every refusal of a file means, almost always, that the next file would be refused too, so
the pause applies to the whole link, not to one file: after a refusal nothing is sent for
``initial_s``; then ONE file is sent as a probe; a refused probe doubles the pause (up to
``maximum_s``), a stored one (the master's Ack) ends the back-off and the window opens again.
Refusals of files that were already in flight when the first one came back do not count
again.  So while the disk stays full a device re-sends at most one file per pause, instead
of its whole spool every few seconds.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


class ResendBackoff:
    def __init__(self, initial_s: float = 2.0, maximum_s: float = 60.0, factor: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < initial_s <= maximum_s or factor < 1:
            raise ValueError(f"resend back-off needs 0 < initial ({initial_s}) <= maximum ({maximum_s}), factor >= 1")
        self.initial_s = float(initial_s)
        self.maximum_s = float(maximum_s)
        self.factor = float(factor)
        self._clock = clock
        self._lock = threading.Lock()
        self._delay = self.initial_s
        self._until = 0.0
        self.probing = False      # after a refusal: one file at a time until one is stored
        self.refusals = 0         # refusals that started or extended a pause
        self.pauses: list[float] = []   # the pauses taken since the last success

    def refused(self) -> float:
        """A file was refused; returns the pause now in force (s)."""
        with self._lock:
            now = self._clock()
            if now < self._until:
                return self._until - now   # same failure, reported for another file in flight
            self._until = now + self._delay
            self.pauses.append(self._delay)
            self._delay = min(self.maximum_s, self._delay * self.factor)
            self.probing = True
            self.refusals += 1
            return self._until - now

    def stored(self) -> None:
        """The master stored a file: back to full speed."""
        with self._lock:
            self._delay = self.initial_s
            self._until = 0.0
            self.probing = False
            self.pauses.clear()

    def wait_left(self) -> float:
        """Seconds until the next file may be sent (0: now)."""
        with self._lock:
            return max(0.0, self._until - self._clock())
