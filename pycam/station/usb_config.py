"""Runtime settings from a JSON file on a USB drive (behaviour of the Picamera2 seed, made safe).

At start the device service calls :meth:`RuntimeConfig.startup`:

* if ``[usb_config] usb_file`` exists (e.g. ``/media/usb/pycam/pycam_config.json``) it is
  validated, copied to ``[usb_config] work_dir`` and applied; a missing drive or file is not an
  error (the last good working copy, if any, is applied instead);
* a template ``<name>.default`` is written next to the USB file (when the drive is there) and in
  the working directory, generated from the driver's own controls: each control's ``min``,
  ``max``, ``default`` and ``type``.

File format: one section per device kind, ``camera`` and ``spectrometer`` (camera B and the
spectrometer share the second Pi, its USB drive and this file; each service applies its own
section); top-level keys that start with ``_`` are comments::

    {"camera": {"ExposureTime": 20000, "AnalogueGain": 1.0}, "spectrometer": {"IntegrationTime": 100}}

Invalid JSON, an unknown key or an out-of-range / wrongly typed value raises
:class:`RuntimeConfigError` whose message names the key; nothing is applied and the previous
good settings stay in force (a copy of the last good file is kept as ``.<name>.<section>.good``
in the working directory, so they also survive a restart).
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

from pycam.formats.atomic import atomic_write_text

log = logging.getLogger(__name__)

Specs = Mapping[str, Mapping[str, Any]]          # name -> {"min", "max", "default", "type"}
Publish = Callable[..., None]                      # publish(kind: str, **fields)


class RuntimeConfigError(ValueError):
    """A runtime config file is unusable; ``key`` names the offending key ('' for the whole file)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


def parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuntimeConfigError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def _check_value(where: str, key: str, value: Any, spec: Mapping[str, Any]) -> Any:
    kind = spec.get("type", "float")
    if kind == "bool":
        if not isinstance(value, bool):
            raise RuntimeConfigError(f"{where}: must be true or false, got {value!r}", key)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuntimeConfigError(f"{where}: must be a number, got {value!r}", key)
    if isinstance(value, float) and not math.isfinite(value):
        raise RuntimeConfigError(f"{where}: must be a finite number", key)
    if kind == "int":
        if isinstance(value, float):
            if not value.is_integer():
                raise RuntimeConfigError(f"{where} = {value!r}: must be a whole number", key)
            value = int(value)
    else:
        value = float(value)
    lo, hi = spec.get("min"), spec.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise RuntimeConfigError(f"{where} = {value!r}: out of range {lo}..{hi}", key)
    return value


#: Sections of the shared file: the camera B and spectrometer services of one Pi share it.
KNOWN_SECTIONS = ("camera", "spectrometer")


def validate(data: Any, section: str, specs: Specs, source: str = "runtime config") -> dict[str, Any]:
    """The values of ``section`` checked against ``specs`` (see the module docstring).

    Other known sections are left to their own device; an absent section means nothing to set.
    """
    if not isinstance(data, dict):
        raise RuntimeConfigError(f"{source}: must be a JSON object with a {section!r} section")
    for key in data:
        if key not in KNOWN_SECTIONS and not str(key).startswith("_"):
            raise RuntimeConfigError(f"{source}: unknown key {key!r} (known: {', '.join(KNOWN_SECTIONS)})", key)
    values = data.get(section, {})
    if not isinstance(values, dict):
        raise RuntimeConfigError(f"{source}: {section} must be a JSON object", section)
    out = {}
    for key, value in values.items():
        if key not in specs:
            raise RuntimeConfigError(f"{source}: {section}.{key}: unknown key (known: {', '.join(specs)})",
                                     f"{section}.{key}")
        out[key] = _check_value(f"{source}: {section}.{key}", f"{section}.{key}", value, specs[key])
    return out


def template(section: str, specs: Specs, device: str = "", existing: Mapping[str, Any] | None = None) -> dict:
    """The template, merged into ``existing`` (the other device's sections are kept)."""
    out: dict[str, Any] = {}
    if isinstance(existing, Mapping):
        out.update({k: v for k, v in existing.items() if k in KNOWN_SECTIONS or k == "_controls"})
    controls = dict(out.get("_controls", {})) if isinstance(out.get("_controls"), Mapping) else {}
    controls[section] = {name: dict(spec) for name, spec in specs.items()}
    out["_controls"] = controls
    out[section] = {name: spec.get("default") for name, spec in specs.items()}
    out["_comment"] = ("PyCam runtime settings template generated from the drivers' controls (min, max, default, "
                       "type under _controls). Copy it to the config file name (without .default) and keep only "
                       "the keys you want to set; keys starting with _ are ignored.")
    return {"_comment": out.pop("_comment"), **out}


class RuntimeConfig:
    """Loads, validates and applies the JSON runtime settings of one device (see module docstring).

    ``specs()`` returns the driver's controls; ``apply(values)`` applies validated values and
    returns what is in force; ``publish(kind, **fields)`` reports ``runtime_config`` events.
    """

    def __init__(self, usb_file: Path, work_dir: Path, section: str, specs: Callable[[], Specs],
                 apply: Callable[[dict[str, Any]], Mapping[str, Any]], *, publish: Publish | None = None,
                 device: str = "") -> None:
        if section not in ("camera", "spectrometer"):
            raise ValueError(f"bad section {section!r}: camera or spectrometer")
        self.usb_file = Path(usb_file)
        self.work_dir = Path(work_dir)
        self.section = section
        self._specs = specs
        self._apply = apply
        self._publish = publish or (lambda kind, **fields: None)
        self.device = device
        self.settings: dict[str, Any] = {}     # the values in force after the last good file
        self.last_values: dict[str, Any] | None = None  # what the last good file asked for

    @property
    def work_file(self) -> Path:
        return self.work_dir / self.usb_file.name

    @property
    def good_copy(self) -> Path:
        return self.work_dir / f".{self.usb_file.name}.{self.section}.good"

    def template_paths(self) -> list[Path]:
        paths = [self.work_dir / f"{self.usb_file.name}.default"]
        if self.usb_file.parent.is_dir():
            paths.append(self.usb_file.parent / f"{self.usb_file.name}.default")
        return paths

    def write_templates(self) -> list[Path]:
        written = []
        for path in self.template_paths():
            try:
                self._merge_template(path)
                written.append(path)
            except OSError as exc:  # a read-only USB drive: the work-dir template still exists
                log.warning("cannot write the runtime config template %s: %s", path, exc.strerror)
        return written

    def _merge_template(self, path: Path) -> None:
        import fcntl

        with open(path.parent / f".{path.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other service of this Pi may write it too
            try:
                existing = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                existing = None
            text = json.dumps(template(self.section, self._specs(), self.device, existing), indent=2) + "\n"
            atomic_write_text(path, text)

    def read_file(self, path: Path) -> dict[str, Any]:
        """Validated values of ``path`` (nothing applied)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RuntimeConfigError(f"{path}: not UTF-8 text") from None
        except OSError as exc:
            raise RuntimeConfigError(f"{path}: cannot read: {exc.strerror}") from None
        return validate(parse_json(text, str(path)), self.section, self._specs(), str(path))

    def apply_file(self, path: Path) -> dict[str, Any]:
        """Validate then apply ``path``; on any error nothing changes and the error is raised."""
        values = self.read_file(path)
        try:
            in_force = dict(self._apply(values))
        except Exception as exc:
            raise RuntimeConfigError(f"{path}: applying failed: {exc}") from None
        self.settings.update(in_force)
        self.last_values = dict(values)
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.good_copy)
        except OSError as exc:
            log.warning("cannot keep a copy of the good runtime config: %s", exc)
        return in_force

    def _report_error(self, exc: RuntimeConfigError, source: Path) -> None:
        log.error("runtime config: %s (previous settings stay in force)", exc)
        self._publish("runtime_config", state="error", file=source.name, key=exc.key, message=str(exc),
                      settings=dict(self.settings))

    def startup(self) -> dict[str, Any]:
        """Write the templates, copy and apply the USB file (or the last good working copy).

        Returns the values applied ({} when nothing was applied).  Never raises for a missing
        drive or a bad file: problems are reported through ``publish`` and logged.
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.write_templates()
        if self.usb_file.is_file():
            try:
                self.read_file(self.usb_file)
            except RuntimeConfigError as exc:
                self._report_error(exc, self.usb_file)
            else:
                incoming = self.work_dir / f".{self.usb_file.name}.incoming"
                shutil.copyfile(self.usb_file, incoming)
                incoming.replace(self.work_file)  # the working copy appears whole
                try:
                    return self._apply_and_report(self.work_file)
                except RuntimeConfigError:
                    pass  # reported; fall back to the last good copy below
        else:
            log.info("no runtime config at %s (no USB drive?): not an error", self.usb_file)
        candidates = [self.good_copy] if self.usb_file.is_file() else [self.work_file, self.good_copy]
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return self._apply_and_report(candidate)
                except RuntimeConfigError:
                    continue
        return {}

    def _apply_and_report(self, path: Path) -> dict[str, Any]:
        try:
            applied = self.apply_file(path)
        except RuntimeConfigError as exc:
            self._report_error(exc, path)
            raise
        self._publish("runtime_config", state="applied", file=path.name, settings=applied)
        return applied
