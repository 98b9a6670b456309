"""PyCam-compatible processing outputs: emission-rate CSVs, ``full_calibration.csv``, DOAS results.

Layouts (pycam_compat.md section 3):

* Emission rates, one file per line and velocity mode,
  ``<out>/line_<id>/<YYYYMMDD>_EmissionRates_<mode>.txt``::

      datetime,flux_(kg/s),flux_err,velo_eff_(m/s),velo_eff_err,frac_optflow_ok,frac_optflow_ok_ica,ICA_mass_(kg/m)

  followed by our two quality columns ``flag,flag_reason`` (int bitmask, 0 = good; ';'-joined
  reason codes, see ``pycam.processing.quality``); PyCam's readers use the first eight
  columns by name.  Files with only PyCam's eight columns are read too (flag 0).
  One row per image, 3 decimals (ICA mass and fluxes below 1 in 3 significant digits would
  lose precision, so values whose magnitude is below 0.1 are written with 4 significant
  figures); empty ``frac_*`` for modes without optical flow.  Rows are appended whole and
  flushed, so an interrupted run leaves complete rows.
* ``full_calibration.csv``: 5 header lines, then a CSV whose first column is an unnamed index.
* DOAS results: ``Time,Column density,CD error,LDF`` without index.

Times are written ``YYYY-mm-dd HH:MM:SS`` (UTC, no zone), as pandas prints them.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
import os
from pathlib import Path
from typing import IO, Iterable, Sequence

from pycam.formats.atomic import atomic_write_text
from pycam.formats.names import day_stamp, format_text_time, read_time

PYCAM_EMISSION_HEADER = ("datetime", "flux_(kg/s)", "flux_err", "velo_eff_(m/s)", "velo_eff_err",
                         "frac_optflow_ok", "frac_optflow_ok_ica", "ICA_mass_(kg/m)")
#: PyCam's columns, then the quality flag and its reason codes.
EMISSION_HEADER = PYCAM_EMISSION_HEADER + ("flag", "flag_reason")
DOAS_HEADER = ("Time", "Column density", "CD error", "LDF")


class OutputFormatError(ValueError):
    """An output file (emission rates, calibration, DOAS results) is malformed."""


def parse_output_time(text: str) -> dt.datetime:
    """A time of an output file: any of PyCam's forms, else ISO 8601 (UTC when it has no zone)."""
    text = text.strip()
    known = read_time(text)
    if known is not None:
        return known
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise OutputFormatError(f"bad time {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if value != 0 and abs(value) < 0.1:
        return f"{value:.4g}"
    return f"{value:.3f}"


def emission_rate_path(out_dir: str | os.PathLike[str], line_id: str, mode: str, day: dt.datetime) -> Path:
    return Path(out_dir) / f"line_{line_id}" / f"{day_stamp(day)}_EmissionRates_{mode}.txt"


@dataclasses.dataclass(frozen=True)
class EmissionRow:
    time: dt.datetime
    flux: float | None
    flux_err: float | None
    velo_eff: float | None
    velo_eff_err: float | None
    frac_ok: float | None
    frac_ok_ica: float | None
    ica_mass: float | None
    flag: int = 0
    flag_reason: str = ""

    def to_fields(self) -> list[str]:
        if "," in self.flag_reason or "\n" in self.flag_reason:
            raise ValueError(f"flag_reason {self.flag_reason!r} must not hold commas or newlines")
        return [format_text_time(self.time), _num(self.flux), _num(self.flux_err), _num(self.velo_eff),
                _num(self.velo_eff_err), _num(self.frac_ok), _num(self.frac_ok_ica), _num(self.ica_mass),
                str(int(self.flag)), self.flag_reason]


class EmissionRateWriter:
    """Append rows to the PyCam emission-rate files of one output folder (a file per line, mode, day)."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self._files: dict[Path, IO[str]] = {}

    def write(self, line_id: str, mode: str, row: EmissionRow) -> Path:
        path = emission_rate_path(self.out_dir, line_id, mode, row.time)
        fh = self._files.get(path)
        if fh is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists() or path.stat().st_size == 0
            fh = open(path, "a", encoding="utf-8", newline="")
            if new:
                fh.write(",".join(EMISSION_HEADER) + "\n")
            self._files[path] = fh
        fh.write(",".join(row.to_fields()) + "\n")
        fh.flush()
        return path

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def __enter__(self) -> "EmissionRateWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _opt_float(text: str, where: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise OutputFormatError(f"{where}: {text!r} is not a number") from None


def read_emission_rates(path: str | os.PathLike[str]) -> list[EmissionRow]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputFormatError(f"{p}: cannot read: {exc.strerror}") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = tuple(rows[0]) if rows else None
    if header not in (EMISSION_HEADER, PYCAM_EMISSION_HEADER):
        raise OutputFormatError(f"{p}: not a PyCam emission-rate file (header {list(header) if header else None})")
    n_pycam = len(PYCAM_EMISSION_HEADER)
    out = []
    for n, r in enumerate(rows[1:], 2):
        if len(r) != len(header):
            raise OutputFormatError(f"{p}:{n}: expected {len(header)} fields, got {len(r)}")
        vals = [_opt_float(v, f"{p}:{n}") for v in r[1:n_pycam]]
        flag, why = 0, ""
        if len(r) > n_pycam:
            try:
                flag = int(r[n_pycam])
            except ValueError:
                raise OutputFormatError(f"{p}:{n}: flag {r[n_pycam]!r} is not an integer") from None
            why = r[n_pycam + 1]
        out.append(EmissionRow(parse_output_time(r[0]), *vals, flag=flag, flag_reason=why))
    return out


# --- full_calibration.csv -------------------------------------------------------------------

@dataclasses.dataclass
class CalibrationRecord:
    """One row of ``full_calibration.csv``: a (AA, DOAS column) sample and the fit valid at its time."""

    time: dt.datetime
    aa: float
    column: float
    column_err: float
    coeffs: tuple[float, ...]     # coeff 0 (intercept), coeff 1 (slope), ...
    mse: float
    r_squared: float


@dataclasses.dataclass
class CalibrationTable:
    fov_x: float | None
    fov_y: float | None
    fov_radius: float | None
    remove_doas_mins: float | None
    doas_fov_recal_mins: float | None
    records: list[CalibrationRecord]


def _opt_text(value: float | None) -> str:
    if value is None:
        return "False"
    return f"{value:g}"


def _fmt_float(v: float) -> str:
    return repr(float(v)) if math.isfinite(v) else ""


def format_full_calibration(table: CalibrationTable) -> str:
    order = max((len(r.coeffs) for r in table.records), default=2)
    order = max(order, 2)
    buf = io.StringIO()
    fx = "" if table.fov_x is None else f"{table.fov_x:g}"
    fy = "" if table.fov_y is None else f"{table.fov_y:g}"
    buf.write("headerlines=5\n")
    buf.write(f"DOAS_FOV_pos [X Y]={fx} {fy}\n")
    buf.write(f"DOAS_FOV_radius={'' if table.fov_radius is None else f'{table.fov_radius:g}'}\n")
    buf.write(f"DOAS_remove_data [minutes]={_opt_text(table.remove_doas_mins)}\n")
    buf.write(f"DOAS_fov_recal [minutes]={_opt_text(table.doas_fov_recal_mins)}\n")
    header = ["", "timepoint", "optical depth (tau)", "col density (doas)", "col density (error)"]
    header += [f"coeff {k}" for k in range(order)] + ["MSE", "r-squared"]
    buf.write(",".join(header) + "\n")
    for i, r in enumerate(table.records):
        coeffs = list(r.coeffs) + [0.0] * (order - len(r.coeffs))
        fields = [str(i), format_text_time(r.time), _fmt_float(r.aa), _fmt_float(r.column), _fmt_float(r.column_err)]
        fields += [_fmt_float(c) for c in coeffs] + [_fmt_float(r.mse), _fmt_float(r.r_squared)]
        buf.write(",".join(fields) + "\n")
    return buf.getvalue()


def write_full_calibration(path: str | os.PathLike[str], table: CalibrationTable) -> Path:
    return atomic_write_text(path, format_full_calibration(table))


def _header_value(line: str, key: str, p: Path) -> str:
    if not line.startswith(key + "="):
        raise OutputFormatError(f"{p}: expected a line starting {key}=, got {line!r}")
    return line[len(key) + 1:].strip()


def _opt_minutes(text: str, key: str, p: Path) -> float | None:
    if text in ("False", "None", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise OutputFormatError(f"{p}: {key}={text!r} is not a number or False") from None


def read_full_calibration(path: str | os.PathLike[str]) -> CalibrationTable:
    """Read PyCam's ``full_calibration.csv`` (raises :class:`OutputFormatError` naming the problem)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputFormatError(f"{p}: cannot read: {exc}") from None
    if not lines or not lines[0].startswith("headerlines="):
        raise OutputFormatError(f"{p}: first line must be headerlines=N")
    try:
        n_header = int(lines[0].split("=", 1)[1])
    except ValueError:
        raise OutputFormatError(f"{p}: bad headerlines value {lines[0]!r}") from None
    if n_header < 5 or len(lines) <= n_header:
        raise OutputFormatError(f"{p}: file ends inside its {n_header} header lines")
    pos = _header_value(lines[1], "DOAS_FOV_pos [X Y]", p).split()
    try:
        fov_x = float(pos[0]) if len(pos) > 0 else None
        fov_y = float(pos[1]) if len(pos) > 1 else None
    except ValueError:
        raise OutputFormatError(f"{p}: bad DOAS_FOV_pos {lines[1]!r}") from None
    rad = _header_value(lines[2], "DOAS_FOV_radius", p)
    try:
        fov_radius = float(rad) if rad else None
    except ValueError:
        raise OutputFormatError(f"{p}: bad DOAS_FOV_radius {rad!r}") from None
    remove = _opt_minutes(_header_value(lines[3], "DOAS_remove_data [minutes]", p), "DOAS_remove_data", p)
    recal = _opt_minutes(_header_value(lines[4], "DOAS_fov_recal [minutes]", p), "DOAS_fov_recal", p)
    reader = csv.reader(io.StringIO("\n".join(lines[n_header:])))
    header = next(reader)
    try:
        i_time = header.index("timepoint")
        i_aa = header.index("optical depth (tau)")
        i_cd = header.index("col density (doas)")
        i_err = header.index("col density (error)")
        i_mse = header.index("MSE")
        i_r2 = header.index("r-squared")
    except ValueError as exc:
        raise OutputFormatError(f"{p}: calibration header lacks a column ({exc})") from None
    coeff_cols = sorted((int(h.split()[1]), i) for i, h in enumerate(header) if h.startswith("coeff "))
    if len(coeff_cols) < 2:
        raise OutputFormatError(f"{p}: need at least coeff 0 and coeff 1 columns")
    records = []
    for n, row in enumerate(reader, n_header + 2):
        if not row:
            continue
        where = f"{p}:{n}"
        if len(row) < len(header):
            raise OutputFormatError(f"{where}: expected {len(header)} fields, got {len(row)}")

        def num(i: int) -> float:
            v = _opt_float(row[i], where)
            return math.nan if v is None else v

        records.append(CalibrationRecord(parse_output_time(row[i_time]), num(i_aa), num(i_cd), num(i_err),
                                         tuple(num(i) for _, i in coeff_cols), num(i_mse), num(i_r2)))
    return CalibrationTable(fov_x, fov_y, fov_radius, remove, recal, records)


# --- DOAS results ---------------------------------------------------------------------------

def format_doas_results(rows: Iterable[Sequence]) -> str:
    """``rows`` of (time, column, column_err, ldf) -> CSV text without index."""
    buf = io.StringIO()
    buf.write(",".join(DOAS_HEADER) + "\n")
    for t, cd, err, ldf in rows:
        ldf_text = "" if ldf is None else _fmt_float(ldf)
        buf.write(f"{format_text_time(t)},{_fmt_float(cd)},{_fmt_float(err)},{ldf_text}\n")
    return buf.getvalue()


def write_doas_results(path: str | os.PathLike[str], rows: Iterable[Sequence]) -> Path:
    return atomic_write_text(path, format_doas_results(rows))


def read_doas_results(path: str | os.PathLike[str]) -> list[tuple[dt.datetime, float, float, float | None]]:
    p = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputFormatError(f"{p}: cannot read: {exc}") from None
    if not rows or [h.strip() for h in rows[0][:4]] != list(DOAS_HEADER):
        raise OutputFormatError(f"{p}: expected header {','.join(DOAS_HEADER)}")
    out = []
    for n, r in enumerate(rows[1:], 2):
        if not r:
            continue
        if len(r) < 3:
            raise OutputFormatError(f"{p}:{n}: expected 4 fields")
        cd = _opt_float(r[1], f"{p}:{n}")
        err = _opt_float(r[2], f"{p}:{n}")
        ldf = _opt_float(r[3], f"{p}:{n}") if len(r) > 3 else None
        out.append((parse_output_time(r[0]), math.nan if cd is None else cd, math.nan if err is None else err, ldf))
    return out
