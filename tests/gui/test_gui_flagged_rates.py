"""The analysis view greys flagged emission-rate samples and explains them on hover (issue 9)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gui_drive import pump_until

pytestmark = pytest.mark.gui


def _display(seconds, rates):
    from pycam.gui.result_series import So2Display

    return So2Display("2026-03-15T120000", seconds, {"AA": np.zeros((48, 64), np.float32)}, rates)


def test_flagged_samples_are_grey_with_a_tooltip_and_never_a_zero_rate(tk_root):
    from pycam.gui.analysis_view import AnalysisView
    from pycam.gui.result_series import LineRate
    from pycam.gui.views import line_rate
    from pycam.gui.worker import GuiQueue
    from pycam.processing.emission import EmissionRate
    from pycam.processing.quality import Flag

    view = AnalysisView(tk_root, GuiQueue(), on_lines_changed=lambda lines: None)
    view.pack(fill="both", expand=True)
    tk_root.update()
    good = EmissionRate(2.0, 0.2, 3.0, 0.3)
    degenerate = EmissionRate(0.001, 0.0, 0.0, 0.0).flagged(Flag.FLOW_NEAR_ZERO)
    weak = EmissionRate(2.5, 0.3, 3.2, 0.4).flagged(Flag.XCORR_WEAK)
    assert math.isnan(degenerate.flux_kg_s)          # an invalidating flag blanks the value
    for k, rate in enumerate([good, degenerate, weak, good]):
        view.show_result(_display(1000.0 + 8 * k, {"0": line_rate(rate)}))
    assert pump_until(tk_root, lambda: view.results_shown == 4, 5)
    # the flag travels through the GUI record
    assert line_rate(degenerate).flag == int(Flag.FLOW_NEAR_ZERO)
    assert line_rate(degenerate).flag_reason == "FLOW_NEAR_ZERO"
    # no near-zero rate is drawn or kept for the degenerate sample
    assert [round(r[1], 3) for r in view.rates["0"]] == [2.0, 2.5, 2.0]
    # grey ring on the weak sample's value, grey cross (axes row) for the blank one
    marks = view.flag_marks
    xv, yv = marks.valued.get_data()
    xb, _ = marks.blank.get_data()
    assert list(yv) == [2.5] and list(xv) == [16.0] and list(xb) == [8.0]
    tk_root.update()
    # hovering near the grey marks tells why
    x, y = view.rate_ax.transData.transform((16.0, 2.5))
    assert "XCORR_WEAK" in marks.tooltip_at(x + 2, y)
    x, y = marks.blank.get_transform().transform((8.0, 0.04))
    tip = marks.tooltip_at(x, y + 1)
    assert "FLOW_NEAR_ZERO" in tip and "no value" in tip
    x, y = view.rate_ax.transData.transform((0.0, 2.0))
    assert marks.tooltip_at(x, y) is None          # a good sample has no tooltip

    class Event:
        inaxes = view.rate_ax

    ev = Event()
    ev.x, ev.y = view.rate_ax.transData.transform((16.0, 2.5))
    marks.hover(ev)
    assert marks.tip.get_visible() and "XCORR_WEAK" in marks.tip.get_text()
    # the plot (what a user sees) with the greyed marks
    from pathlib import Path

    art = Path(__file__).resolve().parents[2] / "artifacts"
    art.mkdir(exist_ok=True)
    view.rate_plot.figure.savefig(art / "gui_flagged_rates.png", dpi=80)
    view.reset_series()
    assert marks.marks == [] and len(marks.valued.get_data()[0]) == 0
