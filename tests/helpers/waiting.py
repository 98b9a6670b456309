"""Waiting for a condition without sleeping blindly."""
from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 10.0, what: str = "condition", *, interval: float = 0.05):
    """Return predicate()'s first truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
