"""A fake seabreeze *backend* (the layer under ``seabreeze.spectrometers``) with Flame-S devices.

The driver talks to the real ``seabreeze.spectrometers`` module (``list_devices``,
``Spectrometer.from_serial_number`` / ``from_first_available``, ``integration_time_micros``,
``integration_time_micros_limits``, ``intensities(correct_dark_counts=...)``, ``wavelengths``,
``max_intensity``, ``pixels``, ``serial_number``, ``f.spectrometer``, ``close``); only the backend
below it is replaced, the way seabreeze's own tests switch backends
(``Spectrometer._backend`` is a descriptor holding the backend, ``list_devices._api`` caches the API).

Backend surface kept from seabreeze 2.x (``seabreeze/types.py``, ``pyseabreeze``): a module with
``SeaBreezeAPI(initialize=True, **kw)`` (``list_devices()``, ``shutdown()``,
``supported_models()``), ``SeaBreezeDevice`` (``serial_number``, ``model``, ``is_open``, ``open()``,
``close()``, ``f``/``features``), ``SeaBreezeError`` and ``_api_kwargs``.  The spectrometer
feature of a FLAMES: 2048 pixels, integration limits (1000, 655350000) us with the check
``min <= t < max`` raising ``SeaBreezeError("Integration not in [min, max]")``, electric-dark pixels
6..20, maximum intensity 65535.

Device discovery follows pyseabreeze (``pyseabreeze/api.py``, ``transport.py``): ``SeaBreezeAPI.list_devices()``
lists the USB devices (``transport.USBTransport.list_devices(**kw)`` yields one handle per device,
``api._seabreeze_device_factory(handle)`` returns the one device object per handle, opened and
closed to read its serial; a device open elsewhere raises ``transport.USBTransportDeviceInUse``
and is left out) and then runs the IPv4 multicast discovery
(``transport.IPv4Transport.list_devices(**kw)``, counted in ``NETWORK_SCANS``).  Set
``NETWORK_SCAN_ERROR = OSError(19, "No such device")`` for what a Pi without a multicast route
gives: it propagates out of ``list_devices`` (seabreeze before 2.11, what PyCam patches out), or
with ``NETWORK_SCAN_WARNS = True`` becomes a warning and an empty scan (seabreeze 2.11).

Unplugging (``unplug(serial)``) makes every call on the old device object raise
``SeaBreezeError`` (a USB transfer error) and removes it from ``list_devices``; ``replug(serial)``
enumerates a *new* device object with the same serial, as a real re-enumeration does.
"""
from __future__ import annotations

import contextlib
import types
import warnings
from typing import Iterator

import numpy as np

from seabreeze._exc import SeaBreezeError

_api_kwargs: dict = {}
PIXELS = 2048
INT_MIN_US, INT_MAX_US = 1000, 655350000
DARK_PIXELS = list(range(6, 21))
DARK_OFFSET = 1500.0
_bus: dict[str, "SeaBreezeDevice"] = {}
_opened_serials: set[str] = set()
READS: list[tuple[str, int]] = []  # (serial, integration_us) of every get_intensities call
NETWORK_SCAN_ERROR: OSError | None = None
NETWORK_SCAN_WARNS = False
NETWORK_SCANS = [0]
IN_USE_ELSEWHERE: set[str] = set()  # serials another process holds open


def reset() -> None:
    global NETWORK_SCAN_ERROR, NETWORK_SCAN_WARNS
    _bus.clear()
    _opened_serials.clear()
    READS.clear()
    IN_USE_ELSEWHERE.clear()
    NETWORK_SCAN_ERROR, NETWORK_SCAN_WARNS = None, False
    NETWORK_SCANS[0] = 0


def plug(serial: str, model: str = "FLAMES", signal_per_s: float = 40000.0) -> "SeaBreezeDevice":
    dev = SeaBreezeDevice(serial, model, signal_per_s)
    _bus[serial] = dev
    return dev


def unplug(serial: str) -> None:
    dev = _bus.pop(serial)
    dev._gone = True
    _opened_serials.discard(serial)


def replug(serial: str) -> "SeaBreezeDevice":
    return plug(serial)


def wavelengths() -> np.ndarray:
    i = np.arange(PIXELS, dtype=np.float64)
    return 241.9 + 0.0805 * i - 1.1e-6 * i * i  # about 242-404 nm like the sample spectra


def true_signal(signal_per_s: float) -> np.ndarray:
    wl = wavelengths()
    shape = 1.0 / (1.0 + np.exp(-(wl - 305.0) / 4.0))  # atmospheric UV cut-off
    return signal_per_s * shape * (1.0 + 0.2 * np.sin(wl / 1.7))


class _SpectrometerFeature:
    def __init__(self, dev: "SeaBreezeDevice") -> None:
        self._dev = dev
        self._integration_us = 100000
        self._rng = np.random.default_rng(abs(hash(dev.serial_number)) % 2**32)

    def _check(self) -> None:
        if self._dev._gone:
            raise SeaBreezeError("Data transfer error (device unplugged)")
        if not self._dev.is_open:
            raise SeaBreezeError("device not open")

    def set_integration_time_micros(self, integration_time_micros: int) -> None:
        self._check()
        if not isinstance(integration_time_micros, (int, np.integer)):
            raise TypeError("an integer is required")
        if INT_MIN_US <= integration_time_micros < INT_MAX_US:
            self._integration_us = int(integration_time_micros)
        else:
            raise SeaBreezeError(f"Integration not in [{INT_MIN_US:d}, {INT_MAX_US:d}]")

    def get_integration_time_micros_limits(self) -> tuple[int, int]:
        self._check()
        return INT_MIN_US, INT_MAX_US

    def get_maximum_intensity(self) -> float:
        self._check()
        return 65535.0

    def get_electric_dark_pixel_indices(self) -> list[int]:
        self._check()
        return list(DARK_PIXELS)

    @property
    def _spectrum_length(self) -> int:
        return PIXELS

    def get_wavelengths(self) -> np.ndarray:
        self._check()
        return wavelengths()

    def get_intensities(self) -> np.ndarray:
        self._check()
        READS.append((self._dev.serial_number, self._integration_us))
        signal = true_signal(self._dev._signal_per_s) * (self._integration_us * 1e-6)
        signal[DARK_PIXELS] = 0.0
        noisy = DARK_OFFSET + signal + self._rng.normal(0.0, 5.0, PIXELS)
        return np.clip(np.rint(noisy), 0.0, 65535.0).astype(np.float64)

    def set_trigger_mode(self, mode: int) -> None:
        self._check()


class _Nonlinearity:
    def __init__(self, dev: "SeaBreezeDevice") -> None:
        self._dev = dev

    def get_nonlinearity_coefficients(self) -> list[float]:
        if self._dev._gone:
            raise SeaBreezeError("Data transfer error (device unplugged)")
        return [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


class _Features:
    def __init__(self, dev: "SeaBreezeDevice") -> None:
        self.spectrometer = _SpectrometerFeature(dev)
        self.nonlinearity_coefficients = _Nonlinearity(dev)


class SeaBreezeDevice:
    def __init__(self, serial: str, model: str = "FLAMES", signal_per_s: float = 40000.0) -> None:
        self._serial = serial
        self.model = model
        self._signal_per_s = signal_per_s
        self._gone = False
        self._open = False
        self.f = _Features(self)

    @property
    def serial_number(self) -> str:
        return self._serial

    @property
    def features(self) -> dict:
        return {"spectrometer": [self.f.spectrometer],
                "nonlinearity_coefficients": [self.f.nonlinearity_coefficients]}

    @property
    def is_open(self) -> bool:
        return self._open and not self._gone

    def open(self) -> None:
        if self._gone:
            raise SeaBreezeError("Failed to open device (no such device)")
        if self._serial in IN_USE_ELSEWHERE:
            raise USBTransportDeviceInUse("device probably used by another thread/process")
        self._open = True
        _opened_serials.add(self._serial)

    def close(self) -> None:
        if self._gone:
            raise SeaBreezeError("Data transfer error (device unplugged)")
        self._open = False
        _opened_serials.discard(self._serial)

    def __repr__(self) -> str:
        return f"<SeaBreezeDevice {self.model}:{self._serial}>"


class USBTransportDeviceInUse(Exception):
    """pyseabreeze: the USB device is claimed by another thread or process."""


class USBTransportHandle:
    def __init__(self, dev: SeaBreezeDevice) -> None:
        self.device = dev
        self.identity = (0x2457, 0x101F, dev.serial_number)


class USBTransport:
    @classmethod
    def list_devices(cls, **kwargs) -> Iterator[USBTransportHandle]:
        for dev in list(_bus.values()):
            yield USBTransportHandle(dev)


class IPv4Transport:
    @classmethod
    def list_devices(cls, **kwargs) -> Iterator:
        NETWORK_SCANS[0] += 1
        if NETWORK_SCAN_ERROR is not None:  # raised while setting up the multicast socket
            if not NETWORK_SCAN_WARNS:
                raise NETWORK_SCAN_ERROR
            warnings.warn(f"Received {type(NETWORK_SCAN_ERROR).__name__} with '{NETWORK_SCAN_ERROR}'. "
                          "Skipping IPv4 discovery.", stacklevel=2)
        return iter(())


def _seabreeze_device_factory(handle: USBTransportHandle) -> SeaBreezeDevice:
    return handle.device  # one device object per plugged-in device, like pyseabreeze's registry


transport = types.SimpleNamespace(USBTransport=USBTransport, IPv4Transport=IPv4Transport,
                                  USBTransportDeviceInUse=USBTransportDeviceInUse)
api = types.SimpleNamespace(_seabreeze_device_factory=_seabreeze_device_factory)


class SeaBreezeAPI:
    def __init__(self, initialize: bool = True, **_kwargs) -> None:
        self._kwargs = _kwargs
        self._initialized = initialize

    def initialize(self) -> None:
        self._initialized = True

    def shutdown(self) -> None:
        self._initialized = False

    def list_devices(self) -> list[SeaBreezeDevice]:
        devices = []
        for handle in USBTransport.list_devices(**self._kwargs):
            dev = _seabreeze_device_factory(handle)
            if not dev.is_open:
                try:
                    dev.open()
                except USBTransportDeviceInUse:
                    continue
                dev.close()
            devices.append(dev)
        devices.extend(IPv4Transport.list_devices(**self._kwargs))
        return devices

    @staticmethod
    def supported_models() -> list[str]:
        return ["FLAMES", "USB2000PLUS"]


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Make the real ``seabreeze.spectrometers`` use this backend for the duration."""
    import sys

    import seabreeze.spectrometers as sbs

    this = sys.modules[__name__]
    descriptor = sbs.Spectrometer.__dict__["_backend"]
    old_backend = descriptor._backend
    old_api = sbs.list_devices.__dict__.get("_api")
    descriptor._backend = this  # (assigning on the class would replace the descriptor itself)
    sbs.list_devices._api = SeaBreezeAPI()
    try:
        yield
    finally:
        descriptor._backend = old_backend
        if old_api is None:
            sbs.list_devices.__dict__.pop("_api", None)
        else:
            sbs.list_devices._api = old_api


def install_permanently() -> None:
    """For a subprocess shim: switch the backend for the life of the process."""
    import sys

    import seabreeze.spectrometers as sbs

    sbs.Spectrometer.__dict__["_backend"]._backend = sys.modules[__name__]
    sbs.list_devices._api = SeaBreezeAPI()
