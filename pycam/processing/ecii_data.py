"""ECII data sets (pyplis's Etna 2015 test data) prepared for our chain.

The file-level adapter is :mod:`pycam.formats.ecii`; this module adds what needs image
processing:

* :func:`to_level` brings frames stored at a Gaussian-pyramid level (pyplis's test copies:
  level 4) to the level processed, with OpenCV's ``pyrUp``/``pyrDown`` as pyplis does;
* :func:`find_cells` splits the frames of a calibration window into clear-sky frames and
  runs of gas-cell frames by their mean intensity (frames darker than ``1 - threshold`` of
  the sky are cells; a run is a sequence of consecutive cell frames; frames off the
  run median by more than ``settle_frac`` are cell changes and dropped), and assigns the cell
  columns in order of optical depth (thickest cell = largest column);
* :func:`cell_calibration` turns that into a :class:`CellCalibration`: per cell the mean of
  its frames, against clear sky interpolated linearly in time between the clear frames
  before and after the cell (the sky brightens while the cells are swapped).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import Mapping, Sequence

import numpy as np

from pycam.formats.ecii import EcIIDarks, EcIIFrame, pair_frames, read_frame, scan_ecii, select
from pycam.processing.cell_calibration import CalibrationError, CellCalibration, calibration_from_images
from pycam.processing.corrections import subtract_dark
from pycam.formats.image_pair import ImagePair


def to_level(image: np.ndarray, from_level: int, to_level: int) -> np.ndarray:
    """``image`` (float) moved from pyramid level ``from_level`` to ``to_level`` (pyrUp/pyrDown steps)."""
    import cv2

    out = np.asarray(image, np.float64)
    for _ in range(from_level - to_level):
        out = cv2.pyrUp(out)
    for _ in range(to_level - from_level):
        out = cv2.pyrDown(out)
    return out


def frame_at_level(frame: EcIIFrame, level: int) -> EcIIFrame:
    """A copy of ``frame`` whose raw image is at pyramid ``level``."""
    if level == frame.pyrlevel:
        return frame
    return dataclasses.replace(frame, image=to_level(frame.image, frame.pyrlevel, level), pyrlevel=level)


def darks_at_level(darks: EcIIDarks, level: int) -> EcIIDarks:
    """The dark/offset model with its frames at pyramid ``level`` (pyrUp is linear, so this
    equals modelling the dark first and resampling it)."""
    return EcIIDarks(frame_at_level(darks.offset, level), frame_at_level(darks.dark, level))


def iter_pairs(directory: str | os.PathLike[str], start: dt.datetime | None = None,
               stop: dt.datetime | None = None, level: int | None = None):
    """On/off pairs in ``[start, stop]`` as :class:`~pycam.formats.image_pair.ImagePair` (raw
    frames at pyramid ``level``; time of the on-band frame; exposures rounded to whole us), for
    :class:`~pycam.processing.pipeline.BatchProcessor`.  The matching darks: :func:`darks_at_level`."""
    for on_path, off_path in pair_frames(scan_ecii(directory), start=start, stop=stop):
        on, off = read_frame(on_path), read_frame(off_path)
        if level is not None:
            on, off = frame_at_level(on, level), frame_at_level(off, level)
        yield ImagePair(on.start, on.image, off.image, int(round(on.exposure_us)), int(round(off.exposure_us)))


def load_frames(directory: str | os.PathLike[str], code: str, start: dt.datetime | None = None,
                stop: dt.datetime | None = None) -> list[EcIIFrame]:
    """Frames of one code (``F01``/``F02``...) in ``[start, stop]``, in time order."""
    return [read_frame(p) for p in select(scan_ecii(directory), code=code, start=start, stop=stop)]


def dark_corrected(frame: EcIIFrame, darks: EcIIDarks | None, level: int | None = None) -> np.ndarray:
    """Dark-corrected image (float32, floor as :func:`subtract_dark`) at pyramid ``level``
    (default: as stored)."""
    band = frame.band or "on"
    img = subtract_dark(frame.image, darks.get(band, frame.exposure_us) if darks is not None else None)
    if level is not None and level != frame.pyrlevel:
        img = to_level(img, frame.pyrlevel, level).astype(np.float32)
    return img


@dataclasses.dataclass
class CellSearch:
    """Result of :func:`find_cells` for one band."""

    clear: list[EcIIFrame]
    runs: list[list[EcIIFrame]]      # ordered by increasing optical depth


def find_cells(frames: Sequence[EcIIFrame], threshold: float = 0.10, settle_frac: float = 0.02) -> CellSearch:
    """Clear frames and cell runs of one band (see the module docstring)."""
    if not frames:
        raise CalibrationError("cell search: no frames in the calibration window")
    means = np.array([float(f.image.mean()) for f in frames])
    clear_level = float(np.max(means))
    is_cell = means < (1.0 - threshold) * clear_level
    sky = float(np.median(means[~is_cell]))
    clear = [f for f, c, m in zip(frames, is_cell, means) if not c and abs(m - sky) <= settle_frac * sky]
    runs, current = [], []
    for f, c in zip(frames, is_cell):
        if c:
            current.append(f)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    settled = []
    for run in runs:
        m = np.array([float(f.image.mean()) for f in run])
        med = float(np.median(m))
        keep = [f for f, v in zip(run, m) if abs(v - med) <= settle_frac * med]
        if keep:
            settled.append(keep)
    bg = float(np.mean([f.image.mean() for f in clear])) if clear else clear_level
    settled.sort(key=lambda run: np.log(bg / np.mean([f.image.mean() for f in run])))
    return CellSearch(clear, settled)


def _mid_time(run: Sequence[EcIIFrame]) -> float:
    return float(np.mean([f.start.timestamp() for f in run]))


def _clear_at(clear: Sequence[np.ndarray], times: Sequence[float], t: float) -> np.ndarray:
    """Clear-sky image at time ``t`` by linear interpolation between the nearest clear frames
    before and after (the nearest one outside their span)."""
    times_arr = np.asarray(times)
    before = np.nonzero(times_arr <= t)[0]
    after = np.nonzero(times_arr >= t)[0]
    if before.size and after.size:
        i, j = before[-1], after[0]
        if i == j or times_arr[j] == times_arr[i]:
            return clear[i]
        w = (t - times_arr[i]) / (times_arr[j] - times_arr[i])
        return ((1 - w) * clear[i] + w * clear[j]).astype(np.float32)
    k = int(before[-1]) if before.size else int(after[0])
    return clear[k]


def cell_calibration(directory: str | os.PathLike[str], cells: Mapping[str, float], start: dt.datetime,
                     stop: dt.datetime, *, darks: EcIIDarks | None = None, level: int | None = None,
                     order: int = 1, fov: tuple[float, float, float] | None = None,
                     threshold: float = 0.10) -> CellCalibration:
    """Cell calibration of an ECII window: ``cells`` maps a cell id to its column (molec/cm2);
    the found runs get the columns in order of optical depth.  ``level``: pyramid level processed."""
    if darks is None:
        darks = EcIIDarks.from_directory(directory)
    per_band = {}
    for band, code in (("on", "F01"), ("off", "F02")):
        search = find_cells(load_frames(directory, code, start, stop), threshold)
        if len(search.runs) != len(cells):
            raise CalibrationError(f"{directory}: {len(search.runs)} cell runs found in the {band} band between "
                                   f"{start} and {stop}, {len(cells)} cells given")
        if not search.clear:
            raise CalibrationError(f"{directory}: no clear-sky {band}-band frame between {start} and {stop}")
        per_band[band] = search
    ids = sorted(cells, key=lambda k: cells[k])
    # the on band orders the cells (optical depth); each off-band run is the one nearest in time
    on_runs = per_band["on"].runs
    off_runs = [min(per_band["off"].runs, key=lambda r: abs(_mid_time(r) - _mid_time(run))) for run in on_runs]
    if len({id(r) for r in off_runs}) != len(off_runs):
        raise CalibrationError(f"{directory}: on- and off-band cell runs do not match one to one in time")
    runs = {"on": on_runs, "off": off_runs}
    out = {}
    for band in ("on", "off"):
        s = per_band[band]
        clear_imgs = [dark_corrected(f, darks, level) for f in s.clear]
        clear_t = [f.start.timestamp() for f in s.clear]
        for cid, run in zip(ids, runs[band]):
            cell = np.mean([dark_corrected(f, darks, level) for f in run], axis=0).astype(np.float32)
            out.setdefault(cid, {})[band] = (_clear_at(clear_imgs, clear_t, _mid_time(run)), cell)
    # one common clear-sky pair is not right here: each cell has its own interpolated background,
    # so the background ratio is folded into the cell images (tau = ln(clear/cell) is unchanged)
    ref_on = out[ids[0]]["on"][0]
    ref_off = out[ids[0]]["off"][0]
    images = {}
    for cid in ids:
        (c_on, cell_on), (c_off, cell_off) = out[cid]["on"], out[cid]["off"]
        images[cid] = (cell_on * (ref_on / c_on), cell_off * (ref_off / c_off), cells[cid])
    return calibration_from_images(ref_on, ref_off, images, order=order, fov=fov)
