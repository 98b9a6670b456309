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
    from pycam.processing.batch import BatchError, BatchJob, run_batch
    from pycam.processing.outputs import format_summary_table
    from pycam.processing.settings import SettingsError, load_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"pycam process: bad settings: {exc}", file=sys.stderr)
        return 2
    if args.save_images:
        settings = settings.replace(save_images=True)
    job = BatchJob(args.img_dir, args.out, settings, cal_dir=args.cal_dir, dark_dir=args.dark_dir,
                   clear_dir=args.clear_dir, geometry=args.geometry, pcs=args.pcs, doas_results=args.doas_results,
                   workers=args.workers, watch=args.watch)
    source = None
    if args.watch:
        def source(problems: list[str]):
            return _watch_source(args.img_dir, settings["pair_tolerance_s"], args.poll, problems, args.idle_exit)

    def notify(kind: str, text: str) -> None:
        if kind == "info":
            print(text)
        else:
            print(f"pycam process: {text}", file=sys.stderr)

    progress_bar = None
    if not args.no_progress:
        from tqdm import tqdm

        progress_bar = tqdm(total=None, unit="pair", file=sys.stderr)
    try:
        result = run_batch(job, source=source, notify=notify, progress=progress_bar.update if progress_bar is not None else None,
                           on_pairs=(lambda total: _set_total(progress_bar, None if args.watch else total)))
    except BatchError as exc:
        print(f"pycam process: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted before processing started", file=sys.stderr)
        return 130
    finally:
        if progress_bar is not None:
            progress_bar.close()
    summary = result.summary
    problems = result.problems
    if summary is None:
        return 130
    print(format_summary_table(result.rows))
    rate = summary.pairs_processed / summary.seconds if summary.seconds else 0.0
    print(f"{summary.pairs_processed} pair(s) processed in {summary.seconds:.1f} s ({rate:.1f} pairs/s), "
          f"{summary.pairs_skipped_reference} skipped by the reference check, {len(problems)} problem(s)"
          + ("; INTERRUPTED" if summary.interrupted else ""))
    if summary.pairs_skipped_reference and summary.pairs_skipped_reference >= summary.pairs_read // 2:
        print(f"pycam process: WARNING {summary.pairs_skipped_reference} of {summary.pairs_read} pairs failed the "
              f"reference check (mean column in ambient_roi outside [ref_check_lower, ref_check_upper] = "
              f"[{settings['ref_check_lower']:.3g}, {settings['ref_check_upper']:.3g}]); check ambient_roi and "
              "the calibration intercept, or set ref_check_mode: false", file=sys.stderr)
    line = flagged_warning(result.flags, settings["flagged_warn_frac"])
    if line:
        print(line, file=sys.stderr)
    for p in problems[:10]:
        print(f"  problem: {p}", file=sys.stderr)
    return 130 if summary.interrupted else 0


def flagged_warning(flags: dict, limit: float) -> str | None:
    """The one-line warning when more than ``limit`` of the emission-rate samples are flagged."""
    frac = flags.get("flagged_fraction")
    if frac is None or frac <= limit:
        return None
    top = ", ".join(f"{code} {n}" for code, n in list(flags["reasons"].items())[:4])
    return (f"pycam process: WARNING {flags['flagged']} of {flags['samples']} emission-rate samples "
            f"({frac:.0%}) are flagged ({top}); see the flag/flag_reason columns and summary.json")


def _set_total(bar, total: int | None) -> None:
    if bar is not None and total is not None:
        bar.total = total
        bar.refresh()
