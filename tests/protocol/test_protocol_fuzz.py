"""Hypothesis: random and mutated byte streams never make the decoder raise anything but
its own errors, never grow its buffers past the limits, and never lose sync on good frames."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycam.protocol import messages as m
from pycam.protocol.commands import VOCABULARY, parse_value
from pycam.protocol.decoder import MessageDecoder
from pycam.protocol.errors import CommandValueError, FrameError, MessageError, ProtocolError
from pycam.protocol.frames import MAX_HEADER_BYTES, PREFIX_SIZE

LIMIT = 4096


def sample_frames() -> list[bytes]:
    px = np.arange(12, dtype=np.uint16).reshape(3, 4)
    meta = m.DataMeta(data_type="image", filename="2024-05-01T120004_fltrB_1ag_100ss_Test.png", device="CM2",
                      shape=(3, 4), dtype="<u2", time="2024-05-01T12:00:04+00:00", frame_type="Test", band="off",
                      exposure_us=100)
    return [m.encode_bytes(x) for x in (
        m.Command(request_id=1, device="CM1", key="SSA", value=1000),
        m.Reply(request_id=1, device="CM1", key="SSA", value=1000),
        m.Event(name="status", fields={"a": [1, 2.5, "x"]}),
        m.Data.from_array(meta, px),
    )]


def drain(dec: MessageDecoder, data: bytes, chunk: int) -> tuple[list, list]:
    good, errors = [], []
    for i in range(0, len(data), chunk):
        try:
            dec.feed(data[i:i + chunk])
        except FrameError as exc:
            errors.append(exc)
            return good, errors
        while True:
            try:
                msg = dec.next_message()
            except FrameError as exc:
                errors.append(exc)
                return good, errors
            except MessageError as exc:
                errors.append(exc)
                continue
            if msg is None:
                break
            good.append(msg)
        assert dec.frames.buffered_bytes <= PREFIX_SIZE + MAX_HEADER_BYTES + LIMIT
    return good, errors


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), chunk=st.integers(1, 64))
def test_random_bytes_only_raise_protocol_errors(data, chunk):
    good, errors = drain(MessageDecoder(LIMIT), data, chunk)
    assert all(isinstance(e, ProtocolError) for e in errors)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 3), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
                                               min_size=1, max_size=4),
       cut=st.integers(0, 10_000), chunk=st.integers(1, 97))
def test_mutated_frames_only_raise_protocol_errors(index, flips, cut, chunk):
    frames = sample_frames()
    wire = bytearray(frames[index])
    for pos, xor in flips:
        wire[pos % len(wire)] ^= xor
    wire = bytes(wire[:max(1, cut % (len(wire) + 1))]) + frames[0]
    good, errors = drain(MessageDecoder(LIMIT), wire, chunk)
    assert all(isinstance(e, ProtocolError) for e in errors)
    # a single flipped bit is always detected: either an error, or the frame is intact
    for msg in good:
        assert m.encode_bytes(msg) in [bytes(f) for f in frames]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(range(4)), min_size=1, max_size=12), st.integers(1, 50))
def test_good_frame_sequences_decode_exactly(order, chunk):
    frames = sample_frames()
    good, errors = drain(MessageDecoder(LIMIT), b"".join(frames[i] for i in order), chunk)
    assert errors == []
    assert [m.encode_bytes(x) for x in good] == [frames[i] for i in order]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=8)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(key=st.sampled_from(sorted(VOCABULARY)), raw=json_values)
def test_command_values_only_raise_command_errors(key, raw):
    try:
        parse_value(key, raw)
    except CommandValueError as exc:
        assert exc.key == key and exc.reason


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(header=st.dictionaries(st.sampled_from(["kind", "request_id", "device", "key", "value", "meta", "role",
                                               "name", "nonce", "mac", "version", "subscribe", "fields",
                                               "filename", "reason", "session", "data_types", "devices"]),
                              json_values, max_size=8),
       kind=st.sampled_from(sorted(m.MESSAGE_TYPES)))
def test_random_headers_only_raise_message_errors(header, kind):
    import json
    from pycam.protocol.frames import encode_frame_bytes
    header = dict(header, kind=kind)
    try:
        raw = json.dumps(header).encode()
    except ValueError:
        return
    dec = MessageDecoder(LIMIT)
    dec.feed(encode_frame_bytes(raw))
    try:
        dec.next_message()
    except MessageError as exc:
        assert exc.key and exc.reason
