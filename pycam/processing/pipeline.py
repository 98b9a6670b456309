"""Batch processing: a stream of image pairs -> emission-rate files, two cores, bounded memory.

The main thread reads a pair, computes AA and SO2 into a small ring of preallocated
float32 buffers and the cross-correlation ICAs; the optical flow and the per-line
emission rates run in a thread pool (``workers``, default 2: OpenCV releases the GIL).
At most ``2 * workers`` pairs are in flight, so memory does not grow with the run: rows
are written as soon as a pair is done, statistics are running sums, and the
cross-correlation window holds a few scalars per pair for at most ``cross_corr_recal``
minutes (or ``img_buff_size`` pairs).

``flow_glob`` rows: each window of ``cross_corr_recal`` minutes gets the velocity from the
ICA series of that window (the previous window's velocity if it is too short), so rows of
that mode are written when a window closes.  An interrupted run (Ctrl-C) finishes the
pairs in flight, closes the current window and leaves complete files.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import datetime as dt
import logging
import math
import time as _time
from typing import Callable, Iterable

import numpy as np

from pycam.formats.image_pair import ImagePair
from pycam.processing.chain import ProcessingChain
from pycam.processing.crosscorr import CrossCorrelation, space_time_velocity
from pycam.processing.emission import KG_PER_COLUMN_AREA, EmissionRate, glob_flags, glob_velocity, total_rate
from pycam.processing.quality import Flag, invalidates
from pycam.processing.outputs import RunOutputs

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunSummary:
    pairs_read: int = 0
    pairs_processed: int = 0
    pairs_skipped_reference: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["pairs_per_second"] = self.pairs_processed / self.seconds if self.seconds > 0 else None
        return d


@dataclasses.dataclass
class _GlobSample:
    time: dt.datetime
    per_line: dict  # name -> (ica_profile, sum_s_dx, sum_dx, sum_s, n, cds_err, dists_err)
    flag: int = 0   # the pair's own flags (background, calibration)


class GlobWindow:
    """Cross-correlation window for the ``flow_glob`` mode (an ICA profile and a few scalars
    per pair).  Pairs whose own flags invalidate them (failed background, no calibration) get
    a row but do not enter the correlation."""

    def __init__(self, chain: ProcessingChain, minutes: float, max_pairs: int, min_pairs: int) -> None:
        self.chain = chain
        self.span = dt.timedelta(minutes=minutes)
        self.max_pairs = max_pairs
        self.min_pairs = min_pairs
        self.samples: list[_GlobSample] = []
        self.last_result: dict[str, CrossCorrelation] = {}
        self.velocities: list[tuple[dt.datetime, str, float, float]] = []

    def add(self, time: dt.datetime, so2: np.ndarray, flag: int = 0) -> list[tuple[dt.datetime, dict]]:
        """Record a pair; returns rows ``(time, {line: EmissionRate})`` of a window that closed."""
        out = []
        if self.samples and (time - self.samples[0].time >= self.span or len(self.samples) >= self.max_pairs):
            out = self.close()
        chain = self.chain
        min_cd = chain.settings["min_cd"]
        cd_err_cal = chain.column_error()
        icas = chain.cross_correlation_icas(so2)
        per_line = {}
        for le in chain.lines:
            if le.name not in icas:
                continue
            cds = le.sampler.sample(so2)
            cond = cds >= min_cd
            c, d = cds[cond], le.dists[cond]
            cds_err = cd_err_cal if cd_err_cal is not None else (
                chain.settings["cd_err_rel"] * float(c.mean()) if c.size else 0.0)
            dists_err = chain.settings["dist_err_rel"] * float(d.mean()) if d.size else 0.0
            per_line[le.name] = (icas[le.name], float(np.sum(c * d)), float(np.sum(d)), float(np.sum(c)),
                                 int(c.size), cds_err, dists_err)
        self.samples.append(_GlobSample(time, per_line, int(flag)))
        return out

    def close(self) -> list[tuple[dt.datetime, dict]]:
        if not self.samples:
            return []
        names = list(self.samples[0].per_line)
        for name in names:
            series = [(s.time, s.per_line[name][0]) for s in self.samples
                      if name in s.per_line and not invalidates(s.flag)]
            if len(series) >= self.min_pairs:
                ts, prof = zip(*series)
                res = space_time_velocity(list(ts), np.vstack(prof), self.chain.crosscorr.footprint_m[name])
                if res is not None:
                    self.last_result[name] = res
                    self.velocities.append((ts[-1], name, res.velocity, res.r_max))
        min_r = self.chain.settings["flag_xcorr_min_r"]
        rows = []
        for s in self.samples:
            rates = {}
            for name, (_, s_dx, sum_dx, sum_s, n, cds_err, dists_err) in s.per_line.items():
                ica = s_dx * KG_PER_COLUMN_AREA
                res = self.last_result.get(name)
                flag = s.flag | glob_flags(res, min_r)
                vel = glob_velocity(res)
                if vel is None:
                    rates[name] = EmissionRate.missing(ica, flag)
                    continue
                v, verr = vel
                if n == 0:
                    rates[name] = EmissionRate(0.0, 0.0, v, verr, None, 0.0, None).flagged(flag)
                    continue
                phi = s_dx * v * KG_PER_COLUMN_AREA
                err = KG_PER_COLUMN_AREA * math.sqrt((v * cds_err * sum_dx) ** 2 + (verr * s_dx) ** 2
                                                     + (v * dists_err * sum_s) ** 2)
                rates[name] = EmissionRate(phi, err, v, verr, None, ica, None).flagged(flag)
            if rates:
                rates["total"] = total_rate(list(rates.values()))
            rows.append((s.time, rates))
        self.samples = []
        return rows


class BatchProcessor:
    """Run the chain over many pairs, writing outputs as it goes (see the module docstring)."""

    def __init__(self, chain: ProcessingChain, outputs: RunOutputs, *, workers: int = 2,
                 progress: Callable[[int], None] | None = None) -> None:
        self.chain = chain
        self.outputs = outputs
        self.workers = max(1, int(workers))
        self.in_flight_max = 2 * self.workers
        ring = self.in_flight_max + 2
        shape = chain.shape
        self._aa_ring = [np.empty(shape, np.float32) for _ in range(ring)]
        self._so2_ring = [np.empty(shape, np.float32) for _ in range(ring)]
        self.progress = progress
        self.summary = RunSummary()
        modes = chain.modes
        self.flow_modes = tuple(m for m in modes if m != "flow_glob")
        self.glob = (GlobWindow(chain, chain.settings["cross_corr_recal"], chain.settings["img_buff_size"],
                                chain.settings["cross_corr_min_pairs"])
                     if "flow_glob" in modes and chain.crosscorr is not None else None)

    def _job(self, time, aa_prev, aa, so2, dt_s, base):
        flow = self.chain.flow(aa_prev, aa, dt_s, so2) if (aa_prev is not None and dt_s > 0) else None
        return time, self.chain.emission_rates(so2, flow, None, modes=self.flow_modes, base=base)

    def _write_glob(self, rows) -> None:
        for time, rates in rows:
            for line, rate in rates.items():
                self.outputs.write_rate(time, line, "flow_glob", rate)

    def run(self, pairs: Iterable[ImagePair | None]) -> RunSummary:
        """Process ``pairs`` in order; a ``None`` item means "no new pair for now" (watch mode):
        the pairs in flight are finished and their rows written before waiting for more."""
        chain = self.chain
        s = self.summary
        t_start = _time.perf_counter()
        pending: collections.deque = collections.deque()
        prev: tuple[dt.datetime, np.ndarray] | None = None
        can_rate = chain.calibration is not None and bool(chain.lines)
        ring = len(self._aa_ring)
        slot = 0
        executor = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pycam-flow")

        def drain(limit: int) -> None:
            while len(pending) > limit:
                fut = pending.popleft()
                time, rates = fut.result()
                self.outputs.write_rates(time, rates)
                s.pairs_processed += 1
                if self.progress:
                    self.progress(1)

        def drain_done() -> None:
            while pending and pending[0].done():
                drain(len(pending) - 1)

        try:
            for pair in pairs:
                if pair is None:          # the source is idle (watch mode): finish what is in flight
                    drain(0)
                    continue
                s.pairs_read += 1
                if s.first_time is None:
                    s.first_time = pair.time
                s.last_time = pair.time
                drain(self.in_flight_max - 1)
                aa_buf, so2_buf = self._aa_ring[slot], self._so2_ring[slot]
                try:
                    res = chain.absorbance.compute(pair.img_a, pair.img_b, pair.exposure_a_us, pair.exposure_b_us,
                                                   out=aa_buf)
                except ValueError as exc:
                    s.problems.append(f"{pair.time.isoformat()}: {exc}")
                    log.warning("skipping pair %s: %s", pair.time.isoformat(), exc)
                    continue
                slot = (slot + 1) % ring
                aa = res.aa
                so2 = chain.calibrate(aa, pair.time, out=so2_buf)
                if self.outputs.save_images:
                    self.outputs.save_image(pair.time, "aa", aa)
                    if so2 is not None:
                        self.outputs.save_image(pair.time, "cal", so2)
                if not can_rate:
                    prev = (pair.time, aa)
                    s.pairs_processed += 1
                    if self.progress:
                        self.progress(1)
                    continue
                base = chain.pair_flags(so2, pair.time)
                if self.glob is not None:
                    self._write_glob(self.glob.add(pair.time, so2, int(base.flag)))
                if base.flag & Flag.BG_OUT_OF_BOUNDS:     # PyCam skips the image: flagged rows, no flow
                    s.pairs_skipped_reference += 1
                    drain(0)                              # keep the rows in time order
                    self.outputs.write_rates(pair.time, chain.flagged_rates(so2, base, self.flow_modes))
                    prev = (pair.time, aa)
                    if self.progress:
                        self.progress(1)
                    continue
                dt_s = (pair.time - prev[0]).total_seconds() if prev is not None else 0.0
                aa_prev = prev[1] if prev is not None else None
                pending.append(executor.submit(self._job, pair.time, aa_prev, aa, so2, dt_s, base))
                prev = (pair.time, aa)
                drain_done()
        except KeyboardInterrupt:
            s.interrupted = True
            log.warning("interrupted: finishing the pairs in flight and closing the outputs")
        finally:
            try:
                drain(0)
            finally:
                executor.shutdown(wait=True)
                if self.glob is not None:
                    self._write_glob(self.glob.close())
                s.seconds = _time.perf_counter() - t_start
        return s

