"""``pycam process``: PyCam image pairs -> SO2 images and emission rates (batch or --watch)."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("img_dir", metavar="IMG_DIR", type=Path,
                        help="directory of PyCam images (<time>_fltrA|B_<gain>ag_<exp>ss_Plume.png pairs; Dark and "
                             "Clear frames there are used too)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output directory (emission-rate CSVs per line and mode with PyCam's columns plus "
                             "flag, flag_reason; process_config.yml, calibration CSVs, summary.json with the flag "
                             "counts)")
    parser.add_argument("--cal-dir", type=Path, help="cell-calibration directory Cal_N (Dark, Clear, <N>ppmm frames)")
    parser.add_argument("--dark-dir", type=Path,
                        help="more Dark frames (used with those in IMG_DIR and --cal-dir; overrides dark_img_dir)")
    parser.add_argument("--clear-dir", type=Path,
                        help="Clear (sky, no plume) frames for the background and vignetting (default: IMG_DIR, "
                             "then --cal-dir)")
    parser.add_argument("--geometry", type=Path,
                        help="PyCam camera geometry file (lat, lon, altitude, elev, azim); needs source_lat/lon "
                             "in the config unless plume_distance_m is set")
    parser.add_argument("--pcs", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="PCS line file(s) (x=x0,x1 / y=y0,y1 / orientation=left|right); named 0, 1, ... "
                             "in the order given")
    parser.add_argument("--config", type=Path,
                        help="processing settings (.yml with PyCam key names, or .toml); default: built-in defaults")
    parser.add_argument("--doas-results", type=Path,
                        help="DOAS results CSV (Time,Column density,CD error) for cal_type_int 1 or 2")
    parser.add_argument("--watch", action="store_true",
                        help="keep running and process pairs as their files appear (Ctrl-C stops)")
    parser.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                        help="with --watch: how often to look for new files (default 1 s)")
    parser.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                        help="with --watch: stop after this long without a new pair (default: run until Ctrl-C)")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads for optical flow (default: the 'workers' setting, 2)")
    parser.add_argument("--save-images", action="store_true",
                        help="write AA and calibrated SO2 images to OUT/saved_images (formats: save_formats)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _watch_source(img_dir: Path, tolerance: float, poll: float, problems: list[str], idle_exit: float | None):
    from pycam.processing.archive import DirectoryWatcher, iter_pair_images

    watcher = DirectoryWatcher(img_dir, tolerance)
    last_new = time.monotonic()
    while True:
        new = watcher.poll()
        if not new:
            if idle_exit is not None and time.monotonic() - last_new > idle_exit:
                return
            yield None                  # lets the pipeline write the rows of the pairs in flight
            time.sleep(poll)
            continue
        last_new = time.monotonic()
        yield from iter_pair_images(new, problems)


def run(args: argparse.Namespace) -> int:
    from pycam.formats.geometry import GeometryFileError
    from pycam.formats.pycam_outputs import OutputFormatError
    from pycam.processing.archive import find_plume_pairs, iter_pair_images
    from pycam.processing.cell_calibration import CalibrationError
    from pycam.processing.chain import ProcessingChain
    from pycam.processing.outputs import RunOutputs, format_summary_table
    from pycam.processing.pipeline import BatchProcessor, PairInput
    from pycam.processing.settings import SettingsError, load_settings
    from pycam.processing.setup import prepare_run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"pycam process: bad settings: {exc}", file=sys.stderr)
        return 2
    if args.save_images:
        settings = settings.replace(save_images=True)
    if not args.img_dir.is_dir():
        print(f"pycam process: {args.img_dir} is not a directory", file=sys.stderr)
        return 2
    pairing = find_plume_pairs(args.img_dir, settings["pair_tolerance_s"])
    if pairing.unpaired:
        print(f"pycam process: {len(pairing.unpaired)} unpaired Plume frame(s) ignored "
              f"(first: {pairing.unpaired[0].path.name})", file=sys.stderr)
    if not pairing.pairs and not args.watch:
        print(f"pycam process: no A/B Plume pairs in {args.img_dir}", file=sys.stderr)
        return 1
    if args.watch and settings["cal_type_int"] in (1, 2):
        print("pycam process: --watch supports cal_type_int 0 and 3 only (DOAS needs the pairs up front)",
              file=sys.stderr)
        return 2
    fov_search = None
    if settings["cal_type_int"] in (1, 2):
        from pycam.doas.fov import calibrate_fov as fov_search
    try:
        inputs = prepare_run(args.img_dir, settings, cal_dir=args.cal_dir, geometry_file=args.geometry,
                             pcs_files=args.pcs, doas_results=args.doas_results, pairs=pairing.pairs,
                             dark_dir=args.dark_dir, clear_dir=args.clear_dir, fov_search=fov_search)
    except (CalibrationError, GeometryFileError, OutputFormatError, ValueError, OSError) as exc:
        print(f"pycam process: {exc}", file=sys.stderr)
        return 2
    if inputs.calibration is None:
        print("pycam process: WARNING no calibration: only AA images, no emission rates", file=sys.stderr)
    if not inputs.pcs_lines:
        print("pycam process: WARNING no PCS line (--pcs): no emission rates", file=sys.stderr)
    problems = inputs.problems
    source = (_watch_source(args.img_dir, settings["pair_tolerance_s"], args.poll, problems, args.idle_exit)
              if args.watch else iter_pair_images(pairing.pairs, problems))
    outputs = RunOutputs(args.out, settings["save_images"], settings["save_formats"])
    outputs.write_setup(settings, inputs.pcs_lines, inputs.camera, inputs.warp)
    if inputs.cell_calibration is not None:
        outputs.write_cell_calibration(inputs.cell_calibration)
        print(inputs.cell_calibration.summary())
    if inputs.doas_calibration is not None:
        inputs.doas_calibration.write_csv(args.out / "full_calibration.csv")
    progress_bar = None
    if not args.no_progress:
        from tqdm import tqdm

        progress_bar = tqdm(total=None if args.watch else len(pairing.pairs), unit="pair", file=sys.stderr)
    summary = None
    workers = args.workers or settings["workers"]
    processor = None
    try:
        end = object()
        first = next(source, end)
        while first is None:             # watch mode, nothing yet: keep waiting
            first = next(source, end)
        if first is end:
            print("pycam process: no readable pair", file=sys.stderr)
            return 1
        stream = _chain_first(first, source)
        shape = first[1].shape
        chain = ProcessingChain(settings, shape, darks=inputs.darks, clear=inputs.clear,
                                calibration=inputs.calibration, pcs_lines=inputs.pcs_lines,
                                geometry=inputs.camera, warp=inputs.warp)
        if inputs.calibration is not None and inputs.pcs_lines and chain.geometry is None:
            print("pycam process: WARNING no measurement geometry (set plume_distance_m, or --geometry with "
                  "source_lat/source_lon in the config): no emission rates", file=sys.stderr)
        processor = BatchProcessor(chain, outputs, workers=workers,
                                   progress=progress_bar.update if progress_bar else None)
        summary = processor.run(None if item is None else PairInput(item[0].time, item[1], item[2],
                                                                    item[0].a.exposure_us, item[0].b.exposure_us)
                                for item in stream)
    except KeyboardInterrupt:
        print("interrupted before processing started", file=sys.stderr)
    finally:
        if progress_bar is not None:
            progress_bar.close()
        if summary is None and processor is not None:
            summary = processor.summary
        info = {"img_dir": str(args.img_dir), "problems": problems}
        if summary is not None:
            info.update(summary.as_dict())
        outputs.write_summary(info)
        outputs.close()
    if summary is not None:
        print(format_summary_table(outputs.summary_rows()))
        rate = summary.pairs_processed / summary.seconds if summary.seconds else 0.0
        print(f"{summary.pairs_processed} pair(s) processed in {summary.seconds:.1f} s ({rate:.1f} pairs/s), "
              f"{summary.pairs_skipped_reference} skipped by the reference check, {len(problems)} problem(s)"
              + ("; INTERRUPTED" if summary.interrupted else ""))
        if summary.pairs_skipped_reference and summary.pairs_skipped_reference >= summary.pairs_read // 2:
            print(f"pycam process: WARNING {summary.pairs_skipped_reference} of {summary.pairs_read} pairs failed the "
                  f"reference check (mean column in ambient_roi outside [ref_check_lower, ref_check_upper] = "
                  f"[{settings['ref_check_lower']:.3g}, {settings['ref_check_upper']:.3g}]); check ambient_roi and "
                  "the calibration intercept, or set ref_check_mode: false", file=sys.stderr)
        line = flagged_warning(outputs.flag_summary(), settings["flagged_warn_frac"])
        if line:
            print(line, file=sys.stderr)
        for p in problems[:10]:
            print(f"  problem: {p}", file=sys.stderr)
        return 130 if summary.interrupted else 0
    return 130


def flagged_warning(flags: dict, limit: float) -> str | None:
    """The one-line warning when more than ``limit`` of the emission-rate samples are flagged."""
    frac = flags.get("flagged_fraction")
    if frac is None or frac <= limit:
        return None
    top = ", ".join(f"{code} {n}" for code, n in list(flags["reasons"].items())[:4])
    return (f"pycam process: WARNING {flags['flagged']} of {flags['samples']} emission-rate samples "
            f"({frac:.0%}) are flagged ({top}); see the flag/flag_reason columns and summary.json")


def _chain_first(first, rest):
    yield first
    yield from rest
