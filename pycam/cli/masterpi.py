"""``pycam masterpi --config FILE``: the master service."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pycam.cli.runtime import load_or_exit, on_termination, setup_logging
from pycam.config import ConfigError
from pycam.net.server import PortInUse
from pycam.station.master import Master
from pycam.station.storage import StorageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station configuration file (TOML)")
    parser.add_argument("--data-dir", type=Path, help="store received files here instead of [storage] data_dir")
    parser.add_argument("--no-fsync", action="store_true",
                        help="do not fsync stored files (faster, but a power cut may lose the newest files)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default INFO)")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = load_or_exit(args.config, "pycam masterpi")
    try:
        master = Master(config, data_dir=args.data_dir, fsync=not args.no_fsync)
    except (ConfigError, StorageError) as exc:
        print(f"pycam masterpi: {exc}", file=sys.stderr)
        return 2
    try:
        master.start()
    except PortInUse as exc:
        print(f"pycam masterpi: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"master: devices on port {master.device_port}, clients on port {master.client_port}, "
          f"data in {master.store.data_dir}", flush=True)
    from pycam.station.housekeeping import MasterHousekeeping  # schedule, watchdog, disk (issue 6)

    housekeeping = MasterHousekeeping(master, config).start()

    def shutdown() -> None:
        housekeeping.stop()
        master.stop()

    on_termination(shutdown)
    master.wait()
    return 0
