"""The simulator's truth for a live chain: the true emission rate through PCS lines at a given
time and the true column/AA slope, from a station configuration's ``[simulator]`` scene.

Used by ``pycam demo`` (headless and GUI) to show the truth beside the live results.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

import numpy as np

from pycam.formats.geometry import PCSLine
from pycam.sim.scene import Scene, posix_time


class SimTruth:
    """True rates through ``lines`` (default: the ones given to :meth:`rate`) of ``config``'s scene."""

    def __init__(self, config: Any, lines: Sequence[PCSLine] = ()) -> None:
        self.scene = Scene.from_config(config)
        self.lines = tuple(lines)

    def rate(self, seconds: float, lines: Sequence[PCSLine] | None = None) -> float:
        """Total true flux (kg/s) through the lines at POSIX time ``seconds`` (NaN without lines)."""
        lines = self.lines if lines is None else tuple(lines)
        if not lines:
            return float("nan")
        return float(sum(self.scene.line_truth(line, seconds, False)["flux_kg_s"] for line in lines))

    def slopes(self, columns: np.ndarray | None = None) -> dict[str, Any]:
        """The true column/AA slope: the through-origin fit over 0-2e18 (``truth.json``'s
        ``column_per_aa_fit_0_2e18``) and, given the DOAS columns a calibration used, a
        straight-line fit of the true AA curve over their range (what a linear calibration with
        intercept should find there)."""
        out: dict[str, Any] = {"slope_fit_0_2e18": float(self.scene.truth([])["column_per_aa_fit_0_2e18"])}
        if columns is not None and len(columns) > 1:
            grid = np.linspace(float(np.min(columns)), float(np.max(columns)), 41)
            curve = self.scene.aa_curve(grid)
            slope, intercept = np.polyfit(curve["aa"], curve["column_molec_cm2"], 1)
            out.update(slope_local=float(slope), intercept_local=float(intercept),
                       column_range=[float(grid[0]), float(grid[-1])])
        return out

    def calibration_check(self, column_of_aa, columns: np.ndarray) -> dict[str, Any]:
        """How a calibration ``column_of_aa`` (AA -> molec cm-2) reads the true AA curve: its
        straight-line slope over the range of ``columns`` (the DOAS columns it was fitted on;
        compare with :meth:`slopes`' ``slope_local``) and its relative column error below and in
        that range (the PCS lines hold mostly lower columns than the spectrometer's FOV)."""
        lo, hi = float(np.min(columns)), float(np.max(columns))
        grid = np.linspace(lo, hi, 41)
        aa = np.asarray(self.scene.aa_curve(grid)["aa"])
        out: dict[str, Any] = {"slope_local": float(np.polyfit(aa, column_of_aa(aa), 1)[0])}
        checks = np.array([0.1, 0.25, 0.5, 1.0]) * lo
        checks = np.concatenate([checks, [lo, 0.5 * (lo + hi), hi]])
        read = column_of_aa(np.asarray(self.scene.aa_curve(checks)["aa"]))
        out["column_rel_diff"] = {f"{c:.3g}": float(r / c - 1) for c, r in zip(checks, read)}
        return out

    def fov_columns(self, times: Sequence[Any]) -> np.ndarray:
        """The true SO2 column (molec cm-2) averaged over the spectrometer's FOV at each time
        (datetime or POSIX seconds): what the simulated spectrometer sees at that trigger time."""
        seconds = []
        for t in times:
            if isinstance(t, dt.datetime):
                seconds.append(posix_time(t))
            elif isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
                seconds.append(float(t))
            else:
                raise TypeError(f"true FOV column: a sample time must be a datetime or POSIX seconds, got {t!r}")
        return np.array([self.scene.field.fov_column(t) for t in seconds], dtype=np.float64)

    @property
    def fov(self) -> dict[str, float]:
        x, y = self.scene.field.fov_centre
        return {"x": float(x), "y": float(y), "radius_px": float(self.scene.params.fov_radius_px)}
