"""The simulator drivers (the default ``--driver sim``): a camera per band and a spectrometer
looking at one seeded, deterministic :class:`~pycam.sim.scene.Scene`.

* :class:`SimCamera` returns 10-bit frames (648x486, or 2592x1944 with
  ``[simulator] full_resolution``) whose counts scale linearly with exposure and gain like a
  real sensor; exposures are quantised to whole 32 µs sensor lines (rounded down, idempotent:
  re-requesting the reported value gives the same value).
* :class:`SimSpectrometer` returns 2048-pixel Flame-S-like spectra whose SO2 column is the
  plume column averaged over its field of view.

Both accept a ``frame_type`` keyword in ``capture`` (``Plume`` default, ``Test``, ``Dark`` =
covered, ``Clear`` = no plume, ``<N>ppmm`` = gas cell in front of the lens; spectrometer:
``Plume``/``Test``/``Dark``/``Clear``) and expose ``brightness`` (a simulator-only multiplier
of the sky radiance, to exercise auto-exposure).  A frame is a pure function of (seed, trigger
time, band, exposure, gain, frame type, brightness).  The world is the ``[simulator] scene``
(``realistic`` by default, ``cloudy`` or ``clean``; see ``pycam.sim.landscape``).  Physics: see
``pycam.sim.plume``, ``pycam.sim.optics`` and ``pycam.sim.spectrometer_model``.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np

from pycam.drivers.base import (Capability, CameraDriver, CameraFrame, CameraLimits, DriverError, SpectrometerDriver,
                                SpectrometerLimits, SpectrumFrame)
from pycam.sim.optics import MAX_DN
from pycam.sim.scene import Scene, posix_time
from pycam.sim.plume import BINNED_SHAPE, FULL_SHAPE
from pycam.sim.spectrometer_model import MAX_COUNTS, PIXELS, pixel_wavelengths

LINE_TIME_US = 32
MIN_SHUTTER_US = LINE_TIME_US
MAX_SHUTTER_US = 6_000_000
MIN_GAIN, MAX_GAIN = 1.0, 16.0
MIN_INTEGRATION_MS, MAX_INTEGRATION_MS = 1, 10_000

_CAMERA_TYPES = re.compile(r"Plume|Test|Dark|Clear|\d+ppmm")
_SPECTRUM_TYPES = ("Plume", "Test", "Dark", "Clear")


def quantise_shutter(shutter_us: int) -> int:
    """The exposure the simulated OV5647 really uses for a request (µs)."""
    lines = int(shutter_us) // LINE_TIME_US
    return int(min(MAX_SHUTTER_US, max(MIN_SHUTTER_US, lines * LINE_TIME_US)))


class SimCamera(CameraDriver):
    """Simulated UV camera for ``band`` "on" (fltrA, 310 nm) or "off" (fltrB, 330 nm)."""

    capabilities = frozenset({Capability.FRAME_TYPES})

    def __init__(self, config: Any, band: str, scene: Scene | None = None) -> None:
        if band not in ("on", "off"):
            raise DriverError(f"sim camera: band must be 'on' or 'off', got {band!r}")
        self.band = band
        self._config = config
        self._scene = scene
        self._model = None
        camera = config["camera"] if config is not None else {}
        self._shutter_us = quantise_shutter(int(camera.get("shutter_us", 100_000)))
        self._gain = float(np.clip(float(camera.get("analog_gain", 1.0)), MIN_GAIN, MAX_GAIN))
        self.brightness = 1.0

    @property
    def scene(self) -> Scene:
        if self._scene is None:
            raise DriverError(f"sim camera {self.band}: not open")
        return self._scene

    def open(self) -> None:
        if self._scene is None:
            if self._config is None:
                raise DriverError(f"sim camera {self.band}: needs a configuration or a scene")
            self._scene = Scene.from_config(self._config)
        self._model = self._scene.camera(self.band)

    def close(self) -> None:
        self._model = None

    @property
    def limits(self) -> CameraLimits:
        if self._scene is not None:
            shape = self._scene.image_shape
        else:
            full = self._config is not None and bool(self._config["simulator"].get("full_resolution"))
            shape = FULL_SHAPE if full else BINNED_SHAPE
        return CameraLimits(MIN_SHUTTER_US, MAX_SHUTTER_US, MIN_GAIN, MAX_GAIN, tuple(shape), MAX_DN)

    def set_exposure(self, shutter_us: int) -> int:
        if not isinstance(shutter_us, (int, np.integer)) or isinstance(shutter_us, bool) or shutter_us <= 0:
            raise DriverError(f"sim camera {self.band}: shutter must be a positive integer (µs), got {shutter_us!r}")
        self._shutter_us = quantise_shutter(int(shutter_us))
        return self._shutter_us

    def set_gain(self, gain: float) -> float:
        try:
            value = float(gain)
        except (TypeError, ValueError):
            raise DriverError(f"sim camera {self.band}: gain must be a number, got {gain!r}") from None
        if not np.isfinite(value):
            raise DriverError(f"sim camera {self.band}: gain must be finite, got {gain!r}")
        self._gain = float(np.clip(value, MIN_GAIN, MAX_GAIN))
        return self._gain

    @property
    def exposure_us(self) -> int:
        return self._shutter_us

    @property
    def gain(self) -> float:
        return self._gain

    def capture(self, when: dt.datetime, frame_type: str = "Plume") -> CameraFrame:
        if self._model is None:
            raise DriverError(f"sim camera {self.band}: capture before open()")
        if not _CAMERA_TYPES.fullmatch(frame_type):
            raise DriverError(f"sim camera {self.band}: unknown frame type {frame_type!r}")
        t = posix_time(when)
        brightness = self.brightness * self.scene.brightness
        pixels = self._model.render(t, self._shutter_us, self._gain, frame_type, brightness)
        return CameraFrame(pixels=pixels, time=when, exposure_us=self._shutter_us, gain=self._gain, band=self.band)


class SimSpectrometer(SpectrometerDriver):
    """Simulated Flame-S: spectra of the plume column in its field of view."""

    capabilities = frozenset({Capability.FRAME_TYPES})

    def __init__(self, config: Any, scene: Scene | None = None) -> None:
        self._config = config
        self._scene = scene
        self._model = None
        spec = config["spectrometer"] if config is not None else {}
        self._integration_ms = int(np.clip(int(spec.get("integration_ms", 100)), MIN_INTEGRATION_MS,
                                           MAX_INTEGRATION_MS))
        self.brightness = 1.0
        self.last_column: float | None = None   # the FOV column of the last capture (truth)

    @property
    def scene(self) -> Scene:
        if self._scene is None:
            raise DriverError("sim spectrometer: not open")
        return self._scene

    def open(self) -> None:
        if self._scene is None:
            if self._config is None:
                raise DriverError("sim spectrometer: needs a configuration or a scene")
            self._scene = Scene.from_config(self._config)
        self._model = self._scene.spectrometer()

    def close(self) -> None:
        self._model = None

    @property
    def limits(self) -> SpectrometerLimits:
        return SpectrometerLimits(float(MIN_INTEGRATION_MS), float(MAX_INTEGRATION_MS), PIXELS, MAX_COUNTS)

    def wavelengths(self) -> np.ndarray:
        return pixel_wavelengths()

    def set_integration_time(self, integration_ms: int) -> int:
        if not isinstance(integration_ms, (int, np.integer)) or isinstance(integration_ms, bool) or integration_ms <= 0:
            raise DriverError(f"sim spectrometer: integration time must be a positive integer (ms), "
                              f"got {integration_ms!r}")
        self._integration_ms = int(min(MAX_INTEGRATION_MS, max(MIN_INTEGRATION_MS, integration_ms)))
        return self._integration_ms

    @property
    def integration_ms(self) -> int:
        return self._integration_ms

    def capture(self, when: dt.datetime, coadd: int = 1, frame_type: str = "Plume") -> SpectrumFrame:
        if self._model is None:
            raise DriverError("sim spectrometer: capture before open()")
        if frame_type not in _SPECTRUM_TYPES:
            raise DriverError(f"sim spectrometer: unknown frame type {frame_type!r}")
        if not isinstance(coadd, (int, np.integer)) or coadd < 1:
            raise DriverError(f"sim spectrometer: coadd must be a positive integer, got {coadd!r}")
        t = posix_time(when)
        counts, column = self._model.spectrum(t, self._integration_ms, int(coadd), frame_type,
                                              self.brightness * self.scene.brightness)
        self.last_column = column
        return SpectrumFrame(wavelengths=self._model.wavelengths.copy(), counts=counts, time=when,
                             integration_ms=self._integration_ms, coadd=int(coadd))
