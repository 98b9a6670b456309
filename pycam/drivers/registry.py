"""Driver names for ``--driver``: name -> "module:Class", imported only when chosen."""
from __future__ import annotations

import importlib

from pycam.drivers.base import CameraDriver, DriverUnavailable, SpectrometerDriver

CAMERA_DRIVERS: dict[str, str] = {
    "sim": "pycam.drivers.sim:SimCamera",
    "picamera2": "pycam.drivers.picamera2_camera:Picamera2Camera",
    "gphoto2": "pycam.drivers.gphoto2_camera:Gphoto2Camera",
    "replay": "pycam.drivers.replay:ReplayCamera",
}
SPECTROMETER_DRIVERS: dict[str, str] = {
    "sim": "pycam.drivers.sim:SimSpectrometer",
    "seabreeze": "pycam.drivers.seabreeze_spectrometer:SeabreezeSpectrometer",
    "replay": "pycam.drivers.replay:ReplaySpectrometer",
}
#: Drivers that need a ``replay_dir`` (and take ``end``) keyword: ``--replay-dir`` / ``--replay-end``.
REPLAY_DRIVERS = ("replay",)


def _resolve(table: dict[str, str], name: str, kind: str):
    try:
        target = table[name]
    except KeyError:
        raise DriverUnavailable(f"unknown {kind} driver {name!r} (choose from {', '.join(table)})") from None
    module, cls = target.split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise DriverUnavailable(f"{kind} driver {name!r} not available: {exc}") from None


def camera_driver_class(name: str) -> type[CameraDriver]:
    return _resolve(CAMERA_DRIVERS, name, "camera")


def spectrometer_driver_class(name: str) -> type[SpectrometerDriver]:
    return _resolve(SPECTROMETER_DRIVERS, name, "spectrometer")
