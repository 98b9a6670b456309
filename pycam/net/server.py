"""Listening sockets (SO_REUSEADDR, so a restarted master binds the same port at once) and the
process's open-file limit.  Accepting and the handshakes are pycam.net.gatekeeper's."""
from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)


class PortInUse(OSError):
    """Another process is listening on the port."""


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket with SO_REUSEADDR; raises PortInUse naming the address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise PortInUse(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def raise_fd_limit(wanted: int = 65536) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit);
    returns the (soft, hard) limits in force.  Does nothing where ``resource`` is missing."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft, hard
