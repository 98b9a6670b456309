"""Guided gas-cell calibration: dark -> clear -> each cell with its ppm·m -> fit, plot, save.

Follows PyCam's manual procedure (pycam_compat.md section 6): acquisition is stopped and
the cameras switched to fixed exposures; Dark and Clear frames, then ``<N>ppmm`` frames of
each cell, are shot on both cameras (``TPA``/``TPB``, one shot every 1.2 s so PyCam's
one-second file names never collide).  Every calibration frame the station sends back is
written in PyCam format into the wizard's ``Cal_<time>`` directory (on a worker thread);
*Fit* runs :func:`pycam.processing.cell_calibration.calibrate_cells` on that directory,
shows the fit and saves ``cell_calibration.txt``/``.csv``/``.png`` beside the frames.
*Finish* restores automatic exposure and can hand the calibration to live processing.
"""
from __future__ import annotations

import datetime as _dt
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk

import numpy as np

from pycam.formats.atomic import atomic_write_text
from pycam.formats.names import format_time
from pycam.gui.forms import validate_command
from pycam.gui.ui_messages import ImageFrame
from pycam.gui.plots import BlitCanvas
from pycam.processing.outputs import write_cell_calibration_csv

SHOT_INTERVAL_MS = 1200
STEPS = ("1. Prepare (fixed exposure)", "2. Dark (cover lenses)", "3. Clear (sky, no cell)",
         "4. Cells (one by one)", "5. Fit and save")


def write_calibration_outputs(directory: Path, calibration) -> list[Path]:
    """``cell_calibration.txt`` (summary), ``.csv`` (points and coefficients), ``.png`` (plot)."""
    from matplotlib.figure import Figure

    directory = Path(directory)
    written = [atomic_write_text(directory / "cell_calibration.txt", calibration.summary() + "\n")]
    written.append(write_cell_calibration_csv(directory / "cell_calibration.csv", calibration))
    fig = Figure(figsize=(5, 3.5), dpi=100)
    draw_calibration(fig.add_subplot(1, 1, 1), calibration)
    png = directory / "cell_calibration.png"
    tmp = directory / ".cell_calibration.png.tmp"
    fig.savefig(tmp, format="png")
    tmp.replace(png)
    written.append(png)
    return written


def draw_calibration(ax, calibration) -> None:
    ax.clear()
    ax.plot(calibration.aa, calibration.columns, "o", label="cells")
    span = np.linspace(min(0.0, float(np.min(calibration.aa))), float(np.max(calibration.aa)) * 1.1, 50)
    ax.plot(span, np.polyval(calibration.coeffs[::-1], span), "-", label=f"fit r²={calibration.r_squared:.4f}")
    for p, a, c in zip(calibration.ppmm, calibration.aa, calibration.columns):
        ax.annotate(f"{p:g} ppm·m", (a, c), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("apparent absorbance (AA)")
    ax.set_ylabel("SO2 column (molec/cm²)")
    ax.legend(fontsize=7)
    ax.set_title(f"slope {calibration.slope:.3e} molec/cm² per AA", fontsize=9)


class CalibrationWizard(ttk.LabelFrame):
    def __init__(self, master, app) -> None:
        super().__init__(master, text="Gas-cell calibration", padding=4)
        self.app = app
        self.active = False
        self.directory: Path | None = None
        self.counts: dict[str, int] = {}
        self.calibration = None
        self.step = tk.StringVar(value="not started")
        self._pending_writes = 0
        self._shots_after: list[str] = []

        controls = ttk.Frame(self)
        controls.pack(side="left", fill="y")
        row = ttk.Frame(controls)
        row.pack(fill="x")
        ttk.Label(row, text="Save into").pack(side="left")
        default_root = Path.home() / "pycam_calibrations"
        self.root_var = tk.StringVar(value=str(default_root))
        ttk.Entry(row, textvariable=self.root_var, width=24).pack(side="left", padx=2)
        ttk.Button(row, text="…", width=2, command=self._browse).pack(side="left")
        ttk.Button(controls, text="Start new calibration", command=self.begin).pack(anchor="w", pady=2)

        grid = ttk.Frame(controls)
        grid.pack(fill="x", pady=2)
        ttk.Label(grid, text="Shutter A/B (µs)").grid(row=0, column=0, sticky="w")
        self.shutter_a = tk.StringVar(value="100000")
        self.shutter_b = tk.StringVar(value="100000")
        ttk.Entry(grid, textvariable=self.shutter_a, width=9).grid(row=0, column=1)
        ttk.Entry(grid, textvariable=self.shutter_b, width=9).grid(row=0, column=2)
        ttk.Button(grid, text=STEPS[0], command=self.prepare).grid(row=0, column=3, sticky="w", padx=4)
        ttk.Label(grid, text="Shots each").grid(row=1, column=0, sticky="w")
        self.shots = tk.StringVar(value="3")
        ttk.Entry(grid, textvariable=self.shots, width=9).grid(row=1, column=1)
        ttk.Button(grid, text=STEPS[1], command=lambda: self.shoot("Dark")).grid(row=1, column=3, sticky="w", padx=4)
        ttk.Button(grid, text=STEPS[2], command=lambda: self.shoot("Clear")).grid(row=2, column=3, sticky="w", padx=4)
        ttk.Label(grid, text="Cell ppm·m").grid(row=3, column=0, sticky="w")
        self.cell_ppmm = tk.StringVar(value="0")
        ttk.Entry(grid, textvariable=self.cell_ppmm, width=9).grid(row=3, column=1)
        ttk.Button(grid, text=STEPS[3], command=self.shoot_cell).grid(row=3, column=3, sticky="w", padx=4)
        ttk.Button(grid, text=STEPS[4], command=self.fit).grid(row=4, column=3, sticky="w", padx=4)
        ttk.Button(grid, text="Finish (auto exposure on)", command=self.finish).grid(row=5, column=3, sticky="w", padx=4)
        self.use_live = tk.BooleanVar(value=True)
        ttk.Checkbutton(grid, text="use for live SO2", variable=self.use_live).grid(row=5, column=0, columnspan=2,
                                                                                   sticky="w")
        self.status = tk.StringVar(value="Start a new calibration, then follow steps 1-5.")
        ttk.Label(controls, textvariable=self.status, wraplength=420, foreground="#333333").pack(fill="x")
        ttk.Label(controls, textvariable=self.step, foreground="#2050a0", wraplength=420).pack(fill="x")
        self.plot = BlitCanvas(self, figsize=(4.0, 3.0))
        self.plot.widget.pack(side="left", fill="both", expand=True)
        self.ax = self.plot.figure.add_subplot(1, 1, 1)
        self.ax.set_title("calibration fit appears here", fontsize=9)
        app.queue.subscribe("cal_frame", self.on_frame)

    def _browse(self) -> None:
        chosen = filedialog.askdirectory(parent=self, title="Calibration root directory")
        if chosen:
            self.root_var.set(chosen)

    # --- steps -------------------------------------------------------------------------
    def begin(self, directory: str | Path | None = None) -> Path:
        stamp = format_time(_dt.datetime.now(_dt.timezone.utc))
        self.directory = Path(directory) if directory else Path(self.root_var.get()) / f"Cal_{stamp}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.active = True
        self.counts = {}
        self.calibration = None
        self.step.set(f"calibration started in {self.directory}")
        self.status.set("Step 1: stop acquisition and fix the exposures.")
        return self.directory

    def _send(self, device: str, key: str, value) -> bool:
        try:
            value = validate_command(device, key, value)
        except ValueError as exc:
            self.status.set(f"refused: {exc}")
            return False
        return self.app.send(device, key, value) is not None

    def prepare(self) -> bool:
        try:
            a = validate_command("CM1", "SSA", self.shutter_a.get())
            b = validate_command("CM2", "SSB", self.shutter_b.get())
        except ValueError as exc:
            self.status.set(f"refused: {exc}")
            return False
        ok = all((self._send("all", "SPC", True), self._send("SPC", "SPS", True),
                  self._send("CM1", "ATA", False), self._send("CM2", "ATB", False),
                  self._send("CM1", "SSA", a), self._send("CM2", "SSB", b)))
        if ok:
            self.step.set("1 done: acquisition stopped, fixed exposures")
            self.status.set("Step 2: cover the lenses, then capture darks.")
        return ok

    def _shot_count(self) -> int | None:
        try:
            n = int(self.shots.get())
            if not 1 <= n <= 20:
                raise ValueError
            return n
        except ValueError:
            self.status.set("refused: shots each must be a whole number 1-20")
            return None

    def shoot(self, frame_type: str) -> bool:
        if not self.active:
            self.status.set("start a new calibration first")
            return False
        n = self._shot_count()
        if n is None:
            return False
        try:
            validate_command("CM1", "TPA", frame_type)
        except ValueError as exc:
            self.status.set(f"refused: {exc}")
            return False
        for i in range(n):
            self._shots_after.append(self.after(i * SHOT_INTERVAL_MS, self._shoot_pair, frame_type))
        self.step.set(f"capturing {n} × {frame_type} on A and B…")
        return True

    def _shoot_pair(self, frame_type: str) -> None:
        self._send("CM1", "TPA", frame_type)
        self._send("CM2", "TPB", frame_type)

    def shoot_cell(self) -> bool:
        try:
            ppmm = int(self.cell_ppmm.get())
            if not 0 <= ppmm <= 100_000:
                raise ValueError
        except ValueError:
            self.status.set("refused: cell amount must be a whole number of ppm·m (0-100000)")
            return False
        return self.shoot(f"{ppmm}ppmm")

    # --- frames in ----------------------------------------------------------------------
    def on_frame(self, frame) -> None:
        if not self.active or not isinstance(frame, ImageFrame) or self.directory is None:
            return
        key = f"{frame.band}:{frame.frame_type}"
        self.counts[key] = self.counts.get(key, 0) + 1
        self._pending_writes += 1
        self.app.tasks.submit(self._write_frame, self.directory, frame, on_done=self._written,
                              on_error=self._write_failed)
        self.step.set("received " + ", ".join(f"{k}×{v}" for k, v in sorted(self.counts.items())))

    @staticmethod
    def _write_frame(directory: Path, frame: ImageFrame) -> Path:
        from pycam.formats.images import write_image

        return write_image(directory / frame.filename, frame.pixels)

    def _written(self, _path) -> None:
        self._pending_writes -= 1

    def _write_failed(self, exc) -> None:
        self._pending_writes -= 1
        self.status.set(f"could not save a calibration frame: {exc}")

    # --- fit --------------------------------------------------------------------------------
    def fit(self) -> bool:
        if self.directory is None:
            self.status.set("start a new calibration first")
            return False
        if self._pending_writes:
            self.after(300, self.fit)
            return True
        self.status.set("fitting…")
        self.app.tasks.submit(self._fit_and_save, self.directory, on_done=self._fitted, on_error=self._fit_failed)
        return True

    @staticmethod
    def _fit_and_save(directory: Path):
        from pycam.processing.cell_calibration import calibrate_cells

        calibration = calibrate_cells(directory)
        written = write_calibration_outputs(directory, calibration)
        return calibration, written

    def _fitted(self, result) -> None:
        self.calibration, written = result
        draw_calibration(self.ax, self.calibration)
        self.plot.request_full_draw()
        self.plot.refresh()
        self.status.set(f"fit saved: {', '.join(p.name for p in written)} in {self.directory}")
        self.step.set("5 done: " + self.calibration.summary().splitlines()[-1])
        self.app.queue.post("calibration", self.calibration)

    def _fit_failed(self, exc) -> None:
        self.status.set(f"calibration failed: {exc}")

    def finish(self) -> None:
        for after_id in self._shots_after:
            try:
                self.after_cancel(after_id)
            except tk.TclError:
                pass
        self._shots_after.clear()
        self._send("CM1", "ATA", True)
        self._send("CM2", "ATB", True)
        if self.calibration is not None and self.use_live.get():
            self.app.live.configure(calibration=self.calibration)
        self.active = False
        self.step.set("calibration finished; automatic exposure restored")
