"""Camera sensor profiles: what a raw frame of each supported Raspberry Pi sensor is.

A profile gives the full-resolution size, the native raw format, the significant bits, the
black level (in DN of that bit depth), the binning PyCam applies and the physical pixel size.
The station picks one with ``[hardware] sensor``; the processing reads pixel size and bit
depth from here (by name) instead of assuming PyCam's 10-bit OV5647.

* ``ov5647`` (Pi camera v1, PyCam's sensor): 2592x1944 at 1.4 um, 10-bit ``SGBRG10``, binned
  4x4 to 648x486 (5.6 um pixels), black level about 16 DN.
* ``imx477`` (HQ camera): 4056x3040 at 1.55 um, 12-bit ``SRGGB12``, black level about 256 DN
  that must be subtracted (the dark frames carry it), binned 4x4 to 1014x760.
* ``imx296`` (global shutter camera): 1456x1088 at 3.45 um, 10-bit ``SRGGB10``, black level
  about 60 DN, binned 2x2 to 728x544; it can be triggered externally (XTR pin), so both
  sensors start their exposure on the same edge.

Pure data and arithmetic (floor 1): no hardware library is imported.
"""
from __future__ import annotations

import dataclasses


class SensorProfileError(ValueError):
    """An unknown sensor name or an impossible profile value."""


@dataclasses.dataclass(frozen=True)
class SensorProfile:
    name: str                    # lower-case libcamera model name ("ov5647")
    description: str
    width: int                   # full-resolution raw columns
    height: int                  # full-resolution raw rows
    raw_format: str              # native raw format, unpacked name (picamera2 / libcamera)
    bit_depth: int               # significant bits of a raw sample
    black_level_dn: int          # pedestal in DN of ``bit_depth`` (subtracted with the dark)
    binning: int                 # PyCam's area-averaging factor
    pixel_size_m: float          # physical pixel pitch at full resolution
    global_shutter: bool = False
    external_trigger: bool = False

    @property
    def max_dn(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def binned_shape(self) -> tuple[int, int]:
        """(rows, cols) of the frames the station stores."""
        return self.height // self.binning, self.width // self.binning

    @property
    def binned_pixel_size_m(self) -> float:
        return self.pixel_size_m * self.binning

    @property
    def sensor_width_m(self) -> float:
        """Active width of the sensor: the pixel pitch of any image is this over its width."""
        return self.width * self.pixel_size_m

    def pixel_pitch_m(self, image_width: int) -> float:
        """Pixel pitch of an image of ``image_width`` columns made from the whole sensor width."""
        if image_width <= 0:
            raise SensorProfileError(f"{self.name}: image width must be positive, got {image_width}")
        return self.sensor_width_m / image_width


PROFILES: dict[str, SensorProfile] = {p.name: p for p in (
    SensorProfile("ov5647", "Raspberry Pi camera v1 (PyCam)", 2592, 1944, "SGBRG10", 10, 16, 4, 1.4e-6),
    SensorProfile("imx477", "Raspberry Pi HQ camera", 4056, 3040, "SRGGB12", 12, 256, 4, 1.55e-6),
    SensorProfile("imx296", "Raspberry Pi global shutter camera", 1456, 1088, "SRGGB10", 10, 60, 2, 3.45e-6,
                  global_shutter=True, external_trigger=True),
)}

#: PyCam's sensor: what files without other information were taken with.
DEFAULT_SENSOR = "ov5647"


def sensor_profile(name: str) -> SensorProfile:
    """The profile called ``name`` (case-insensitive); the error lists the known ones."""
    try:
        return PROFILES[str(name).strip().lower()]
    except KeyError:
        raise SensorProfileError(f"unknown sensor {name!r} (known: {', '.join(PROFILES)})") from None
