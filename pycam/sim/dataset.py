"""Write a complete synthetic PyCam data set from the simulated station (no network).

Layout of ``OUT`` (all files in PyCam formats; times are whole seconds UTC)::

    OUT/truth.json                 ground truth (schema "pycam-sim-truth/1", see below)
    OUT/Seq_1/                     plume pairs: <time>_fltrA_1ag_<exp>ss_Plume.png + <time>_fltrB_…
    OUT/Dark/                      darks (covered lens) for every (filter, exposure) used in
                                   Seq_1, Clear and Cal_1: <time>_fltrX_1ag_<exp>ss_Dark.png
    OUT/Clear/                     clear-sky (no plume) pairs at the plume exposures, taken
                                   before the sequence: …_Clear.png
    OUT/Cal_1/                     gas-cell calibration at one fixed exposure per filter:
                                   Dark, Clear, 0ppmm and <N>ppmm frames for both filters
    OUT/Spectra/                   <time>_<ms>ss_<n>coadd_{Plume,Dark,Clear}.npy (2x2048 float64),
                                   one Plume spectrum at each pair time
    OUT/cam_geom.txt               camera geometry (pycam.formats.geometry)
    OUT/pcs_line_0.txt, pcs_line_1.txt   two parallel lines perpendicular to the flow (line 1
                                   is downstream of line 0; use both for cross-correlation)
    OUT/doas_fov.txt               the spectrometer field of view (x_pos, y_pos, radius)
    OUT/process_config.yml         processing settings for ``pycam process --config`` (PyCam YAML
                                   keys): the scene's plume distance, the cell-fit order (2 clean,
                                   3 realistic: the cells bend), the line gap; realistic scenes also
                                   a sky ``ambient_roi`` and ``reg_mode: ecc`` (B is offset/rotated)
    OUT/dil_line_0.txt, dil_line_1.txt, OUT/light_dilution.json, flat_A.npy, flat_B.npy
                                   (scenes with terrain) two lines on dark terrain at known
                                   distances, {"lines": [{"file", "distance_m", "sky_roi"}],
                                   "plume_distance_m", "flat_fields": {"A", "B"}} and the sensors'
                                   flat fields (what a user calibrating dilution would have)

Scenes (``--scene``, :mod:`pycam.sim.landscape`): ``realistic`` (default), ``cloudy``, ``clean``
(the original uniform sky with a full-width plume band).  In the vent-plume scenes the PCS lines
lie in clear sky 280 px downstream of the vent and the truth's flux stays exact (see
:mod:`pycam.sim.plume`).

Exposures follow the auto-exposure of :mod:`pycam.drivers.exposure` (settled on pre-roll
frames, then updated after every frame, as a station does), so they normally stay constant.
Pairs are ``period = max(1, round(1/framerate))`` seconds apart.  The puff (mass) modulation
of the plume is periodic so that the N pairs span a whole number of its periods with no
aliased harmonic: the mean true flux over the N pairs equals the emission rate exactly (up
to the pixel-sum error, < 1e-4).

``truth.json`` keys: ``emission_rate_kg_s``, ``plume_speed_m_s``, ``plume_speed_px_s`` (binned
648x486 px; ``…_full_resolution`` too), ``wind_direction_deg``, ``flow_direction_xy``,
``plume_distance_m``, ``pixel_pitch_m``, ``focal_length_m``, ``pixel_size_m`` (Δx),
``spectrometer_fov`` {x, y, radius_px}, ``aa_per_column`` (small-column slope),
``column_per_aa_fit_0_2e18`` (S = slope·AA fit), ``aa_curve`` {column_molec_cm2, aa},
``cell_column_per_ppmm_molec_cm2``, ``cells`` [{ppmm, column_molec_cm2, aa}], ``pcs_lines``
[{name, x0, y0, x1, y1, orientation, normal_xy, normal_speed_m_s, samples, sample_spacing_px}],
``pairs`` [{time, posix_time, fov_column_molec_cm2, files {A, B, spectrum},
exposure_us {A, B}, lines {name: {flux_kg_s, mean_column_molec_cm2, ica_molec_cm2_m,
columns_molec_cm2 [...] (omitted with --compact-truth)}}}], ``mean_flux_kg_s`` {line: mean over pairs},
``mean_fov_column_molec_cm2``, ``plume_free_rows`` {top, bottom: [first, last] rows where
the column stays < 1e16}, ``spectrometer`` (forward-model constants: wavelength formula, ILS
super-Gaussian FWEM/k, O3, Ring, polynomial, dark, noise), ``cameras`` {A, B: sensor and
optics constants}, ``misregistration_px`` {dx, dy, rotation_deg}, ``registration``
{warp_a_to_b (2x3, OpenCV WARP_INVERSE_MAP convention), centre_xy, shift_px, rotation_deg},
``scene``, ``scene_style``, ``light_dilution`` {eps_on_per_m, eps_off_per_m, plume_distance_m},
``vent_xy``, ``reference_set``, ``dataset`` (layout, counts,
framerate, period, exposures, cal exposure, file lists).  Coordinates are binned 648x486
pixels (also for ``--full-resolution`` data; multiply by 4 for full-resolution pixels).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from pycam.drivers.sim import SimCamera, SimSpectrometer
from pycam.sim.plume import BINNED_SHAPE, PIXEL_PITCH_M, SceneParameters, focal_length_m
from pycam.sim.landscape import SCENES, scene_preset
from pycam.sim.scene import Scene, perpendicular_line
from pycam.formats.atomic import atomic_write, atomic_write_text
from pycam.formats.geometry import (CameraGeometry, DoasFov, PCSLine, write_camera_geometry, write_doas_fov,
                                   write_pcs_line)
from pycam.formats.images import write_image, write_spectrum_npy
from pycam.formats.names import ImageName, SpectrumName, format_time
from pycam.reference_spectra import reference_set_for
from pycam.drivers.exposure import next_camera_shutter, next_integration_time

DEFAULT_START = dt.datetime(2026, 3, 15, 12, 0, 0, tzinfo=dt.timezone.utc)
BANDS = ("on", "off")
PREROLL_FRAMES = 6


class DatasetError(ValueError):
    """Bad options for a simulated data set (the message names the option)."""


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    pairs: int = 20
    emission_rate_kg_s: float = 5.0
    wind_speed_m_s: float = 8.0
    wind_direction_deg: float | None = None   # None: the scene's (clean 0, realistic 8 degrees)
    plume_distance_m: float = 5000.0
    seed: int = 1
    framerate_hz: float = 0.25
    start: dt.datetime = DEFAULT_START
    full_resolution: bool = False
    reference_dir: Path | None = None
    noise: bool = True
    scene: str = "realistic"
    misregistration_px: tuple[float, float] | None = None   # None: the scene's (clean: none)
    misregistration_rot_deg: float | None = None             # None: the scene's
    extinction_on_per_m: float | None = None                 # None: the scene's light dilution
    extinction_off_per_m: float | None = None
    cells_ppmm: tuple[int, ...] = (304, 600, 1257)
    dark_frames: int = 2
    coadd: int = 1
    line_gap_px: float = 40.0
    line_columns: bool = True   # per-sample PCS-line columns in truth.json (large for long runs)

    def validate(self) -> None:
        checks = [
            (1 <= self.pairs <= 100_000, "--pairs must be between 1 and 100000"),
            (0 <= self.emission_rate_kg_s <= 1000, "--emission-rate must be between 0 and 1000 kg/s"),
            (0.1 <= self.wind_speed_m_s <= 100, "--wind-speed must be between 0.1 and 100 m/s"),
            (100 <= self.plume_distance_m <= 100_000, "--plume-distance must be between 100 and 100000 m"),
            (0 < self.framerate_hz <= 1, "--framerate must be > 0 and <= 1 Hz"),
            (0 <= self.seed < 2**31, "--seed must be between 0 and 2^31-1"),
            (len(self.cells_ppmm) >= 1 and all(0 < c <= 100_000 for c in self.cells_ppmm),
             "--cells must be positive ppm·m values"),
            (1 <= self.dark_frames <= 20, "--dark-frames must be between 1 and 20"),
            (1 <= self.coadd <= 20, "--coadd must be between 1 and 20"),
            (self.scene in SCENES, f"--scene must be one of {', '.join(SCENES)}"),
            (self.misregistration_px is None or all(abs(v) <= 80 for v in self.misregistration_px),
             "--misregistration must be within ±80 px"),
            (self.misregistration_rot_deg is None or abs(self.misregistration_rot_deg) <= 5,
             "--rotation must be within ±5 degrees"),
            (all(e is None or 0 <= e <= 1e-3 for e in (self.extinction_on_per_m, self.extinction_off_per_m)),
             "--extinction-on/--extinction-off must be between 0 and 1e-3 per m"),
            (5 <= self.line_gap_px <= 200, "--line-gap must be between 5 and 200 px"),
        ]
        for ok, message in checks:
            if not ok:
                raise DatasetError(message)

    @property
    def period_s(self) -> int:
        return max(1, int(round(1.0 / self.framerate_hz)))


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    out_dir: Path
    files: int
    pairs: int
    truth_path: Path
    exposures_us: dict[str, list[int]]
    integration_ms: int


def build_scene(options: DatasetOptions) -> Scene:
    """The scene for a data set: puffs periodic over the run (exact mean flux, see module doc)."""
    references = reference_set_for(options.reference_dir)
    _, preset = scene_preset(options.scene)
    values = {**preset, "seed": options.seed, "emission_rate_kg_s": options.emission_rate_kg_s,
              "wind_speed_m_s": options.wind_speed_m_s, "plume_distance_m": options.plume_distance_m}
    if options.wind_direction_deg is not None:
        values["wind_direction_deg"] = options.wind_direction_deg
    if options.misregistration_px is not None:
        values["misregistration_px"] = tuple(options.misregistration_px)
    if options.misregistration_rot_deg is not None:
        values["misregistration_rot_deg"] = options.misregistration_rot_deg
    probe = SceneParameters(**values)
    extra = {}
    if options.pairs >= 2:
        speed_px_s = options.wind_speed_m_s / (options.plume_distance_m * PIXEL_PITCH_M / focal_length_m())
        run_px = options.pairs * options.period_s * speed_px_s
        periods = max(1, int(round(run_px / probe.puff_length_px)))
        extra = {"puff_length_px": max(8.0, run_px / periods), "puff_balance_samples": options.pairs,
                 "puff_balance_periods": periods}
    params = dataclasses.replace(probe, **extra)
    return Scene.preset(options.scene, references, extinction=(options.extinction_on_per_m, options.extinction_off_per_m),
                        full_resolution=options.full_resolution, noise=options.noise,
                        **dataclasses.asdict(params))


def _settle_camera(cam: SimCamera, when: dt.datetime, period: int) -> None:
    limits = cam.limits
    for i in range(PREROLL_FRAMES):
        frame = cam.capture(when - dt.timedelta(seconds=period * (PREROLL_FRAMES - i)))
        d = next_camera_shutter(frame.pixels, frame.exposure_us, min_shutter_us=limits.min_shutter_us,
                                max_shutter_us=limits.max_shutter_us, max_dn=limits.max_dn)
        cam.set_exposure(d.value)


def _settle_spectrometer(spec: SimSpectrometer, when: dt.datetime, period: int, coadd: int) -> None:
    wl = spec.wavelengths()
    for i in range(PREROLL_FRAMES):
        s = spec.capture(when - dt.timedelta(seconds=period * (PREROLL_FRAMES - i)), coadd)
        d = next_integration_time(wl, s.counts, s.integration_ms)
        spec.set_integration_time(d.value)


def write_dataset(out_dir: str | Path, options: DatasetOptions,
                  progress: Callable[[str, int, int], None] | None = None) -> DatasetSummary:
    """Write the data set described in the module docstring; returns a summary."""
    options.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene = build_scene(options)
    cams = {band: SimCamera(None, band, scene=scene) for band in BANDS}
    for cam in cams.values():
        cam.open()
    spec = SimSpectrometer(None, scene=scene)
    spec.open()
    period = options.period_s
    start = options.start.astimezone(dt.timezone.utc).replace(microsecond=0)
    times = [start + dt.timedelta(seconds=period * i) for i in range(options.pairs)]
    files = 0
    report = progress or (lambda stage, done, total: None)

    def save_image(folder: str, when: dt.datetime, band: str, frame_type: str) -> str:
        nonlocal files
        cam = cams[band]
        frame = cam.capture(when, frame_type=frame_type)
        name = ImageName(when, band, int(round(frame.gain)), frame.exposure_us, frame_type).filename()
        write_image(out / folder / name, frame.pixels, fsync=False)
        files += 1
        return name

    def save_spectrum(when: dt.datetime, frame_type: str) -> str:
        nonlocal files
        s = spec.capture(when, options.coadd, frame_type=frame_type)
        name = SpectrumName(when, s.integration_ms, s.coadd, frame_type).filename()
        write_spectrum_npy(out / "Spectra" / name, s.wavelengths, s.counts, fsync=False)
        files += 1
        return name

    # --- plume sequence (auto-exposure on, as a station runs it) ---
    for cam in cams.values():
        _settle_camera(cam, start, period)
    _settle_spectrometer(spec, start, period, options.coadd)
    used: dict[str, set[int]] = {band: set() for band in BANDS}
    pair_records = []
    for i, when in enumerate(times):
        record = {"files": {}, "exposure_us": {}}
        for band, key in (("on", "A"), ("off", "B")):
            cam = cams[band]
            frame = cam.capture(when)
            name = ImageName(when, band, int(round(frame.gain)), frame.exposure_us, "Plume").filename()
            write_image(out / "Seq_1" / name, frame.pixels, fsync=False)
            files += 1
            used[band].add(frame.exposure_us)
            record["files"][key] = f"Seq_1/{name}"
            record["exposure_us"][key] = frame.exposure_us
            limits = cam.limits
            d = next_camera_shutter(frame.pixels, frame.exposure_us, min_shutter_us=limits.min_shutter_us,
                                    max_shutter_us=limits.max_shutter_us, max_dn=limits.max_dn)
            cam.set_exposure(d.value)
        record["files"]["spectrum"] = "Spectra/" + save_spectrum(when, "Plume")
        pair_records.append(record)
        report("pairs", i + 1, options.pairs)
    integration_ms = spec.integration_ms
    plume_exposure = {band: pair_records[0]["exposure_us"][key] for band, key in (("on", "A"), ("off", "B"))}

    # --- clear sky, before the sequence, at the first plume exposures ---
    clear_files = []
    for k in range(2):
        when = start - dt.timedelta(seconds=600 - 10 * k)
        for band in BANDS:
            cams[band].set_exposure(plume_exposure[band])
            clear_files.append("Clear/" + save_image("Clear", when, band, "Clear"))
    clear_spectrum = "Spectra/" + save_spectrum(start - dt.timedelta(seconds=600), "Clear")

    # --- gas-cell calibration: fixed exposure (the clear-sky exposure), Dark, Clear, cells ---
    cal_start = start - dt.timedelta(seconds=1800)
    cal_exposure = dict(plume_exposure)
    cal_files = []
    step = 0
    for frame_type in ["Dark", "Clear", "0ppmm"] + [f"{c}ppmm" for c in options.cells_ppmm]:
        for band in BANDS:
            cams[band].set_exposure(cal_exposure[band])
            when = cal_start + dt.timedelta(seconds=5 * step)
            step += 1
            cal_files.append("Cal_1/" + save_image("Cal_1", when, band, frame_type))
        report("calibration", step // 2, 3 + len(options.cells_ppmm))

    # --- darks for every exposure used (plume, clear and cal exposures) ---
    dark_start = times[-1] + dt.timedelta(seconds=120)
    dark_files = []
    step = 0
    for band in BANDS:
        for exposure in sorted(used[band] | {plume_exposure[band], cal_exposure[band]}):
            cams[band].set_exposure(exposure)
            for _ in range(options.dark_frames):
                when = dark_start + dt.timedelta(seconds=2 * step)
                step += 1
                dark_files.append("Dark/" + save_image("Dark", when, band, "Dark"))
    dark_spectrum = "Spectra/" + save_spectrum(dark_start, "Dark")
    report("darks", 1, 1)

    # --- geometry, lines, FOV, truth ---
    line0, line1 = pcs_lines(scene, options.line_gap_px)
    write_pcs_line(out / "pcs_line_0.txt", line0)
    write_pcs_line(out / "pcs_line_1.txt", line1)
    fov_x, fov_y = scene.field.fov_centre
    write_doas_fov(out / "doas_fov.txt", DoasFov(float(fov_x), float(fov_y), float(scene.params.fov_radius_px)))
    write_camera_geometry(out / "cam_geom.txt", CameraGeometry(
        volcano="Simulated", lat=-39.42, lon=-71.94, altitude=1500.0, elev=10.0, azim=90.0, alt_offset=1.5))
    files += 5
    dilution = write_dilution_lines(out, scene)
    files += len(dilution["lines"]) + len(dilution["flat_fields"]) + 1 if dilution else 0
    write_processing_settings(out / "process_config.yml", truth_distance_m=options.plume_distance_m,
                              line_gap_px=options.line_gap_px, scene=scene, cells=len(options.cells_ppmm))
    files += 1
    truth = scene.truth(times, [line0, line1], [0, *options.cells_ppmm], columns_per_pixel=options.line_columns)
    for entry, record in zip(truth["pairs"], pair_records):
        entry.update(record)
    truth["dataset"] = {
        "layout": {"plume": "Seq_1", "dark": "Dark", "clear": "Clear", "cell_calibration": "Cal_1",
                   "spectra": "Spectra", "pcs_lines": ["pcs_line_0.txt", "pcs_line_1.txt"],
                   "camera_geometry": "cam_geom.txt", "doas_fov": "doas_fov.txt",
                   "processing_settings": "process_config.yml",
                   "light_dilution": "light_dilution.json" if dilution else None},
        "pairs": options.pairs,
        "framerate_hz": options.framerate_hz,
        "period_s": period,
        "start": format_time(times[0]),
        "plume_exposures_us": {"A": sorted(used["on"]), "B": sorted(used["off"])},
        "calibration_exposure_us": {"A": cal_exposure["on"], "B": cal_exposure["off"]},
        "integration_ms": integration_ms,
        "coadd": options.coadd,
        "noise": options.noise,
        "dark_frames_per_exposure": options.dark_frames,
        "files": {"clear": clear_files, "calibration": cal_files, "dark": dark_files,
                  "clear_spectrum": clear_spectrum, "dark_spectrum": dark_spectrum},
        "camera_geometry_note": "cam_geom.txt is nominal; use plume_distance_m for the footprint",
    }
    truth_path = atomic_write_text(out / "truth.json", json.dumps(truth, indent=1, allow_nan=False) + "\n")
    files += 1
    return DatasetSummary(out, files, options.pairs, truth_path,
                          {"A": sorted(used["on"]), "B": sorted(used["off"])}, integration_ms)


def pcs_lines(scene: Scene, line_gap_px: float) -> tuple[PCSLine, PCSLine]:
    """Two PCS lines perpendicular to the flow, ``line_gap_px`` apart (line 1 downstream).

    Clean band: they span the image height round the frame centre.  Vent plume: 130 px either
    side of the axis, centred 280 px downstream of the vent (the plume is fully developed there,
    the lines lie in the sky above the terrain and below the clouds of the realistic scene)."""
    field = scene.field
    if scene.params.vent_xy is None:
        half, centre = BINNED_SHAPE[0] / 2 - 13, -40.0     # 13 px margin
    else:
        half, centre = 130.0, 280.0
    return (perpendicular_line(field, centre - 0.5 * line_gap_px, half, "0"),
            perpendicular_line(field, centre + 0.5 * line_gap_px, half, "1"))


def write_dilution_lines(out: Path, scene: Scene) -> dict | None:
    """``dil_line_0.txt``, ``dil_line_1.txt`` (horizontal lines on dark terrain at known distances)
    and ``light_dilution.json``; None for scenes without terrain."""
    terrain = scene.camera("on").terrain
    if terrain is None:
        return None
    lines = []
    for i, ((x0, y0, x1, y1), distance) in enumerate(terrain.dil_line_points()):
        name = f"dil_line_{i}.txt"
        write_pcs_line(out / name, PCSLine(x0, y0, x1, y1, "left", f"dil{i}"))
        lines.append({"file": name, "distance_m": distance, "sky_roi": list(terrain.sky_above(x0, x1))})
    flats = {}
    for band, key in (("on", "A"), ("off", "B")):
        flat = scene.camera(band).flat.astype(np.float64)
        flats[key] = f"flat_{key}.npy"
        atomic_write(out / flats[key], lambda fh, a=flat / flat.max(): np.save(fh, a, allow_pickle=False))
    info = {"lines": lines, "plume_distance_m": scene.params.plume_distance_m, "flat_fields": flats,
            "note": "lines lie on dark terrain (camera A pixels); distance_m camera->terrain; sky_roi "
                    "[x0, y0, x1, y1] is sky just above the terrain over the same columns (the ambient "
                    "radiance); flat_fields are the sensors' relative responses (vignetting, dust, "
                    "banding; max 1) as a lab flat field gives them, in each camera's own pixels"}
    atomic_write_text(out / "light_dilution.json", json.dumps(info, indent=1) + "\n")
    return info


#: the sky region (x0, y0, x1, y1) a user would take as the background reference in the
#: realistic scenes: left of the vent, below the clouds, above the terrain, no plume
REALISTIC_AMBIENT_ROI = (12, 120, 72, 180)


def write_processing_settings(path: Path, *, truth_distance_m: float, line_gap_px: float,
                              scene: Scene | None = None, cells: int = 3) -> Path:
    """Processing settings matching the scene, in PyCam's YAML key names (what a user who knows
    the station would set; the flow and background methods stay at their defaults)."""
    bent = scene is not None and scene.style.on_band_saturating[0] > 0
    order = max(1, min(3, cells)) if bent else 2
    text = (
        "# Processing settings for this simulated data set (pycam process --config ...).\n"
        "# The simulated cameras see the plume at a fixed distance; the cell calibration AA\n"
        + ("# bends strongly (as real cells do), so a 3rd-order polynomial through the cells is fitted.\n"
           if bent else "# curves at high columns, so a 2nd-order polynomial is fitted.\n")
        + f"plume_distance_m: {truth_distance_m!r}\n"
        f"polyorder_cal: {order}\n"
        f"cross_corr_gap_px: {float(line_gap_px)!r}\n"
    )
    if scene is not None and scene.style.terrain:
        text += ("# sky reference region: clear sky left of the volcano, below the clouds\n"
                 f"ambient_roi: {list(REALISTIC_AMBIENT_ROI)}\n")
    if scene is not None and (scene.params.misregistration_px != (0.0, 0.0) or scene.params.misregistration_rot_deg):
        text += ("# the off-band camera is offset and rotated against the on-band one: register B onto A\n"
                 "# with ECC on the clear-sky images\n"
                 "reg_mode: ecc\n")
    return atomic_write_text(path, text)


def flux_check(truth: dict) -> dict[str, float]:
    """Relative deviation of each line's mean true flux from the emission rate (diagnostic)."""
    rate = truth["emission_rate_kg_s"]
    if rate == 0 or math.isclose(rate, 0.0):
        return {k: float("nan") for k in truth["mean_flux_kg_s"]}
    return {k: float(np.float64(v) / rate - 1.0) for k, v in truth["mean_flux_kg_s"].items()}
