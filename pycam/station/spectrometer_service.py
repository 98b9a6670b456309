"""The spectrometer service (``pycam spectrometer``): device ``SPC`` behind the master.

Keys handled: SSS (integration time, ms; switches auto integration off), ATS (auto
integration), FRS (frame rate), CAD (co-adds), SNS/SXS (saturation band), PXS (brightest
pixels averaged), WMN/WMX (saturation window, nm), TPS (one Test/Dark/Clear/<N>ppmm
spectrum), DKS (dark set: one Dark at every integration time), STS/SPS (start/stop continuous
capture), RSS (re-open the driver), LOG, IDN, EXT, RST.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from pycam.config import Config
from pycam.drivers.base import SpectrometerDriver, SpectrumFrame
from pycam.formats.names import SpectrumName
from pycam.protocol import commands as vocab
from pycam.protocol import events
from pycam.protocol.errors import CommandValueError
from pycam.drivers import exposure
from pycam.station.device_service import DeviceService, accepts_frame_type

log = logging.getLogger(__name__)


def _pycam_integration_list_ms() -> list[int]:
    """48 integration times, 6 ms - 9.5 s (PyCam's range; pycam_compat.md section 6)."""
    return (list(range(6, 10)) + list(range(10, 50, 5)) + list(range(50, 100, 10)) + list(range(100, 500, 50))
            + list(range(500, 1000, 100)) + list(range(1000, 10_000, 500)))


class SpectrometerService(DeviceService):
    device = vocab.SPECTROMETER
    start_key, stop_key, dark_key, capture_key, restart_key, framerate_key = "STS", "SPS", "DKS", "TPS", "RSS", "FRS"

    def __init__(self, config: Config, driver: SpectrometerDriver, *, spool_dir: Path | None = None,
                 framerate: float | None = None) -> None:
        self.driver = driver
        spec = config["spectrometer"]
        self.integration_ms = spec["integration_ms"]
        self.coadd = spec["coadd"]
        self.auto_integration = spec["auto_integration"]
        self.min_saturation = spec["min_saturation"]
        self.max_saturation = spec["max_saturation"]
        self.saturation_pixels = spec["saturation_pixels"]
        self.wavelength_min = spec["wavelength_min"]
        self.wavelength_max = spec["wavelength_max"]
        super().__init__(config, spool_dir=spool_dir, framerate=framerate)
        self.last_frame: SpectrumFrame | None = None

    def _config_framerate(self) -> float:
        return self.config["spectrometer"]["framerate"]

    def open_driver(self) -> None:
        self.driver.open()
        self.integration_ms = self.driver.set_integration_time(self.integration_ms)

    def close_driver(self) -> None:
        try:
            self.driver.close()
        except Exception:
            log.exception("SPC: closing the driver failed")

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
        if key == "SNS":
            if value >= self.max_saturation:
                raise CommandValueError(key, f"{value} must be below SXS {self.max_saturation}")
            self.min_saturation = value
            return value
        if key == "SXS":
            if value <= self.min_saturation:
                raise CommandValueError(key, f"{value} must be above SNS {self.min_saturation}")
            self.max_saturation = value
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

    def capture(self, when: dt.datetime, frame_type: str) -> str:
        if accepts_frame_type(self.driver.capture):
            frame = self.driver.capture(when, self.coadd, frame_type=frame_type)
        else:
            frame = self.driver.capture(when, self.coadd)
        integration = int(frame.integration_ms)
        coadd = int(frame.coadd)

        def make_name(t: dt.datetime) -> str:
            return SpectrumName(time=t, integration_ms=integration, coadd=coadd, frame_type=frame_type).filename()

        t, _ = self.unique_time(when.replace(microsecond=0), make_name)
        name = SpectrumName(time=t, integration_ms=integration, coadd=coadd, frame_type=frame_type)
        self.spool.put_spectrum(name, frame.wavelengths, frame.counts)
        if frame_type == "Plume":
            self.last_frame = frame
        return self.spooled(name.filename())

    def after_continuous_frame(self) -> None:
        """Auto integration (ATS): one proportional step per spectrum, see drivers/exposure.py."""
        if not self.auto_integration or self.last_frame is None:
            return
        limits = self.driver.limits
        with self._state_lock:
            decision = exposure.next_integration_time(
                self.last_frame.wavelengths, self.last_frame.counts, self.integration_ms,
                min_saturation=self.min_saturation, max_saturation=self.max_saturation,
                pixels=self.saturation_pixels, wavelength_min=self.wavelength_min,
                wavelength_max=self.wavelength_max, min_integration_ms=int(limits.min_integration_ms),
                max_integration_ms=int(limits.max_integration_ms), max_counts=limits.max_counts)
            changed = decision.value != self.integration_ms
            if changed:
                self.integration_ms = self.driver.set_integration_time(decision.value)
        if changed:
            self.link.send_typed(events.Exposure(key="SSS", value=int(self.integration_ms),
                                                 saturation=round(float(decision.saturation), 4),
                                                 action=str(decision.action)))

    def integration_values(self) -> list[int]:
        """The integration times of a dark set."""
        return _pycam_integration_list_ms()

    def run_dark_set(self) -> list[str]:
        names = []
        keep = self.integration_ms
        try:
            for integration in self.integration_values():
                with self._driver_lock:   # per spectrum: settings may still change between two darks
                    self.driver.set_integration_time(integration)
                    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                    names.append(self.capture(now, "Dark"))
        finally:
            with self._driver_lock:
                self.integration_ms = self.driver.set_integration_time(keep)
        return names
