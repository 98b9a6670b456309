import datetime as dt

import numpy as np
import pytest

from pycam.formats.atomic import atomic_write_bytes
from pycam.formats.images import ImageFileError, read_image, write_image
from pycam.formats.names import FileNameError, ImageName, SpectrumName


def test_image_name_roundtrip():
    name = "2019-09-18T074335_fltrA_1ag_999904ss_Plume.png"
    parsed = ImageName.parse(name)
    assert parsed.band == "on" and parsed.exposure_us == 999904 and parsed.frame_type == "Plume"
    assert parsed.time == dt.datetime(2019, 9, 18, 7, 43, 35, tzinfo=dt.timezone.utc)
    assert parsed.filename() == name
    cell = ImageName.parse("2018-03-26T143321_fltrA_1ag_1399829ss_0ppmm_darkcorr.png")
    assert cell.cell_ppmm == 0 and cell.darkcorr


def test_spectrum_name_roundtrip():
    name = "2019-05-29T124401_1000ss_1coadd_Plume.npy"
    assert SpectrumName.parse(name).filename() == name
    assert SpectrumName.parse(name).integration_ms == 1000


@pytest.mark.parametrize("bad", ["foo.png", "2019-09-18T074335_fltrC_1ag_9ss_Plume.png",
                                 "2019-13-18T074335_fltrA_1ag_9ss_Plume.png",
                                 "2019-09-18T074335_fltrA_1ag_9ss_Smoke.png"])
def test_bad_image_names(bad):
    with pytest.raises(FileNameError):
        ImageName.parse(bad)


def test_png_roundtrip_and_corrupt(tmp_path):
    img = (np.arange(486 * 648) % 1024).astype(np.uint16).reshape(486, 648)
    p = write_image(tmp_path / "x.png", img)
    assert np.array_equal(read_image(p), img)
    data = p.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match="trunc.png"):
        read_image(tmp_path / "trunc.png")
    (tmp_path / "junk.png").write_bytes(b"hello")
    with pytest.raises(ImageFileError, match="not a PNG"):
        read_image(tmp_path / "junk.png")


def test_atomic_write_leaves_no_temp_on_error(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    class Boom(Exception):
        pass

    from pycam.formats.atomic import atomic_write

    def writer(fh):
        fh.write(b"partial")
        raise Boom()

    with pytest.raises(Boom):
        atomic_write(target, writer)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_spectrum_npy_rejects_non_numpy_and_bad_shapes(tmp_path):
    from pycam.formats.images import SpectrumFileError, read_spectrum_npy, write_spectrum_npy

    good = write_spectrum_npy(tmp_path / "s.npy", np.linspace(250, 400, 2048), np.ones(2048))
    assert read_spectrum_npy(good).shape == (2, 2048)
    (tmp_path / "text.npy").write_text("garbage\n")
    with pytest.raises(SpectrumFileError, match="not a valid .npy spectrum"):
        read_spectrum_npy(tmp_path / "text.npy")
    np.save(tmp_path / "flat.npy", np.ones(10))
    with pytest.raises(SpectrumFileError, match=r"shape \(2, N\)"):
        read_spectrum_npy(tmp_path / "flat.npy")
