"""``pycam simulate --out DIR --pairs N``: write a complete synthetic PyCam data set (no network).

The layout and the ``truth.json`` schema are documented in
:mod:`pycam.sim.dataset`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from pycam.formats.names import ISO_TIME_FORMAT, TIME_FORMAT, read_time
from pycam.sim.landscape import SCENES
from pycam.sim.dataset import DEFAULT_START, DatasetError, DatasetOptions, flux_check, write_dataset


def _utc_time(text: str) -> dt.datetime:
    when = read_time(text, (TIME_FORMAT, ISO_TIME_FORMAT))
    if when is not None:
        return when
    raise argparse.ArgumentTypeError(f"bad time {text!r}: use YYYY-mm-ddTHHMMSS or YYYY-mm-ddTHH:MM:SS (UTC)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output directory (created; must be empty unless --force)")
    parser.add_argument("--pairs", type=int, default=20, help="number of plume image pairs (default 20)")
    parser.add_argument("--emission-rate", type=float, default=5.0, metavar="KG_S",
                        help="SO2 emission rate of the simulated plume, kg/s (default 5)")
    parser.add_argument("--wind-speed", type=float, default=8.0, metavar="M_S",
                        help="plume speed, m/s (default 8)")
    parser.add_argument("--scene", choices=SCENES, default="realistic",
                        help="realistic (default): volcano, snow, dark terrain, a plume from the vent, clouds "
                             "above the lines, dust specks, B offset and rotated against A, mild light dilution, "
                             "bending cell response; cloudy: the same with clouds through the plume; clean: "
                             "the uniform sky with a full-width plume band")
    parser.add_argument("--wind-direction", type=float, default=None, metavar="DEG",
                        help="direction the plume travels in the image, degrees counter-clockwise from +x "
                             "(default: the scene's, clean 0 = to the right, realistic 8)")
    parser.add_argument("--plume-distance", type=float, default=5000.0, metavar="M",
                        help="distance camera-plume, m (default 5000)")
    parser.add_argument("--seed", type=int, default=1, help="scene seed (default 1); same seed, same data")
    parser.add_argument("--framerate", type=float, default=0.25, metavar="HZ",
                        help="pair rate in Hz, at most 1; pairs are round(1/HZ) whole seconds apart (default 0.25)")
    parser.add_argument("--start", type=_utc_time, default=DEFAULT_START, metavar="TIME",
                        help="UTC time of the first pair, YYYY-mm-ddTHHMMSS (default 2026-03-15T120000)")
    parser.add_argument("--full-resolution", action="store_true",
                        help="write 2592x1944 frames instead of binned 648x486 (lines/FOV stay in 648x486 px)")
    parser.add_argument("--reference-dir", type=Path, default=None,
                        help="directory with the real SO2/O3/Ring/solar references (default: the labelled "
                             "synthetic band model)")
    parser.add_argument("--no-noise", action="store_true", help="noise-free frames and spectra")
    parser.add_argument("--misregistration", type=float, nargs=2, default=None, metavar=("DX", "DY"),
                        help="off-band (B) camera pixel (x, y) views on-band pixel (x+DX, y+DY), within ±80 px "
                             "(default: the scene's, clean 0 0, realistic -24 17)")
    parser.add_argument("--rotation", type=float, default=None, metavar="DEG",
                        help="rotation of camera B against A about the frame centre, degrees, within ±5 "
                             "(default: the scene's, clean 0, realistic 0.6)")
    parser.add_argument("--extinction-on", type=float, default=None, metavar="PER_M",
                        help="atmospheric extinction between plume/terrain and camera, on-band, 1/m (light "
                             "dilution; default: the scene's, realistic 6e-6, clean 0)")
    parser.add_argument("--extinction-off", type=float, default=None, metavar="PER_M",
                        help="the same for the off-band (default: the scene's, realistic 5e-6, clean 0)")
    parser.add_argument("--cells", type=int, nargs="+", default=[304, 600, 1257], metavar="PPMM",
                        help="gas-cell amounts in ppm·m besides 0ppmm (default 304 600 1257)")
    parser.add_argument("--dark-frames", type=int, default=2, help="dark frames per filter and exposure (default 2)")
    parser.add_argument("--coadd", type=int, default=1, help="spectrometer co-adds (default 1)")
    parser.add_argument("--line-gap", type=float, default=40.0, metavar="PX",
                        help="distance between the two PCS lines along the flow, binned px (default 40)")
    parser.add_argument("--compact-truth", action="store_true",
                        help="leave the per-sample PCS-line columns out of truth.json (for very long runs)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty output directory (files of the same names are replaced, "
                             "other files are left as they are)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"pycam simulate: --out {out} exists and is not a directory", file=sys.stderr)
        return 2
    if out.is_dir() and any(out.iterdir()) and not args.force:
        print(f"pycam simulate: --out {out} is not empty (use --force to write into it)", file=sys.stderr)
        return 2
    options = DatasetOptions(
        pairs=args.pairs, emission_rate_kg_s=args.emission_rate, wind_speed_m_s=args.wind_speed,
        wind_direction_deg=args.wind_direction, plume_distance_m=args.plume_distance, seed=args.seed,
        framerate_hz=args.framerate, start=args.start, full_resolution=args.full_resolution,
        reference_dir=args.reference_dir, noise=not args.no_noise,
        scene=args.scene, misregistration_rot_deg=args.rotation,
        misregistration_px=None if args.misregistration is None else (args.misregistration[0], args.misregistration[1]),
        extinction_on_per_m=args.extinction_on, extinction_off_per_m=args.extinction_off,
        cells_ppmm=tuple(args.cells), dark_frames=args.dark_frames, coadd=args.coadd, line_gap_px=args.line_gap,
        line_columns=not args.compact_truth,
    )

    def progress(stage: str, done: int, total: int) -> None:
        if not args.quiet:
            print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        summary = write_dataset(out, options, progress)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"pycam simulate: {exc}", file=sys.stderr)
        return 1
    import json

    truth = json.loads(summary.truth_path.read_text())
    elapsed = time.perf_counter() - started
    print(f"wrote {summary.files} files to {out} in {elapsed:.1f} s: {summary.pairs} pairs, "
          f"exposures A {summary.exposures_us['A']} µs, B {summary.exposures_us['B']} µs, "
          f"spectra {summary.integration_ms} ms")
    deviations = ", ".join(f"line {k} {v * 100:+.3f} %" for k, v in flux_check(truth).items())
    print(f"scene {truth['scene']}: "
          f"light dilution eps on/off {truth['light_dilution']['eps_on_per_m']:g}/"
          f"{truth['light_dilution']['eps_off_per_m']:g} 1/m")
    print(f"truth: emission rate {truth['emission_rate_kg_s']} kg/s, plume speed {truth['plume_speed_m_s']} m/s "
          f"({truth['plume_speed_px_s']:.4f} px/s), mean true flux vs rate: {deviations}; {summary.truth_path}")
    return 0
