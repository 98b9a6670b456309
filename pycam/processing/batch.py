"""One batch run in the library: a folder of PyCam image pairs -> emission-rate files.

``pycam process``, the GUI's post-processing tab and ``pycam reprocess`` all call
:func:`run_batch`; they differ only in where messages go (``notify``), how progress is
shown (``progress``), how a run is cancelled (``cancel``) and, for ``--watch``, where the
pairs come from (``source``).

Steps: settings -> pairing (:func:`find_plume_pairs`) -> :func:`prepare_run` (darks, clear
sky, calibration, geometry, PCS lines) -> :class:`RunOutputs` (PyCam emission-rate files per
line and velocity mode, ``process_config.yml``, calibration CSVs, ``summary.json``) ->
:class:`BatchProcessor` over the pairs.  A bad input raises :class:`BatchError` with the
exit code a command should use (2 bad input, 1 nothing to process); everything the run could
still do is done, and ``summary.json`` is written in every case once outputs exist.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from pycam.formats.image_pair import ImagePair
from pycam.processing.pipeline import RunSummary
from pycam.processing.settings import ProcessingSettings

Notify = Callable[[str, str], None]
"""``notify(kind, text)``: kind is ``"warning"`` (stderr in the CLI) or ``"info"`` (stdout)."""


class BatchError(Exception):
    """A run that cannot start (bad input) or has nothing to process; ``exit_code`` for commands."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass
class BatchJob:
    """What to process and with which inputs (paths as ``pycam process`` takes them)."""

    img_dir: Path
    out: Path
    settings: ProcessingSettings
    cal_dir: Path | None = None
    dark_dir: Path | None = None
    clear_dir: Path | None = None
    geometry: Path | None = None
    pcs: Sequence[Path] = ()
    doas_results: Path | None = None
    workers: int | None = None
    watch: bool = False


@dataclasses.dataclass
class BatchResult:
    out: Path
    summary: RunSummary | None
    total_pairs: int
    problems: list[str]
    warnings: list[str]
    rows: list[dict]                    # per (line, mode): rows, valid, mean/std flux, mean velocity
    flags: dict = dataclasses.field(default_factory=dict)   # flagged samples: counts, fraction, reasons
    calibrated: bool = True             # a calibration was found (else AA only)
    has_lines: bool = True              # PCS lines were given (else no emission rates)

    @property
    def interrupted(self) -> bool:
        return self.summary is None or self.summary.interrupted


def run_batch(job: BatchJob, *, source: Callable[[list[str]], Iterable[ImagePair | None]] | None = None,
              progress: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
              notify: Notify | None = None, outputs_factory=None,
              on_pairs: Callable[[int], None] | None = None) -> BatchResult:
    """Process ``job``; see the module docstring.

    ``source(problems)`` replaces the pairs found in ``img_dir`` (``--watch``): it returns an
    iterable of :class:`~pycam.formats.image_pair.ImagePair` or ``None`` (nothing new yet) and appends unreadable
    files to ``problems``.  ``on_pairs(n)`` is told how many pairs were found up front.  ``outputs_factory(out_dir,
    save_images, save_formats)`` may return a :class:`RunOutputs` subclass (the GUI shows each
    pair's rates, the reprocessor collects SO2 images).
    """
    from pycam.formats.geometry import GeometryFileError
    from pycam.formats.pycam_outputs import OutputFormatError
    from pycam.processing.archive import find_plume_pairs, iter_pair_images
    from pycam.processing.cell_calibration import CalibrationError
    from pycam.processing.chain import ProcessingChain
    from pycam.processing.outputs import RunOutputs
    from pycam.processing.pipeline import BatchProcessor
    from pycam.processing.setup import prepare_run

    settings = job.settings
    if not Path(job.img_dir).is_dir():
        raise BatchError(f"{job.img_dir} is not a directory")
    pairing = find_plume_pairs(job.img_dir, settings["pair_tolerance_s"])
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        if notify is not None:
            notify("warning", text)

    if pairing.unpaired:
        warn(f"{len(pairing.unpaired)} unpaired Plume frame(s) ignored (first: {pairing.unpaired[0].path.name})")
    if not pairing.pairs and not job.watch:
        raise BatchError(f"no A/B Plume pairs in {job.img_dir}", exit_code=1)
    if job.watch and settings["cal_type_int"] in (1, 2):
        raise BatchError("--watch supports cal_type_int 0 and 3 only (DOAS needs the pairs up front)")
    fov_search = None
    if settings["cal_type_int"] in (1, 2):
        from pycam.doas.fov import calibrate_fov as fov_search
    try:
        inputs = prepare_run(job.img_dir, settings, cal_dir=job.cal_dir, geometry_file=job.geometry,
                             pcs_files=job.pcs, doas_results=job.doas_results, pairs=pairing.pairs,
                             dark_dir=job.dark_dir, clear_dir=job.clear_dir, fov_search=fov_search)
    except (CalibrationError, GeometryFileError, OutputFormatError, ValueError, OSError) as exc:
        raise BatchError(str(exc)) from exc
    if inputs.calibration is None:
        warn("WARNING no calibration: only AA images, no emission rates")
    if not inputs.pcs_lines:
        warn("WARNING no PCS line (--pcs): no emission rates")
    problems = inputs.problems
    source = iter(iter_pair_images(pairing.pairs, problems) if source is None else source(problems))
    if on_pairs is not None:
        on_pairs(len(pairing.pairs))
    factory = outputs_factory or RunOutputs
    outputs = factory(job.out, settings["save_images"], settings["save_formats"])
    outputs.write_setup(settings, inputs.pcs_lines, inputs.camera, inputs.warp)
    if inputs.cell_calibration is not None:
        outputs.write_cell_calibration(inputs.cell_calibration)
        if notify is not None:
            notify("info", inputs.cell_calibration.summary())
    if inputs.doas_calibration is not None:
        inputs.doas_calibration.write_csv(Path(job.out) / "full_calibration.csv")
    summary = None
    processor = None
    try:
        first = _first_pair(source, cancel)
        if first is None:
            if cancel is not None and cancel.is_set():
                return BatchResult(Path(job.out), None, len(pairing.pairs), problems, warnings, [],
                                   calibrated=inputs.calibration is not None, has_lines=bool(inputs.pcs_lines))
            raise BatchError(f"no readable pair in {job.img_dir}", exit_code=1)
        try:
            chain = ProcessingChain(settings, first.img_a.shape, darks=inputs.darks, clear=inputs.clear,
                                    calibration=inputs.calibration, pcs_lines=inputs.pcs_lines,
                                    geometry=inputs.camera, warp=inputs.warp)
        except ValueError as exc:       # e.g. a flow ROI or line outside the image
            raise BatchError(str(exc)) from exc
        if inputs.calibration is not None and inputs.pcs_lines and chain.geometry is None:
            warn("WARNING no measurement geometry (set plume_distance_m, or --geometry with source_lat/source_lon "
                 "in the config): no emission rates")
        processor = BatchProcessor(chain, outputs, workers=job.workers or settings["workers"], progress=progress)
        summary = processor.run(_until_cancelled(_chain_first(first, source), cancel))
    finally:
        if summary is None and processor is not None:
            summary = processor.summary
        info = {"img_dir": str(job.img_dir), "problems": problems,
                "cancelled": bool(cancel is not None and cancel.is_set())}
        if summary is not None:
            info.update(summary.as_dict())
        outputs.write_summary(info)
        outputs.close()
    return BatchResult(Path(job.out), summary, len(pairing.pairs), problems, warnings, outputs.summary_rows(),
                       outputs.flag_summary(), calibrated=inputs.calibration is not None,
                       has_lines=bool(inputs.pcs_lines))


def _first_pair(source: Iterator, cancel: threading.Event | None):
    """The first real pair (``None`` items mean 'nothing yet' in watch mode)."""
    source = iter(source)
    for item in source:
        if cancel is not None and cancel.is_set():
            return None
        if item is not None:
            return item
    return None


def _chain_first(first, rest):
    yield first
    yield from rest


def _until_cancelled(items, cancel: threading.Event | None) -> Iterator[ImagePair | None]:
    for item in items:
        if cancel is not None and cancel.is_set():
            return
        yield item
