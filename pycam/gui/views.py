"""Assembles the notebook tabs and adapts the processing libraries to the live worker.

The adapters run on the live-processing thread: they call the camera chain
(:mod:`pycam.processing.realtime`) and the DOAS retrieval (:mod:`pycam.doas.retrieval`)
and reduce their results to the small display records of :mod:`pycam.gui.result_series`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from pycam.formats.names import naive_utc, parse_time
from pycam.gui.result_series import DoasDisplay, LineRate, So2Display
from pycam.gui.ui_messages import SpectrumFrame


def seconds_of(time_string: str) -> float:
    """POSIX seconds of a PyCam time string (:data:`~pycam.formats.names.TIME_FORMAT`, UTC)."""
    try:
        when = parse_time(time_string)
    except ValueError:
        return time.time()
    return when.timestamp()


# --- DOAS ------------------------------------------------------------------------------
class DoasAdapter:
    """Callable: SpectrumFrame -> DoasDisplay, with the retrieval the ``[doas]`` section asks for
    (:func:`pycam.doas.configure.retrieval_from_config`, as ``pycam doas``: self-calibrated line
    shape by default, light-dilution corrected columns with ``use_light_dilution_spec``)."""

    def __init__(self, doas=None) -> None:
        from pycam.doas.configure import default_doas_section, references_from_config, retrieval_from_config

        section = dict(default_doas_section(), **(doas or {}))
        self.retrieval = retrieval_from_config(section, references_from_config(section))
        self.dark = None

    def set_dark(self, frame: SpectrumFrame) -> None:
        self.retrieval.dark = self._measured(frame)

    @staticmethod
    def _measured(frame: SpectrumFrame):
        from pycam.doas.spectra import MeasuredSpectrum

        when = naive_utc(frame.time)                        # the retrieval keeps naive UTC times
        return MeasuredSpectrum(np.asarray(frame.wavelengths, float), np.asarray(frame.counts, float),
                                source=frame.filename, integration_ms=frame.integration_ms, coadd=frame.coadd,
                                frame_type=frame.frame_type, time=when)

    def __call__(self, frame: SpectrumFrame) -> DoasDisplay:
        from pycam.doas.spectra import SpectrumError

        try:
            fit = self.retrieval.fit(self._measured(frame))
        except (SpectrumError, ValueError) as exc:
            empty = np.array([], dtype=float)
            return DoasDisplay(frame.time_string, seconds_of(frame.time_string), empty, empty, empty,
                               float("nan"), float("nan"), ok=False, note=f"not fitted: {exc}")
        note = "" if fit.ok else fit.quality
        if math.isfinite(fit.ldf):
            note = "; ".join(filter(None, [note, f"light dilution corrected, LDF {fit.ldf:.2f}"]))
        return DoasDisplay(frame.time_string, seconds_of(frame.time_string), np.asarray(fit.wavelengths),
                           np.asarray(fit.measured), np.asarray(fit.model), float(fit.so2), float(fit.so2_error),
                           ok=fit.ok, note=note)


def default_retriever_factory(config):
    """DOAS retrieval from the config's ``[doas]`` section (its defaults without one)."""
    try:
        doas = dict(config["doas"])
    except (KeyError, TypeError):
        doas = None
    return lambda: DoasAdapter(doas)


# --- camera chain ----------------------------------------------------------------------
def _field(obj, *names, default=float("nan")):
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            value = getattr(obj, name)
            return default if value is None else value
    return default


def line_rate(rate) -> LineRate:
    return LineRate(float(_field(rate, "flux_kg_s", "flux")), float(_field(rate, "flux_err", "flux_err_kg_s")),
                    float(_field(rate, "velo_eff", "velo_eff_m_s")), float(_field(rate, "velo_eff_err")),
                    int(_field(rate, "flag", default=0)), str(_field(rate, "flag_reason", default="")))


def so2_display(result, time_string: str, processing_s: float, fov=None, note: str = "") -> So2Display:
    """Reduce a ``PairResult`` to what the analysis view draws."""
    images: dict[str, np.ndarray] = {}
    for unit, names in (("AA", ("aa",)), ("tau_A", ("tau_a",)), ("column", ("so2",))):
        image = _field(result, *names, default=None)
        if image is not None:
            images[unit] = np.asarray(image, dtype=np.float32)
    rates = {str(name): line_rate(rate) for name, rate in (_field(result, "emission_rates", default={}) or {}).items()}
    lines = [r for n, r in rates.items() if n != "total" and math.isfinite(r.flux_kg_s)]
    if "total" not in rates and lines:
        flux = sum(r.flux_kg_s for r in lines)
        err = math.sqrt(sum(r.flux_err_kg_s ** 2 for r in lines if math.isfinite(r.flux_err_kg_s)))
        velo = float(np.nanmean([r.velo_eff_m_s for r in lines]))
        rates["total"] = LineRate(flux, err, velo)
    warnings = _field(result, "warnings", default=[]) or []
    notes = [note] if note else []
    notes += [str(w) for w in warnings]
    return So2Display(time_string, seconds_of(time_string), images, rates, processing_s, fov, "; ".join(notes))


class ProcessorAdapter:
    """Wraps ``RealtimeProcessor``; ``process_pair`` returns a :class:`So2Display`.

    Without a fixed calibration it calibrates itself from the DOAS columns (PyCam's default,
    ``cal_type_int`` 1) through :class:`pycam.processing.live_calibration.SelfCalibratingProcessor`;
    its :attr:`status` (FOV, fit with errors, points, age) is shown with every result.
    """

    def __init__(self, processor, *, doas_calibration: bool = True, **live_options: Any) -> None:
        self.processor = processor
        self.live_cal = None
        if doas_calibration and getattr(processor, "calibration", None) is None:
            from pycam.processing.live_calibration import SelfCalibratingProcessor

            self.live_cal = SelfCalibratingProcessor(processor, **live_options)

    @property
    def calibrator(self):
        return None if self.live_cal is None else self.live_cal.fov_calibrator

    @property
    def fov(self):
        return None if self.live_cal is None else self.live_cal.fov

    @property
    def status(self):
        return None if self.live_cal is None else self.live_cal.status

    def set_pcs_lines(self, lines) -> None:
        self.processor.set_pcs_lines(tuple(lines))

    def carry_over(self, old: "ProcessorAdapter") -> None:
        """Take the live DOAS calibration state of the adapter this one replaces."""
        if self.live_cal is not None and getattr(old, "live_cal", None) is not None:
            self.live_cal.carry_over(old.live_cal)

    def add_doas(self, when, column: float, error: float, ok: bool) -> None:
        if self.live_cal is not None:
            self.live_cal.add_doas(when, column, error, ok)

    def process_pair(self, img_a, img_b, meta) -> So2Display:
        start = time.perf_counter()
        if self.live_cal is None:
            result, note = self.processor.process_pair(img_a, img_b, meta), ""
        else:
            result = self.live_cal.process_pair(img_a, img_b, meta)
            note = self.live_cal.note
        display = so2_display(result, meta["time_string"], time.perf_counter() - start, self.fov, note)
        return dataclasses.replace(display, calibration=self.status)


def live_defaults(config) -> dict[str, Any]:
    """Live-processing defaults that differ from the batch ones.

    * ``plume_distance_m``: the ``[simulator]`` plume distance of the station config (the
      demo's scene); a real station gives its geometry in a settings file or the form.
    * ``ambient_roi``: for the simulator's scenes with terrain and clouds, the clear-sky region
      ``pycam simulate`` writes in their ``process_config.yml``.
    * ``ref_check_mode`` off: with the live DOAS calibration still settling, its intercept
      puts the ambient-ROI column outside PyCam's fixed bounds and would suppress every
      emission rate; the Analysis tab can switch the check on.
    * ``reg_mode`` ``ecc``: B is registered onto A from the first pair, kept only if it makes
      them clearly more alike (a real station's saved matrix goes in a settings file as
      ``reg_mode: file``); see :func:`pycam.processing.realtime.live_registration`.
    """
    values: dict[str, Any] = {"ref_check_mode": False, "reg_mode": "ecc"}
    try:
        values["plume_distance_m"] = float(config["simulator"]["plume_distance_m"])
        scene = str(config["simulator"]["scene"])
    except (KeyError, TypeError):
        return values
    from pycam.sim.dataset import REALISTIC_AMBIENT_ROI
    from pycam.sim.landscape import scene_preset

    if scene_preset(scene)[0].terrain:
        # the sky region `pycam simulate` writes for these scenes (clear sky left of the vent,
        # below the clouds): the default top-left corner lies in the cloud rows, so most pairs
        # were flagged BG_CLOUD and the background scaled on clouds
        values["ambient_roi"] = list(REALISTIC_AMBIENT_ROI)
    return values


def live_settings(config, overrides: dict | None = None, settings_file=None):
    """Processing settings for live use: a settings file (or the defaults), the live
    defaults (see :func:`live_defaults`), then ``overrides`` from the form."""
    from pycam.processing.settings import load_settings, settings_from_mapping

    values: dict[str, Any] = {}
    if settings_file is not None:
        loaded = load_settings(settings_file).values
        values.update({k: (str(v) if hasattr(v, "__fspath__") else v) for k, v in loaded.items() if v is not None})
    else:
        values.update(live_defaults(config))
    values.update(overrides or {})
    return settings_from_mapping(values)


def default_processor_factory(config):
    def factory(**changes: Any) -> ProcessorAdapter:
        from pycam.processing.realtime import RealtimeProcessor

        settings = changes.pop("settings", None) or live_settings(config)
        processor = RealtimeProcessor(settings, **changes)
        return ProcessorAdapter(processor, doas_calibration=changes.get("calibration") is None)

    return factory


# --- tabs -------------------------------------------------------------------------------
def build_views(app) -> dict:
    """Create every tab on ``app.notebook``; returns {title: frame} in tab order."""
    from pycam.gui.acquisition_view import AcquisitionView
    from pycam.gui.analysis_view import AnalysisView
    from pycam.gui.camera_view import CameraView
    from pycam.gui.overview_view import OverviewView
    from pycam.gui.postprocess_view import PostProcessView
    from pycam.gui.schedule_view import ScheduleView
    from pycam.gui.spectrometer_view import SpectrometerView

    nb, queue, config = app.notebook, app.queue, app.config
    return {
        "Overview": OverviewView(nb, queue, health_settings=dict(config["health"])),
        "Camera": CameraView(nb, queue, app.send, app.tracker, dict(config["camera"])),
        "Spectrometer": SpectrometerView(nb, queue, app.send, app.tracker, dict(config["spectrometer"])),
        "Acquisition": AcquisitionView(nb, app),
        "Analysis": AnalysisView(nb, queue, on_lines_changed=app.live.set_pcs_lines,
                                 on_settings=lambda overrides, path: app.live.configure(
                                     settings=live_settings(config, overrides, path)),
                                 plume_distance_m=live_defaults(config).get("plume_distance_m")),
        "Post-processing": PostProcessView(nb, app),
        "Schedule": ScheduleView(nb, app),
    }
