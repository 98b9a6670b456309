"""``pycam spectrometer --config FILE [--driver sim|replay --replay-dir DIR]``: the spectrometer service."""
from __future__ import annotations

import argparse
from pathlib import Path

from pycam.cli.camera import add_replay_arguments, run_device
from pycam.drivers.registry import SPECTROMETER_DRIVERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station configuration file (TOML)")
    parser.add_argument("--driver", default="sim",
                        help=f"spectrometer driver: {', '.join(SPECTROMETER_DRIVERS)} or module:Class (default sim)")
    parser.add_argument("--framerate", type=float, help="spectra per second (default [spectrometer] framerate)")
    add_replay_arguments(parser, "spectra (.npy)")
    parser.add_argument("--spool-dir", type=Path, help="keep unconfirmed files here (default [storage] spool_dir)")
    parser.add_argument("--start", action="store_true", help="start continuous capture at once (else wait for STS)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default INFO)")


def run(args: argparse.Namespace) -> int:
    return run_device(args, "spectrometer")
