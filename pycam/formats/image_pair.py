"""An A/B image pair: the one shape every reader, the live view and the processing take.

Camera A is on-band (``fltrA``, ~310 nm), camera B off-band (``fltrB``, ~330 nm); PyCam pairs
the two frames of one trigger by their identical time string.  Readers build an
:class:`ImagePair` (archive files, EC-II frames, frames arriving from the station) and the
processing takes it (``BatchProcessor.run``; ``RealtimeProcessor.process_pair`` takes its
images and :attr:`ImagePair.meta`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from pycam.formats.names import format_time


@dataclasses.dataclass
class ImagePair:
    """The on-band (A) and off-band (B) image of one trigger, with their exposures."""

    time: dt.datetime           # UTC trigger time
    img_a: np.ndarray
    img_b: np.ndarray
    exposure_a_us: int = 0
    exposure_b_us: int = 0
    frame_type: str = "Plume"
    source_a: str = ""          # where each image came from (file path or name), when known
    source_b: str = ""

    @property
    def time_string(self) -> str:
        return format_time(self.time)

    @property
    def meta(self) -> dict:
        """The ``meta`` dict ``RealtimeProcessor.process_pair`` takes with the two images."""
        return {"time": self.time, "time_string": self.time_string, "type": self.frame_type,
                "exposure_a_us": self.exposure_a_us, "exposure_b_us": self.exposure_b_us,
                "source_a": self.source_a, "source_b": self.source_b}
