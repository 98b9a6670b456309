"""Settings validation, archive pairing/reading, and the PyCam output formats."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.formats.image_pair import ImagePair
from pycam.formats.images import write_image
from pycam.formats.names import ImageName
from pycam.formats.pycam_outputs import (CalibrationRecord, CalibrationTable, EmissionRateWriter, EmissionRow,
                                         OutputFormatError, read_doas_results, read_emission_rates,
                                         read_full_calibration, write_doas_results, write_full_calibration)
from pycam.processing.archive import (DirectoryWatcher, find_plume_pairs, iter_pair_images, pair_records, read_pair,
                                      scan_directory)
from pycam.processing.settings import SettingsError, load_settings, settings_from_mapping

T0 = dt.datetime(2019, 9, 18, 7, 43, 35, tzinfo=dt.timezone.utc)


# --- settings ------------------------------------------------------------------------------

def test_pycam_yaml_keys_accepted(tmp_path):
    p = tmp_path / "processing_setting_defaults.yml"
    p.write_text("cal_type_int: 0\nbg_mode: 7\nambient_roi: [10, 20, 100, 80]\nmin_cd: 1.0e+17\n"
                 "pyr_scale: 0.5\nlevels: 4\nwinsize: 20\niterations: 4\npoly_n: 5\npoly_sigma: 1.1\n"
                 "flow_glob: 0\nflow_nadeau: False\nremove_doas_mins: 30\ndoas_fov_recal_mins: False\n"
                 "start_fit_wave: 308\nimg_dir: images\nuse_light_dilution: 0\n")
    s = load_settings(p)
    assert s["bg_mode"] == 7 and s["ambient_roi"] == [10, 20, 100, 80] and s["min_cd"] == 1e17
    assert s["iterations"] == 4 and s["flow_glob"] is False and "flow_glob" not in s.velocity_modes
    assert s["doas_fov_recal_mins"] is None and s["img_dir"] == tmp_path / "images"
    snap = tmp_path / "snap.yml"
    snap.write_text(s.to_yaml())
    assert load_settings(snap).values == s.values


@pytest.mark.parametrize("text,key", [
    ("min_cd: lots\n", "min_cd"), ("bg_mode: 3\n", "bg_mode"), ("ambient_roi: [1, 2, 3]\n", "ambient_roi"),
    ("winsize: 0\n", "winsize"), ("flow_nadeau: 1\n", "flow_nadeau"), ("typo_key: 1\n", "typo_key"),
    ("flow_contrast: [1, 0]\n", "flow_contrast"), ("poly_n: 6\n", "poly_n"), ("pix_size_m: -1\n", "pix_size_m"),
])
def test_bad_settings_name_the_key(tmp_path, text, key):
    p = tmp_path / "bad.yml"
    p.write_text(text)
    with pytest.raises(SettingsError, match=key):
        load_settings(p)


def test_toml_settings_and_broken_files(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[processing]\nmin_cd = 2e16\nworkers = 1\n")
    assert load_settings(p)["min_cd"] == 2e16
    bad = tmp_path / "b.yml"
    bad.write_text("min_cd: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yml")
    listing = tmp_path / "l.yml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(listing)
    assert settings_from_mapping({})["min_cd"] == 5e16   # PyCam default


# --- archive --------------------------------------------------------------------------------

def _img(directory, t, band, exposure, kind="Plume", value=100):
    name = ImageName(t, band, 1, exposure, kind).filename()
    write_image(directory / name, np.full((8, 10), value, np.uint16), fsync=False)
    return directory / name


def test_pairing_exact_and_with_tolerance(tmp_path):
    for i in range(3):
        _img(tmp_path, T0 + dt.timedelta(seconds=4 * i), "on", 999904)
        _img(tmp_path, T0 + dt.timedelta(seconds=4 * i + (1 if i == 2 else 0)), "off", 199994)
    _img(tmp_path, T0, "on", 999904, "Dark")
    (tmp_path / "README.txt").write_text("not an image")
    exact = find_plume_pairs(tmp_path)
    assert [p.time for p in exact.pairs] == [T0, T0 + dt.timedelta(seconds=4)]
    assert len(exact.unpaired) == 2
    loose = find_plume_pairs(tmp_path, tolerance_s=1.0)
    assert len(loose.pairs) == 3 and not loose.unpaired
    assert loose.pairs[2].b.time - loose.pairs[2].a.time == dt.timedelta(seconds=1)
    assert [r.frame_type for r in scan_directory(tmp_path, frame_types=("Dark",))] == ["Dark"]


def test_temporary_locked_and_corrupt_files(tmp_path):
    a = _img(tmp_path, T0, "on", 1000)
    _img(tmp_path, T0, "off", 1000)
    a2 = _img(tmp_path, T0 + dt.timedelta(seconds=4), "on", 1000)
    _img(tmp_path, T0 + dt.timedelta(seconds=4), "off", 1000)
    (tmp_path / ("." + a.name + ".part-1234")).write_bytes(b"partial")
    locked = _img(tmp_path, T0 + dt.timedelta(seconds=8), "on", 1000)
    _img(tmp_path, T0 + dt.timedelta(seconds=8), "off", 1000)
    (tmp_path / (locked.stem + ".lock")).write_text("")
    a2.write_bytes(a2.read_bytes()[:200])          # truncated
    pairs = find_plume_pairs(tmp_path).pairs
    assert len(pairs) == 2                       # the locked pair is not offered
    problems: list[str] = []
    read = list(iter_pair_images(pairs, problems))
    assert [p.time for p in read] == [T0]
    assert len(problems) == 1 and a2.name in problems[0]


def test_read_pair_gives_the_one_image_pair_shape(tmp_path):
    a = _img(tmp_path, T0, "on", 999904, value=300)
    b = _img(tmp_path, T0, "off", 500000, value=200)
    (files,) = find_plume_pairs(tmp_path).pairs
    pair = read_pair(files)
    assert isinstance(pair, ImagePair)
    assert pair.img_a.shape == pair.img_b.shape == (8, 10)
    assert int(pair.img_a[0, 0]) == 300 and int(pair.img_b[0, 0]) == 200
    assert pair.meta == {"time": T0, "time_string": "2019-09-18T074335", "type": "Plume",
                         "exposure_a_us": 999904, "exposure_b_us": 500000,
                         "source_a": str(a), "source_b": str(b)}


def test_directory_watcher_yields_each_pair_once(tmp_path):
    w = DirectoryWatcher(tmp_path)
    assert w.poll() == []
    _img(tmp_path, T0, "on", 1000)
    assert w.poll() == []                        # B not there yet
    _img(tmp_path, T0, "off", 1000)
    first = w.poll()
    assert len(first) == 1 and w.poll() == []
    _img(tmp_path, T0 + dt.timedelta(seconds=4), "on", 1000)
    _img(tmp_path, T0 + dt.timedelta(seconds=4), "off", 1000)
    assert [p.time for p in w.poll()] == [T0 + dt.timedelta(seconds=4)]


def test_pair_records_never_pairs_different_types(tmp_path):
    _img(tmp_path, T0, "on", 1000, "Plume")
    _img(tmp_path, T0, "off", 1000, "Test")
    result = pair_records(scan_directory(tmp_path), tolerance_s=5)
    assert result.pairs == [] and len(result.unpaired) == 2


# --- output formats -------------------------------------------------------------------------

def test_emission_rate_csv_layout_and_roundtrip(tmp_path):
    rows = [EmissionRow(T0, 5.1234, 1.01, 7.9, 1.2, 0.8, 0.9, 0.64),
            EmissionRow(T0 + dt.timedelta(seconds=4), None, None, None, None, None, None, 0.5, 6,
                        "FLOW_NEAR_ZERO;FEW_VECTORS")]
    with EmissionRateWriter(tmp_path) as w:
        for r in rows:
            path = w.write("0", "flow_hybrid", r)
    assert path == tmp_path / "line_0" / "20190918_EmissionRates_flow_hybrid.txt"
    text = path.read_text().splitlines()
    # PyCam's eight columns first, then the quality flag and its reasons
    assert text[0] == ("datetime,flux_(kg/s),flux_err,velo_eff_(m/s),velo_eff_err,frac_optflow_ok,"
                       "frac_optflow_ok_ica,ICA_mass_(kg/m),flag,flag_reason")
    assert text[1] == "2019-09-18 07:43:35,5.123,1.010,7.900,1.200,0.800,0.900,0.640,0,"
    assert text[2] == "2019-09-18 07:43:39,,,,,,,0.500,6,FLOW_NEAR_ZERO;FEW_VECTORS"
    back = read_emission_rates(path)
    assert back[0].flux == pytest.approx(5.123) and back[1].flux is None and back[1].ica_mass == 0.5
    assert (back[0].flag, back[0].flag_reason) == (0, "") and back[1].flag == 6
    # a file PyCam wrote (its eight columns only) reads with flag 0
    pycam_file = tmp_path / "pycam.txt"
    pycam_file.write_text("\n".join(t.rsplit(",", 2)[0] for t in text[:2]) + "\n")
    old = read_emission_rates(pycam_file)
    assert old[0].flux == pytest.approx(5.123) and old[0].flag == 0
    path.write_text("nonsense\n")
    with pytest.raises(OutputFormatError, match="not a PyCam emission-rate file"):
        read_emission_rates(path)


def test_full_calibration_csv_roundtrip_and_errors(tmp_path):
    table = CalibrationTable(402.0, 243.0, 10.0, 30.0, None, [
        CalibrationRecord(T0, 0.1, 5e17, 2e16, (1e15, 5.2e18), 1e32, 0.98),
        CalibrationRecord(T0 + dt.timedelta(seconds=4), 0.2, 1.05e18, 2e16, (1e15, 5.2e18), 1e32, 0.98)])
    p = write_full_calibration(tmp_path / "full_calibration.csv", table)
    lines = p.read_text().splitlines()
    assert lines[0] == "headerlines=5" and lines[1] == "DOAS_FOV_pos [X Y]=402 243"
    assert lines[4] == "DOAS_fov_recal [minutes]=False"
    assert lines[5] == (",timepoint,optical depth (tau),col density (doas),col density (error),"
                        "coeff 0,coeff 1,MSE,r-squared")
    back = read_full_calibration(p)
    assert back.fov_radius == 10 and back.remove_doas_mins == 30 and back.doas_fov_recal_mins is None
    assert back.records[1].coeffs == (1e15, 5.2e18) and back.records[1].time == T0 + dt.timedelta(seconds=4)
    p.write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(OutputFormatError):
        read_full_calibration(p)


def test_doas_results_roundtrip(tmp_path):
    p = write_doas_results(tmp_path / "doas_results_x.csv", [(T0, 1e18, 2e16, 0.1), (T0, 2e17, 1e16, None)])
    assert p.read_text().splitlines()[0] == "Time,Column density,CD error,LDF"
    back = read_doas_results(p)
    assert back[0][1] == 1e18 and back[1][3] is None
