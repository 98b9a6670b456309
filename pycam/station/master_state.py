"""What the master must remember across a restart: whether the station was acquiring.

A master that crashed or was restarted in the middle of acquisition used to come back
idle, with its watchdog off, while the devices went on capturing.  The flag lives in
``<spool_dir>/master_state.json`` (written atomically on every change); a file that cannot
be read counts as "not acquiring" and is reported.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from pycam.formats.atomic import atomic_write_text

log = logging.getLogger(__name__)

STATE_FILE = "master_state.json"


class MasterState:
    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.path = Path(directory) / STATE_FILE
        self.fsync = fsync

    def load_acquiring(self) -> bool:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read the master's saved state (%s); starting idle", self.path, exc)
            return False
        return data.get("acquiring") is True if isinstance(data, dict) else False

    def save_acquiring(self, acquiring: bool) -> None:
        try:
            atomic_write_text(self.path, json.dumps({"acquiring": bool(acquiring)}) + "\n", fsync=self.fsync)
        except OSError as exc:
            log.warning("%s: cannot save the master's state: %s", self.path, exc)
