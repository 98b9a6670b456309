"""Write files so that they appear whole or not at all.

Data is written to a hidden temporary name in the destination directory
(``.<name>.part-<random>``), flushed and fsynced, then renamed over the final name and the
directory entry fsynced.  Readers that list a directory must skip names starting with ``.``
(``is_temporary_name``).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable, BinaryIO

TEMP_MARKER = ".part-"


def is_temporary_name(name: str) -> bool:
    """True for the temporary names used while a file is being written (and PyCam ``.lock`` files)."""
    return name.startswith(".") or name.endswith(".lock")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], writer: Callable[[BinaryIO], None], *, fsync: bool = True,
                 replace: bool = True) -> Path:
    """Call ``writer(fileobj)`` on a temporary file, then rename it to ``path``.

    On any error the temporary file is removed and the exception propagates; an existing
    file at ``path`` is left untouched.  With ``replace=False`` an existing ``path`` is never
    replaced, even by a concurrent writer (hard link, then unlink of the temporary): raises
    FileExistsError.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}{TEMP_MARKER}{secrets.token_hex(4)}"
    try:
        with open(tmp, "xb") as fh:
            writer(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, final)
        else:
            os.link(tmp, final)   # atomic and fails if the name exists
            tmp.unlink()
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    if fsync:
        _fsync_dir(final.parent)
    return final


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, fsync: bool = True,
                       replace: bool = True) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), fsync=fsync, replace=replace)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


class atomic_path:
    """``with atomic_path(final) as tmp:`` write a file at ``tmp`` by name (for libraries that
    only take a path, e.g. netCDF); on success it is fsynced and renamed to ``final``, on error
    removed.  ``replace=False`` refuses to replace an existing ``final`` (FileExistsError)."""

    def __init__(self, path: str | os.PathLike[str], *, replace: bool = True, fsync: bool = True) -> None:
        self.final = Path(path)
        self.replace = replace
        self.fsync = fsync
        self.tmp = self.final.parent / f".{self.final.name}{TEMP_MARKER}{secrets.token_hex(4)}"

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if not self.replace and self.final.exists():
            raise FileExistsError(f"{self.final} exists (not replaced)")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            _remove_tree_or_file(self.tmp)
            return
        if self.fsync and self.tmp.is_file():
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if not self.replace and self.final.exists():
            _remove_tree_or_file(self.tmp)
            raise FileExistsError(f"{self.final} appeared while writing (not replaced)")
        os.replace(self.tmp, self.final)
        if self.fsync:
            _fsync_dir(self.final.parent)


def _remove_tree_or_file(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
