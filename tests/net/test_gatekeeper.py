"""The gatekeeper's accept loop (pycam/net/gatekeeper.py): back-off when accept() runs out of descriptors."""
from __future__ import annotations

import errno
import logging
import socket
import time

import pytest

from pycam.net.gatekeeper import ConnectionPolicy, Gatekeeper
from pycam.protocol.session import ServerSession


class _EmfileListener(socket.socket):
    """A listening socket that is always readable and whose accept() always fails with EMFILE."""

    calls = 0

    def accept(self):
        type(self).calls += 1
        raise OSError(errno.EMFILE, "Too many open files")


@pytest.mark.slow
def test_accept_failures_back_off_and_are_logged_rarely(caplog):
    listener = _EmfileListener(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    knock = socket.create_connection(listener.getsockname())   # keeps the listener readable
    gate = Gatekeeper({"client": listener}, new_session=lambda tag: ServerSession({"client": "c" * 64}, "x"),
                      admit=lambda *a: "no", established=lambda h: None, max_payload_bytes=1024,
                      policy=ConnectionPolicy(accept_backoff_max_s=0.5, log_interval_s=60.0))
    with caplog.at_level(logging.INFO, logger="pycam.net.gatekeeper"):
        gate.start()
        time.sleep(2.0)
        gate.stop()
    knock.close()
    # a tight loop makes ~10^5 calls in 2 s; back-off 0.05, 0.1, 0.2, 0.4, 0.5, 0.5 ... makes about 8
    assert 2 <= _EmfileListener.calls < 30, _EmfileListener.calls
    lines = [r for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
