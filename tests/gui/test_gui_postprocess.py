"""Post-processing tab: the batch chain of ``pycam process`` on a ``pycam simulate`` data set,
driven through the form (progress, results plotted as they come, outputs, cancel)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from gui_drive import pump_until

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "ds"
    subprocess.run([sys.executable, "-m", "pycam", "simulate", "--out", str(out), "--pairs", "16", "--scene", "clean", "--quiet"],
                   check=True, timeout=120)
    return out


def fill_form(view, dataset, tmp_path):
    settings = tmp_path / "processing.yml"
    settings.write_text("plume_distance_m: 5000\npolyorder_cal: 2\n")
    view.vars["img_dir"].set(str(dataset / "Seq_1"))
    view.vars["cal_dir"].set(str(dataset / "Cal_1"))
    view.vars["dark_dir"].set(str(dataset / "Dark"))
    view.vars["clear_dir"].set(str(dataset / "Clear"))
    view.vars["pcs"].set(f"{dataset / 'pcs_line_0.txt'} {dataset / 'pcs_line_1.txt'}")
    view.vars["settings"].set(str(settings))
    view.vars["out_dir"].set(str(tmp_path / "out"))


def test_bad_inputs_refused(standin_app, tmp_path):
    view = standin_app.views["Post-processing"]
    view.vars["img_dir"].set(str(tmp_path / "missing"))
    assert not view.run()
    assert "refused" in view.status.get()
    view.vars["img_dir"].set(str(tmp_path))
    view.vars["pcs"].set(str(tmp_path / "nope.txt"))
    assert not view.run() and "PCS" in view.status.get()


def test_batch_run_plots_and_writes_pycam_outputs(standin_app, dataset, tmp_path):
    view = standin_app.views["Post-processing"]
    fill_form(view, dataset, tmp_path)
    assert view.run()
    assert pump_until(standin_app.root, lambda: not view.running, 120), view.status.get()
    assert view.status.get().startswith("done"), view.status.get()
    assert float(view.progress["value"]) == float(view.progress["maximum"]) == 16
    assert view.results_received >= 15
    files = sorted((tmp_path / "out").rglob("*_EmissionRates_flow_*.txt"))
    assert any("line_0" in str(f) for f in files) and any("line_total" in str(f) or "total" in str(f) for f in files)
    header = files[0].read_text().splitlines()[0]
    assert header.startswith("datetime,flux_(kg/s),flux_err")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pairs_processed"] == 16
    totals = view.series.data.get("total")
    assert totals and all(math.isfinite(v) for v in totals[1][1:])  # the first pair has no flow


def test_batch_cancel_leaves_complete_outputs(standin_app, dataset, tmp_path):
    view = standin_app.views["Post-processing"]
    fill_form(view, dataset, tmp_path)
    view.cancel_event.set()  # cancelled before the first pair is read
    view.running = False
    from pycam.gui.batch_runner import run_batch

    summary = run_batch(view.inputs(), standin_app.queue, view.cancel_event)
    assert summary.startswith("cancelled")
    assert (tmp_path / "out" / "summary.json").is_file()


def test_batch_with_spectra_directory_calibrates_with_doas(standin_app, dataset, tmp_path):
    """A spectra directory is retrieved first and calibrates the images (cal_type_int 1)."""
    from pycam.formats.pycam_outputs import read_full_calibration

    view = standin_app.views["Post-processing"]
    fill_form(view, dataset, tmp_path)
    view.vars["cal_dir"].set("")
    view.vars["spec_dir"].set(str(dataset / "Spectra"))
    (tmp_path / "processing.yml").write_text("plume_distance_m: 5000\nmin_num_imgs: 10\n")
    assert view.run()
    assert pump_until(standin_app.root, lambda: not view.running, 120), view.status.get()
    assert view.status.get().startswith("done"), view.status.get()
    assert (tmp_path / "out" / "doas_results.csv").read_text().startswith("Time,Column density,CD error")
    # the same default line shape as pycam doas: self-calibrated (on the Clear spectrum), never a fixed guess
    import csv

    with open(tmp_path / "out" / "doas_results.csv", newline="") as fh:
        shapes = [row["line_shape"] for row in csv.DictReader(fh)]
    assert shapes and not any("fixed" in shape for shape in shapes)
    history = (tmp_path / "out" / "doas_calibration_history.csv").read_text().splitlines()
    assert len(history) >= 2 and "Clear" in history[1]
    table = read_full_calibration(tmp_path / "out" / "full_calibration.csv")
    assert table.records and table.records[-1].r_squared > 0.5
    totals = view.series.data.get("total")
    assert totals and all(math.isfinite(v) and v > 0 for v in totals[1][1:])
