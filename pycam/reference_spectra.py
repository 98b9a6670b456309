"""Reference spectra: the solar spectrum and absorption cross-sections (SO2, O3, Ring).

Two sources, one type (:class:`ReferenceSet`):

* :func:`load_reference_dir` reads the real files of a reference directory (SAO2010 solar
  spectrum, Vandaele 2009 SO2 on vacuum wavelengths, Voigt 2001 O3 at 223 K, iFit's Ring
  spectrum as a −ln pseudo-absorber); see ``shared/data/reference/README.md`` for the formats.
* :func:`synthetic_reference_set` builds a clearly labelled **synthetic** model so that demos
  and tests run without any data files: a solar spectrum with Fraunhofer-like lines, an SO2
  *band model* (not real SO2 data), a smooth O3 and a small Ring.  It is deterministic (fixed
  internal seed) and on a 0.01 nm grid from 250 to 450 nm.

Units: wavelengths in nm (ascending), cross-sections in cm² molec⁻¹, Ring dimensionless
(transmission = exp(−a·Ring)), solar in photons s⁻¹ cm⁻² nm⁻¹ (synthetic: same order of
magnitude).  Floor 1: numpy only, no I/O at import.
"""
from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path

import numpy as np

#: Label of the synthetic set (tests and GUIs show it so nobody mistakes it for real data).
SYNTHETIC_LABEL = "synthetic band model — not real SO2 data"

#: File names expected in a reference directory (key -> file name).
REFERENCE_FILES = {
    "solar": "sao2010.txt",
    "SO2": "SO2_298K_Vandaele2009_vac.txt",
    "O3": "O3_223K_Voigt2001_2col.txt",
    "Ring": "Ring_iFit_negln.txt",
}

#: Grid of the synthetic set, nm.
SYNTHETIC_GRID = (250.0, 450.0, 0.01)
_SYNTHETIC_SEED = 2010  # fixed: the synthetic set is the same on every machine and run


class ReferenceFileError(ValueError):
    """A reference spectrum file is missing, unreadable or malformed."""


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """A sampled spectrum: ``values`` at ascending ``wavelength`` (nm)."""

    wavelength: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        wl = np.asarray(self.wavelength, dtype=np.float64)
        va = np.asarray(self.values, dtype=np.float64)
        if wl.ndim != 1 or va.ndim != 1 or wl.shape != va.shape:
            raise ValueError(f"wavelength and values must be 1-D of equal length, got {wl.shape} and {va.shape}")
        if wl.size < 2:
            raise ValueError("a spectrum needs at least two samples")
        if not np.all(np.diff(wl) > 0):
            raise ValueError("wavelengths must be strictly ascending")
        if not (np.all(np.isfinite(wl)) and np.all(np.isfinite(va))):
            raise ValueError("wavelengths and values must be finite")
        object.__setattr__(self, "wavelength", wl)
        object.__setattr__(self, "values", va)

    def resample(self, grid: np.ndarray, fill: float | None = 0.0) -> np.ndarray:
        """Linear interpolation onto ``grid``; outside the data ``fill`` (None: edge values)."""
        grid = np.asarray(grid, dtype=np.float64)
        if fill is None:
            return np.interp(grid, self.wavelength, self.values)
        return np.interp(grid, self.wavelength, self.values, left=fill, right=fill)

    def window(self, lo: float, hi: float) -> "Spectrum":
        keep = (self.wavelength >= lo) & (self.wavelength <= hi)
        return Spectrum(self.wavelength[keep], self.values[keep])


@dataclasses.dataclass(frozen=True)
class ReferenceSet:
    """Solar spectrum and cross-sections: keys ``SO2``, ``O3`` (cm² molec⁻¹), ``Ring`` (−ln)."""

    label: str
    synthetic: bool
    solar: Spectrum
    cross_sections: dict[str, Spectrum]

    def __post_init__(self) -> None:
        missing = {"SO2", "O3", "Ring"} - set(self.cross_sections)
        if missing:
            raise ValueError(f"reference set {self.label!r} lacks {', '.join(sorted(missing))}")


# --------------------------------------------------------------------------- file loading

def _parse_floats(line: str) -> list[float] | None:
    parts = line.replace(",", " ").replace(";", " ").split()
    if not parts:
        return None
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def parse_table_fast(body: str, value_column: int) -> np.ndarray | None:
    """Whitespace-separated rows with the same number of columns, parsed in one C call
    (several times faster than ``np.loadtxt``); None when the layout is anything else."""
    rows = body.count("\n") + 1
    columns = len(body[:body.find("\n")].split()) if rows > 1 else len(body.split())
    if columns <= value_column:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # a partial parse is detected by its length below
        try:
            values = np.fromstring(body, dtype=np.float64, sep=" ")
        except ValueError:
            return None
    if values.size != rows * columns:
        return None
    return values.reshape(rows, columns)[:, [0, value_column]]


def load_text_spectrum(path: str | os.PathLike[str], skiprows: int | None = None,
                       value_column: int = 1) -> Spectrum:
    """Read a two-or-more-column text spectrum (wavelength in column 0).

    Handles ``#`` comment lines, free-text headers (``skiprows=None``: every line before the
    first all-numeric line is header), CRLF line endings, comma or whitespace separators and
    descending wavelength order (sorted ascending).  Raises :class:`ReferenceFileError`
    naming the file and the problem.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ReferenceFileError(f"{p}: cannot read reference spectrum: {exc.strerror or exc}") from None
    lines = text.splitlines()
    start = 0 if skiprows is None else int(skiprows)
    if skiprows is None:
        for start, line in enumerate(lines):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            values = _parse_floats(s)
            if values is not None and len(values) > value_column:
                break
        else:
            raise ReferenceFileError(f"{p}: no numeric data rows with at least {value_column + 1} columns")
    data = None
    tail = "\n".join(lines[start:]).rstrip()
    if "#" not in tail and "," not in tail and "\n\n" not in tail:
        data = parse_table_fast(tail, value_column)
    if data is None:
        body = "\n".join(line for line in lines[start:] if line.strip() and not line.lstrip().startswith("#"))
        delimiter = "," if "," in body.split("\n", 1)[0] else None
        try:
            data = np.loadtxt(io.StringIO(body), delimiter=delimiter, usecols=(0, value_column), ndmin=2)
        except (ValueError, IndexError) as exc:
            raise ReferenceFileError(f"{p}: malformed data after line {start}: {exc}") from None
    if data.shape[0] < 2:
        raise ReferenceFileError(f"{p}: fewer than two data rows")
    wl, values = data[:, 0], data[:, 1]
    if not (np.all(np.isfinite(wl)) and np.all(np.isfinite(values))):
        raise ReferenceFileError(f"{p}: non-finite numbers in the data")
    order = np.argsort(wl, kind="stable")
    wl, values = wl[order], values[order]
    keep = np.concatenate([[True], np.diff(wl) > 0])  # drop repeated wavelengths
    if not np.all(keep):
        wl, values = wl[keep], values[keep]
    try:
        return Spectrum(wl, values)
    except ValueError as exc:
        raise ReferenceFileError(f"{p}: {exc}") from None


def load_reference_dir(path: str | os.PathLike[str]) -> ReferenceSet:
    """Load the real reference set from a directory holding the files in :data:`REFERENCE_FILES`."""
    d = Path(path)
    if not d.is_dir():
        raise ReferenceFileError(f"{d}: reference directory not found")
    missing = [name for name in REFERENCE_FILES.values() if not (d / name).is_file()]
    if missing:
        raise ReferenceFileError(f"{d}: reference directory lacks {', '.join(missing)}")
    spectra = {key: load_text_spectrum(d / name) for key, name in REFERENCE_FILES.items()}
    solar = spectra.pop("solar")
    return ReferenceSet(label=f"reference directory {d}", synthetic=False, solar=solar,
                        cross_sections=spectra)


# --------------------------------------------------------------------------- synthetic set

def _gaussian_smooth(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    half = int(np.ceil(4 * sigma_samples))
    x = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma_samples) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def synthetic_grid() -> np.ndarray:
    lo, hi, step = SYNTHETIC_GRID
    n = int(round((hi - lo) / step)) + 1
    return lo + step * np.arange(n)


def synthetic_solar(grid: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(solar, continuum): a smooth continuum times ~1300 Gaussian absorption lines."""
    knots = np.array([[250, 3.2e13], [270, 3.5e13], [280, 5.5e13], [290, 1.05e14], [300, 1.02e14],
                      [310, 1.27e14], [320, 1.66e14], [330, 1.87e14], [340, 1.9e14], [350, 2.05e14],
                      [360, 2.35e14], [370, 2.5e14], [380, 2.3e14], [390, 2.65e14], [400, 3.9e14],
                      [420, 4.1e14], [450, 4.7e14]])
    continuum = _gaussian_smooth(np.interp(grid, knots[:, 0], knots[:, 1]), 3.0 / (grid[1] - grid[0]))
    log_depth = np.zeros_like(grid)
    step = grid[1] - grid[0]
    n_lines = int((grid[-1] - grid[0]) / 0.15)
    centres = rng.uniform(grid[0], grid[-1], n_lines)
    depths = rng.uniform(0.03, 0.75, n_lines) ** 1.5
    widths = rng.uniform(0.015, 0.06, n_lines)
    strong = [(393.37, 0.95, 0.6), (396.85, 0.93, 0.5), (382.0, 0.6, 0.25), (358.1, 0.55, 0.2),
              (336.1, 0.5, 0.15), (285.2, 0.8, 0.3), (279.6, 0.9, 0.4), (280.3, 0.9, 0.4)]
    for c, dpt, w in list(zip(centres, depths, widths)) + strong:
        half = int(5 * w / step) + 1
        i0 = int(round((c - grid[0]) / step))
        lo, hi = max(0, i0 - half), min(grid.size, i0 + half + 1)
        if lo >= hi:
            continue
        g = np.exp(-0.5 * ((grid[lo:hi] - c) / w) ** 2)
        log_depth[lo:hi] += np.log1p(-dpt * g)
    return continuum * np.exp(log_depth), continuum


def synthetic_so2(grid: np.ndarray) -> np.ndarray:
    """SO2 band model: vibronic-like bands every ~2.5 nm on a decaying envelope (cm² molec⁻¹).

    Mean about 1e-19 over 310–320 nm, falling by e⁻¹ every 7 nm toward 330 nm; not real data.
    """
    envelope = 2.0e-19 * np.exp(-(grid - 310.0) / 7.0) / (1.0 + np.exp((290.0 - grid) / 5.0))
    envelope /= 1.0 + np.exp((grid - 335.0) / 3.0)
    bands = np.full_like(grid, 0.35)
    for k in range(40):
        centre = 280.0 + 2.45 * k + 0.012 * k * k
        if centre > grid[-1]:
            break
        # asymmetric band head: sharp on the red side, slower tail to the blue
        x = grid - centre
        width = np.where(x < 0, 0.55, 0.22)
        bands += 1.3 * np.exp(-0.5 * (x / width) ** 2)
        bands += 0.35 * np.exp(-0.5 * ((x + 0.9) / 0.3) ** 2)  # a weaker sub-band
    bands *= 1.0 + 0.08 * np.sin(2 * np.pi * grid / 0.31)  # fine rotational texture
    window = (grid >= 305) & (grid <= 320)
    bands /= bands[window].mean()
    return envelope * bands


def synthetic_o3(grid: np.ndarray) -> np.ndarray:
    """A smooth Huggins-like O3 cross-section (cm² molec⁻¹), ~7e-20 at 310 nm; not real data."""
    base = 1.1e-18 * np.exp(-(grid - 290.0) / 7.5) / (1.0 + np.exp((grid - 345.0) / 4.0))
    return base * (1.0 + 0.12 * np.sin(2 * np.pi * (grid - 300.0) / 3.4)) + 1e-23


def synthetic_ring(solar: np.ndarray, step_nm: float) -> np.ndarray:
    """A −ln Ring pseudo-absorber: negative in Fraunhofer lines (filling-in), ~0 in the continuum."""
    log_solar = np.log(solar)
    return log_solar - np.log(_gaussian_smooth(solar, 1.0 / step_nm))


def synthetic_reference_set() -> ReferenceSet:
    """The labelled synthetic reference set (deterministic, 250–450 nm, 0.01 nm grid)."""
    grid = synthetic_grid()
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    solar, _ = synthetic_solar(grid, rng)
    step = SYNTHETIC_GRID[2]
    return ReferenceSet(
        label=SYNTHETIC_LABEL,
        synthetic=True,
        solar=Spectrum(grid, solar),
        cross_sections={
            "SO2": Spectrum(grid, synthetic_so2(grid)),
            "O3": Spectrum(grid, synthetic_o3(grid)),
            "Ring": Spectrum(grid, synthetic_ring(solar, step)),
        },
    )


def reference_set_for(reference_dir: str | os.PathLike[str] | None) -> ReferenceSet:
    """The real set from ``reference_dir`` when given, else the synthetic one."""
    if reference_dir:
        return load_reference_dir(reference_dir)
    return synthetic_reference_set()
