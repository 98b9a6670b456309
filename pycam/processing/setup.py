"""Assemble a batch run from directories and files (used by ``pycam process``).

Inputs and where they come from:

* darks: ``Dark`` frames of the image directory, the dark directory (``--dark-dir`` or
  ``dark_img_dir``) and the calibration directory, all together (matched by exposure);
* clear sky (background and vignetting): ``bg_A_path``/``bg_B_path``, else ``Clear`` frames in
  the clear directory (``--clear-dir``), else the image directory, else the calibration
  directory;
* calibration by ``cal_type_int``: 0 cells (``--cal-dir`` or ``cell_cal_dir``); 1 DOAS and
  2 cells + DOAS from a DOAS results CSV (``Time,Column density,CD error``): the first
  ``doas_pairs`` image pairs are turned into AA, handed to the FOV search the caller passes
  (``pycam.doas.fov.calibrate_fov``), and the matched series to :class:`DoasCalibration`; 3 preloaded
  ``full_calibration.csv`` (``cal_series_path``);
* registration: ``reg_mode`` none / ``file`` (``image_reg_path``) / ``ecc`` (on the clear
  images, else the first pair).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pycam.formats.geometry import CameraGeometry, PCSLine, read_camera_geometry, read_pcs_line
from pycam.formats.images import ImageFileError
from pycam.processing.absorbance import AbsorbanceModel, ClearSky
from pycam.processing.archive import FilePair, read_pair, read_record, scan_directory
from pycam.processing.cell_calibration import CalibrationError, CellCalibration, calibrate_cells
from pycam.processing.corrections import DarkLibrary, estimate_registration, load_warp, subtract_dark
from pycam.processing.doas_calibration import DoasCalibration, PreloadedCalibration, SensitivityCorrected
from pycam.processing.settings import ProcessingSettings

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunInputs:
    settings: ProcessingSettings
    darks: DarkLibrary
    clear: ClearSky | None
    calibration: object | None
    pcs_lines: list[PCSLine]
    camera: CameraGeometry | None
    warp: np.ndarray | None
    cell_calibration: CellCalibration | None = None
    doas_calibration: DoasCalibration | None = None
    problems: list[str] = dataclasses.field(default_factory=list)


def _mean_clear(records, band: str, darks: DarkLibrary, problems: list[str]) -> np.ndarray | None:
    total, n = None, 0
    for r in records:
        if r.frame_type != "Clear" or r.band != band:
            continue
        try:
            img = subtract_dark(read_record(r), darks.get(band, r.exposure_us)).astype(np.float64)
        except ImageFileError as exc:
            problems.append(str(exc))
            continue
        total = img if total is None else total + img
        n += 1
    return None if total is None else (total / n).astype(np.float32)


def load_clear(settings: ProcessingSettings, darks: DarkLibrary, record_sets: Sequence, problems: list[str]
               ) -> ClearSky | None:
    from pycam.formats.images import read_image
    from pycam.formats.names import ImageName

    if settings["bg_A_path"] is not None or settings["bg_B_path"] is not None:
        if settings["bg_A_path"] is None or settings["bg_B_path"] is None:
            raise ValueError("bg_A_path and bg_B_path must be given together")
        imgs = []
        for band, key in (("on", "bg_A_path"), ("off", "bg_B_path")):
            p = Path(settings[key])
            try:
                exposure = ImageName.parse(p.name).exposure_us
            except ValueError:
                exposure = 0
            imgs.append(subtract_dark(read_image(p), darks.get(band, exposure)))
        return ClearSky(*imgs)
    for records in record_sets:
        on = _mean_clear(records, "on", darks, problems)
        off = _mean_clear(records, "off", darks, problems)
        if on is not None and off is not None:
            return ClearSky(on, off)
    return None


def read_pcs_files(files: Sequence[os.PathLike | str]) -> list[PCSLine]:
    lines = []
    for i, f in enumerate(files):
        line = read_pcs_line(f)
        lines.append(dataclasses.replace(line, name=str(i)))
    return lines


def prepare_run(img_dir: str | os.PathLike[str], settings: ProcessingSettings, *,
                cal_dir: str | os.PathLike[str] | None = None, geometry_file: str | os.PathLike[str] | None = None,
                pcs_files: Sequence = (), doas_results: str | os.PathLike[str] | None = None,
                pairs: Sequence[FilePair] = (), doas_pairs: int = 120,
                dark_dir: str | os.PathLike[str] | None = None, clear_dir: str | os.PathLike[str] | None = None,
                fov_search=None) -> RunInputs:
    """Everything a :class:`~pycam.processing.chain.ProcessingChain` needs (see the module docstring)."""
    problems: list[str] = []
    img_dir = Path(img_dir)
    cal_dir = Path(cal_dir) if cal_dir is not None else settings["cell_cal_dir"]
    img_records = scan_directory(img_dir)
    dark_dir = dark_dir if dark_dir is not None else settings["dark_img_dir"]
    dark_records = [r for r in img_records if r.frame_type == "Dark"]
    if dark_dir is not None:
        dark_records += scan_directory(dark_dir, frame_types=("Dark",))
    clear_records = scan_directory(clear_dir, frame_types=("Clear",)) if clear_dir is not None else []
    cal_records = scan_directory(cal_dir) if cal_dir is not None else []
    darks = DarkLibrary.from_records(list(dark_records) + [r for r in cal_records if r.frame_type == "Dark"],
                                     settings["dark_sig_figs"], problems)
    if len(darks) == 0:
        log.warning("NO DARK FRAMES found (image dir, dark_img_dir, cal dir): images are not dark-corrected")
        problems.append("no dark frames: images not dark-corrected")
    clear = load_clear(settings, darks, [clear_records, img_records, cal_records], problems)
    warp = None
    if settings["reg_mode"] == "file":
        warp = load_warp(settings["image_reg_path"])
    elif settings["reg_mode"] == "ecc":
        if clear is not None:
            warp = estimate_registration(clear.on, clear.off)
        elif pairs:
            first = read_pair(pairs[0])
            warp = estimate_registration(subtract_dark(first.img_a, None), subtract_dark(first.img_b, None))
        else:
            raise ValueError("reg_mode 'ecc' needs clear-sky images or at least one pair")
    camera = read_camera_geometry(geometry_file) if geometry_file is not None else None
    pcs_lines = read_pcs_files(pcs_files)
    cal_type = settings["cal_type_int"]
    cell = doas = None
    calibration = None
    if cal_type == 0 and cal_dir is None:
        log.warning("NO CALIBRATION: cal_type_int 0 without a cell calibration directory (--cal-dir or "
                    "cell_cal_dir): only AA images, no SO2 columns or emission rates")
        problems.append("no calibration: AA only")
    elif cal_type in (0, 2):
        if cal_dir is None:
            raise CalibrationError(f"cal_type_int {cal_type} needs a cell calibration directory (--cal-dir or "
                                   "cell_cal_dir)")
        cell = calibrate_cells(cal_dir, order=settings["polyorder_cal"], warp=warp, darks=darks, problems=problems,
                               style=settings["cell_cal_style"])
        calibration = cell
    if cal_type in (1, 2):
        if doas_results is None:
            raise CalibrationError(f"cal_type_int {cal_type} needs DOAS results (--doas-results FILE with "
                                   "Time,Column density,CD error)")
        if fov_search is None:
            raise CalibrationError(f"cal_type_int {cal_type} needs a DOAS FOV search (pycam.doas.fov.calibrate_fov)")
        doas = doas_calibration_from_pairs(settings, pairs[:doas_pairs], doas_results, darks, clear, warp,
                                           cell.sensitivity_mask if cell is not None else None, fov_search)
        calibration = doas if cell is None else SensitivityCorrected(cell.sensitivity_mask, doas)
    if cal_type == 3:
        if settings["cal_series_path"] is None:
            raise CalibrationError("cal_type_int 3 needs cal_series_path (a full_calibration.csv)")
        calibration = PreloadedCalibration.from_csv(settings["cal_series_path"])
    return RunInputs(settings, darks, clear, calibration, pcs_lines, camera, warp, cell, doas, problems)


def doas_calibration_from_pairs(settings: ProcessingSettings, pairs: Sequence[FilePair], doas_results,
                                darks: DarkLibrary, clear: ClearSky | None, warp, mask=None,
                                fov_search=None) -> DoasCalibration:
    """AA of the given pairs + DOAS results -> FOV search -> DoasCalibration.

    ``fov_search`` is ``pycam.doas.fov.calibrate_fov`` (passed in by the caller, so that this
    package does not import its sibling ``pycam.doas``); it returns an object whose ``samples``
    are (times, aa_in_fov, columns, errors) and which has ``centre_x``, ``centre_y``, ``radius``.
    """
    from pycam.formats.pycam_outputs import read_doas_results

    rows = read_doas_results(doas_results)
    if not pairs:
        raise CalibrationError("DOAS calibration: no image pairs")
    model = None
    times, stack = [], []
    for pair in pairs:
        try:
            images = read_pair(pair)
        except ImageFileError as exc:
            log.warning("DOAS calibration: skipping %s", exc)
            continue
        a, b = images.img_a, images.img_b
        if model is None:
            model = AbsorbanceModel(a.shape, bg_mode=settings["bg_mode"], ambient_roi=settings["ambient_roi"],
                                    darks=darks, clear=clear, warp=warp, use_vign_corr=settings["use_vign_corr"],
                                    surface_rois=settings["surface_fit_rois"],
                                    surface_order=settings["surface_fit_polyorder"])
        aa = model.compute(a, b, pair.a.exposure_us, pair.b.exposure_us).aa.copy()
        if mask is not None:
            aa /= mask
        stack.append(aa)
        times.append(pair.time)
    fov = fov_search(times, np.stack(stack), [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                        max_gap_s=settings["max_doas_cam_dif"])
    cal = DoasCalibration.from_settings(settings)
    cal.set_fov(fov.centre_x, fov.centre_y, fov.radius)
    cal.add_samples(*fov.samples)
    cal.fit()
    return cal
