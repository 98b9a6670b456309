"""``pycam init-config FILE``: write a complete station configuration with a fresh secret."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pycam.config import ConfigError, generate_secret, load_config, render_config
from pycam.formats.atomic import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="configuration file to create (TOML)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file (a new secret!)")
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
    text = render_config(overrides, secret=generate_secret())
    atomic_write_text(args.file, text)
    os.chmod(args.file, 0o600)  # it holds the shared secret
    try:
        load_config(args.file)
    except ConfigError as exc:
        print(f"pycam init-config: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.file} (mode 600, new shared secret)")
    return 0
