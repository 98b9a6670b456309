"""One small interface per device kind.  The simulator, picamera2, gphoto2 and seabreeze
drivers implement these; station services only ever talk to these interfaces.

Drivers must not import the station, the network or the GUI.  A driver whose library is
missing raises :class:`DriverUnavailable` from ``open()`` (never at import time) with a
message such as ``"picamera2 not available: No module named 'picamera2'"``.

What a driver can do beyond its interface is *declared*, not probed: each driver class lists
its :class:`Capability` members in ``capabilities`` (python-seabreeze declares a device's
features the same way) and callers ask :func:`supports`, the one resolver.
"""
from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import enum
from typing import Any, Callable, ClassVar

import numpy as np

from pycam.formats.names import aware_utc
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


def wait_until(when: dt.datetime, clock: Callable[[], dt.datetime], sleep: Callable[[float], None]) -> None:
    """Sleep, at most 0.5 s at a time, until ``clock()`` reaches the trigger time ``when``."""
    while (remaining := (when - clock()).total_seconds()) > 0:
        sleep(min(remaining, 0.5))


def utc_seconds(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware UTC time of whole seconds (a naive time is taken as UTC)."""
    return aware_utc(when).replace(microsecond=0)


class Capability(enum.Enum):
    """Something a driver offers beyond the interface of its kind (declared per class)."""

    #: ``capture(..., frame_type=...)`` takes Plume/Test/Dark/Clear/<N>ppmm (the simulator renders a
    #: covered lens for Dark, no plume for Clear; the replay driver serves the archive's frames of that type)
    FRAME_TYPES = "frame_types"
    #: ``control_specs()`` and ``apply_controls(values)``: settings for the USB/FTP runtime config
    RUNTIME_CONTROLS = "runtime_controls"
    #: ``event_listeners``: a list of ``listener(kind, **fields)`` told about device events
    EVENTS = "events"
    #: the constructor takes ``camera_index=N`` (several cameras on one machine)
    CAMERA_INDEX = "camera_index"
    #: ``last_metadata``: the last frame's sensor metadata (``SensorTimestamp`` ns, ``ExposureTime``)
    SENSOR_METADATA = "sensor_metadata"


def supports(driver: Any, capability: Capability) -> bool:
    """True if ``driver`` (a driver object or class) declares ``capability``.

    Drivers declare a ``capabilities`` frozenset of :class:`Capability`; a wrapper may declare
    its own per instance.  Anything else there is a programming error, reported as such."""
    if not isinstance(capability, Capability):
        raise TypeError(f"not a driver capability: {capability!r}")
    declared = getattr(driver, "capabilities", frozenset())
    if not isinstance(declared, frozenset) or not all(isinstance(c, Capability) for c in declared):
        name = getattr(driver, "__name__", type(driver).__name__)
        raise DriverError(f"driver {name}: capabilities must be a frozenset of Capability, got {declared!r}")
    return capability in declared


class Driver(abc.ABC):
    """What every device driver has: open, close, limits (after open for real devices), and use
    as a context manager (``with driver: ...`` opens and closes it)."""

    #: what this driver offers beyond its kind's interface (see :class:`Capability`)
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def limits(self) -> Any: ...

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CameraDriver(Driver):
    """A UV camera for one band ("on" ≈ 310 nm, "off" ≈ 330 nm)."""

    band: str

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


@dataclasses.dataclass(frozen=True)
class SpectrometerLimits:
    min_integration_ms: float
    max_integration_ms: float
    pixels: int
    max_counts: float = 65535.0


class SpectrometerDriver(Driver):
    """A UV spectrometer (Ocean Optics Flame-S for PyCam)."""

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
