"""PyCam image files: 16-bit greyscale PNG holding the sensor's values (OV5647 10-bit 0-1023, IMX477 12-bit), uncompressed."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from pycam.formats.atomic import atomic_write_bytes

MAX_DN = 1023  # PyCam's OV5647 (10-bit); other sensors: pycam.formats.sensors (IMX477: 4095)


class ImageFileError(ValueError):
    """An image file is missing, corrupt, truncated or not a PyCam image."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(pixels: np.ndarray, compression: int = 0) -> bytes:
    """Encode a 2-D uint16 array as a 16-bit greyscale PNG (PyCam writes it uncompressed).

    A direct writer (filter 0 on every row, big-endian samples, one IDAT): at compression 0
    (zlib "stored" blocks, ~631 kB for 648x486 like PyCam's files) it takes ~1-2 ms where
    OpenCV's encoder takes ~25 ms (it still runs libpng's filter heuristics).  1-9 deflate
    the rows at that zlib level.  Any PNG reader (OpenCV, PIL, libpng) reads it bit for bit.
    """
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {arr.shape}")
    if arr.dtype != np.uint16:
        raise ValueError(f"image must be uint16, got {arr.dtype}")
    if not 0 <= int(compression) <= 9:
        raise ValueError(f"PNG compression must be 0-9, got {compression}")
    rows, cols = arr.shape
    if not (0 < rows < 2**31 and 0 < cols < 2**31):
        raise ValueError(f"image must have 1 .. 2**31-1 rows and columns, got shape {arr.shape}")
    raw = np.empty((rows, 1 + 2 * cols), dtype=np.uint8)      # filter byte 0 + big-endian samples
    raw[:, 0] = 0
    raw[:, 1:] = arr.astype(">u2", copy=False).view(np.uint8).reshape(rows, 2 * cols)
    ihdr = struct.pack(">IIBBBBB", cols, rows, 16, 0, 0, 0, 0)  # 16-bit greyscale, no interlace
    idat = zlib.compress(raw, int(compression))
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def decode_png(data: bytes, name: str = "<bytes>") -> np.ndarray:
    import cv2

    if len(data) < 8 or data[:8] != _PNG_SIGNATURE:
        raise ImageFileError(f"{name}: not a PNG file")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageFileError(f"{name}: corrupt or truncated PNG")
    if arr.ndim != 2:
        raise ImageFileError(f"{name}: expected a greyscale image, got shape {arr.shape}")
    if arr.dtype != np.uint16:
        raise ImageFileError(f"{name}: expected 16-bit data, got {arr.dtype}")
    return arr


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PyCam PNG as uint16 (H, W); raise ImageFileError naming the file on any problem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageFileError(f"{p}: cannot read: {exc.strerror}") from None
    return decode_png(data, str(p))


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, *, fsync: bool = True) -> Path:
    """Write a PyCam PNG atomically."""
    return atomic_write_bytes(path, encode_png(pixels), fsync=fsync)


class SpectrumFileError(ValueError):
    """A spectrum file is missing, corrupt or not a (2, N) wavelength/counts array."""


def encode_spectrum_npy(wavelengths: np.ndarray, counts: np.ndarray) -> bytes:
    arr = np.vstack([np.asarray(wavelengths, np.float64), np.asarray(counts, np.float64)])
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def decode_spectrum_npy(data: bytes, name: str = "<bytes>") -> np.ndarray:
    if not bytes(data[:6]) == b"\x93NUMPY":
        raise SpectrumFileError(f"{name}: not a valid .npy spectrum (no NumPy header)")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/EOFError/OSError variously
        raise SpectrumFileError(f"{name}: not a valid .npy spectrum ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] != 2:
        raise SpectrumFileError(f"{name}: expected shape (2, N) [wavelength; counts], got {arr.shape}")
    return arr.astype(np.float64, copy=False)


def read_spectrum_npy(path: str | os.PathLike[str]) -> np.ndarray:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SpectrumFileError(f"{p}: cannot read: {exc.strerror}") from None
    return decode_spectrum_npy(data, str(p))


def write_spectrum_npy(path: str | os.PathLike[str], wavelengths: np.ndarray, counts: np.ndarray,
                       *, fsync: bool = True) -> Path:
    return atomic_write_bytes(path, encode_spectrum_npy(wavelengths, counts), fsync=fsync)
