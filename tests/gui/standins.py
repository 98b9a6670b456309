"""Stand-ins for the station client and the processing chain, for GUI unit tests.

They speak the real protocol message types (pycam.protocol.messages) and build their
events from the station's own declarations (pycam.protocol.events), so the GUI code under
test is exactly the code that runs against the real station.
"""
from __future__ import annotations

import datetime as dt
import itertools
import threading
import time

import numpy as np

from pycam.formats.names import format_time
from pycam.protocol import events
from pycam.protocol.commands import parse_value, route
from pycam.protocol.errors import CommandValueError
from pycam.protocol.messages import Data, DataMeta, Error, Reply


def image_message(band: str, when: dt.datetime, frame_type: str = "Plume", shift: float = 0.0,
                  exposure_us: int = 100000) -> Data:
    h, w = 486, 648
    yy, xx = np.mgrid[:h, :w]
    sky = 500 + 300 * (1 - yy / h)
    plume = np.exp(-((yy - 240) / 40.0) ** 2) * (0.5 + 0.5 * np.sin((xx - 40 * shift) / 50.0)) ** 2
    absorb = 0.35 if band == "on" else 0.05
    if frame_type == "Dark":
        pixels = np.full((h, w), 16, dtype="<u2")
    elif frame_type.endswith("ppmm"):  # a uniform gas cell: on-band absorbs ~1.5e-4 per ppm*m
        ppmm = int(frame_type[:-4])
        cell = np.exp(-(1.5e-4 if band == "on" else 2e-5) * ppmm)
        pixels = np.clip(sky * cell, 0, 1023).astype("<u2")
    else:
        pixels = np.clip(sky * np.exp(-absorb * plume), 0, 1023).astype("<u2")
    stamp = format_time(when)
    name = f"{stamp}_{'fltrA' if band == 'on' else 'fltrB'}_1ag_{exposure_us}ss_{frame_type}.png"
    meta = DataMeta("image", name, "CM1" if band == "on" else "CM2", (h, w), "<u2",
                    when.isoformat(), frame_type, band=band, exposure_us=exposure_us)
    return Data(meta, pixels.tobytes())


def spectrum_message(when: dt.datetime, frame_type: str = "Plume") -> Data:
    wl = np.linspace(250, 405, 2048)
    counts = 20000 * np.exp(-((wl - 340) / 40) ** 2) + 500
    counts *= 1 - 0.05 * np.exp(-((wl - 312) / 1.5) ** 2)
    stamp = format_time(when)
    name = f"{stamp}_100ss_1coadd_{frame_type}.npy"
    meta = DataMeta("spectrum", name, "SPC", (2, 2048), "<f8", when.isoformat(), frame_type,
                    integration_ms=100, coadd=1)
    return Data(meta, np.vstack([wl, counts]).astype("<f8").tobytes())


class FakeStationClient:
    """Same interface as pycam.client.StationClient; answers commands itself."""

    instances: list["FakeStationClient"] = []

    def __init__(self, config, *, name, on_message, on_state, subscribe=("image", "spectrum")) -> None:
        self.on_message, self.on_state = on_message, on_state
        self.state = "down"
        self.sent: list[tuple[str, str, object]] = []
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self.acquiring = False
        self.rate_hz = 2.0
        self.thread: threading.Thread | None = None
        #: what the heartbeats say (tests change them): clock offset to the master, ms
        self.clock_offsets_ms = {"CM1": 1.5, "CM2": -2.0, "SPC": 0.8}
        self.shutter_us = {"CM1": 100000, "CM2": 100000}
        self.exposure_every = 3   # auto exposure changes camera A's shutter every N frames
        self._started = time.monotonic()
        FakeStationClient.instances.append(self)

    def start(self) -> None:
        self._set_state("connecting")
        self._set_state("connected")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._set_state("down")

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_state(state)

    def send_command(self, device, key, value) -> int:
        rid = next(self._ids)
        self.sent.append((device, key, value))
        threading.Timer(0.01, self._answer, (rid, device, key, value)).start()
        return rid

    def request(self, device, key, value, timeout):
        rid = self.send_command(device, key, value)
        return Reply(rid, device, key, value)

    def _answer(self, rid, device, key, value) -> None:
        try:
            value = parse_value(key, value)
            targets = route(key, device, ("CM1", "CM2", "SPC"))
        except CommandValueError as exc:
            self.on_message(Error(exc.key, exc.reason, rid, device))
            return
        for target in targets:
            if key == "LOG":
                self.on_message(Reply(rid, target, key, {"SSA": 1000, "FRC": 1.0}))
            else:
                self.on_message(Reply(rid, target, key, value))
        if key in ("STC", "SPC"):
            self.acquiring = key == "STC"
            for target in targets:
                self.on_message(events.Acquisition(acquiring=self.acquiring).as_event(target))
        if key in ("TPA", "TPB"):
            when = dt.datetime.now(dt.timezone.utc)
            self.on_message(image_message("on" if key == "TPA" else "off", when, value))
        if key == "TPS":
            self.on_message(spectrum_message(dt.datetime.now(dt.timezone.utc), value))
        if key == "DKC":
            for i in range(1, 4):
                self.on_message(events.Progress(task="dark", done=i, total=3).as_event(target))
            self.on_message(events.DarkFinishedCameras(files=3).as_event(target))

    def _run(self) -> None:
        start = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
        for n in itertools.count():
            if self._stop.wait(1.0 / self.rate_hz):
                return
            if n % max(1, int(self.rate_hz)) == 0:
                self._heartbeats()
            if not self.acquiring:
                continue
            when = start + dt.timedelta(seconds=n)
            if self.exposure_every and n % self.exposure_every == 0:
                self.shutter_us["CM1"] = 60000 + (n * 7919) % 80000
                self.on_message(events.Exposure(key="SSA", value=self.shutter_us["CM1"], saturation=0.93,
                                                action="down").as_event("CM1"))
            self.on_message(image_message("on", when, shift=n, exposure_us=self.shutter_us["CM1"]))
            self.on_message(image_message("off", when, shift=n, exposure_us=self.shutter_us["CM2"]))
            self.on_message(spectrum_message(when))

    def _heartbeats(self) -> None:
        for device, offset in self.clock_offsets_ms.items():
            self.on_message(events.Health(
                uptime_s=round(time.monotonic() - self._started, 1), spool_backlog=0, disk_free_mb=21_500.0,
                last_frame_age_s=0.4 if self.acquiring else None, cpu_temp_c=48.0, clock_offset_ms=offset,
                clock_rtt_ms=1.2, acquiring=self.acquiring, framerate=1.0).as_event(device))


class FakeEmissionRate:
    def __init__(self, flux, err, velo):
        self.flux_kg_s, self.flux_err, self.velo_eff = flux, err, velo


class FakePairResult:
    def __init__(self, aa, rates):
        self.aa, self.tau_a, self.so2, self.emission_rates = aa, aa, aa * 1e18, rates


class FakeProcessor:
    """AA = ln(B/A) and a flux proportional to the AA summed along each line."""

    def __init__(self, **_kwargs) -> None:
        self.lines = ()

    def set_pcs_lines(self, lines) -> None:
        self.lines = tuple(lines)

    def process_pair(self, img_a, img_b, meta):
        a = np.maximum(img_a.astype(np.float32), 1)
        b = np.maximum(img_b.astype(np.float32), 1)
        aa = np.log(b / a)
        rates = {}
        for line in self.lines:
            n = 50
            xs = np.linspace(line.x0, line.x1, n).astype(int)
            ys = np.linspace(line.y0, line.y1, n).astype(int)
            rates[line.name] = FakeEmissionRate(float(aa[ys, xs].sum()), 0.2 * abs(float(aa[ys, xs].sum())), 8.0)
        time.sleep(0.02)
        return FakePairResult(aa, rates)
