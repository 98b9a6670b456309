"""Assembles the notebook tabs and adapts the processing libraries to the live worker.

The adapters run on the live-processing thread: they call the camera chain
(:mod:`pycam.processing.realtime`) and the DOAS retrieval (:mod:`pycam.doas.retrieval`)
and reduce their results to the small display records of :mod:`pycam.gui.results`.
"""
from __future__ import annotations

import datetime as _dt
import math
import time
from typing import Any

import numpy as np

from pycam.gui.messages import SpectrumFrame
from pycam.gui.results import DoasDisplay, LineRate, So2Display


def seconds_of(time_string: str) -> float:
    """POSIX seconds of a PyCam time string (``%Y-%m-%dT%H%M%S``, UTC)."""
    try:
        when = _dt.datetime.strptime(time_string, "%Y-%m-%dT%H%M%S").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return time.time()
    return when.timestamp()


# --- DOAS ------------------------------------------------------------------------------
class DoasAdapter:
    """Callable: SpectrumFrame -> DoasDisplay, using :class:`pycam.doas.retrieval.DoasRetrieval`."""

    def __init__(self, reference_dir=None, fit_window=(308.0, 318.0)) -> None:
        from pycam.doas.references import load_references
        from pycam.doas.retrieval import DoasRetrieval, RetrievalSettings

        self.retrieval = DoasRetrieval(load_references(reference_dir), RetrievalSettings(fit_window=fit_window))
        self.dark = None

    def set_dark(self, frame: SpectrumFrame) -> None:
        self.retrieval.dark = self._measured(frame)

    @staticmethod
    def _measured(frame: SpectrumFrame):
        from pycam.doas.spectra import MeasuredSpectrum

        return MeasuredSpectrum(np.asarray(frame.wavelengths, float), np.asarray(frame.counts, float),
                                source=frame.filename, integration_ms=frame.integration_ms, coadd=frame.coadd,
                                frame_type=frame.frame_type)

    def __call__(self, frame: SpectrumFrame) -> DoasDisplay:
        from pycam.doas.spectra import SpectrumError

        try:
            fit = self.retrieval.fit(self._measured(frame))
        except (SpectrumError, ValueError) as exc:
            empty = np.array([], dtype=float)
            return DoasDisplay(frame.time_string, seconds_of(frame.time_string), empty, empty, empty,
                               float("nan"), float("nan"), ok=False, note=f"not fitted: {exc}")
        return DoasDisplay(frame.time_string, seconds_of(frame.time_string), np.asarray(fit.wavelengths),
                           np.asarray(fit.measured), np.asarray(fit.model), float(fit.so2), float(fit.so2_error),
                           ok=fit.ok, note="" if fit.ok else fit.quality)


def default_retriever_factory(config):
    """DOAS settings from the config's ``[doas]`` section (reference directory, fit window)."""
    try:
        doas = config["doas"]
        reference_dir, fit_window = doas.get("reference_dir"), tuple(doas.get("fit_window", (308.0, 318.0)))
    except (KeyError, TypeError):
        reference_dir, fit_window = None, (308.0, 318.0)
    return lambda: DoasAdapter(reference_dir, fit_window)


# --- camera chain ----------------------------------------------------------------------
def _field(obj, *names, default=float("nan")):
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def line_rate(rate) -> LineRate:
    return LineRate(float(_field(rate, "flux_kg_s", "flux")), float(_field(rate, "flux_err", "flux_err_kg_s")),
                    float(_field(rate, "velo_eff", "velo_eff_m_s")), float(_field(rate, "velo_eff_err")))


def so2_display(result, time_string: str, processing_s: float) -> So2Display:
    """Reduce a ``PairResult`` to what the analysis view draws."""
    images: dict[str, np.ndarray] = {}
    for unit, names in (("AA", ("aa",)), ("tau_A", ("tau_a",)), ("column", ("so2", "column"))):
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
    return So2Display(time_string, seconds_of(time_string), images, rates, processing_s)


class ProcessorAdapter:
    """Wraps ``RealtimeProcessor``: ``process_pair`` returns a :class:`So2Display`."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def set_pcs_lines(self, lines) -> None:
        self.processor.set_pcs_lines(tuple(lines))

    def process_pair(self, img_a, img_b, meta) -> So2Display:
        start = time.perf_counter()
        result = self.processor.process_pair(img_a, img_b, meta)
        return so2_display(result, meta["time"], time.perf_counter() - start)


def default_processor_factory(config):
    def factory(**changes: Any) -> ProcessorAdapter:
        from pycam.processing.realtime import RealtimeProcessor
        from pycam.processing.settings import default_settings

        settings = changes.pop("settings", None) or default_settings()
        return ProcessorAdapter(RealtimeProcessor(settings, **changes))

    return factory


# --- tabs -------------------------------------------------------------------------------
def build_views(app) -> dict:
    """Create every tab on ``app.notebook``; returns {title: frame} in tab order."""
    from pycam.gui.acquisition_view import AcquisitionView
    from pycam.gui.analysis_view import AnalysisView
    from pycam.gui.camera_view import CameraView
    from pycam.gui.postprocess_view import PostProcessView
    from pycam.gui.schedule_view import ScheduleView
    from pycam.gui.spectrometer_view import SpectrometerView

    nb, queue, config = app.notebook, app.queue, app.config
    return {
        "Camera": CameraView(nb, queue, app.send, app.tracker, dict(config["camera"])),
        "Spectrometer": SpectrometerView(nb, queue, app.send, app.tracker, dict(config["spectrometer"])),
        "Acquisition": AcquisitionView(nb, app),
        "Analysis": AnalysisView(nb, queue, on_lines_changed=app.live.set_pcs_lines),
        "Post-processing": PostProcessView(nb, app),
        "Schedule": ScheduleView(nb, app),
    }
