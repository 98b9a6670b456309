#!/usr/bin/env python3
"""Start the PyCam GUI: ``python pycam_gui.py --config FILE`` (same as ``pycam gui``)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from pycam.cli.main import main as pycam_main

    return pycam_main(["gui", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
