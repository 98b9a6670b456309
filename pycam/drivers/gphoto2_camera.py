"""DSLR capture through python-gphoto2 (the wheel bundles libgphoto2): the img_capture workflow.

Workflow of one capture (:class:`DslrCapture`), each step with a typed outcome:

1. end the process that holds the camera (``[hardware] dslr_kill_process``, default
   ``gvfs-gphoto2-volume-monitor``), matched by **exact** name and only if it is running;
2. ``gp.Camera().init()`` detects the camera;
3. create the dated output folder ``<dslr_output_dir>/<YYYY-mm-dd>/``;
4. ``camera.capture(gp.GP_CAPTURE_IMAGE)`` triggers the shot;
5. every file in the capture folder (``folder_list_files``) is downloaded (``file_get_info``,
   ``file_get(..., GP_FILE_TYPE_NORMAL)``) and written atomically as
   ``<capture time>_<fltrA|fltrB>_<camera name>``; a size mismatch is a failed download;
6. only when **all** downloads succeeded are those files deleted from the card (``file_delete``);
   otherwise nothing is deleted and the files are fetched again by the next capture;
7. ``camera.exit()``.

Outcomes and the seed's numeric codes (kept for users' scripts):

========  ==========  ==========================================================
code      outcome     meaning
========  ==========  ==========================================================
4         captured    success; ``files`` holds the downloaded file names
100       no_camera   ``init`` found no camera (GP_ERROR_MODEL_NOT_FOUND -105,
                      GP_ERROR_IO_USB_FIND -52)
101       no_focus    the capture was refused with the generic GP_ERROR (-1): libgphoto2
                      reports a failed autofocus release this way (Canon "Perhaps no
                      focus?", Nikon "Out of Focus")
102       error       anything else; the message is libgphoto2's (``GPhoto2Error``)
========  ==========  ==========================================================

Errors are classified by libgphoto2's numeric result codes, never by parsing (localised)
command-line output.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from pycam.config import Config
from pycam.drivers.base import (Capability, CameraDriver, CameraFrame, CameraLimits, DriverError, DriverUnavailable,
                                utc_seconds, wait_until)
from pycam.formats.atomic import atomic_write_bytes
from pycam.formats.names import BAND_TO_FILTER, day_folder, format_time

OUTCOME_CODES: dict[str, int] = {"captured": 4, "no_camera": 100, "no_focus": 101, "error": 102}
EventListener = Callable[..., None]  # listener(kind: str, **fields)


def _import_gphoto2():
    try:
        import gphoto2  # noqa: PLC0415 - guarded optional import
    except Exception as exc:
        raise DriverUnavailable(f"gphoto2 not available: {exc}") from None
    return gphoto2


@dataclasses.dataclass(frozen=True)
class DslrOutcome:
    """The typed result of one DSLR capture (see the table in the module docstring)."""

    outcome: str
    message: str
    files: tuple[Path, ...] = ()
    library_code: int | None = None  # libgphoto2's result code when it failed

    @property
    def code(self) -> int:
        return OUTCOME_CODES[self.outcome]

    @property
    def ok(self) -> bool:
        return self.outcome == "captured"

    def event_fields(self) -> dict[str, Any]:
        """Fields for a ``dslr_capture`` station event."""
        fields: dict[str, Any] = {"outcome": self.outcome, "code": self.code, "message": self.message,
                                  "files": [p.name for p in self.files]}
        if self.library_code is not None:
            fields["library_code"] = self.library_code
        return fields


# -- ending the process that holds the camera ------------------------------------------------
def find_processes_by_exact_name(name: str, proc_root: Path = Path("/proc")) -> list[int]:
    """PIDs whose program name is exactly ``name`` (argv[0] basename, or comm for short names)."""
    if not name:
        return []
    found = []
    for entry in proc_root.iterdir() if proc_root.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode("utf-8", "replace")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if (argv0 and os.path.basename(argv0) == name) or (not argv0 and comm == name[:15] and len(name) <= 15):
            found.append(int(entry.name))
    return sorted(found)


def end_processes_by_exact_name(name: str, *, proc_root: Path = Path("/proc"),
                                kill: Callable[[int, int], None] = os.kill, wait_s: float = 2.0,
                                sleep: Callable[[float], None] = time.sleep) -> list[int]:
    """Send SIGTERM to every process named exactly ``name`` (if any); returns the PIDs ended."""
    pids = find_processes_by_exact_name(name, proc_root)
    ended = []
    for pid in pids:
        try:
            kill(pid, signal.SIGTERM)
            ended.append(pid)
        except ProcessLookupError:
            continue
        except PermissionError as exc:
            raise DriverError(f"gphoto2: cannot end {name} (pid {pid}) that holds the camera: {exc}") from None
    deadline = time.monotonic() + wait_s
    while ended and time.monotonic() < deadline and set(find_processes_by_exact_name(name, proc_root)) & set(ended):
        sleep(0.05)
    return ended


# -- the capture workflow ---------------------------------------------------------------------
class DslrCapture:
    """One-shot DSLR capture, download and card clearing (see the module docstring)."""

    def __init__(self, output_dir: Path, *, kill_process: str = "", keep_on_card: bool = False,
                 gp_module: Any = None, proc_root: Path = Path("/proc"),
                 kill: Callable[[int, int], None] = os.kill) -> None:
        self.output_dir = Path(output_dir)
        self.kill_process = kill_process
        self.keep_on_card = keep_on_card
        self._gp = gp_module
        self._proc_root = proc_root
        self._kill = kill
        self.ended_pids: list[int] = []

    @property
    def gp(self) -> Any:
        if self._gp is None:
            self._gp = _import_gphoto2()
        return self._gp

    def _fail(self, exc: Exception, step: str) -> DslrOutcome:
        gp = self.gp
        code = getattr(exc, "code", None)
        text = getattr(exc, "string", None) or str(exc)
        if step == "init" and code in (gp.GP_ERROR_MODEL_NOT_FOUND, gp.GP_ERROR_IO_USB_FIND):
            return DslrOutcome("no_camera", f"no camera found ({text})", library_code=code)
        if step == "capture" and code == gp.GP_ERROR:
            return DslrOutcome("no_focus", f"camera refused to release, probably no focus ({text})",
                               library_code=code)
        return DslrOutcome("error", f"{step} failed: {text}", library_code=code)

    def detect(self, settings: Callable[[Any], None] | None = None) -> DslrOutcome:
        """Check that a camera answers (and optionally read its config); nothing is captured."""
        if self.kill_process:
            self.ended_pids = end_processes_by_exact_name(self.kill_process, proc_root=self._proc_root,
                                                          kill=self._kill)
        camera = self.gp.Camera()
        try:
            camera.init()
        except self.gp.GPhoto2Error as exc:
            return self._fail(exc, "init")
        try:
            if settings is not None:
                settings(camera)
        finally:
            self._exit(camera)
        return DslrOutcome("captured", "camera answers")

    def _exit(self, camera: Any) -> None:
        try:
            camera.exit()
        except Exception:
            pass

    def run(self, when: dt.datetime, label: str, configure: Callable[[Any], None] | None = None) -> DslrOutcome:
        gp = self.gp
        try:
            if self.kill_process:
                self.ended_pids = end_processes_by_exact_name(self.kill_process, proc_root=self._proc_root,
                                                              kill=self._kill)
        except DriverError as exc:
            return DslrOutcome("error", str(exc))
        camera = gp.Camera()
        try:
            camera.init()
        except gp.GPhoto2Error as exc:
            return self._fail(exc, "init")
        try:
            folder = self.output_dir / day_folder(when)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return DslrOutcome("error", f"cannot create output folder {folder}: {exc.strerror or exc}")
            if configure is not None:
                try:
                    configure(camera)
                except gp.GPhoto2Error as exc:
                    return self._fail(exc, "settings")
            try:
                shot = camera.capture(gp.GP_CAPTURE_IMAGE)
            except gp.GPhoto2Error as exc:
                return self._fail(exc, "capture")
            return self._download_and_clear(camera, shot.folder, shot.name, when, label, folder)
        finally:
            self._exit(camera)

    def _card_files(self, camera: Any, card_folder: str, shot_name: str) -> list[str]:
        listing = camera.folder_list_files(card_folder)
        names = [listing.get_name(i) for i in range(listing.count())]
        if shot_name not in names:
            names.append(shot_name)
        return names

    def _download_and_clear(self, camera: Any, card_folder: str, shot_name: str, when: dt.datetime,
                            label: str, folder: Path) -> DslrOutcome:
        gp = self.gp
        try:
            names = self._card_files(camera, card_folder, shot_name)
        except gp.GPhoto2Error as exc:
            return self._fail(exc, "listing the card")
        saved: list[Path] = []
        for name in names:
            try:
                target = self._download_one(camera, card_folder, name, shot_name, when, label, folder)
            except (gp.GPhoto2Error, OSError, DriverError) as exc:
                text = getattr(exc, "string", None) or str(exc)
                return DslrOutcome("error", f"download of {card_folder}/{name} failed: {text}; nothing was "
                                   f"deleted from the card", files=tuple(saved), library_code=getattr(exc, "code", None))
            saved.append(target)
        message = f"captured {shot_name}"
        if not self.keep_on_card:
            for name in names:
                try:
                    camera.file_delete(card_folder, name)
                except gp.GPhoto2Error as exc:  # downloaded safely; it is fetched again next time
                    message += f"; could not delete {name} from the card: {exc.string}"
        return DslrOutcome("captured", message, files=tuple(saved))

    def _download_one(self, camera: Any, card_folder: str, name: str, shot_name: str, when: dt.datetime,
                      label: str, folder: Path) -> Path:
        gp = self.gp
        info = camera.file_get_info(card_folder, name)
        size = int(info.file.size) if info.file.fields & gp.GP_FILE_INFO_SIZE else None
        taken = when
        leftover = Path(name).stem != Path(shot_name).stem  # not this shot (nor its RAW/JPEG twin)
        if leftover and info.file.fields & gp.GP_FILE_INFO_MTIME and info.file.mtime:
            taken = dt.datetime.fromtimestamp(int(info.file.mtime), dt.timezone.utc)
        target = folder / f"{format_time(taken)}_{label}_{name}"
        if target.exists() and size is not None and target.stat().st_size == size:
            return target  # fetched by an earlier run whose card clearing failed
        camera_file = camera.file_get(card_folder, name, gp.GP_FILE_TYPE_NORMAL)
        data = bytes(camera_file.get_data_and_size())
        if size is not None and len(data) != size:
            raise DriverError(f"got {len(data)} of {size} bytes")
        atomic_write_bytes(target, data)
        return target


# -- the CameraDriver -------------------------------------------------------------------------
def parse_shutter(text: str) -> int | None:
    """A gphoto2 shutter-speed choice (``1/100``, ``0.5``, ``30``, ``2s``) -> microseconds."""
    t = text.strip().rstrip("s").strip()
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return round(float(num) / float(den) * 1e6)
        return round(float(t) * 1e6)
    except (ValueError, ZeroDivisionError):
        return None  # "bulb", "Auto", ...


def _choices(widget: Any) -> list[str]:
    return [widget.get_choice(i) for i in range(widget.count_choices())]


class Gphoto2Camera(CameraDriver):
    """A DSLR as a PyCam camera: each capture runs :class:`DslrCapture` and decodes the JPEG."""

    capabilities = frozenset({Capability.EVENTS})   # dslr_capture outcomes

    def __init__(self, config: Config, band: str, *, gp_module: Any = None,
                 clock: Callable[[], dt.datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                 proc_root: Path = Path("/proc"), kill: Callable[[int, int], None] = os.kill) -> None:
        if band not in BAND_TO_FILTER:
            raise ValueError(f"bad band {band!r}: expected 'on' or 'off'")
        self.band = band
        hw = config["hardware"]
        binning = int(config["camera"]["binning"]) or 4  # 0: the OV5647 profile's 4x4
        self._shape = (1944 // binning, 2592 // binning)
        self._gp = gp_module
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._sleep = sleep
        self.workflow = DslrCapture(hw["dslr_output_dir"], kill_process=hw["dslr_kill_process"],
                                    keep_on_card=hw["dslr_keep_on_card"], gp_module=gp_module,
                                    proc_root=proc_root, kill=kill)
        self._exposure_us = int(config["camera"]["shutter_us"])
        self._gain = float(config["camera"]["analog_gain"])
        self._shutter_choices: dict[str, int] = {}
        self._iso_choices: dict[str, int] = {}
        self._open = False
        self.event_listeners: list[EventListener] = []
        self.last_outcome: DslrOutcome | None = None

    def _report(self, outcome: DslrOutcome) -> None:
        self.last_outcome = outcome
        for listener in list(self.event_listeners):
            try:
                listener("dslr_capture", **outcome.event_fields())
            except Exception:
                pass

    def _read_choices(self, camera: Any) -> None:
        gp = self.workflow.gp
        config = camera.get_config()
        for name, store, parse in (("shutterspeed", self._shutter_choices, parse_shutter),
                                   ("iso", self._iso_choices, lambda s: int(s) if s.strip().isdigit() else None)):
            try:
                widget = config.get_child_by_name(name)
            except gp.GPhoto2Error:
                continue  # this camera has no such setting: the value stays as set on the camera
            for choice in _choices(widget):
                value = parse(choice)
                if value:
                    store[choice] = value

    def open(self) -> None:
        if self._gp is None:
            self.workflow._gp = _import_gphoto2()
        outcome = self.workflow.detect(self._read_choices)
        if not outcome.ok:
            self._report(outcome)
            raise DriverUnavailable(f"gphoto2: {outcome.message}")
        self._open = True

    def close(self) -> None:
        self._open = False

    @property
    def limits(self) -> CameraLimits:
        shutters = sorted(self._shutter_choices.values()) or [1, 30_000_000]
        isos = sorted(self._iso_choices.values()) or [100]
        return CameraLimits(min_shutter_us=shutters[0], max_shutter_us=shutters[-1], min_gain=isos[0] / 100,
                            max_gain=isos[-1] / 100, shape=self._shape, max_dn=1023)

    @staticmethod
    def _nearest(choices: dict[str, int], value: float) -> tuple[str | None, float]:
        if not choices:
            return None, value
        key = min(choices, key=lambda k: (abs(choices[k] - value), choices[k]))
        return key, choices[key]

    def set_exposure(self, shutter_us: int) -> int:
        _, value = self._nearest(self._shutter_choices, int(shutter_us))
        self._exposure_us = int(value)
        return self._exposure_us

    def set_gain(self, gain: float) -> float:
        _, iso = self._nearest(self._iso_choices, float(gain) * 100)
        self._gain = float(iso) / 100
        return self._gain

    def _configure(self, camera: Any) -> None:
        wanted = {"shutterspeed": self._nearest(self._shutter_choices, self._exposure_us)[0],
                  "iso": self._nearest(self._iso_choices, self._gain * 100)[0]}
        wanted = {k: v for k, v in wanted.items() if v is not None}
        if not wanted:
            return
        config = camera.get_config()
        for name, choice in wanted.items():
            config.get_child_by_name(name).set_value(choice)
        camera.set_config(config)

    def capture(self, when: dt.datetime) -> CameraFrame:
        if not self._open:
            raise DriverError("gphoto2: camera is not open")
        wait_until(when, self._clock, self._sleep)
        outcome = self.workflow.run(when, BAND_TO_FILTER[self.band], self._configure)
        self._report(outcome)
        if not outcome.ok:
            raise DriverError(f"gphoto2: {outcome.message} (code {outcome.code})")
        pixels = self._decode(outcome.files)
        return CameraFrame(pixels=pixels, time=utc_seconds(when), exposure_us=self._exposure_us,
                           gain=self._gain, band=self.band)

    def _decode(self, files: Iterable[Path]) -> np.ndarray:
        import cv2

        jpegs = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
        if not jpegs:
            raise DriverError("gphoto2: the camera delivered no JPEG (set it to RAW+JPEG or JPEG); files kept: "
                              + ", ".join(p.name for p in files))
        grey = cv2.imread(str(jpegs[-1]), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise DriverError(f"gphoto2: {jpegs[-1]} is not a readable JPEG (kept on disk)")
        rows, cols = self._shape
        small = cv2.resize(grey, (cols, rows), interpolation=cv2.INTER_AREA)
        return np.rint(small.astype(np.float32) * (1023.0 / 255.0)).astype(np.uint16)
