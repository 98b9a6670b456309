"""``pycam init-config FILE``: write a complete station configuration with fresh per-role
secrets (``[network] secret`` for the GUI and scripts, ``[network] device_secret`` for the
cameras and the spectrometer); ``--gui-config`` also writes a copy without the device secret
for a GUI machine."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pycam.config import ConfigError, generate_secret, load_config, render_config
from pycam.formats.atomic import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="configuration file to create (TOML)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file (new secrets!)")
    parser.add_argument("--gui-config", type=Path,
                        help="also write this copy for a GUI/script machine: the same settings and client secret, "
                             "no device secret (so that machine cannot act as a camera)")
    parser.add_argument("--data-dir", help="[storage] data_dir (default ~/pycam_data)")
    parser.add_argument("--master-host", help="[network] master_host (default 127.0.0.1)")


def run(args: argparse.Namespace) -> int:
    if args.file.exists() and not args.force:
        print(f"pycam init-config: {args.file} exists; use --force to replace it", file=sys.stderr)
        return 1
    overrides: dict = {}
    if args.data_dir:
        overrides.setdefault("storage", {})["data_dir"] = args.data_dir
    if args.master_host:
        overrides.setdefault("network", {})["master_host"] = args.master_host
    if args.gui_config is not None and args.gui_config.exists() and not args.force:
        print(f"pycam init-config: {args.gui_config} exists; use --force to replace it", file=sys.stderr)
        return 1
    secret = generate_secret()
    overrides.setdefault("network", {})["device_secret"] = generate_secret()
    written = [(args.file, render_config(overrides, secret=secret))]
    if args.gui_config is not None:
        gui = {section: dict(values) for section, values in overrides.items()}
        gui.setdefault("network", {})["device_secret"] = ""
        written.append((args.gui_config, render_config(gui, secret=secret).replace(
            'device_secret = ""', 'device_secret = ""   # not on a GUI machine')))
    for path, text in written:
        atomic_write_text(path, text)
        os.chmod(path, 0o600)  # it holds secrets
        try:
            load_config(path)
        except ConfigError as exc:
            print(f"pycam init-config: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {args.file} (mode 600, new client and device secrets)")
    if args.gui_config is not None:
        print(f"wrote {args.gui_config} (mode 600, client secret only: for the GUI machine)")
    return 0
