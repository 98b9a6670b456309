"""LiveProcessing feeds a clear-sky pair into the live camera chain (no Tk needed)."""
from __future__ import annotations

import numpy as np
from helpers.waiting import wait_for

from pycam.gui.live import LiveProcessing
from pycam.gui.ui_messages import ImageFrame
from pycam.gui.worker import GuiQueue


class _Processor:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.carried = False

    def set_pcs_lines(self, lines):
        pass

    def carry_over(self, old):
        self.carried = True

    def process_pair(self, a, b, meta):
        return ("result", self.kwargs.get("clear") is not None)


def _frame(band, second, frame_type="Plume", value=100):
    ts = f"2026-12-07T1200{second:02d}"
    return ImageFrame(band, ts, frame_type, 1000, np.full((4, 6), value, np.uint16), f"{ts}_{band}.png")


def test_a_clear_pair_rebuilds_the_processor_with_it_and_restarts_the_calibration():
    built = []

    def factory(**kwargs):
        built.append(_Processor(**kwargs))
        return built[-1]

    live = LiveProcessing(GuiQueue(), processor_factory=factory)
    live.start()
    try:
        live.feed(_frame("A", 1))
        live.feed(_frame("B", 1))
        wait_for(lambda: live.pairs_processed == 1, 5.0, "the first pair")
        assert "clear" not in built[-1].kwargs
        live.feed(_frame("A", 2, "Clear", 500))
        live.feed(_frame("B", 2, "Clear", 700))
        live.feed(_frame("A", 3))
        live.feed(_frame("B", 3))
        wait_for(lambda: live.pairs_processed == 2, 5.0, "the pair after the clear one")
    finally:
        live.stop()
    clear = built[-1].kwargs["clear"]
    assert clear.img_a.max() == 500 and clear.img_b.max() == 700 and clear.exposure_a_us == 1000
    assert clear.frame_type == "Clear"
    assert not built[-1].carried     # a new background: the live DOAS calibration starts again
