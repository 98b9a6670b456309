"""``pycam config-server``: serve the working config directory over authenticated FTP.

The FTP server runs alone (its own systemd unit); the device service that owns the camera or
spectrometer watches the config file in that directory, reloads it and takes a test photo.
On the first run an FTP password is generated and saved in the station config.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from pycam.config import ConfigError, load_config
from pycam.station.ftp_config import ConfigServer, ConfigServerError, ensure_password, passive_ports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station configuration file (TOML)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="directory to serve (default: [usb_config] work_dir of the config)")
    parser.add_argument("--host", default=None, help="address to listen on (default: [config_server] bind_host)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: [config_server] port)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level (default INFO)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        password, generated = ensure_password(args.config)
        config = load_config(args.config)
        cs = config["config_server"]
        directory = args.dir or config["usb_config"]["work_dir"]
        server = ConfigServer(directory, user=cs["user"], password=password, host=args.host or cs["bind_host"],
                              port=args.port if args.port is not None else cs["port"],
                              on_upload=lambda path: logging.info("config server: received %s", path),
                              passive_ports=passive_ports(config))
        server.start()
    except (ConfigError, ConfigServerError) as exc:
        print(f"pycam config-server: {exc}", file=sys.stderr)
        return 1
    if generated:
        print(f"pycam config-server: generated FTP password for user {cs['user']!r} and saved it in "
              f"{args.config} ([config_server] password)", file=sys.stderr)
    host, port = server.address
    print(f"pycam config-server: ftp://{host}:{port}/ serving {directory}", file=sys.stderr, flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0
