"""``pycam doas``: directory runs (bad files reported and skipped), flags, and --plot."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from pycam.cli.main import main
from pycam.formats.images import write_spectrum_npy


def _write(path, spectrum, dark_level=1000.0):
    counts = spectrum.counts.copy()
    counts[~np.isfinite(counts)] = 50.0
    write_spectrum_npy(path, spectrum.wavelengths, counts + dark_level, fsync=False)


@pytest.fixture
def spec_dir(tmp_path, make_spectrum):
    d = tmp_path / "spectra"
    d.mkdir()
    for i, so2 in enumerate((1e17, 5e17, 1.5e18)):
        _write(d / f"2024-03-01T1200{i:02d}_100ss_1coadd_Plume.npy", make_spectrum(so2))
    wl = make_spectrum(0).wavelengths
    write_spectrum_npy(d / "2024-03-01T115900_100ss_1coadd_Dark.npy", wl, np.full(wl.size, 1000.0), fsync=False)
    bad = make_spectrum(2e17)
    counts = bad.counts.copy()
    counts[~np.isfinite(counts)] = 50.0
    counts[np.flatnonzero(bad.wavelengths > 310)[0]] = np.nan
    write_spectrum_npy(d / "2024-03-01T120010_100ss_1coadd_Plume.npy", bad.wavelengths, counts + 1000.0, fsync=False)
    (d / "2024-03-01T120011_100ss_1coadd_Plume.npy").write_bytes(b"not a numpy file")
    short = make_spectrum(2e17)
    write_spectrum_npy(d / "2024-03-01T120012_100ss_1coadd_Plume.npy", short.wavelengths[:1500],
                       np.full(1500, 3000.0), fsync=False)
    return d


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_directory_run_skips_bad_files(spec_dir, tmp_path, capsys):
    out = tmp_path / "out" / "doas_results.csv"
    code = main(["doas", str(spec_dir), "--out", str(out), "--fwem", "0.6", "--stray-window", "252", "255",
                 "--fit-window", "308", "318"])
    assert code == 0
    err = capsys.readouterr().err
    assert "NaN" in err and "not a valid .npy" in err and "wrong length" in err
    rows = _rows(out)
    assert list(rows[0]) == ["Time", "Column density", "CD error", "LDF", "file", "line_shape"]
    assert all(r["line_shape"] for r in rows)
    assert [r["file"][:17] for r in rows] == ["2024-03-01T120000", "2024-03-01T120001", "2024-03-01T120002"]
    assert rows[0]["Time"] == "2024-03-01 12:00:00"
    values = [float(r["Column density"]) for r in rows]
    # the synthetic default references are what generated these spectra; ILS k differs slightly (2 vs 2.2)
    np.testing.assert_allclose(values, [1e17, 5e17, 1.5e18], rtol=0.06, atol=2e16)
    assert all(float(r["CD error"]) > 0 for r in rows)
    assert (out.parent / "doas_processing_params.txt").read_text().startswith("Fit window=308:318")


def test_plot_writes_png(spec_dir, tmp_path, capsys):
    png = tmp_path / "fit.png"
    spectrum = sorted(spec_dir.glob("*Plume.npy"))[1]
    assert main(["doas", "--plot", str(spectrum), "--out", str(png), "--stray-window", "252", "255"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "SO2" in capsys.readouterr().out


def test_clear_errors_for_bad_options(tmp_path, spec_dir, capsys):
    assert main(["doas", str(spec_dir)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["doas", str(tmp_path / "nope"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["doas", str(spec_dir), "--out", str(tmp_path / "r.csv"), "--xs", "SO2"]) == 2
    assert "NAME=FILE" in capsys.readouterr().err
    assert main(["doas", str(spec_dir), "--out", str(tmp_path / "r.csv"), "--fit-window", "320", "310"]) == 2
    assert "upper limit" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_masaya_run_with_named_references(data_dir, tmp_path):
    ref = data_dir / "reference"
    folder = ref / "spectra_ifit_masaya_2018"
    out = tmp_path / "masaya.csv"
    code = main(["doas", str(folder), "--out", str(out), "--dark", str(folder / "dark.txt"),
                 "--solar", str(ref / "sao2010.txt"), "--xs", f"SO2={ref / 'SO2_298K_Vandaele2009_vac.txt'}",
                 "--xs", f"O3={ref / 'O3_223K_Voigt2001_2col.txt'}", "--xs", f"Ring={ref / 'Ring_iFit_negln.txt'}",
                 "--fit-ils", "--fit-window", "310", "320", "--stray-window", "280", "290"])
    assert code == 0
    rows = {r["file"]: float(r["Column density"]) for r in _rows(out)}
    assert set(rows) == {"spectrum_00000.txt", "spectrum_00420.txt", "spectrum_00448.txt"}
    assert abs(rows["spectrum_00000.txt"]) < 5e16
    assert rows["spectrum_00448.txt"] == pytest.approx(9.6e17, rel=0.1)


def test_config_file_and_flag_precedence(spec_dir, tmp_path, station_config):
    text = station_config.read_text()
    assert "fit_window = [308.0, 318.0]" in text
    station_config.write_text(text.replace("fit_window = [308.0, 318.0]", "fit_window = [309.0, 319.0]")
                              .replace("stray_window = [293.0, 296.0]", "stray_window = [252.0, 255.0]"))
    out = tmp_path / "a" / "res.csv"
    assert main(["doas", str(spec_dir), "--out", str(out), "--config", str(station_config)]) == 0
    assert "Fit window=309:319" in (out.parent / "doas_processing_params.txt").read_text()
    out = tmp_path / "b" / "res.csv"
    assert main(["doas", str(spec_dir), "--out", str(out), "--config", str(station_config),
                 "--fit-window", "310", "320"]) == 0
    assert "Fit window=310:320" in (out.parent / "doas_processing_params.txt").read_text()


def test_settings_from_config_section():
    from pycam.doas.configure import DoasConfigError, default_doas_section, settings_from_config

    section = default_doas_section()
    settings = settings_from_config(section, {"fwem": 0.7, "fit_ils": True})
    assert settings.fit_window == (308.0, 318.0) and settings.stray_window == (293.0, 296.0)
    assert settings.line_shape.fwem == 0.7 and settings.line_shape.fit
    with pytest.raises(DoasConfigError, match="upper limit"):
        settings_from_config(section, {"fit_window": [318, 308]})
