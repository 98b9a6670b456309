"""Acquisition tab: automated acquisition, manual captures, dark sets, settings retrieval,
and the gas-cell calibration wizard (:mod:`pycam.gui.calibration_wizard`).

Every action is a typed command sent without blocking; progress and results come back as
replies and events through the GUI queue.
"""
from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from pycam.gui.forms import validate_command
from pycam.gui.ui_messages import ImageFrame, MessageSummary, SpectrumFrame
from pycam.protocol import events

CAPTURE_TARGETS = {"Camera A": ("CM1", "TPA"), "Camera B": ("CM2", "TPB"), "Spectrometer": ("SPC", "TPS")}


class AcquisitionView(ttk.Frame):
    def __init__(self, master, app) -> None:
        super().__init__(master, padding=4)
        self.app = app
        self.queue = app.queue
        self.acquiring = tk.StringVar(value="unknown")
        self.last_test = tk.StringVar(value="no test frame yet")
        self.test_frames: list[str] = []
        self.settings_report: dict[str, dict] = {}
        self._sequence_after: str | None = None
        self.dark_waiting: set[str] = set()
        self.dark_frames = 0
        self._sequence_left = 0

        left = ttk.Frame(self)
        left.pack(side="left", fill="y")
        auto = ttk.LabelFrame(left, text="Automated acquisition", padding=4)
        auto.pack(fill="x", pady=3)
        self.start_button = ttk.Button(auto, text="Start (F5)", command=self.start_acquisition)
        self.start_button.grid(row=0, column=0, padx=2)
        self.stop_button = ttk.Button(auto, text="Stop (F6)", command=self.stop_acquisition)
        self.stop_button.grid(row=0, column=1, padx=2)
        ttk.Label(auto, text="State:").grid(row=1, column=0, sticky="e")
        ttk.Label(auto, textvariable=self.acquiring).grid(row=1, column=1, sticky="w")

        manual = ttk.LabelFrame(left, text="Manual capture", padding=4)
        manual.pack(fill="x", pady=3)
        ttk.Button(manual, text="Test image A", command=lambda: self.capture("Camera A", "Test")).grid(row=0, column=0)
        ttk.Button(manual, text="Test image B", command=lambda: self.capture("Camera B", "Test")).grid(row=0, column=1)
        ttk.Button(manual, text="Test A+B (Ctrl+T)", command=self.test_images).grid(row=0, column=2)
        ttk.Button(manual, text="Test spectrum",
                   command=lambda: self.capture("Spectrometer", "Test")).grid(row=1, column=0)
        ttk.Label(manual, textvariable=self.last_test, wraplength=330).grid(row=2, column=0, columnspan=3, sticky="w")

        seq = ttk.LabelFrame(left, text="Sequence", padding=4)
        seq.pack(fill="x", pady=3)
        self.seq_target = tk.StringVar(value="Camera A")
        ttk.Combobox(seq, textvariable=self.seq_target, values=list(CAPTURE_TARGETS) + ["Cameras A+B"],
                     width=12, state="readonly").grid(row=0, column=0, columnspan=2, sticky="w")
        self.seq_type = tk.StringVar(value="Test")
        ttk.Entry(seq, textvariable=self.seq_type, width=10).grid(row=0, column=2)
        ttk.Label(seq, text="count").grid(row=1, column=0, sticky="e")
        self.seq_count = tk.StringVar(value="5")
        ttk.Entry(seq, textvariable=self.seq_count, width=5).grid(row=1, column=1, sticky="w")
        ttk.Label(seq, text="every (s)").grid(row=2, column=0, sticky="e")
        self.seq_interval = tk.StringVar(value="2")
        ttk.Entry(seq, textvariable=self.seq_interval, width=5).grid(row=2, column=1, sticky="w")
        ttk.Button(seq, text="Run", command=self.run_sequence).grid(row=1, column=2)
        ttk.Button(seq, text="Cancel", command=self.cancel_sequence).grid(row=2, column=2)
        self.seq_status = tk.StringVar(value="")
        ttk.Label(seq, textvariable=self.seq_status, wraplength=330).grid(row=3, column=0, columnspan=3, sticky="w")

        dark = ttk.LabelFrame(left, text="Dark set (cover the lenses)", padding=4)
        dark.pack(fill="x", pady=3)
        ttk.Button(dark, text="Cameras", command=lambda: self.dark_set(cameras=True)).grid(row=0, column=0)
        ttk.Button(dark, text="Spectrometer", command=lambda: self.dark_set(spectrometer=True)).grid(row=0, column=1)
        ttk.Button(dark, text="Both", command=lambda: self.dark_set(True, True)).grid(row=0, column=2)
        self.dark_progress = ttk.Progressbar(dark, length=300, mode="determinate", maximum=100)
        self.dark_progress.grid(row=1, column=0, columnspan=3, pady=2)
        self.dark_status = tk.StringVar(value="")
        ttk.Label(dark, textvariable=self.dark_status, wraplength=330).grid(row=2, column=0, columnspan=3, sticky="w")

        log = ttk.LabelFrame(left, text="Station settings", padding=4)
        log.pack(fill="x", pady=3)
        ttk.Button(log, text="Retrieve settings (LOG 1, Ctrl+L)", command=self.retrieve_settings).pack(anchor="w")

        right = ttk.Frame(self)
        right.pack(side="left", fill="both", expand=True, padx=6)
        self.settings_tree = ttk.Treeview(right, columns=("device", "key", "value"), show="headings", height=5)
        for col, width in (("device", 70), ("key", 150), ("value", 150)):
            self.settings_tree.heading(col, text=col.capitalize())
            self.settings_tree.column(col, width=width)
        self.settings_tree.pack(fill="x")
        from pycam.gui.calibration_wizard import CalibrationWizard

        self.wizard = CalibrationWizard(right, app)
        self.wizard.pack(fill="both", expand=True, pady=4)

        self.queue.subscribe("message", self._on_message)
        self.queue.subscribe("image", self._on_frame)
        self.queue.subscribe("spectrum", self._on_frame)

    # --- commands ------------------------------------------------------------------------
    def _send(self, device: str, key: str, value) -> str | None:
        try:
            value = validate_command(device, key, value)
        except ValueError as exc:
            self.queue.post("error", f"refused before sending: {exc}")
            return None
        return self.app.send(device, key, value)

    def start_acquisition(self) -> None:
        self._send("all", "STC", True)
        self._send("SPC", "STS", True)
        self.acquiring.set("starting…")

    def stop_acquisition(self) -> None:
        self._send("all", "SPC", True)
        self._send("SPC", "SPS", True)
        self.acquiring.set("stopping…")

    def capture(self, target: str, frame_type: str) -> bool:
        device, key = CAPTURE_TARGETS[target]
        return self._send(device, key, frame_type) is not None

    def test_images(self) -> None:
        self.capture("Camera A", "Test")
        self.capture("Camera B", "Test")

    def retrieve_settings(self) -> None:
        self._send("all", "LOG", 1)

    def dark_set(self, cameras: bool = False, spectrometer: bool = False) -> None:
        """Start dark sets; the bar runs until every asked device reports DFC/DFS."""
        self.dark_progress.stop()
        self.dark_progress.configure(mode="determinate", value=0)
        self.dark_waiting = set()
        self.dark_frames = 0
        if cameras and self._send("all", "DKC", True) is not None:
            self.dark_waiting |= {"CM1", "CM2"}
        if spectrometer and self._send("SPC", "DKS", True) is not None:
            self.dark_waiting.add("SPC")
        self.dark_status.set("dark set requested…" if self.dark_waiting else "dark set not sent")

    def run_sequence(self) -> None:
        try:
            count = int(self.seq_count.get())
            interval = float(self.seq_interval.get())
            if not (1 <= count <= 10_000 and 0.5 <= interval <= 86_400):
                raise ValueError
            validate_command("CM1", "TPA", self.seq_type.get())
        except ValueError:
            self.seq_status.set("refused: count 1-10000, interval 0.5-86400 s, type Test/Dark/Clear/<N>ppmm")
            return
        self.cancel_sequence()
        self._sequence_left = count
        self._sequence_step(interval)

    def _sequence_step(self, interval: float) -> None:
        if self._sequence_left <= 0:
            self.seq_status.set("sequence finished")
            self._sequence_after = None
            return
        targets = ["Camera A", "Camera B"] if self.seq_target.get() == "Cameras A+B" else [self.seq_target.get()]
        for target in targets:
            self.capture(target, self.seq_type.get())
        self._sequence_left -= 1
        self.seq_status.set(f"sequence: {self._sequence_left} left")
        self._sequence_after = self.after(int(interval * 1000), self._sequence_step, interval)

    def cancel_sequence(self) -> None:
        if self._sequence_after is not None:
            self.after_cancel(self._sequence_after)
            self._sequence_after = None
            self.seq_status.set("sequence cancelled")
        self._sequence_left = 0

    # --- incoming --------------------------------------------------------------------------
    def _on_frame(self, frame: ImageFrame | SpectrumFrame) -> None:
        if frame.frame_type == "Dark" and self.dark_waiting:
            self.dark_frames += 1
            self.dark_status.set(f"dark set running: {self.dark_frames} dark frames received, "
                                 f"waiting for {', '.join(sorted(self.dark_waiting))}")
        if frame.frame_type == "Test":
            self.test_frames.append(frame.filename)
            self.last_test.set(f"last test frame: {frame.filename}")

    def _on_message(self, s: MessageSummary) -> None:
        if s.kind == "reply" and s.key in ("STC", "STS") and s.value:
            self.acquiring.set("running")
        elif s.kind == "reply" and s.key in ("SPC", "SPS"):
            self.acquiring.set("stopped")
        elif s.kind == "reply" and s.key == "LOG" and isinstance(s.value, dict):
            self.settings_report[s.device] = s.value
            self._show_settings()
        elif s.kind == "event":
            self._on_event(s)

    def _on_event(self, s: MessageSummary) -> None:
        fields = s.value if isinstance(s.value, dict) else {}
        name = s.key or ""
        if name == "progress" and "dark" in str(fields.get("task", "")).lower():
            done, total = fields.get("done"), fields.get("total")
            if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
                self.dark_progress.stop()
                self.dark_progress.configure(mode="determinate", value=100.0 * done / total)
                self.dark_status.set(f"{s.device}: dark {done}/{total}")
            elif fields.get("state") == "started" and str(self.dark_progress["mode"]) != "indeterminate":
                self.dark_progress.configure(mode="indeterminate")  # the station gives no count: keep moving
                self.dark_progress.start(50)
        elif name in ("DFC", "DFS"):
            self.dark_waiting.discard(s.device)
            if not self.dark_waiting:
                self.dark_progress.stop()
                self.dark_progress.configure(mode="determinate", value=100)
                self.dark_status.set(f"dark set finished ({self.dark_frames} dark frames received)")
            else:
                self.dark_status.set(f"{s.device}: dark set finished; waiting for {', '.join(sorted(self.dark_waiting))}")
        elif name == "settings" and fields:
            self.settings_report[s.device] = fields
            self._show_settings()
        elif name == events.Acquisition.name:
            ev = events.parse_quietly(name, fields)
            if isinstance(ev, events.Acquisition):
                self.acquiring.set("running" if ev.acquiring else "stopped")

    def _show_settings(self) -> None:
        self.settings_tree.delete(*self.settings_tree.get_children())
        for device, values in sorted(self.settings_report.items()):
            for key, value in sorted(values.items()):
                self.settings_tree.insert("", "end", values=(device, key, repr(value)))
