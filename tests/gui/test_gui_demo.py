"""``pycam demo`` with the GUI under Xvfb: live A/B images, a spectrum with its fit, an SO2
image and a growing emission-rate series (within 60 s of start; the calibrated ones once the
live DOAS calibration is confirmed); Ctrl-C closes everything."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import pytest

from gui_drive import assert_not_blank
from helpers.processes import sigint_default

pytestmark = [pytest.mark.gui, pytest.mark.slow]

MILESTONES = ("live A/B images shown", "spectrum with its DOAS fit shown", "calibrated SO2 image shown",
              "emission-rate series started")
CALIBRATED = ("calibrated SO2 image shown", "emission-rate series started")


@pytest.mark.timeout(420)
def test_pycam_demo_shows_everything_within_60_s(tmp_path, artifacts_dir, xvfb):
    env = dict(os.environ, PYCAM_DEMO_CONFIG=str(tmp_path / "demo.toml"),
               PYCAM_GUI_STATE_DIR=str(tmp_path / "gui-state"), PYTHONUNBUFFERED="1")
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pycam", "demo", "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=sigint_default)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = start + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if all(any(m in text for _t, text in lines) for m in MILESTONES):
                break
            time.sleep(0.5)
        output = "\n".join(text for _t, text in lines)
        for milestone in MILESTONES:
            when = next((t for t, text in lines if milestone in text), None)
            assert when is not None, f"never: {milestone}\n{output}"
            # the live DOAS calibration is adopted only once a second FOV search confirms the first
            # (pycam/processing/live_calibration.py): 75-120 one-second samples on the demo scene
            limit = 170.0 if milestone in CALIBRATED else 60.0
            assert when <= limit, f"{milestone} after {when:.1f} s\n{output}"
        time.sleep(3)  # a few more points in the series
        shot_path = artifacts_dir / "gui_demo_overview.png"
        subprocess.run(["import", "-window", "root", str(shot_path)], check=True, timeout=30)
        assert_not_blank(cv2.imread(str(shot_path)), "pycam demo")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(5)
    output = "\n".join(text for _t, text in lines)
    assert code in (0, 130), output
    assert "demo: stopping" in output
