"""A named daemon thread that can be started and stopped (used by the schedule, the watchdog
and the disk manager, which each run one loop in the background of the master)."""
from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs ``body(stop_event)`` on a daemon thread; ``stop()`` sets the event and joins."""

    def __init__(self, name: str, body: Callable[[threading.Event], None]) -> None:
        self.name = name
        self._body = body
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop_event.clear()
        self._thread = threading.Thread(target=self._body, args=(self.stop_event,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None


def periodic(period_s: float, check: Callable[[], object], what: str) -> Callable[[threading.Event], None]:
    """A loop body calling ``check()`` every ``period_s`` until stopped; a failing check is
    logged (with ``what``) and the loop carries on."""

    def body(stop: threading.Event) -> None:
        while not stop.wait(period_s):
            try:
                check()
            except Exception:
                log.exception("%s: check failed", what)

    return body
