"""Helpers that drive Tk widgets in tests: pump the event loop, screenshots, mouse drags.

Test modules import these from here (``from gui_drive import ...``), never from ``conftest``:
every test folder has a ``conftest`` module and the name resolves to whichever was imported first.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np


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
