"""The post-processing run behind the GUI's Post-processing tab (runs on a worker thread).

It is the run ``pycam process`` makes (:func:`pycam.processing.batch.run_batch`, same
outputs).  Additionally, a spectra directory is
retrieved first with the DOAS retrieval (results in PyCam's ``doas_results`` CSV format
inside the output directory) and used for the DOAS calibration.

Progress and each pair's emission rates reach the GUI as ``batch_progress`` and
``batch_result`` events; setting ``cancel_event`` stops reading new pairs, the pairs in
flight are finished and every output file is complete.
"""
from __future__ import annotations

import datetime as _dt
import threading
from pathlib import Path
from typing import Any

from pycam.formats.names import format_time
from pycam.gui.result_series import LineRate, So2Display
from pycam.gui.worker import GuiQueue


def default_output_dir(img_dir: Path) -> Path:
    """PyCam's layout: ``<img_dir>/Processed_<YYYY-mm-ddTHHMMSS>``."""
    return img_dir / f"Processed_{format_time(_dt.datetime.now(_dt.timezone.utc))}"


def retrieve_spectra(spec_dir: Path, out_dir: Path, doas: dict[str, Any] | None = None,
                     cancel_event: threading.Event | None = None) -> tuple[Path, int]:
    """Fit every Plume spectrum of ``spec_dir`` (dark: the mean of its Dark spectra) as
    ``pycam doas`` does with the ``[doas]`` section ``doas`` (None: its defaults; so by default
    the self-calibrated line shape, calibrated on the Clear spectra first when there are any);
    returns the results CSV and how many fits it holds."""
    from pycam.doas.configure import default_doas_section, references_from_config, retrieval_from_config
    from pycam.doas.results import write_results_csv
    from pycam.doas.selfcal import HISTORY_NAME
    from pycam.doas.spectra import SpectrumError, is_dark, list_spectrum_files, mean_spectrum, read_spectrum

    section = dict(default_doas_section(), **(doas or {}))
    spectra, darks = [], []
    for path in list_spectrum_files(spec_dir):
        try:
            spectrum = read_spectrum(path)
        except SpectrumError:
            continue
        (darks if is_dark(spectrum) else spectra).append(spectrum)
    dark = mean_spectrum(darks) if darks else None
    out_dir.mkdir(parents=True, exist_ok=True)
    retrieval = retrieval_from_config(section, references_from_config(section), dark=dark,
                                      history_path=out_dir / HISTORY_NAME)
    clear = [s for s in spectra if s.frame_type == "Clear"]
    results = []
    for spectrum in clear + [s for s in spectra if s.frame_type in (None, "Plume")]:
        if cancel_event is not None and cancel_event.is_set():
            break
        try:
            fit = retrieval.fit(spectrum)
        except (SpectrumError, ValueError):
            continue
        if fit.ok and spectrum.frame_type != "Clear":
            results.append(fit)
    history = getattr(retrieval, "history", None)
    if history is not None and history.latest is not None:
        history.write()
    return write_results_csv(out_dir / "doas_results.csv", results), len(results)


def run_batch(form: dict[str, Any], queue: GuiQueue, cancel_event: threading.Event, *,
              doas: dict[str, Any] | None = None) -> str:
    """Run the chain on ``form`` (``img_dir``, ``out_dir``, ``cal_dir``, ``dark_dir``,
    ``clear_dir``, ``spec_dir``, ``geometry``, ``pcs``, ``settings``); ``doas`` is the station
    config's ``[doas]`` section for the spectra; returns a one-line summary."""
    from pycam.processing import batch
    from pycam.processing.outputs import RunOutputs
    from pycam.processing.settings import load_settings

    img_dir: Path = form["img_dir"]
    out_dir: Path = form.get("out_dir") or default_output_dir(img_dir)
    settings = load_settings(form.get("settings"))
    doas_results = None
    if form.get("spec_dir") is not None:
        doas_results, fits = retrieve_spectra(form["spec_dir"], out_dir, doas, cancel_event)
        if fits and form.get("cal_dir") is None and settings["cal_type_int"] == 0:
            settings = settings.replace(cal_type_int=1)  # calibrate with the spectra
    primary = settings["primary_mode"]

    class GuiOutputs(RunOutputs):
        """Writes exactly what RunOutputs writes, and shows each pair's rates in the GUI."""

        def write_rates(self, time, rates_by_mode):
            super().write_rates(time, rates_by_mode)
            rates = rates_by_mode.get(primary) or next(iter(rates_by_mode.values()), {})
            shown = {str(name): LineRate(float(r.flux_kg_s), float(r.flux_err), float(r.velo_eff),
                                         float(r.velo_eff_err if r.velo_eff_err is not None else float("nan")),
                                         int(r.flag), r.flag_reason)
                     for name, r in rates.items()}
            queue.post("batch_result", So2Display(format_time(time), time.timestamp(), {}, shown))

    done = [0]
    total = [0]

    def progress(n: int) -> None:
        done[0] += n
        queue.post("batch_progress", (done[0], total[0]), coalesce="batch_progress")

    job = batch.BatchJob(img_dir, out_dir, settings, cal_dir=form.get("cal_dir"), dark_dir=form.get("dark_dir"),
                         clear_dir=form.get("clear_dir"), geometry=form.get("geometry"), pcs=form.get("pcs") or (),
                         doas_results=doas_results)
    try:
        result = batch.run_batch(job, progress=progress, cancel=cancel_event, outputs_factory=GuiOutputs,
                                 on_pairs=lambda n: total.__setitem__(0, n))
    except batch.BatchError as exc:
        raise ValueError(str(exc)) from exc
    summary = result.summary
    if summary is None:
        return f"cancelled before the first pair; outputs in {out_dir}"
    warnings = []
    if not result.calibrated:
        warnings.append("no calibration: no emission rates")
    if not result.has_lines:
        warnings.append("no PCS line: no emission rates")
    state = "cancelled" if cancel_event.is_set() else "done"
    return (f"{state}: {summary.pairs_processed}/{result.total_pairs} pairs in {summary.seconds:.1f} s, "
            f"{summary.pairs_skipped_reference} skipped by the reference check, {len(result.problems)} problem(s); "
            f"outputs in {out_dir}" + ("; " + "; ".join(warnings) if warnings else ""))
