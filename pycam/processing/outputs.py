"""Writing a processing run's outputs (PyCam layout, all files atomic or appended row by row).

``<out>/``
    ``line_<id>/<YYYYMMDD>_EmissionRates_<mode>.txt``  per line (and ``total``) and mode
    ``process_config.yml``        the settings used (PyCam key names)
    ``pcs_line_<n>.txt``          the PCS lines; ``cam_geom.txt`` the camera geometry
    ``image_reg.npy``             the registration warp, when one was used
    ``cell_calibration.csv``      cell amounts, AA, fit (cell calibration)
    ``full_calibration.csv``      DOAS / preloaded calibration (PyCam layout)
    ``saved_images/<time>_SO2_{aa,cal}.{npy,fts}``  when ``save_images`` is on
    ``summary.json``              counts, means and problems of the run
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from pycam.formats.atomic import atomic_write, atomic_write_text
from pycam.formats.geometry import write_camera_geometry, write_pcs_line
from pycam.formats.names import ISO_TIME_FORMAT, format_time as pycam_time
from pycam.formats.pycam_outputs import EmissionRateWriter, EmissionRow
from pycam.processing.corrections import save_warp
from pycam.processing.emission import EmissionRate
from pycam.processing.settings import PPMM_TO_MOLEC_CM2, write_settings_snapshot


def _finite(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def emission_row(time, rate: EmissionRate) -> EmissionRow:
    return EmissionRow(time, _finite(rate.flux_kg_s), _finite(rate.flux_err), _finite(rate.velo_eff),
                       _finite(rate.velo_eff_err), _finite(rate.frac_ok) if rate.frac_ok is not None else None,
                       _finite(rate.frac_ok_ica) if rate.frac_ok_ica is not None else None, _finite(rate.ica_mass),
                       int(rate.flag), rate.flag_reason)


@dataclasses.dataclass
class RunningStats:
    """Running sums of one (line, mode); only unflagged samples with a finite flux are valid."""

    n: int = 0
    n_valid: int = 0
    n_flagged: int = 0
    flux_sum: float = 0.0
    flux_sq: float = 0.0
    velo_sum: float = 0.0
    reasons: dict = dataclasses.field(default_factory=dict)

    def add(self, rate: EmissionRate) -> None:
        self.n += 1
        if rate.flag:
            self.n_flagged += 1
            for code in rate.flag_reason.split(";"):
                self.reasons[code] = self.reasons.get(code, 0) + 1
            return
        if math.isfinite(rate.flux_kg_s):
            self.n_valid += 1
            self.flux_sum += rate.flux_kg_s
            self.flux_sq += rate.flux_kg_s ** 2
            if math.isfinite(rate.velo_eff):
                self.velo_sum += rate.velo_eff

    @property
    def mean_flux(self) -> float:
        return self.flux_sum / self.n_valid if self.n_valid else math.nan

    @property
    def std_flux(self) -> float:
        if self.n_valid < 2:
            return math.nan
        m = self.mean_flux
        return math.sqrt(max(0.0, self.flux_sq / self.n_valid - m * m))

    @property
    def mean_velocity(self) -> float:
        return self.velo_sum / self.n_valid if self.n_valid else math.nan


class RunOutputs:
    """The output folder of one run; emission rows go straight to disk (nothing accumulates)."""

    def __init__(self, out_dir: str | os.PathLike[str], save_images: bool = False,
                 save_formats=("npy",)) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = EmissionRateWriter(self.out_dir)
        self.stats: dict[tuple[str, str], RunningStats] = {}
        self.save_images = save_images
        self.save_formats = tuple(save_formats)

    def write_setup(self, settings, pcs_lines=(), camera=None, warp=None) -> None:
        write_settings_snapshot(self.out_dir / "process_config.yml", settings)
        for i, line in enumerate(pcs_lines):
            write_pcs_line(self.out_dir / f"pcs_line_{line.name if str(line.name).isdigit() else i}.txt", line)
        if camera is not None:
            write_camera_geometry(self.out_dir / "cam_geom.txt", camera)
        if warp is not None:
            save_warp(self.out_dir / "image_reg.npy", warp)

    def write_rate(self, time, line: str, mode: str, rate: EmissionRate) -> None:
        self.writer.write(line, mode, emission_row(time, rate))
        self.stats.setdefault((line, mode), RunningStats()).add(rate)

    def write_rates(self, time, rates_by_mode: dict[str, dict[str, EmissionRate]]) -> None:
        for mode, rates in rates_by_mode.items():
            for line, rate in rates.items():
                self.write_rate(time, line, mode, rate)

    def save_image(self, time, kind: str, image: np.ndarray) -> None:
        """``saved_images/<time>_SO2_<kind>.<fmt>`` (kind ``aa`` or ``cal``)."""
        folder = self.out_dir / "saved_images"
        stem = f"{pycam_time(time)}_SO2_{kind}"
        if "npy" in self.save_formats:
            atomic_write(folder / f"{stem}.npy", lambda fh: np.save(fh, image, allow_pickle=False))
        if "fts" in self.save_formats:
            from astropy.io import fits

            hdu = fits.PrimaryHDU(np.asarray(image, np.float32))
            hdu.header["DATE-OBS"] = time.strftime(ISO_TIME_FORMAT)
            hdu.header["BUNIT"] = "molec/cm2" if kind == "cal" else "AA"
            buf = io.BytesIO()
            hdu.writeto(buf)
            atomic_write(folder / f"{stem}.fts", lambda fh: fh.write(buf.getvalue()))

    def write_cell_calibration(self, cal) -> Path:
        return write_cell_calibration_csv(self.out_dir / "cell_calibration.csv", cal)

    def summary_rows(self) -> list[dict]:
        rows = []
        for (line, mode), st in sorted(self.stats.items()):
            rows.append({"line": line, "mode": mode, "rows": st.n, "valid": st.n_valid,
                         "flagged": st.n_flagged, "flag_reasons": dict(sorted(st.reasons.items())),
                         "mean_flux_kg_s": st.mean_flux, "std_flux_kg_s": st.std_flux,
                         "mean_velocity_m_s": st.mean_velocity})
        return rows

    def flag_summary(self) -> dict:
        """Flagged samples over every line (not the totals) and mode: counts, fraction, reasons."""
        n = flagged = 0
        reasons: dict[str, int] = {}
        for (line, _mode), st in self.stats.items():
            if line == "total":
                continue
            n += st.n
            flagged += st.n_flagged
            for code, k in st.reasons.items():
                reasons[code] = reasons.get(code, 0) + k
        return {"samples": n, "flagged": flagged, "flagged_fraction": flagged / n if n else None,
                "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}

    def write_summary(self, info: dict) -> Path:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        rows = [{k: clean(v) for k, v in r.items()} for r in self.summary_rows()]
        flags = {k: clean(v) for k, v in self.flag_summary().items()}
        return atomic_write_text(self.out_dir / "summary.json",
                                 json.dumps({**info, "emission_rates": rows, "quality_flags": flags},
                                            indent=2, default=str) + "\n")

    def close(self) -> None:
        self.writer.close()


def format_summary_table(rows: list[dict]) -> str:
    head = (f"{'line':>8} {'mode':>12} {'rows':>6} {'valid':>6} {'flagged':>7} {'mean kg/s':>10} {'std kg/s':>9} "
            f"{'v m/s':>7}")
    out = [head, "-" * len(head)]
    for r in rows:
        def f(v, w, p):
            return f"{v:{w}.{p}f}" if v is not None and math.isfinite(v) else f"{'-':>{w}}"
        out.append(f"{r['line']:>8} {r['mode']:>12} {r['rows']:>6} {r['valid']:>6} {r.get('flagged', 0):>7} "
                   f"{f(r['mean_flux_kg_s'], 10, 3)} {f(r['std_flux_kg_s'], 9, 3)} {f(r['mean_velocity_m_s'], 7, 2)}")
    return "\n".join(out)


def write_cell_calibration_csv(path: Path, cal) -> Path:
    """The gas-cell calibration as CSV: one row per cell, then the fit as a comment line.
    Used by ``pycam process`` and the GUI's gas-cell wizard (one format)."""
    def num(value) -> str:
        return repr(float(value))

    lines = [f"# cell calibration; column = ppmm * {PPMM_TO_MOLEC_CM2:.4g} molec/cm2 (0 degC, 1 atm); "
             f"AA with natural logs; FOV x={cal.fov[0]:g} y={cal.fov[1]:g} r={cal.fov[2]:g}",
             "ppmm,column (molec/cm2),AA,tau_on,tau_off"]
    for p, c, a, ton, toff in zip(cal.ppmm, cal.columns, cal.aa, cal.tau_on, cal.tau_off):
        lines.append(f"{p:g},{num(c)},{num(a)},{num(ton)},{num(toff)}")
    lines.append("# fit: " + ",".join(f"coeff {k}={num(v)}" for k, v in enumerate(cal.coeffs))
                 + f",MSE={num(cal.mse)},r-squared={num(cal.r_squared)}")
    return atomic_write_text(path, "\n".join(lines) + "\n")
