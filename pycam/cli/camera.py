"""``pycam camera --config FILE --band on|off [--driver sim|replay --replay-dir DIR]``: a camera service."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pycam.drivers.base import DriverError
from pycam.drivers.registry import CAMERA_DRIVERS, REPLAY_DRIVERS
from pycam.station.camera_service import CameraService
from pycam.station.runtime import load_or_exit, on_termination, resolve_driver, setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station configuration file (TOML)")
    parser.add_argument("--band", required=True, choices=["on", "off"],
                        help="on: camera A (CM1, fltrA, ~310 nm); off: camera B (CM2, fltrB, ~330 nm)")
    parser.add_argument("--driver", default="sim",
                        help=f"camera driver: {', '.join(CAMERA_DRIVERS)} or module:Class (default sim)")
    parser.add_argument("--framerate", type=float, help="frame rate in Hz (default [camera] framerate)")
    add_replay_arguments(parser, "images")
    parser.add_argument("--spool-dir", type=Path, help="keep unconfirmed files here (default [storage] spool_dir)")
    parser.add_argument("--start", action="store_true", help="start continuous capture at once (else wait for STC)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default INFO)")


def add_replay_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--replay-dir`` and ``--replay-end`` for ``--driver replay`` (shared with ``pycam spectrometer``)."""
    parser.add_argument("--replay-dir", type=Path,
                        help=f"--driver replay: a PyCam archive whose {what} are served, in time order, as if "
                             "captured now at the configured rate (PyCam names, any folder layout below DIR)")
    parser.add_argument("--replay-end", choices=["loop", "stop"], default="loop",
                        help="--driver replay: at the end of the archive start again (loop, default) or "
                             "stop serving frames (every later capture reports the end)")


def make_driver(args: argparse.Namespace, kind: str, config):
    """The driver object for ``args.driver`` (the replay driver gets its archive)."""
    driver_class = resolve_driver(kind, args.driver)
    extra = {}
    if args.driver in REPLAY_DRIVERS:
        if args.replay_dir is None:
            raise DriverError(f"--driver {args.driver} needs --replay-dir DIR (the archive to serve)")
        extra = {"replay_dir": args.replay_dir, "end": args.replay_end}
    elif args.replay_dir is not None:
        raise DriverError(f"--replay-dir is only used with --driver replay, not {args.driver!r}")
    if kind == "camera":
        return driver_class(config, args.band, **extra)
    return driver_class(config, **extra)


def run(args: argparse.Namespace) -> int:
    return run_device(args, "camera")


def run_device(args: argparse.Namespace, kind: str) -> int:
    """Shared by ``pycam camera`` and ``pycam spectrometer``."""
    prog = f"pycam {kind}"
    setup_logging(args.log_level)
    config = load_or_exit(args.config, prog)
    if args.framerate is not None and not 0 <= args.framerate <= (1.0 if kind == "camera" else 10.0):
        print(f"{prog}: --framerate {args.framerate} out of range", file=sys.stderr)
        return 2
    try:
        driver = make_driver(args, kind, config)
        if kind == "camera":
            service = CameraService(config, args.band, driver, spool_dir=args.spool_dir, framerate=args.framerate)
        else:
            from pycam.station.spectrometer_service import SpectrometerService

            service = SpectrometerService(config, driver, spool_dir=args.spool_dir, framerate=args.framerate)
        service.start(acquire=args.start)
    except (DriverError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(f"{service.device}: {args.driver} driver, connecting to {config['network']['master_host']}:"
          f"{config['network']['device_port']}, spool {service.spool.directory}", flush=True)
    from pycam.station.config_server import DeviceRuntimeConfig  # USB/FTP runtime config (issue 6)

    runtime_config = DeviceRuntimeConfig.attach(service, config)
    driver_events = getattr(service.driver, "event_listeners", None)
    if driver_events is not None:  # gphoto2 capture outcomes, spectrometer unplug/replug -> station events
        driver_events.append(service.link.send_event)

    def shutdown() -> None:
        if runtime_config is not None:
            runtime_config.stop()
        service.stop()

    on_termination(shutdown)
    service.wait()
    return 0
