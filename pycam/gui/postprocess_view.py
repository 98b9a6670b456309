"""Post-processing tab: run the batch chain of ``pycam process`` on archived data.

Choose the image directory (and optionally a spectra directory, a ``Cal_N`` directory, a
camera geometry file and PCS line files), then *Run*: the chain runs on a worker thread,
results are plotted as they come (emission rate per line), the progress bar follows the
pairs, *Cancel* stops after the current pair, and the outputs are written exactly as by
``pycam process`` (its output directory layout and file formats).
"""
from __future__ import annotations

import threading
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk

from pycam.gui.plots import BlitCanvas, FlaggedMarks, GrowingSeries
from pycam.gui.pcs_editor import LINE_COLOURS


class PostProcessView(ttk.Frame):
    def __init__(self, master, app) -> None:
        super().__init__(master, padding=4)
        self.app = app
        self.cancel_event = threading.Event()
        self.running = False
        self.results_received = 0
        self.summary = None
        self._t0: float | None = None

        form = ttk.LabelFrame(self, text="Inputs", padding=4)
        form.pack(side="left", fill="y")
        self.vars: dict[str, tk.StringVar] = {}
        for row, (key, label, kind) in enumerate((
                ("img_dir", "Image directory", "dir"), ("spec_dir", "Spectra directory (optional)", "dir"),
                ("cal_dir", "Cal_N directory (optional)", "dir"), ("dark_dir", "More Dark frames (optional)", "dir"),
                ("clear_dir", "Clear-sky frames (optional)", "dir"), ("geometry", "Camera geometry file", "file"),
                ("pcs", "PCS line files", "files"), ("settings", "Processing settings (optional)", "file"),
                ("out_dir", "Output directory (default: IMG/Processed_<time>)", "dir"))):
            ttk.Label(form, text=label).grid(row=2 * row, column=0, columnspan=2, sticky="w", pady=(2, 0))
            var = tk.StringVar(value="")
            ttk.Entry(form, textvariable=var, width=40).grid(row=2 * row + 1, column=0, sticky="w")
            ttk.Button(form, text="…", width=2,
                       command=lambda v=var, k=kind: self._browse(v, k)).grid(row=2 * row + 1, column=1)
            self.vars[key] = var
        buttons = ttk.Frame(form)
        buttons.grid(row=20, column=0, columnspan=2, pady=6, sticky="w")
        self.run_button = ttk.Button(buttons, text="Run", command=self.run)
        self.run_button.pack(side="left", padx=2)
        ttk.Button(buttons, text="Cancel", command=self.cancel).pack(side="left", padx=2)
        self.progress = ttk.Progressbar(form, length=280, mode="determinate")
        self.progress.grid(row=21, column=0, columnspan=2, pady=2)
        plot_frame = ttk.Frame(self)
        plot_frame.pack(side="left", fill="both", expand=True)
        self.status = tk.StringVar(value="choose the inputs, then Run")
        ttk.Label(plot_frame, textvariable=self.status, wraplength=880).pack(fill="x", padx=4)
        self.plot = BlitCanvas(plot_frame, figsize=(7.0, 5.0))
        self.plot.widget.pack(fill="both", expand=True)
        self.ax = self.plot.figure.add_subplot(1, 1, 1)
        self.ax.set_xlabel("time since first pair (s)")
        self.ax.set_ylabel("emission rate (kg/s)")
        self.series = GrowingSeries(self.plot, self.ax, window_s=1e9)
        self.flag_marks = FlaggedMarks(self.plot, self.ax)
        app.queue.subscribe("batch_progress", self._on_progress)
        app.queue.subscribe("batch_result", self._on_result)

    def _browse(self, var: tk.StringVar, kind: str) -> None:
        if kind == "dir":
            chosen = filedialog.askdirectory(parent=self)
        elif kind == "file":
            chosen = filedialog.askopenfilename(parent=self)
        else:
            chosen = " ".join(str(p) for p in filedialog.askopenfilenames(parent=self))
        if chosen:
            var.set(chosen)

    def inputs(self) -> dict:
        """The form as paths; raises ValueError naming the missing or wrong input."""
        img_dir = self.vars["img_dir"].get().strip()
        if not img_dir or not Path(img_dir).is_dir():
            raise ValueError(f"image directory {img_dir!r} does not exist")
        out = {"img_dir": Path(img_dir)}
        out_dir = self.vars["out_dir"].get().strip()
        out["out_dir"] = Path(out_dir) if out_dir else None
        settings = self.vars["settings"].get().strip()
        if settings and not Path(settings).is_file():
            raise ValueError(f"settings file {settings!r} does not exist")
        out["settings"] = Path(settings) if settings else None
        for key in ("spec_dir", "cal_dir", "dark_dir", "clear_dir"):
            value = self.vars[key].get().strip()
            if value and not Path(value).is_dir():
                raise ValueError(f"{key.replace('_', ' ')} {value!r} does not exist")
            out[key] = Path(value) if value else None
        geometry = self.vars["geometry"].get().strip()
        if geometry and not Path(geometry).is_file():
            raise ValueError(f"geometry file {geometry!r} does not exist")
        out["geometry"] = Path(geometry) if geometry else None
        pcs = [Path(p) for p in self.vars["pcs"].get().split()]
        missing = [str(p) for p in pcs if not p.is_file()]
        if missing:
            raise ValueError(f"PCS line file {missing[0]!r} does not exist")
        out["pcs"] = pcs
        return out

    def run(self) -> bool:
        if self.running:
            return False
        try:
            inputs = self.inputs()
        except ValueError as exc:
            self.status.set(f"refused: {exc}")
            return False
        self.cancel_event.clear()
        self.running = True
        self.results_received = 0
        self._t0 = None
        self.progress.configure(value=0)
        self.status.set("running…")
        from pycam.gui.batch_runner import run_batch

        self.app.tasks.submit(run_batch, inputs, self.app.queue, self.cancel_event,
                              doas=dict(self.app.config.values.get("doas", {})),
                              on_done=self._finished, on_error=self._failed)
        return True

    def cancel(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.status.set("cancelling after the current pair…")

    def _on_progress(self, payload) -> None:
        done, total = payload
        self.progress.configure(maximum=max(total, 1), value=done)
        self.status.set(f"{done}/{total} pairs")

    def _on_result(self, result) -> None:
        if self._t0 is None:
            self._t0 = result.seconds
        for name, rate in result.rates.items():
            colour = "#000000" if name == "total" else LINE_COLOURS[sum(map(ord, name)) % len(LINE_COLOURS)]
            self.series.line(name, color=colour, lw=1.0, marker=".", ms=2)
            self.series.append(name, result.seconds - self._t0, rate.flux_kg_s)
            self.flag_marks.add(result.seconds - self._t0, rate.flux_kg_s, name, rate.flag, rate.flag_reason)
        self.flag_marks.update()
        self.series.fit_limits()
        self.results_received += 1
        self.plot.refresh()

    def _finished(self, summary) -> None:
        self.running = False
        self.summary = summary
        self.status.set(str(summary))

    def _failed(self, exc) -> None:
        self.running = False
        self.status.set(f"processing failed: {exc}")
