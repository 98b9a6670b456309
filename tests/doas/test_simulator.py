"""Consistency with the station simulator: its spectra retrieve back to its columns, and its
camera + spectrometer data give back its spectrometer field of view and AA-to-column slope."""
from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pytest

from pycam.doas.fov import calibrate_fov
from pycam.processing.doas_calibration import fit_calibration
from pycam.doas.model import LineShapeSpec
from pycam.doas.retrieval import DoasRetrieval, RetrievalSettings
from pycam.doas.spectra import MeasuredSpectrum, mean_spectrum

pytestmark = pytest.mark.slow

INTEGRATION_MS = 1000


class FixedColumn:
    """Stands in for the simulator's plume field: the same SO2 column in the FOV at every time."""

    def __init__(self) -> None:
        self.column = 0.0

    def fov_column(self, t: float) -> float:
        return self.column


@pytest.fixture(scope="module")
def simulator():
    from pycam.sim.spectrometer_model import SpectrometerModel
    from pycam.reference_spectra import synthetic_reference_set

    field = FixedColumn()
    return field, {noise: SpectrometerModel(field, synthetic_reference_set(), seed=3, noise=noise)
                   for noise in (False, True)}


def _spectrum(model, t, frame_type="Plume"):
    counts, _ = model.spectrum(float(t), INTEGRATION_MS, 1, frame_type)
    return MeasuredSpectrum(model.wavelengths.copy(), counts, integration_ms=INTEGRATION_MS, coadd=1,
                            frame_type=frame_type)


def _retrieval(model, synthetic_refs, line_shape, noise):
    darks = [_spectrum(model, 1000.0 + k, "Dark") for k in range(10 if noise else 1)]
    return DoasRetrieval(synthetic_refs, RetrievalSettings(line_shape=line_shape), mean_spectrum(darks))


LINE_SHAPES = {"fixed": LineShapeSpec(fwem=0.6, k=2.2), "fitted": LineShapeSpec(fwem=0.55, k=2.0, fit=True)}


@pytest.mark.parametrize("shape", sorted(LINE_SHAPES))
def test_noise_free_simulated_spectra(simulator, synthetic_refs, shape):
    field, models = simulator
    retrieval = _retrieval(models[False], synthetic_refs, LINE_SHAPES[shape], noise=False)
    for column in (0.0, 2.5e17, 5e17, 1e18, 1.5e18, 2e18):
        field.column = column
        result = retrieval.fit(_spectrum(models[False], 0.0))
        assert result.ok
        assert abs(result.so2 - column) <= 0.02 * max(column, 1e17) * 0.25   # well inside 2 %


@pytest.mark.parametrize("shape", sorted(LINE_SHAPES))
def test_noisy_simulated_spectra_errors_cover_scatter(simulator, synthetic_refs, shape):
    field, models = simulator
    retrieval = _retrieval(models[True], synthetic_refs, LINE_SHAPES[shape], noise=True)
    normalised = []
    for column in (0.0, 5e17, 1e18, 2e18):
        field.column = column
        results = [retrieval.fit(_spectrum(models[True], 4.0 * k)) for k in range(24)]
        values = np.array([r.so2 for r in results])
        errors = np.array([r.so2_error for r in results])
        assert all(r.ok for r in results)
        assert abs(values.mean() - column) <= 0.02 * max(column, 1e18)      # within 2 % (2e16 at zero)
        assert values.std(ddof=1) <= 1.5 * errors.mean()
        normalised.append((values - column) / errors)
    z = np.concatenate(normalised)                                           # 96 fits
    assert 0.7 < z.std() < 1.4                                               # errors match the scatter
    assert np.mean(np.abs(z) <= 2.0) >= 0.85


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pycam.cli.main import main

    out = tmp_path_factory.mktemp("simulated")
    assert main(["simulate", "--out", str(out), "--pairs", "30", "--scene", "clean", "--force", "--quiet"]) == 0
    return out, json.loads((out / "truth.json").read_text())


def _aa_stack(out):
    from pycam.formats.images import read_image
    from pycam.formats.names import ImageName

    def mean_of(folder, band, frame_type):
        files = sorted((out / folder).glob(f"*_{band}_*_{frame_type}.png"))
        assert files, f"no {band} {frame_type} frames in {folder}"
        return np.mean([read_image(p).astype(np.float64) for p in files], axis=0)

    dark = {b: mean_of("Dark", b, "Dark") for b in ("fltrA", "fltrB")}
    clear = {b: mean_of("Clear", b, "Clear") - dark[b] for b in ("fltrA", "fltrB")}
    times, stack = [], []
    for path_a in sorted((out / "Seq_1").glob("*_fltrA_*_Plume.png")):
        name = ImageName.parse(path_a.name)
        path_b = next((out / "Seq_1").glob(f"{name.time_string}_fltrB_*_Plume.png"))
        tau = {}
        for band, path in (("fltrA", path_a), ("fltrB", path_b)):
            plume = np.maximum(read_image(path) - dark[band], 1.0)
            tau[band] = np.log(np.maximum(clear[band], 1.0) / plume)
        times.append(name.time)
        stack.append((tau["fltrA"] - tau["fltrB"]).astype(np.float32))
    return times, np.stack(stack)


def test_simulated_dataset_retrieval_and_fov_calibration(dataset, tmp_path):
    from pycam.cli.main import main

    out, truth = dataset
    results = tmp_path / "doas_results.csv"
    assert main(["doas", str(out / "Spectra"), "--out", str(results), "--fwem", "0.6", "--fit-ils"]) == 0
    true_column = {p["files"]["spectrum"].split("/")[-1]: p["fov_column_molec_cm2"] for p in truth["pairs"]}
    rows = [r for r in csv.DictReader(open(results)) if r["file"] in true_column]
    assert len(rows) == len(truth["pairs"]) == 30
    retrieved = np.array([float(r["Column density"]) for r in rows])
    errors = np.array([float(r["CD error"]) for r in rows])
    expected = np.array([true_column[r["file"]] for r in rows])
    assert abs(np.mean(retrieved / expected) - 1.0) < 0.02
    assert np.std(retrieved - expected, ddof=1) <= 1.5 * errors.mean()

    times, stack = _aa_stack(out)
    doas_times = [dt.datetime.strptime(r["Time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
                  for r in rows]
    result = calibrate_fov(times, stack, doas_times, retrieved, errors)
    fov = truth["spectrometer_fov"]
    assert np.hypot(result.centre_x - fov["x"], result.centre_y - fov["y"]) <= 2.0
    assert abs(result.radius - fov["radius_px"]) <= 3
    # truth: the simulator's AA(column) curve, fitted linearly over the columns seen in the FOV
    curve_column = np.array(truth["aa_curve"]["column_molec_cm2"])
    curve_aa = np.array(truth["aa_curve"]["aa"])
    inside = (curve_column >= expected.min()) & (curve_column <= expected.max())
    assert inside.sum() >= 5
    true_slope = np.polyfit(curve_aa[inside], curve_column[inside], 1)[0]
    _, aa, cols, errs = result.samples
    assert fit_calibration(aa, cols, errs, order=1, through_origin=False).slope == pytest.approx(true_slope, rel=0.03)
