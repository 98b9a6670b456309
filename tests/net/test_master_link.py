"""MasterLink, the one connect -> handshake -> serve -> back off loop that the station client
and every device's link run: against a bare socket, with a handshake that is refused once."""
from __future__ import annotations

import socket
import threading

from helpers.waiting import wait_for

from pycam.client import StationClient
from pycam.net.auth import AuthError
from pycam.net.connection import Connection
from pycam.net.reconnect import MasterLink
from pycam.protocol.messages import Event, Welcome
from pycam.station.device_link import DeviceLink


class Probe(MasterLink):
    """Records what the loop tells it; its handshake is refused ``refusals`` times."""

    def __init__(self, port: int, refusals: int) -> None:
        self.errors: list[str] = []   # every value last_error took (a refusal lasts only until the retry)
        network = {"master_host": "127.0.0.1", "max_frame_bytes": 1 << 20, "reconnect_max_s": 0.05}
        super().__init__(network, port, "not used", name="probe")
        self.refusals = refusals
        self.calls: list[tuple[str, object]] = []

    @property
    def last_error(self) -> str:
        return self._last_error

    @last_error.setter
    def last_error(self, value: str) -> None:
        self._last_error = value
        self.errors.append(value)

    def handshake(self, conn: Connection) -> Welcome:
        if self.refusals:
            self.refusals -= 1
            raise AuthError("wrong client secret")
        return Welcome(session="s1", mac="")

    def link_connected(self, welcome: Welcome) -> None:
        self.calls.append(("connected", (welcome.session, self.connected.is_set(), self.last_error)))

    def link_message(self, msg, conn: Connection) -> None:
        self.calls.append(("message", msg.name))

    def link_down(self, reconnecting: bool) -> None:
        self.calls.append(("down", (reconnecting, self.connected.is_set())))


def test_master_link_backs_off_authenticates_serves_and_reconnects():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))          # bound, not listening yet: connecting is refused
    port = server.getsockname()[1]
    link = Probe(port, refusals=1)
    thread = threading.Thread(target=link.run_link, daemon=True)
    thread.start()
    try:
        wait_for(lambda: link.last_error.startswith(f"cannot reach 127.0.0.1:{port}"), 10, what="unreachable")
        assert not link.connected.is_set() and link.calls == []
        server.listen()
        refused, _ = server.accept()       # the first handshake is refused: back off, connect again
        # the retry follows within 0.05 s and succeeds: the refusal is seen in the record
        wait_for(lambda: "authentication failed: wrong client secret" in link.errors, 10, what="refusal")
        refused.close()
        sock, _ = server.accept()
        master = Connection(sock)
        wait_for(lambda: link.calls, 10, what="connected")
        assert link.calls == [("connected", ("s1", True, ""))]
        master.send(Event(name="routed", device="", fields={}))
        wait_for(lambda: len(link.calls) == 2, 10, what="the event")
        assert link.calls[1] == ("message", "routed")
        master.close()                     # the master goes away: down, then connected again
        again, _ = server.accept()
        wait_for(lambda: len(link.calls) == 4, 10, what="reconnected")
        assert link.calls[2:] == [("down", (True, False)), ("connected", ("s1", True, ""))]
    finally:
        link.stop_link()
        thread.join(5)
        server.close()
    assert not thread.is_alive()
    assert link.calls[-1] == ("down", (False, False)) and not link.connected.is_set()
    again.close()


def test_the_client_and_the_devices_run_the_same_loop():
    for cls in (StationClient, DeviceLink):
        assert issubclass(cls, MasterLink)
        assert "run_link" not in vars(cls) and "_open" not in vars(cls)
