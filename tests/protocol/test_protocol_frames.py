"""Frames and messages: round trips, every kind of damage, bounded and linear decoding."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from pycam.protocol import messages as m
from pycam.protocol.decoder import MessageDecoder
from pycam.protocol.errors import FrameError, MessageError
from pycam.protocol.frames import PREFIX_SIZE, FrameDecoder, encode_frame_bytes


def image_message(rows=486, cols=648, seed=0) -> tuple[m.Data, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 1024, (rows, cols), dtype=np.uint16)
    meta = m.DataMeta(data_type="image", filename="2024-05-01T120004_fltrA_1ag_999904ss_Plume.png",
                      device="CM1", shape=(rows, cols), dtype="<u2", time="2024-05-01T12:00:04+00:00",
                      frame_type="Plume", band="on", exposure_us=999904, gain=1.0)
    return m.Data.from_array(meta, pixels), pixels


def decode_all(data: bytes, chunk: int | None = None, max_payload: int = 1 << 26) -> list:
    dec = MessageDecoder(max_payload)
    out = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        dec.feed(data[i:i + step])
        while (msg := dec.next_message()) is not None:
            out.append(msg)
    return out


ALL_KINDS = [
    m.Challenge(nonce="ab" * 16),
    m.Hello(role="client", name="gui", nonce="cd" * 16, mac="00" * 32, subscribe=("image",)),
    m.Welcome(session="s1", mac="11" * 32, devices=("CM1", "SPC")),
    m.Subscribe(data_types=("image", "spectrum")),
    m.Command(request_id=7, device="CM1", key="SSA", value=1000),
    m.Command(request_id=8, device="all", key="FRC", value=0.123456789012345),
    m.Reply(request_id=7, device="CM1", key="SSA", value=1000, session="s1"),
    m.Reply(request_id=9, device="CM1", key="LOG", value={"shutter_us": 5, "auto": True}),
    m.Error(key="SSA", reason="out of range", request_id=7, device="CM1"),
    m.Event(name="file_stored", device="CM2", fields={"filename": "x.png", "n": 3}),
    m.Ack(filename="x.png", path="/tmp/x.png"),
]


@pytest.mark.parametrize("msg", ALL_KINDS, ids=lambda x: x.kind)
def test_every_kind_round_trips(msg):
    assert decode_all(m.encode_bytes(msg)) == [msg]


def test_float_values_are_not_rounded():
    msg = m.Command(request_id=1, device="SPC", key="FRS", value=1 / 3)
    (back,) = decode_all(m.encode_bytes(msg))
    assert back.value == 1 / 3


def test_image_round_trip_byte_by_byte_and_chunked():
    msg, pixels = image_message(20, 30)
    wire = m.encode_bytes(msg) * 3
    for chunk in (1, 7, 4096, None):
        out = decode_all(wire, chunk)
        assert len(out) == 3
        for got in out:
            assert got.meta == msg.meta
            np.testing.assert_array_equal(got.array(), pixels)


def test_spectrum_round_trip():
    wl = np.linspace(250, 405, 2048)
    counts = np.random.default_rng(1).random(2048) * 65535
    meta = m.DataMeta(data_type="spectrum", filename="2024-05-01T120004_100ss_1coadd_Plume.npy", device="SPC",
                      shape=(2, 2048), dtype="<f8", time="2024-05-01T12:00:04+00:00", frame_type="Plume",
                      integration_ms=100, coadd=1)
    (got,) = decode_all(m.encode_bytes(m.Data.from_array(meta, np.vstack([wl, counts]))))
    np.testing.assert_array_equal(got.wavelengths, wl)
    np.testing.assert_array_equal(got.counts, counts)


def test_recv_into_path_matches_feed():
    msg, pixels = image_message(100, 64)
    wire = m.encode_bytes(msg) + m.encode_bytes(ALL_KINDS[4])
    dec = MessageDecoder()
    pos, out = 0, []
    while pos < len(wire):
        buf = dec.recv_buffer()
        n = min(len(buf), 1000, len(wire) - pos)
        buf[:n] = wire[pos:pos + n]
        pos += n
        dec.commit(n)
        while (x := dec.next_message()) is not None:
            out.append(x)
    np.testing.assert_array_equal(out[0].array(), pixels)
    assert out[1] == ALL_KINDS[4]


def test_payload_corruption_drops_only_that_frame():
    msg, _ = image_message(10, 10)
    wire = bytearray(m.encode_bytes(msg))
    wire[-5] ^= 0x01
    follow = m.encode_bytes(ALL_KINDS[4])
    dec = MessageDecoder()
    dec.feed(bytes(wire) + follow)
    with pytest.raises(MessageError) as info:
        dec.next_message()
    assert info.value.key == "payload" and "checksum" in info.value.reason
    assert m.header_filename(info.value.frame_header) == msg.meta.filename
    assert dec.next_message() == ALL_KINDS[4]   # still in sync


def test_header_corruption_is_fatal_and_sticky():
    wire = bytearray(m.encode_bytes(ALL_KINDS[4]))
    wire[PREFIX_SIZE + 3] ^= 0x20
    dec = MessageDecoder()
    with pytest.raises(FrameError) as info:
        dec.feed(bytes(wire))
        dec.next_message()
    assert "checksum" in info.value.reason
    with pytest.raises(FrameError):
        dec.feed(m.encode_bytes(ALL_KINDS[4]))


def test_garbage_is_rejected_at_the_first_byte():
    dec = FrameDecoder()
    with pytest.raises(FrameError) as info:
        dec.feed(b"SSA 1000 END\r\n")
    assert "magic" in info.value.reason
    assert dec.buffered_bytes == 0


def test_oversized_payload_is_refused_before_it_is_read():
    msg, _ = image_message(100, 100)
    wire = m.encode_bytes(msg)
    dec = FrameDecoder(max_payload_bytes=1000)
    with pytest.raises(FrameError) as info:
        dec.feed(wire[:PREFIX_SIZE])
    assert "exceeds" in info.value.reason
    assert dec.buffered_bytes <= PREFIX_SIZE


def test_wrong_version_named():
    wire = bytearray(m.encode_bytes(ALL_KINDS[0]))
    wire[4] = 9
    with pytest.raises(FrameError) as info:
        decode_all(bytes(wire))
    assert info.value.key == "version"


def frame_with_header(obj) -> bytes:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return encode_frame_bytes(raw)


@pytest.mark.parametrize("header, key", [
    (b"{not json", "header"),
    (b"\xff\xfe", "header"),
    ([1, 2], "header"),
    ({"kind": "teleport"}, "kind"),
    ({"kind": "command", "device": "CM1", "key": "SSA"}, "request_id"),
    ({"kind": "command", "request_id": "7", "device": "CM1", "key": "SSA"}, "request_id"),
    ({"kind": "command", "request_id": 7, "device": 5, "key": "SSA"}, "device"),
    ({"kind": "hello", "role": "admin", "name": "x", "nonce": "", "mac": "", "version": 1}, "role"),
    ({"kind": "subscribe", "data_types": ["video"]}, "subscribe"),
    ({"kind": "data", "meta": {"data_type": "image"}}, "shape"),
])
def test_malformed_messages_name_the_field(header, key):
    with pytest.raises(MessageError) as info:
        decode_all(frame_with_header(header))
    assert info.value.key == key


def test_malformed_command_keeps_request_id():
    with pytest.raises(MessageError) as info:
        decode_all(frame_with_header({"kind": "command", "request_id": 42, "device": 3, "key": "SSA"}))
    assert info.value.request_id == 42


def test_data_payload_size_must_match_shape():
    msg, _ = image_message(10, 10)
    header = json.dumps(msg.header()).encode()
    with pytest.raises(MessageError) as info:
        decode_all(encode_frame_bytes(header, b"\x00" * 7))
    assert info.value.key == "payload"


def test_data_filename_cannot_escape_directory():
    msg, _ = image_message(4, 4)
    d = msg.header()
    d["meta"]["filename"] = "../../etc/passwd"
    with pytest.raises(MessageError) as info:
        decode_all(encode_frame_bytes(json.dumps(d).encode(), bytes(msg.payload)))
    assert info.value.key == "filename"


def test_decoding_is_linear_and_memory_bounded():
    msg, _ = image_message(200, 200)
    wire = m.encode_bytes(msg)
    dec = MessageDecoder()
    peak = 0
    for i in range(0, len(wire), 3):
        dec.feed(wire[i:i + 3])
        peak = max(peak, dec.frames.buffered_bytes)
    assert dec.next_message().meta == msg.meta
    # each input byte is copied exactly once, however small the pieces
    assert dec.frames.bytes_copied == len(wire)
    assert peak <= len(wire)


@pytest.mark.parametrize("use_c", [False, True])
def test_payload_checksum_algorithms(use_c):
    from pycam.protocol.frames import HAVE_CRC32C

    if use_c and not HAVE_CRC32C:
        pytest.skip("crc32c package not installed")
    payload = b"123456789"
    wire = encode_frame_bytes(b'{"kind":"ack","filename":"a"}', b"", crc32c=use_c)
    assert int.from_bytes(wire[22:26], "big") == 0
    wire = bytearray(encode_frame_bytes(b"{}", payload, crc32c=use_c))
    expected = 0xE3069283 if use_c else zlib.crc32(payload)   # CRC-32C check value of "123456789"
    assert int.from_bytes(wire[22:26], "big") == expected and wire[5] == (1 if use_c else 0)
    dec = FrameDecoder()
    dec.feed(bytes(wire))
    assert bytes(dec.next_frame().payload) == payload
    wire[-1] ^= 1
    dec = FrameDecoder()
    dec.feed(bytes(wire))
    with pytest.raises(MessageError, match="CRC-32C" if use_c else "CRC-32 "):
        dec.next_frame()
