"""Units of the ops modules: resend back-off, offline event spool, stale demo state, storage state."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pycam.protocol import events
from pycam.protocol.messages import Event
from pycam.station.offline_events import OfflineEvents
from pycam.station.resend import ResendBackoff
from pycam.station.storage_state import StorageState
from pycam.station.supervision import DemoState, cmdline, pid_alive


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_resend_backoff_doubles_per_pause_not_per_file_and_resets_on_success():
    clock = Clock()
    b = ResendBackoff(2.0, 60.0, clock=clock)
    assert b.wait_left() == 0 and not b.probing
    assert b.refused() == 2.0
    clock.t = 0.5
    assert b.refused() == pytest.approx(1.5)      # another file of the same window: same pause
    assert b.probing and b.refusals == 1
    pauses = []
    for _ in range(8):
        clock.t += b.wait_left()
        pauses.append(b.refused())
    assert pauses == [4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
    b.stored()
    assert b.wait_left() == 0 and not b.probing and b.refused() == 2.0
    with pytest.raises(ValueError):
        ResendBackoff(5.0, 1.0)


def test_offline_events_are_kept_in_order_bounded_and_survive_a_restart(tmp_path):
    spool = OfflineEvents(tmp_path / "CM1_events", limit=3, fsync=False)
    for i in range(5):
        spool.add(events.Status(level="info", message=f"e{i}").as_event("CM1", "t"))
    assert len(spool) == 3 and spool.dropped == 2
    again = OfflineEvents(tmp_path / "CM1_events", limit=3, fsync=False)   # the device restarted
    again.add(events.Status(level="info", message="e5").as_event("CM1", "t"))
    assert again.dropped == 1   # e2 made room for e5
    sent: list[Event] = []
    refuse_after = 2

    def send(ev: Event) -> bool:
        if len(sent) >= refuse_after:
            return False
        sent.append(ev)
        return True

    assert again.drain(send) == 2 and [e.fields["message"] for e in sent] == ["e3", "e4"]
    assert len(again) == 1   # not sent: kept for the next connection
    refuse_after = 10
    assert again.drain(send) == 1 and sent[-1].fields["message"] == "e5" and len(again) == 0
    (tmp_path / "CM1_events" / "000000000099.json").write_text("{not json")
    assert again.drain(send) == 0 and again.dropped == 2


def test_storage_state_reports_each_change_once():
    clock = Clock()
    published = []
    state = StorageState(published.append, summary_every_s=60, clock=clock)
    state.stored()
    for i in range(1000):
        clock.t = i * 0.1
        state.refused("disk full: 0 MB free")
    assert state.paused_reason() == "storage full: disk full: 0 MB free"
    clock.t = 120.0
    state.stored()
    state.stored()
    assert [e.state for e in published] == ["full", "ok"]
    assert published[1].refused == 1000 and published[1].duration_s == pytest.approx(120.0)
    assert state.paused_reason() is None


def _started(args: list[str]) -> subprocess.Popen:
    """Popen returns as soon as the child's exec begins; its /proc command line is empty for a
    moment after that (seen in about 4 % of starts), and the demo state reads that line."""
    proc = subprocess.Popen(args)
    deadline = time.monotonic() + 10
    while not cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def test_stale_demo_state_is_cleared_and_a_live_demo_is_not(tmp_path):
    config = tmp_path / "demo.toml"
    config.write_text("# demo config\n")
    leftover = _started([sys.executable, "-c", "import time; time.sleep(120)", str(config)])
    unrelated = _started([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        state = DemoState(config)
        state.path.write_text(json.dumps({"pid": dead.pid, "children": {"master": leftover.pid,
                                                                        "CM1": unrelated.pid}}))
        assert state.running_pid() is None
        done = state.clear_stale()
        assert any(f"ended leftover master (pid {leftover.pid})" in line for line in done), done
        leftover.wait(15)
        assert not pid_alive(leftover.pid)
        assert pid_alive(unrelated.pid), "a process that does not name the demo's config is never ended"
        assert not config.exists() and not state.path.exists()
        assert state.clear_stale() == []
        # a demo whose pid is alive and is a demo is "running"
        demo_like = _started([sys.executable, "-c", "import time; time.sleep(120)", "demo"])
        try:
            state.path.write_text(json.dumps({"pid": demo_like.pid, "children": {}}))
            assert state.running_pid() == demo_like.pid
        finally:
            demo_like.kill()
            demo_like.wait()
    finally:
        for proc in (leftover, unrelated):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
