"""``pycam demo``: a whole simulated station (master, cameras A/B, spectrometer) as separate
processes on loopback, continuous acquisition, the GUI (or progress lines when headless)."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from pycam.cli.runtime import demo_config_path
from pycam.config import ConfigError, load_config
from pycam.protocol.commands import DEVICES
from pycam.protocol.messages import Event
from pycam.station.launcher import StationError, start_simulated_station, write_station_config
from pycam.station.supervision import DemoState


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start a simulated PyCam station on 127.0.0.1 (master, camera A, camera B, spectrometer as "
        "separate processes), start continuous acquisition, take a clear-sky pair for the live background "
        "and open the GUI (or, with --headless or no DISPLAY, print progress and each pair's live emission "
        "rate, flag and the simulator's true rate).  The demo writes its configuration (fresh secret, free ports) to "
        f"$PYCAM_DEMO_CONFIG, else $XDG_RUNTIME_DIR/pycam/demo.toml, else ~/.cache/pycam/demo.toml, where "
        "`pycam send` finds it; the file is removed when the demo ends.")
    parser.add_argument("--headless", action="store_true", help="no GUI: print progress lines instead")
    parser.add_argument("--duration", type=float,
                        help="stop after this many seconds (default: headless runs until Ctrl-C; "
                             "with the GUI, until the window is closed)")
    parser.add_argument("--data-dir", type=Path, default=Path("pycam_demo_data"),
                        help="where the master stores images and spectra (default ./pycam_demo_data)")
    parser.add_argument("--framerate", type=float, default=1.0,
                        help="frames per second for cameras and spectrometer, 0 < HZ <= 1 (default 1)")
    parser.add_argument("--config-file", type=Path,
                        help="write the demo configuration here instead of the well-known location")
    parser.add_argument("--summary-json", type=Path,
                        help="headless: write the live chain's summary here at the end (mean live rate after "
                             "the DOAS calibration, the simulator's truth, flagged fraction, calibration and its "
                             "slope against the true slope over its samples); "
                             "must not exist yet")


def _gui_runner():
    """``pycam.gui.app.run_gui`` or a reason why the GUI cannot run."""
    if not os.environ.get("DISPLAY"):
        return None, "no DISPLAY is set"
    try:
        from pycam.gui.app import run_gui
    except ImportError as exc:
        return None, f"the GUI is not available ({exc})"
    return run_gui, ""


class _Progress:
    def __init__(self) -> None:
        self.images = {"on": set(), "off": set()}
        self.spectra = 0
        self.errors: list[str] = []
        self.folders: set[Path] = set()   # where this run's plume files are stored
        self.lock = threading.Lock()

    def on_message(self, msg) -> None:
        if isinstance(msg, Event) and msg.name == "file_stored" and msg.fields.get("frame_type") == "Plume":
            name = str(msg.fields.get("filename", ""))
            with self.lock:
                if msg.fields.get("path"):
                    self.folders.add(Path(str(msg.fields["path"])).parent)
                if msg.fields.get("data_type") == "spectrum":
                    self.spectra += 1
                elif "_fltrA_" in name:
                    self.images["on"].add(name.split("_")[0])
                elif "_fltrB_" in name:
                    self.images["off"].add(name.split("_")[0])
        elif getattr(msg, "kind", "") == "error":
            with self.lock:
                self.errors.append(f"{msg.device} {msg.key}: {msg.reason}")

    def summary(self) -> str:
        with self.lock:
            return _summary_line(self.images["on"], self.images["off"], self.spectra)

    def final_summary(self) -> str:
        """Counted on disk in this run's folders: the last frames are delivered while the devices
        stop, after this client has gone (counting events would miss them)."""
        with self.lock:
            folders = sorted(self.folders)
        if not folders:
            return self.summary()
        files = [f for folder in folders for f in folder.glob("*_Plume.*") if not f.name.startswith(".")]
        on = {f.name.split("_")[0] for f in files if "_fltrA_" in f.name and f.suffix == ".png"}
        off = {f.name.split("_")[0] for f in files if "_fltrB_" in f.name and f.suffix == ".png"}
        return _summary_line(on, off, sum(f.suffix == ".npy" for f in files))


def _summary_line(on: set, off: set, spectra: int) -> str:
    return f"{len(on & off)} A/B pairs, {len(on)} A, {len(off)} B, {spectra} spectra stored"


def run(args: argparse.Namespace) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):   # stop as cleanly as on Ctrl-C
        signal.signal(sig, _interrupt)
    if not 0 < args.framerate <= 1:
        print("pycam demo: --framerate must be in (0, 1] Hz", file=sys.stderr)
        return 2
    run_gui, why = (None, "--headless") if args.headless else _gui_runner()
    if not args.headless and run_gui is None:
        print(f"pycam demo: {why}: running headless", file=sys.stderr)
    if args.summary_json is not None and args.summary_json.exists():
        print(f"pycam demo: --summary-json {args.summary_json} exists; remove it or choose another name",
              file=sys.stderr)
        return 2
    config_path = args.config_file or demo_config_path()
    state = DemoState(config_path)
    running = state.running_pid()
    if running is None:
        for line in state.clear_stale():   # a demo that was killed: its leftovers go
            print(f"demo: {line}", file=sys.stderr)
    if running is not None or _demo_running(config_path):
        print(f"pycam demo: a demo is already running with {config_path}"
              f"{f' (pid {running})' if running else ''}; stop it first or pass --config-file", file=sys.stderr)
        return 1
    data_dir = args.data_dir.resolve()
    spool_dir = Path(tempfile.mkdtemp(prefix="pycam-demo-spool-"))
    log_dir = spool_dir.parent / f"{spool_dir.name}-logs"   # removed after a clean run
    write_station_config(config_path, data_dir=data_dir, spool_dir=spool_dir, framerate=args.framerate)
    print(f"demo: configuration {config_path}; data in {data_dir}", flush=True)
    progress = _Progress()
    station = None
    code = 0
    try:
        station = start_simulated_station(config_path, framerate=args.framerate, log_dir=log_dir)
        state.write(station.pids())
        print(f"demo: station up (logs in {station.log_dir}); `pycam send LOG=1` talks to it", flush=True)
        client = station.client(name="pycam-demo", on_message=progress.on_message)
        if not client.wait_connected(10):
            raise StationError(f"cannot connect to the demo master: {client.last_error}")
        client.request("all", "STC", True)
        client.request("all", "STS", True)
        if run_gui is not None:
            watcher = threading.Thread(target=_watch_children, args=(station,), name="demo-watch", daemon=True)
            watcher.start()
            code = run_gui(config_path, duration_s=args.duration, show_truth=True)
        else:
            from pycam.cli.demo_live import HeadlessLiveChain, SimTruth, scene_lines

            truth = SimTruth(station.config)
            chain = HeadlessLiveChain(station.config, lines=scene_lines(truth), truth=truth)
            chain.start()
            live_client = station.client(name="pycam-demo-live", on_message=chain.on_message,
                                         subscribe=("image", "spectrum"))
            if live_client.wait_connected(10):   # a clear-sky pair for the live background
                for device, key in (("CM1", "TPA"), ("CM2", "TPB")):
                    client.request(device, key, "Clear")
            try:
                code = _headless(args.duration, progress, station, chain)
            finally:
                chain.stop()
                if args.summary_json is not None:
                    print(f"demo: live summary in {chain.write_summary(args.summary_json)}", flush=True)
        if station.alive("master"):
            client.request("all", "SPC", True)
            client.request("all", "SPS", True)
    except StationError as exc:
        print(f"pycam demo: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        code = 130
    finally:
        clean = True
        if station is not None:
            print("demo: stopping (devices deliver their spooled files first)", flush=True)
            crashed = _report_crashes(station)
            codes = station.stop()
            bad = {k: v for k, v in codes.items() if v not in (0, None)}
            if bad or crashed:
                clean = False
                print(f"demo: processes exited with {bad or crashed}; logs kept in {station.log_dir}",
                      file=sys.stderr)
            if crashed and not code:
                code = 1   # a child crashed: the demo failed
        print(f"demo: {progress.final_summary()} in {data_dir}", flush=True)
        config_path.unlink(missing_ok=True)
        state.remove()
        if _remove_if_empty(spool_dir) and clean:
            shutil.rmtree(log_dir, ignore_errors=True)
    return int(code or 0)


def _crashed(station) -> dict[str, int]:
    """Children that exited on their own with a failure status (a master ending with 0
    after EXT is not a crash)."""
    return {name: rc for name, rc in station.unexpected_exits().items() if rc != 0}


def _report_crashes(station) -> dict[str, int]:
    crashed = _crashed(station)
    for name, rc in sorted(crashed.items()):
        how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        print(f"demo: {name} crashed ({how}); last lines of {station.log_dir / (name + '.log')}:\n"
              f"{station.log_tail(name, 10)}", file=sys.stderr)
    return crashed


def _watch_children(station) -> None:
    """With the GUI: a child that exits on its own closes the window (the demo then stops)."""
    while not station.unexpected_exits():
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _interrupt(signum, frame) -> None:
    """First Ctrl-C / SIGTERM / SIGHUP: stop cleanly; further ones are ignored so clean-up completes."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _demo_running(config_path: Path) -> bool:
    """True if ``config_path`` is the configuration of a master that answers right now."""
    if not config_path.exists():
        return False
    try:
        config = load_config(config_path)
        with socket.create_connection((config["network"]["master_host"], config["network"]["client_port"]),
                                      timeout=1):
            return True
    except (ConfigError, OSError):
        return False


def _headless(duration: float | None, progress: _Progress, station, chain) -> int:
    start = time.monotonic()
    next_report = start + 5
    while duration is None or time.monotonic() - start < duration:
        exited = station.unexpected_exits()
        if exited:
            if not _crashed(station):
                print(f"demo: {', '.join(sorted(exited))} exited (EXT?); stopping", flush=True)
            return 0   # crashes are reported (and make the exit status non-zero) when stopping
        left = None if duration is None else duration - (time.monotonic() - start)
        time.sleep(max(0.0, min(next_report - time.monotonic(), left if left is not None else 5, 0.5)))
        for line in chain.report():
            print(f"demo: {line}", flush=True)
        if time.monotonic() >= next_report:
            print(f"demo: t={time.monotonic() - start:.0f}s: {progress.summary()}", flush=True)
            next_report += 5
    return 0


def _remove_if_empty(spool_dir: Path) -> bool:
    """Remove the demo spool if every device delivered every file (never delete undelivered
    data; other files there, such as the master's ledger, belong to the run and go too)."""
    leftovers = [p for device in DEVICES for p in (spool_dir / device).glob("*") if p.is_file()]
    if leftovers:
        print(f"demo: {len(leftovers)} undelivered files kept in {spool_dir}", file=sys.stderr)
        return False
    shutil.rmtree(spool_dir, ignore_errors=True)
    return True
