"""One spectrum in memory, the one shape for it everywhere (floor 1): what a spectrometer
driver's ``capture`` returns (pycam.drivers.base) and what the GUI decodes from a data frame
(pycam.gui.ui_messages).  On disk a spectrum is a PyCam ``.npy`` (pycam.formats.images) named
by :class:`pycam.formats.names.SpectrumName`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from pycam.formats.names import format_time


@dataclasses.dataclass(frozen=True)
class SpectrumFrame:
    wavelengths: np.ndarray     # float64 (N,) nm
    counts: np.ndarray          # float64 (N,), the mean of ``coadd`` reads
    time: dt.datetime           # UTC
    integration_ms: int
    coadd: int
    frame_type: str = ""        # Plume, Test, Dark, Clear, <N>ppmm; "" while not yet named (a driver's capture)
    filename: str = ""          # its PyCam file name, once it has one

    @property
    def time_string(self) -> str:
        """The PyCam time field of the file name (whole seconds, UTC)."""
        return format_time(self.time)
