"""Small pieces of the station: fast PNG writer, spool, storage layout, trigger times, backoff."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.formats.images import decode_png, encode_png, read_image
from pycam.formats.names import ImageName, SpectrumName
from pycam.protocol import messages as m
from pycam.station.device_service import next_trigger, period_seconds
from pycam.station.spool import Spool
from pycam.station.storage import DataStore, StorageError

T0 = dt.datetime(2024, 5, 1, 12, 0, 4, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (486, 648)])
def test_png_writer_round_trips_through_opencv(shape):
    pixels = np.random.default_rng(3).integers(0, 1024, shape, dtype=np.uint16)
    pixels.flat[0] = 1023
    blob = encode_png(pixels)
    np.testing.assert_array_equal(decode_png(blob), pixels)
    if shape == (486, 648):
        assert 625_000 < len(blob) < 640_000          # uncompressed, like PyCam's ~631 kB
    with pytest.raises(ValueError):
        encode_png(pixels.astype(np.int32))


def test_spool_put_load_confirm(tmp_path):
    spool = Spool(tmp_path, "CM1")
    (spool.directory / ".x.png.part-1234").write_bytes(b"half")   # crash leftover
    spool = Spool(tmp_path, "CM1")
    assert not list(spool.directory.glob(".*"))
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    names = [ImageName(T0 + dt.timedelta(seconds=i), "on", 1, 999904, "Plume") for i in range(6)]
    for n in names:
        spool.put_image(n, pixels + 1)
    assert spool.pending() == [n.filename() for n in names]
    for n in names:   # first from disk (older than the in-memory window), the rest from memory
        data = spool.load(n.filename())
        assert data.meta.band == "on" and data.meta.exposure_us == 999904 and data.meta.device == "CM1"
        np.testing.assert_array_equal(data.array(), pixels + 1)
        np.testing.assert_array_equal(read_image(spool.directory / n.filename()), pixels + 1)
    assert spool.confirm(names[0].filename()) and not spool.confirm(names[0].filename())
    assert names[0].filename() not in spool and len(spool.pending()) == 5


def test_spool_spectrum(tmp_path):
    spool = Spool(tmp_path, "SPC")
    wl, counts = np.linspace(250, 405, 2048), np.arange(2048.0)
    name = SpectrumName(T0, 100, 2, "Test")
    spool.put_spectrum(name, wl, counts)
    data = Spool(tmp_path, "SPC").load(name.filename())   # a fresh spool: read from disk
    assert data.meta.integration_ms == 100 and data.meta.coadd == 2 and data.meta.shape == (2, 2048)
    np.testing.assert_array_equal(data.counts, counts)


def _data(name: str, device="CM1") -> m.Data:
    parsed = ImageName.parse(name)
    meta = m.DataMeta(data_type="image", filename=name, device=device, shape=(2, 2), dtype="<u2",
                      time=parsed.time.isoformat(), frame_type=parsed.frame_type, band=parsed.band,
                      exposure_us=parsed.exposure_us)
    return m.Data.from_array(meta, np.ones((2, 2), np.uint16))


def test_storage_layout_and_sequence_numbers(tmp_path):
    store = DataStore(tmp_path)
    plume = store.store(_data("2024-05-01T120004_fltrA_1ag_1000ss_Plume.png")).path
    assert plume.relative_to(tmp_path).parts == ("2024-05-01", "Seq_1", plume.name)
    test = store.store(_data("2024-05-01T120005_fltrA_1ag_1000ss_Test.png")).path
    assert test.parent.name == "test_images"
    cell = store.store(_data("2024-05-01T120006_fltrB_1ag_1000ss_1257ppmm.png")).path
    assert cell.parent.name == "Cal_1"
    store.new_sequence()
    assert store.store(_data("2024-05-01T120008_fltrA_1ag_1000ss_Plume.png")).path.parent.name == "Seq_2"
    # a restarted master continues the latest sequence (pairs stay together)
    again = DataStore(tmp_path)
    assert again.store(_data("2024-05-01T120009_fltrB_1ag_1000ss_Plume.png")).path.parent.name == "Seq_2"
    assert not [p for p in tmp_path.rglob(".*")]


def test_storage_refuses_bad_names_and_full_disk(tmp_path):
    with pytest.raises(StorageError, match="not a PyCam"):
        DataStore(tmp_path).path_for("evil.png")
    with pytest.raises(StorageError, match="disk full"):
        DataStore(tmp_path, min_free_mb=10_000_000).store(_data("2024-05-01T120004_fltrA_1ag_1000ss_Plume.png"))


def test_trigger_times_are_wall_clock_multiples():
    assert period_seconds(0.25) == 4 and period_seconds(1.0) == 1 and period_seconds(5.0) == 1
    assert period_seconds(0) is None
    assert next_trigger(1001.2, 4, None) == 1004.0
    assert next_trigger(1004.0, 4, None) == 1004.0
    assert next_trigger(1004.0, 4, 1004.0) == 1008.0      # never the same slot twice
    assert next_trigger(1003.9, 1, None) == 1004.0


def test_free_loopback_ports_are_distinct():
    """Chosen one at a time, two ports could coincide (a config with client_port == device_port
    is refused, so a demo or a test station failed to start now and then)."""
    from pycam.station.launcher import free_loopback_ports

    ports = free_loopback_ports(64)
    assert len(set(ports)) == 64 and all(1024 <= p <= 65535 for p in ports)
