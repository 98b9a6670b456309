"""Measurement geometry: plume distance and pixel footprint ``dx = d * p / f``.

* ``p`` is the pixel pitch of the image actually processed: the sensor width over the image
  width.  For PyCam's OV5647 (``sensor: ov5647``) the width is ``648 * pix_size_m`` (5.6 um for
  the binned 648x486 frames, 1.4 um for 2592x1944); other sensors take it from their profile
  (IMX477: 4056 x 1.55 um, so 6.2 um for its binned 1014x760 frames).
* ``f`` is ``focal_length_m`` or ``(sensor width / 2) / tan(fov_x / 2)`` (OV5647, 28 deg: 7.28 mm).
* ``d`` is either the fixed ``plume_distance_m``, or, from PyCam's camera geometry file
  (lat, lon, altitude, elev, azim) and the source position (``source_lat/lon/alt``), the
  slant distance along each pixel's viewing ray to the plume plane: the vertical plane
  through the source whose horizontal direction is ``plume_dir_deg`` (default: normal to
  the camera->source azimuth).  Pixel (x, y) looks at azimuth ``azim + atan((x - cx) p / f)``
  and elevation ``elev + atan((cy - y) p / f)``; positions use a local flat-earth frame
  (equirectangular, adequate within tens of km).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from pycam.formats.geometry import CameraGeometry

EARTH_RADIUS_M = 6_371_000.0


class GeometryError(ValueError):
    """The measurement geometry cannot be set up (missing source position, ray misses the plume...)."""


@dataclasses.dataclass
class MeasurementGeometry:
    """Pixel footprints for an image size."""

    shape: tuple[int, int]
    pix_size_m: float            # of the processed image
    focal_length_m: float
    plume_distance_m: float | None = None
    camera: CameraGeometry | None = None
    source_xyz: tuple[float, float, float] | None = None   # east, north, up of the source rel. to the camera
    plume_dir_deg: float | None = None
    dist_err_rel: float = 0.1

    @classmethod
    def from_settings(cls, settings, shape: tuple[int, int], camera: CameraGeometry | None = None
                      ) -> "MeasurementGeometry":
        h, w = shape
        pitch = settings.sensor_width_m / w
        fixed = settings["plume_distance_m"]
        src = None
        if fixed is None:
            if camera is None:
                raise GeometryError("no plume distance: set plume_distance_m or give a camera geometry file "
                                    "and source_lat/source_lon/source_alt")
            if None in (settings["source_lat"], settings["source_lon"]):
                raise GeometryError("camera geometry given but no source position: set source_lat and "
                                    "source_lon (and source_alt) in the processing settings")
            src = source_offset(camera, settings["source_lat"], settings["source_lon"],
                                settings["source_alt"] if settings["source_alt"] is not None else camera.altitude)
        return cls(tuple(shape), pitch, settings.focal_length, fixed, camera, src, settings["plume_dir_deg"],
                   settings["dist_err_rel"])

    def distances(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Plume distance (m) for pixel positions."""
        xs = np.asarray(xs, float)
        if self.plume_distance_m is not None:
            return np.full(xs.shape, float(self.plume_distance_m))
        assert self.camera is not None and self.source_xyz is not None
        h, w = self.shape
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        az = np.radians(self.camera.azim) + np.arctan((xs - cx) * self.pix_size_m / self.focal_length_m)
        el = np.radians(self.camera.elev) + np.arctan((cy - np.asarray(ys, float)) * self.pix_size_m
                                                      / self.focal_length_m)
        se, sn, _ = self.source_xyz
        if self.plume_dir_deg is None:
            plane_dir = math.atan2(se, sn) + math.pi / 2
        else:
            plane_dir = math.radians(self.plume_dir_deg)
        # plane normal (horizontal), perpendicular to the plume direction
        n_e, n_n = math.cos(plane_dir), -math.sin(plane_dir)
        u_e, u_n = np.sin(az), np.cos(az)
        denom = u_e * n_e + u_n * n_n
        num = se * n_e + sn * n_n
        with np.errstate(divide="ignore", invalid="ignore"):
            t_h = num / denom
        if np.any(~np.isfinite(t_h)) or np.any(t_h <= 0):
            raise GeometryError("a viewing ray does not meet the plume plane in front of the camera "
                                "(check azim/elev, the source position and plume_dir_deg)")
        return t_h / np.cos(el)

    def footprints(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Pixel footprint ``dx = d * p / f`` (m) for pixel positions."""
        return self.distances(xs, ys) * self.pix_size_m / self.focal_length_m

    def footprint_centre(self) -> float:
        h, w = self.shape
        return float(self.footprints(np.array([(w - 1) / 2.0]), np.array([(h - 1) / 2.0]))[0])


def source_offset(camera: CameraGeometry, lat: float, lon: float, alt: float) -> tuple[float, float, float]:
    """(east, north, up) in m of a point relative to the camera (local flat-earth frame)."""
    lat0 = math.radians(camera.lat)
    east = math.radians(lon - camera.lon) * EARTH_RADIUS_M * math.cos(lat0)
    north = math.radians(lat - camera.lat) * EARTH_RADIUS_M
    up = alt - (camera.altitude + camera.alt_offset)
    if math.hypot(east, north) < 1.0:
        raise GeometryError("the source position coincides with the camera")
    return east, north, up
