"""``pycam gui``: open the GUI connected to the station named in a configuration file."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="station configuration file (master address, client port, shared secret); "
                             "default: the running demo's configuration if one is found")


def find_config(explicit: Path | None) -> Path | None:
    """``explicit``, else the running demo's configuration if the station code can find it."""
    if explicit is not None:
        return explicit
    try:
        from pycam.cli.runtime import demo_config_path
    except ImportError:
        return None
    path = demo_config_path()
    return path if path.is_file() else None


def run(args: argparse.Namespace) -> int:
    config_path = find_config(args.config)
    if config_path is None:
        print("pycam gui: no configuration given and no running demo found; use --config FILE "
              "(create one with `pycam init-config FILE`)")
        return 2
    from pycam.gui.app import run_gui

    return run_gui(config_path)
