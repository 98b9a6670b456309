"""Real spectra: the Masaya traverse (iFit example) and PyCam's own spectrometer."""
from __future__ import annotations

import numpy as np
import pytest

from pycam.doas.lineshape import read_ils_file
from pycam.doas.model import LineShapeSpec
from pycam.doas.retrieval import DoasRetrieval, RetrievalSettings
from pycam.doas.spectra import read_spectrum

pytestmark = pytest.mark.realdata

#: iFit's own results for these spectra (shared/data/reference/README.md, section 10)
MASAYA_EXPECTED = {"spectrum_00420.txt": 6.7e17, "spectrum_00448.txt": 9.6e17}


@pytest.fixture(scope="module")
def masaya_results(data_dir, real_refs):
    folder = data_dir / "reference" / "spectra_ifit_masaya_2018"
    dark = read_spectrum(folder / "dark.txt")
    settings = RetrievalSettings(fit_window=(310.0, 320.0), stray_window=(280.0, 290.0),
                                 line_shape=LineShapeSpec(fwem=0.6, fit=True))
    retrieval = DoasRetrieval(real_refs, settings, dark)
    return {name: retrieval.fit(read_spectrum(folder / name))
            for name in ("spectrum_00000.txt", "spectrum_00420.txt", "spectrum_00448.txt")}


def test_masaya_clear_sky_is_zero(masaya_results):
    clear = masaya_results["spectrum_00000.txt"]
    assert clear.ok
    assert abs(clear.so2) < 5e16
    assert clear.so2_error < 5e16


@pytest.mark.parametrize("name", sorted(MASAYA_EXPECTED))
def test_masaya_plume_matches_ifit(masaya_results, name):
    result = masaya_results[name]
    assert result.ok, result.quality
    assert result.so2 == pytest.approx(MASAYA_EXPECTED[name], rel=0.10)
    assert 0.55 < result.values["fwem"] < 0.75                 # iFit fitted ~0.66 nm
    assert np.max(np.abs(result.relative_residual)) < 0.05


def test_masaya_residual_plot(masaya_results, artifacts_dir):
    from pycam.cli.doas import plot_fit

    for name, result in masaya_results.items():
        path = plot_fit(result, artifacts_dir / f"doas_masaya_{name.replace('.txt', '')}_fit.png")
        assert path.stat().st_size > 10_000


def test_pycam_spectra_with_measured_ils(data_dir, real_refs):
    folder = data_dir / "pycam_spectra"
    dark = read_spectrum(folder / "2019-05-29T124352_1000ss_1coadd_Dark.npy")
    for ils_name in ("2019-07-03_302nm_ILS.txt", "2019-07-03_313nm_ILS.txt"):
        settings = RetrievalSettings(line_shape=LineShapeSpec(measured=read_ils_file(folder / ils_name)))
        retrieval = DoasRetrieval(real_refs, settings, dark)
        results = [retrieval.fit(read_spectrum(p)) for p in sorted(folder.glob("*_Plume.npy"))]
        assert len(results) == 4
        for r in results:
            assert r.converged
            assert -2e17 < r.so2 < 1e18                       # plausible for this data set
            assert 0 < r.so2_error < 3e17
            assert 5e18 < r.values["O3"] < 3e19                # a sensible ozone slant column
            assert abs(r.values["shift"]) < 0.3


def _doas_cli(data_dir, out, *extra):
    from pycam.cli.main import main

    ref = data_dir / "reference"
    folder = ref / "spectra_ifit_masaya_2018"
    code = main(["doas", str(folder), "--out", str(out), "--reference-dir", str(ref), "--dark", str(folder / "dark.txt"),
                 "--fit-window", "310", "320", "--stray-window", "280", "290", *extra])
    assert code == 0
    import csv

    with open(out, newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def test_masaya_defaults_agree_with_fitted_line_shape(data_dir, tmp_path, capsys):
    """`pycam doas` with no line-shape option self-calibrates the line shape and agrees with
    --fit-ils within 1 % on the plume spectra; the shape used is in the results and the log."""
    default = _doas_cli(data_dir, tmp_path / "default" / "res.csv")
    log = capsys.readouterr().err
    fitted = _doas_cli(data_dir, tmp_path / "fitted" / "res.csv", "--fit-ils")
    for name in MASAYA_EXPECTED:
        assert float(default[name]["Column density"]) == pytest.approx(float(fitted[name]["Column density"]), rel=0.01)
    clear = "spectrum_00000.txt"
    assert abs(float(default[clear]["Column density"]) - float(fitted[clear]["Column density"])) < 5e15
    assert all("super-Gaussian" in row["line_shape"] for row in default.values())
    assert "line shape calibrated on spectrum_00000.txt" in log
    history = (tmp_path / "default" / "doas_calibration_history.csv").read_text().splitlines()
    assert history[0].startswith("time,source,reason,fwem_nm") and len(history) >= 2
    assert "self-calibrated" in (tmp_path / "default" / "doas_processing_params.txt").read_text()


def test_masaya_light_dilution_leaves_weak_plume_uncorrected(data_dir, real_refs, tmp_path):
    """The two-waveband correction on the real traverse (iFit's 310-320 nm and 312-322 nm):
    at <= 1e18 the windows do not constrain the dilution factor (its error > 0.1; the clear-sky
    spectrum already differs by ~4.5e16 between the windows), so the columns stay as fitted and
    the LDF is NaN rather than an invented correction."""
    from pycam.doas.configure import default_doas_section, retrieval_from_config

    folder = data_dir / "reference" / "spectra_ifit_masaya_2018"
    conf = dict(default_doas_section(), use_light_dilution_spec=True, cache_dir=tmp_path,
                fit_window=[310.0, 320.0], stray_window=[280.0, 290.0])
    retrieval = retrieval_from_config(conf, real_refs, dark=read_spectrum(folder / "dark.txt"))
    details = {name: retrieval.fit_detail(read_spectrum(folder / name))
               for name in ("spectrum_00000.txt", "spectrum_00420.txt", "spectrum_00448.txt")}
    for name, (fit, detail) in details.items():
        assert fit.ok
        assert not detail.constrained and np.isnan(fit.ldf)
        assert fit.so2 == detail.apparent_1
    for name, expected in MASAYA_EXPECTED.items():
        fit, detail = details[name]
        assert fit.so2 == pytest.approx(expected, rel=0.10)
        assert 1.0 < detail.apparent_2 / detail.apparent_1 < 1.15           # measured 1.076, 1.072
        assert not detail.own_ldf_error <= 0.1                             # measured inf, 0.14
