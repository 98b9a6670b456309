"""DOAS results files in PyCam's layout.

``doas_results_<first-time>.csv``: ``Time,Column density,CD error,LDF`` (molec cm⁻², LDF in
[0, 1], NaN when no light-dilution correction ran) plus our ``file`` and ``line_shape`` (the
instrument line shape the fit used) columns, no index column.
``doas_processing_params.txt`` records the settings as ``key=value`` lines (PyCam writes e.g.
``Fit window=308:318``).  Files are written atomically.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

from pycam.doas.retrieval import FitResult, RetrievalSettings
from pycam.formats.atomic import atomic_write_text
from pycam.formats.names import format_text_time

RESULT_COLUMNS = ("Time", "Column density", "CD error", "LDF", "file", "line_shape")


def _number(value: float) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.6e}"


def _result_time(when: dt.datetime | None) -> str:
    return "" if when is None else format_text_time(when, fraction=True)


def results_csv_text(results: Iterable[FitResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for r in results:
        writer.writerow([_result_time(r.time), _number(r.so2), _number(r.so2_error), _number(r.ldf),
                         Path(r.source).name, r.line_shape])
    return buf.getvalue()


def write_results_csv(path: str | os.PathLike[str], results: Iterable[FitResult]) -> Path:
    return atomic_write_text(path, results_csv_text(results))


def processing_params_text(settings: RetrievalSettings, extra: Mapping[str, object] | None = None) -> str:
    ls = settings.line_shape
    lines = {
        "Fit window": f"{settings.fit_window[0]:g}:{settings.fit_window[1]:g}",
        "Stray light window": ("none" if settings.stray_window is None
                               else f"{settings.stray_window[0]:g}:{settings.stray_window[1]:g}"),
        "Polynomial order": settings.poly_order,
        "Offset order": settings.offset_order,
        "Line shape": (f"measured {ls.measured.source}" if ls.measured is not None
                       else f"super-Gaussian FWEM={ls.fwem:g} k={ls.k:g} fitted={ls.fit}"),
        "Warm start": settings.warm_start,
        "Max residual": settings.max_residual,
    }
    lines.update(extra or {})
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def write_processing_params(path: str | os.PathLike[str], settings: RetrievalSettings,
                            extra: Mapping[str, object] | None = None) -> Path:
    return atomic_write_text(path, processing_params_text(settings, extra))
