"""Real-time processing of one image pair at a time (for the GUI and the demo).

Contract (stable; other parts of PyCam code against it)::

    from pycam.processing.realtime import RealtimeProcessor
    proc = RealtimeProcessor(settings, darks=None, clear=None, calibration=None,
                             pcs_lines=(), geometry=None)
    result = proc.process_pair(img_a, img_b, meta)   # -> PairResult
    proc.set_pcs_lines([PCSLine(...), ...])          # replace lines at run time (GUI mouse)
    proc.set_calibration(cal)                        # e.g. a refitted DoasCalibration

Arguments
    ``settings``     :class:`~pycam.processing.settings.ProcessingSettings`, a mapping of
                     settings keys, or None for the defaults.
    ``darks``        :class:`~pycam.processing.corrections.DarkLibrary`, or a mapping
                     ``{"on": array, "off": array}`` (one dark per band, any exposure) or
                     ``{("on", exposure_us): array, ...}``.
    ``clear``        :class:`~pycam.processing.absorbance.ClearSky` (dark-corrected), or the
                     raw clear-sky :class:`~pycam.formats.image_pair.ImagePair` (dark-corrected
                     here at its exposures).  Without it the
                     background is ``bg_mode`` 7 (``ln(mean(ambient_roi)/I)``).
    ``calibration``  anything with ``column_from_aa(aa, out=None, time=None)``:
                     :class:`~pycam.processing.cell_calibration.CellCalibration`,
                     :class:`~pycam.processing.doas_calibration.DoasCalibration`,
                     :class:`~pycam.processing.doas_calibration.PreloadedCalibration`.
    ``pcs_lines``    :class:`pycam.formats.geometry.PCSLine` objects (648x486 coordinates;
                     ``name`` keys the results).
    ``geometry``     :class:`~pycam.processing.plume_geometry.MeasurementGeometry`, or a
                     :class:`pycam.formats.geometry.CameraGeometry` (then the source
                     position comes from the settings), or None (then ``plume_distance_m``
                     from the settings, if set).
    ``meta``         dict with at least ``time`` (datetime, UTC), ``exposure_a_us`` and
                     ``exposure_b_us``.

:class:`PairResult`
    ``time``, ``aa``, ``tau_a``, ``tau_b`` (float32 images, new arrays each call),
    ``so2`` (molec cm^-2, or None without calibration), ``flow``
    (:class:`~pycam.processing.flow.FlowField` from the previous pair to this one, on the
    PCS bounding box; None for the first pair), ``emission_rates``: ``{line name ->
    EmissionRate, ..., "total" -> EmissionRate}`` for ``settings.primary_mode`` (default
    ``flow_hybrid``), ``total`` (the same total), ``rates_by_mode``: ``{mode -> {...}}``
    for every enabled mode, ``reference_ok`` (PyCam's ambient-ROI check), ``warnings``.
    :class:`~pycam.processing.emission.EmissionRate` has ``flux_kg_s, flux_err, velo_eff,
    velo_eff_err, frac_ok, ica_mass, frac_ok_ica, flag, flag_reason``; missing values are
    NaN/None; ``flag`` != 0 marks a flagged sample (:mod:`pycam.processing.quality`).

Registration: with ``warp`` None and ``reg_mode`` ``file`` the saved matrix is loaded; with
``ecc`` B is registered onto A from the first pair (or the clear-sky frames) by
:func:`live_registration`, which keeps the ECC warp only when it makes A and B clearly more alike
(normalised correlation up by :data:`MIN_REGISTRATION_GAIN`): on a featureless sky ECC returns a
chance warp of a few px (on the clean simulator 3 px and 0.3 deg for a correlation change of
-0.0007) which would only add artefacts; on the realistic scene (B shifted by (-24, 17) px and
rotated 0.6 deg) it recovers the shift and raises the correlation from 0.82 to 0.96.

Without darks or calibration the processor still runs (AA only, no emission rates) and
says so loudly once (a logged warning and an entry in ``PairResult.warnings``).

A processor is not thread-safe: call it from one thread (e.g. the GUI's worker), and
replace lines or the calibration from that same thread between pairs.  Typical cost per
648x486 pair: ~5 ms plus ~15 ms of flow on the plume box (see benchmarks/pipeline.py).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any, Iterable, Mapping

import numpy as np

from pycam.formats.geometry import PCSLine
from pycam.processing.absorbance import ClearSky
from pycam.processing.chain import ProcessingChain
from pycam.processing.corrections import DarkLibrary, estimate_registration, load_warp, subtract_dark, warp_onto
from pycam.processing.emission import EmissionRate
from pycam.processing.flow import FlowField
from pycam.processing.settings import ProcessingSettings, default_settings, settings_from_mapping

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PairResult:
    time: dt.datetime
    aa: np.ndarray
    tau_a: np.ndarray | None
    tau_b: np.ndarray | None
    so2: np.ndarray | None
    flow: FlowField | None
    emission_rates: dict[str, EmissionRate]
    total: EmissionRate | None
    rates_by_mode: dict[str, dict[str, EmissionRate]]
    reference_ok: bool = True
    warnings: list[str] = dataclasses.field(default_factory=list)


def coerce_settings(settings) -> ProcessingSettings:
    if settings is None:
        return default_settings()
    if isinstance(settings, ProcessingSettings):
        return settings
    if isinstance(settings, Mapping):
        return settings_from_mapping(settings)
    raise TypeError(f"settings must be ProcessingSettings, a mapping or None, got {type(settings).__name__}")


def coerce_darks(darks, sig_figs: int = 2) -> DarkLibrary | None:
    if darks is None or isinstance(darks, DarkLibrary):
        return darks
    if isinstance(darks, Mapping):
        return DarkLibrary.from_arrays(dict(darks), sig_figs)
    raise TypeError(f"darks must be a DarkLibrary or a mapping, got {type(darks).__name__}")


#: an ECC warp is kept when it raises the A/B normalised correlation by at least this much
MIN_REGISTRATION_GAIN = 0.02
_REGISTRATION_MARGIN_PX = 30


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    m = _REGISTRATION_MARGIN_PX
    x = np.asarray(a, np.float64)[m:-m, m:-m].ravel()
    y = np.asarray(b, np.float64)[m:-m, m:-m].ravel()
    x = x - x.mean()
    y = y - y.mean()
    denom = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y) / denom if denom > 0 else 0.0


def live_registration(img_a: np.ndarray, img_b: np.ndarray) -> tuple[np.ndarray | None, str]:
    """(warp or None, what was decided) for registering B onto A from one (dark-corrected) pair."""
    a = np.asarray(img_a, np.float32)
    b = np.asarray(img_b, np.float32)
    try:
        warp = estimate_registration(a, b, iterations=100, eps=1e-6)
    except ValueError as exc:
        return None, f"registration: {exc}; B is not registered"
    before, after = _ncc(a, b), _ncc(a, warp_onto(b, warp))
    shift = f"shift ({warp[0, 2]:.1f}, {warp[1, 2]:.1f}) px, rotation {np.degrees(np.arctan2(warp[1, 0], warp[0, 0])):.2f} deg"
    if after - before < MIN_REGISTRATION_GAIN:
        return None, (f"registration: ECC ({shift}) does not make A and B more alike (correlation {before:.3f} -> "
                      f"{after:.3f}); B is not registered")
    return warp, f"registration: ECC {shift}, A/B correlation {before:.3f} -> {after:.3f}"


def _time_of(meta: Mapping[str, Any]) -> dt.datetime:
    try:
        t = meta["time"]
    except KeyError:
        raise ValueError("meta needs 'time' (a datetime in UTC)") from None
    if not isinstance(t, dt.datetime):
        raise ValueError(f"meta['time'] must be a datetime, got {type(t).__name__}")
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t


class RealtimeProcessor:
    """Process pairs as they come (see the module docstring for the contract)."""

    def __init__(self, settings=None, *, darks=None, clear=None, calibration=None,
                 pcs_lines: Iterable[PCSLine] = (), geometry=None, warp: np.ndarray | None = None) -> None:
        self.settings = coerce_settings(settings)
        self.darks = coerce_darks(darks, self.settings["dark_sig_figs"])
        self.clear = ClearSky.coerce(clear, self.darks)
        self.calibration = calibration
        self.geometry = geometry
        self.warp = warp
        self._register = warp is None and self.settings["reg_mode"] in ("ecc", "file")
        self.registration_note = ""
        self._pcs_lines = list(pcs_lines)
        self._chain: ProcessingChain | None = None
        self._prev: tuple[dt.datetime, np.ndarray] | None = None
        self._warned: set[str] = set()

    # --- run-time changes ----------------------------------------------------------------
    def set_pcs_lines(self, lines: Iterable[PCSLine]) -> None:
        """Replace the PCS lines; takes effect with the next pair (raises ValueError for a bad line)."""
        lines = list(lines)
        if self._chain is not None:
            self._chain.set_pcs_lines(lines)
        self._pcs_lines = lines

    @property
    def pcs_lines(self) -> list[PCSLine]:
        return list(self._pcs_lines)

    def set_calibration(self, calibration) -> None:
        self.calibration = calibration
        if self._chain is not None:
            self._chain.calibration = calibration

    def reset(self) -> None:
        """Forget the previous pair (the next one gets no flow)."""
        self._prev = None

    def _warn_once(self, key: str, message: str, warnings: list[str]) -> None:
        if key not in self._warned:
            log.warning(message)
            self._warned.add(key)
            warnings.append(message)

    def _chain_for(self, shape: tuple[int, int]) -> ProcessingChain:
        if self._chain is None or self._chain.shape != tuple(shape):
            self._chain = ProcessingChain(self.settings, shape, darks=self.darks, clear=self.clear,
                                          calibration=self.calibration, pcs_lines=self._pcs_lines,
                                          geometry=self.geometry, warp=self.warp)
            self._prev = None
        return self._chain

    def _register_from(self, img_a, img_b, meta, warnings: list[str]) -> None:
        """Set :attr:`warp` once (see the module docstring); the chain is rebuilt with it."""
        self._register = False
        if self.settings["reg_mode"] == "file":
            self.warp = load_warp(self.settings["image_reg_path"])
            self.registration_note = f"registration: {self.settings['image_reg_path']}"
        else:
            if self.clear is not None:
                a, b = self.clear.on, self.clear.off
            else:
                darks = self.darks
                a = subtract_dark(img_a, darks.get("on", int(meta.get("exposure_a_us", 0))) if darks else None)
                b = subtract_dark(img_b, darks.get("off", int(meta.get("exposure_b_us", 0))) if darks else None)
            self.warp, self.registration_note = live_registration(a, b)
        log.info(self.registration_note)
        warnings.append(self.registration_note)
        self._chain = None

    # --- processing ----------------------------------------------------------------------
    def process_pair(self, img_a: np.ndarray, img_b: np.ndarray, meta: Mapping[str, Any]) -> PairResult:
        time = _time_of(meta)
        img_a = np.asarray(img_a)
        img_b = np.asarray(img_b)
        if img_a.ndim != 2 or img_a.shape != img_b.shape:
            raise ValueError(f"need two 2-D images of the same shape, got {img_a.shape} and {img_b.shape}")
        warnings: list[str] = []
        if self._register:
            self._register_from(img_a, img_b, meta, warnings)
        chain = self._chain_for(img_a.shape)
        if self.darks is None or len(self.darks) == 0:
            self._warn_once("darks", "NO DARK FRAMES: images are not dark-corrected; AA is biased", warnings)
        if self.calibration is None:
            self._warn_once("cal", "NO CALIBRATION: only AA images are produced, no SO2 columns or "
                                   "emission rates", warnings)
        if chain.calibration is not None and chain.geometry is None:
            self._warn_once("geom", "NO GEOMETRY: set plume_distance_m or give a camera geometry; "
                                    "no emission rates", warnings)
        absorb = chain.absorbance.compute(img_a, img_b, int(meta.get("exposure_a_us", 0)),
                                          int(meta.get("exposure_b_us", 0)), want_tau=True)
        aa = absorb.aa
        so2 = chain.calibrate(aa, time)
        ref_ok = chain.reference_ok(so2)
        flow = None
        if self._prev is not None and chain.lines:
            dt_s = (time - self._prev[0]).total_seconds()
            if dt_s > 0:
                flow = chain.flow(self._prev[1], aa, dt_s, so2)
        self._prev = (time, aa)
        rates_by_mode: dict[str, dict[str, EmissionRate]] = {}
        if so2 is not None and chain.lines and ref_ok:
            velo_glob = chain.update_cross_correlation(time, so2) if chain.crosscorr is not None else None
            rates_by_mode = chain.emission_rates(so2, flow, velo_glob, base=chain.pair_flags(so2, time))
        primary = rates_by_mode.get(self.settings["primary_mode"], {})
        if not ref_ok:
            warnings.append("reference check failed: ambient-ROI column out of bounds; no emission rates")
        return PairResult(time, aa, absorb.tau_a, absorb.tau_b, so2, flow, primary, primary.get("total"),
                          rates_by_mode, ref_ok, warnings)
