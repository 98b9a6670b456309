"""Process plumbing shared by the station commands: config loading with a clear message,
logging, signal handling, driver lookup and the demo's well-known config location."""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from pycam.config import Config, ConfigError, load_config
from pycam.drivers.base import DriverUnavailable

DEMO_CONFIG_ENV = "PYCAM_DEMO_CONFIG"


def demo_config_path() -> Path:
    """Where ``pycam demo`` writes its configuration and ``pycam send`` looks for it:
    ``$PYCAM_DEMO_CONFIG``, else ``$XDG_RUNTIME_DIR/pycam/demo.toml``, else
    ``~/.cache/pycam/demo.toml``."""
    explicit = os.environ.get(DEMO_CONFIG_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "pycam" / "demo.toml"
    return Path.home() / ".cache" / "pycam" / "demo.toml"


def load_or_exit(path: Path, prog: str) -> Config:
    """Load the config or print the problem (naming the key) and exit with status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{prog}: bad configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def on_termination(callback: Callable[[], None]) -> None:
    """Run ``callback`` (in a new thread) on SIGTERM, SIGINT or SIGHUP (a closed terminal);
    a second signal is ignored."""
    fired = threading.Event()

    def handler(signum, frame) -> None:
        if fired.is_set():
            return
        fired.set()
        threading.Thread(target=callback, name="shutdown", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def resolve_driver(kind: str, name: str):
    """A driver class by registry name (``sim``, ``picamera2``…) or ``module:Class``."""
    from pycam.drivers import registry

    if ":" in name:
        module, _, cls = name.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            raise DriverUnavailable(f"{kind} driver {name!r} not available: {exc}") from None
    if kind == "camera":
        return registry.camera_driver_class(name)
    return registry.spectrometer_driver_class(name)
