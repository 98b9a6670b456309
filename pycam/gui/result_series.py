"""What the views draw: plain results prepared on worker threads.

The live worker converts the processing library's results into these small records off
the Tk thread, so a view only copies arrays into artists.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class LineRate:
    """Emission rate through one PCS line (or ``total``) at one time."""

    flux_kg_s: float
    flux_err_kg_s: float
    velo_eff_m_s: float
    velo_eff_err_m_s: float = float("nan")
    flag: int = 0                  # quality bitmask (pycam.processing.quality), 0 = good
    flag_reason: str = ""          # ';'-joined reason codes


@dataclasses.dataclass(frozen=True)
class So2Display:
    """One processed image pair: images in each unit and the emission rates per line."""

    time_string: str
    seconds: float                       # time as POSIX seconds (x axis of the series)
    images: dict[str, np.ndarray]        # "tau_A", "AA", "column" (molec cm^-2) when calibrated
    rates: dict[str, LineRate]           # line name (and "total") -> rate
    processing_s: float = 0.0
    fov: tuple[float, float, float] | None = None   # DOAS field of view (x, y, radius) in pixels
    note: str = ""                                    # calibration state and processing warnings
    calibration: Any = None      # pycam.processing.live_calibration.CalibrationStatus of the live DOAS cal
    truth_kg_s: float = float("nan")   # simulator's true total rate through the lines (demo), else NaN


@dataclasses.dataclass(frozen=True)
class DoasDisplay:
    """One DOAS retrieval: the fit over the fit window and the SO2 column."""

    time_string: str
    seconds: float
    wavelengths: np.ndarray              # fit window pixels, nm
    measured: np.ndarray                 # measured intensity in the fit window
    model: np.ndarray                    # fitted model on the same pixels
    column: float                        # molec cm^-2
    column_err: float
    ok: bool = True
    note: str = ""

    @property
    def residual(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.measured - self.model) / np.where(self.model == 0, np.nan, self.model)
