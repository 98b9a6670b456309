"""Connecting with exponential backoff (with jitter), forever or until told to stop."""
from __future__ import annotations

import random
import socket
import threading

from pycam.net.connection import tune_socket


class Backoff:
    """Delays 0.1, 0.2, 0.4 … up to ``maximum`` seconds, +/-20 % jitter; ``reset()`` after success."""

    def __init__(self, maximum: float = 10.0, initial: float = 0.1, factor: float = 2.0,
                 jitter: float = 0.2, rng: random.Random | None = None) -> None:
        self.maximum = maximum
        self.initial = min(initial, maximum)
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._next = self.initial

    def reset(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return max(0.0, delay * (1 + self._rng.uniform(-self.jitter, self.jitter)))


def connect(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """One TCP connection attempt (raises OSError); the returned socket is blocking."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(None)
    tune_socket(sock)
    return sock


def connect_with_backoff(host: str, port: int, stop: threading.Event, backoff: Backoff,
                         on_failure=None) -> socket.socket | None:
    """Try until connected (returns the socket) or ``stop`` is set (returns None)."""
    while not stop.is_set():
        try:
            sock = connect(host, port)
        except OSError as exc:
            if on_failure is not None:
                on_failure(exc)
            stop.wait(backoff.next_delay())
            continue
        return sock
    return None
