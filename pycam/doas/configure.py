"""Retrieval settings and references from the ``[doas]`` section of the station config.

Shared by ``pycam doas``, the station and the GUI so that every user of the retrieval reads
the configuration the same way.  ``overrides`` (e.g. command-line flags) take precedence;
keys are those of ``[doas]`` (see :data:`pycam.config.SCHEMA`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from pycam.doas.lineshape import LineShapeError, read_ils_file
from pycam.doas.model import LineShapeSpec, ReferenceArrays
from pycam.doas.references import load_references
from pycam.doas.retrieval import RetrievalSettings


class DoasConfigError(ValueError):
    """The ``[doas]`` settings (or their overrides) cannot be used; the message names the key."""


def default_doas_section() -> dict[str, Any]:
    """The ``[doas]`` defaults of the schema (paths expanded; empty paths are None)."""
    from pycam.config import SCHEMA

    section: dict[str, Any] = {}
    for key, field in SCHEMA["doas"].items():
        value = None if field.default == "" else field.default
        section[key] = Path(value).expanduser() if field.kind is Path and value is not None else value
    return section


def _window(value, key: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DoasConfigError(f"{key}: expected two numbers [lower, upper] in nm, got {value!r}") from None
    if not hi > lo:
        raise DoasConfigError(f"{key}: window {lo:g} {hi:g}: the upper limit must exceed the lower")
    return lo, hi


def ils_mode(section: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> str:
    """How the line shape is obtained: "measured" (an ILS file), "fit" (every spectrum), "fixed"
    (a given FWEM) or "auto" (self-calibrated, :mod:`pycam.doas.selfcal`).

    An ``ils_file`` wins unless ``fwem`` is overridden; ``fit_ils`` means "fit"; an overridden
    ``fwem`` (e.g. ``pycam doas --fwem``) means "fixed"; otherwise the section's ``ils_mode``.
    """
    conf = dict(section)
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "fwem" in over and "ils_file" not in over:
        conf["ils_file"] = None
    conf.update(over)
    if conf.get("ils_file") is not None:
        return "measured"
    if conf.get("fit_ils"):
        return "fit"
    if "fwem" in over:
        return "fixed"
    mode = str(conf.get("ils_mode", "auto"))
    if mode not in ("auto", "fixed", "fit"):
        raise DoasConfigError(f"ils_mode: expected auto, fixed or fit, got {mode!r}")
    return mode


def settings_from_config(section: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> RetrievalSettings:
    """:class:`RetrievalSettings` from a ``[doas]`` section plus overrides.

    The line shape: ``ils_file`` (a measured ILS) unless ``fwem`` is overridden, else a
    super-Gaussian of FWEM ``fwem``, fitted when ``fit_ils``.
    """
    conf = dict(section)
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "fwem" in over and "ils_file" not in over:
        conf["ils_file"] = None             # an explicit width replaces a configured ILS file
    conf.update(over)
    ils_path = conf.get("ils_file")
    try:
        if ils_path is not None:
            if over.get("fit_ils"):
                raise DoasConfigError("fit_ils: a measured ILS file cannot be fitted; give a FWEM to fit a super-Gaussian")
            line_shape = LineShapeSpec(measured=read_ils_file(ils_path))
        else:
            line_shape = LineShapeSpec(fwem=float(conf["fwem"]), fit=ils_mode(section, over) == "fit")
    except LineShapeError as exc:
        raise DoasConfigError(str(exc)) from None
    try:
        return RetrievalSettings(fit_window=_window(conf["fit_window"], "fit_window"),
                                 stray_window=_window(conf["stray_window"], "stray_window"),
                                 poly_order=int(conf["poly_order"]), line_shape=line_shape,
                                 warm_start=bool(conf["warm_start"]), max_residual=float(conf["max_residual"]),
                                 min_intensity=float(conf["min_intensity"]))
    except ValueError as exc:
        raise DoasConfigError(str(exc)) from None


def references_from_config(section: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                           cross_sections: Mapping[str, str] | None = None) -> ReferenceArrays:
    """References: ``reference_dir`` (else the labelled synthetic set), then ``solar_file``,
    ``so2_file``/``o3_file``/``ring_file`` and finally ``cross_sections`` ({name: path})."""
    conf = dict(section)
    conf.update({k: v for k, v in (overrides or {}).items() if v is not None})
    files: dict[str, str] = {}
    for key, name in (("so2_file", "SO2"), ("o3_file", "O3"), ("ring_file", "Ring")):
        if conf.get(key) is not None:
            files[name] = str(conf[key])
    files.update(cross_sections or {})
    solar = conf.get("solar_file")
    references = load_references(conf.get("reference_dir"), solar_file=str(solar) if solar is not None else None,
                                 cross_section_files=files)
    if "SO2" not in references.cross_sections:
        raise DoasConfigError("no SO2 cross-section: set reference_dir or so2_file (pycam doas: --xs SO2=FILE)")
    return references


def window_from_config(section: Mapping[str, Any], key: str) -> tuple[float, float]:
    return _window(section[key], key)


def fov_calibrator_from_config(section: Mapping[str, Any], **overrides: Any):
    """A :class:`pycam.doas.fov.FovCalibrator` with the ``[doas]`` FOV keys (recalibration interval,
    sample window, maximum camera-spectrometer gap, alignment mode, maximum radius); the AA → column
    fit is the processing settings' (``doas_cal_order``, ``doas_cal_through_origin``)."""
    from pycam.doas.fov import FovCalibrator

    options = dict(recal_minutes=float(section["fov_recal_minutes"]),
                   window_minutes=float(section["fov_window_minutes"]), mode=str(section["time_alignment"]),
                   max_gap_s=float(section["max_time_gap_s"]), max_radius=int(section["fov_max_radius"]))
    options.update(overrides)
    return FovCalibrator(**options)


def retrieval_from_config(section: Mapping[str, Any], references: ReferenceArrays,
                          overrides: Mapping[str, Any] | None = None, *, dark=None, history_path=None,
                          log: Callable[[str], None] | None = None):
    """The retrieval a ``[doas]`` section asks for, shared by ``pycam doas``, the GUI's
    post-processing and the live chain: the line shape of :func:`ils_mode` (``auto``: a
    :class:`~pycam.doas.selfcal.SelfCalibratingRetrieval`, its history read from and kept for
    ``history_path``), wrapped in the two-waveband
    :class:`~pycam.doas.dilution.LightDilutionCorrection` when ``use_light_dilution_spec``.
    Every one has ``fit(spectrum, dark=...) -> FitResult`` and a settable ``dark``; ``log``
    receives which line shape (and dilution correction) is used.
    """
    from pycam.doas.retrieval import DoasRetrieval, line_shape_label

    conf = dict(section)
    conf.update({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = settings_from_config(section, overrides)
    mode = ils_mode(section, overrides)
    say = log or (lambda message: None)
    if mode == "auto":
        from pycam.doas.selfcal import CalibrationHistory, CalibrationHistoryError, SelfCalibratingRetrieval

        try:
            history = (CalibrationHistory.load(history_path, write_each=False) if history_path is not None
                       else CalibrationHistory())
        except CalibrationHistoryError as exc:
            raise DoasConfigError(str(exc)) from None
        say("line shape: super-Gaussian self-calibrated on the sky (fitted on the first good, preferably clear-sky, "
            "spectrum, then fixed; refitted on drift" + (f"; history in {history_path}" if history_path else "") + ")")
        primary = SelfCalibratingRetrieval(references, settings, dark, history=history,
                                           recal_minutes=float(conf.get("ils_recal_minutes", 30.0)), log=say)
    else:
        if mode == "fit":
            say(f"line shape: super-Gaussian fitted per spectrum (first guess FWEM {settings.line_shape.fwem:g} nm)")
        else:
            say(f"line shape: {line_shape_label(settings.line_shape)}")
        primary = DoasRetrieval(references, settings, dark)
    if not conf.get("use_light_dilution_spec"):
        return primary
    from pycam.doas.dilution import LightDilutionCorrection

    window = _window(conf["ld_window"], "ld_window")
    recal = float(conf.get("spec_recal_time", 0.0))
    say(f"light dilution: two-waveband correction, windows {settings.fit_window[0]:g}-{settings.fit_window[1]:g} and "
        f"{window[0]:g}-{window[1]:g} nm, "
        + (f"factor averaged over {recal:g} min" if recal > 0 else "factor per spectrum"))
    try:
        return LightDilutionCorrection(references, settings, window, dark=dark, so2_max=float(conf["ld_grid_max"]),
                                       cache_dir=conf.get("cache_dir"), primary=primary, recal_minutes=recal)
    except ValueError as exc:
        raise DoasConfigError(str(exc)) from None
