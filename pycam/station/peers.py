"""One authenticated connection as the master sees it, with its own writer thread.

Messages to a peer go through a bounded queue so one slow or stuck peer never blocks the
master or the other peers: control messages (replies, errors, events, acks) are always
queued (a peer that lets ``MAX_QUEUED`` pile up is disconnected); data frames for
subscribers are dropped for that peer when ``MAX_DATA_IN_FLIGHT`` are already waiting.
"""
from __future__ import annotations

import logging
import queue
import threading

from pycam.net.connection import Connection, ConnectionClosed
from pycam.protocol.messages import Data, Message

log = logging.getLogger(__name__)

MAX_QUEUED = 2048
MAX_DATA_IN_FLIGHT = 4


class Peer:
    def __init__(self, conn: Connection, *, session: str, role: str, name: str, device: str = "",
                 subscribe: tuple[str, ...] = ()) -> None:
        self.conn = conn
        self.session = session
        self.role = role
        self.name = name
        self.device = device
        self.subscribe = set(subscribe)
        self._queue: queue.Queue = queue.Queue(MAX_QUEUED)
        self._data_waiting = 0
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_loop, name=f"write-{device or name}", daemon=True)
        self.dropped_data = 0

    def start(self) -> None:
        self._writer.start()

    @property
    def label(self) -> str:
        return self.device or f"{self.name}#{self.session}"

    def send(self, message: Message) -> bool:
        """Queue a message; False if the peer is gone or too slow (then it is disconnected)."""
        if self.conn.closed:
            return False
        is_data = isinstance(message, Data)
        with self._lock:
            if is_data:
                if self._data_waiting >= MAX_DATA_IN_FLIGHT:
                    self.dropped_data += 1
                    return False
                self._data_waiting += 1
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            log.warning("%s: %d messages waiting, disconnecting the slow peer", self.label, MAX_QUEUED)
            self.close()
            return False
        return True

    def _write_loop(self) -> None:
        while True:
            msg = self._queue.get()
            if msg is None:
                return
            if isinstance(msg, Data):
                with self._lock:
                    self._data_waiting -= 1
            try:
                self.conn.send(msg)
            except ConnectionClosed:
                return
            except Exception:  # never let a bad message kill the writer silently
                log.exception("%s: cannot send %s", self.label, type(msg).__name__)

    def close(self) -> None:
        self.conn.close()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            # make room for the stop marker: the peer is gone anyway
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(None)
