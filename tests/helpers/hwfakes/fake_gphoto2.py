"""A fake python-gphoto2 module: the real ``gphoto2`` constants, ``GPhoto2Error``, ``CameraFile``,
``CameraList`` and ``CameraFileInfo`` (all constructible without a camera) plus a fake ``Camera``
and widget tree standing in for a DSLR on USB.

Fake ``Camera`` calls, with python-gphoto2's names and argument forms: ``init()`` (no camera ->
``GPhoto2Error(GP_ERROR_MODEL_NOT_FOUND)``; a running process named ``World.holder_process`` ->
``GP_ERROR_IO_USB_CLAIM`` like gvfs holding the device), ``capture(GP_CAPTURE_IMAGE)`` -> an object
with ``folder`` and ``name`` (a CameraFilePath cannot be built outside libgphoto2),
``folder_list_files(folder)`` -> real ``CameraList``, ``file_get_info(folder, name)`` -> real
``CameraFileInfo`` (size and mtime), ``file_get(folder, name, GP_FILE_TYPE_NORMAL)`` -> real
``CameraFile``, ``file_delete(folder, name)``, ``get_config()`` / ``set_config(widget)`` (widgets:
``get_child_by_name`` raising ``GP_ERROR_BAD_PARAMETERS`` when missing, ``count_choices``,
``get_choice``, ``get_value``, ``set_value``), ``exit()``.
"""
from __future__ import annotations

import dataclasses
import os
import types
from pathlib import Path

import cv2
import gphoto2 as real_gp
import numpy as np

CARD_FOLDER = "/store_00020001/DCIM/100CANON"


@dataclasses.dataclass
class World:
    attached: bool = True
    holder_process: str = ""            # init fails while a process of this exact name runs
    capture_error: int | None = None    # e.g. real_gp.GP_ERROR for "no focus"
    shot_types: tuple[str, ...] = ("JPG",)
    fail_download: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> "io" | "short"
    fail_delete: bool = False
    card: dict[str, dict[str, tuple[bytes, int]]] = dataclasses.field(default_factory=dict)
    counter: int = 0
    config_values: dict[str, str] = dataclasses.field(default_factory=lambda: {"shutterspeed": "1/100",
                                                                                 "iso": "100"})
    inits: int = 0
    deleted: list[str] = dataclasses.field(default_factory=list)


def jpeg_bytes(seed: int) -> bytes:
    rows, cols = 972, 1296
    img = (np.linspace(40, 220, cols)[None, :] + np.linspace(0, 20, rows)[:, None] + seed % 7).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def _process_running(name: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode()
            except OSError:
                continue
            if argv0 and os.path.basename(argv0) == name:
                return True
    return False


class Widget:
    def __init__(self, name: str, value: str | None = None, choices: list[str] | None = None) -> None:
        self._name, self._value, self._choices, self._children = name, value, list(choices or []), []

    def get_name(self) -> str:
        return self._name

    def get_child_by_name(self, name: str) -> "Widget":
        for child in self._children:
            if child._name == name:
                return child
        raise real_gp.GPhoto2Error(real_gp.GP_ERROR_BAD_PARAMETERS)

    def count_choices(self) -> int:
        return len(self._choices)

    def get_choice(self, index: int) -> str:
        if not 0 <= index < len(self._choices):
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_BAD_PARAMETERS)
        return self._choices[index]

    def get_value(self):
        return self._value

    def set_value(self, value) -> None:
        self._value = value


class _Shot:
    def __init__(self, folder: str, name: str) -> None:
        self.folder, self.name = folder, name


class Camera:
    def __init__(self, world: World) -> None:
        self._world = world
        self._ready = False

    def init(self, context=None) -> None:
        w = self._world
        if not w.attached:
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_MODEL_NOT_FOUND)
        if w.holder_process and _process_running(w.holder_process):
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_IO_USB_CLAIM)
        w.inits += 1
        self._ready = True

    def exit(self, context=None) -> None:
        self._ready = False

    def _need(self) -> None:
        if not self._ready:
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_IO)

    def get_config(self, context=None) -> Widget:
        self._need()
        root = Widget("main")
        root._children = [
            Widget("shutterspeed", self._world.config_values["shutterspeed"],
                   ["bulb", "30", "15", "2", "1", "1/2", "1/10", "1/100", "1/1000", "1/4000"]),
            Widget("iso", self._world.config_values["iso"], ["Auto", "100", "200", "400", "800", "1600"]),
        ]
        return root

    def set_config(self, window: Widget, context=None) -> None:
        self._need()
        for child in window._children:
            if child._choices and child._value not in child._choices:
                raise real_gp.GPhoto2Error(real_gp.GP_ERROR_BAD_PARAMETERS)
            self._world.config_values[child._name] = child._value

    def capture(self, type, context=None) -> _Shot:
        self._need()
        w = self._world
        if type != real_gp.GP_CAPTURE_IMAGE:
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_NOT_SUPPORTED)
        if w.capture_error is not None:
            raise real_gp.GPhoto2Error(w.capture_error)
        w.counter += 1
        folder = w.card.setdefault(CARD_FOLDER, {})
        names = []
        for ext in w.shot_types:
            name = f"IMG_{w.counter:04d}.{ext}"
            data = jpeg_bytes(w.counter) if ext == "JPG" else os.urandom(4096)
            folder[name] = (data, 1714564800 + w.counter)
            names.append(name)
        return _Shot(CARD_FOLDER, names[-1])

    def folder_list_files(self, folder: str, context=None):
        self._need()
        if folder not in self._world.card:
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_DIRECTORY_NOT_FOUND)
        listing = real_gp.CameraList()
        for name in sorted(self._world.card[folder]):
            listing.append(name, None)
        return listing

    def _file(self, folder: str, name: str) -> tuple[bytes, int]:
        try:
            return self._world.card[folder][name]
        except KeyError:
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_FILE_NOT_FOUND) from None

    def file_get_info(self, folder: str, name: str, context=None):
        self._need()
        data, mtime = self._file(folder, name)
        info = real_gp.CameraFileInfo()
        info.file.size = len(data)
        info.file.mtime = mtime
        info.file.fields = real_gp.GP_FILE_INFO_SIZE | real_gp.GP_FILE_INFO_MTIME
        return info

    def file_get(self, folder: str, name: str, type, context=None):
        self._need()
        data, _ = self._file(folder, name)
        failure = self._world.fail_download.get(name)
        if failure == "io":
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_IO_READ)
        if failure == "short":
            data = data[: len(data) // 2]  # the transfer stopped halfway
        camera_file = real_gp.CameraFile()
        camera_file.set_data_and_size(data)
        return camera_file

    def file_delete(self, folder: str, name: str, context=None) -> None:
        self._need()
        self._file(folder, name)
        if self._world.fail_delete:
            raise real_gp.GPhoto2Error(real_gp.GP_ERROR_CAMERA_BUSY)
        del self._world.card[folder][name]
        self._world.deleted.append(name)


def module(world: World) -> types.ModuleType:
    """A ``gphoto2``-shaped module whose ``Camera()`` is the fake DSLR in ``world``."""
    fake = types.ModuleType("gphoto2")
    for name in dir(real_gp):
        if name.startswith("GP_"):
            setattr(fake, name, getattr(real_gp, name))
    fake.GPhoto2Error = real_gp.GPhoto2Error
    fake.CameraFile = real_gp.CameraFile
    fake.CameraList = real_gp.CameraList
    fake.CameraFileInfo = real_gp.CameraFileInfo
    fake.Camera = lambda: Camera(world)
    fake.world = world
    return fake
