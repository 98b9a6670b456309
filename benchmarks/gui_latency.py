#!/usr/bin/env python3
"""GUI responsiveness while a simulated station streams 1 Hz image pairs and spectra.

Starts the simulated station (master, CM1, CM2, SPC as processes on loopback) at 1 Hz and
the full GUI with the real camera chain and DOAS retrieval (default PCS line), starts
acquisition, waits ``--warmup`` seconds, then for ``--duration`` seconds records the gap
between consecutive callbacks of a 10 ms ``after`` ticker on the Tk thread (the longest
gap is the longest time the event loop could not run) while the visible tab cycles
through Overview, Camera, Spectrometer and Analysis every 5 s.  Also recorded: the longest time the
GUI's own queue handlers held the Tk thread in one tick, pairs processed, processing time
per pair (worker thread), full draws vs blits, and the machine's load average (other
processes compete for the same cores and show up in the gaps).

Writes ``benchmarks/results/gui_latency.json`` and prints a one-line summary.  Without a
``DISPLAY`` an Xvfb 1366x768 display is started for the run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TICK_MS = 10
CYCLED_VIEWS = ("Overview", "Camera", "Spectrometer", "Analysis")


def start_xvfb():
    if os.environ.get("DISPLAY") or shutil.which("Xvfb") is None:
        return None
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1366x768x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    os.environ["DISPLAY"] = f":{number}"
    return proc


def run(duration: float, warmup: float, framerate: float) -> dict:
    import tkinter as tk

    from pycam.gui import worker
    from pycam.gui.app import PyCamApp
    from pycam.station.launcher import start_simulated_station, write_station_config

    base = Path(tempfile.mkdtemp(prefix="pycam-gui-bench-"))
    config_path = write_station_config(base / "station.toml", data_dir=base / "data", spool_dir=base / "spool",
                                       framerate=framerate)
    pump_times: list[float] = []
    original_pump = worker.GuiQueue.pump

    def timed_pump(self, budget_s=0.03):
        started = time.perf_counter()
        try:
            return original_pump(self, budget_s)
        finally:
            pump_times.append(time.perf_counter() - started)

    worker.GuiQueue.pump = timed_pump
    load_before = os.getloadavg()
    with start_simulated_station(config_path, framerate=framerate, log_dir=base / "logs") as station:
        root = tk.Tk()
        root.geometry("1366x768+0+0")
        app = PyCamApp(root, station.config, state_dir=base / "gui-state")
        deadline = time.monotonic() + 60
        while not (app.ready and app.link.state == "connected") and time.monotonic() < deadline:
            root.update()
            time.sleep(0.01)
        app.start_acquisition()
        gaps: list[float] = []
        gap_info: list[tuple[float, str]] = []
        state = {"last": None, "measuring": False, "start": time.monotonic()}

        def tick():
            now = time.monotonic()
            if state["measuring"] and state["last"] is not None:
                gaps.append(now - state["last"])
                gap_info.append((now - state["measure_start"], app.notebook.tab(app.notebook.select(), "text")))
            state["last"] = now
            elapsed = now - state["start"]
            if not state["measuring"] and elapsed >= warmup:
                state["measuring"] = True
                state["measure_start"] = now
                pump_times.clear()
                app.live.pairs_processed = 0
                state["draws"] = {name: (c.full_draws, c.blits) for name, c in canvases().items()}
            if state["measuring"]:
                index = int((now - state["measure_start"]) // 5) % len(CYCLED_VIEWS)
                view = app.views[CYCLED_VIEWS[index]]
                if app.notebook.select() != str(view):
                    app.notebook.select(view)
                if now - state["measure_start"] >= duration:
                    root.quit()
                    return
            root.after(TICK_MS, tick)

        def canvases():
            out = {}
            for title, view in app.views.items():
                for i, canvas in enumerate(app.canvases(view)):
                    out[f"{title}[{i}]"] = canvas
            return out

        processing_times: list[float] = []
        original_add = app.live._add_image

        def record_processing(frame, lines):
            before = app.live.pairs_processed
            original_add(frame, lines)
            if app.live.pairs_processed > before:
                processing_times.append(app.live.last_processing_s)

        app.live._add_image = record_processing
        root.after(TICK_MS, tick)
        root.mainloop()
        draws = {name: (c.full_draws - state["draws"].get(name, (0, 0))[0], c.blits - state["draws"].get(name, (0, 0))[1])
                 for name, c in canvases().items()}
        result_count = app.views["Analysis"].results_shown
        rates = len(app.views["Analysis"].rates.get("total", []))
        slowest = dict(app.queue.slowest)
        pairs = app.live.pairs_processed
        app.quit()
    worker.GuiQueue.pump = original_pump
    gaps_ms = np.array(gaps) * 1000.0
    worst = sorted(range(len(gaps)), key=lambda i: gaps[i], reverse=True)[:5]
    return {
        "worst_gaps": [{"ms": round(gaps[i] * 1000, 1), "at_s": round(gap_info[i][0], 2), "view": gap_info[i][1]}
                       for i in worst],
        "gaps_over_50ms": int(np.count_nonzero(gaps_ms > 50)),
        "duration_s": duration, "warmup_s": warmup, "framerate_hz": framerate, "tick_interval_ms": TICK_MS,
        "ticks": int(gaps_ms.size),
        "max_gap_ms": round(float(gaps_ms.max()), 1) if gaps_ms.size else None,
        "p99_gap_ms": round(float(np.percentile(gaps_ms, 99)), 1) if gaps_ms.size else None,
        "p50_gap_ms": round(float(np.percentile(gaps_ms, 50)), 1) if gaps_ms.size else None,
        "gaps_over_100ms": int(np.count_nonzero(gaps_ms > 100)),
        "max_gui_work_per_tick_ms": round(max(pump_times) * 1000.0, 1) if pump_times else None,
        "slowest_handler_ms_by_event": {k: round(v * 1000.0, 1) for k, v in slowest.items()},
        "pairs_processed": pairs,
        "processing_ms_per_pair_median": round(float(np.median(processing_times)) * 1000, 1) if processing_times else None,
        "analysis_results_shown_total": result_count,
        "emission_rate_points": rates,
        "full_draws_and_blits_during_measurement": draws,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument("--warmup", type=float, default=25.0,
                        help="seconds of acquisition before measuring (default 25: the DOAS calibration settles)")
    parser.add_argument("--framerate", type=float, default=1.0, help="station frame rate, Hz (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gui_latency.json")
    args = parser.parse_args(argv)
    xvfb = start_xvfb()
    try:
        result = run(args.duration, args.warmup, args.framerate)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"gui_latency: longest Tk event-loop gap {result['max_gap_ms']} ms (p99 {result['p99_gap_ms']} ms, "
          f"{result['gaps_over_100ms']} gaps > 100 ms; longest GUI work in one tick "
          f"{result['max_gui_work_per_tick_ms']} ms) over {result['duration_s']:g} s of {result['framerate_hz']:g} Hz "
          f"pairs, {result['pairs_processed']} pairs processed at {result['processing_ms_per_pair_median']} ms "
          f"(load {result['load_average_before'][0]} on {result['cpu_count']} CPUs) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
