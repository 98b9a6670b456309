"""Rate-limited logging: a failure that repeats (a flood, a full descriptor table) is logged
once per interval with the number of repeats, so the log cannot fill a Pi's SD card."""
from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """``log(key, level, msg, *args)``: the first message of ``key`` goes out at once; repeats
    within ``interval_s`` are counted and reported with the next message that goes out."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, clock=time.monotonic) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args) -> bool:
        """Log (True) or count (False) one occurrence."""
        now = self._clock()
        with self._lock:
            if now < self._next.get(key, float("-inf")):
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._next[key] = now + self.interval_s
            repeats = self._suppressed.pop(key, 0)
        if repeats:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, repeats, self.interval_s)
        self.logger.log(level, msg, *args)
        return True
