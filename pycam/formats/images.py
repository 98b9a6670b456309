"""PyCam image files: 16-bit greyscale PNG holding 10-bit values (0-1023), uncompressed."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from pycam.formats.atomic import atomic_write_bytes

MAX_DN = 1023  # 10-bit sensor


class ImageFileError(ValueError):
    """An image file is missing, corrupt, truncated or not a PyCam image."""


def encode_png(pixels: np.ndarray, compression: int = 0) -> bytes:
    """Encode a 2-D uint16 array as a 16-bit greyscale PNG (PyCam writes it uncompressed)."""
    import cv2

    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {arr.shape}")
    if arr.dtype != np.uint16:
        raise ValueError(f"image must be uint16, got {arr.dtype}")
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:  # pragma: no cover - cv2 failure
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_png(data: bytes, name: str = "<bytes>") -> np.ndarray:
    import cv2

    if len(data) < 8 or data[:8] != b"\x89PNG\r\n\x1a\n":
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
