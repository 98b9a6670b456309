"""Plan a reprocessing run: walk a PyCam archive and make one task per station-day.

Archive layout (PyCam's, several stations as sub-folders)::

    ARCHIVE/[STATION/...]/<YYYY-mm-dd>/Seq_N/     plume pairs (and Dark/Clear frames)
                                       Cal_N/     gas-cell calibration (Dark, Clear, <N>ppmm)
                                       Dark/ Clear/ Spectra/   optional
    process_config.yml, pcs_line_*.txt, cam_geom.txt: the nearest one up the tree applies

A day folder is any folder named ``YYYY-mm-dd``; its station is its parent's path relative to
the archive (the archive's own name when the days sit at the top).  The calibration is the
day's last ``Cal_N``, else the latest ``Cal_N`` of an earlier day of the same station.

Each task carries a **manifest hash**: SHA-256 over the software version, the settings text,
the PCS-line and geometry files' contents, and the name, size and modification time of every
input image (contents are not read: an archive holds terabytes).  A finished day's output
records it; a rerun skips days whose hash is unchanged and redoes the others.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SEQ_RE = re.compile(r"^Seq_(\d+)$")
CAL_RE = re.compile(r"^Cal_(\d+)$")
CONFIG_NAME = "process_config.yml"
GEOMETRY_NAME = "cam_geom.txt"
PCS_GLOB = "pcs_line_*.txt"
IMAGE_SUFFIXES = (".png", ".npy", ".fts", ".fits")


class PlanError(Exception):
    """The archive cannot be planned (missing folder, nothing to do)."""


@dataclasses.dataclass(frozen=True)
class DayTask:
    """One station-day: everything a worker needs (plain strings, so it pickles small)."""

    station: str
    date: str
    day_dir: str
    sequences: tuple[str, ...]
    cal_dir: str | None
    dark_dir: str | None
    clear_dir: str | None
    config: str | None
    pcs: tuple[str, ...]
    geometry: str | None
    out_dir: str
    manifest_hash: str
    plume_frames: int            # fltrA Plume frames: an estimate of the pairs, for progress

    @property
    def key(self) -> str:
        return f"{self.station}/{self.date}"


def _nearest(start: Path, root: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` in ``start`` or the nearest folder above it (up to ``root``)."""
    here = start
    while True:
        found = sorted(p for p in here.glob(pattern) if p.is_file())
        if found:
            return found
        if here == root or here.parent == here:
            return []
        here = here.parent


def find_days(archive: Path) -> list[Path]:
    """Every day folder below ``archive`` (sorted), not descending into day folders."""
    days = []
    for dirpath, dirnames, _ in os.walk(archive):
        here = Path(dirpath)
        if DAY_RE.match(here.name):
            days.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(days)


def station_of(day: Path, archive: Path) -> str:
    rel = day.parent.relative_to(archive)
    return archive.resolve().name if rel == Path(".") else rel.as_posix()


def _numbered(day: Path, pattern: re.Pattern) -> list[Path]:
    found = [(int(m.group(1)), p) for p in day.iterdir() if p.is_dir() and (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def _image_files(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)),
                      key=lambda e: e.name)


def manifest_hash(files: list[Path], small_files: list[Path], settings_text: str, version: str,
                  options: str = "") -> str:
    """See the module docstring: image files by (name, size, mtime), small files by content."""
    h = hashlib.sha256()
    h.update(f"pycam {version}\n{options}\n".encode())
    h.update(settings_text.encode())
    for p in small_files:
        h.update(f"\n{p.name}\n".encode())
        h.update(p.read_bytes())
    for folder in files:
        for e in _image_files(folder):
            st = e.stat()
            h.update(f"\n{folder.name}/{e.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def plan_archive(archive: os.PathLike | str, out: os.PathLike | str, *, options: str = "") -> list[DayTask]:
    """One :class:`DayTask` per station-day with at least one ``Seq_N`` folder.

    ``options`` (e.g. whether SO2 cubes are written) goes into every manifest hash.
    """
    from pycam import __version__

    archive = Path(archive)
    if not archive.is_dir():
        raise PlanError(f"archive {archive} is not a directory")
    out = Path(out)
    tasks: list[DayTask] = []
    last_cal: dict[str, Path] = {}
    for day in find_days(archive):
        station = station_of(day, archive)
        seqs = _numbered(day, SEQ_RE)
        cals = _numbered(day, CAL_RE)
        if cals:
            last_cal[station] = cals[-1]
        if not seqs:
            continue
        cal = cals[-1] if cals else last_cal.get(station)
        dark = day / "Dark" if (day / "Dark").is_dir() else None
        clear = day / "Clear" if (day / "Clear").is_dir() else None
        config = _nearest(day, archive, CONFIG_NAME)
        pcs = _nearest(day, archive, PCS_GLOB)
        geometry = _nearest(day, archive, GEOMETRY_NAME)
        settings_text = config[0].read_text() if config else ""
        image_dirs = [*seqs, *([cal] if cal else []), *([dark] if dark else []), *([clear] if clear else [])]
        digest = manifest_hash(image_dirs, [*pcs, *geometry], settings_text, __version__, options)
        plume = sum(1 for s in seqs for e in _image_files(s) if "_fltrA_" in e.name and "Plume" in e.name)
        tasks.append(DayTask(
            station=station, date=day.name, day_dir=str(day), sequences=tuple(str(s) for s in seqs),
            cal_dir=str(cal) if cal else None, dark_dir=str(dark) if dark else None,
            clear_dir=str(clear) if clear else None, config=str(config[0]) if config else None,
            pcs=tuple(str(p) for p in pcs), geometry=str(geometry[0]) if geometry else None,
            out_dir=str(out / station / day.name), manifest_hash=digest, plume_frames=plume))
    return tasks
