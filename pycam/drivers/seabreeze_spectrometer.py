"""Ocean Optics spectrometer (Flame-S for PyCam) through python-seabreeze.

Library calls (``seabreeze.spectrometers``): ``Spectrometer(device)`` on a device found as below,
``integration_time_micros_limits`` (the device's own
limits; seabreeze accepts ``min <= t < max``), ``integration_time_micros(us)``,
``wavelengths()``, ``intensities(correct_dark_counts=..., correct_nonlinearity=False)``,
``max_intensity``, ``pixels``, ``serial_number``, ``model``,
``f.spectrometer.get_electric_dark_pixel_indices()``, ``close()``; errors are
``seabreeze.spectrometers.SeaBreezeError``.

Finding the device without the network scan: pyseabreeze's ``SeaBreezeAPI.list_devices()``
(behind ``list_devices``, ``from_serial_number`` and ``from_first_available``) lists the USB
devices and then runs an IPv4 multicast discovery (``IPv4Transport.list_devices``).  On a Pi
without a multicast route that scan raises ``OSError: [Errno 19] No such device`` (seabreeze
before 2.11; 2.11 warns and skips it), which PyCam patches out.  This driver never needs it:
with the pyseabreeze backend it enumerates USB only (``transport.USBTransport.list_devices``,
one device object per handle through ``api._seabreeze_device_factory`` as ``list_devices``
does, opened and closed once to read the serial); with another backend, or if that layout ever
changes, it uses ``list_devices()`` and turns a failing scan into :class:`DriverUnavailable`.

Behaviour:

* ``[hardware] spectrometer_serial`` selects a device; empty opens the first available and then
  remembers its serial, so a replug reopens the same instrument.
* Integration times are whole ms (PyCam names) clamped to the device limits.
* ``capture(when, coadd)`` waits for the trigger time and returns the **mean** of ``coadd`` reads
  (PyCam), optionally electric-dark corrected (``[hardware] electric_dark``, PyCam: off) and minus
  a PyCam dark file whose integration time matches (``[hardware] spectrometer_dark_file``).
* Unplug: a failed read closes the device, reports ``spectrometer_lost`` to the listeners and raises
  :class:`DriverError`; later captures try to reopen (at most every ``reopen_interval_s``), report
  ``spectrometer_reopened`` and carry on with the same settings.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pycam.config import Config
from pycam.drivers.base import (Capability, DriverError, DriverUnavailable, SpectrometerDriver, SpectrometerLimits,
                                SpectrumFrame, utc_seconds, wait_until)
from pycam.formats.names import FileNameError, SpectrumName

EventListener = Callable[..., None]  # listener(kind: str, **fields)


def _import_spectrometers():
    try:
        import seabreeze.spectrometers as sbs  # noqa: PLC0415 - guarded optional import
    except Exception as exc:
        raise DriverUnavailable(f"seabreeze not available: {exc}") from None
    return sbs


def list_usb_devices(sbs: Any) -> list:
    """The spectrometers on USB, without pyseabreeze's IPv4 network scan (module docstring)."""
    backend = sbs.Spectrometer._backend
    transport = getattr(backend, "transport", None)
    factory = getattr(getattr(backend, "api", None), "_seabreeze_device_factory", None)
    usb = getattr(transport, "USBTransport", None)
    if usb is None or factory is None:
        return list(sbs.list_devices())  # cseabreeze (no multicast scan) or an unknown layout
    kwargs = dict(getattr(backend, "_api_kwargs", None) or {})
    if getattr(sbs.list_devices, "_api", None) is None:  # the API object initialises the USB transport once
        sbs.list_devices._api = backend.SeaBreezeAPI(**kwargs)
    in_use = getattr(transport, "USBTransportDeviceInUse", ())
    devices = []
    for handle in usb.list_devices(**kwargs):
        dev = factory(handle)
        if not dev.is_open:
            try:
                dev.open()   # reads the serial number
            except in_use:   # opened by another process
                continue
            dev.close()
        devices.append(dev)
    return devices


def load_dark_file(path: Path, pixels: int) -> tuple[int, np.ndarray]:
    """A PyCam dark spectrum file -> (integration_ms, counts); errors name the file."""
    try:
        name = SpectrumName.parse(path.name)
    except FileNameError as exc:
        raise DriverError(f"seabreeze: dark file {path}: {exc}") from None
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DriverError(f"seabreeze: dark file {path}: cannot read: {exc}") from None
    if data.ndim != 2 or data.shape[0] != 2 or data.shape[1] != pixels:
        raise DriverError(f"seabreeze: dark file {path}: shape {data.shape}, expected (2, {pixels})")
    return name.integration_ms, np.asarray(data[1], dtype=np.float64)


class SeabreezeSpectrometer(SpectrometerDriver):
    """A seabreeze spectrometer that survives being unplugged and plugged back in."""

    capabilities = frozenset({Capability.RUNTIME_CONTROLS, Capability.EVENTS})   # events: lost / reopened

    def __init__(self, config: Config, *, clock: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._hw = config["hardware"]
        self._integration_ms = int(config["spectrometer"]["integration_ms"])
        self._serial: str | None = self._hw["spectrometer_serial"] or None
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._sleep = sleep
        self._monotonic = monotonic
        self._sbs: Any = None
        self._spec: Any = None
        self._limits: SpectrometerLimits | None = None
        self._wavelengths: np.ndarray | None = None
        self._dark: tuple[int, np.ndarray] | None = None
        self._lost = False
        self._last_reopen_try = -math.inf
        self.event_listeners: list[EventListener] = []

    # -- events ----------------------------------------------------------------------------
    def _report(self, kind: str, **fields: Any) -> None:
        for listener in list(self.event_listeners):
            try:
                listener(kind, **fields)
            except Exception:  # a broken listener must not break acquisition
                pass

    @property
    def lost(self) -> bool:
        """True while the device is unplugged (between a failed read and a successful reopen)."""
        return self._lost

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._spec is not None:
            return
        self._sbs = _import_spectrometers()
        self._spec = self._open_device()
        self._lost = False

    def _open_device(self) -> Any:
        sbs = self._sbs
        which = f"with serial {self._serial}" if self._serial else "found"
        try:
            devices = list_usb_devices(sbs)
            free = [d for d in devices if not d.is_open and (not self._serial or d.serial_number == self._serial)]
            if not free:
                found = ", ".join(f"{d.serial_number}{' (in use)' if d.is_open else ''}" for d in devices) or "none"
                raise DriverUnavailable(f"seabreeze: no spectrometer {which} (devices: {found})")
            spec = sbs.Spectrometer(free[0])
        except sbs.SeaBreezeError as exc:
            raise DriverUnavailable(f"seabreeze: no spectrometer {which} ({exc})") from None
        except OSError as exc:  # the library's own device scan (e.g. the IPv4 one: errno 19 on a Pi)
            raise DriverUnavailable(f"seabreeze: device scan failed: {exc}") from None
        try:
            self._setup(spec)
        except Exception:
            try:
                spec.close()
            except Exception:
                pass
            raise
        return spec

    def _setup(self, spec: Any) -> None:
        sbs = self._sbs
        try:
            self._serial = str(spec.serial_number)
            lo_us, hi_us = (int(v) for v in spec.integration_time_micros_limits)
            pixels = int(spec.pixels)
            max_counts = float(spec.max_intensity)
            wavelengths = np.asarray(spec.wavelengths(), dtype=np.float64).copy()
            dark_pixels = list(spec.f.spectrometer.get_electric_dark_pixel_indices())
        except sbs.SeaBreezeError as exc:
            raise DriverError(f"seabreeze: spectrometer {self._serial}: cannot read its settings: {exc}") from None
        if self._hw["electric_dark"] and not dark_pixels:
            raise DriverError(f"seabreeze: spectrometer {self._serial} has no electric-dark pixels: set "
                              "[hardware] electric_dark = false")
        # seabreeze accepts lo <= t < hi (microseconds); we work in whole milliseconds
        min_ms = max(1, math.ceil(lo_us / 1000))
        max_ms = (hi_us - 1) // 1000
        self._limits = SpectrometerLimits(min_integration_ms=float(min_ms), max_integration_ms=float(max_ms),
                                          pixels=pixels, max_counts=max_counts)
        self._wavelengths = wavelengths
        dark_file = self._hw["spectrometer_dark_file"]
        self._dark = load_dark_file(Path(dark_file), pixels) if dark_file else None
        self._spec = spec
        self._apply_integration(spec, self._clamp(self._integration_ms))

    def close(self) -> None:
        spec, self._spec = self._spec, None
        if spec is None:
            return
        try:
            spec.close()
        except Exception:  # closing an unplugged device fails: nothing left to release
            pass

    # -- settings --------------------------------------------------------------------------
    @property
    def limits(self) -> SpectrometerLimits:
        if self._limits is None:
            raise DriverError("seabreeze: spectrometer is not open")
        return self._limits

    def wavelengths(self) -> np.ndarray:
        if self._wavelengths is None:
            raise DriverError("seabreeze: spectrometer is not open")
        return self._wavelengths.copy()

    def _clamp(self, integration_ms: int) -> int:
        lim = self.limits
        return int(min(max(int(integration_ms), lim.min_integration_ms), lim.max_integration_ms))

    def _apply_integration(self, spec: Any, integration_ms: int) -> None:
        try:
            spec.integration_time_micros(int(integration_ms) * 1000)
        except (self._sbs.SeaBreezeError, OSError) as exc:
            raise DriverError(f"seabreeze: cannot set integration time {integration_ms} ms: {exc}") from None
        self._integration_ms = int(integration_ms)

    def set_integration_time(self, integration_ms: int) -> int:
        value = self._clamp(integration_ms)
        if self._spec is None:
            if self._lost:  # remembered and applied on reopen
                self._integration_ms = value
                return value
            raise DriverError("seabreeze: spectrometer is not open")
        try:
            self._apply_integration(self._spec, value)
        except DriverError as exc:
            self._mark_lost(str(exc))
            raise
        return value

    def control_specs(self) -> dict[str, dict[str, Any]]:
        """Runtime-configurable settings with the device's own limits (for the USB config)."""
        lim = self.limits
        return {"IntegrationTime": {"min": int(lim.min_integration_ms), "max": int(lim.max_integration_ms),
                                    "default": int(self._integration_ms), "type": "int"}}

    def apply_controls(self, values: dict[str, Any]) -> dict[str, Any]:
        if "IntegrationTime" in values:
            return {"IntegrationTime": self.set_integration_time(int(values["IntegrationTime"]))}
        return {}

    # -- unplug handling -------------------------------------------------------------------
    def _mark_lost(self, reason: str) -> None:
        self.close()
        if not self._lost:
            self._lost = True
            self._last_reopen_try = self._monotonic()
            self._report("spectrometer_lost", serial=self._serial, message=reason)

    def _ensure_open(self) -> Any:
        if self._spec is not None:
            return self._spec
        if not self._lost:
            raise DriverError("seabreeze: spectrometer is not open")
        now = self._monotonic()
        if now - self._last_reopen_try < float(self._hw["reopen_interval_s"]):
            raise DriverError(f"seabreeze: spectrometer {self._serial} is unplugged; retrying shortly")
        self._last_reopen_try = now
        try:
            self._spec = self._open_device()
        except DriverError as exc:
            raise DriverError(f"seabreeze: spectrometer {self._serial} is still unplugged: {exc}") from None
        self._lost = False
        self._report("spectrometer_reopened", serial=self._serial, integration_ms=self._integration_ms)
        return self._spec

    # -- capture ---------------------------------------------------------------------------
    def capture(self, when: dt.datetime, coadd: int = 1) -> SpectrumFrame:
        if int(coadd) < 1:
            raise ValueError(f"coadd must be >= 1, got {coadd}")
        spec = self._ensure_open()
        wait_until(when, self._clock, self._sleep)
        electric_dark = bool(self._hw["electric_dark"])
        total: np.ndarray | None = None
        try:
            for _ in range(int(coadd)):
                counts = np.asarray(spec.intensities(correct_dark_counts=electric_dark,
                                                     correct_nonlinearity=False), dtype=np.float64)
                total = counts.copy() if total is None else total + counts
        except (self._sbs.SeaBreezeError, OSError) as exc:  # OSError: pyusb's USBError (pyseabreeze backend)
            reason = f"seabreeze: spectrometer {self._serial} lost: {exc}"
            self._mark_lost(reason)
            raise DriverError(reason) from None
        mean = total / int(coadd)
        if self._dark is not None and self._dark[0] == self._integration_ms:
            mean = mean - self._dark[1]
        return SpectrumFrame(wavelengths=self._wavelengths.copy(), counts=mean, time=utc_seconds(when),
                             integration_ms=self._integration_ms, coadd=int(coadd))
