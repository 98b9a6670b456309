"""Soak benchmark: the simulated station (master, CM1, CM2, SPC as real processes) at 1 Hz for
N minutes with injected faults, then an account of every file.

    .venv/bin/python benchmarks/soak.py [--minutes 20] [--flood 500]

Faults, at fixed fractions of the run (T = the run's length):

* camera B (CM2) killed with SIGKILL every max(60 s, T/5) from 0.15 T, started again 5 s later;
* camera A (CM1) stopped with SIGSTOP at 0.25 T for min(20 s, 0.1 T), then SIGCONT;
* the master stopped (SIGTERM) and started again at 0.4 T;
* the data disk full at 0.55 T for min(60 s, 0.15 T): the master's data directory is a small
  ext4 file system on a loop device (root needed; otherwise this fault is skipped and the
  JSON says so) and a ballast file takes all its free space;
* a drip flood at 0.75 T for min(60 s, 0.15 T) (in the background, the other faults go on):
  ``--flood`` connections to the client port, each sending the next byte of a well-formed
  frame every 5 s (so a frame is always "arriving") and never authenticating.

Measured: files stored per device, files still spooled after the final drain (captured but
not delivered), duplicates (one device, one time stamp, stored twice), temporaries left
(``.part-`` files), gaps in each device's 1 Hz series, the largest RSS / thread count / open
descriptors of every process (sampled every 2 s, with RSS at the start and end for flat
memory), log bytes per minute per process, and the longest time a legitimate client (a new
StationClient asking the master LOG 0 every 5 s) waited for its answer.  Writes
``benchmarks/results/soak.json`` and prints a summary.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycam.formats.names import parse_any  # noqa: E402
from pycam.protocol.messages import Subscribe, encode_bytes  # noqa: E402
from pycam.client import StationClient  # noqa: E402
from pycam.station.launcher import start_simulated_station, write_station_config  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SAMPLE_S = 2.0
PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 30.0
DRIP_EVERY_S = 5.0


# ----------------------------------------------------------------------------- the disk
class LoopDisk:
    """A small ext4 file system on a loop device (sparse image file), for a real disk-full."""

    def __init__(self, workdir: Path, size_mb: int) -> None:
        self.image = workdir / "data.img"
        self.mount = workdir / "data"
        self.size_mb = size_mb
        self.mounted = False
        self.ballast = self.mount / "ballast.bin"
        self.why_not = ""

    def __enter__(self) -> "LoopDisk":
        self.mount.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.why_not = "not root: no loop mount, data on the ordinary disk, disk-full fault skipped"
            return self
        try:
            subprocess.run(["truncate", "-s", f"{self.size_mb}M", str(self.image)], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(self.image)], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mount)], check=True, capture_output=True)
            self.mounted = True
        except (OSError, subprocess.CalledProcessError) as exc:
            self.why_not = f"loop mount failed ({exc}): disk-full fault skipped"
        return self

    def fill(self) -> int:
        """Take all free space; returns the ballast size in bytes."""
        free = shutil.disk_usage(self.mount).free
        with open(self.ballast, "wb") as fh:
            try:
                os.posix_fallocate(fh.fileno(), 0, max(1, free - 64 * 1024))
            except OSError:
                pass
        return self.ballast.stat().st_size

    def empty(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.mount)], check=False, capture_output=True)
        self.image.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- sampling
def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return {}
    return out


class Sampler(threading.Thread):
    def __init__(self, station, log_dir: Path) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.station = station
        self.log_dir = log_dir
        self.stop_event = threading.Event()
        self.max = collections.defaultdict(lambda: {"rss_mb": 0.0, "threads": 0, "fds": 0})
        self.rss_series = collections.defaultdict(list)    # name -> [(t, rss_mb)]
        self.log_sizes: list[tuple[float, dict[str, int]]] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        next_log = 0.0
        while not self.stop_event.wait(SAMPLE_S):
            t = time.monotonic() - self.t0
            for name, proc in list(self.station.processes.items()):
                if proc.poll() is not None:
                    continue
                st = _proc_status(proc.pid)
                if not st:
                    continue
                rss = st.get("VmRSS", 0) / 1024
                m = self.max[name]
                m["rss_mb"] = max(m["rss_mb"], round(rss, 1))
                m["threads"] = max(m["threads"], st.get("Threads", 0))
                m["fds"] = max(m["fds"], st.get("fds", 0))
                self.rss_series[name].append((round(t, 1), round(rss, 1)))
            if t >= next_log:
                self.log_sizes.append((t, {p.stem: p.stat().st_size for p in self.log_dir.glob("*.log")}))
                next_log += 60.0


# ----------------------------------------------------------------------- legit clients
class Prober(threading.Thread):
    """Every PROBE_EVERY_S a new client connects and asks the master LOG 0; the wait from
    starting to connect to the answer is recorded."""

    def __init__(self, config) -> None:
        super().__init__(name="soak-prober", daemon=True)
        self.config = config
        self.stop_event = threading.Event()
        self.waits: list[tuple[float, float, bool]] = []   # (t, seconds, answered)
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.wait(PROBE_EVERY_S):
            start = time.monotonic()
            client = StationClient(self.config, name="soak-probe")
            ok = False
            try:
                client.start()
                if client.wait_connected(PROBE_TIMEOUT_S):
                    left = PROBE_TIMEOUT_S - (time.monotonic() - start)
                    client.request("master", "LOG", 0, timeout=max(0.1, left))
                    ok = True
            except Exception:
                ok = False
            finally:
                client.stop()
            self.waits.append((round(start - self.t0, 1), round(time.monotonic() - start, 3), ok))


# --------------------------------------------------------------------------- drip flood
def drip_flood(host: str, port: int, count: int, seconds: float, stop: threading.Event) -> dict:
    socks, refused = [], 0
    for _ in range(count):
        try:
            s = socket.create_connection((host, port), timeout=2)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
    deadline = time.monotonic() + seconds
    dropped = 0
    frame = encode_bytes(Subscribe(data_types=("image",)))
    sent = 0
    while time.monotonic() < deadline and not stop.is_set():
        alive = []
        byte = frame[sent % len(frame):sent % len(frame) + 1]
        sent += 1
        for s in socks:
            try:
                s.send(byte)
                alive.append(s)
            except OSError:
                dropped += 1
                s.close()
        socks = alive
        stop.wait(min(DRIP_EVERY_S, max(0.0, deadline - time.monotonic())))
    held = len(socks)
    for s in socks:
        s.close()
    return {"connections": count, "refused_at_connect": refused, "closed_by_master": dropped,
            "held_to_the_end": held}


# -------------------------------------------------------------------------- accounting
def account(data_dir: Path, spool_dir: Path, start: float, end: float) -> dict:
    per_device: dict[str, list[tuple[dt.datetime, str]]] = collections.defaultdict(list)
    names = collections.Counter()
    for p in data_dir.rglob("*"):
        if not p.is_file() or p.name == "ballast.bin" or p.name.startswith("."):
            continue
        try:
            parsed = parse_any(p.name)
        except ValueError:
            continue
        if parsed.frame_type != "Plume":
            continue
        device = "SPC" if p.suffix == ".npy" else ("CM1" if "_fltrA_" in p.name else "CM2")
        per_device[device].append((parsed.time, p.name))
        names[p.name] += 1
    out = {}
    for device in ("CM1", "CM2", "SPC"):
        items = sorted(per_device.get(device, []))
        stamps = collections.Counter(t for t, _ in items)
        times = sorted(stamps)
        gaps = [(b - a).total_seconds() - 1 for a, b in zip(times, times[1:]) if (b - a).total_seconds() > 1]
        spooled = [p for p in (spool_dir / device).glob("*") if p.is_file() and not p.name.startswith(".")]
        out[device] = {
            "stored": len(items), "still_spooled": len(spooled),
            "captured": len(items) + len(spooled),
            "duplicate_time_stamps": sum(c - 1 for c in stamps.values() if c > 1),
            "missing_seconds": int(sum(gaps)), "longest_gap_s": max(gaps, default=0.0),
        }
    out["duplicate_names"] = sum(c - 1 for c in names.values() if c > 1)
    out["temporaries"] = [str(p) for root in (data_dir, spool_dir) for p in root.rglob("*")
                          if ".part-" in p.name]
    return out


# ------------------------------------------------------------------------------- main
def run(minutes: float, flood: int, framerate: float, out: Path, disk_mb: int) -> dict:
    total = minutes * 60.0
    workdir = Path(tempfile.mkdtemp(prefix="pycam-soak-"))
    log_dir = workdir / "logs"
    report: dict = {"benchmark": "soak", "minutes": minutes, "framerate_hz": framerate, "flood_connections": flood,
                    "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                "load_1min": os.getloadavg()[0]},
                    "faults": []}
    with LoopDisk(workdir, disk_mb) as disk:
        data_dir, spool_dir = disk.mount, workdir / "spool"
        config_path = write_station_config(workdir / "station.toml", data_dir=data_dir, spool_dir=spool_dir,
                                           framerate=framerate,
                                           overrides={"storage": {"min_free_mb": 0},
                                                      "schedule": {"watchdog_timeout_s": 60.0,
                                                                   "watchdog_check_s": 5.0}})
        station = start_simulated_station(config_path, framerate=framerate, log_dir=log_dir)
        sampler, prober = Sampler(station, log_dir), Prober(station.config)
        stop = threading.Event()
        try:
            control = station.client(name="soak-control")
            if not control.wait_connected(30):
                raise RuntimeError(f"cannot connect to the soak station: {control.last_error}")
            control.request("all", "STC", True, timeout=30)
            control.request("SPC", "STS", True, timeout=30)
            t0 = time.monotonic()
            sampler.t0 = prober.t0 = t0
            sampler.start()
            prober.start()
            events = _schedule(total)
            flooder = None

            def note(what: str, **extra) -> None:
                entry = {"t_s": round(time.monotonic() - t0, 1), "fault": what, **extra}
                report["faults"].append(entry)
                print(f"soak: t={entry['t_s']:.0f}s {what} {extra or ''}", flush=True)

            for at, action in events:
                delay = t0 + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if action == "kill CM2":
                    station.kill("CM2")
                    note("SIGKILL CM2")
                elif action == "restart CM2":
                    station.restart("CM2")
                    note("CM2 started again")
                elif action == "stop CM1":
                    os.kill(station.pid("CM1"), signal.SIGSTOP)
                    note("SIGSTOP CM1")
                elif action == "cont CM1":
                    os.kill(station.pid("CM1"), signal.SIGCONT)
                    note("SIGCONT CM1")
                elif action == "restart master":
                    code = station.terminate("master")
                    station.restart("master")
                    note("master restarted", exit_code=code)
                elif action.startswith("disk full"):
                    if disk.mounted:
                        note("disk full", ballast_mb=round(disk.fill() / 2**20, 1))
                    else:
                        note("disk full skipped", reason=disk.why_not)
                elif action == "disk free":
                    if disk.mounted:
                        disk.empty()
                        note("disk space back")
                elif action == "flood":
                    seconds = min(60.0, 0.15 * total)
                    note("drip flood", connections=flood, seconds=seconds)
                    net = station.config["network"]

                    def flood_job(host=net["master_host"], port=net["client_port"], seconds=seconds) -> None:
                        note("drip flood over", **drip_flood(host, port, flood, seconds, stop))

                    flooder = threading.Thread(target=flood_job, name="soak-flood", daemon=True)
                    flooder.start()
            left = t0 + total - time.monotonic()
            if left > 0:
                time.sleep(left)
            if flooder is not None:
                flooder.join(120)
            run_s = time.monotonic() - t0
            for device in ("CM1", "CM2", "SPC"):
                if not station.alive(device):
                    station.restart(device)
            try:
                control.wait_connected(30)
                control.request("all", "SPC", True, timeout=30)
                control.request("SPC", "SPS", True, timeout=30)
            except Exception as exc:
                report["stop_error"] = str(exc)
            _wait_drained(spool_dir, 90.0)
        finally:
            stop.set()
            sampler.stop_event.set()
            prober.stop_event.set()
            if prober.is_alive():
                prober.join(PROBE_TIMEOUT_S + 5)
            codes = station.stop(timeout=30)
        report["exit_codes"] = codes
        report["run_s"] = round(run_s, 1)
        report["disk_fault"] = "loop ext4" if disk.mounted else disk.why_not
        report["files"] = account(data_dir, spool_dir, t0, t0 + run_s)
        report["processes"] = {name: dict(v) for name, v in sampler.max.items()}
        for name, series in sampler.rss_series.items():
            if len(series) >= 4:
                tenth = series[len(series) // 10]
                report["processes"][name]["rss_mb_at_10pct"] = tenth[1]
                report["processes"][name]["rss_mb_at_end"] = series[-1][1]
        report["log_bytes_per_minute"] = _log_rates(sampler.log_sizes, log_dir)
        waits = prober.waits
        report["legit_client"] = {
            "probes": len(waits), "failed": sum(1 for w in waits if not w[2]),
            "longest_wait_s": max((w[1] for w in waits), default=None),
            "median_wait_s": sorted(w[1] for w in waits)[len(waits) // 2] if waits else None,
            "longest_at_t_s": max(waits, key=lambda w: w[1])[0] if waits else None}
    shutil.rmtree(workdir, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _schedule(total: float) -> list[tuple[float, str]]:
    events = []
    period = max(60.0, total / 5)
    t = 0.15 * total
    while t + 5 < 0.95 * total:
        events += [(t, "kill CM2"), (t + 5, "restart CM2")]
        t += period
    stop_s = min(20.0, 0.1 * total)
    events += [(0.25 * total, "stop CM1"), (0.25 * total + stop_s, "cont CM1"), (0.4 * total, "restart master")]
    full_s = min(60.0, 0.15 * total)
    events += [(0.55 * total, "disk full"), (0.55 * total + full_s, "disk free"), (0.75 * total, "flood")]
    return sorted(events)


def _wait_drained(spool_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for d in ("CM1", "CM2", "SPC") for p in (spool_dir / d).glob("*") if p.is_file()]:
            return
        time.sleep(1.0)


def _log_rates(sizes: list[tuple[float, dict[str, int]]], log_dir: Path) -> dict:
    final = {p.stem: p.stat().st_size for p in log_dir.glob("*.log")} if log_dir.exists() else {}
    out = {}
    points = sizes + [(sizes[-1][0] + 60.0 if sizes else 60.0, final)]
    for name in final:
        rates = [(b.get(name, 0) - a.get(name, 0)) / max(1e-9, (tb - ta) / 60.0)
                 for (ta, a), (tb, b) in zip(points, points[1:]) if tb > ta]
        out[name] = {"max": round(max(rates, default=0.0)), "mean": round(sum(rates) / len(rates)) if rates else 0,
                     "total_bytes": final[name]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the run (default 20)")
    parser.add_argument("--flood", type=int, default=500, help="drip-flood connections (default 500)")
    parser.add_argument("--framerate", type=float, default=1.0, help="capture rate, Hz (default 1)")
    parser.add_argument("--disk-mb", type=int, default=4096, help="size of the loop file system for the data")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or not 0 < args.framerate <= 1:
        parser.error("--minutes must be > 0 and --framerate in (0, 1]")
    report = run(args.minutes, args.flood, args.framerate, args.out, args.disk_mb)
    files = report["files"]
    lost = sum(files[d]["still_spooled"] for d in ("CM1", "CM2", "SPC"))
    dup = files["duplicate_names"] + sum(files[d]["duplicate_time_stamps"] for d in ("CM1", "CM2", "SPC"))
    print(f"soak: {report['run_s']:.0f} s; stored " +
          ", ".join(f"{d} {files[d]['stored']}" for d in ("CM1", "CM2", "SPC")) +
          f"; undelivered {lost}; duplicates {dup}; temporaries {len(files['temporaries'])}; "
          f"longest legitimate client wait {report['legit_client']['longest_wait_s']} s "
          f"({report['legit_client']['failed']} of {report['legit_client']['probes']} probes failed); "
          f"max RSS " + ", ".join(f"{n} {v['rss_mb']:.0f} MB" for n, v in sorted(report['processes'].items())) +
          f"; JSON in {args.out}")
    return 0 if lost == 0 and dup == 0 and not files["temporaries"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
