"""`pycam demo` supervision with real processes: SIGKILL or SIGHUP of the demo leaves nothing
running, the next demo starts (clearing the stale state), and a crashed child makes the demo
exit non-zero."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pycam.station.supervision import DemoState, pid_alive

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process supervision test needs Linux"), pytest.mark.slow]


class Demo:
    def __init__(self, tmp_path: Path, config: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DISPLAY", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pycam", "demo", "--headless", "--config-file", str(config),
             "--data-dir", str(tmp_path / "data")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.state = DemoState(config)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output:\n{''.join(self.output)}")

    def children(self) -> dict[str, int]:
        data = json.loads(self.state.path.read_text())
        assert data["pid"] == self.proc.pid
        return data["children"]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def _wait_gone(pids: dict[str, int], timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [f"{name} (pid {pid})" for name, pid in pids.items() if pid_alive(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def test_sigkill_and_sighup_of_the_demo_leave_nothing_running_and_a_new_demo_starts(tmp_path):
    config = tmp_path / "demo.toml"
    first = Demo(tmp_path, config)
    try:
        first.wait_for_line("station up")
        children = first.children()
        assert set(children) == {"master", "CM1", "CM2", "SPC"}
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        assert _wait_gone(children) == [], "children outlived a SIGKILLed demo"
    finally:
        first.kill()
    assert config.exists(), "a SIGKILLed demo cannot clean up: stale state is what the next demo meets"

    second = Demo(tmp_path, config)
    try:
        second.wait_for_line("station up")
        assert any("stale" in line for line in second.output), second.output
        children = second.children()
        second.proc.send_signal(signal.SIGHUP)
        assert second.proc.wait(60) == 130, "".join(second.output)
        assert _wait_gone(children, 10) == []
        assert not config.exists() and not second.state.path.exists()
    finally:
        second.kill()


def test_a_crashed_child_is_reported_and_the_demo_exits_non_zero(tmp_path):
    config = tmp_path / "demo.toml"
    demo = Demo(tmp_path, config)
    try:
        demo.wait_for_line("station up")
        children = demo.children()
        os.kill(children["master"], signal.SIGKILL)
        code = demo.proc.wait(60)
        text = "".join(demo.output)
        assert code != 0, text
        assert "master crashed (killed by signal 9)" in text
        assert _wait_gone(children, 10) == []
    finally:
        demo.kill()
