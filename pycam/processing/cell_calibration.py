"""Gas-cell calibration from a PyCam ``Cal_N`` directory.

The directory holds ``Dark``, ``Clear`` and ``<N>ppmm`` frames for both filters (several
shots each).  For each band the repeats are averaged and dark-corrected (darks of the
same exposure, see :class:`~pycam.processing.corrections.DarkLibrary`), then per cell

    tau_band = ln(Clear / Cell),   AA_cell = tau_A - tau_B        (natural logs, as for plumes;
                                                                  PyCam's cell code uses log10)

The column in each cell is ``N ppm*m * PPMM_TO_MOLEC_CM2`` (2.687e15 molec cm^-2 per ppm*m,
0 degC and 1 atm; see :mod:`pycam.processing.settings`).  A polynomial ``S(AA)`` (order
``polyorder_cal``) is fitted to the mean cell AA over the calibration field of view (a disk,
default: image centre, radius 40 px), with the 0 ppm*m cell included as a point (it carries
the window losses of the cells).

Sensitivity mask: ``M = AA_cell(x, y) / <AA_cell>_FOV`` of the strongest cell, smoothed by a
Gaussian (sigma 10 px); ``column_from_aa`` applies ``AA' = AA / M`` before the polynomial when
``use_mask`` is set (the off-axis change of the filter sensitivity).

Two styles (setting ``cell_cal_style``):

* ``disk`` (ours, default): the fit over the central disk above, the sensitivity mask, and the
  whole polynomial (intercept included) applied to plume AA.
* ``pycam`` (as PyCam applies it): the cell AA averaged over the full frame, the polynomial
  fitted to that, and applied without its intercept (``coeff 0`` dropped: ``S = slope * AA``
  for order 1) and without a sensitivity mask.  Numbers then compare with PyCam's.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pycam.formats.images import ImageFileError
from pycam.processing.archive import read_record, scan_directory
from pycam.processing.corrections import DarkLibrary, subtract_dark, warp_onto
from pycam.processing.settings import PPMM_TO_MOLEC_CM2

log = logging.getLogger(__name__)


CELL_CAL_STYLES = ("disk", "pycam")


class CalibrationError(ValueError):
    """A calibration cannot be computed from the given data (the message says what is missing)."""


def disk_mask(shape: tuple[int, int], x: float, y: float, radius: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.ogrid[:h, :w]
    mask = (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2
    if not mask.any():
        raise CalibrationError(f"calibration FOV (x={x}, y={y}, r={radius}) contains no pixel")
    return mask


def fit_polynomial(aa: np.ndarray, column: np.ndarray, order: int, weights: np.ndarray | None = None
                   ) -> tuple[np.ndarray, float, float]:
    """Fit ``column = sum_k c_k AA^k``; returns (coefficients ascending, MSE, r^2 = 1 - MSE/var)."""
    aa = np.asarray(aa, float)
    column = np.asarray(column, float)
    if len(aa) < order + 1:
        raise CalibrationError(f"need at least {order + 1} calibration points for order {order}, got {len(aa)}")
    coeffs_desc = np.polyfit(aa, column, order, w=weights)
    resid = column - np.polyval(coeffs_desc, aa)
    mse = float(np.mean(resid ** 2))
    var = float(np.var(column))
    r2 = 1.0 - mse / var if var > 0 else float("nan")
    return coeffs_desc[::-1].copy(), mse, r2


def eval_polynomial(coeffs_asc: np.ndarray, aa: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Horner evaluation in float32 into ``out`` (coefficients ascending)."""
    aa = np.asarray(aa)
    if out is None:
        out = np.empty(aa.shape, np.float32)
    c = [np.float32(v) for v in coeffs_asc]
    if len(c) == 2:  # the usual linear case: one fused multiply-add pass
        np.multiply(aa, c[1], out=out)
        np.add(out, c[0], out=out)
        return out
    out.fill(c[-1])
    for k in range(len(c) - 2, -1, -1):
        np.multiply(out, aa, out=out)
        np.add(out, c[k], out=out)
    return out


class PolynomialFit:
    """What every AA -> column calibration fit has: ascending ``coeffs`` (``coeffs[0]`` the
    intercept) and the residual ``mse``, molec^2 cm^-4 (cells here, DOAS in doas_calibration)."""

    coeffs: np.ndarray   # (the dataclasses below declare these as fields)
    mse: float

    @property
    def slope(self) -> float:
        """``coeffs[1]``: the slope at AA = 0, molec cm^-2 per AA."""
        return float(self.coeffs[1])

    @property
    def column_error(self) -> float:
        """The calibration's column error: the residual standard deviation, molec cm^-2."""
        return float(np.sqrt(self.mse))


@dataclasses.dataclass
class CellCalibration(PolynomialFit):
    """Result of a cell calibration; ``column_from_aa`` maps AA to molec cm^-2."""

    ppmm: np.ndarray          # cell amounts, ppm*m
    columns: np.ndarray       # molec cm^-2
    aa: np.ndarray            # mean cell AA in the FOV
    tau_on: np.ndarray
    tau_off: np.ndarray
    coeffs: np.ndarray        # ascending: coeff 0 (intercept), coeff 1 (slope) ...
    mse: float
    r_squared: float
    fov: tuple[float, float, float]
    sensitivity_mask: np.ndarray | None = None
    aa_images: dict | None = None     # ppmm -> AA image (float32)
    use_mask: bool = True
    apply_intercept: bool = True      # False: coeff 0 dropped when applied (PyCam)
    style: str = "disk"

    def column_from_aa(self, aa: np.ndarray, out: np.ndarray | None = None, time=None) -> np.ndarray:
        src = aa
        if self.use_mask and self.sensitivity_mask is not None and np.shape(aa) == self.sensitivity_mask.shape:
            src = np.divide(aa, self.sensitivity_mask, dtype=np.float32)
        coeffs = self.coeffs if self.apply_intercept else np.concatenate([[0.0], self.coeffs[1:]])
        return eval_polynomial(coeffs, src, out)

    def summary(self) -> str:
        rows = [f"{p:8.0f} ppm*m  {c:10.3e} molec/cm2  AA={a:.5f}  tau_on={ton:.5f} tau_off={toff:.5f}"
                for p, c, a, ton, toff in zip(self.ppmm, self.columns, self.aa, self.tau_on, self.tau_off)]
        rows.append(f"fit: S = {self.coeffs[0]:.4e} + {self.coeffs[1]:.4e} * AA"
                    + "".join(f" + {c:.3e} * AA^{k}" for k, c in enumerate(self.coeffs[2:], 2))
                    + f"  (MSE {self.mse:.3e}, r^2 {self.r_squared:.5f})")
        fov = "full frame" if self.style == "pycam" else f"disk x={self.fov[0]:g} y={self.fov[1]:g} r={self.fov[2]:g}"
        rows.append(f"style {self.style}: fit over {fov}; applied "
                    + ("with" if self.apply_intercept else "without") + " the intercept, "
                    + ("with" if self.use_mask and self.sensitivity_mask is not None else "without")
                    + " the sensitivity mask")
        return "\n".join(rows)


def _mean_frames(records, darks: DarkLibrary, problems: list[str]) -> np.ndarray | None:
    total, n = None, 0
    for rec in records:
        try:
            img = read_record(rec)
        except ImageFileError as exc:
            log.warning("skipping %s", exc)
            problems.append(str(exc))
            continue
        corr = subtract_dark(img, darks.get(rec.band, rec.exposure_us)).astype(np.float64)
        total = corr if total is None else total + corr
        n += 1
    return None if total is None else (total / n).astype(np.float32)


def calibrate_cells(cal_dir: str | os.PathLike[str], *, order: int = 1, fov: tuple[float, float, float] | None = None,
                    warp: np.ndarray | None = None, darks: DarkLibrary | None = None, mask_sigma: float = 10.0,
                    cells: Sequence[int] | None = None, problems: list[str] | None = None,
                    style: str = "disk") -> CellCalibration:
    """Run the cell calibration on a ``Cal_N`` directory (see the module docstring).

    ``cells`` restricts the fit to these ppm*m amounts (default: every cell found); ``style``
    is ``disk`` (ours) or ``pycam`` (full frame, intercept dropped, no mask).
    """
    if style not in CELL_CAL_STYLES:
        raise CalibrationError(f"cell calibration style {style!r}: must be one of {', '.join(CELL_CAL_STYLES)}")
    problems = problems if problems is not None else []
    d = Path(cal_dir)
    records = scan_directory(d)
    if darks is None:
        darks = DarkLibrary.from_records(records, problems=problems)
    for band in ("on", "off"):
        if band not in darks.bands():
            log.warning("calibration %s: no %s-band Dark frames: cell images are not dark-corrected", d, band)
    clear = {}
    for band in ("on", "off"):
        clear[band] = _mean_frames([r for r in records if r.frame_type == "Clear" and r.band == band],
                                   darks, problems)
        if clear[band] is None:
            raise CalibrationError(f"{d}: no readable {band}-band Clear frame (needed as cell background)")
    amounts = sorted({r.name.cell_ppmm for r in records if r.name.cell_ppmm is not None})
    if cells is not None:
        missing = sorted(set(cells) - set(amounts))
        if missing:
            raise CalibrationError(f"{d}: no frames for the requested cell(s) {missing} ppm*m (found {amounts})")
        amounts = sorted(set(cells))
    if len(amounts) < order + 1:
        raise CalibrationError(f"{d}: {len(amounts)} cell amount(s) found ({amounts}); need at least "
                               f"{order + 1} for an order-{order} fit")
    cell_images: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for amount in amounts:
        frames = {}
        for band in ("on", "off"):
            frames[band] = _mean_frames([r for r in records if r.name.cell_ppmm == amount and r.band == band],
                                        darks, problems)
        if frames["on"] is None or frames["off"] is None:
            log.warning("calibration %s: %d ppm*m cell lacks a readable frame in one band: skipped", d, amount)
            problems.append(f"{d}: {amount} ppm*m cell incomplete")
            continue
        cell_images[amount] = (frames["on"], frames["off"])
    if len(cell_images) < order + 1:
        raise CalibrationError(f"{d}: only {len(cell_images)} complete cell(s); need {order + 1}")
    return calibration_from_images(clear["on"], clear["off"],
                                   {a: (on, off, a * PPMM_TO_MOLEC_CM2) for a, (on, off) in cell_images.items()},
                                   order=order, fov=fov, warp=warp, mask_sigma=mask_sigma, style=style)


def calibration_from_images(clear_on: np.ndarray, clear_off: np.ndarray, cells: dict, *, order: int = 1,
                            fov: tuple[float, float, float] | None = None, warp: np.ndarray | None = None,
                            mask_sigma: float = 10.0, style: str = "disk") -> CellCalibration:
    """The calibration fit from dark-corrected images (any camera).

    ``cells`` maps a cell key (ppm*m for PyCam cells) to ``(on, off, column_molec_cm2)``;
    ``clear_on``/``clear_off`` are the cell backgrounds.  ``fov`` is (x, y, radius) in pixels
    (default: image centre, radius min(40, side/4)); with ``style`` ``pycam`` the cell AA is
    averaged over the full frame, no sensitivity mask is made and the intercept is dropped.
    """
    import cv2

    if style not in CELL_CAL_STYLES:
        raise CalibrationError(f"cell calibration style {style!r}: must be one of {', '.join(CELL_CAL_STYLES)}")
    if len(cells) < order + 1:
        raise CalibrationError(f"{len(cells)} cell(s) given; need at least {order + 1} for an order-{order} fit")
    shape = clear_on.shape
    if fov is None:
        fov = (shape[1] / 2.0, shape[0] / 2.0, min(40.0, min(shape) / 4.0))
    mask = disk_mask(shape, *fov) if style == "disk" else np.ones(shape, bool)
    bg_off = warp_onto(clear_off, warp) if warp is not None else clear_off
    keys, columns, aa_means, ton, toff, images = [], [], [], [], [], {}
    for key in sorted(cells, key=lambda k: cells[k][2]):
        cell_on, cell_off, column = cells[key]
        if cell_on.shape != shape or cell_off.shape != shape:
            raise CalibrationError(f"cell {key}: image shapes {cell_on.shape}/{cell_off.shape} differ from the "
                                   f"clear-sky images {shape}")
        cell_off = warp_onto(cell_off, warp) if warp is not None else cell_off
        tau_on = np.log(clear_on / cell_on)
        tau_off = np.log(bg_off / cell_off)
        aa = (tau_on - tau_off).astype(np.float32)
        sel = mask & np.isfinite(aa)
        keys.append(key)
        columns.append(float(column))
        aa_means.append(float(np.mean(aa[sel])))
        ton.append(float(np.mean(tau_on[sel])))
        toff.append(float(np.mean(tau_off[sel])))
        images[key] = aa
    columns_arr = np.asarray(columns, float)
    aa_arr = np.asarray(aa_means)
    coeffs, mse, r2 = fit_polynomial(aa_arr, columns_arr, order)
    strongest = images[keys[int(np.argmax(columns_arr))]]
    sens = None
    mean_fov = float(np.nanmean(strongest[mask]))
    if style == "disk" and abs(mean_fov) > 1e-6:
        sens = cv2.GaussianBlur(strongest, (0, 0), mask_sigma) / np.float32(mean_fov)
        sens = np.clip(sens, 0.2, 5.0).astype(np.float32)
    ppmm = np.asarray([k if isinstance(k, (int, float)) else c / PPMM_TO_MOLEC_CM2 for k, c in zip(keys, columns)],
                      float)
    return CellCalibration(ppmm, columns_arr, aa_arr, np.asarray(ton), np.asarray(toff), coeffs, mse, r2,
                           tuple(float(v) for v in fov), sens, images, use_mask=style == "disk",
                           apply_intercept=style == "disk", style=style)
