"""The one builder of station configs for tests: free loopback ports, a fresh secret, every
writable directory under the config file's folder; callers override any key by section."""
from __future__ import annotations

from pathlib import Path

from helpers.net import free_ports


def write_station_toml(path: Path, overrides: dict | None = None, *, secret: str | None = None) -> Path:
    """Write a valid station TOML at ``path``; ``overrides`` ({section: {key: value}}) replace
    the defaults key by key. Data, spool, USB-config, work and DSLR folders live beside ``path``."""
    from pycam.config import generate_secret, render_config

    path = Path(path)
    root = path.parent
    device_port, client_port = free_ports(2)
    values = {
        "network": {"device_port": device_port, "client_port": client_port, "reconnect_max_s": 1.0},
        "storage": {"data_dir": str(root / "data"), "spool_dir": str(root / "spool")},
        "usb_config": {"usb_file": str(root / "usb" / "pycam_config.json"), "work_dir": str(root / "work")},
        "hardware": {"dslr_output_dir": str(root / "dslr")},
    }
    for section, extra in (overrides or {}).items():
        values.setdefault(section, {}).update(extra)
    path.write_text(render_config(values, secret=secret or generate_secret()))
    return path


def station_test_config(path: Path, overrides: dict | None = None, *, secret: str | None = None):
    """``write_station_toml`` loaded and validated: the ``Config`` the services take."""
    from pycam.config import load_config

    return load_config(write_station_toml(path, overrides, secret=secret))
