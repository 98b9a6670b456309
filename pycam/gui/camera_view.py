"""Camera view: live A (on-band) and B (off-band) images and the camera settings form.

Images update by ``set_data`` + blit.  Display options: colour map, fixed or automatic
scaling (automatic limits are rounded so the colour scale rarely changes), saturation
overlay (pixels at or above the saturation level in red), and a row or column profile of
both images where the user clicks.  Settings (shutter, auto exposure, frame rate,
saturation band, analogue gain) are typed commands validated before sending; the fields
follow the station: auto exposure's new shutter (``exposure`` events) and every device's
``settings`` event refresh them, except the field being edited.
"""
from __future__ import annotations

import tkinter as tk
from tkinter import ttk

import numpy as np

from pycam.gui.forms import CommandRow, ReplyTracker
from pycam.gui.ui_messages import ImageFrame, MessageSummary
from pycam.gui.plots import BlitCanvas, display_extent, for_display, nice_limits, robust_range
from pycam.gui.worker import GuiQueue
from pycam.protocol import events

FULL_SCALE = 1023  # 10-bit sensor values stored in 16-bit PNGs
SATURATION_LEVEL = 1000
COLOUR_MAPS = ("gray", "viridis", "inferno", "magma", "cividis", "jet")
BANDS = {"A": ("CM1", "Camera A (on-band, fltrA)"), "B": ("CM2", "Camera B (off-band, fltrB)")}


class CameraView(ttk.Frame):
    def __init__(self, master, queue: GuiQueue, send, tracker: ReplyTracker, camera_settings=None) -> None:
        super().__init__(master)
        camera_settings = camera_settings or {}
        self.frames: dict[str, ImageFrame] = {}
        self.frames_shown = 0
        self.profile_mode = tk.StringVar(value="row")
        self.profile_index: int | None = None

        plot_frame = ttk.Frame(self)
        plot_frame.pack(side="left", fill="both", expand=True)
        self.plot = BlitCanvas(plot_frame, figsize=(8.0, 6.0))
        self.plot.widget.pack(fill="both", expand=True)
        fig = self.plot.figure
        grid = fig.add_gridspec(2, 2, height_ratios=(3, 1.3))
        self.axes = {"A": fig.add_subplot(grid[0, 0]), "B": fig.add_subplot(grid[0, 1])}
        self.profile_ax = fig.add_subplot(grid[1, :])
        self.images, self.overlays, self.titles, self.markers, self.profiles = {}, {}, {}, {}, {}
        blank = np.zeros((486, 648), dtype=np.uint16)
        empty_overlay = np.zeros((486, 648, 4), dtype=np.uint8)
        for band, ax in self.axes.items():
            self.images[band] = ax.imshow(for_display(blank), cmap="gray", vmin=0, vmax=FULL_SCALE,
                                          interpolation="nearest", extent=display_extent(blank.shape))
            self.overlays[band] = ax.imshow(for_display(empty_overlay), interpolation="nearest",
                                            extent=display_extent(blank.shape))
            ax.set_title(BANDS[band][1], fontsize=9)
            self.titles[band] = ax.text(0.01, 0.99, "waiting for images", transform=ax.transAxes, fontsize=8,
                                        va="top", ha="left", color="#ffffff",
                                        bbox=dict(facecolor="#000000", alpha=0.5, lw=0, pad=1.5))
            (self.markers[band],) = ax.plot([], [], color="#00c0ff", lw=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            self.plot.animate(self.images[band], self.overlays[band], self.titles[band], self.markers[band])
            (self.profiles[band],) = self.profile_ax.plot([], [], lw=0.8, label=band)
            self.plot.animate(self.profiles[band])
        self.colourbar = fig.colorbar(self.images["B"], ax=self.axes["B"], fraction=0.046, pad=0.02)
        self.profile_ax.set_xlim(0, 648)
        self.profile_ax.set_ylim(0, FULL_SCALE)
        self.profile_ax.set_ylabel("counts")
        self.profile_ax.legend(loc="upper right", fontsize=8)
        self.profile_ax.set_title("click an image for a profile", fontsize=8)
        self.plot.canvas.mpl_connect("button_press_event", self._on_click)

        side = ttk.Frame(self, padding=4)
        side.pack(side="right", fill="y")
        self._build_display_options(side)
        self.rows: dict[tuple[str, str], CommandRow] = {}
        for band, (device, title) in BANDS.items():
            box = ttk.LabelFrame(side, text=title, padding=2)
            box.pack(fill="x", pady=1)
            shutter_key, auto_key, gain_key = ("SSA", "ATA", "AGA") if band == "A" else ("SSB", "ATB", "AGB")
            self.rows[(device, shutter_key)] = CommandRow(box, 0, device, shutter_key, "Shutter (µs)", send, tracker,
                                                          camera_settings.get("shutter_us", 100000))
            self.rows[(device, auto_key)] = CommandRow(box, 1, device, auto_key, "Auto exposure", send, tracker,
                                                       camera_settings.get("auto_exposure", True))
            self.rows[(device, gain_key)] = CommandRow(box, 2, device, gain_key, "Analogue gain", send, tracker,
                                                       camera_settings.get("analog_gain", 1.0))
        both = ttk.LabelFrame(side, text="Both cameras", padding=2)
        both.pack(fill="x", pady=1)
        for i, (key, label, default) in enumerate((
                ("FRC", "Frame rate (Hz)", camera_settings.get("framerate", 0.25)),
                ("SMN", "Min saturation", camera_settings.get("min_saturation", 0.7)),
                ("SMX", "Max saturation", camera_settings.get("max_saturation", 0.9)),
                ("PXC", "Pixels averaged", camera_settings.get("saturation_pixels", 1000)),
                ("RWC", "Rows checked", camera_settings.get("saturation_rows", -1)))):
            self.rows[("all", key)] = CommandRow(both, i, "all", key, label, send, tracker, default)

        queue.subscribe("image", self.show_frame)
        queue.subscribe("message", self._on_message)

    # --- the station's values ------------------------------------------------------------
    def _on_message(self, s: MessageSummary) -> None:
        if s.kind != "event" or s.device not in ("CM1", "CM2") or not isinstance(s.value, dict):
            return
        ev = events.parse_quietly(s.key or "", s.value)
        if isinstance(ev, events.Exposure):
            self.show_setting(s.device, ev.key, ev.value)
        elif isinstance(ev, events.Settings):
            for key, value in ev.values.items():
                self.show_setting(s.device, key, value)

    def show_setting(self, device: str, key: str, value) -> bool:
        """Show the value in force in its field (not while the user edits that field)."""
        row = self.rows.get((device, key)) or self.rows.get(("all", key))
        if row is None:
            return False
        try:
            editing = self.focus_get() is row.widget
        except (KeyError, tk.TclError):
            editing = False
        if editing:
            return False
        row.set_value(value)
        return True

    def _build_display_options(self, side) -> None:
        box = ttk.LabelFrame(side, text="Display", padding=2)
        box.pack(fill="x", pady=1)
        ttk.Label(box, text="Colour map").grid(row=0, column=0, sticky="w")
        self.cmap_var = tk.StringVar(value="gray")
        cmap = ttk.Combobox(box, textvariable=self.cmap_var, values=COLOUR_MAPS, width=9, state="readonly")
        cmap.grid(row=0, column=1, sticky="w")
        ttk.Button(box, text="Apply", command=self.apply_display).grid(row=0, column=2)
        cmap.bind("<<ComboboxSelected>>", lambda _e: self.apply_display())
        self.auto_scale = tk.BooleanVar(value=False)
        ttk.Checkbutton(box, text="Auto scale", variable=self.auto_scale,
                        command=self.apply_display).grid(row=1, column=0, sticky="w")
        self.vmin_var, self.vmax_var = tk.StringVar(value="0"), tk.StringVar(value=str(FULL_SCALE))
        ttk.Entry(box, textvariable=self.vmin_var, width=6).grid(row=1, column=1)
        ttk.Entry(box, textvariable=self.vmax_var, width=6).grid(row=1, column=2)
        self.saturation_overlay = tk.BooleanVar(value=True)
        ttk.Checkbutton(box, text="Saturation overlay", variable=self.saturation_overlay,
                        command=self.apply_display).grid(row=2, column=0, sticky="w")
        ttk.Radiobutton(box, text="Row profile", variable=self.profile_mode, value="row").grid(row=2, column=1, sticky="w")
        ttk.Radiobutton(box, text="Column", variable=self.profile_mode, value="column").grid(row=2, column=2, sticky="w")
        self.display_error = tk.StringVar(value="")
        ttk.Label(box, textvariable=self.display_error, foreground="#c02020").grid(row=3, column=0, columnspan=3)

    # --- display ---------------------------------------------------------------------
    def apply_display(self) -> None:
        """Check the display options now; apply them once no background render reads the
        figure (the colour bar shows the scale and the colour map)."""
        self.display_error.set("")
        limits = None
        if not self.auto_scale.get():
            try:
                lo, hi = float(self.vmin_var.get()), float(self.vmax_var.get())
                if not lo < hi:
                    raise ValueError
            except ValueError:
                self.display_error.set("scale: need numbers with min < max")
                return
            limits = (lo, hi)
        self.plot.after_render(lambda: self._apply_display(self.cmap_var.get(), limits))

    def _apply_display(self, cmap: str, limits: tuple[float, float] | None) -> None:
        for image in self.images.values():
            image.set_cmap(cmap)
        if limits is not None:
            self._set_clim(*limits)
        for band, frame in self.frames.items():
            self._update_band(band, frame)
        self.plot.request_full_draw()
        self.plot.refresh()

    def _set_clim(self, lo: float, hi: float) -> None:
        if self.images["A"].get_clim() != (lo, hi):
            for image in self.images.values():
                image.set_clim(lo, hi)
            self.plot.request_full_draw()  # the colour bar changes

    def show_frame(self, frame: ImageFrame) -> None:
        self.frames[frame.band] = frame
        if self.auto_scale.get() and not self.plot.rendering:
            lo, hi = robust_range(frame.pixels, 0.5, 99.8)
            c0, c1 = self.images["A"].get_clim()
            span = c1 - c0
            if lo < c0 - 0.05 * span or hi > c1 + 0.05 * span or (hi - lo) < 0.5 * span:  # hysteresis
                self._set_clim(*nice_limits(lo, hi))
        self._update_band(frame.band, frame)
        self.frames_shown += 1
        if self.profile_index is None:
            self.plot.refresh_axes(self.axes[frame.band])
        else:
            self.plot.refresh_axes(self.axes[frame.band], self.profile_ax)

    def _update_band(self, band: str, frame: ImageFrame) -> None:
        pixels = frame.pixels
        self.images[band].set_data(for_display(pixels))  # coordinates stay full-resolution (extent)
        saturated_mask = pixels >= SATURATION_LEVEL
        n_saturated = int(np.count_nonzero(saturated_mask))
        if self.saturation_overlay.get() and n_saturated:
            overlay = np.zeros(pixels.shape + (4,), dtype=np.uint8)
            overlay[saturated_mask] = (255, 0, 0, 200)
            self.overlays[band].set_data(for_display(overlay))
            self.overlays[band].set_visible(True)
        else:
            self.overlays[band].set_visible(False)
        saturated = n_saturated / pixels.size
        self.titles[band].set_text(f"{frame.time_string} {frame.frame_type} {frame.exposure_us} µs"
                                   f"  sat {100 * saturated:.1f}%")
        self._update_profile(band)

    def _on_click(self, event) -> None:
        for band, ax in self.axes.items():
            if event.inaxes is ax and event.xdata is not None:
                self.profile_index = int(round(event.ydata if self.profile_mode.get() == "row" else event.xdata))
                for b in self.axes:
                    self._update_profile(b)
                self.profile_ax.set_xlim(0, 648 if self.profile_mode.get() == "row" else 486)
                self.profile_ax.set_title(f"{self.profile_mode.get()} {self.profile_index}", fontsize=8)
                self.plot.request_full_draw()
                self.plot.refresh()
                return

    def profile(self, band: str) -> np.ndarray | None:
        """The current profile of ``band`` (the row/column the user clicked), or None."""
        frame = self.frames.get(band)
        if frame is None or self.profile_index is None:
            return None
        pixels = frame.pixels
        if self.profile_mode.get() == "row":
            return pixels[min(max(self.profile_index, 0), pixels.shape[0] - 1), :]
        return pixels[:, min(max(self.profile_index, 0), pixels.shape[1] - 1)]

    def _update_profile(self, band: str) -> None:
        values = self.profile(band)
        if values is None:
            return
        self.profiles[band].set_data(np.arange(values.size), values)
        frame = self.frames[band]
        h, w = frame.pixels.shape
        if self.profile_mode.get() == "row":
            self.markers[band].set_data([0, w - 1], [self.profile_index] * 2)
        else:
            self.markers[band].set_data([self.profile_index] * 2, [0, h - 1])
