"""The simulated station's world: plume field + camera models + spectrometer model + truth.

:class:`Scene` ties together :mod:`pycam.sim.plume` (the column field),
:mod:`pycam.sim.optics` (cameras) and :mod:`pycam.sim.spectrometer_model`
(spectrometer), and writes the ground truth as a JSON-able dict (:meth:`Scene.truth`).

PCS lines in the truth are sampled like pyplis's ``LineOnImage``: ``n = round(hypot(dx, dy))``
points ``linspace(p0, p1, n)``; the true flux is the line integral
``Σ S_k · h · v⊥ · Δx · K`` with the sample spacing ``h = length/(n − 1)`` px, ``v⊥`` the flow
speed component along the line's normal (pyplis convention for ``orientation``: normals
``(−dy, dx)`` = left and ``(dy, −dx)`` = right, swapped when dx·dy < 0), ``Δx`` the pixel
footprint and ``K = 1e4·M_SO2/N_A/1000``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from pycam.sim.landscape import SceneStyle, scene_preset, warp_a_to_b
from pycam.sim.optics import (FILTERS, MOLEC_CM2_PER_PPMM, CameraModel, aa_of_column)
from pycam.sim.plume import (BINNED_SHAPE, FOV_X_DEG, FULL_SHAPE, KG_M2_PER_MOLEC_CM2, M_SO2, N_A,
                                     PIXEL_PITCH_M, PlumeField, SceneParameters)
from pycam.sim.spectrometer_model import SpectrometerModel
from pycam.formats.geometry import PCSLine
from pycam.formats.names import format_time
from pycam.reference_spectra import ReferenceSet, reference_set_for

TRUTH_SCHEMA = "pycam-sim-truth/1"


def posix_time(when: dt.datetime) -> float:
    """POSIX seconds of ``when`` (naive datetimes are UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def line_normal(line: PCSLine) -> np.ndarray:
    """The unit normal of ``line`` for its orientation, in pyplis's convention (image x, y)."""
    dx, dy = float(line.x1 - line.x0), float(line.y1 - line.y0)
    v1, v2 = np.array([-dy, dx]), np.array([dy, -dx])
    left, right = (v2, v1) if dx * dy < 0 else (v1, v2)
    v = left if line.orientation == "left" else right
    return v / np.linalg.norm(v)


def line_samples(line: PCSLine) -> tuple[np.ndarray, np.ndarray, float]:
    """(xs, ys, spacing): pyplis-style samples of a line (binned pixels)."""
    length = math.hypot(line.x1 - line.x0, line.y1 - line.y0)
    n = max(2, int(round(length)))
    xs = np.linspace(line.x0, line.x1, n)
    ys = np.linspace(line.y0, line.y1, n)
    return xs, ys, length / (n - 1)


def perpendicular_line(field: PlumeField, along_offset_px: float, half_length_px: float, name: str) -> PCSLine:
    """An integer PCS line perpendicular to the flow, crossing the axis ``along_offset_px``
    downstream of the axis point, oriented so that the plume's flux is positive."""
    centre = field.axis + along_offset_px * field.along
    p0 = centre - half_length_px * field.across
    p1 = centre + half_length_px * field.across
    rows, cols = BINNED_SHAPE
    x0, y0 = (int(round(np.clip(p0[0], 0, cols - 1))), int(round(np.clip(p0[1], 0, rows - 1))))
    x1, y1 = (int(round(np.clip(p1[0], 0, cols - 1))), int(round(np.clip(p1[1], 0, rows - 1))))
    line = PCSLine(x0, y0, x1, y1, "left", name)
    if float(np.dot(line_normal(line), field.along)) < 0:
        line = PCSLine(x0, y0, x1, y1, "right", name)
    return line


class Scene:
    """One simulated world; camera and spectrometer models are built on first use."""

    def __init__(self, params: SceneParameters, references: ReferenceSet, *, full_resolution: bool = False,
                 noise: bool = True, brightness: float = 1.0, style: SceneStyle | None = None) -> None:
        self.params = params
        self.style = style if style is not None else SceneStyle()
        self.references = references
        self.full_resolution = full_resolution
        self.noise = noise
        self.brightness = float(brightness)
        self.field = PlumeField(params)
        self._cameras: dict[str, CameraModel] = {}
        self._spectrometer: SpectrometerModel | None = None

    @classmethod
    def preset(cls, name: str, references: ReferenceSet, *, extinction: tuple[float | None, float | None] = (None, None),
               full_resolution: bool = False, noise: bool = True, brightness: float = 1.0,
               **params: Any) -> "Scene":
        """A named scene (``clean``, ``realistic``, ``cloudy``; see :mod:`pycam.sim.landscape`);
        ``params`` override :class:`SceneParameters` fields (also the preset's), ``extinction``
        (on, off, 1/m; None: the preset's) the light dilution."""
        style, preset = scene_preset(name)
        values = {**preset, **params}
        on, off = extinction
        if on is not None or off is not None:
            style = dataclasses.replace(style, extinction_on_per_m=style.extinction_on_per_m if on is None else on,
                                        extinction_off_per_m=style.extinction_off_per_m if off is None else off)
        return cls(SceneParameters(**values), references, full_resolution=full_resolution, noise=noise,
                   brightness=brightness, style=style)

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> "Scene":
        """A scene from a station configuration's ``[simulator]`` section (+ keyword overrides
        for :class:`SceneParameters` fields).  The scene preset's misregistration applies unless
        the config gives one (non-zero ``misregistration_*``)."""
        sim: Mapping[str, Any] = config["simulator"]
        values = dict(
            seed=sim["seed"], emission_rate_kg_s=sim["emission_rate_kg_s"], wind_speed_m_s=sim["wind_speed_m_s"],
            plume_distance_m=sim["plume_distance_m"],
        )
        shift = (float(sim.get("misregistration_x_px", 0.0)), float(sim.get("misregistration_y_px", 0.0)))
        rotation = float(sim.get("misregistration_rot_deg", 0.0))
        if shift != (0.0, 0.0) or rotation != 0.0:
            values.update(misregistration_px=shift, misregistration_rot_deg=rotation)
        name = str(sim.get("scene", "realistic"))
        if name == "clean" or sim.get("wind_direction_deg", 0.0) != 0.0:
            values["wind_direction_deg"] = sim["wind_direction_deg"]
        values.update(overrides)
        extinction = (sim.get("extinction_on_per_m", -1.0), sim.get("extinction_off_per_m", -1.0))
        return cls.preset(name, reference_set_for(sim.get("reference_dir")),
                          extinction=tuple(None if e is None or e < 0 else float(e) for e in extinction),
                          full_resolution=bool(sim.get("full_resolution", False)), noise=bool(sim.get("noise", True)),
                          brightness=float(sim.get("brightness", 1.0)), **values)

    # ------------------------------------------------------------------ models
    def camera(self, band: str) -> CameraModel:
        if band not in self._cameras:
            self._cameras[band] = CameraModel(self.field, self.references, band, self.params.seed,
                                              full_resolution=self.full_resolution, noise=self.noise,
                                              style=self.style)
        return self._cameras[band]

    def spectrometer(self) -> SpectrometerModel:
        if self._spectrometer is None:
            self._spectrometer = SpectrometerModel(
                self.field, self.references, self.params.seed, noise=self.noise,
                extinction=(self.style.extinction_on_per_m, self.style.extinction_off_per_m),
                plume_distance_m=self.params.plume_distance_m)
        return self._spectrometer

    @property
    def image_shape(self) -> tuple[int, int]:
        return FULL_SHAPE if self.full_resolution else BINNED_SHAPE

    # ------------------------------------------------------------------ truth
    def line_truth(self, line: PCSLine, t: float, columns_per_pixel: bool = True) -> dict[str, Any]:
        xs, ys, spacing = line_samples(line)
        columns = self.field.columns(xs, ys, t)
        v_normal = self.params.wind_speed_m_s * float(np.dot(self.field.along, line_normal(line)))
        flux = float(np.sum(columns) * spacing * v_normal * self.field.pixel_size_m * KG_M2_PER_MOLEC_CM2)
        out = {
            "flux_kg_s": flux,
            "mean_column_molec_cm2": float(np.mean(columns)),
            "ica_molec_cm2_m": float(np.sum(columns) * spacing * self.field.pixel_size_m),
        }
        if columns_per_pixel:
            out["columns_molec_cm2"] = [float(c) for c in columns]
        return out

    def registration(self) -> dict[str, Any]:
        """The true A/B warp (binned px): ``warp_a_to_b`` maps an A pixel to the B pixel seeing the
        same scene point (OpenCV ``warpAffine(B, M, WARP_INVERSE_MAP)`` puts B on A's grid)."""
        p = self.params
        centre = ((BINNED_SHAPE[1] - 1) / 2, (BINNED_SHAPE[0] - 1) / 2)
        m = warp_a_to_b(p.misregistration_px, p.misregistration_rot_deg, centre)
        return {"warp_a_to_b": [[float(v) for v in row] for row in m], "centre_xy": list(centre),
                "shift_px": list(p.misregistration_px), "rotation_deg": p.misregistration_rot_deg}

    def plume_free_rows(self, times: Sequence[float], threshold: float = 1e16) -> dict[str, Any]:
        """Top and bottom row ranges [first, last] (binned px) where the column stays below
        ``threshold`` at the given POSIX times (sky reference regions)."""
        peak = np.zeros(BINNED_SHAPE[0])
        for t in times:
            peak = np.maximum(peak, self.field.column_image(t).max(axis=1))
        rows = np.nonzero(peak >= threshold)[0]
        if rows.size == 0:
            return {"top": [0, BINNED_SHAPE[0] - 1], "bottom": None, "threshold_molec_cm2": threshold}
        top = [0, int(rows[0]) - 1] if rows[0] > 0 else None
        bottom = [int(rows[-1]) + 1, BINNED_SHAPE[0] - 1] if rows[-1] < BINNED_SHAPE[0] - 1 else None
        return {"top": top, "bottom": bottom, "threshold_molec_cm2": threshold}

    def aa_curve(self, columns: np.ndarray | None = None) -> dict[str, list[float]]:
        if columns is None:
            columns = np.linspace(0.0, 2e19, 401)
        aa = aa_of_column(self.camera("on").transmission, self.camera("off").transmission, np.asarray(columns))
        return {"column_molec_cm2": [float(c) for c in columns], "aa": [float(a) for a in aa]}

    def truth(self, times: Iterable[dt.datetime], lines: Sequence[PCSLine] = (),
              cell_ppmm: Sequence[int] = (), extra: Mapping[str, Any] | None = None,
              columns_per_pixel: bool = True) -> dict[str, Any]:
        """The ground truth for plume frames taken at ``times`` (see ``pycam.sim.dataset``);
        ``columns_per_pixel=False`` leaves out the per-sample PCS-line columns."""
        times = list(times)
        p, f = self.params, self.field
        on, off = self.camera("on").transmission, self.camera("off").transmission
        fit_cols = np.linspace(0.0, 2e18, 41)
        fit_aa = aa_of_column(on, off, fit_cols)
        slope = float(np.sum(fit_cols * fit_aa) / np.sum(fit_aa * fit_aa))  # S = slope·AA through 0
        aa_small = float(aa_of_column(on, off, np.array([1e15]))[0])
        pairs = []
        for when in times:
            t = posix_time(when)
            entry = {
                "time": format_time(when),
                "posix_time": t,
                "fov_column_molec_cm2": self.field.fov_column(t),
                "lines": {line.name: self.line_truth(line, t, columns_per_pixel) for line in lines},
            }
            pairs.append(entry)
        times_list = [posix_time(w) for w in times]
        plume_free = self.plume_free_rows(times_list[:: max(1, len(times_list) // 10)] or [0.0])
        mean_flux = {line.name: float(np.mean([e["lines"][line.name]["flux_kg_s"] for e in pairs]))
                     for line in lines} if pairs else {}
        fov_x, fov_y = f.fov_centre
        vertical_fov = 2 * math.degrees(math.atan(BINNED_SHAPE[0] * PIXEL_PITCH_M / 2 / f.focal_length_m))
        truth: dict[str, Any] = {
            "schema": TRUTH_SCHEMA,
            "reference_set": {"label": self.references.label, "synthetic": self.references.synthetic},
            "seed": p.seed,
            "emission_rate_kg_s": p.emission_rate_kg_s,
            "wind_speed_m_s": p.wind_speed_m_s,
            "plume_speed_m_s": p.wind_speed_m_s,
            "plume_speed_px_s": f.speed_px_s,
            "plume_speed_px_s_full_resolution": f.speed_px_s * FULL_SHAPE[1] / BINNED_SHAPE[1],
            "wind_direction_deg": p.wind_direction_deg,
            "flow_direction_xy": [float(f.along[0]), float(f.along[1])],
            "plume_distance_m": p.plume_distance_m,
            "pixel_pitch_m": PIXEL_PITCH_M,
            "pixel_pitch_full_resolution_m": PIXEL_PITCH_M * BINNED_SHAPE[1] / FULL_SHAPE[1],
            "focal_length_m": f.focal_length_m,
            "field_of_view_deg": [FOV_X_DEG, vertical_fov],
            "pixel_size_m": f.pixel_size_m,
            "image_shape": list(self.image_shape),
            "full_resolution": self.full_resolution,
            "coordinates": "binned 648x486 pixels, origin top-left pixel centre, x right, y down",
            "molar_mass_so2_g_mol": M_SO2,
            "avogadro_per_mol": N_A,
            "kg_m2_per_molec_cm2": KG_M2_PER_MOLEC_CM2,
            "plume_axis_xy": list(p.plume_axis_xy),
            "plume_sigma_px": p.plume_sigma_px,
            "puff_length_px": p.puff_length_px,
            "puff_balance": {"samples": p.puff_balance_samples, "periods": p.puff_balance_periods},
            "misregistration_px": {"dx": p.misregistration_px[0], "dy": p.misregistration_px[1],
                                   "rotation_deg": p.misregistration_rot_deg,
                                   "meaning": "off-band (B) pixel q shows the scene point R(rotation)(q - c) + c + "
                                              "(dx, dy) of the on-band (A) frame, c = (323.5, 242.5)"},
            "registration": self.registration(),
            "scene": self.style.name,
            "scene_style": self.style.describe(),
            "light_dilution": {"eps_on_per_m": self.style.extinction_on_per_m,
                               "eps_off_per_m": self.style.extinction_off_per_m,
                               "plume_distance_m": p.plume_distance_m,
                               "model": "I = I0*exp(-eps*d) + I_sky*(1 - exp(-eps*d)) per band"},
            "vent_xy": list(p.vent_xy) if p.vent_xy is not None else None,
            "spectrometer_fov": {"x": fov_x, "y": fov_y, "radius_px": p.fov_radius_px,
                                 "meaning": "disk of binned pixels whose centres are within radius_px"},
            "band_filters": {band: {"centre_nm": flt.centre_nm, "fwhm_nm": flt.fwhm_nm, "shape": "Gaussian"}
                             for band, flt in FILTERS.items()},
            "aa_definition": "AA = -ln T_on(S) + ln T_off(S); T_b = filter-weighted mean of exp(-sigma_SO2*S)",
            "aa_per_column": aa_small / 1e15,
            "column_per_aa_fit_0_2e18": slope,
            "aa_curve": self.aa_curve(),
            "cell_column_per_ppmm_molec_cm2": MOLEC_CM2_PER_PPMM,
            "cells": [{"ppmm": int(n), "column_molec_cm2": n * MOLEC_CM2_PER_PPMM,
                       "aa": float(aa_of_column(on, off, np.array([n * MOLEC_CM2_PER_PPMM]))[0])}
                      for n in cell_ppmm],
            "spectrometer": self.spectrometer().describe(),
            "cameras": {"A": self.camera("on").describe(), "B": self.camera("off").describe()},
            "plume_free_rows": plume_free,
            "pcs_lines": [{"name": line.name, "x0": line.x0, "y0": line.y0, "x1": line.x1, "y1": line.y1,
                           "orientation": line.orientation,
                           "normal_xy": [float(v) for v in line_normal(line)],
                           "normal_speed_m_s": p.wind_speed_m_s * float(np.dot(f.along, line_normal(line))),
                           "samples": int(line_samples(line)[0].size),
                           "sample_spacing_px": line_samples(line)[2]}
                          for line in lines],
            "pairs": pairs,
            "mean_flux_kg_s": mean_flux,
            "mean_fov_column_molec_cm2": float(np.mean([e["fov_column_molec_cm2"] for e in pairs])) if pairs else None,
        }
        if extra:
            truth.update(extra)
        return truth
