"""Overview tab (the first one): everything live at a glance.

On top, the health of every device (pycam.gui.health_panel: heartbeat, clock offset and
warnings).  Below, camera A and B, the calibrated SO2 image, the latest spectrum with the fit
window, the latest DOAS fit (measured vs model) and the total emission rate with its error
band, in one figure updated by blitting.  The detailed views and all settings are in the
other tabs.
"""
from __future__ import annotations

from tkinter import ttk

import numpy as np

from pycam.gui.camera_view import FULL_SCALE
from pycam.gui.health_panel import HealthPanel
from pycam.gui.ui_messages import ImageFrame, SpectrumFrame
from pycam.gui.plots import BlitCanvas, GrowingSeries, display_extent, for_display, nice_limits, robust_range
from pycam.gui.result_series import DoasDisplay, So2Display
from pycam.gui.spectrometer_view import FIT_WINDOW_NM, SPECTRUM_FULL_SCALE
from pycam.gui.worker import GuiQueue


class OverviewView(ttk.Frame):
    def __init__(self, master, queue: GuiQueue, fit_window=FIT_WINDOW_NM, health_settings=None) -> None:
        super().__init__(master)
        health_settings = health_settings or {}
        self.health = HealthPanel(self, queue, clock_warn_ms=health_settings.get("clock_offset_warn_ms", 50.0),
                                  heartbeat_s=health_settings.get("heartbeat_s", 10.0))
        self.health.pack(fill="x", padx=2, pady=(2, 0))
        self.updates = {"A": 0, "B": 0, "so2": 0, "spectrum": 0, "doas": 0, "rate": 0}
        self._t0: float | None = None
        self.plot = BlitCanvas(self, figsize=(13.0, 5.2))
        self.plot.widget.pack(fill="both", expand=True)
        fig = self.plot.figure
        grid = fig.add_gridspec(2, 3)
        blank = np.zeros((486, 648), np.float32)
        self.axes = {}
        self.images = {}
        self.labels = {}
        for col, (key, title, cmap, vmax) in enumerate((("A", "Camera A (on-band)", "gray", FULL_SCALE),
                                                        ("B", "Camera B (off-band)", "gray", FULL_SCALE),
                                                        ("so2", "SO2 (AA or column)", "viridis", 0.3))):
            ax = fig.add_subplot(grid[0, col])
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            self.axes[key] = ax
            self.images[key] = ax.imshow(for_display(blank), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest",
                                         extent=display_extent(blank.shape))
            self.labels[key] = ax.text(0.01, 0.99, "waiting", transform=ax.transAxes, fontsize=8, va="top",
                                       color="#ffffff", bbox=dict(facecolor="#000000", alpha=0.5, lw=0, pad=1.5))
            self.plot.animate(self.images[key], self.labels[key])
        self.spec_ax = fig.add_subplot(grid[1, 0])
        self.spec_ax.axvspan(*fit_window, color="#4caf50", alpha=0.15)
        (self.spectrum_line,) = self.spec_ax.plot([], [], lw=0.7, color="#1f4e9e")
        self.spec_ax.set_xlim(250, 405)
        self.spec_ax.set_ylim(0, SPECTRUM_FULL_SCALE)
        self.spec_ax.set_title("spectrum (fit window shaded)", fontsize=9)
        self.spec_ax.set_xlabel("nm", fontsize=8)
        self.fit_ax = fig.add_subplot(grid[1, 1])
        (self.measured_line,) = self.fit_ax.plot([], [], lw=1.0, color="#1f4e9e", label="measured")
        (self.model_line,) = self.fit_ax.plot([], [], lw=1.0, color="#d62728", ls="--", label="model")
        self.fit_ax.set_xlim(*fit_window)
        self.fit_ax.set_ylim(0, 1.05)
        self.fit_ax.legend(loc="lower right", fontsize=7)
        self.fit_ax.set_title("DOAS fit", fontsize=9)
        self.fit_label = self.fit_ax.text(0.02, 0.97, "", transform=self.fit_ax.transAxes, fontsize=8, va="top")
        self.rate_ax = fig.add_subplot(grid[1, 2])
        self.rate_ax.set_title("total emission rate (kg/s)", fontsize=9)
        self.rate_ax.set_xlabel("time since start (s)", fontsize=8)
        self.series = GrowingSeries(self.plot, self.rate_ax)
        self.series.line("total", color="#000000", lw=1.2, marker=".", ms=3)
        self.band = None
        self.rate_label = self.rate_ax.text(0.02, 0.97, "draw PCS lines in Analysis", transform=self.rate_ax.transAxes,
                                            fontsize=8, va="top")
        self.plot.animate(self.spectrum_line, self.measured_line, self.model_line, self.fit_label, self.rate_label)
        self.rates: list[tuple[float, float, float]] = []
        queue.subscribe("image", self.show_image)
        queue.subscribe("spectrum", self.show_spectrum)
        queue.subscribe("doas", self.show_fit)
        queue.subscribe("so2", self.show_so2)

    def _visible(self) -> bool:
        return bool(self.plot.widget.winfo_ismapped())

    def show_image(self, frame: ImageFrame) -> None:
        self.updates[frame.band] += 1
        if not self._visible():
            return
        self.images[frame.band].set_data(for_display(frame.pixels))
        self.labels[frame.band].set_text(f"{frame.time_string} {frame.frame_type} {frame.exposure_us} µs")
        self.plot.refresh_axes(self.axes[frame.band])

    def show_spectrum(self, frame: SpectrumFrame) -> None:
        self.updates["spectrum"] += 1
        if not self._visible():
            return
        self.spectrum_line.set_data(frame.wavelengths, frame.counts)
        self.plot.refresh_axes(self.spec_ax)

    def show_fit(self, item) -> None:
        _frame, fit = item
        fit: DoasDisplay
        self.updates["doas"] += 1
        if not self._visible() or fit.measured.size == 0:
            return
        scale = float(np.nanmax(fit.measured)) or 1.0
        self.measured_line.set_data(fit.wavelengths, fit.measured / scale)
        self.model_line.set_data(fit.wavelengths, fit.model / scale)
        self.fit_label.set_text(f"SO2 {fit.column:.2e} ± {fit.column_err:.1e} molec/cm²")
        self.plot.refresh_axes(self.fit_ax)

    def show_so2(self, result: So2Display) -> None:
        self.updates["so2"] += 1
        total = result.rates.get("total")
        if self._t0 is None:
            self._t0 = result.seconds
        if total is not None:
            self.updates["rate"] += 1
            t = result.seconds - self._t0
            self.series.append("total", t, total.flux_kg_s)
            self.rates.append((t, total.flux_kg_s, total.flux_err_kg_s))
        if not self._visible():
            return
        unit = "column" if "column" in result.images else "AA"
        image = result.images.get(unit)
        if image is not None:
            self.images["so2"].set_data(for_display(image))
            lo, hi = robust_range(image, 1, 99.5)
            c0, c1 = self.images["so2"].get_clim()
            if not self.plot.rendering and (hi > c1 or (hi - lo) < 0.4 * (c1 - c0) or lo < c0):
                self.images["so2"].set_clim(*nice_limits(lo, hi))
            self.labels["so2"].set_text(f"{result.time_string} {unit}")
        if total is not None:
            self._update_band()
            self.series.fit_limits([r[1] - r[2] for r in self.rates[-50:]] + [r[1] + r[2] for r in self.rates[-50:]])
            self.rate_label.set_text(f"{total.flux_kg_s:.2f} ± {total.flux_err_kg_s:.2f} kg/s, "
                                     f"v_eff {total.velo_eff_m_s:.1f} m/s")
        self.plot.refresh_axes(self.axes["so2"], self.rate_ax)

    def _update_band(self) -> None:
        if self.band is not None:
            self.plot.forget_artist(self.band)
            self.band.remove()
            self.band = None
        data = [r for r in self.rates[-2000:] if np.isfinite(r[1])]
        if len(data) < 2:
            return
        t, flux, err = (np.array(v) for v in zip(*data))
        err = np.where(np.isfinite(err), err, 0.0)
        self.band = self.rate_ax.fill_between(t, flux - err, flux + err, color="#888888", alpha=0.25, lw=0)
        self.plot.animate(self.band)
