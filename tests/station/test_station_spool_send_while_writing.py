"""Spool: a frame announced before its file is written can be sent from memory, stays pending
until acknowledged, and an Ack that overtakes the write still deletes the file."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.formats.images import read_image
from pycam.formats.names import ImageName
from pycam.station.spool import Spool, SpoolError


def _name(second: int = 4) -> ImageName:
    return ImageName(time=dt.datetime(2024, 5, 1, 12, 0, second, tzinfo=dt.timezone.utc), band="on", gain=1,
                     exposure_us=1000, frame_type="Plume")


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1024, (6, 8), dtype=np.uint16)


def test_announced_frame_is_pending_and_loadable_before_the_file_exists(tmp_path):
    spool = Spool(tmp_path, "CM1")
    pixels = _pixels()
    seen = {}

    def announce(filename):
        seen["on_disk"] = (spool.directory / filename).exists()
        seen["pending"] = filename in spool
        data = spool.load(filename)
        seen["array"] = data.array().copy()
        seen["again"] = spool.load(filename).array().copy()   # a resend while writing still works

    path = spool.put_image(_name(), pixels, announce=announce)
    assert seen["on_disk"] is False and seen["pending"] is True
    np.testing.assert_array_equal(seen["array"], pixels)
    np.testing.assert_array_equal(seen["again"], pixels)
    np.testing.assert_array_equal(read_image(path), pixels)
    assert spool.pending() == [path.name]      # not acknowledged: stays until confirm()
    assert spool.confirm(path.name) and spool.pending() == []


def test_ack_that_overtakes_the_write_deletes_the_file_once_written(tmp_path):
    spool = Spool(tmp_path, "CM1")
    path = spool.put_image(_name(), _pixels(), announce=spool.confirm)
    assert not path.exists()
    assert spool.pending() == [] and path.name not in spool
    assert not [p for p in spool.directory.iterdir()], "no temporary file either"


def test_failed_write_raises_and_leaves_nothing_pending(tmp_path, monkeypatch):
    spool = Spool(tmp_path, "CM1")
    import pycam.station.spool as spool_module

    def full_disk(path, data, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "atomic_write_bytes", full_disk)
    announced = []
    with pytest.raises(SpoolError, match="cannot spool image"):
        spool.put_image(_name(), _pixels(), announce=announced.append)
    assert announced and announced[0] not in spool
    assert spool.pending() == []
