"""The live chain of ``pycam demo --headless``: the same processing as the GUI's live view
(:class:`pycam.gui.live.LiveProcessing` with the default processor and DOAS retriever: the
real-time camera chain, the DOAS retrieval and the live DOAS calibration of
:mod:`pycam.processing.live_calibration`), fed by a station client subscribed to images and
spectra, compared with the simulator's truth.

Each period it prints the live total emission rate, its flag and the true rate through the same
PCS lines (:meth:`pycam.sim.scene.Scene.line_truth` at the pair's trigger time); at the end
:meth:`HeadlessLiveChain.summary` gives the mean live rate after the calibration was adopted,
the truth over the same pairs, the flagged fraction and the calibration (written with
``--summary-json``); with the simulator's truth, the calibration's samples carry the true FOV
column at each sample time and ``slope_vs_truth``/``slope_rel_diff`` compare the calibration's
slope with the true one over those samples (:meth:`HeadlessLiveChain._slope_vs_truth`).

Flags (:func:`live_flag`, bits of ``pycam.processing.quality.Flag``): the live chain's own flags
on the total rate plus what the live loop knows: no calibration
(``CAL_MISSING``), a calibration older than :data:`CAL_STALE_S` (``CAL_STALE``), no finite rate
or a near-zero flow (``FLOW_NEAR_ZERO``), the ambient-reference check failed
(``BG_OUT_OF_BOUNDS``).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pycam.formats.atomic import atomic_write_text
from pycam.formats.geometry import PCSLine
from pycam.sim.line_truth import SimTruth

#: the PCS line the GUI starts with (pycam.gui.app.DEFAULT_PCS_LINE): vertical through the centre
DEFAULT_LINES = (PCSLine(324, 60, 324, 426, "right", "0"),)


def scene_lines(truth: SimTruth | None) -> tuple[PCSLine, ...]:
    """The PCS lines ``pycam simulate`` writes for this scene (across the plume, in the sky)
    when the simulator provides them (``pycam.sim.dataset.pcs_lines``), else :data:`DEFAULT_LINES`."""
    try:
        from pycam.sim.dataset import pcs_lines
    except ImportError:
        return DEFAULT_LINES
    if truth is None:
        return DEFAULT_LINES
    return tuple(pcs_lines(truth.scene, 40.0))
#: a calibration older than this flags its samples CAL_STALE (PyCam recalibrates every 30 min)
CAL_STALE_S = 3600.0
MIN_SPEED_M_S = 0.05


def live_flag(display) -> tuple[int, str]:
    """(bitmask, ';'-joined reason codes) of one live result (a ``So2Display``): the flags the
    live chain put on the total rate, plus what only the live loop knows (no or an old
    calibration, a near-zero speed, a failed reference check); bits of
    :class:`pycam.processing.quality.Flag`."""
    from pycam.processing.quality import Flag, reason

    flag = Flag(0)
    status = getattr(display, "calibration", None)
    when = dt.datetime.fromtimestamp(display.seconds, dt.timezone.utc)
    if status is None or not status.calibrated:
        flag |= Flag.CAL_MISSING
    elif status.age_s(when) > CAL_STALE_S:
        flag |= Flag.CAL_STALE
    total = display.rates.get("total")
    if total is not None:
        flag |= Flag(int(getattr(total, "flag", 0) or 0))
    if status is not None and status.calibrated:
        if total is None or not math.isfinite(total.flux_kg_s) or not math.isfinite(total.velo_eff_m_s) \
                or abs(total.velo_eff_m_s) < MIN_SPEED_M_S:
            flag |= Flag.FLOW_NEAR_ZERO
    if "reference check failed" in display.note:
        flag |= Flag.BG_OUT_OF_BOUNDS
    return int(flag), reason(flag)


class HeadlessLiveChain:
    """Live processing without a window; ``on_message`` is the station client's callback."""

    def __init__(self, config, *, lines: Sequence[PCSLine] = DEFAULT_LINES, truth: SimTruth | None = None,
                 printer: Callable[[str], None] = print) -> None:
        from pycam.gui.live import LiveProcessing
        from pycam.gui.views import default_processor_factory, default_retriever_factory
        from pycam.gui.worker import GuiQueue

        self.queue = GuiQueue()
        self.live = LiveProcessing(self.queue, processor_factory=default_processor_factory(config),
                                   retriever_factory=default_retriever_factory(config),
                                   truth=None if truth is None else truth.rate)
        self.live.set_pcs_lines(lines)
        self.truth = truth
        self.printer = printer
        self.samples: list[dict[str, Any]] = []
        self.notes: list[str] = []        # one-off processing notes (registration) not yet printed
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._reported = 0
        self.queue.subscribe("so2", self._on_result)
        self.queue.subscribe("error", self.errors.append)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()
        self.pump()

    def on_message(self, message) -> None:
        if getattr(message, "meta", None) is not None and hasattr(message, "array"):
            self.live(message)

    def pump(self) -> None:
        while self.queue.pump(0.2):
            pass

    def _on_result(self, display) -> None:
        total = display.rates.get("total")
        flag, reason = live_flag(display)
        status = display.calibration
        sample = {
            "time": display.time_string, "seconds": display.seconds,
            "live_kg_s": float(total.flux_kg_s) if total is not None else float("nan"),
            "velo_eff_m_s": float(total.velo_eff_m_s) if total is not None else float("nan"),
            "truth_kg_s": display.truth_kg_s,
            "flag": flag, "flag_reason": reason,
            "calibrated": bool(status is not None and status.calibrated),
        }
        notes = [n for n in display.note.split("; ") if n.startswith("registration:")]
        with self._lock:
            self.samples.append(sample)
            self.notes.extend(notes)

    def report(self) -> list[str]:
        """One line per sample since the last report: live rate, flag, truth, calibration."""
        self.pump()
        with self._lock:
            new = self.samples[self._reported:]
            self._reported = len(self.samples)
            lines = [f"live chain: {note}" for note in self.notes]
            self.notes.clear()
        status = self.status
        for s in new:
            when = dt.datetime.fromtimestamp(s["seconds"], dt.timezone.utc)
            cal = "no calibration yet" if status is None or not status.calibrated else \
                f"cal slope {status.slope:.3e}±{status.slope_err:.1e}, {status.n_points} pts, " \
                f"age {status.age_s(when):.0f} s"
            lines.append(f"live {s['time']}: rate {s['live_kg_s']:.2f} kg/s, flag {s['flag']} "
                         f"{s['flag_reason'] or 'ok'}, truth {s['truth_kg_s']:.2f} kg/s, "
                         f"v {s['velo_eff_m_s']:.2f} m/s ({cal})")
        return lines

    @property
    def status(self):
        processor = self.live.processor
        return getattr(processor, "status", None)

    def summary(self) -> dict[str, Any]:
        self.pump()
        with self._lock:
            samples = list(self.samples)
        after = [s for s in samples if s["calibrated"]]
        good = [s for s in after if s["flag"] == 0 and math.isfinite(s["live_kg_s"])]
        mean = lambda key, rows: float(np.mean([r[key] for r in rows])) if rows else float("nan")  # noqa: E731
        live_mean, truth_mean = mean("live_kg_s", good), mean("truth_kg_s", good)
        status = self.status
        calibration: dict[str, Any] = {"calibrated": bool(status is not None and status.calibrated)}
        if status is not None and status.calibrated:
            calibration.update(fitted_at=status.fitted_at.isoformat(), n_points=status.n_points,
                               fov_x=status.centre_x, fov_y=status.centre_y, fov_radius_px=status.radius,
                               coeffs=list(status.coeffs), coeff_errors=list(status.coeff_errors),
                               slope=status.slope, slope_err=status.slope_err, intercept=status.intercept,
                               intercept_err=status.intercept_err, correlation=status.correlation,
                               searches=status.searches)
            if self.truth is not None:
                current = getattr(self.live.processor.calibrator, "current", None)
                truth = self.truth.slopes(None if current is None else current.columns)
                calibration["truth"] = truth
                calibration["slope_rel_diff_fit_0_2e18"] = status.slope / truth["slope_fit_0_2e18"] - 1
                if "slope_local" in truth:
                    # the calibration curve's straight-line slope over the DOAS columns it was
                    # fitted on, against the simulator's ideal curve there (no light dilution, no
                    # FOV averaging: the AA the chain measures differs from it, which the DOAS
                    # calibration absorbs; informative, the rate is what is judged)
                    check = self.truth.calibration_check(status.column, current.columns)
                    calibration["check"] = check
                    calibration["slope_rel_diff_local"] = check["slope_local"] / truth["slope_local"] - 1
        if self.truth is not None:
            calibration["true_fov"] = self.truth.fov
            calibration.update(self._slope_vs_truth())
        return {
            "samples": len(samples),
            "samples_after_calibration": len(after),
            "samples_used": len(good),
            "flagged_fraction": (1 - len(good) / len(after)) if after else 1.0,
            "flagged_fraction_all": (sum(1 for s in samples if s["flag"]) / len(samples)) if samples else 1.0,
            "mean_live_rate_kg_s": live_mean,
            "mean_truth_kg_s": truth_mean,
            "live_vs_truth": (live_mean / truth_mean - 1) if good and truth_mean else float("nan"),
            "nominal_emission_rate_kg_s": float(self.truth.scene.params.emission_rate_kg_s) if self.truth else None,
            "first_calibrated_sample": after[0]["time"] if after else None,
            "calibration": calibration,
            "errors": self.errors[:20],
            "pairs_dropped": self.live.pairs_dropped,
        }

    def _slope_vs_truth(self) -> dict[str, Any]:
        """The adopted calibration's samples with the simulator's true FOV column at each sample
        time, and its slope against the true slope there (issue 10: "DOAS-calibrated slope within
        10 % of the true slope"; :func:`pycam.processing.doas_calibration.slope_against_truth`).
        The true slope relates the AA the chain measured in the FOV to the true column, so FOV
        averaging and light dilution count as truth, not as calibration error."""
        from pycam.processing.doas_calibration import slope_against_truth

        adopted = getattr(getattr(self.live.processor, "live_cal", None), "calibration", None)
        fit = None if adopted is None else adopted.current
        if fit is None or self.truth is None:
            return {}
        times, aa, columns, _ = adopted.samples()
        true_columns = self.truth.fov_columns(times)
        out: dict[str, Any] = {"samples": {"time": [t.isoformat() for t in times], "aa_fov": aa.tolist(),
                                           "doas_column": columns.tolist(), "true_fov_column": true_columns.tolist()}}
        out["slope_vs_truth"] = slope_against_truth(fit.coeffs, aa, true_columns, adopted.order, adopted.through_origin)
        out["slope_rel_diff"] = out["slope_vs_truth"]["rel_diff"]["secant_at_median_aa"]
        return out

    def write_summary(self, path: Path) -> Path:
        text = json.dumps(_finite(self.summary()), indent=2, allow_nan=False)
        return atomic_write_text(Path(path), text + "\n")


def _finite(value):
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
