"""``pycam camera --config FILE --band on|off|both [--driver sim|replay --replay-dir DIR] [--camera-index N]``:
a camera service (``both``: camera A and camera B on one Pi, see pycam.station.dual_camera)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pycam.cli.runtime import load_or_exit, on_termination, resolve_driver, setup_logging
from pycam.config import ConfigError, require_device_secret
from pycam.drivers.base import Capability, DriverError, supports
from pycam.drivers.registry import CAMERA_DRIVERS, REPLAY_DRIVERS
from pycam.station.camera_service import CameraService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station configuration file (TOML)")
    parser.add_argument("--band", required=True, choices=["on", "off", "both"],
                        help="on: camera A (CM1, fltrA, ~310 nm); off: camera B (CM2, fltrB, ~330 nm); both: A and "
                             "B on this Pi (Pi 5 single-Pi station; indices from [hardware] pair_camera_indices)")
    parser.add_argument("--camera-index", type=int, choices=range(8), metavar="N",
                        help="Picamera2 camera number (0-7) for --band on/off (default [hardware] camera_index)")
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


def driver_options(args: argparse.Namespace, kind: str):
    """(driver class, extra keyword arguments) for ``args.driver`` (the replay driver gets its archive)."""
    driver_class = resolve_driver(kind, args.driver)
    extra = {}
    if args.driver in REPLAY_DRIVERS:
        if args.replay_dir is None:
            raise DriverError(f"--driver {args.driver} needs --replay-dir DIR (the archive to serve)")
        extra = {"replay_dir": args.replay_dir, "end": args.replay_end}
    elif args.replay_dir is not None:
        raise DriverError(f"--replay-dir is only used with --driver replay, not {args.driver!r}")
    return driver_class, extra


def run(args: argparse.Namespace) -> int:
    return run_device(args, "camera")


def run_device(args: argparse.Namespace, kind: str) -> int:
    """Shared by ``pycam camera`` and ``pycam spectrometer``."""
    prog = f"pycam {kind}"
    setup_logging(args.log_level)
    config = load_or_exit(args.config, prog)
    try:
        require_device_secret(config)
    except ConfigError as exc:
        print(f"{prog}: bad configuration: {exc}", file=sys.stderr)
        return 2
    if args.framerate is not None and not 0 <= args.framerate <= (1.0 if kind == "camera" else 10.0):
        print(f"{prog}: --framerate {args.framerate} out of range", file=sys.stderr)
        return 2
    try:
        driver_class, extra = driver_options(args, kind)
        if kind == "camera":
            service = camera_services(config, args, driver_class, extra)
        else:
            from pycam.station.spectrometer_service import SpectrometerService

            service = SpectrometerService(config, driver_class(config, **extra), spool_dir=args.spool_dir,
                                          framerate=args.framerate)
        service.start(acquire=args.start)
    except (DriverError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    from pycam.station.ftp_config import DeviceRuntimeConfig  # USB/FTP runtime config (issue 6)

    runtime_configs = []
    for one in getattr(service, "services", {"": service}).values():  # a single-Pi camera pair holds two
        print(f"{one.device}: {args.driver} driver, connecting to {config['network']['master_host']}:"
              f"{config['network']['device_port']}, spool {one.spool.directory}", flush=True)
        runtime_configs.append(DeviceRuntimeConfig.attach(one, config))
        if supports(one.driver, Capability.EVENTS):  # gphoto2 capture outcomes, spectrometer unplug/replug
            one.driver.event_listeners.append(one.link.send_event)   # -> station events

    def shutdown() -> None:
        for runtime_config in runtime_configs:
            if runtime_config is not None:
                runtime_config.stop()
        service.stop()

    on_termination(shutdown)
    service.wait()
    return 0


def camera_services(config, args: argparse.Namespace, driver_class, extra: dict | None = None):
    """A CameraService for ``--band on|off`` (on ``--camera-index`` when given), or both cameras of a
    single-Pi station for ``--band both``."""
    index = getattr(args, "camera_index", None)

    takes_index = supports(driver_class, Capability.CAMERA_INDEX)

    def make_driver(band: str, camera_index: int | None):
        if takes_index and camera_index is not None:
            return driver_class(config, band, camera_index=camera_index, **(extra or {}))
        if index is not None:
            raise DriverError(f"camera driver {args.driver!r} has no camera index (--camera-index is for picamera2)")
        return driver_class(config, band, **(extra or {}))  # e.g. the simulator: --band both makes two simulated cameras

    if args.band == "both":
        if index is not None:
            raise DriverError("--camera-index is for one camera; --band both takes [hardware] pair_camera_indices")
        from pycam.station.dual_camera import DualCameraStation  # noqa: PLC0415 - single-Pi layout only

        return DualCameraStation(config, make_driver, spool_dir=args.spool_dir, framerate=args.framerate)
    return CameraService(config, args.band, make_driver(args.band, index), spool_dir=args.spool_dir,
                         framerate=args.framerate)
