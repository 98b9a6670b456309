"""pycam.formats.images.encode_png (the direct 16-bit PNG writer) against OpenCV's reader."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from pycam.formats.images import decode_png, encode_png, read_image, write_image


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(486, 648), (1, 1), (3, 7), (1944, 2592)])
@pytest.mark.parametrize("compression", [0, 6])
def test_png_writer_round_trips_through_opencv(shape, compression):
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 1024, shape, dtype=np.uint16)
    pixels.flat[0] = 1023
    blob = encode_png(pixels, compression)
    back = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == shape
    np.testing.assert_array_equal(back, pixels)
    np.testing.assert_array_equal(decode_png(blob), pixels)


def test_png_writer_layout_is_16_bit_greyscale_uncompressed():
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 85
    blob = encode_png(pixels)
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", blob[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", blob[16:29])
    assert (width, height, depth, colour, interlace) == (4, 3, 16, 0, 0)
    assert struct.unpack(">I", blob[29:33])[0] == zlib.crc32(blob[12:29])
    idat_len, idat = struct.unpack(">I4s", blob[33:41])
    assert idat == b"IDAT"
    rows = zlib.decompress(blob[41:41 + idat_len])
    assert len(rows) == 3 * (1 + 2 * 4) and rows[0] == 0          # filter 0, then big-endian samples
    assert rows[1:9] == pixels[0].astype(">u2").tobytes()
    assert blob.endswith(b"IEND\xaeB`\x82")
    # uncompressed like PyCam's own files: the stored blocks are barely larger than the pixels
    assert len(blob) < pixels.nbytes + 3 + 100


def test_png_writer_matches_opencv_files_on_disk(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 1024, (486, 648), dtype=np.uint16)
    path = write_image(tmp_path / "2024-05-01T120004_fltrA_1ag_1000ss_Plume.png", pixels)
    np.testing.assert_array_equal(read_image(path), pixels)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), pixels)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("bad,match", [(np.zeros((2, 2, 2), np.uint16), "2-D"), (np.zeros((2, 2), np.int32), "uint16"),
                                       (np.zeros((0, 5), np.uint16), "rows and columns")])
def test_png_writer_refuses_what_it_cannot_write(bad, match):
    with pytest.raises(ValueError, match=match):
        encode_png(bad)


def test_png_writer_refuses_bad_compression():
    with pytest.raises(ValueError, match="compression"):
        encode_png(np.zeros((2, 2), np.uint16), 10)
