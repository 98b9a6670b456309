"""Kept for existing importers: the fast 16-bit PNG writer now lives in
:func:`pycam.formats.images.encode_png` (so every writer of PyCam images uses it)."""
from __future__ import annotations

from pycam.formats.images import encode_png as encode_png16

__all__ = ["encode_png16"]
