"""Run the batch chain on a simulated data set through the library API (as ``pycam process`` does)."""
from __future__ import annotations

from pathlib import Path

from pycam.formats.pycam_outputs import read_emission_rates
from pycam.processing.archive import find_plume_pairs, iter_pair_images
from pycam.processing.chain import ProcessingChain
from pycam.processing.outputs import RunOutputs
from pycam.processing.pipeline import BatchProcessor
from pycam.processing.settings import default_settings
from pycam.processing.setup import prepare_run

#: (seed, emission rate kg/s, wind speed m/s) of the acceptance data sets
SIM_CASES = [(1, 5.0, 8.0), (2, 10.0, 5.0), (3, 3.0, 12.0), (4, 8.0, 15.0)]
SIM_PAIRS = 20


def process_sim(d: Path, truth: dict, out: Path, **overrides):
    """Process ``d/Seq_1`` with its Cal_1 cells and both PCS lines; returns (chain, summary)."""
    settings = default_settings(plume_distance_m=truth["plume_distance_m"], polyorder_cal=2, **overrides)
    pairs = find_plume_pairs(d / "Seq_1").pairs
    inputs = prepare_run(d / "Seq_1", settings, cal_dir=d / "Cal_1",
                         pcs_files=[d / "pcs_line_0.txt", d / "pcs_line_1.txt"], pairs=pairs)
    first = next(iter_pair_images(pairs[:1]))
    chain = ProcessingChain(settings, first.img_a.shape, darks=inputs.darks, clear=inputs.clear,
                            calibration=inputs.calibration, pcs_lines=inputs.pcs_lines, warp=inputs.warp)
    outputs = RunOutputs(out)
    summary = BatchProcessor(chain, outputs).run(iter_pair_images(pairs))
    outputs.close()
    return chain, summary


def rows_of(out: Path, line: str, mode: str):
    (path,) = list((out / f"line_{line}").glob(f"*_EmissionRates_{mode}.txt"))
    return read_emission_rates(path)
