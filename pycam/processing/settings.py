"""Processing settings: one validated YAML (or TOML) file, PyCam key names accepted.

The keys are those of PyCam's ``processing_setting_defaults.yml`` (``bg_mode``, ``ambient_roi``,
``min_cd``, ``cal_type_int``, ``pyr_scale`` ...), plus a few of our own for things PyCam
hard-codes (geometry, flow crop, error budget).  Every key is declared in :data:`SETTINGS_SCHEMA`
with its type and range; :func:`load_settings` validates the whole file and raises
:class:`SettingsError` naming the key.  PyCam keys that belong to other parts of the system
(paths, DOAS fit windows) are accepted and kept in the snapshot; unknown keys
are an error (so a typo never silently falls back to a default).

Defaults that differ from PyCam, and why:

* ``cal_type_int`` defaults to 0 (gas cells): PyCam's default 1 (DOAS) needs spectra.
* ``bg_mode`` defaults to 1 (clear-sky image scaled on ``ambient_roi``, pyplis mode 1);
  PyCam's 7 (``ln(mean(ROI)/I)``) is available.  Without clear-sky images the chain falls
  back to mode 7 with a warning.
* ``iterations`` defaults to 5 (pyplis); PyCam ships 4.
* ``cell_cal_style`` defaults to ``disk`` (see conf/processing.example.yml for why); PyCam's
  full-frame, slope-only application is ``pycam``.
* ``flow_contrast`` ``auto`` is measured on the plume round the PCS lines (robust); pyplis's
  whole-frame min/max is ``frame``.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Mapping

from pycam.formats.sensors import DEFAULT_SENSOR, PROFILES, sensor_profile
from pycam.formats.atomic import atomic_write_text
from pycam.processing.flow_analysis import HIST_METHODS

#: The documented conversion of gas-cell amounts: molecules cm^-2 per ppm*m at 0 degC, 1 atm.
PPMM_TO_MOLEC_CM2 = 2.687e15
#: SO2 molar mass, g/mol.
MOLAR_MASS_SO2 = 64.066
#: Avogadro constant, 1/mol (exact, SI 2019).
AVOGADRO = 6.02214076e23

VELOCITY_MODES = ("flow_raw", "flow_histo", "flow_hybrid", "flow_glob", "flow_nadeau")

class SettingsError(ValueError):
    """A processing settings file is unreadable or holds a bad value (the message names the key)."""

@dataclasses.dataclass(frozen=True)
class Setting:
    kind: str            # "int", "float", "bool", "str", "path", "roi", "optroi", "floatlist", "any", "optfloat"
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

def _s(kind, default, minimum=None, maximum=None, choices=None, doc=""):
    return Setting(kind, default, minimum, maximum, choices, doc)

#: key -> Setting.  Keys marked "(PyCam)" keep PyCam's name and meaning.
SETTINGS_SCHEMA: dict[str, Setting] = {
    # --- inputs (PyCam) ---
    "img_dir": _s("path", None, doc="(PyCam) image directory"),
    "dark_img_dir": _s("path", None, doc="(PyCam) directory with Dark images (default: img_dir)"),
    "spec_dir": _s("path", None, doc="(PyCam) spectra directory (used by the DOAS part)"),
    "cell_cal_dir": _s("path", None, doc="(PyCam) Cal_N directory for the gas-cell calibration"),
    "bg_A_path": _s("path", None, doc="(PyCam) on-band clear-sky image"),
    "bg_B_path": _s("path", None, doc="(PyCam) off-band clear-sky image"),
    "cal_series_path": _s("path", None, doc="(PyCam) preloaded full_calibration.csv (cal_type_int 3)"),
    # --- calibration (PyCam) ---
    "cal_type_int": _s("int", 0, choices=(0, 1, 2, 3),
                       doc="(PyCam) 0 cell, 1 DOAS, 2 cell+DOAS, 3 preloaded CSV"),
    "polyorder_cal": _s("int", 1, 1, 5, doc="(PyCam) order of the gas-cell calibration polynomial"),
    "doas_cal_order": _s("int", 2, 1, 3, doc="order of the DOAS (AA -> column) calibration polynomial"),
    "doas_cal_through_origin": _s("bool", True,
                                  doc="DOAS calibration without a constant term (AA 0 is column 0)"),
    "cell_cal_style": _s("str", "disk", choices=("disk", "pycam"),
                         doc="gas-cell calibration: 'disk' (ours: fit on a central disk, sensitivity mask, "
                             "intercept applied) or 'pycam' (fit on the full frame, only the slope applied, "
                             "no mask)"),
    "doas_fov_recal_mins": _s("optfloat", 30.0, 0.0, 1e6,
                              doc="(PyCam) refit the DOAS calibration this often, minutes (null: never)"),
    "remove_doas_mins": _s("optfloat", 30.0, 0.0, 1e6,
                           doc="(PyCam) drop DOAS calibration samples older than this, minutes (null: keep)"),
    "max_doas_cam_dif": _s("float", 2.0, 0.0, 3600.0, doc="(PyCam) largest DOAS-camera time difference, s"),
    "fix_fov": _s("bool", False, doc="(PyCam) use a fixed DOAS FOV"),
    "fov_rad": _s("float", 1.0, 0.0, 90.0, doc="(PyCam) DOAS FOV radius, degrees"),
    "min_num_imgs": _s("int", 15, 2, 100000, doc="(PyCam) images needed before a DOAS FOV search"),
    # --- background (PyCam) ---
    "bg_mode": _s("int", 1, choices=(0, 1, 7, 99),
                  doc="(PyCam/pyplis) 0 poly surface on plume-free pixels, 1 scaled clear-sky image, "
                      "7 ln(mean(ambient_roi)/I), 99 clear-sky image unscaled"),
    "ambient_roi": _s("roi", [0, 0, 60, 60], doc="(PyCam) sky region [x0, y0, x1, y1] forced to tau=0"),
    "ref_check_mode": _s("bool", True, doc="(PyCam) skip images whose ambient-ROI column is out of bounds"),
    "ref_check_lower": _s("float", -9e16, doc="(PyCam) lower bound of the ambient-ROI column, molec/cm2"),
    "ref_check_upper": _s("float", 5e16, doc="(PyCam) upper bound of the ambient-ROI column, molec/cm2"),
    "surface_fit_polyorder": _s("int", 2, 0, 5, doc="bg_mode 0: order of the 2-D polynomial"),
    "surface_fit_rois": _s("any", None,
                           doc="bg_mode 0: list of plume-free rectangles [x0,y0,x1,y1]; default: a frame "
                               "of width 8 % round the image"),
    "use_vign_corr": _s("bool", True, doc="divide by the vignetting V=Clear/max(Clear) (needs clear images)"),
    # --- emission rates (PyCam) ---
    "min_cd": _s("float", 5e16, -1e20, 1e20, doc="(PyCam) pixels below this column are ignored, molec/cm2 (on frames finer than 648 px wide, tested on the mean column of one 648-px pixel)"),
    "img_buff_size": _s("int", 1500, 2, 1_000_000, doc="(PyCam) images kept for cross-correlation"),
    "flow_raw": _s("bool", True, doc="(PyCam) raw optical-flow velocities"),
    "flow_histo": _s("bool", True, doc="(PyCam) histogram-analysis velocity"),
    "flow_hybrid": _s("bool", True, doc="(PyCam) hybrid flow (ill-constrained vectors replaced)"),
    "flow_glob": _s("bool", True, doc="(PyCam) global velocity from cross-correlation"),
    "flow_nadeau": _s("bool", False, doc="(PyCam) Nadeau velocity (not implemented: must stay false)"),
    "primary_mode": _s("str", "flow_hybrid", choices=VELOCITY_MODES[:4],
                       doc="mode whose rates PairResult.emission_rates reports"),
    # --- optical flow (PyCam / pyplis) ---
    "pyr_scale": _s("float", 0.5, 0.1, 0.9),
    "levels": _s("int", 4, 1, 10),
    "winsize": _s("int", 20, 3, 200),
    "iterations": _s("int", 5, 1, 100),
    "poly_n": _s("int", 5, 3, 11),
    "poly_sigma": _s("float", 1.1, 0.1, 5.0),
    "min_count_frac": _s("float", 0.1, 0.0, 1.0, doc="(PyCam) least fraction of accepted vectors"),
    "hist_dir_binres": _s("float", 10.0, 1.0, 90.0, doc="(PyCam) orientation histogram bin, degrees"),
    "hist_sigma_tol": _s("float", 2.0, 0.5, 10.0, doc="vectors within mu +- tol*sigma are accepted"),
    "flow_hist_method": _s("str", "peak", choices=HIST_METHODS,
                           doc="flow histogram analysis: 'peak' (the main orientation peak, column-weighted "
                               "lengths; rejects a field with a second motion), 'moments' (pyplis's "
                               "dir_multi_gauss=False: moments of all orientations) or 'moments_binned' "
                               "(the same on the histogram bins, pyplis's numbers exactly)"),
    "min_flow_length": _s("float", 1.0, 0.0, 100.0, doc="shortest flow vector counted, px (on frames wider than 648 px: px of the 648-px frame, x4 on 2592x1944)"),
    "flow_contrast": _s("any", "auto",
                        doc="uint8 bytescale range fed to Farneback: 'auto' (robust, from the plume round the "
                            "PCS lines or roi_abs), 'frame' (min/max of the whole first image, pyplis) or "
                            "[aa_min, aa_max]"),
    "roi_abs": _s("optroi", None,
                  doc="(PyCam) flow ROI [x0, y0, x1, y1] (648x486 px) the auto contrast range is measured "
                      "in; null: a band round the PCS lines"),
    "flow_roi_margin": _s("int", 24, 0, 1000, doc="margin round the PCS samples that need flow (plume body), px"),
    "flow_crop_to_plume": _s("bool", True,
                             doc="restrict the flow box to PCS samples with column >= min_cd (plus margin)"),
    "flow_coarse_init": _s("bool", True,
                           doc="coarse 1/4-size flow as the initial flow of a run on the small plume box "
                               "(faster; see pycam.processing.flow)"),
    "flow_full_frame": _s("bool", False, doc="compute flow on the whole frame (pyplis behaviour, slow)"),
    "optflow_err_rel_veff": _s("float", 0.15, 0.0, 10.0, doc="relative error of flow velocities"),
    # --- quality flags (pycam.processing.quality) ---
    "flag_min_snr": _s("float", 3.0, 0.0, 1000.0,
                       doc="LOW_CONTRAST when the plume stands less than this many sky-noise sigmas out"),
    "flag_min_grey_levels": _s("float", 8.0, 0.0, 255.0,
                               doc="LOW_CONTRAST when the plume spans fewer grey levels in the flow input"),
    "flag_min_flow_px": _s("float", 0.2, 0.0, 100.0,
                           doc="FLOW_NEAR_ZERO when the median flow on the plume is below this, px per image (on frames wider than 648 px: px of the 648-px frame)"),
    "flag_min_vector_frac": _s("float", 0.3, 0.0, 1.0,
                               doc="FEW_VECTORS when fewer plume samples of a line carry a usable vector"),
    "flag_bg_cloud_cd": _s("float", 5e16, 0.0, 1e20,
                           doc="BG_CLOUD when the column in ambient_roi (8x8 px block means) varies about a "
                               "plane by more than this (std), molec/cm2"),
    "flag_xcorr_min_r": _s("float", 0.5, -1.0, 1.0, doc="XCORR_WEAK below this correlation"),
    "cal_max_age_mins": _s("optfloat", 120.0, 0.0, 1e7,
                           doc="CAL_STALE when the calibration fit is further than this from the image, "
                               "before or after (null: never)"),
    "flag_min_cal_r2": _s("float", 0.5, -1e6, 1.0, doc="DOAS_FLAGGED when the DOAS fit r^2 is below this"),
    "flagged_warn_frac": _s("float", 0.2, 0.0, 1.0,
                            doc="pycam process warns when more than this fraction of samples is flagged"),
    # --- cross-correlation (PyCam) ---
    "cross_corr_recal": _s("float", 30.0, 0.01, 1e6, doc="(PyCam) recompute the velocity every N minutes"),
    "cross_corr_gap_px": _s("float", 40.0, 2.0, 1000.0,
                            doc="cross-correlation: ICA on lines at -G..G px (G = this, in 648-px-wide units) "
                                "along each PCS line's normal; also the largest shift searched per frame lag"),
    "cross_corr_min_pairs": _s("int", 10, 3, 1_000_000, doc="pairs needed for a cross-correlation"),
    # --- errors ---
    "cd_err_rel": _s("float", 0.2, 0.0, 10.0, doc="relative column error when the calibration gives none"),
    "dist_err_rel": _s("float", 0.1, 0.0, 10.0, doc="relative error of plume distance / pixel footprint"),
    # --- geometry ---
    "pix_size_m": _s("float", 5.6e-6, 1e-7, 1e-3, doc="pixel pitch (binned 648x486: 5.6e-6 m)"),
    "sensor": _s("str", "ov5647", choices=tuple(PROFILES),
                 doc="camera sensor (pycam.formats.sensors): ov5647 uses pix_size_m as PyCam does; imx477 and "
                     "imx296 take the pixel pitch and the sensor width for fov_x_deg from their profile"),
    "focal_length_m": _s("optfloat", None, 1e-4, 1.0, doc="focal length; null: from fov_x_deg"),
    "fov_x_deg": _s("float", 28.0, 1.0, 170.0, doc="horizontal field of view, degrees"),
    "plume_distance_m": _s("optfloat", None, 1.0, 1e6,
                           doc="fixed plume distance; null: from the geometry file and source position"),
    "source_lat": _s("optfloat", None, -90.0, 90.0, doc="source (vent) latitude"),
    "source_lon": _s("optfloat", None, -180.0, 360.0, doc="source longitude"),
    "source_alt": _s("optfloat", None, -500.0, 9000.0, doc="source altitude, m a.s.l."),
    "plume_dir_deg": _s("optfloat", None, 0.0, 360.0,
                        doc="plume direction (deg from N); null: plume plane normal to the viewing azimuth"),
    # --- pairing, corrections ---
    "pair_tolerance_s": _s("float", 0.0, 0.0, 60.0, doc="largest A/B time difference paired"),
    "dark_sig_figs": _s("int", 2, 1, 8, doc="exposures equal to this many significant figures share darks"),
    "reg_mode": _s("str", "none", choices=("none", "ecc", "file"),
                   doc="register B onto A: none, ECC on the first pair (or clear images), or image_reg_path"),
    "image_reg_path": _s("path", None, doc="saved 2x3 warp matrix (.npy) for reg_mode 'file'"),
    # --- outputs ---
    "save_images": _s("bool", False, doc="write calibrated SO2 (or AA) images"),
    "save_formats": _s("any", ["npy"], doc="image formats: any of npy, fts"),
    "workers": _s("int", 2, 1, 64, doc="threads for optical flow in batch runs"),
    # --- accepted PyCam keys that other parts use (kept in the snapshot) ---
    "start_stray_wave": _s("float", 293.0), "end_stray_wave": _s("float", 296.0),
    "start_fit_wave": _s("float", 308.0), "end_fit_wave": _s("float", 318.0),
    "start_fit_wave_ld": _s("float", 312.0), "end_fit_wave_ld": _s("float", 322.0),
    "use_light_dilution": _s("bool", False, doc="(PyCam) camera light-dilution correction (see "
                                                "pycam.processing.light_dilution)"),
    "tau_thresh": _s("float", 0.01, 0.0, 10.0, doc="(PyCam) light dilution: correct pixels with tau above this"),
    "dil_distances_m": _s("any", None, doc="light dilution: distance (m) of each dil_lines line, or [start, end] "
                                          "along it (not needed with a light_dilution.json)"),
    "dil_extinction_per_m": _s("any", None, doc="light dilution: fixed [eps_on, eps_off] in 1/m instead of "
                                               "fitting them on the dilution lines"),
    "use_light_dilution_spec": _s("bool", False, doc="(PyCam) spectrometer two-waveband light dilution; accepted "
                                                    "and kept: here the station's [doas] section (or pycam doas "
                                                    "--light-dilution) applies it to the spectra"),
    "spec_recal_time": _s("float", 0.0, 0.0, 10_000.0, doc="(PyCam) minutes the spectrometer dilution factor is "
                                                          "held; see [doas] spec_recal_time"),
    "LDF": _s("float", 0.0, 0.0, 1.0, doc="(PyCam) fixed spectrometer light-dilution factor; accepted and kept"),
    "grid_max_ppmm": _s("float", 5000.0),
    "grid_increment_ppmm": _s("float", 20.0), "ld_lookup_1": _s("path", None), "ld_lookup_2": _s("path", None),
    "dark_spec_dir": _s("path", None), "ILS_path": _s("path", None), "default_cam_geom": _s("path", None),
    "pcs_lines": _s("any", None, doc="(PyCam) list of PCS line files"),
    "dil_lines": _s("any", None, doc="(PyCam) light dilution: line files on dark terrain, or a "
                                     "light_dilution.json"), "cross_corr_lines": _s("any", None),
    "save_img_aa": _s("bool", False), "save_img_cal": _s("bool", False), "save_img_so2": _s("bool", False),
    "save_doas_cal": _s("bool", False), "bg_A": _s("any", None), "bg_B": _s("any", None),
}

def _check_roi(key: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise SettingsError(f"{key} = {value!r}: must be a list [x0, y0, x1, y1]")
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        raise SettingsError(f"{key} = {value!r}: must hold four integers") from None
    if any(isinstance(v, bool) for v in value) or out != [float(v) for v in value]:
        raise SettingsError(f"{key} = {value!r}: must hold four integers")
    if out[2] <= out[0] or out[3] <= out[1] or min(out) < 0:
        raise SettingsError(f"{key} = {value!r}: need 0 <= x0 < x1 and 0 <= y0 < y1")
    return out

def _coerce(key: str, spec: Setting, raw: Any, base_dir: Path | None) -> Any:
    kind = spec.kind
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw in ("True", "False", "1", "0", "true", "false"):
            return raw in ("True", "1", "true")
        raise SettingsError(f"{key} = {raw!r}: must be true/false (or 1/0)")
    if kind == "optfloat" and (raw is None or raw is False or raw == "None"):
        return None
    if kind in ("int", "float", "optfloat"):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            if isinstance(raw, str):
                try:
                    raw = float(raw) if kind != "int" else int(raw)
                except ValueError:
                    raise SettingsError(f"{key} = {raw!r}: must be a number") from None
            else:
                raise SettingsError(f"{key} = {raw!r}: must be a number")
        if kind == "int":
            if float(raw) != int(raw):
                raise SettingsError(f"{key} = {raw!r}: must be a whole number")
            value: Any = int(raw)
        else:
            value = float(raw)
            if not math.isfinite(value):
                raise SettingsError(f"{key} = {raw!r}: must be finite")
        if spec.minimum is not None and value < spec.minimum:
            raise SettingsError(f"{key} = {value!r}: below the minimum {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise SettingsError(f"{key} = {value!r}: above the maximum {spec.maximum}")
    elif kind == "str":
        if not isinstance(raw, str):
            raise SettingsError(f"{key} = {raw!r}: must be a string")
        value = raw
    elif kind == "path":
        if raw is None or raw == "" or raw == "None":
            return None
        if not isinstance(raw, (str, os.PathLike)):
            raise SettingsError(f"{key} = {raw!r}: must be a path")
        p = Path(raw).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return p
    elif kind == "roi":
        value = _check_roi(key, raw)
    elif kind == "optroi":
        if raw is None or raw == "None":
            return None
        value = _check_roi(key, raw)
    else:
        value = raw
    if spec.choices is not None and value not in spec.choices:
        raise SettingsError(f"{key} = {value!r}: must be one of {', '.join(map(repr, spec.choices))}")
    return value

def _cross_checks(values: dict[str, Any]) -> None:
    if values["flow_nadeau"]:
        raise SettingsError("flow_nadeau = true: the Nadeau velocity mode is not implemented; set it false")
    if values["use_light_dilution"] and not values["dil_lines"] and values["dil_extinction_per_m"] is None:
        raise SettingsError("use_light_dilution = true needs dil_lines (line files or light_dilution.json) "
                            "or dil_extinction_per_m")
    ext = values["dil_extinction_per_m"]
    if ext is not None and (not isinstance(ext, (list, tuple)) or len(ext) != 2
                            or not all(isinstance(v, (int, float)) and 0 <= v <= 1e-3 for v in ext)):
        raise SettingsError(f"dil_extinction_per_m = {ext!r}: must be [eps_on, eps_off], each in 0..1e-3 1/m")
    dist = values["dil_distances_m"]
    def _positive(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

    if dist is not None and (not isinstance(dist, (list, tuple)) or not all(
            _positive(v) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_positive, v))) for v in dist)):
        raise SettingsError(f"dil_distances_m = {dist!r}: must list, per dilution line, a distance in m or "
                            "[start, end] along the line")
    if values["ref_check_lower"] >= values["ref_check_upper"]:
        raise SettingsError("ref_check_lower must be below ref_check_upper")
    contrast = values["flow_contrast"]
    if contrast not in ("auto", "frame"):
        if (not isinstance(contrast, (list, tuple)) or len(contrast) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in contrast)
                or not contrast[0] < contrast[1]):
            raise SettingsError(f"flow_contrast = {contrast!r}: must be 'auto', 'frame' or [aa_min, aa_max] "
                                "with aa_min < aa_max")
        values["flow_contrast"] = [float(contrast[0]), float(contrast[1])]
    formats = values["save_formats"]
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, (list, tuple)) or not set(formats) <= {"npy", "fts"}:
        raise SettingsError(f"save_formats = {values['save_formats']!r}: must be a list of 'npy' and/or 'fts'")
    values["save_formats"] = list(formats)
    rois = values["surface_fit_rois"]
    if rois is not None:
        if not isinstance(rois, (list, tuple)) or not rois:
            raise SettingsError("surface_fit_rois: must be a list of [x0, y0, x1, y1] rectangles")
        values["surface_fit_rois"] = [_check_roi(f"surface_fit_rois[{i}]", r) for i, r in enumerate(rois)]
    if values["poly_n"] not in (5, 7):
        raise SettingsError(f"poly_n = {values['poly_n']}: OpenCV Farneback supports 5 or 7")
    if values["reg_mode"] == "file" and values["image_reg_path"] is None:
        raise SettingsError("reg_mode = 'file' needs image_reg_path")
    if values["cal_type_int"] == 3 and values["cal_series_path"] is None:
        pass  # the CLI may provide it later; checked where the calibration is built

@dataclasses.dataclass(frozen=True)
class ProcessingSettings:
    """Validated processing settings; read values as attributes or ``settings["min_cd"]``."""

    values: Mapping[str, Any]
    source: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def sensor_width_m(self) -> float:
        """Width of the sensor area the images span: ``648 * pix_size_m`` for PyCam's OV5647 (so
        a changed ``pix_size_m`` keeps its meaning), the profile's otherwise."""
        if self.values["sensor"] == DEFAULT_SENSOR:
            return 648 * float(self.values["pix_size_m"])
        return sensor_profile(self.values["sensor"]).sensor_width_m

    @property
    def focal_length(self) -> float:
        """Focal length in m: ``focal_length_m`` or from ``fov_x_deg`` over the sensor's width."""
        if self.values["focal_length_m"] is not None:
            return float(self.values["focal_length_m"])
        if self.values["sensor"] == DEFAULT_SENSOR:
            width = 648 * 5.6e-6  # PyCam: the binned OV5647; the FOV does not depend on binning
        else:
            width = sensor_profile(self.values["sensor"]).sensor_width_m
        return width / 2.0 / math.tan(math.radians(self.values["fov_x_deg"]) / 2.0)

    @property
    def velocity_modes(self) -> tuple[str, ...]:
        return tuple(m for m in VELOCITY_MODES[:4] if self.values[m])

    def replace(self, **changes: Any) -> "ProcessingSettings":
        merged = dict(self.values)
        merged.update(changes)
        return settings_from_mapping(merged, source=self.source)

    def to_yaml(self) -> str:
        import yaml

        plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.values.items()}
        return "# PyCam processing settings (snapshot of the values used)\n" + yaml.safe_dump(
            plain, sort_keys=True, default_flow_style=None)

def settings_from_mapping(raw: Mapping[str, Any] | None, *, source: Path | None = None,
                          base_dir: Path | None = None) -> ProcessingSettings:
    """Validate ``raw`` (keys from :data:`SETTINGS_SCHEMA`; missing keys take their defaults)."""
    raw = dict(raw or {})
    unknown = sorted(k for k in raw if k not in SETTINGS_SCHEMA)
    if unknown:
        where = f"{source}: " if source else ""
        raise SettingsError(f"{where}unknown key(s) {', '.join(unknown)} (see pycam.processing.settings)")
    values: dict[str, Any] = {}
    for key, spec in SETTINGS_SCHEMA.items():
        if key in raw:
            try:
                values[key] = _coerce(key, spec, raw[key], base_dir)
            except SettingsError as exc:
                raise SettingsError(f"{source}: {exc}" if source else str(exc)) from None
        else:
            values[key] = list(spec.default) if isinstance(spec.default, list) else spec.default
    try:
        _cross_checks(values)
    except SettingsError as exc:
        raise SettingsError(f"{source}: {exc}" if source else str(exc)) from None
    return ProcessingSettings(values, source)

def default_settings(**overrides: Any) -> ProcessingSettings:
    return settings_from_mapping(overrides)

def load_settings(path: str | os.PathLike[str] | None) -> ProcessingSettings:
    """Read and validate a ``.yml``/``.yaml`` (PyCam style) or ``.toml`` settings file."""
    if path is None:
        return default_settings()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{p}: cannot read settings: {exc}") from None
    if p.suffix.lower() == ".toml":
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{p}: not valid TOML: {exc}") from None
        raw = raw.get("processing", raw)
    else:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SettingsError(f"{p}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{p}: expected a mapping of key: value")
    return settings_from_mapping(raw, source=p, base_dir=p.parent)

def write_settings_snapshot(path: str | os.PathLike[str], settings: ProcessingSettings) -> Path:
    return atomic_write_text(path, settings.to_yaml())
