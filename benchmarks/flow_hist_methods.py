"""Benchmark: the flow histogram methods (``flow_hist_method``) against the simulator's truth.

Run:  .venv/bin/python benchmarks/flow_hist_methods.py [--pairs 10]

Data: ``pycam simulate`` data sets written to a temporary directory: the realistic scene with
a slow (2 m/s, 8 s cadence) and a fast (10 m/s, 4 s) plume, and the clean scene at 8 m/s.
Each is processed as ``pycam process`` does (default settings, the set's cells and PCS
lines), once per method; the speed of ``flow_histo`` and ``flow_hybrid`` is the mean flux
over the mean ICA mass of the valid samples of each line, compared with the true plume
speed in the same run.

Writes ``benchmarks/results/flow_hist_methods.json`` and prints one line per case.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycam.formats.atomic import atomic_write_text  # noqa: E402
from pycam.formats.pycam_outputs import read_emission_rates  # noqa: E402
from pycam.processing.batch import BatchJob, run_batch  # noqa: E402
from pycam.processing.flow_analysis import HIST_METHODS  # noqa: E402
from pycam.processing.settings import default_settings  # noqa: E402
from pycam.sim.dataset import DatasetOptions, write_dataset  # noqa: E402

CASES = {"realistic-2ms": dict(scene="realistic", seed=5, wind_speed_m_s=2.0, framerate_hz=0.125),
         "realistic-10ms": dict(scene="realistic", seed=6, wind_speed_m_s=10.0, framerate_hz=0.25),
         "clean-8ms": dict(scene="clean", seed=1, wind_speed_m_s=8.0, framerate_hz=0.25)}
MODES = ("flow_histo", "flow_hybrid")


def line_speeds(out: Path, mode: str) -> dict:
    """Per line: (valid samples, rows, mean flux / mean ICA mass in m/s)."""
    result = {}
    for line_dir in sorted(out.glob("line_*")):
        (path,) = list(line_dir.glob(f"*_EmissionRates_{mode}.txt"))
        rows = read_emission_rates(path)
        valid = [r for r in rows if r.flux is not None and r.ica_mass]
        speed = (float(np.mean([r.flux for r in valid]) / np.mean([r.ica_mass for r in valid]))
                 if valid else float("nan"))
        result[line_dir.name] = {"valid": len(valid), "rows": len(rows), "speed_m_s": speed}
    return result


def run_case(tmp: Path, name: str, opts: dict, pairs: int) -> dict:
    data = tmp / name
    write_dataset(data, DatasetOptions(pairs=pairs, line_columns=False, **opts))
    truth = json.loads((data / "truth.json").read_text())
    case = {"true_speed_m_s": truth["plume_speed_m_s"], "methods": {}}
    for method in HIST_METHODS:
        out = tmp / f"{name}_{method}"
        settings = default_settings(plume_distance_m=truth["plume_distance_m"], flow_hist_method=method)
        run_batch(BatchJob(data / "Seq_1", out, settings, cal_dir=data / "Cal_1",
                           pcs=sorted(data.glob("pcs_line_*.txt"))))
        per_mode = {}
        for mode in MODES:
            lines = line_speeds(out, mode)
            for entry in lines.values():
                entry["error_pct"] = 100.0 * (entry["speed_m_s"] / truth["plume_speed_m_s"] - 1.0)
            per_mode[mode] = lines
            errs = ", ".join(f"{k} {v['error_pct']:+.2f} % ({v['valid']}/{v['rows']})" for k, v in lines.items())
            print(f"{name:15s} {method:15s} {mode:12s} speed error {errs}", flush=True)
        case["methods"][method] = per_mode
    return case


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10, help="pairs per simulated data set")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_case(Path(tmp), name, opts, args.pairs) for name, opts in CASES.items()}
    out = ROOT / "benchmarks" / "results" / "flow_hist_methods.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
