"""Minimal deterministic drivers for station tests (no simulator needed).

Importable by subprocesses: ``pycam camera --driver fake_drivers:FakeCamera`` with this
directory on PYTHONPATH.  ``FAKE_CAPTURE_DELAY_S`` in the environment slows captures down.
"""
from __future__ import annotations

import datetime as dt
import os
import time

import numpy as np

from pycam.drivers.base import (CameraDriver, CameraFrame, CameraLimits, SpectrometerDriver, SpectrometerLimits,
                                SpectrumFrame)


class FakeCamera(CameraDriver):
    def __init__(self, config, band: str) -> None:
        self.band = band
        self.shutter_us = 1000
        self.gain = 1.0
        self.opened = 0
        self.shape = (486, 648)
        if config is not None and config["simulator"]["full_resolution"]:
            self.shape = (1944, 2592)

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        pass

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
        delay = float(os.environ.get("FAKE_CAPTURE_DELAY_S", "0"))
        if delay:
            time.sleep(delay)
        seed = int(when.timestamp()) + (0 if self.band == "on" else 7)
        pixels = np.random.default_rng(seed).integers(0, 1024, self.shape, dtype=np.uint16)
        return CameraFrame(pixels=pixels, time=when, exposure_us=self.shutter_us, gain=self.gain, band=self.band)


class FakeSpectrometer(SpectrometerDriver):
    def __init__(self, config) -> None:
        self.integration_ms = 100

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def limits(self) -> SpectrometerLimits:
        return SpectrometerLimits(1, 10_000, 2048)

    def wavelengths(self) -> np.ndarray:
        return np.linspace(250.0, 405.0, 2048)

    def set_integration_time(self, integration_ms: int) -> int:
        self.integration_ms = int(integration_ms)
        return self.integration_ms

    def capture(self, when: dt.datetime, coadd: int = 1) -> SpectrumFrame:
        counts = np.random.default_rng(int(when.timestamp())).random(2048) * 60000
        return SpectrumFrame(wavelengths=self.wavelengths(), counts=counts, time=when,
                             integration_ms=self.integration_ms, coadd=coadd)
