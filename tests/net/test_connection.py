"""Connection (pycam/net/connection.py): timed receives on any descriptor number."""
from __future__ import annotations

import os
import socket

import pytest

from pycam.net.connection import Connection
from pycam.net.server import raise_fd_limit
from pycam.protocol import messages as m


def test_receive_with_a_deadline_works_on_descriptors_above_1024():
    """A busy station hands out descriptors numbered past select()'s 1024 limit (the drip-flood
    test in tests/station/test_station_hardening.py did, in CI): a timed receive there must still work, not report a closed peer."""
    soft, _ = raise_fd_limit()
    if 0 < soft <= 1600:
        pytest.skip(f"open-file limit {soft} too low to place a socket at descriptor 1500")
    a, b = socket.socketpair()
    high_fd = os.dup2(a.fileno(), 1500)
    a.close()
    high = socket.socket(fileno=high_fd)
    try:
        assert high.fileno() >= 1024
        conn, peer = Connection(high), Connection(b)
        with pytest.raises(TimeoutError):
            conn.receive(timeout=0.05)
        peer.send(m.Command(request_id=7, device="master", key="LOG", value=0))
        msg = conn.receive(timeout=5)
        assert isinstance(msg, m.Command) and msg.request_id == 7
    finally:
        high.close()
        b.close()
