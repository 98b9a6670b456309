"""The station's health as Prometheus metrics (``[master] metrics_port``; 0, the default: off).

An observatory's Prometheus scrapes ``http://<master>:<metrics_port>/metrics`` and its Grafana
dashboards watch many stations.  The values are read from the master when scraped (a custom
collector; nothing is copied on a timer):

==========================================  ================================================
``pycam_master_acquiring``                  1 while the station acquires
``pycam_master_storage_full``               1 while the data disk refuses files
``pycam_master_files_stored_total``         files stored since the master started
``pycam_master_data_disk_free_bytes``       free space on the data disk
``pycam_device_connected{device}``          1 when the device is connected
``pycam_device_<field>{device}``            the device's last heartbeat (see events.Health):
                                            heartbeat_age_seconds, last_frame_age_seconds,
                                            spool_backlog_files, disk_free_bytes,
                                            cpu_temperature_celsius, uptime_seconds,
                                            clock_offset_seconds, clock_rtt_seconds, acquiring,
                                            frames_captured (absent where not measured)
==========================================  ================================================

Needs ``prometheus-client`` (pinned in requirements.txt); without it the master says so and
runs without metrics.
"""
from __future__ import annotations

import logging
import shutil
from typing import Any, Iterator

log = logging.getLogger(__name__)

#: heartbeat field -> (metric suffix, scale to base units, help)
DEVICE_FIELDS = {
    "heartbeat_age_s": ("heartbeat_age_seconds", 1.0, "seconds since the device's last heartbeat"),
    "last_frame_age_s": ("last_frame_age_seconds", 1.0, "age of the device's last continuous frame"),
    "spool_backlog": ("spool_backlog_files", 1.0, "files the device holds that the master has not confirmed"),
    "disk_free_mb": ("disk_free_bytes", 2.0**20, "free space on the device's spool disk"),
    "cpu_temp_c": ("cpu_temperature_celsius", 1.0, "CPU temperature of the device's computer"),
    "uptime_s": ("uptime_seconds", 1.0, "seconds since the device service started"),
    "clock_offset_ms": ("clock_offset_seconds", 1e-3, "master clock minus device clock (NTP-style probe)"),
    "clock_rtt_ms": ("clock_rtt_seconds", 1e-3, "round trip of the clock probe"),
    "acquiring": ("acquiring", 1.0, "1 while the device is in continuous capture"),
    "frames_captured": ("frames_captured", 1.0, "continuous frames captured since the service started"),
}


class StationCollector:
    """A prometheus_client collector reading ``master`` (pycam.station.master.Master)."""

    def __init__(self, master: Any) -> None:
        self.master = master

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        master = self.master
        yield GaugeMetricFamily("pycam_master_acquiring", "1 while the station acquires", value=int(master.acquiring))
        yield GaugeMetricFamily("pycam_master_storage_full", "1 while the data disk refuses files",
                                value=int(master.storage_state.full))
        yield CounterMetricFamily("pycam_master_files_stored", "files stored since the master started",
                                  value=master.files_stored)
        try:
            free = shutil.disk_usage(master.store.data_dir).free
        except OSError:
            free = None
        if free is not None:
            yield GaugeMetricFamily("pycam_master_data_disk_free_bytes", "free space on the data disk", value=free)
        connected = GaugeMetricFamily("pycam_device_connected", "1 when the device is connected", labels=["device"])
        for device in ("CM1", "CM2", "SPC"):
            connected.add_metric([device], int(device in master.connected_devices))
        yield connected
        snapshot = master.health.snapshot()
        for field, (suffix, scale, doc) in DEVICE_FIELDS.items():
            family = GaugeMetricFamily(f"pycam_device_{suffix}", doc, labels=["device"])
            for device, values in sorted(snapshot.items()):
                value = values.get(field)
                if isinstance(value, (int, float)):
                    family.add_metric([device], float(value) * scale)
            yield family


class MetricsServer:
    """Serves the collector on ``host:port`` (start/stop like the other housekeeping parts)."""

    def __init__(self, master: Any, port: int, host: str = "127.0.0.1") -> None:
        self.master, self.port, self.host = master, port, host
        self._server = None

    def start(self) -> "MetricsServer":
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            log.error("[master] metrics_port = %d but prometheus-client is not installed: no metrics", self.port)
            return self
        registry = CollectorRegistry()
        registry.register(StationCollector(self.master))
        self._server, _thread = start_http_server(self.port, addr=self.host, registry=registry)
        self.port = self._server.server_address[1]
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
