"""Fixtures for GUI tests: a Tk root under Xvfb (pytest-xvfb) and helpers to drive it."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pump_until(root, predicate, timeout: float = 20.0, step: float = 0.01) -> bool:
    """Run the Tk event loop until ``predicate()`` is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root.update()
        if predicate():
            return True
        time.sleep(step)
    root.update()
    return bool(predicate())


def pump_for(root, seconds: float) -> None:
    pump_until(root, lambda: False, timeout=seconds)


def screenshot(root, path: Path) -> np.ndarray:
    """Grab the whole Xvfb screen with ImageMagick's ``import``; returns the pixels (H, W, 3)."""
    import cv2

    root.update()
    subprocess.run(["import", "-window", "root", str(path)], check=True, timeout=30)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"screenshot {path} unreadable"
    return image


def assert_not_blank(image: np.ndarray, what: str) -> None:
    """A blank view is one flat colour; a real one has many colours and contrast."""
    colours = len(np.unique(image.reshape(-1, 3)[::7], axis=0))
    assert float(image.std()) > 15.0, f"{what}: screenshot looks blank (std {image.std():.1f})"
    assert colours > 50, f"{what}: screenshot has only {colours} colours"


def data_xy_to_widget(blit_canvas, ax, x: float, y: float) -> tuple[int, int]:
    """Tk widget pixel coordinates of data point (x, y) in ``ax``."""
    disp_x, disp_y = ax.transData.transform((x, y))
    ratio = getattr(blit_canvas.canvas, "device_pixel_ratio", 1) or 1
    height = blit_canvas.figure.bbox.height
    return int(round(disp_x / ratio)), int(round((height - disp_y) / ratio))


def drag(root, blit_canvas, ax, start, end, steps: int = 6, button: int = 1) -> None:
    widget = blit_canvas.widget
    x0, y0 = data_xy_to_widget(blit_canvas, ax, *start)
    x1, y1 = data_xy_to_widget(blit_canvas, ax, *end)
    widget.event_generate("<Motion>", x=x0, y=y0, warp=False)
    widget.event_generate(f"<ButtonPress-{button}>", x=x0, y=y0)
    root.update()
    for i in range(1, steps + 1):
        widget.event_generate("<Motion>", x=x0 + (x1 - x0) * i // steps, y=y0 + (y1 - y0) * i // steps)
        root.update()
    widget.event_generate(f"<ButtonRelease-{button}>", x=x1, y=y1)
    root.update()


@pytest.fixture(scope="session", autouse=True)
def laptop_display():
    """A 1366x768x24 Xvfb display for the GUI tests (pytest-xvfb's default is 800x600x16,
    too small to check the layout users get).  Without Xvfb, the display pytest-xvfb or the
    user provides is used."""
    import os
    import shutil

    if shutil.which("Xvfb") is None:
        yield os.environ.get("DISPLAY")
        return
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1366x768x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start")
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield os.environ["DISPLAY"]
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def tk_root():
    import tkinter as tk

    root = tk.Tk()
    root.geometry("1366x768+0+0")
    yield root
    try:
        root.destroy()
    except tk.TclError:
        pass


@pytest.fixture
def standin_app(tk_root, tmp_path):
    """The whole GUI on the protocol-speaking stand-in client and camera chain."""
    from standins import FakeProcessor, FakeStationClient

    from pycam.config import generate_secret, validate
    from pycam.gui.app import PyCamApp
    from pycam.gui.views import ProcessorAdapter

    config = validate({"network": {"secret": generate_secret()}}, tmp_path / "station.toml")
    application = PyCamApp(tk_root, config, client_factory=FakeStationClient,
                           processor_factory=lambda **kw: ProcessorAdapter(FakeProcessor(**kw)),
                           state_dir=tmp_path / "gui-state")
    assert pump_until(tk_root, lambda: application.ready and application.link.state == "connected", 30)
    yield application
    application.close()
