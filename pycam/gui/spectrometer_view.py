"""Spectrometer view: live spectrum (fit and stray-light windows marked), the latest DOAS
fit (measured vs model and the residual), the SO2 column time series, and the
spectrometer settings form.  Updates are ``set_data`` + blit.
"""
from __future__ import annotations

import tkinter as tk
from tkinter import ttk

import numpy as np

from pycam.gui.forms import CommandRow, ReplyTracker
from pycam.gui.ui_messages import SpectrumFrame
from pycam.gui.plots import BlitCanvas, GrowingSeries, nice_limits
from pycam.gui.result_series import DoasDisplay
from pycam.gui.worker import GuiQueue

FIT_WINDOW_NM = (308.0, 318.0)     # PyCam defaults (pycam_compat.md section 4)
STRAY_WINDOW_NM = (293.0, 296.0)
SPECTRUM_FULL_SCALE = 65535.0


class SpectrometerView(ttk.Frame):
    def __init__(self, master, queue: GuiQueue, send, tracker: ReplyTracker, spec_settings=None,
                 fit_window=FIT_WINDOW_NM, stray_window=STRAY_WINDOW_NM) -> None:
        super().__init__(master)
        spec_settings = spec_settings or {}
        self.spectra_shown = 0
        self.fits_shown = 0
        self.last_fit: DoasDisplay | None = None
        self._t0: float | None = None

        plot_frame = ttk.Frame(self)
        plot_frame.pack(side="left", fill="both", expand=True)
        self.plot = BlitCanvas(plot_frame, figsize=(8.5, 6.0))
        self.plot.widget.pack(fill="both", expand=True)
        fig = self.plot.figure
        grid = fig.add_gridspec(3, 2, height_ratios=(1.3, 1, 1))
        self.spec_ax = fig.add_subplot(grid[0, :])
        self.fit_ax = fig.add_subplot(grid[1, 0])
        self.resid_ax = fig.add_subplot(grid[1, 1])
        self.series_ax = fig.add_subplot(grid[2, :])

        self.spec_ax.axvspan(*fit_window, color="#4caf50", alpha=0.15, label="fit window")
        self.spec_ax.axvspan(*stray_window, color="#ff9800", alpha=0.2, label="stray light")
        (self.spectrum_line,) = self.spec_ax.plot([], [], lw=0.8, color="#1f4e9e", label="spectrum")
        self.spec_title = self.spec_ax.text(0.99, 0.97, "spectrum: waiting", transform=self.spec_ax.transAxes,
                                            fontsize=8, ha="right", va="top")
        self.spec_ax.set_xlim(250, 405)
        self.spec_ax.set_ylim(0, SPECTRUM_FULL_SCALE)
        self.spec_ax.set_xlabel("wavelength (nm)", fontsize=8)
        self.spec_ax.set_ylabel("counts", fontsize=8)
        self.spec_ax.legend(loc="upper left", fontsize=7)

        (self.measured_line,) = self.fit_ax.plot([], [], lw=1.0, color="#1f4e9e", label="measured")
        (self.model_line,) = self.fit_ax.plot([], [], lw=1.0, color="#d62728", ls="--", label="model")
        self.fit_ax.set_xlim(*fit_window)
        self.fit_ax.set_ylim(0, 1.05)
        self.fit_ax.set_ylabel("intensity / max", fontsize=8)
        self.fit_ax.set_title("DOAS fit", fontsize=9)
        self.fit_ax.legend(loc="upper left", fontsize=7)
        (self.residual_line,) = self.resid_ax.plot([], [], lw=0.8, color="#333333")
        self.resid_ax.set_xlim(*fit_window)
        self.resid_ax.set_ylim(-0.05, 0.05)
        self.resid_ax.axhline(0, color="#999999", lw=0.5)
        self.resid_ax.set_title("residual (measured − model) / model", fontsize=9)
        self.fit_title = self.resid_ax.text(0.02, 0.95, "", transform=self.resid_ax.transAxes, fontsize=8, va="top")
        self.series_ax.set_ylabel("SO2 (molec/cm²)", fontsize=8)
        self.series_ax.set_xlabel("time since start (s)", fontsize=8)
        self.series = GrowingSeries(self.plot, self.series_ax)
        self.series.line("SO2 column", color="#8e24aa", marker=".", ms=3, lw=0.8)
        self.plot.animate(self.spectrum_line, self.spec_title, self.measured_line, self.model_line,
                          self.residual_line, self.fit_title)

        side = ttk.Frame(self, padding=4)
        side.pack(side="right", fill="y")
        box = ttk.LabelFrame(side, text="Spectrometer (SPC)", padding=3)
        box.pack(fill="x", pady=3)
        self.rows: dict[str, CommandRow] = {}
        for i, (key, label, default) in enumerate((
                ("SSS", "Integration (ms)", spec_settings.get("integration_ms", 100)),
                ("ATS", "Auto integration", spec_settings.get("auto_integration", True)),
                ("CAD", "Co-adds", spec_settings.get("coadd", 1)),
                ("FRS", "Frame rate (Hz)", spec_settings.get("framerate", 0.25)),
                ("SNS", "Min saturation", spec_settings.get("min_saturation", 0.6)),
                ("SXS", "Max saturation", spec_settings.get("max_saturation", 0.9)),
                ("PXS", "Pixels averaged", spec_settings.get("saturation_pixels", 2)),
                ("WMN", "Sat. window from (nm)", int(spec_settings.get("wavelength_min", 300))),
                ("WMX", "Sat. window to (nm)", int(spec_settings.get("wavelength_max", 340))))):
            self.rows[key] = CommandRow(box, i, "SPC", key, label, send, tracker, default)
        info = ttk.LabelFrame(side, text="Latest retrieval", padding=3)
        info.pack(fill="x", pady=3)
        self.column_var = tk.StringVar(value="no fit yet")
        ttk.Label(info, textvariable=self.column_var, wraplength=260).pack(anchor="w")

        queue.subscribe("spectrum", self.show_spectrum)
        queue.subscribe("doas", self.show_fit)

    def show_spectrum(self, frame: SpectrumFrame) -> None:
        self.spectrum_line.set_data(frame.wavelengths, frame.counts)
        peak = float(np.nanmax(frame.counts)) if frame.counts.size else 0.0
        self.spec_title.set_text(f"{frame.time_string} {frame.frame_type} {frame.integration_ms} ms "
                                 f"x{frame.coadd}  peak {peak:.0f} ({100 * peak / SPECTRUM_FULL_SCALE:.0f}%)")
        lo, hi = float(frame.wavelengths[0]), float(frame.wavelengths[-1])
        if (lo, hi) != tuple(self.spec_ax.get_xlim()) and not self.plot.rendering:
            self.spec_ax.set_xlim(lo, hi)
            self.plot.request_full_draw()
        self.spectra_shown += 1
        self.plot.refresh_axes(self.spec_ax)

    def show_fit(self, item) -> None:
        _frame, fit = item
        self.last_fit = fit
        # measured and model are shown relative to the measured maximum, so the axis is fixed
        scale = float(np.nanmax(fit.measured)) if fit.measured.size and np.isfinite(fit.measured).any() else 1.0
        scale = scale if scale > 0 else 1.0
        self.measured_line.set_data(fit.wavelengths, fit.measured / scale)
        self.model_line.set_data(fit.wavelengths, fit.model / scale)
        residual = fit.residual
        self.residual_line.set_data(fit.wavelengths, residual)
        r = residual[np.isfinite(residual)]
        if r.size and not self.plot.rendering:
            bound = float(np.max(np.abs(r)))
            y1 = self.resid_ax.get_ylim()[1]
            if bound > y1 or bound < 0.1 * y1:
                limit = nice_limits(0, max(bound, 1e-4))[1]
                self.resid_ax.set_ylim(-limit, limit)
                self.plot.request_full_draw()
        self.fit_title.set_text("fit ok" if fit.ok else f"flagged: {fit.note}"[:60])
        if self._t0 is None:
            self._t0 = fit.seconds
        self.series.append("SO2 column", fit.seconds - self._t0, fit.column)
        self.series.fit_limits()
        self.column_var.set(f"{fit.time_string}: SO2 = {fit.column:.3e} ± {fit.column_err:.1e} molec/cm²"
                            + (f"\n{fit.note}" if fit.note else ""))
        self.fits_shown += 1
        self.plot.refresh_axes(self.fit_ax, self.resid_ax, self.series_ax)
