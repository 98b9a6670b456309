"""Process supervision: children that die with their parent, and a demo's state on disk.

* A process started by the launcher finds its parent's pid in ``$PYCAM_SUPERVISOR_PID``;
  :func:`apply_from_environment` (called first thing by ``pycam``) then asks Linux to send it
  SIGTERM when that parent dies (``prctl(PR_SET_PDEATHSIG)`` through ctypes), and checks the
  parent is still there (it may have died before the prctl).  A thread watching
  ``getppid()`` does the same where prctl is missing.  So a ``pycam demo`` killed with
  SIGKILL leaves no service behind: each gets SIGTERM and stops as it would on Ctrl-C.
  (Linux sends the signal when the *thread* that started the child ends: start children from
  the main thread, as the launcher's users do.)
* :class:`DemoState` is ``<demo config>.state.json``: the demo's pid and its children's.  The
  next ``pycam demo`` reads it: a live demo means "already running"; a dead one is stale
  state, cleared (leftover children ended, the stale configuration removed) with a message.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from pycam.formats.atomic import atomic_write_text

log = logging.getLogger(__name__)

PARENT_ENV = "PYCAM_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 1.0


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> bool:
    """Get ``sig`` when ``parent_pid`` (our parent) ends.  Returns True if the kernel does it
    (prctl); a watcher thread covers the other cases either way."""
    kernel = _prctl_pdeathsig(sig)
    if os.getppid() != parent_pid:     # the parent died before the prctl took effect
        os.kill(os.getpid(), sig)
        return kernel

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return kernel


def apply_from_environment() -> None:
    """``die_with_parent`` when started by a supervisor (``$PYCAM_SUPERVISOR_PID``)."""
    value = os.environ.pop(PARENT_ENV, "")
    if value.isdigit():
        die_with_parent(int(value))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _zombie(pid) is False


def _zombie(pid: int) -> bool | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0] == "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def end_process(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s (for a process that is not our child)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class DemoState:
    """``<config>.state.json``: {"pid": demo, "children": {name: pid}, "config": path}."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = Path(config_path)
        self.path = self.config_path.with_name(self.config_path.name + ".state.json")

    def write(self, children: dict[str, int]) -> None:
        atomic_write_text(self.path, json.dumps({"pid": os.getpid(), "children": children,
                                                 "config": str(self.config_path)}) + "\n")

    def read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def running_pid(self) -> int | None:
        """The pid of the demo that owns this state, if it still runs."""
        data = self.read() or {}
        pid = data.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid) and "demo" in cmdline(pid):
            return pid
        return None

    def clear_stale(self) -> list[str]:
        """Clear the state of a demo that is gone: end its leftover children (only processes
        whose command line names this configuration) and remove its configuration and state.
        Returns what was done, one line each ([] when there was nothing stale)."""
        data = self.read()
        done = []
        if data is None and not self.config_path.exists():
            return done
        for name, pid in sorted((data or {}).get("children", {}).items()):
            if isinstance(pid, int) and pid_alive(pid) and str(self.config_path) in cmdline(pid):
                end_process(pid)
                done.append(f"ended leftover {name} (pid {pid})")
        if data is not None:
            done.append(f"removed stale demo state of pid {data.get('pid', '?')}")
        if self.config_path.exists():
            self.config_path.unlink(missing_ok=True)
            done.append(f"removed stale configuration {self.config_path}")
        self.remove()
        return done
