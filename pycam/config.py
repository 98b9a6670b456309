"""The station configuration: one TOML file holds addresses, ports, paths and settings.

Every key is declared here with its type and range; ``load_config`` validates the whole
file and raises :class:`ConfigError` naming the section, key and the reason.  Nothing is
read at import time.

Sections own their keys: add a key by adding a :class:`Field` to its section in
``SCHEMA``.  Paths are expanded (``~``) and, when relative, resolved against the
directory of the config file.
"""
from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping

#: Length of a generated shared secret in bytes (hex-encoded in the file: 64 chars).
SECRET_BYTES = 32
#: Placeholder shipped in ``conf/`` examples; a config still holding it refuses to start.
SECRET_PLACEHOLDER = "CHANGE-ME-run-pycam-init-config"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or holds a bad value."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One configuration key: its type, default and allowed range."""

    kind: type  # int, float, bool, str, Path, list
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False
    check: Callable[[Any], str | None] | None = None  # returns an error message or None
    doc: str = ""


def _secret_check(value: str) -> str | None:
    if value == "" or value == SECRET_PLACEHOLDER:
        return "no shared secret set: run `pycam init-config FILE` to generate one"
    if len(value) < 32:
        return "shared secret too short (need at least 32 characters)"
    return None


def _device_secret_check(value: str) -> str | None:
    if value == "":
        return None   # a GUI-only configuration; the master and the devices refuse to start without it
    return _secret_check(value)


def _host_check(value: str) -> str | None:
    if not value or any(c.isspace() for c in value):
        return "must be a host name or IP address"
    return None


def _clock_check(value: str) -> str | None:
    """``HH:MM`` on a 24-hour clock (UTC)."""
    parts = value.split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
        return f"{value!r} is not a time of day: expected HH:MM (UTC), e.g. 00:30"
    hours, minutes = int(parts[0]), int(parts[1])
    if hours > 23 or minutes > 59:
        return f"{value!r} is not a time of day: hours 00-23, minutes 00-59"
    return None


def _ftp_password_check(value: str) -> str | None:
    if value == "":
        return None  # generated and saved on the first run of `pycam config-server`
    if len(value) < 12:
        return "FTP password too short (need at least 12 characters; leave empty to generate one)"
    if any(c.isspace() for c in value):
        return "FTP password must not contain spaces"
    return None


def _user_check(value: str) -> str | None:
    if not value or not value.isascii() or not all(c.isalnum() or c in "._-" for c in value):
        return "must be a non-empty user name of letters, digits, '.', '_' or '-'"
    if value.lower() in ("anonymous", "ftp"):
        return f"{value!r} is reserved for anonymous FTP, which the config server refuses"
    return None


def _window_check(value: list, lowest: float, highest: float) -> str | None:
    if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return f"{value!r}: must be [lower, upper] in nm"
    lo, hi = float(value[0]), float(value[1])
    if not lowest <= lo < hi <= highest:
        return f"{value!r}: need {lowest:g} <= lower < upper <= {highest:g} nm"
    return None


def _bit_depth_check(value: int) -> str | None:
    if value != 0 and not 8 <= value <= 16:
        return f"{value}: must be 0 (the sensor profile's) or 8-16 bits"
    return None


def _camera_pair_check(value: list) -> str | None:
    if (len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 7 for v in value)
            or value[0] == value[1]):
        return f"{value!r}: must be [on, off], two different camera numbers 0-7"
    return None


#: The schema.  Section -> key -> Field.
SCHEMA: dict[str, dict[str, Field]] = {
    "network": {
        "master_host": Field(str, "127.0.0.1", check=_host_check,
                             doc="address of the master Pi (devices and clients connect here)"),
        "bind_host": Field(str, "127.0.0.1", check=_host_check,
                           doc="address the master listens on (0.0.0.0 for all interfaces)"),
        "device_port": Field(int, 12345, 1, 65535, doc="port for cameras and spectrometer (PyCam port_comm)"),
        "client_port": Field(int, 12347, 1, 65535, doc="port for the GUI and scripts (PyCam port_ext)"),
        "secret": Field(str, required=True, check=_secret_check,
                        doc="credential of the GUI and scripts (client role): HMAC challenge-response and "
                            "the key of the per-frame MAC; the master and every client need it"),
        "device_secret": Field(str, "", check=_device_secret_check,
                               doc="credential of the cameras and spectrometer (device role), different from "
                                   "secret; the master and the device Pis need it, a GUI machine should not have "
                                   "it (empty: this configuration cannot run the master or a device)"),
        "handshake_timeout_s": Field(float, 5.0, 0.05, 120.0,
                                     doc="a connection must complete its handshake within this time after "
                                         "connecting (absolute; arriving bytes do not extend it)"),
        "max_pending_handshakes": Field(int, 64, 1, 100_000,
                                        doc="unauthenticated connections held at once; beyond, the oldest of the "
                                            "busiest address is closed"),
        "max_pending_per_host": Field(int, 16, 1, 100_000,
                                      doc="unauthenticated connections held at once from one address"),
        "max_clients": Field(int, 16, 1, 1000, doc="authenticated clients (GUI, scripts) at once"),
        "max_frame_bytes": Field(int, 64 * 1024 * 1024, 1024, 1 << 31,
                                 doc="largest frame accepted; larger closes that connection"),
        "reconnect_max_s": Field(float, 10.0, 0.1, 3600.0, doc="longest wait between reconnect attempts"),
    },
    "storage": {
        "data_dir": Field(Path, "~/pycam_data", doc="where the master stores received images and spectra"),
        "spool_dir": Field(Path, "~/pycam_spool",
                           doc="where devices keep captured files until the master confirms them"),
        "min_free_mb": Field(int, 200, 0, 10_000_000, doc="refuse to store below this free space"),
        "resend_initial_s": Field(float, 2.0, 0.01, 3600.0,
                                  doc="after the master refuses a file (disk full), a device waits this long, "
                                      "then sends one file to probe; the wait doubles on each refusal"),
        "resend_max_s": Field(float, 60.0, 0.01, 86_400.0, doc="longest wait between two probes of a refusing master"),
    },
    "master": {
        "metrics_port": Field(int, 0, 0, 65535,
                              doc="serve the station's health as Prometheus metrics on this port; 0: off"),
        "metrics_host": Field(str, "127.0.0.1", check=_host_check,
                              doc="address the metrics server listens on (0.0.0.0 for a remote Prometheus)"),
    },
    "health": {
        "heartbeat_s": Field(float, 10.0, 0.05, 3600.0,
                             doc="how often each device reports its health (and measures its clock offset)"),
        "clock_offset_warn_ms": Field(float, 50.0, 1.0, 60_000.0,
                                      doc="warn when a device's clock differs from the master's by more: camera "
                                          "A/B pairs are matched by their time stamps"),
    },
    "camera": {
        "framerate": Field(float, 0.25, 0.0, 1.0, doc="continuous capture rate, Hz (PyCam FRC)"),
        "shutter_us": Field(int, 100_000, 1, 6_000_001, doc="initial shutter speed, microseconds"),
        "analog_gain": Field(float, 1.0, 1.0, 16.0),
        "auto_exposure": Field(bool, True),
        "min_saturation": Field(float, 0.7, 0.0, 0.9),
        "max_saturation": Field(float, 0.9, 0.1, 1.0),
        "saturation_pixels": Field(int, 1000, 0, 10_000, doc="brightest pixels averaged (PyCam PXC)"),
        "saturation_rows": Field(int, -1, -486, 486,
                                 doc="rows checked for saturation; negative counts from the bottom (PyCam RWC)"),
        "binning": Field(int, 4, 0, 4, doc="area-averaging factor from the full sensor (OV5647: 4, 2592x1944 -> "
                                           "648x486); 0: the sensor profile's ([hardware] sensor)"),
    },
    "spectrometer": {
        "framerate": Field(float, 0.25, 0.0, 10.0, doc="continuous capture rate, Hz (PyCam FRS)"),
        "integration_ms": Field(int, 100, 1, 10_001),
        "coadd": Field(int, 1, 1, 20),
        "auto_integration": Field(bool, True),
        "min_saturation": Field(float, 0.6, 0.0, 0.9),
        "max_saturation": Field(float, 0.9, 0.1, 1.0),
        "saturation_pixels": Field(int, 2, 0, 2048),
        "wavelength_min": Field(float, 300.0, 200.0, 450.0, doc="saturation window start, nm (PyCam WMN)"),
        "wavelength_max": Field(float, 340.0, 200.0, 450.0, doc="saturation window end, nm (PyCam WMX)"),
    },
    "simulator": {
        "scene": Field(str, "realistic", choices=("realistic", "clean", "cloudy"),
                       doc="realistic: volcano, terrain, vent plume, clouds, specks, rotated B, light dilution; "
                           "cloudy: clouds through the plume; clean: uniform sky with a full-width plume band"),
        "seed": Field(int, 1, 0, 2**31 - 1),
        "emission_rate_kg_s": Field(float, 5.0, 0.0, 1000.0),
        "wind_speed_m_s": Field(float, 8.0, 0.1, 100.0),
        "wind_direction_deg": Field(float, 0.0, -360.0, 360.0,
                                    doc="direction the plume travels in the image, degrees from +x; 0 with a "
                                        "realistic/cloudy scene: the scene's own (8)"),
        "plume_distance_m": Field(float, 5000.0, 100.0, 100_000.0),
        "reference_dir": Field(Path, "", doc="directory with real cross-sections; empty: synthetic band model"),
        "full_resolution": Field(bool, False, doc="produce 2592x1944 frames instead of binned 648x486"),
        "noise": Field(bool, True, doc="add shot and read noise to simulated frames and spectra"),
        "misregistration_x_px": Field(float, 0.0, -80.0, 80.0,
                                      doc="off-band (B) camera pixel (x, y) views on-band pixel (x+dx, y+dy); all "
                                          "three misregistration keys 0: the scene's own (realistic -24, 17, 0.6 deg)"),
        "misregistration_y_px": Field(float, 0.0, -80.0, 80.0, doc="see misregistration_x_px"),
        "misregistration_rot_deg": Field(float, 0.0, -5.0, 5.0,
                                         doc="rotation of camera B against A about the frame centre, degrees"),
        "extinction_on_per_m": Field(float, -1.0, -1.0, 1e-3,
                                     doc="light dilution: on-band extinction between plume/terrain and camera, 1/m; "
                                         "-1: the scene's (realistic 6e-6, clean 0)"),
        "extinction_off_per_m": Field(float, -1.0, -1.0, 1e-3,
                                      doc="the same for the off-band; -1: the scene's (realistic 5e-6, clean 0)"),
        "brightness": Field(float, 1.0, 0.001, 1000.0, doc="scale of the simulated sky brightness"),
    },
    # --- field hardware and deployment (issue 6) ---
    "hardware": {
        "camera_index": Field(int, 0, 0, 7, doc="Picamera2 camera number on this Pi (`pycam camera --camera-index` "
                                                "overrides it)"),
        "pair_camera_indices": Field(list, [0, 1], check=_camera_pair_check,
                                     doc="Picamera2 numbers of camera A (on) and camera B (off) when one service "
                                         "drives both on a single Pi (`pycam camera --band both`; Pi 5: 0 and 1)"),
        "sensor": Field(str, "ov5647", choices=("ov5647", "imx477", "imx296"),
                        doc="camera sensor profile: ov5647 (PyCam, 10-bit), imx477 (HQ, 12-bit, black level "
                            "256 DN), imx296 (global shutter, 10-bit)"),
        "raw_format": Field(str, "", doc="Picamera2 raw format, e.g. SGBRG10 or SGBRG10_CSI2P; empty: the "
                                         "sensor's native format, unpacked"),
        "raw_bit_depth": Field(int, 0, 0, 16, check=_bit_depth_check,
                               doc="significant bits of the raw sensor data; 0: the sensor profile's "
                                   "(OV5647 10, IMX477 12, IMX296 10)"),
        "skew_warn_ms": Field(float, 20.0, 0.0, 10_000.0,
                              doc="single-Pi station: a pair whose two exposures started further apart than this "
                                  "(SensorTimestamp, ms) is reported as a sensor_skew event"),
        "settle_timeout_s": Field(float, 1.5, 0.0, 60.0,
                                  doc="longest wait for a new exposure to reach the sensor (PyCam: 1.5 s)"),
        "spectrometer_serial": Field(str, "", doc="seabreeze serial number to open; empty: first available"),
        "electric_dark": Field(bool, False, doc="subtract the electric-dark pixels (PyCam: off)"),
        "spectrometer_dark_file": Field(Path, "", doc="PyCam dark spectrum (.npy, 2xN) subtracted when its "
                                                       "integration time matches; empty: none"),
        "reopen_interval_s": Field(float, 2.0, 0.1, 600.0,
                                   doc="wait between attempts to reopen an unplugged spectrometer"),
        "dslr_output_dir": Field(Path, "~/pycam_dslr", doc="gphoto2: dated folders of downloaded DSLR files"),
        "dslr_kill_process": Field(str, "gvfs-gphoto2-volume-monitor",
                                   doc="exact name of a process that holds the DSLR, ended before capture "
                                       "if running; empty: never end anything"),
        "dslr_keep_on_card": Field(bool, False, doc="gphoto2: do not clear the card after a good download"),
        "power_gpio_pin": Field(int, 23, 0, 53, doc="BCM pin pulsed to switch the second Pi on/off (PyCam: 23)"),
        "power_pulse_s": Field(float, 0.5, 0.01, 10.0, doc="length of the power GPIO pulse"),
    },
    "usb_config": {
        "enabled": Field(bool, True, doc="apply the JSON runtime config from a USB drive at start"),
        "usb_file": Field(Path, "/media/usb/pycam/pycam_config.json",
                          doc="runtime config on the USB drive (missing drive: not an error)"),
        "work_dir": Field(Path, "~/pycam_config",
                          doc="working config directory (the copy in use; the only directory the FTP "
                              "config server exposes)"),
    },
    "config_server": {
        "bind_host": Field(str, "127.0.0.1", check=_host_check, doc="address the FTP config server listens on"),
        "port": Field(int, 2121, 1, 65535),
        "user": Field(str, "pycam", check=_user_check, doc="FTP user (anonymous login is always refused)"),
        "password": Field(str, "", check=_ftp_password_check,
                          doc="FTP password; empty: generated and saved here on the first run"),
        "passive_port_min": Field(int, 0, 0, 65535, doc="first passive-mode port; 0: any free port"),
        "passive_port_max": Field(int, 0, 0, 65535),
        "poll_s": Field(float, 1.0, 0.05, 60.0, doc="how often the served config file is checked for changes"),
    },
    "schedule": {
        "enabled": Field(bool, False, doc="the master starts/stops acquisition and takes darks daily by itself"),
        "start_time": Field(str, "00:30", check=_clock_check, doc="daily acquisition start, HH:MM UTC"),
        "stop_time": Field(str, "09:00", check=_clock_check, doc="daily acquisition stop, HH:MM UTC"),
        "dark_time": Field(str, "08:40", check=_clock_check,
                           doc="daily dark set, HH:MM UTC, inside the start-stop window"),
        "witty_pi_file": Field(Path, "", doc="Witty Pi schedule file written from these times; empty: none"),
        "power_on_lead_min": Field(int, 5, 0, 120, doc="Witty Pi powers on this long before start_time"),
        "power_off_lag_min": Field(int, 10, 0, 120, doc="Witty Pi powers off this long after stop_time"),
        "watchdog_enabled": Field(bool, True, doc="restart acquisition when no new files arrive"),
        "watchdog_timeout_s": Field(float, 150.0, 5.0, 86_400.0,
                                    doc="a device silent this long during acquisition triggers a restart"),
        "watchdog_check_s": Field(float, 30.0, 0.05, 3600.0, doc="how often the watchdog looks"),
        "disk_free_mb": Field(int, 0, 0, 10_000_000,
                              doc="below this free space (MB), delete files the master has confirmed, oldest "
                                  "first; 0: never delete (a station might use 1000)"),
        "disk_check_s": Field(float, 300.0, 0.05, 86_400.0, doc="how often free space is checked"),
    },
    "doas": {
        "reference_dir": Field(Path, "", doc="directory with sao2010.txt and the SO2/O3/Ring files; empty: the "
                               "labelled synthetic band model (demos only)"),
        "solar_file": Field(Path, "", doc="solar reference replacing the one of reference_dir; empty: none"),
        "so2_file": Field(Path, "", doc="SO2 cross-section file replacing reference_dir's; empty: none"),
        "o3_file": Field(Path, "", doc="O3 cross-section file replacing reference_dir's; empty: none"),
        "ring_file": Field(Path, "", doc="Ring (-ln) pseudo-absorber file replacing reference_dir's; empty: none"),
        "dark_file": Field(Path, "", doc="dark spectrum; empty: Dark spectra found beside the measurements"),
        "fit_window": Field(list, [308.0, 318.0], check=lambda v: _window_check(v, 250.0, 450.0),
                            doc="SO2 fit window [lo, hi] nm (PyCam 308-318, iFit 310-320)"),
        "stray_window": Field(list, [293.0, 296.0], check=lambda v: _window_check(v, 200.0, 450.0),
                              doc="stray-light window [lo, hi] nm whose mean is subtracted"),
        "ld_window": Field(list, [312.0, 322.0], check=lambda v: _window_check(v, 250.0, 450.0),
                           doc="second fit window [lo, hi] nm for the two-waveband light-dilution correction"),
        "ils_file": Field(Path, "", doc="measured instrument line shape (offset nm, intensity); empty: super-Gaussian"),
        "fwem": Field(float, 0.6, 0.05, 5.0, doc="super-Gaussian full width at 1/e maximum, nm (first guess if fitted; "
                      "used fixed only with ils_mode = \"fixed\")"),
        "fit_ils": Field(bool, False, doc="fit the super-Gaussian line shape (FWEM, k, asymmetries) on every spectrum"),
        "ils_mode": Field(str, "auto", choices=("auto", "fixed", "fit"),
                          doc="without ils_file: auto = fit the line shape and wavelength calibration on the first good "
                              "(clear-sky) spectrum, keep them fixed, recalibrate on drift and every ils_recal_minutes "
                              "(history in doas_calibration_history.csv); fixed = fwem as given; fit = every spectrum"),
        "ils_recal_minutes": Field(float, 30.0, 0.0, 10_000.0,
                                   doc="auto line shape: recalibrate on the next clear-sky spectrum after this many "
                                       "minutes (0: only on drift)"),
        "poly_order": Field(int, 3, 0, 8, doc="order of the multiplicative background polynomial"),
        "warm_start": Field(bool, True, doc="seed each fit with the previous good result"),
        "max_residual": Field(float, 0.1, 0.0, 10.0, doc="quality flag when max |residual|/model exceeds this"),
        "min_intensity": Field(float, 200.0, 0.0, 1e9, doc="quality flag when the window's peak counts fall below"),
        "use_light_dilution_spec": Field(bool, False, doc="(PyCam) correct the columns for light dilution with the "
                                         "two-waveband method (fit_window and ld_window); the LDF column says the factor"),
        "spec_recal_time": Field(float, 0.0, 0.0, 10_000.0,
                                 doc="(PyCam) light dilution: 0 = each spectrum its own factor (weak columns stay "
                                     "uncorrected); N = the mean factor of the last N minutes' strong columns, applied "
                                     "to every spectrum"),
        "ld_grid_max": Field(float, 1.0e19, 1e16, 1e20, doc="largest SO2 column in the dilution look-up grid, molec/cm2"),
        "cache_dir": Field(Path, "~/.cache/pycam", doc="where computed light-dilution look-up grids are cached"),
        "fov_recal_minutes": Field(float, 30.0, 0.0, 10_000.0,
                                   doc="search the DOAS field of view again this often (0: only once)"),
        "fov_window_minutes": Field(float, 30.0, 1.0, 10_000.0,
                                    doc="camera/spectrometer samples used for the FOV search and calibration"),
        "fov_max_radius": Field(int, 30, 1, 300, doc="largest FOV radius tried, pixels"),
        "max_time_gap_s": Field(float, 2.0, 0.0, 3600.0,
                                doc="largest camera-spectrometer time difference accepted when pairing samples"),
        "time_alignment": Field(str, "nearest", choices=("nearest", "interpolate"),
                                doc="pair camera images with the nearest spectrum or interpolate the columns"),
    },
}


@dataclasses.dataclass(frozen=True)
class Config:
    """A validated configuration: ``config.section("camera")["framerate"]``."""

    path: Path | None
    values: Mapping[str, Mapping[str, Any]]

    def section(self, name: str) -> Mapping[str, Any]:
        return self.values[name]

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        return self.values[name]


def _coerce(section: str, key: str, field: Field, raw: Any, base_dir: Path | None) -> Any:
    where = f"[{section}] {key}"
    if field.kind is bool:
        if isinstance(raw, bool):
            value: Any = raw
        elif isinstance(raw, int) and raw in (0, 1):
            value = bool(raw)
        else:
            raise ConfigError(f"{where} = {raw!r}: must be true or false")
    elif field.kind is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{where} = {raw!r}: must be a whole number")
        value = raw
    elif field.kind is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ConfigError(f"{where} = {raw!r}: must be a number")
        value = float(raw)
        if value != value:
            raise ConfigError(f"{where}: NaN is not allowed")
    elif field.kind is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{where} = {raw!r}: must be a string")
        value = raw
    elif field.kind is Path:
        if not isinstance(raw, str):
            raise ConfigError(f"{where} = {raw!r}: must be a path string")
        if raw == "":
            value = None
        else:
            p = Path(os.path.expanduser(raw))
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            value = p
    elif field.kind is list:
        if not isinstance(raw, list):
            raise ConfigError(f"{where} = {raw!r}: must be a list")
        value = raw
    else:  # pragma: no cover - schema error
        raise TypeError(f"unsupported field kind {field.kind}")
    if field.minimum is not None and isinstance(value, (int, float)) and value < field.minimum:
        raise ConfigError(f"{where} = {raw!r}: must be >= {field.minimum}")
    if field.maximum is not None and isinstance(value, (int, float)) and value > field.maximum:
        raise ConfigError(f"{where} = {raw!r}: must be <= {field.maximum}")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{where} = {raw!r}: must be one of {', '.join(map(str, field.choices))}")
    if field.check is not None:
        problem = field.check(value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return value


# Keys earlier releases wrote: (section, old key) -> new key (None: no longer used).  A station file
# written by v0.1 keeps loading; each such key is logged once per load with what to write instead.
RETIRED_KEYS: dict[tuple[str, str], str | None] = {
    ("doas", "use_light_dilution"): "use_light_dilution_spec",   # PyCam's name for it
    ("doas", "calibration_order"): None,   # the DOAS calibration's form is the processing settings' doas_cal_order
}


def _retire(section: str, given: dict[str, Any]) -> None:
    """Rename or drop (with a warning) the keys of ``given`` that :data:`RETIRED_KEYS` lists."""
    log = logging.getLogger(__name__)
    for (sec, old), new in RETIRED_KEYS.items():
        if sec != section or old not in given:
            continue
        value = given.pop(old)
        if new is None:
            log.warning("[%s] %s is no longer used and is ignored; remove it", section, old)
        elif new in given:
            raise ConfigError(f"[{section}] {old} and {new} are the same setting: keep only {new}")
        else:
            log.warning("[%s] %s is now called %s; please rename it", section, old, new)
            given[new] = value


def validate(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Validate a parsed mapping against ``SCHEMA``; unknown sections or keys are errors (keys
    of earlier releases, :data:`RETIRED_KEYS`, are renamed or dropped with a warning)."""
    base_dir = path.parent if path is not None else None
    values: dict[str, dict[str, Any]] = {}
    for section in data:
        if section not in SCHEMA:
            raise ConfigError(f"unknown section [{section}] (known: {', '.join(SCHEMA)})")
        if not isinstance(data[section], Mapping):
            raise ConfigError(f"[{section}] must be a table")
    for section, fields in SCHEMA.items():
        given = dict(data.get(section, {}))
        _retire(section, given)
        for key in given:
            if key not in fields:
                raise ConfigError(f"[{section}] {key}: unknown key (known: {', '.join(fields)})")
        out: dict[str, Any] = {}
        for key, field in fields.items():
            if key in given:
                out[key] = _coerce(section, key, field, given[key], base_dir)
            elif field.required:
                raise ConfigError(f"[{section}] {key}: required key is missing")
            else:
                out[key] = _coerce(section, key, field, field.default, base_dir) if field.default is not None else None
        values[section] = out
    _cross_checks(values)
    return Config(path=path, values=values)


def _cross_checks(values: Mapping[str, Mapping[str, Any]]) -> None:
    net = values["network"]
    if net["device_port"] == net["client_port"]:
        raise ConfigError("[network] client_port: must differ from device_port")
    if net["device_secret"] and hmac.compare_digest(net["device_secret"], net["secret"]):
        raise ConfigError("[network] device_secret: must differ from secret (a client credential must not "
                          "act as a device)")
    for section in ("camera", "spectrometer"):
        s = values[section]
        if s["min_saturation"] >= s["max_saturation"]:
            raise ConfigError(f"[{section}] min_saturation: must be below max_saturation")
    spec = values["spectrometer"]
    if spec["wavelength_min"] >= spec["wavelength_max"]:
        raise ConfigError("[spectrometer] wavelength_min: must be below wavelength_max")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a station configuration file."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: configuration file not found (create one with `pycam init-config {p}`)") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return validate(data, p.resolve())
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def generate_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def require_device_secret(config: Config) -> str:
    """``[network] device_secret`` for the master and the devices; ConfigError naming it if unset."""
    value = config["network"]["device_secret"]
    if not value:
        where = f"{config.path}: " if config.path else ""
        raise ConfigError(f"{where}[network] device_secret: not set; the master and the devices need it "
                          "(run `pycam init-config FILE` to generate one)")
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if value is None:
        value = ""
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_config(overrides: Mapping[str, Mapping[str, Any]] | None = None, secret: str | None = None) -> str:
    """A complete, commented TOML configuration with defaults and the given overrides.

    ``secret`` is the client secret; when it is given and the overrides have no
    ``device_secret`` key, a fresh device secret is generated too (a new station)."""
    overrides = overrides or {}
    lines = ["# PyCam station configuration (validated on load; see `pycam init-config --help`).", ""]
    for section, fields in SCHEMA.items():
        lines.append(f"[{section}]")
        for key, field in fields.items():
            if field.doc:
                lines.append(f"# {field.doc}")
            if section == "network" and key == "secret":
                value: Any = secret if secret is not None else SECRET_PLACEHOLDER
            elif section == "network" and key == "device_secret" and secret is not None \
                    and "device_secret" not in overrides.get("network", {}):
                value = generate_secret()
            else:
                value = overrides.get(section, {}).get(key, field.default)
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
