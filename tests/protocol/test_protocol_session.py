"""The socket-free session state machine: handshake, per-role secrets, the MAC on every frame."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycam.protocol import messages as m
from pycam.protocol import session as s
from pycam.protocol.frames import FLAG_MAC_HMAC, FLAG_MAC_GMAC, encode_frame_bytes

DEVICE_SECRET = "d" * 64
CLIENT_SECRET = "c" * 64


def pair(role="client", secret=CLIENT_SECRET, port_roles=None, device=""):
    server = s.ServerSession(port_roles or {"client": CLIENT_SECRET}, "sess1", max_payload_bytes=1 << 24)
    client = s.ClientSession(secret, role=role, name="t", device=device, max_payload_bytes=1 << 24)
    return server, client


def handshake(server, client, chunk=None):
    """Run the handshake over bytes (optionally split into ``chunk``-byte pieces); returns the
    server's and the client's events."""
    def deliver(data, to):
        if chunk is None:
            return to.receive_data(data)
        events = []
        for i in range(0, len(data), chunk):
            events += to.receive_data(data[i:i + chunk])
        return events

    client_events = deliver(server.data_to_send(), client)            # challenge
    server_events = deliver(client.data_to_send(), server)            # hello
    if any(isinstance(e, s.Authenticated) for e in server_events):
        server.welcome(("CM1",))
    client_events += deliver(server.data_to_send(), client)           # welcome or error
    return server_events, client_events


def image(name="2024-05-01T120004_fltrA_1ag_1000ss_Plume.png", value=7):
    meta = m.DataMeta(data_type="image", filename=name, device="CM1", shape=(4, 5), dtype="<u2",
                      time="2024-05-01T12:00:04+00:00", frame_type="Plume", band="on", exposure_us=1000)
    return m.Data.from_array(meta, np.full((4, 5), value, np.uint16))


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_handshake_then_every_frame_is_authenticated_both_ways(chunk):
    server, client = pair()
    server_events, client_events = handshake(server, client, chunk)
    assert [type(e) for e in server_events] == [s.Authenticated]
    assert [type(e) for e in client_events] == [s.Established]
    assert server.established and client.established
    cmd = m.Command(request_id=3, device="CM1", key="SSA", value=1000)
    wire = client.send(cmd) + client.send(image())
    got = []
    for i in range(0, len(wire), chunk or len(wire)):
        got += server.receive_data(wire[i:i + (chunk or len(wire))])
    assert [type(e.message) for e in got] == [m.Command, m.Data]
    assert got[0].message == cmd and np.all(got[1].message.array() == 7)
    reply = client.receive_data(server.send(m.Reply(request_id=3, device="CM1", key="SSA", value=990)))
    assert reply[0].message.value == 990


def test_injected_frame_after_the_handshake_is_refused():
    server, client = pair()
    handshake(server, client)
    injected = m.encode_bytes(m.Command(request_id=9, device="master", key="EXT", value=1))
    events = server.receive_data(client.send(m.Subscribe(data_types=("image",))) + injected)
    assert isinstance(events[0], s.MessageReceived)
    assert isinstance(events[-1], s.Refused) and "without the session MAC" in events[-1].reason
    assert server.closed


@pytest.mark.parametrize("position", [0, 5, 30, -3])
def test_a_flipped_bit_anywhere_in_a_signed_frame_is_refused(position):
    server, client = pair()
    handshake(server, client)
    wire = bytearray(client.send(image()))
    wire[position] ^= 0x01
    events = server.receive_data(bytes(wire))
    assert events and isinstance(events[-1], s.Refused)
    assert not any(isinstance(e, s.MessageReceived) for e in events)


def test_a_replayed_frame_is_refused():
    server, client = pair()
    handshake(server, client)
    frame = client.send(m.Command(request_id=1, device="CM1", key="SSA", value=1000))
    assert isinstance(server.receive_data(frame)[0], s.MessageReceived)
    assert isinstance(server.receive_data(frame)[0], s.Refused)


def test_frames_from_the_master_are_checked_by_the_client_too():
    server, client = pair()
    handshake(server, client)
    forged = m.encode_bytes(m.Ack(filename="2024-05-01T120004_fltrA_1ag_1000ss_Plume.png"))
    assert isinstance(client.receive_data(forged)[0], s.Refused)


def test_a_client_credential_cannot_act_as_a_device():
    server, client = pair(role="device", secret=CLIENT_SECRET, port_roles={"device": DEVICE_SECRET}, device="CM2")
    server_events, client_events = handshake(server, client)
    assert isinstance(server_events[0], s.Refused) and "wrong device secret" in server_events[0].reason
    assert isinstance(client_events[-1], s.Refused) and "device_secret" in client_events[-1].reason
    # and the device role is not accepted on the client port at all, whatever the secret
    server, client = pair(role="device", secret=DEVICE_SECRET, device="CM2")
    server_events, _ = handshake(server, client)
    assert "not accepted on this port" in server_events[0].reason


def test_anything_before_the_hello_is_refused_naming_the_key():
    server = s.ServerSession({"client": CLIENT_SECRET}, "x")
    server.data_to_send()
    events = server.receive_data(m.encode_bytes(m.Command(request_id=4, device="CM1", key="SSA", value=1)))
    assert isinstance(events[0], s.Refused)
    reply = s.ClientSession("z" * 64, role="client", name="n").receive_data(server.data_to_send())
    assert isinstance(reply[0], s.Refused) and "SSA" in reply[0].reason and "not authenticated" in reply[0].reason


def test_hmac_fallback_frames_verify(monkeypatch):
    server, client = pair()
    handshake(server, client)
    if s.HAVE_GMAC:
        first = client.send(image())
        assert first[5] & FLAG_MAC_GMAC
        assert isinstance(server.receive_data(first)[0], s.MessageReceived)
    monkeypatch.setattr(s, "_AESGCM", None)
    wire = client.send(image(value=3))
    assert wire[5] & FLAG_MAC_HMAC
    assert np.all(server.receive_data(wire)[0].message.array() == 3)


def test_pre_auth_limits_refuse_a_payload_or_a_huge_header():
    server = s.ServerSession({"client": CLIENT_SECRET}, "x")
    events = server.receive_data(encode_frame_bytes(b'{"kind":"hello"}', b"x" * 10))
    assert isinstance(events[0], s.Refused) and "exceeds" in events[0].reason
    server = s.ServerSession({"client": CLIENT_SECRET}, "x")
    events = server.receive_data(encode_frame_bytes(b"{" + b" " * (s.PRE_AUTH_MAX_HEADER + 1) + b"}"))
    assert isinstance(events[0], s.Refused)


def _hello_bytes():
    server, client = pair()
    client.receive_data(server.data_to_send())
    return client.data_to_send()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(st.binary(max_size=400),
                      st.tuples(st.just(_hello_bytes()), st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
                                                                  max_size=4), st.integers(0, 2000)).map(
                          lambda t: bytes(_flip(t[0], t[1]))[:t[2]])))
def test_fuzz_the_server_session_never_raises_and_never_admits_garbage(data):
    server = s.ServerSession({"client": CLIENT_SECRET}, "x")
    server.data_to_send()
    events = server.receive_data(data)
    for event in events:
        assert isinstance(event, (s.Refused, s.Authenticated))
        if isinstance(event, s.Authenticated):   # only an intact hello (its own nonce: never, in practice)
            raise AssertionError("a fuzzed hello was authenticated")
    assert server.decoder.frames.buffered_bytes <= s.PRE_AUTH_MAX_HEADER + 64


def _flip(data: bytes, flips):
    out = bytearray(data)
    for pos, xor in flips:
        out[pos % len(out)] ^= xor
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutation=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=3))
def test_fuzz_mutated_signed_traffic_is_never_accepted(mutation):
    server, client = pair()
    handshake(server, client)
    original = client.send(m.Command(request_id=1, device="CM1", key="SSA", value=1000)) + client.send(image())
    wire = bytes(_flip(original, mutation))
    events = server.receive_data(wire)
    if wire != original:
        assert any(isinstance(e, s.Refused) for e in events) or len(events) < 2
        for e in events:
            if isinstance(e, s.MessageReceived):   # only frames before the damaged one get through, intact
                assert e.message in (m.Command(request_id=1, device="CM1", key="SSA", value=1000),)


def test_request_tracker_matches_replies_of_our_session_and_waits_for_every_routed_device():
    tracker = s.RequestTracker()
    tracker.session = "me"
    tracker.add(1)
    tracker.add(2)
    assert tracker.on_message(m.Reply(request_id=1, device="CM1", key="SSA", value=5, session="other")) is None
    assert tracker.on_message(m.Reply(request_id=1, device="CM1", key="SSA", value=5, session="me")) == 1
    routed = m.Event(name="routed", device="master", fields={"request_id": 2, "session": "me", "key": "LOG",
                                                             "targets": ["CM1", "CM2"]})
    assert tracker.on_message(routed) is None
    assert tracker.on_message(m.Reply(request_id=2, device="CM1", key="LOG", value={}, session="me")) is None
    assert tracker.on_message(m.Error(key="LOG", reason="x", request_id=2, device="CM2", session="me")) == 2
    assert [a.device for a in tracker.pop(2).answers] == ["CM1", "CM2"]
    assert tracker.on_message(m.Reply(request_id=9, device="CM1", key="SSA", value=5, session="me")) is None
    tracker.add(3)
    assert tracker.fail_all("lost") == [1, 3]
    assert tracker.pop(3).answers[0].key == "connection"
