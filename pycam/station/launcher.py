"""Start a whole simulated station on loopback as separate processes.

::

    with start_simulated_station("station.toml", data_dir="D", framerate=1.0) as station:
        client = station.client(name="gui")      # a started StationClient
        client.request("all", "STC", True)
        station.kill("CM1"); station.restart("CM1")   # for reliability tests
    # leaving the block stops everything cleanly (devices drain their spool first)

Processes are named ``master``, ``CM1``, ``CM2`` and ``SPC``; each runs
``python -m pycam masterpi|camera|spectrometer`` in its own session (so a Ctrl-C in the
terminal reaches only the parent, which then stops them in order) and gets SIGTERM if the
parent dies (pycam.station.supervision; call ``start_*`` from the main thread).  A process
that exits without being asked to is reported by ``unexpected_exits()``.  Their output goes to
``<log_dir>/<name>.log`` (by default a new temporary directory, removed again when every
process exited cleanly).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from pycam.client import NotConnected, StationClient
from pycam.config import generate_secret, load_config, render_config
from pycam.formats.atomic import atomic_write_text
from pycam.protocol import commands as vocab
from pycam.station.supervision import PARENT_ENV

PROCESS_NAMES = ("master", vocab.CAMERA_A, vocab.CAMERA_B, vocab.SPECTROMETER)


class StationError(RuntimeError):
    """The station did not come up (the message names the process and its log)."""


class StationProcesses:
    def __init__(self, config_path: Path, commands: dict[str, list[str]], env: Mapping[str, str],
                 log_dir: Path) -> None:
        self.config_path = Path(config_path)
        self.config = load_config(self.config_path)
        self.commands = commands
        self.env = dict(env)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self._asked_to_stop: set[str] = set()
        self._clients: list[StationClient] = []
        self.remove_logs_when_clean = False   # set for a log directory the launcher created

    # ------------------------------------------------------------------------- processes
    def start_process(self, name: str) -> subprocess.Popen:
        old = self.processes.get(name)
        if old is not None and old.poll() is None:
            raise StationError(f"{name} is already running (pid {old.pid})")
        log = open(self.log_dir / f"{name}.log", "ab")
        env = dict(self.env)
        env[PARENT_ENV] = str(os.getpid())   # the child ends when we do
        try:
            proc = subprocess.Popen(self.commands[name], stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self._asked_to_stop.discard(name)
        self.processes[name] = proc
        return proc

    def start_all(self) -> None:
        for name in self.commands:
            self.start_process(name)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def alive(self, name: str) -> bool:
        proc = self.processes.get(name)
        return proc is not None and proc.poll() is None

    def unexpected_exits(self) -> dict[str, int]:
        """Processes that exited without being asked (kill/terminate/stop): name -> status."""
        return {name: proc.returncode for name, proc in self.processes.items()
                if name not in self._asked_to_stop and proc.poll() is not None}

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def kill(self, name: str) -> None:
        """SIGKILL one process (no clean-up at all) and reap it."""
        self._asked_to_stop.add(name)
        proc = self.processes[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, name: str, timeout: float = 20.0) -> int | None:
        """SIGTERM one process and wait; SIGKILL if it does not exit within ``timeout``."""
        proc = self.processes.get(name)
        if proc is None:
            return None
        self._asked_to_stop.add(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return self._reap(name, timeout)

    def _reap(self, name: str, timeout: float) -> int | None:
        proc = self.processes[name]
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        return proc.returncode

    def restart(self, name: str) -> subprocess.Popen:
        """Start ``name`` again (after kill/terminate; kills it first if still running)."""
        if self.alive(name):
            self.kill(name)
        return self.start_process(name)

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        """Stop cleanly: devices first (each delivers its spool, for up to 5 s), then the master."""
        for client in self._clients:
            client.stop()
        self._clients.clear()
        codes = {}
        self._asked_to_stop.update(n for n, p in self.processes.items() if p.poll() is None)
        devices = [n for n in self.processes if n != "master"]
        for name in devices:
            proc = self.processes[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in devices:   # signalled once only: a second SIGTERM could hit interpreter shutdown
            codes[name] = self._reap(name, timeout)
        if "master" in self.processes:
            codes["master"] = self.terminate("master", timeout)
        if self.remove_logs_when_clean and all(c == 0 for c in codes.values()):
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return codes

    def __enter__(self) -> "StationProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------------------- clients
    def client(self, name: str = "launcher", **kwargs) -> StationClient:
        """A started StationClient for this station (stopped by ``stop()``)."""
        client = StationClient(self.config, name=name, **kwargs)
        client.start()
        self._clients.append(client)
        return client

    def wait_ready(self, timeout: float = 60.0, devices: tuple[str, ...] | None = None) -> None:
        """Wait until the master answers and ``devices`` (default: all started) are connected."""
        wanted = set(devices if devices is not None else [n for n in self.processes if n != "master"])
        client = StationClient(self.config, name="launcher-probe")
        client.start()
        deadline = time.monotonic() + timeout
        connected: set[str] = set()
        try:
            while time.monotonic() < deadline:
                for name, proc in self.processes.items():
                    if proc.poll() is not None:
                        raise StationError(f"{name} exited with status {proc.returncode}; see "
                                           f"{self.log_dir / (name + '.log')}:\n{self.log_tail(name)}")
                try:
                    reply = client.request(vocab.MASTER, "LOG", 0, timeout=2.0)
                    connected = set(reply.value.get("devices", []))
                    if wanted <= connected:
                        return
                except (NotConnected, TimeoutError):
                    pass
                time.sleep(0.2)
            raise StationError(f"station not ready after {timeout:g} s: connected {sorted(connected)}, "
                               f"waiting for {sorted(wanted - connected)} (logs in {self.log_dir})")
        finally:
            client.stop()

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def station_commands(config_path: Path, *, data_dir: Path | None = None, framerate: float | None = None,
                     camera_driver: str = "sim", spectrometer_driver: str = "sim",
                     python: str | None = None) -> dict[str, list[str]]:
    """The command line of each process of a station."""
    base = [python or sys.executable, "-m", "pycam"]
    cfg = ["--config", str(config_path)]
    rate = ["--framerate", repr(float(framerate))] if framerate is not None else []
    master = base + ["masterpi"] + cfg + (["--data-dir", str(data_dir)] if data_dir is not None else [])
    return {
        "master": master,
        vocab.CAMERA_A: base + ["camera", "--band", "on", "--driver", camera_driver] + cfg + rate,
        vocab.CAMERA_B: base + ["camera", "--band", "off", "--driver", camera_driver] + cfg + rate,
        vocab.SPECTROMETER: base + ["spectrometer", "--driver", spectrometer_driver] + cfg + rate,
    }


def start_simulated_station(config_path, data_dir=None, framerate=None, extra_env=None, *,
                            camera_driver: str = "sim", spectrometer_driver: str = "sim",
                            log_dir: Path | None = None, wait: bool = True,
                            ready_timeout: float = 60.0) -> StationProcesses:
    """Start master, CM1, CM2 and SPC as processes on loopback and wait until all are connected.

    ``data_dir`` overrides ``[storage] data_dir``; ``framerate`` (Hz) both devices' rates;
    ``extra_env`` is added to the processes' environment; the drivers default to the
    simulator (``module:Class`` names work too).  Raises StationError (naming the failing
    process and showing its log) if the station does not come up; nothing is left running.
    """
    config_path = Path(config_path)
    load_config(config_path)   # fail here, with the key named, rather than in four children
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if extra_env:
        env.update(extra_env)
    commands = station_commands(config_path, data_dir=Path(data_dir) if data_dir is not None else None,
                                framerate=framerate, camera_driver=camera_driver,
                                spectrometer_driver=spectrometer_driver)
    logs = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="pycam-station-logs-"))
    station = StationProcesses(config_path, commands, env, logs)
    station.remove_logs_when_clean = log_dir is None
    station.start_all()
    if wait:
        try:
            station.wait_ready(ready_timeout)
        except BaseException:
            station.stop(timeout=5)
            raise
    return station


def free_loopback_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago (all held open while
    they are chosen: one at a time, the system may hand out the same port twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def write_station_config(path: Path, *, data_dir: Path, spool_dir: Path, framerate: float | None = None,
                         overrides: Mapping[str, Mapping] | None = None) -> Path:
    """Write a loopback station config with a fresh secret and free ports (mode 600)."""
    device_port, client_port = free_loopback_ports(2)
    values: dict[str, dict] = {
        "network": {"master_host": "127.0.0.1", "bind_host": "127.0.0.1", "device_port": device_port,
                    "client_port": client_port, "reconnect_max_s": 2.0},
        "storage": {"data_dir": str(Path(data_dir).resolve()), "spool_dir": str(Path(spool_dir).resolve())},
    }
    if framerate is not None:
        values["camera"] = {"framerate": float(framerate)}
        values["spectrometer"] = {"framerate": float(framerate)}
    for section, fields in (overrides or {}).items():
        values.setdefault(section, {}).update(fields)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_config(values, secret=generate_secret()))
    os.chmod(path, 0o600)
    load_config(path)
    return path
