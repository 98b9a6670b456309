"""Hostile peers for the hardening tests: a drip flood (many connections, one byte every few
seconds, reconnecting when cut) and an on-path relay that can inject bytes."""
from __future__ import annotations

import errno
import selectors
import socket
import threading
import time

from pycam.protocol import messages as m

#: a real hello frame: dripping its bytes keeps the stream valid (never a complete frame)
DRIP_BYTES = m.encode_bytes(m.Hello(role="client", name="x" * 200, nonce="0" * 64, mac="0" * 64))


class DripFlood:
    """``count`` connections to ``port``, each sending the next byte of a hello every
    ``interval_s``; with ``reconnect_s`` a cut connection is reopened after that delay.
    Records for each connection how long it lived."""

    def __init__(self, port: int, count: int, interval_s: float = 2.0, reconnect_s: float | None = None) -> None:
        self.port, self.count, self.interval_s, self.reconnect_s = port, count, interval_s, reconnect_s
        self.lifetimes: list[float] = []       # seconds from connect to being cut by the master
        self.opened = 0
        self.connect_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drip-flood", daemon=True)
        self.all_open = threading.Event()

    def __enter__(self) -> "DripFlood":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self, sel, conns) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        err = sock.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.connect_failures += 1
            return
        state = {"t0": time.monotonic(), "pos": 0, "next": time.monotonic() + self.interval_s}
        conns[sock] = state
        sel.register(sock, selectors.EVENT_READ, state)
        self.opened += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        conns: dict[socket.socket, dict] = {}
        reopen_at: list[float] = []
        try:
            for _ in range(self.count):
                self._open(sel, conns)
            self.all_open.set()
            while not self._stop.is_set():
                now = time.monotonic()
                for key, _ in sel.select(0.05):
                    sock = key.fileobj
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self.lifetimes.append(time.monotonic() - key.data["t0"])
                        sel.unregister(sock)
                        sock.close()
                        del conns[sock]
                        if self.reconnect_s is not None:
                            reopen_at.append(time.monotonic() + self.reconnect_s)
                for sock, state in list(conns.items()):
                    if now >= state["next"] and state["pos"] < len(DRIP_BYTES) - 1:
                        try:
                            sock.send(DRIP_BYTES[state["pos"]:state["pos"] + 1])
                            state["pos"] += 1
                        except OSError:
                            pass
                        state["next"] = now + self.interval_s
                due = [t for t in reopen_at if t <= now]
                reopen_at = [t for t in reopen_at if t > now]
                for _ in due:
                    self._open(sel, conns)
        finally:
            for sock in conns:
                sock.close()
            sel.close()

    @property
    def open_now(self) -> int:
        return self.opened - len(self.lifetimes)


class Relay:
    """An on-path relay between a client and the master that forwards everything and can
    inject bytes into the client -> master direction."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.upstream: socket.socket | None = None
        self.ready = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, name="relay", daemon=True).start()

    def _serve(self) -> None:
        try:
            down, _ = self.listener.accept()
        except OSError:
            return
        up = socket.create_connection(("127.0.0.1", self.target_port))
        self.upstream = up
        self.ready.set()

        def pump(src, dst, lock):
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for s in (src, dst):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
                with lock:
                    try:
                        dst.sendall(data)
                    except OSError:
                        return

        threading.Thread(target=pump, args=(down, up, self._lock), daemon=True).start()
        threading.Thread(target=pump, args=(up, down, threading.Lock()), daemon=True).start()

    def inject(self, data: bytes) -> None:
        """Bytes into the stream towards the master, between two whole frames of the client."""
        with self._lock:
            self.upstream.sendall(data)

    def close(self) -> None:
        self.listener.close()
        if self.upstream is not None:
            self.upstream.close()
