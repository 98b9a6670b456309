"""Network helpers for tests (the station's own port picker, pycam.station.launcher)."""
from __future__ import annotations

from pycam.station.launcher import free_loopback_ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_loopback_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (two free_port() calls may return the same one)."""
    return free_loopback_ports(n)
