"""The spectrometer service (``pycam spectrometer``): device ``SPC`` behind the master.

Keys handled: SSS (integration time, ms; switches auto integration off), ATS (auto
integration), FRS (frame rate), CAD (co-adds), SNS/SXS (saturation band), PXS (brightest
pixels averaged), WMN/WMX (saturation window, nm), TPS (one Test/Dark/Clear/<N>ppmm
spectrum), DKS (dark set: one Dark at every integration time), STS/SPS (start/stop continuous
capture), RSS (re-open the driver), LOG, IDN, EXT, RST.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pycam.config import Config
from pycam.drivers.base import SpectrometerDriver, SpectrumFrame
from pycam.formats.names import SpectrumName
from pycam.protocol import commands as vocab
from pycam.protocol.errors import CommandValueError
from pycam.drivers import exposure
from pycam.station.device_service import DeviceService


def _pycam_integration_list_ms() -> list[int]:
    """48 integration times, 6 ms - 9.5 s (PyCam's range; pycam_compat.md section 6)."""
    return (list(range(6, 10)) + list(range(10, 50, 5)) + list(range(50, 100, 10)) + list(range(100, 500, 50))
            + list(range(500, 1000, 100)) + list(range(1000, 10_000, 500)))


class SpectrometerService(DeviceService):
    device = vocab.SPECTROMETER
    kind = "spectrometer"
    exposure_key = "SSS"
    saturation_keys = ("SNS", "SXS")
    start_key, stop_key, dark_key, capture_key, restart_key, framerate_key = "STS", "SPS", "DKS", "TPS", "RSS", "FRS"

    def __init__(self, config: Config, driver: SpectrometerDriver, *, spool_dir: Path | None = None,
                 framerate: float | None = None) -> None:
        self.driver = driver
        spec = config["spectrometer"]
        self.integration_ms = spec["integration_ms"]
        self.coadd = spec["coadd"]
        self.auto_integration = spec["auto_integration"]
        self.wavelength_min = spec["wavelength_min"]
        self.wavelength_max = spec["wavelength_max"]
        super().__init__(config, spool_dir=spool_dir, framerate=framerate)

    @property
    def exposure(self) -> int:
        return self.integration_ms

    @exposure.setter
    def exposure(self, value: int) -> None:
        self.integration_ms = value

    @property
    def auto_exposure(self) -> bool:
        return self.auto_integration

    def open_driver(self) -> None:
        self.driver.open()
        self.integration_ms = self.driver.set_integration_time(self.integration_ms)

    def set_driver_exposure(self, value: int) -> int:
        return self.driver.set_integration_time(value)

    def settings(self) -> dict[str, Any]:
        return {"IDN": self.device, "SSS": self.integration_ms, "ATS": self.auto_integration, "FRS": self.framerate,
                "CAD": self.coadd, "SNS": self.min_saturation, "SXS": self.max_saturation,
                "PXS": self.saturation_pixels, "WMN": self.wavelength_min, "WMX": self.wavelength_max,
                "acquiring": self.acquiring, "backlog": self.link.backlog}

    def apply_setting(self, key: str, value: Any) -> Any:
        if key == "SSS":
            self.auto_integration = False
            self.integration_ms = self.driver.set_integration_time(value)
            return self.integration_ms
        if key == "ATS":
            self.auto_integration = bool(value)
            return value
        if key == "CAD":
            self.coadd = value
            return value
        if key == "PXS":
            self.saturation_pixels = value
            return value
        if key == "WMN":
            if value >= self.wavelength_max:
                raise CommandValueError(key, f"{value} nm must be below WMX {self.wavelength_max:g} nm")
            self.wavelength_min = float(value)
            return value
        if key == "WMX":
            if value <= self.wavelength_min:
                raise CommandValueError(key, f"{value} nm must be above WMN {self.wavelength_min:g} nm")
            self.wavelength_max = float(value)
            return value
        return super().apply_setting(key, value)

    def capture_arguments(self) -> tuple:
        return (self.coadd,)

    def frame_name(self, frame: SpectrumFrame, when: dt.datetime, frame_type: str) -> SpectrumName:
        return SpectrumName(time=when, integration_ms=int(frame.integration_ms), coadd=int(frame.coadd),
                            frame_type=frame_type)

    def spool_frame(self, name: SpectrumName, frame: SpectrumFrame) -> None:
        self.spool.put_spectrum(name, frame.wavelengths, frame.counts)
        self.spooled(name.filename())

    def next_exposure(self, frame: SpectrumFrame) -> exposure.ExposureDecision:
        """Auto integration (ATS), see drivers/exposure.py."""
        limits = self.driver.limits
        return exposure.next_integration_time(
            frame.wavelengths, frame.counts, self.integration_ms, min_saturation=self.min_saturation,
            max_saturation=self.max_saturation, pixels=self.saturation_pixels, wavelength_min=self.wavelength_min,
            wavelength_max=self.wavelength_max, min_integration_ms=int(limits.min_integration_ms),
            max_integration_ms=int(limits.max_integration_ms), max_counts=limits.max_counts)

    def dark_exposures(self) -> list[int]:
        """The integration times of a dark set."""
        return _pycam_integration_list_ms()
