"""PyCam's small text files: PCS lines, camera geometry and the DOAS field of view.

All are ``key=value`` lines (``#`` starts a comment).  Readers raise :class:`GeometryFileError`
naming the file and key; writers are atomic.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Mapping

from pycam.formats.atomic import atomic_write_text


class GeometryFileError(ValueError):
    """A line, geometry or FOV file is missing a key or holds a bad value."""


def parse_key_values(text: str, name: str = "<text>") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise GeometryFileError(f"{name}:{number}: expected key=value, got {raw.strip()!r}")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def _read(path: str | os.PathLike[str]) -> tuple[Path, dict[str, str]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GeometryFileError(f"{p}: cannot read: {exc}") from None
    return p, parse_key_values(text, str(p))


def _number(p: Path, values: Mapping[str, str], key: str, kind=float, default=None):
    if key not in values or values[key] == "":
        if default is not None:
            return default
        raise GeometryFileError(f"{p}: missing key {key!r}")
    try:
        return kind(values[key])
    except ValueError:
        raise GeometryFileError(f"{p}: {key}={values[key]!r} is not a number") from None


@dataclasses.dataclass(frozen=True)
class PCSLine:
    """A plume cross-section line in image pixels (648x486 frame, origin top-left).

    ``orientation`` (``left``/``right`` of the 0->1 direction, pyplis's normal_orientation)
    sets which way through the line counts as positive flux.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    orientation: str = "left"
    name: str = "0"

    def __post_init__(self) -> None:
        if self.orientation not in ("left", "right"):
            raise ValueError(f"orientation must be 'left' or 'right', got {self.orientation!r}")
        if (self.x0, self.y0) == (self.x1, self.y1):
            raise ValueError("a PCS line needs two distinct end points")

    def to_text(self) -> str:
        return f"x={self.x0},{self.x1}\ny={self.y0},{self.y1}\norientation={self.orientation}\n"


def read_pcs_line(path: str | os.PathLike[str], name: str | None = None) -> PCSLine:
    p, values = _read(path)
    try:
        xs = [int(float(v)) for v in values["x"].split(",")]
        ys = [int(float(v)) for v in values["y"].split(",")]
    except KeyError as exc:
        raise GeometryFileError(f"{p}: missing key {exc.args[0]!r} (expected x=x0,x1 / y=y0,y1)") from None
    except ValueError:
        raise GeometryFileError(f"{p}: x and y must be two integers each, e.g. x=273,408") from None
    if len(xs) != 2 or len(ys) != 2:
        raise GeometryFileError(f"{p}: x and y must hold exactly two values each")
    try:
        return PCSLine(xs[0], ys[0], xs[1], ys[1], values.get("orientation", "left"), name or p.stem)
    except ValueError as exc:
        raise GeometryFileError(f"{p}: {exc}") from None


def write_pcs_line(path: str | os.PathLike[str], line: PCSLine) -> Path:
    return atomic_write_text(path, line.to_text())


@dataclasses.dataclass(frozen=True)
class CameraGeometry:
    """PyCam ``cam_geom`` file: where the camera is and where it points."""

    volcano: str
    lat: float          # decimal degrees
    lon: float
    altitude: float     # m above sea level
    elev: float         # degrees above the horizon
    azim: float         # degrees clockwise from north
    alt_offset: float = 0.0  # m above ground

    def to_text(self) -> str:
        return (f"volcano={self.volcano}\nlat={self.lat!r}\nlon={self.lon!r}\naltitude={self.altitude!r}\n"
                f"alt_offset={self.alt_offset!r}\nelev={self.elev!r}\nazim={self.azim!r}\n")


def read_camera_geometry(path: str | os.PathLike[str]) -> CameraGeometry:
    p, values = _read(path)
    geom = CameraGeometry(
        volcano=values.get("volcano", ""),
        lat=_number(p, values, "lat"), lon=_number(p, values, "lon"),
        altitude=_number(p, values, "altitude"), elev=_number(p, values, "elev"),
        azim=_number(p, values, "azim"), alt_offset=_number(p, values, "alt_offset", default=0.0),
    )
    if not -90 <= geom.lat <= 90:
        raise GeometryFileError(f"{p}: lat={geom.lat} outside -90..90")
    if not -180 <= geom.lon <= 360:
        raise GeometryFileError(f"{p}: lon={geom.lon} outside -180..360")
    if not -90 <= geom.elev <= 90:
        raise GeometryFileError(f"{p}: elev={geom.elev} outside -90..90")
    return geom


def write_camera_geometry(path: str | os.PathLike[str], geom: CameraGeometry) -> Path:
    return atomic_write_text(path, geom.to_text())


@dataclasses.dataclass(frozen=True)
class DoasFov:
    """The spectrometer's field of view in camera pixels (PyCam ``x_pos``, ``y_pos``, ``radius``)."""

    x: float
    y: float
    radius: float

    def to_text(self) -> str:
        return f"x_pos={self.x!r}\ny_pos={self.y!r}\nradius={self.radius!r}\n"


def read_doas_fov(path: str | os.PathLike[str]) -> DoasFov:
    p, values = _read(path)
    fov = DoasFov(_number(p, values, "x_pos"), _number(p, values, "y_pos"), _number(p, values, "radius"))
    if fov.radius <= 0:
        raise GeometryFileError(f"{p}: radius must be positive")
    return fov


def write_doas_fov(path: str | os.PathLike[str], fov: DoasFov) -> Path:
    return atomic_write_text(path, fov.to_text())
