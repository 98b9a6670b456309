"""Helpers shared by the station tests: in-process stations and waiting without sleeping blindly."""
from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from fake_drivers import FakeCamera, FakeSpectrometer
from helpers.waiting import wait_for

from pycam.config import load_config
from pycam.net.connection import Connection
from pycam.station.camera_service import CameraService
from pycam.client import StationClient
from pycam.station.master import Master
from pycam.station.spectrometer_service import SpectrometerService

TESTS_DIR = Path(__file__).resolve().parent


def stored_files(data_dir: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in Path(data_dir).rglob(pattern) if p.is_file())


def temporaries(directory: Path) -> list[Path]:
    return [p for p in Path(directory).rglob("*") if p.name.startswith(".") or p.name.endswith(".lock")]


class InProcessStation:
    """Master + CM1 + CM2 + SPC in this process with the fake drivers."""

    def __init__(self, config_path: Path, devices=("CM1", "CM2", "SPC"), start_master: bool = True) -> None:
        self.config = load_config(config_path)
        self.data_dir = Path(self.config["storage"]["data_dir"])
        self.spool_dir = Path(self.config["storage"]["spool_dir"])
        self.master = Master(self.config, fsync=False)
        self.services = {}
        self.clients: list[StationClient] = []
        if start_master:
            self.master.start()
        for device in devices:
            self.services[device] = self.make_service(device)
            self.services[device].start()

    def make_service(self, device: str):
        if device == "SPC":
            return SpectrometerService(self.config, FakeSpectrometer(self.config))
        band = "on" if device == "CM1" else "off"
        return CameraService(self.config, band, FakeCamera(self.config, band))

    def client(self, **kwargs) -> StationClient:
        client = StationClient(self.config, name=kwargs.pop("name", "test"), **kwargs)
        client.start()
        self.clients.append(client)
        assert client.wait_connected(10), client.last_error
        return client

    def wait_devices(self, devices=("CM1", "CM2", "SPC")) -> None:
        wait_for(lambda: set(devices) <= set(self.master.connected_devices), what=f"devices {devices}")

    def close(self) -> None:
        for client in self.clients:
            client.stop()
        for service in self.services.values():
            service.stop(drain_timeout=2.0)
        self.master.stop()


@contextlib.contextmanager
def raw_connection(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = Connection(sock)
    try:
        yield conn
    finally:
        conn.close()
