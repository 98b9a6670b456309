"""The decoder's fast paths accept nothing the reference paths refuse, and give the same result.

* ``DataMeta`` headers: ``_data_meta_fast`` (a few checks per field) against
  ``DataMeta._from_dict_checked`` (field by field, names the bad field) on valid and mutated headers.
* Frames: a whole frame in one piece (prefix validated in place) against the same bytes fed one
  byte at a time (reassembled), for good and corrupted streams.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycam.protocol import messages as m
from pycam.protocol.decoder import MessageDecoder
from pycam.protocol.errors import FrameError, MessageError, ProtocolError

GOOD_IMAGE = {"data_type": "image", "filename": "2024-05-01T120004_fltrA_1ag_1000ss_Plume.png", "device": "CM1",
              "shape": [486, 648], "dtype": "<u2", "time": "2024-05-01T12:00:04+00:00", "frame_type": "Plume",
              "band": "on", "exposure_us": 1000, "gain": 1.0, "integration_ms": 0, "coadd": 1}
GOOD_SPECTRUM = {"data_type": "spectrum", "filename": "2024-05-01T120004_100ms_1coadd_Plume.npy", "device": "SPC",
                 "shape": [2, 2048], "dtype": "<f8", "time": "2024-05-01T12:00:04+00:00", "frame_type": "Plume",
                 "integration_ms": 100, "coadd": 1}

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                | st.text(max_size=12) | st.sampled_from(["image", "spectrum", "<u2", "<f8", "../x", ".hidden", "a\\b",
                                                          "2024-05-01T12:00:04", "not a time", "x" * 5000]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=6)
shapes = st.lists(st.integers(-2, 2**21) | st.booleans() | st.floats(0, 10), min_size=0, max_size=4)


def _checked(d):
    try:
        return m.DataMeta._from_dict_checked(d)
    except MessageError as exc:
        return exc
    except (TypeError, ValueError, OverflowError) as exc:   # decode() turns these into MessageError
        return exc


def _assert_same(d):
    fast = m._data_meta_fast(m.DataMeta, d)
    reference = _checked(d)
    if fast is not None:
        assert not isinstance(reference, Exception), f"fast path accepted {d!r}: {reference}"
        assert fast == reference
        assert type(fast.gain) is float and type(fast.shape) is tuple


@pytest.mark.parametrize("good", [GOOD_IMAGE, GOOD_SPECTRUM])
def test_fast_path_takes_well_formed_headers(good):
    meta = m._data_meta_fast(m.DataMeta, dict(good))
    assert meta is not None
    assert meta == m.DataMeta._from_dict_checked(dict(good))


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(base=st.sampled_from([GOOD_IMAGE, GOOD_SPECTRUM]),
       changes=st.dictionaries(st.sampled_from(sorted(GOOD_IMAGE) + ["extra"]), json_values | shapes, max_size=3),
       drop=st.sets(st.sampled_from(sorted(GOOD_IMAGE)), max_size=2))
def test_fast_path_never_accepts_more_than_the_checked_path(base, changes, drop):
    d = {k: v for k, v in base.items() if k not in drop}
    d.update(changes)
    _assert_same(d)


@pytest.mark.parametrize("key,value", [("shape", [486, True]), ("exposure_us", True), ("gain", float("inf")),
                                       ("gain", True), ("time", "yesterday"), ("filename", "../etc/passwd"),
                                       ("filename", ".x.png"), ("dtype", "<f8"), ("data_type", "video"),
                                       ("shape", [486, 648, 1]), ("shape", [0, 648]), ("band", 3),
                                       ("device", None), ("frame_type", "x" * 5000)])
def test_bad_fields_leave_the_fast_path_and_are_named(key, value):
    d = dict(GOOD_IMAGE, **{key: value})
    assert m._data_meta_fast(m.DataMeta, d) is None
    with pytest.raises(MessageError) as info:
        m.DataMeta.from_dict(d)
    assert info.value.key in (key, "data_type", "dtype")


def test_spectrum_fast_path_needs_two_rows():
    assert m._data_meta_fast(m.DataMeta, dict(GOOD_SPECTRUM, shape=[3, 2048])) is None
    with pytest.raises(MessageError) as info:
        m.DataMeta.from_dict(dict(GOOD_SPECTRUM, shape=[3, 2048]))
    assert info.value.key == "shape"


def _frames_wire() -> bytes:
    px = np.arange(20, dtype=np.uint16).reshape(4, 5)
    meta = m.DataMeta.from_dict(dict(GOOD_IMAGE, shape=[4, 5]))
    return b"".join(m.encode_bytes(x) for x in (m.Data.from_array(meta, px), m.Ack(filename="a.png"),
                                                m.Data.from_array(meta, px + 1)))


def _decode(wire: bytes, chunk: int) -> list:
    dec = MessageDecoder(4096)
    out = []
    for i in range(0, len(wire), chunk):
        try:
            dec.feed(wire[i:i + chunk])
        except FrameError:
            pass   # frames completed before the damage are still handed out, then the error again
        while True:
            try:
                msg = dec.next_message()
            except FrameError as exc:
                out.append(("frame", exc.key))
                return out
            except ProtocolError as exc:
                out.append(("message", exc.key))
                continue
            if msg is None:
                break
            out.append((msg.kind, msg.header(), bytes(msg.payload_bytes)))
    return out


def test_whole_and_byte_by_byte_decoding_agree_on_good_streams():
    wire = _frames_wire()
    whole = _decode(wire, len(wire))
    assert len(whole) == 3
    assert whole == _decode(wire, 1) == _decode(wire, 7)


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 10_000), value=st.integers(0, 255), chunk=st.sampled_from([1, 5, 26, 64, 10_000]))
def test_corrupted_streams_decode_the_same_in_any_pieces(index, value, chunk):
    wire = bytearray(_frames_wire())
    wire[index % len(wire)] = value
    assert _decode(bytes(wire), chunk) == _decode(bytes(wire), len(wire))


def _image_wire(value: int, shape=(30, 40)) -> bytes:
    meta = m.DataMeta.from_dict(dict(GOOD_IMAGE, shape=list(shape)))
    return m.encode_bytes(m.Data.from_array(meta, np.full(shape, value, np.uint16)))


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def test_payload_buffer_is_reused_only_when_nothing_refers_to_it():
    dec = MessageDecoder(1 << 20)
    dec.feed(_image_wire(1))
    first = dec.next_message()
    kept_array = first.array()                 # a view: the consumer still uses the first frame
    address = _address(first.payload)
    del first
    dec.feed(_image_wire(2))
    second = dec.next_message()
    assert _address(second.payload) != address
    assert (kept_array == 1).all(), "a payload still referenced is never overwritten"
    del kept_array
    address = _address(second.payload)
    del second                                 # dropped: its buffer may carry the next frame
    dec.feed(_image_wire(3))
    third = dec.next_message()
    assert _address(third.payload) == address and (third.array() == 3).all()
    view = memoryview(third.payload)            # a bare memoryview also keeps it
    del third
    dec.feed(_image_wire(4))
    fourth = dec.next_message()
    assert (np.frombuffer(view, np.uint16) == 3).all() and (fourth.array() == 4).all()


def test_frames_waiting_in_the_decoder_keep_their_buffers():
    dec = MessageDecoder(1 << 20)
    dec.feed(_image_wire(5) + _image_wire(6) + _image_wire(7, (3, 4)) + _image_wire(8))
    values = [int(dec.next_message().array()[0, 0]) for _ in range(4)]
    assert values == [5, 6, 7, 8]
