"""Analysis view: the live SO2 image, PCS line editing, emission rates and plume speed.

Left: the latest calibrated image in the chosen unit (τ of band A, AA, or column density
when a calibration is loaded) with its colour bar, the background (ambient) region and the
DOAS field of view drawn over it, and the PCS lines (see :mod:`pycam.gui.pcs_editor`).
Right: emission rate per line and the total, each with its error band, and the effective
plume speed.  Flagged samples (``flag`` != 0, :mod:`pycam.processing.quality`) are greyed:
a grey ring on the value when the sample kept one, a grey cross along the bottom of the axes
when it has none (never drawn as a zero rate); hovering over one shows its reasons.
Everything updates by blitting; axes grow in coarse steps.
"""
from __future__ import annotations

import math

import tkinter as tk
from tkinter import filedialog, ttk

import math

import numpy as np
from matplotlib.patches import Circle, Rectangle

from pycam.gui.pcs_editor import LINE_COLOURS, PCSEditor
from pycam.gui.plots import BlitCanvas, FlaggedMarks, GrowingSeries, nice_limits, robust_range
from pycam.gui.result_series import So2Display
from pycam.gui.worker import GuiQueue

UNITS = {"AA": "apparent absorbance", "tau_A": "τ (band A)", "column": "SO2 (molec/cm²)"}


class AnalysisView(ttk.Frame):
    def __init__(self, master, queue: GuiQueue, *, on_lines_changed, on_settings=None, ambient_roi=(0, 0, 60, 60),
                 doas_fov=None, plume_distance_m: float | None = None) -> None:
        super().__init__(master)
        self.results_shown = 0
        self.last_result: So2Display | None = None
        self.rates: dict[str, list[tuple[float, float, float]]] = {}
        self._t0: float | None = None
        self._bands: dict[str, object] = {}
        self._on_lines_changed = on_lines_changed
        self._on_settings = on_settings
        self._rates_after: str | None = None

        left = ttk.Frame(self)
        left.pack(side="left", fill="both", expand=True)
        self.image_plot = BlitCanvas(left, figsize=(6.2, 5.2))
        self.image_plot.widget.pack(fill="both", expand=True)
        self.image_ax = self.image_plot.figure.add_subplot(1, 1, 1)
        self.image = self.image_ax.imshow(np.zeros((486, 648), np.float32), cmap="viridis", vmin=-0.05, vmax=0.3,
                                          interpolation="nearest")
        self.colourbar = self.image_plot.figure.colorbar(self.image, ax=self.image_ax, fraction=0.04, pad=0.02)
        self.colourbar.set_label(UNITS["AA"], fontsize=8)
        self.image_ax.set_title("live SO2 image", fontsize=9)
        self.image_title = self.image_ax.text(0.01, 0.99, "waiting for image pairs", transform=self.image_ax.transAxes,
                                              fontsize=8, va="top", ha="left", color="#ffffff",
                                              bbox=dict(facecolor="#000000", alpha=0.5, lw=0, pad=1.5))
        self.image_plot.animate(self.image, self.image_title)
        x0, y0, x1, y1 = ambient_roi
        self.roi_patch = Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#ff9800", lw=1.2, ls="--")
        self.image_ax.add_patch(self.roi_patch)
        self.fov_patch = Circle((0, 0), 1, fill=False, ec="#e91e63", lw=1.2, visible=False)
        self.image_ax.add_patch(self.fov_patch)
        self.image_plot.animate(self.roi_patch, self.fov_patch)  # drawn over the (animated) image
        self.image_ax.set_xlim(-0.5, 647.5)
        self.image_ax.set_ylim(485.5, -0.5)
        if doas_fov is not None:
            self.set_doas_fov(doas_fov.x, doas_fov.y, doas_fov.radius)
        self.editor = PCSEditor(self.image_plot, self.image_ax, on_change=self._lines_changed)

        right = ttk.Frame(self)
        right.pack(side="right", fill="both", expand=True)
        controls = ttk.Frame(right, padding=2)
        controls.pack(fill="x")
        ttk.Label(controls, text="Units").pack(side="left")
        self.unit_var = tk.StringVar(value="AA")
        unit = ttk.Combobox(controls, textvariable=self.unit_var, values=list(UNITS), width=7, state="readonly")
        unit.pack(side="left", padx=2)
        unit.bind("<<ComboboxSelected>>", lambda _e: self._redraw_image(new_unit=True))
        self.auto_scale = tk.BooleanVar(value=True)
        ttk.Checkbutton(controls, text="Auto scale", variable=self.auto_scale).pack(side="left", padx=2)
        self.show_overlays = tk.BooleanVar(value=True)
        ttk.Checkbutton(controls, text="ROI/FOV", variable=self.show_overlays,
                        command=self._toggle_overlays).pack(side="left", padx=2)
        line_bar = ttk.Frame(left, padding=2)
        line_bar.pack(fill="x", before=self.image_plot.widget)
        ttk.Label(line_bar, text="PCS lines:").pack(side="left")
        ttk.Button(line_bar, text="Flip normal", command=self.editor.flip_selected).pack(side="left", padx=2)
        ttk.Button(line_bar, text="Delete (Del)", command=self.editor.delete).pack(side="left", padx=2)
        ttk.Button(line_bar, text="Save… (Ctrl+S)", command=self.save_lines_dialog).pack(side="left", padx=2)
        ttk.Button(line_bar, text="Load…", command=self.load_lines_dialog).pack(side="left", padx=2)

        processing = ttk.Frame(right, padding=2)
        processing.pack(fill="x")
        ttk.Label(processing, text="Plume distance (m)").pack(side="left")
        self.distance_var = tk.StringVar(value="" if plume_distance_m is None else f"{plume_distance_m:g}")
        ttk.Entry(processing, textvariable=self.distance_var, width=8).pack(side="left", padx=2)
        self.ref_check = tk.BooleanVar(value=False)
        ttk.Checkbutton(processing, text="PyCam reference check", variable=self.ref_check).pack(side="left", padx=2)
        self.settings_path = tk.StringVar(value="")
        ttk.Button(processing, text="Settings file…", command=self._choose_settings).pack(side="left", padx=2)
        ttk.Button(processing, text="Apply", command=self.apply_processing).pack(side="left", padx=2)
        self.status = tk.StringVar(value="drag on the image to draw a PCS line; right-click deletes")
        ttk.Label(right, textvariable=self.status, foreground="#555555").pack(fill="x")
        self.calibration_var = tk.StringVar(value="calibration: waiting for DOAS samples")
        ttk.Label(right, textvariable=self.calibration_var, foreground="#2050a0", wraplength=800).pack(fill="x")

        self.rate_plot = BlitCanvas(right, figsize=(5.2, 4.6))
        self.rate_plot.widget.pack(fill="both", expand=True)
        self.rate_ax = self.rate_plot.figure.add_subplot(2, 1, 1)
        self.speed_ax = self.rate_plot.figure.add_subplot(2, 1, 2, sharex=self.rate_ax)
        self.rate_ax.set_ylabel("emission rate (kg/s)", fontsize=8)
        self.speed_ax.set_ylabel("v_eff (m/s)", fontsize=8)
        self.speed_ax.set_xlabel("time since start (s)", fontsize=8)
        self.rate_series = GrowingSeries(self.rate_plot, self.rate_ax)
        self.speed_series = GrowingSeries(self.rate_plot, self.speed_ax)
        self.flag_marks = FlaggedMarks(self.rate_plot, self.rate_ax)    # greyed flagged samples
        self.latest_var = tk.StringVar(value="")
        ttk.Label(right, textvariable=self.latest_var, font=("TkFixedFont", 9)).pack(fill="x")

        queue.subscribe("so2", self.show_result)
        self.bind("<Delete>", lambda _e: self.editor.delete())
        self.image_plot.widget.bind("<Delete>", lambda _e: self.editor.delete())

    # --- processing settings -----------------------------------------------------------
    def _choose_settings(self) -> None:
        path = filedialog.askopenfilename(parent=self, title="Processing settings (PyCam YAML keys)",
                                          filetypes=[("YAML/TOML", "*.yml *.yaml *.toml"), ("All", "*")])
        if path:
            self.settings_path.set(path)
            self.status.set(f"settings file {path}: press Apply")

    def processing_overrides(self) -> dict:
        """The live-processing overrides in the form; raises ValueError naming the bad entry."""
        overrides: dict = {"ref_check_mode": bool(self.ref_check.get())}
        text = self.distance_var.get().strip()
        if text:
            try:
                distance = float(text)
            except ValueError:
                raise ValueError(f"plume distance {text!r} is not a number") from None
            if not 1.0 <= distance <= 1e6:
                raise ValueError("plume distance must be 1-1000000 m")
            overrides["plume_distance_m"] = distance
        return overrides

    def apply_processing(self) -> bool:
        try:
            overrides = self.processing_overrides()
        except ValueError as exc:
            self.status.set(f"refused: {exc}")
            return False
        if self._on_settings is not None:
            try:
                self._on_settings(overrides, self.settings_path.get().strip() or None)
            except ValueError as exc:  # SettingsError names the key
                self.status.set(f"refused: {exc}")
                return False
        self.status.set("live processing restarts with the new settings")
        return True

    # --- overlays and lines -----------------------------------------------------------
    def set_doas_fov(self, x: float, y: float, radius: float) -> None:
        self.fov_patch.set_center((x, y))
        self.fov_patch.set_radius(radius)
        self.fov_patch.set_visible(self.show_overlays.get() if hasattr(self, "show_overlays") else True)
        self.image_plot.request_full_draw()

    def _toggle_overlays(self) -> None:
        visible = self.show_overlays.get()
        self.roi_patch.set_visible(visible)
        self.fov_patch.set_visible(visible and self.fov_patch.get_radius() > 1)
        self.image_plot.request_full_draw()
        self.image_plot.refresh()

    def _lines_changed(self, lines) -> None:
        self.status.set(f"{len(lines)} PCS line(s): " + ", ".join(
            f"{l.name} ({l.x0},{l.y0})-({l.x1},{l.y1}) {l.orientation}" for l in lines))
        self._on_lines_changed(lines)

    def save_lines_dialog(self) -> None:
        if not self.editor.lines:
            self.status.set("no PCS lines to save")
            return
        directory = filedialog.askdirectory(parent=self, title="Save PCS lines into directory")
        if directory:
            saved = self.editor.save(directory)
            self.status.set(f"saved {len(saved)} line file(s) in {directory}")

    def load_lines_dialog(self) -> None:
        paths = filedialog.askopenfilenames(parent=self, title="Load PCS line files",
                                            filetypes=[("PyCam line files", "*.txt"), ("All", "*")])
        if paths:
            try:
                self.editor.load(paths)
            except ValueError as exc:
                self.status.set(f"cannot load lines: {exc}")

    # --- data -------------------------------------------------------------------------------
    def _current_image(self) -> tuple[np.ndarray | None, str]:
        result = self.last_result
        if result is None:
            return None, self.unit_var.get()
        unit = self.unit_var.get()
        if unit not in result.images:
            unit = "AA" if "AA" in result.images else next(iter(result.images))
        return result.images.get(unit), unit

    def _redraw_image(self, new_unit: bool = False) -> None:
        image, unit = self._current_image()
        if image is None:
            return
        self.image.set_data(image)
        if (self.auto_scale.get() or new_unit) and not self.image_plot.rendering:
            lo, hi = robust_range(image, 1, 99.5)
            c0, c1 = self.image.get_clim()
            span = c1 - c0
            # hysteresis: rescale (a full redraw, the colour bar changes) only when the data
            # leave the scale or use less than half of it
            if new_unit or lo < c0 - 0.05 * span or hi > c1 + 0.05 * span or (hi - lo) < 0.5 * span:
                self.image.set_clim(*nice_limits(lo, hi))
                self.image_plot.request_full_draw()
        if new_unit or self.colourbar.ax.get_ylabel() != UNITS.get(unit, unit):
            self.colourbar.set_label(UNITS.get(unit, unit), fontsize=8)
            self.image_plot.request_full_draw()
        self.image_plot.refresh_axes(self.image_ax)

    def show_result(self, result: So2Display) -> None:
        self.last_result = result
        if result.fov is not None and (tuple(self.fov_patch.get_center()), self.fov_patch.get_radius()) \
                != (tuple(result.fov[:2]), result.fov[2]):
            self.set_doas_fov(*result.fov)
        if result.note:
            self.calibration_var.set(result.note[:300])
        total = result.rates.get("total")
        self.image_title.set_text(f"{result.time_string}  {self.unit_var.get()}  "
                                  + (f"total {total.flux_kg_s:.2f} kg/s" if total else "no PCS line"))
        self._redraw_image()
        if self._t0 is None:
            self._t0 = result.seconds
        t = result.seconds - self._t0
        band_values = []
        for index, (name, rate) in enumerate(sorted(result.rates.items(), key=lambda kv: (kv[0] == "total", kv[0]))):
            colour = "#000000" if name == "total" else LINE_COLOURS[int(name) % len(LINE_COLOURS)] \
                if name.isdigit() else None
            self.rate_series.line(name, color=colour, lw=1.2, marker=".", ms=3)
            self.speed_series.line(name, color=colour, lw=1.0, marker=".", ms=3)
            self.rate_series.append(name, t, rate.flux_kg_s)
            self.speed_series.append(name, t, rate.velo_eff_m_s)
            self.flag_marks.add(t, rate.flux_kg_s, name, rate.flag, rate.flag_reason)
            if math.isfinite(rate.flux_kg_s):
                self.rates.setdefault(name, []).append((t, rate.flux_kg_s, rate.flux_err_kg_s))
                self._update_band(name, colour)
                band_values += [rate.flux_kg_s - rate.flux_err_kg_s, rate.flux_kg_s + rate.flux_err_kg_s]
        self.flag_marks.update()
        truth = getattr(result, "truth_kg_s", float("nan"))
        if math.isfinite(truth):  # the simulated demo: the simulator's true total through the same lines
            self.rate_series.line("truth", color="#2e7d32", lw=1.0, ls="--")
            self.rate_series.append("truth", t, truth)
            band_values.append(truth)
        self.rate_series.fit_limits(band_values)
        self.speed_series.fit_limits()
        self.latest_var.set("  ".join(f"{n}: {r.flux_kg_s:.2f}±{r.flux_err_kg_s:.2f} kg/s"
                                      f" v={r.velo_eff_m_s:.1f} m/s" for n, r in result.rates.items())
                             + (f"  truth: {truth:.2f} kg/s" if math.isfinite(truth) else ""))
        self.results_shown += 1
        # the rate plot is drawn in its own event-loop turn: two short stretches instead of one long
        if self._rates_after is None:
            self._rates_after = self.after(1, self._refresh_rates)

    def _refresh_rates(self) -> None:
        self._rates_after = None
        self.rate_plot.refresh()

    def _update_band(self, name: str, colour) -> None:
        """Replace the error band polygon of ``name`` (an animated artist, so only blitted)."""
        data = self.rates[name][-2000:]
        old = self._bands.pop(name, None)
        if old is not None:
            self.rate_plot.forget_artist(old)
            old.remove()
        if len(data) < 2:
            return
        t = np.array([d[0] for d in data])
        flux = np.array([d[1] for d in data])
        err = np.array([d[2] for d in data])
        err = np.where(np.isfinite(err), err, 0.0)
        band = self.rate_ax.fill_between(t, flux - err, flux + err, color=colour or "#888888", alpha=0.2, lw=0)
        self.rate_plot.animate(band)
        self._bands[name] = band

    def reset_series(self) -> None:
        for series in (self.rate_series, self.speed_series):
            for name in list(series.data):
                series.data[name] = ([], [])
                series.lines[name].set_data([], [])
        self.rates.clear()
        self.flag_marks.clear()
        self._t0 = None
        self.rate_plot.request_full_draw()

