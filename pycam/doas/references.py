"""Reference spectra for the retrieval: files, reference directories and the synthetic default.

The simulator's :mod:`pycam.reference_spectra` is the one place that knows the reference file
formats and the labelled synthetic band model; this module adapts its ``ReferenceSet`` into
the plain :class:`~pycam.doas.model.ReferenceArrays` the forward model uses, and lets single
files override members of a set (``--solar FILE``, ``--xs NAME=FILE``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from pycam.doas.model import ReferenceArrays


class ReferenceError(ValueError):
    """A reference file or directory is missing or unreadable."""


def _arrays_of(spectrum) -> tuple[np.ndarray, np.ndarray]:
    """(wavelengths, values) of a reference ``Spectrum`` or a 2-tuple."""
    if isinstance(spectrum, tuple):
        wl, values = spectrum
    else:
        wl, values = spectrum.wavelength, spectrum.values
    return np.asarray(wl, dtype=np.float64), np.asarray(values, dtype=np.float64)


def read_two_column_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength and value columns of a reference text file, ascending in wavelength.

    Delegates to :func:`pycam.reference_spectra.load_text_spectrum` (``#`` or free-text
    headers, CRLF, comma or whitespace separators; the value is column 2).
    """
    p = Path(path)
    if not p.is_file():
        raise ReferenceError(f"{p}: reference file not found")
    try:
        wl, values = _load_columns(p)
    except (OSError, ValueError) as exc:
        raise ReferenceError(f"{p}: cannot read reference spectrum: {exc}") from None
    order = np.argsort(wl)
    return wl[order], values[order]


def _load_columns(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from pycam.reference_spectra import load_text_spectrum

    return _arrays_of(load_text_spectrum(path))


def arrays_from_reference_set(ref_set) -> ReferenceArrays:
    """Adapt a :class:`pycam.reference_spectra.ReferenceSet` (solar + cross-sections)."""
    solar_wl, solar = _arrays_of(ref_set.solar)
    xs = {name: _arrays_of(s) for name, s in ref_set.cross_sections.items()}
    label = ref_set.label + (" (SYNTHETIC band model, not real spectroscopy)" if getattr(ref_set, "synthetic", False)
                             and "synthetic" not in ref_set.label.lower() else "")
    return ReferenceArrays(solar_wl, solar, xs, label)


def load_references(reference_dir: str | os.PathLike[str] | None = None, *, solar_file: str | None = None,
                    cross_section_files: Mapping[str, str] | None = None) -> ReferenceArrays:
    """The references for a retrieval.

    ``reference_dir``: a directory read by :func:`pycam.reference_spectra.load_reference_dir`;
    without one (and without a solar file) the simulator's labelled synthetic set is used so
    that demos work.  ``solar_file`` and ``cross_section_files`` ({name: path}) replace or
    add members.
    """
    from pycam import reference_spectra

    cross_section_files = dict(cross_section_files or {})
    if reference_dir is not None:
        d = Path(reference_dir)
        if not d.is_dir():
            raise ReferenceError(f"{d}: reference directory not found")
        try:
            base = arrays_from_reference_set(reference_spectra.load_reference_dir(d))
        except (OSError, ValueError) as exc:
            raise ReferenceError(f"{d}: cannot load references: {exc}") from None
    elif solar_file is not None and {"SO2"} <= set(cross_section_files):
        base = None
    else:
        base = arrays_from_reference_set(reference_spectra.synthetic_reference_set())
    if base is None:
        solar_wl, solar = read_two_column_file(solar_file)
        xs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        label = f"files: solar={Path(solar_file).name}"
    else:
        solar_wl, solar = base.solar_wavelengths, base.solar
        xs = dict(base.cross_sections)
        label = base.label
        if solar_file is not None:
            solar_wl, solar = read_two_column_file(solar_file)
            label += f"; solar={Path(solar_file).name}"
    for name, path in cross_section_files.items():
        xs[name] = read_two_column_file(path)
        label += f"; {name}={Path(path).name}"
    return ReferenceArrays(solar_wl, solar, xs, label)
