"""Live processing off the Tk thread: data frames in, display and result events out.

:class:`LiveProcessing` is the ``data_sink`` of the :class:`~pycam.gui.station_link.StationLink`.
On the client's thread it decodes each data frame and posts it for display (coalesced:
the window only ever draws the newest A, B and spectrum).  Plume images and spectra are
queued to its own worker thread, which pairs A with B by time string and runs the
real-time camera chain (``RealtimeProcessor.process_pair``) and the DOAS retrieval; their
results come back as ``so2`` and ``doas`` events.  Calibration frames (Dark, Clear,
``<N>ppmm``) are posted as ``cal_frame`` events for the gas-cell wizard; Dark frames and a
clear-sky pair (one Clear frame per band) also go into the live camera chain.

The processor and the retriever are built by factories on the worker thread, so the GUI
can be given stand-ins in tests.  If the processing packages are missing, the live view
still shows the raw data and one error explains why nothing is processed.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import queue as _queue
import threading
import time
from typing import Any, Callable

import numpy as np

from pycam.formats.image_pair import ImagePair
from pycam.formats.names import parse_time
from pycam.gui.ui_messages import ImageFrame, SpectrumFrame, decode_data
from pycam.gui.worker import GuiQueue

log = logging.getLogger(__name__)

CALIBRATION_TYPES = ("Dark", "Clear")


def is_calibration_type(frame_type: str) -> bool:
    return frame_type in CALIBRATION_TYPES or frame_type.endswith("ppmm")


class LiveProcessing:
    """Pairs and processes incoming frames on its own thread; see the module docstring."""

    MAX_UNPAIRED = 20

    def __init__(self, queue: GuiQueue, *, processor_factory: Callable[[], Any] | None = None,
                 retriever_factory: Callable[[], Callable[[SpectrumFrame], Any]] | None = None,
                 backlog: int = 8, truth: Callable[[float, tuple], float] | None = None) -> None:
        self.queue = queue
        self.truth = truth   # (POSIX seconds, PCS lines) -> true total rate (simulated station), or None
        self.processor_factory = processor_factory
        self.retriever_factory = retriever_factory
        self._inbox: _queue.Queue = _queue.Queue()
        self._backlog = backlog
        self._thread: threading.Thread | None = None
        self._unpaired: collections.OrderedDict[str, dict[str, ImageFrame]] = collections.OrderedDict()
        self.processor = None
        self.retriever = None
        self._processor_kwargs: dict = {}
        self.darks: dict[tuple[str, int], np.ndarray] = {}
        self._stale = False
        self._new_background = False
        self.clear_frames: dict[str, ImageFrame] = {}
        self.pairs_processed = 0
        self.pairs_dropped = 0
        self.spectra_processed = 0
        self.last_processing_s = 0.0

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pycam-gui-live", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._inbox.put(("stop", None))
            thread.join(timeout)

    # --- any thread --------------------------------------------------------------------
    def __call__(self, message) -> None:
        """The data sink: called on the client thread with each data message."""
        try:
            frame = decode_data(message)
        except Exception as exc:  # a malformed frame is reported, never kills the client thread
            self.queue.post("error", f"unreadable data frame: {exc}")
            return
        if frame is not None:
            self.feed(frame)

    def feed(self, frame: ImageFrame | SpectrumFrame) -> None:
        if isinstance(frame, ImageFrame):
            self.queue.post("image", frame, coalesce=f"image-{frame.band}")
            if frame.frame_type in ("Dark", "Clear"):
                self._inbox.put((frame.frame_type.lower(), frame))
            if is_calibration_type(frame.frame_type):
                self.queue.post("cal_frame", frame)
                return
        else:
            self.queue.post("spectrum", frame, coalesce="spectrum")
            if is_calibration_type(frame.frame_type):
                self.queue.post("cal_frame", frame)
                return
        if frame.frame_type == "Plume" or (isinstance(frame, SpectrumFrame) and frame.frame_type == "Test"):
            self._inbox.put(("frame", frame))

    def set_pcs_lines(self, lines) -> None:
        """New PCS lines for the processor (applied on the worker thread)."""
        self._inbox.put(("lines", tuple(lines)))

    def configure(self, **changes) -> None:
        """Rebuild the processor with other inputs (e.g. ``calibration=``), on the worker thread."""
        self._inbox.put(("configure", changes))

    # --- worker thread -----------------------------------------------------------------
    def _run(self) -> None:
        pending_lines: tuple | None = None
        while True:
            kind, item = self._inbox.get()
            if kind == "stop":
                return
            try:
                if kind == "lines":
                    pending_lines = item
                    if self.processor is not None:
                        self.processor.set_pcs_lines(item)
                elif kind == "configure":
                    self._rebuild(item, pending_lines)
                elif kind == "dark":
                    self._add_dark(item, pending_lines)
                elif kind == "clear":
                    self._add_clear(item)
                elif kind == "frame":
                    if isinstance(item, SpectrumFrame):
                        self._process_spectrum(item)
                    else:
                        self._add_image(item, pending_lines)
            except Exception as exc:
                log.exception("live processing failed")
                self.queue.post("error", f"live processing: {type(exc).__name__}: {exc}")

    def _rebuild(self, changes: dict, lines) -> None:
        if self.processor_factory is None:
            return
        self._processor_kwargs.update(changes)
        old = self.processor
        self.processor = self.processor_factory(**self._processor_kwargs)
        self._stale = False
        if lines:
            self.processor.set_pcs_lines(lines)
        carry = getattr(self.processor, "carry_over", None)
        if old is not None and carry is not None and "calibration" not in changes and not self._new_background:
            carry(old)  # keep the live DOAS calibration across a rebuild (e.g. new darks)
        self._new_background = False

    def _add_dark(self, frame: ImageFrame, lines) -> None:
        """Keep the newest dark per band and exposure; the processor is rebuilt with them."""
        band = "on" if frame.band == "A" else "off"
        self.darks[(band, frame.exposure_us)] = np.asarray(frame.pixels)
        self._processor_kwargs["darks"] = dict(self.darks)
        self._stale = True  # rebuilt at the next pair, so a dark set costs one rebuild

    def _add_clear(self, frame: ImageFrame) -> None:
        """Keep the newest clear-sky frame per band; once both bands have one, the processor is
        rebuilt with them (background ``bg_mode`` 1 instead of the ambient-ROI fallback, and B
        registered on them).  The AA of a new background is not that of the old one, so the
        live DOAS calibration starts again."""
        band = "on" if frame.band == "A" else "off"
        self.clear_frames[band] = frame
        if len(self.clear_frames) < 2:
            return
        a, b = self.clear_frames["on"], self.clear_frames["off"]
        self._processor_kwargs["clear"] = ImagePair(parse_time(a.time_string), np.asarray(a.pixels),
                                                    np.asarray(b.pixels), a.exposure_us, b.exposure_us,
                                                    "Clear", a.filename, b.filename)
        self.clear_frames = {}
        self._stale = True
        self._new_background = True

    def _ensure_processor(self, lines):
        if self._stale and self.processor is not None and self.processor_factory is not None:
            self._rebuild({}, lines)
        if self.processor is None and self.processor_factory is not None:
            try:
                self.processor = self.processor_factory(**self._processor_kwargs)
            except Exception as exc:
                self.processor_factory = None
                self.queue.post("error", f"camera processing unavailable, showing raw images only: {exc}")
                return None
            if lines:
                self.processor.set_pcs_lines(lines)
        return self.processor

    def _add_image(self, frame: ImageFrame, lines) -> None:
        slot = self._unpaired.setdefault(frame.time_string, {})
        slot[frame.band] = frame
        if len(slot) < 2:
            while len(self._unpaired) > self.MAX_UNPAIRED:
                self._unpaired.popitem(last=False)
            return
        del self._unpaired[frame.time_string]
        # Behind? Drop the oldest waiting work rather than fall further behind the station.
        if self._inbox.qsize() > self._backlog:
            self.pairs_dropped += 1
            return
        processor = self._ensure_processor(lines)
        if processor is None:
            return
        a, b = slot["A"], slot["B"]
        pair = ImagePair(parse_time(frame.time_string), a.pixels, b.pixels, a.exposure_us, b.exposure_us,
                         frame.frame_type, a.filename, b.filename)
        start = time.perf_counter()
        result = processor.process_pair(pair.img_a, pair.img_b, pair.meta)
        if self.truth is not None and lines and dataclasses.is_dataclass(result) and hasattr(result, "truth_kg_s"):
            result = dataclasses.replace(result, truth_kg_s=self.truth(pair.time.timestamp(), lines))
        self.last_processing_s = time.perf_counter() - start
        self.pairs_processed += 1
        self.queue.post("so2", result)

    def _process_spectrum(self, frame: SpectrumFrame) -> None:
        if self.retriever is None and self.retriever_factory is not None:
            try:
                self.retriever = self.retriever_factory()
            except Exception as exc:
                self.retriever_factory = None
                self.queue.post("error", f"DOAS retrieval unavailable, showing raw spectra only: {exc}")
        if self.retriever is None:
            return
        result = self.retriever(frame)
        self.spectra_processed += 1
        if result is None:
            return
        self.queue.post("doas", (frame, result))
        add = getattr(self.processor, "add_doas", None)
        if add is not None and frame.frame_type == "Plume":
            add(parse_time(frame.time_string), result.column, result.column_err, result.ok)
