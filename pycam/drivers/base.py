"""One small interface per device kind.  The simulator, picamera2, gphoto2 and seabreeze
drivers implement these; station services only ever talk to these interfaces.

Drivers must not import the station, the network or the GUI.  A driver whose library is
missing raises :class:`DriverUnavailable` from ``open()`` (never at import time) with a
message such as ``"picamera2 not available: No module named 'picamera2'"``.
"""
from __future__ import annotations

import abc
import dataclasses
import datetime as dt

import numpy as np

from pycam.formats.spectrum import SpectrumFrame  # noqa: F401  (what SpectrometerDriver.capture returns)


class DriverError(RuntimeError):
    """A device operation failed (the message names the device and the problem)."""


class DriverUnavailable(DriverError):
    """The library or device behind a driver is not present on this machine."""


@dataclasses.dataclass(frozen=True)
class CameraLimits:
    min_shutter_us: int
    max_shutter_us: int
    min_gain: float
    max_gain: float
    shape: tuple[int, int]  # (rows, cols) of the frames ``capture`` returns
    max_dn: int = 1023      # full-scale value of the returned pixels


@dataclasses.dataclass(frozen=True)
class CameraFrame:
    pixels: np.ndarray          # uint16 (rows, cols), 0..max_dn (10-bit for PyCam)
    time: dt.datetime           # UTC trigger time (whole seconds for PyCam names)
    exposure_us: int            # the exposure the sensor actually used
    gain: float
    band: str                   # "on" (fltrA) or "off" (fltrB)


class CameraDriver(abc.ABC):
    """A UV camera for one band ("on" ≈ 310 nm, "off" ≈ 330 nm)."""

    band: str

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def limits(self) -> CameraLimits: ...

    @abc.abstractmethod
    def set_exposure(self, shutter_us: int) -> int:
        """Request a shutter speed; returns the exposure the sensor will actually use."""

    @abc.abstractmethod
    def set_gain(self, gain: float) -> float: ...

    @abc.abstractmethod
    def capture(self, when: dt.datetime) -> CameraFrame:
        """Take one frame for the trigger time ``when`` (UTC) and return it."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class SpectrometerLimits:
    min_integration_ms: float
    max_integration_ms: float
    pixels: int
    max_counts: float = 65535.0


class SpectrometerDriver(abc.ABC):
    """A UV spectrometer (Ocean Optics Flame-S for PyCam)."""

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def limits(self) -> SpectrometerLimits: ...

    @abc.abstractmethod
    def wavelengths(self) -> np.ndarray: ...

    @abc.abstractmethod
    def set_integration_time(self, integration_ms: int) -> int:
        """Request an integration time; returns the one in force."""

    @abc.abstractmethod
    def capture(self, when: dt.datetime, coadd: int = 1) -> SpectrumFrame: ...

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
