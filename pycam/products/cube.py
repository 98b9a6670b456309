"""Zarr cube of calibrated SO2 images (``time``, ``y``, ``x``), chunked by hour, compressed.

Images arrive one at a time; the current hour is buffered in a memory-mapped scratch file on
disk (so memory stays flat at any frame rate) and written as whole chunks when the hour ends:
chunks span ``frames_per_hour`` frames in time and tiles of at most ~16 MB in space.  The
store opens lazily with ``xarray.open_zarr``.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from pathlib import Path

import numpy as np

CHUNK_BYTES = 16 * 2**20


def tile_shape(frames: int, ny: int, nx: int, itemsize: int = 4, budget: int = CHUNK_BYTES) -> tuple[int, int]:
    """A spatial tile (ty, tx) so that ``frames * ty * tx * itemsize <= budget`` (at least 16x16)."""
    pixels = max(256, budget // max(1, frames * itemsize))
    side = max(16, int(math.sqrt(pixels)))
    ty = min(ny, side)
    tx = min(nx, max(16, pixels // ty))
    return ty, tx


class So2CubeWriter:
    """Append SO2 images to a zarr store at ``path`` (see the module docstring)."""

    def __init__(self, path: os.PathLike | str, shape: tuple[int, int], frames_per_hour: int,
                 attrs: dict | None = None) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.frames_per_hour = max(1, int(frames_per_hour))
        self.attrs = dict(attrs or {})
        self.tile = tile_shape(self.frames_per_hour, *self.shape)
        fd, scratch = tempfile.mkstemp(prefix=".so2cube-", suffix=".npy", dir=self.path.parent)
        os.close(fd)
        self._scratch = Path(scratch)
        self._buf = np.lib.format.open_memmap(self._scratch, mode="w+", dtype=np.float32,
                                              shape=(self.frames_per_hour, *self.shape))
        self._times: list[dt.datetime] = []
        self._hour: dt.datetime | None = None
        self._k = 0
        self._written = 0
        self.frames = 0

    def add(self, time: dt.datetime, image: np.ndarray) -> None:
        if image.shape != self.shape:
            raise ValueError(f"SO2 image of shape {image.shape}, the cube holds {self.shape}")
        hour = time.replace(minute=0, second=0, microsecond=0)
        if self._k and (hour != self._hour or self._k == self.frames_per_hour):
            self._flush()
        self._hour = hour
        self._buf[self._k] = image
        self._times.append(time)
        self._k += 1
        self.frames += 1

    def _flush(self) -> None:
        import xarray as xr

        if not self._k:
            return
        times = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in self._times], dtype="datetime64[ns]")
        block = xr.Dataset(
            {"so2": (("time", "y", "x"), self._buf[:self._k],
                     {"long_name": "SO2 column density", "units": "molec cm-2"})},
            coords={"time": ("time", times, {"standard_name": "time"}),
                    "y": ("y", np.arange(self.shape[0], dtype=np.int32), {"long_name": "image row", "units": "1"}),
                    "x": ("x", np.arange(self.shape[1], dtype=np.int32), {"long_name": "image column", "units": "1"})})
        if self._written == 0:
            block.attrs = self.attrs
            encoding = {"so2": {"chunks": (self.frames_per_hour, *self.tile)},
                        "time": {"units": "seconds since 1970-01-01 00:00:00", "dtype": "float64",
                                 "chunks": (self.frames_per_hour,)}}
            block.to_zarr(self.path, mode="w", encoding=encoding, consolidated=True)
        else:
            block.drop_vars(["y", "x"]).to_zarr(self.path, append_dim="time", consolidated=True)
        self._written += self._k
        self._k = 0
        self._times = []

    def close(self) -> int:
        """Write what is buffered, remove the scratch file; returns the frames in the cube."""
        try:
            self._flush()
        finally:
            del self._buf
            try:
                self._scratch.unlink()
            except FileNotFoundError:
                pass
        return self._written
