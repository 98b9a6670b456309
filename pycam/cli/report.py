"""``pycam report OUT``: a PNG summary per station-day of a ``pycam reprocess`` output."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", type=Path, help="the output folder of pycam reprocess")
    parser.add_argument("--force", action="store_true", help="redraw plots that already exist")


def run(args: argparse.Namespace) -> int:
    from pycam.products.day_report import render_day

    if not args.out.is_dir():
        print(f"pycam report: {args.out} is not a directory", file=sys.stderr)
        return 2
    days = sorted(p for p in args.out.rglob("*_so2.nc") if (p.parent / "done.json").is_file())
    if not days:
        print(f"pycam report: no finished station-day (done.json + *_so2.nc) under {args.out}", file=sys.stderr)
        return 1
    failed = 0
    for nc in days:
        png = nc.with_name(nc.stem + "_report.png")
        if png.exists() and not args.force and png.stat().st_mtime >= nc.stat().st_mtime:
            continue
        try:
            render_day(nc, png)
            print(png)
        except (OSError, ValueError, KeyError) as exc:
            failed += 1
            print(f"pycam report: {nc}: {exc}", file=sys.stderr)
    return 1 if failed else 0
