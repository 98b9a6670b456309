"""Minimal deterministic drivers for station tests (no simulator needed).

Importable by subprocesses: ``pycam camera --driver fake_drivers:FakeCamera`` with this
directory on PYTHONPATH.  ``FAKE_CAPTURE_DELAY_S`` in the environment slows captures down.
They declare no capabilities and keep the driver contract (tests/hardware/test_driver_contract.py):
capturing while closed is a DriverError.
"""
from __future__ import annotations

import datetime as dt
import os
import time

import numpy as np

from pycam.drivers.base import (CameraDriver, CameraFrame, CameraLimits, DriverError, SpectrometerDriver,
                                SpectrometerLimits, SpectrumFrame)


class FakeCamera(CameraDriver):
    capabilities = frozenset()

    def __init__(self, config, band: str) -> None:
        self.band = band
        self.shutter_us = 1000
        self.gain = 1.0
        self.opened = 0
        self.is_open = False
        self.shape = (486, 648)
        if config is not None and config["simulator"]["full_resolution"]:
            self.shape = (1944, 2592)

    def open(self) -> None:
        self.opened += 1
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    @property
    def limits(self) -> CameraLimits:
        return CameraLimits(1, 6_000_000, 1.0, 16.0, self.shape)

    def set_exposure(self, shutter_us: int) -> int:
        self.shutter_us = int(shutter_us) - int(shutter_us) // 10_000  # like a real sensor: a bit less
        return self.shutter_us

    def set_gain(self, gain: float) -> float:
        self.gain = float(gain)
        return self.gain

    def capture(self, when: dt.datetime) -> CameraFrame:
        if not self.is_open:
            raise DriverError(f"fake camera {self.band}: not open")
        delay = float(os.environ.get("FAKE_CAPTURE_DELAY_S", "0"))
        if delay:
            time.sleep(delay)
        seed = int(when.timestamp()) + (0 if self.band == "on" else 7)
        pixels = np.random.default_rng(seed).integers(0, 1024, self.shape, dtype=np.uint16)
        return CameraFrame(pixels=pixels, time=when, exposure_us=self.shutter_us, gain=self.gain, band=self.band)


class FakeSpectrometer(SpectrometerDriver):
    capabilities = frozenset()

    def __init__(self, config) -> None:
        self.integration_ms = 100
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    @property
    def limits(self) -> SpectrometerLimits:
        return SpectrometerLimits(1, 10_000, 2048)

    def wavelengths(self) -> np.ndarray:
        return np.linspace(250.0, 405.0, 2048)

    def set_integration_time(self, integration_ms: int) -> int:
        self.integration_ms = int(integration_ms)
        return self.integration_ms

    def capture(self, when: dt.datetime, coadd: int = 1) -> SpectrumFrame:
        if not self.is_open:
            raise DriverError("fake spectrometer: not open")
        counts = np.random.default_rng(int(when.timestamp())).random(2048) * 60000
        return SpectrumFrame(wavelengths=self.wavelengths(), counts=counts, time=when,
                             integration_ms=self.integration_ms, coadd=coadd)
