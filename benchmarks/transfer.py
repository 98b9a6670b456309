"""Transfer benchmark: image frames camera -> master over loopback through the full protocol
(an authenticated session: CRC-32C payload checksums and the per-frame session MAC computed by
the sender and verified by the receiver, every header parsed and validated) versus a raw socket
sending the same bytes in the same run (same socket options); and capture-to-disk latency through the real camera service and master (spool,
store-and-forward, atomic fsynced PNG on the master).

    .venv/bin/python benchmarks/transfer.py [--quick]

Writes ``benchmarks/results/transfer.json`` and prints a one-line summary.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycam.drivers.base import CameraDriver, CameraFrame, CameraLimits, DriverError  # noqa: E402
from pycam.net.connection import SOCKET_BUFFER_BYTES, Connection, tune_socket  # noqa: E402
from pycam.net.auth import client_handshake, server_handshake  # noqa: E402
from pycam.protocol import messages as m  # noqa: E402
from pycam.protocol.session import HAVE_GMAC, ServerSession  # noqa: E402

BENCH_SECRET = "b" * 64

SIZES = {"648x486": (486, 648), "2592x1944": (1944, 2592)}


# ------------------------------------------------------------------------------ throughput
def _frame(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1024, shape, dtype=np.uint16)


def _raw_sender(port: int, shape, count: int, same_options: bool = True) -> None:
    payload = _frame(shape).tobytes()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if same_options:
            tune_socket(sock)
        for _ in range(count):
            sock.sendall(payload)


def _protocol_sender(port: int, shape, count: int) -> None:
    pixels = _frame(shape)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        conn = Connection(sock, max_payload_bytes=1 << 27)
        client_handshake(conn, BENCH_SECRET, role="device", name="bench", device="CM1")   # MAC on every frame
        for i in range(count):
            meta = m.DataMeta(data_type="image", filename=f"2024-01-01T00{i // 60 % 60:02d}{i % 60:02d}_fltrA_1ag_1000ss_Plume.png",
                              device="CM1", shape=shape, dtype="<u2", time="2024-01-01T00:00:00+00:00",
                              frame_type="Plume", band="on", exposure_us=1000)
            conn.send(m.Data.from_array(meta, pixels))   # payload checksum computed here, every frame
        conn.close()


def _listen() -> socket.socket:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    return ls


def raw_throughput(shape, count: int, same_options: bool = True) -> float:
    """A plain socket: the sender sendall()s the frame's bytes, the receiver recv_into()s one
    buffer.  ``same_options``: both ends get the protocol connection's socket options
    (pycam.net.connection.tune_socket: TCP_NODELAY, SO_KEEPALIVE, 4 MiB SO_SNDBUF/SO_RCVBUF)."""
    nbytes = shape[0] * shape[1] * 2
    ls = _listen()
    proc = mp.Process(target=_raw_sender, args=(ls.getsockname()[1], shape, count, same_options))
    proc.start()
    conn, _ = ls.accept()
    if same_options:
        tune_socket(conn)
    buf = bytearray(nbytes)
    view = memoryview(buf)
    start = time.perf_counter()
    for _ in range(count):
        got = 0
        while got < nbytes:
            n = conn.recv_into(view[got:])
            if n == 0:
                raise RuntimeError("raw sender closed early")
            got += n
    elapsed = time.perf_counter() - start
    conn.close()
    ls.close()
    proc.join()
    return count * nbytes / elapsed


def protocol_throughput(shape, count: int) -> float:
    nbytes = shape[0] * shape[1] * 2
    ls = _listen()
    proc = mp.Process(target=_protocol_sender, args=(ls.getsockname()[1], shape, count))
    proc.start()
    sock, _ = ls.accept()
    conn = Connection(sock, max_payload_bytes=1 << 27)
    server_handshake(conn, ServerSession({"device": BENCH_SECRET}, "bench", 1 << 27))
    start = time.perf_counter()
    for _ in range(count):
        msg = conn.receive()           # frame CRC verified while receiving; header parsed and checked
        arr = msg.array()
        assert arr.shape == shape
    elapsed = time.perf_counter() - start
    conn.close()
    ls.close()
    proc.join()
    return count * nbytes / elapsed


# ------------------------------------------------------------------------------ latency
class BenchCamera(CameraDriver):
    """Instant frames of random 10-bit pixels (no capabilities; keeps the driver contract)."""

    capabilities = frozenset()

    def __init__(self, config, band: str, shape=(486, 648)) -> None:
        self.band = band
        self.shape = shape
        self.shutter_us = 1000
        self.is_open = False
        self._rng = np.random.default_rng(1)

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    @property
    def limits(self) -> CameraLimits:
        return CameraLimits(1, 6_000_000, 1.0, 16.0, self.shape)

    def set_exposure(self, shutter_us: int) -> int:
        self.shutter_us = int(shutter_us)
        return self.shutter_us

    def set_gain(self, gain: float) -> float:
        return 1.0

    def capture(self, when: dt.datetime) -> CameraFrame:
        if not self.is_open:
            raise DriverError(f"bench camera {self.band}: not open")
        pixels = self._rng.integers(0, 1024, self.shape, dtype=np.uint16)
        return CameraFrame(pixels=pixels, time=when, exposure_us=self.shutter_us, gain=1.0, band=self.band)


def capture_to_disk_latency(shape, frames: int, rate_hz: float) -> dict:
    from pycam.config import load_config
    from pycam.station.camera_service import CameraService
    from pycam.station.launcher import write_station_config
    from pycam.station.master import Master

    tmp = Path(tempfile.mkdtemp(prefix="pycam-bench-"))
    config = load_config(write_station_config(tmp / "station.toml", data_dir=tmp / "data", spool_dir=tmp / "spool"))
    captured: dict[str, float] = {}
    stored: dict[str, float] = {}
    done = threading.Event()

    class TimedCamera(CameraService):
        def capture(self, when, frame_type):
            t0 = time.perf_counter()
            name = super().capture(when, frame_type)
            captured[name] = t0
            return name

    def on_stored(path: Path, device: str) -> None:
        stored[path.name] = time.perf_counter()
        if len(stored) >= frames:
            done.set()

    master = Master(config)             # fsync on: the file is durable when counted
    master.file_stored_callbacks.append(on_stored)
    master.start()
    camera = TimedCamera(config, "on", BenchCamera(config, "on", shape))
    camera.start()
    camera.link.connected.wait(10)
    start = time.perf_counter()
    for i in range(frames):
        camera.handle_command(m.Command(request_id=i, device="CM1", key="TPA", value="Test"))
        next_at = start + (i + 1) / rate_hz
        time.sleep(max(0.0, next_at - time.perf_counter()))
    done.wait(120)
    camera.stop(drain_timeout=10)
    master.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    lat = sorted((stored[n] - captured[n]) * 1000 for n in stored if n in captured)
    return {"frames": len(lat), "rate_hz": rate_hz, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
            "max_ms": lat[-1] if lat else None}


def checksum_name() -> str:
    from pycam.protocol.frames import HAVE_CRC32C

    mac = "GMAC+HMAC-SHA256" if HAVE_GMAC else "HMAC-SHA256 (cryptography not installed)"
    return (f"authenticated session: a {mac} MAC on every frame instead of the payload checksum "
            f"({'CRC-32C' if HAVE_CRC32C else 'zlib CRC-32'} on unauthenticated frames)")


def _pct(values, p):
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and trials (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transfer.json",
                        help="JSON result file (default benchmarks/results/transfer.json)")
    args = parser.parse_args(argv)
    trials = 1 if args.quick else 11
    counts = {"648x486": 60 if args.quick else 1000, "2592x1944": 6 if args.quick else 60}
    results: dict = {"machine": platform.platform(), "python": platform.python_version(),
                     "cpus": mp.cpu_count(), "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                     "load_average_start": os.getloadavg(), "payload_checksum": checksum_name(),
                     "raw_baseline": ("plain TCP socket on 127.0.0.1, sender sendall() of the same bytes, receiver "
                                      "recv_into() one preallocated buffer; both ends with the protocol connection's "
                                      f"socket options (TCP_NODELAY, SO_KEEPALIVE, SO_SNDBUF/SO_RCVBUF "
                                      f"{SOCKET_BUFFER_BYTES // (1024 * 1024)} MiB, which turns off the kernel's buffer "
                                      "autotuning); *_default_options: the same raw runs with the kernel's default "
                                      "socket options (autotuned buffers), interleaved, for comparison"),
                     "throughput": {}, "latency": {}}
    for label, shape in SIZES.items():
        raw, raw_default, proto, ratios, ratios_default = [], [], [], [], []
        previous_raw = raw_throughput(shape, counts[label])
        previous_default = raw_throughput(shape, counts[label], same_options=False)
        for _ in range(trials):   # each protocol run sits between two raw runs of each kind: load drift cancels
            p = protocol_throughput(shape, counts[label])
            r = raw_throughput(shape, counts[label])
            rd = raw_throughput(shape, counts[label], same_options=False)
            ratios.append(p / ((previous_raw + r) / 2))
            ratios_default.append(p / ((previous_default + rd) / 2))
            raw.append(r)
            raw_default.append(rd)
            proto.append(p)
            previous_raw, previous_default = r, rd
        r, p = statistics.median(raw), statistics.median(proto)
        results["throughput"][label] = {
            "frames_per_trial": counts[label], "trials": trials, "frame_bytes": shape[0] * shape[1] * 2,
            "raw_MB_s": round(r / 1e6, 1), "protocol_MB_s": round(p / 1e6, 1),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_per_trial": [round(x, 3) for x in ratios],
            "protocol_frames_per_s": round(p / (shape[0] * shape[1] * 2), 1),
            "raw_trials_MB_s": [round(x / 1e6, 1) for x in raw],
            "protocol_trials_MB_s": [round(x / 1e6, 1) for x in proto],
            "raw_default_options_MB_s": round(statistics.median(raw_default) / 1e6, 1),
            "raw_default_options_trials_MB_s": [round(x / 1e6, 1) for x in raw_default],
            "ratio_vs_raw_default_options": round(statistics.median(ratios_default), 3)}
    lat_frames = 40 if args.quick else 200
    results["latency"]["648x486"] = capture_to_disk_latency((486, 648), lat_frames, 10.0)
    results["latency"]["2592x1944"] = capture_to_disk_latency((1944, 2592), 10 if args.quick else 30, 1.0)
    results["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    small, big = results["throughput"]["648x486"], results["throughput"]["2592x1944"]
    lat = results["latency"]["648x486"]
    print(f"transfer: 648x486 {small['protocol_MB_s']} MB/s = {small['ratio']:.0%} of raw {small['raw_MB_s']} MB/s "
          f"({small['ratio_vs_raw_default_options']:.0%} of default-options raw {small['raw_default_options_MB_s']}); "
          f"2592x1944 {big['protocol_MB_s']} MB/s = {big['ratio']:.0%} of raw {big['raw_MB_s']} MB/s "
          f"({big['ratio_vs_raw_default_options']:.0%} of default-options raw {big['raw_default_options_MB_s']}); "
          f"capture-to-disk 648x486 p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms "
          f"({lat['frames']} frames, fsync on); ratio = median over trials of protocol / mean of the raw runs "
          f"around it; {results['payload_checksum']}; "
          f"raw with the protocol's socket options; "
          f"load {results['load_average_start'][0]:.2f}->{results['load_average_end'][0]:.2f} (1-min, 2 cores "
          f"shared); JSON in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
