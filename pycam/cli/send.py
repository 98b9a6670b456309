"""``pycam send KEY=VALUE … [--to DEVICE]``: send commands, print the answers as JSON lines."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pycam.cli.runtime import demo_config_path, load_or_exit
from pycam.client import CommandFailed, NotConnected, StationClient
from pycam.protocol import commands as vocab
from pycam.protocol.errors import CommandValueError
from pycam.protocol.messages import Error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Send PyCam commands (e.g. SSA=1000, STC=1, TPA=Test, LOG=1) to the station and print each "
        "reply or error as one JSON line.  Exit status 1 if any command was refused.  Without --config "
        "the running demo's configuration is used: $PYCAM_DEMO_CONFIG, else "
        "$XDG_RUNTIME_DIR/pycam/demo.toml, else ~/.cache/pycam/demo.toml (written by `pycam demo`).")
    parser.add_argument("assignments", nargs="+", metavar="KEY=VALUE",
                        help="three-letter key and value, e.g. SSA=1000 (see pycam.protocol.commands)")
    parser.add_argument("--to", default=vocab.ALL, choices=vocab.ADDRESSES,
                        help="device: CM1 (camera A), CM2 (camera B), SPC (spectrometer), master, "
                             "or all (every device handling the key; default)")
    parser.add_argument("--config", type=Path, help="station configuration (default: the running demo's)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)")


def _print(obj: dict) -> None:
    print(json.dumps(obj, sort_keys=False), flush=True)


def run(args: argparse.Namespace) -> int:
    config_path = args.config or demo_config_path()
    if args.config is None and not config_path.exists():
        print(f"pycam send: no --config given and no running demo ({config_path} does not exist)", file=sys.stderr)
        return 2
    config = load_or_exit(config_path, "pycam send")
    commands = []
    for text in args.assignments:
        try:
            key, value = vocab.parse_assignment(text)
            vocab.route(key, args.to, vocab.DEVICES)
        except CommandValueError as exc:
            _print({"kind": "error", "key": exc.key, "reason": exc.reason, "device": args.to})
            return 1
        commands.append((key, value))
    client = StationClient(config, name="pycam-send")
    client.start()
    try:
        if not client.wait_connected(args.timeout):
            print(f"pycam send: cannot connect to the master at {client.host}:{client.port}"
                  + (f" ({client.last_error})" if client.last_error else ""), file=sys.stderr)
            return 2
        failed = False
        for key, value in commands:
            try:
                answer = client.request(args.to, key, value, timeout=args.timeout)
            except CommandFailed as exc:
                e = exc.error
                _print({"kind": "error", "device": e.device or args.to, "key": e.key, "reason": e.reason})
                failed = True
                continue
            except (TimeoutError, NotConnected) as exc:
                _print({"kind": "error", "device": args.to, "key": key, "reason": str(exc)})
                failed = True
                continue
            for reply in answer if isinstance(answer, list) else [answer]:
                if isinstance(reply, Error):
                    _print({"kind": "error", "device": reply.device, "key": reply.key, "reason": reply.reason})
                    failed = True
                else:
                    _print({"kind": "reply", "device": reply.device, "key": reply.key, "value": reply.value})
        return 1 if failed else 0
    finally:
        client.stop()
