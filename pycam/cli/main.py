"""``pycam``: one command, many subcommands.

Each subcommand lives in its own module ``pycam.cli.<module>`` that defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...   # the exit code

Modules are imported only when their subcommand runs, so a missing optional dependency of
one subcommand never breaks another.  The one-line help of each lives in ``SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand name -> (module under pycam.cli, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run a simulated station (master, cameras A/B, spectrometer) with the GUI or headless"),
    "init-config": ("init_config", "write a station configuration file with a fresh shared secret"),
    "masterpi": ("masterpi", "run the master service: routes commands, receives and stores data"),
    "camera": ("camera", "run a camera service (band on, off, or both on one Pi) that connects to the master"),
    "spectrometer": ("spectrometer", "run the spectrometer service that connects to the master"),
    "send": ("send", "send KEY=VALUE commands to the station and print the replies as JSON lines"),
    "simulate": ("simulate", "write a complete synthetic PyCam data set (no network)"),
    "process": ("process", "process PyCam image pairs into SO2 images and emission rates"),
    "reprocess": ("reprocess", "reprocess a whole archive (stations x days) on Dask, resumable; netCDF products"),
    "report": ("report", "daily summary plots (rate per line, speed, flags) of a reprocess output"),
    "doas": ("doas", "retrieve SO2 columns from spectra (iFit-style intensity fitting)"),
    "gui": ("gui", "open the PyCam GUI connected to a station"),
    "config-server": ("config_server", "serve the working config directory over authenticated FTP"),
}


def _load(module: str):
    return importlib.import_module(f"pycam.cli.{module}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the module of subcommand ``only`` is imported."""
    from pycam import __version__

    parser = argparse.ArgumentParser(
        prog="pycam",
        description="PyCam: UV SO2 camera station software. Start with `pycam demo` (a simulated station).",
    )
    parser.add_argument("--version", action="version", version=f"pycam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name != only:
            continue
        try:
            mod = _load(module)
        except ImportError as exc:
            raise SystemExit(f"pycam {name}: not available here ({exc})")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from pycam.station.supervision import apply_from_environment

    apply_from_environment()   # started by `pycam demo` or the launcher: end with it
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
