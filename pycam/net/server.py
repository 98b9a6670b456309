"""Listening sockets (SO_REUSEADDR, so a restarted master binds the same port at once) and
an acceptor thread that waits on all of them without polling."""
from __future__ import annotations

import logging
import selectors
import socket
import threading
from typing import Callable

log = logging.getLogger(__name__)


class PortInUse(OSError):
    """Another process is listening on the port."""


def listen(host: str, port: int, backlog: int = 64) -> socket.socket:
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


class Acceptor:
    """Accepts connections on several listening sockets in one thread.

    ``on_accept(sock, address, tag)`` is called for each new connection (it should hand the
    socket to its own thread quickly).  ``stop()`` wakes the thread through a socketpair.
    """

    def __init__(self, listeners: dict[str, socket.socket],
                 on_accept: Callable[[socket.socket, tuple, str], None], name: str = "acceptor") -> None:
        self.listeners = listeners
        self.on_accept = on_accept
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for tag, sock in self.listeners.items():
            sel.register(sock, selectors.EVENT_READ, tag)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    try:
                        conn, addr = key.fileobj.accept()
                    except OSError as exc:
                        if self._stopping.is_set():
                            return
                        log.warning("accept failed on %s: %s", key.data, exc)
                        continue
                    try:
                        self.on_accept(conn, addr, key.data)
                    except Exception:  # a handler bug must not stop accepting
                        log.exception("connection handler failed")
                        conn.close()
        finally:
            sel.close()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        for sock in self.listeners.values():
            try:
                sock.close()
            except OSError:
                pass
        self._wake_r.close()
        self._wake_w.close()


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
