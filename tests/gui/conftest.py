"""Fixtures for GUI tests: a Tk root under Xvfb.

pytest-xvfb starts the virtual display, 1366x768x24 (the smallest laptop layout we support;
set in pyproject.toml); the helpers that drive widgets are in ``gui_drive``."""
from __future__ import annotations

import gc

import pytest
from gui_drive import pump_until


@pytest.fixture(autouse=True)
def _collect_tk_garbage_on_the_main_thread():
    """After each GUI test, free its Tk objects here: left to the cyclic collector they may be
    freed on whatever thread allocates next (a render or link thread of the next test), where
    Tk refuses ("main thread is not in main loop"), and freeing a whole interpreter off the
    main thread aborts the process."""
    yield
    gc.collect()


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
