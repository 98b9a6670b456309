"""Measured spectra: reading, checking and preprocessing (dark, stray light, bad pixels).

Two file formats are read:

* PyCam ``.npy``: a float64 array of shape (2, N), row 0 wavelength in nm, row 1 counts (the
  mean of ``coadd`` reads).  Integration time, co-adds, time and type come from the PyCam
  file name ``<time>_<int_ms>ss_<coadd>coadd_<type>.npy`` when it follows the convention.
* iFit-style text: header lines starting with ``#`` (``Integration time (ms): 100``,
  ``Number of coadds: 10``, ``Date/Time (end of read): ...``) then two columns.

Every problem with a spectrum raises :class:`SpectrumError` naming the file and the problem
(NaN, negative or saturated counts, wrong length, non-monotonic wavelengths, ...).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pycam.formats.atomic import is_temporary_name
from pycam.formats.images import SpectrumFileError, read_spectrum_npy
from pycam.formats.names import FileNameError, SpectrumName, read_time
from pycam.reference_spectra import parse_table_fast

#: Full-scale count of the 16-bit Flame-S.
FLAME_MAX_COUNTS = 65535.0
#: Detector pixels that are not light measurements on a Flame-S (pixel 0 is a status pixel;
#: pixel 1 reads ~2.6e4-3e4 counts even in the dark on both sample instruments).
DEFAULT_BAD_PIXELS: tuple[int, ...] = (0, 1)
SPECTRUM_SUFFIXES = (".npy", ".txt", ".dat", ".csv")


class SpectrumError(ValueError):
    """A spectrum cannot be used: the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class MeasuredSpectrum:
    """One spectrum as read from a file (raw counts, nothing subtracted)."""

    wavelengths: np.ndarray          # nm, (N,), strictly increasing
    counts: np.ndarray               # (N,)
    source: str = "<memory>"         # file name, for messages
    time: dt.datetime | None = None  # UTC when known
    integration_ms: float | None = None
    coadd: int | None = None
    frame_type: str | None = None    # Plume, Dark, Clear, Test, <N>ppmm (PyCam names only)

    @property
    def pixels(self) -> int:
        return int(self.wavelengths.size)

    def with_counts(self, counts: np.ndarray) -> "MeasuredSpectrum":
        return dataclasses.replace(self, counts=np.asarray(counts, dtype=np.float64))


_HEADER_PATTERNS = {
    "integration_ms": re.compile(r"integration\s*time\s*\(ms\)\s*:\s*([0-9.eE+-]+)", re.I),
    "coadd": re.compile(r"(?:number\s*of\s*)?co-?adds\s*:\s*([0-9]+)", re.I),
    "time": re.compile(r"date\s*/?\s*time[^:]*:\s*(.+)$", re.I),
}


def _parse_header_time(text: str) -> dt.datetime | None:
    return read_time(text.strip())


def _header_meta(lines: list[str]) -> dict | None:
    """Metadata of ``#`` header lines; None for a line-shape file (the slow path names it)."""
    meta: dict = {}
    for number, line in enumerate(lines, 1):
        body = line.strip().lstrip("#").strip()
        if number == 1 and "line shape" in body.lower():
            return None
        for key, pattern in _HEADER_PATTERNS.items():
            m = pattern.search(body)
            if m and key not in meta:
                meta[key] = m.group(1)
    return meta


def _read_text_fast(raw: str) -> tuple[np.ndarray, dict] | None:
    """The common layout (``#`` header lines, then rows of exactly two numbers) parsed in one go;
    None for anything else, which the line-by-line reader handles (and names the problem of)."""
    pos = 0
    while raw.startswith("#", pos):
        nl = raw.find("\n", pos)
        if nl < 0:
            return None
        pos = nl + 1
    body = raw[pos:].rstrip()
    first_end = body.find("\n")
    if not body or len(body[:first_end if first_end >= 0 else len(body)].split()) != 2:
        return None
    if "#" in body or "," in body or "\n\n" in body or "\n\r\n" in body:
        return None
    table = parse_table_fast(body, 1)           # short rows, whitespace-only lines, junk: None, slow path
    if table is None:
        return None
    meta = _header_meta(raw[:pos].splitlines())
    if meta is None:
        return None
    return table.T.copy(), meta


def _read_text(path: Path) -> tuple[np.ndarray, dict]:
    try:
        raw = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise SpectrumError(f"{path}: not a text spectrum (undecodable bytes)") from None
    except OSError as exc:
        raise SpectrumError(f"{path}: cannot read: {exc.strerror}") from None
    fast = _read_text_fast(raw)
    if fast is not None:
        return fast
    meta: dict = {}
    rows: list[tuple[float, float]] = []
    for number, line in enumerate(raw.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if number == 1 and "line shape" in body.lower():
                raise SpectrumError(f"{path}: an instrument line shape file, not a spectrum")
            for key, pattern in _HEADER_PATTERNS.items():
                m = pattern.search(body)
                if m and key not in meta:
                    meta[key] = m.group(1)
            continue
        parts = stripped.replace(",", " ").split()
        if len(parts) < 2:
            raise SpectrumError(f"{path}:{number}: expected two columns (wavelength, counts), got {stripped!r}")
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise SpectrumError(f"{path}:{number}: not a number: {stripped!r}") from None
    if not rows:
        raise SpectrumError(f"{path}: no data rows (empty or header-only file)")
    return np.array(rows, dtype=np.float64).T, meta


def read_spectrum(path: str | os.PathLike[str]) -> MeasuredSpectrum:
    """Read a PyCam ``.npy`` or two-column text spectrum (raw counts; checked by :func:`check_spectrum`)."""
    p = Path(path)
    if not p.is_file():
        raise SpectrumError(f"{p}: spectrum file not found")
    time = integration = coadd = frame_type = None
    if p.suffix.lower() == ".npy":
        try:
            arr = read_spectrum_npy(p)
        except SpectrumFileError as exc:
            raise SpectrumError(str(exc)) from None
        try:
            name = SpectrumName.parse(p.name)
            time, integration, coadd, frame_type = name.time, float(name.integration_ms), name.coadd, name.frame_type
        except FileNameError:
            pass
    else:
        arr, meta = _read_text(p)
        if "integration_ms" in meta:
            try:
                integration = float(meta["integration_ms"])
            except ValueError:
                pass
        if "coadd" in meta:
            coadd = int(meta["coadd"])
        if "time" in meta:
            time = _parse_header_time(meta["time"])
        try:  # a text file may still carry a PyCam-style name stem
            name = SpectrumName.parse(p.stem + ".npy")
            time = time or name.time
            integration = integration if integration is not None else float(name.integration_ms)
            coadd = coadd if coadd is not None else name.coadd
            frame_type = name.frame_type
        except FileNameError:
            pass
    return MeasuredSpectrum(wavelengths=np.ascontiguousarray(arr[0], dtype=np.float64),
                            counts=np.ascontiguousarray(arr[1], dtype=np.float64), source=str(p), time=time,
                            integration_ms=integration, coadd=coadd, frame_type=frame_type)


def good_pixel_mask(n: int, bad_pixels: Iterable[int] = DEFAULT_BAD_PIXELS) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for i in bad_pixels:
        if -n <= int(i) < n:
            mask[int(i)] = False
    return mask


def check_spectrum(spec: MeasuredSpectrum, *, expected_pixels: int | None = None,
                   max_counts: float = FLAME_MAX_COUNTS, saturation_windows: Sequence[tuple[float, float]] = (),
                   bad_pixels: Iterable[int] = DEFAULT_BAD_PIXELS, allow_negative: bool = False) -> None:
    """Raise :class:`SpectrumError` if ``spec`` cannot be used.

    Checks (bad pixels excluded): equal-length 1-D arrays, at least 16 pixels, the expected
    number of pixels, finite values, strictly increasing wavelengths, no negative counts,
    and no counts at or above ``max_counts`` inside any of ``saturation_windows`` (nm).
    """
    wl, counts = np.asarray(spec.wavelengths), np.asarray(spec.counts)
    name = spec.source
    if wl.ndim != 1 or counts.ndim != 1 or wl.size != counts.size:
        raise SpectrumError(f"{name}: wavelength and count arrays differ in shape ({wl.shape} vs {counts.shape})")
    if wl.size < 16:
        raise SpectrumError(f"{name}: only {wl.size} pixels (a spectrum needs at least 16)")
    if expected_pixels is not None and wl.size != expected_pixels:
        raise SpectrumError(f"{name}: wrong length: {wl.size} pixels, expected {expected_pixels}")
    good = good_pixel_mask(wl.size, bad_pixels)
    if not np.all(np.isfinite(wl)):
        raise SpectrumError(f"{name}: wavelength row contains NaN or infinite values")
    bad_counts = ~np.isfinite(counts) & good
    if bad_counts.any():
        first = int(np.flatnonzero(bad_counts)[0])
        raise SpectrumError(f"{name}: {int(bad_counts.sum())} NaN/infinite count value(s) "
                            f"(first at pixel {first}, {wl[first]:.2f} nm)")
    if np.any(np.diff(wl) <= 0):
        raise SpectrumError(f"{name}: wavelengths are not strictly increasing")
    if not allow_negative:
        negative = (counts < 0) & good
        if negative.any():
            first = int(np.flatnonzero(negative)[0])
            raise SpectrumError(f"{name}: {int(negative.sum())} negative count value(s) "
                                f"(first at pixel {first}, {wl[first]:.2f} nm: {counts[first]:g})")
    for lo, hi in saturation_windows:
        inside = good & (wl >= lo) & (wl <= hi)
        saturated = inside & (counts >= max_counts)
        if saturated.any():
            raise SpectrumError(f"{name}: saturated: {int(saturated.sum())} pixel(s) at or above {max_counts:g} "
                                f"counts in {lo:g}-{hi:g} nm (reduce the integration time)")


def check_dark_matches(spec: MeasuredSpectrum, dark: MeasuredSpectrum) -> None:
    """The dark must have the same pixels, integration time and co-adds (when both are known)."""
    if dark.pixels != spec.pixels:
        raise SpectrumError(f"{spec.source}: wrong length for dark {dark.source}: "
                            f"{spec.pixels} vs {dark.pixels} pixels")
    if spec.integration_ms is not None and dark.integration_ms is not None \
            and abs(spec.integration_ms - dark.integration_ms) > 1e-6 * max(1.0, spec.integration_ms):
        raise SpectrumError(f"{spec.source}: integration time {spec.integration_ms:g} ms differs from the dark's "
                            f"({dark.integration_ms:g} ms, {dark.source})")
    if spec.coadd is not None and dark.coadd is not None and spec.coadd != dark.coadd:
        raise SpectrumError(f"{spec.source}: {spec.coadd} co-adds but the dark {dark.source} has {dark.coadd}")


def window_mask(wavelengths: np.ndarray, window: tuple[float, float], good: np.ndarray | None = None) -> np.ndarray:
    lo, hi = window
    mask = (wavelengths >= lo) & (wavelengths <= hi)
    if good is not None:
        mask &= good
    return mask


def preprocess(spec: MeasuredSpectrum, *, dark: MeasuredSpectrum | None = None,
               stray_window: tuple[float, float] | None = (293.0, 296.0),
               bad_pixels: Iterable[int] = DEFAULT_BAD_PIXELS) -> MeasuredSpectrum:
    """Dark-subtract, then subtract the mean of ``stray_window`` (stray light); bad pixels become NaN.

    The dark must match (:func:`check_dark_matches`).  A stray window with fewer than 2 good
    pixels inside the spectrum's range is an error.
    """
    counts = np.array(spec.counts, dtype=np.float64)
    if dark is not None:
        check_dark_matches(spec, dark)
        counts -= dark.counts
    good = good_pixel_mask(spec.pixels, bad_pixels)
    if stray_window is not None:
        stray = window_mask(spec.wavelengths, stray_window, good)
        if stray.sum() < 2:
            raise SpectrumError(f"{spec.source}: stray-light window {stray_window[0]:g}-{stray_window[1]:g} nm "
                                f"lies outside the spectrum ({spec.wavelengths[0]:.1f}-{spec.wavelengths[-1]:.1f} nm)")
        counts -= float(np.mean(counts[stray]))
    counts[~good] = np.nan
    return spec.with_counts(counts)


def _sort_key(path: Path) -> tuple:
    try:
        name = SpectrumName.parse(path.stem + ".npy")
        return (0, name.time.timestamp(), path.name)
    except FileNameError:
        return (1, 0.0, path.name)


def list_spectrum_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Spectrum files in ``directory`` in time order (PyCam names) then file-name order.

    Temporary/locked files (``.``-prefixed, ``.lock``) and files whose stem has a ``.lock``
    sibling are skipped.
    """
    d = Path(directory)
    if not d.is_dir():
        raise SpectrumError(f"{d}: spectrum directory not found")
    names = {p.name for p in d.iterdir()}
    files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in SPECTRUM_SUFFIXES
             and not is_temporary_name(p.name) and f"{p.stem}.lock" not in names]
    return sorted(files, key=_sort_key)


def is_dark(spec: MeasuredSpectrum) -> bool:
    if spec.frame_type is not None:
        return spec.frame_type == "Dark"
    return Path(spec.source).stem.lower().startswith("dark")


def mean_spectrum(spectra: Sequence[MeasuredSpectrum]) -> MeasuredSpectrum:
    """The mean of several spectra with identical wavelengths (e.g. a set of darks)."""
    if not spectra:
        raise SpectrumError("no spectra to average")
    first = spectra[0]
    for s in spectra[1:]:
        if s.pixels != first.pixels or not np.allclose(s.wavelengths, first.wavelengths):
            raise SpectrumError(f"{s.source}: wavelengths differ from {first.source}; cannot average")
    return first.with_counts(np.mean([s.counts for s in spectra], axis=0))
