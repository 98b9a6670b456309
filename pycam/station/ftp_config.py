"""The authenticated FTP config server and the reload it triggers (from the Picamera2 seed).

* :class:`ConfigServer` (pyftpdlib) serves **only** the working config directory
  (``[usb_config] work_dir``) to **one** user with the password from ``[config_server]``;
  anonymous logins are refused, paths (``..``, symlinks) cannot leave the directory (pyftpdlib
  resolves real paths against the home), and the permissions are list/read/write/append/rename
  (no delete, no mkdir, no chmod).
* :class:`ConfigWatcher` notices a changed config file (an FTP upload triggers it at once; other
  edits are caught by polling once the content is stable).
* :class:`ConfigReloader` validates and applies the file (:class:`~pycam.station.usb_config.RuntimeConfig`)
  and takes a test photo; it reports ``config_reload`` events through ``publish(kind, **fields)``:
  ``state="applied"`` with ``test_photo`` (the file name) or ``state="error"`` with ``key`` and
  ``message`` (the previous settings stay in force).
* :class:`ConfigService` runs all three in a device service; ``pycam config-server`` runs the FTP
  part alone as its own systemd unit.

:func:`ensure_password` generates the FTP password on the first run and saves it in the station
config (there is no default password).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any, Callable

from pycam.config import ConfigError, load_config
from pycam.drivers.base import Capability, supports
from pycam.formats.atomic import atomic_write_text
from pycam.station.usb_config import RuntimeConfig, RuntimeConfigError

log = logging.getLogger(__name__)

#: list, change directory, read, write, append, rename (pyftpdlib permission letters)
FTP_PERMISSIONS = "elrawf"
Publish = Callable[..., None]


class ConfigServerError(RuntimeError):
    """The config server cannot start (the message names the reason)."""


# -- password ------------------------------------------------------------------------------------
def ensure_password(config_path: Path) -> tuple[str, bool]:
    """The FTP password of ``[config_server]``; generated and saved in the file if empty.

    Returns ``(password, generated)``.  Only the ``password = ...`` line of that section is
    written (other lines and comments are kept); the file is rewritten atomically, mode 600.
    """
    config_path = Path(config_path)
    config = load_config(config_path)
    password = config["config_server"]["password"]
    if password:
        return password, False
    password = secrets.token_urlsafe(18)
    text = config_path.read_text(encoding="utf-8")
    line = f'password = "{password}"'
    section = re.search(r"(?m)^\[config_server\][ \t]*$", text)
    if section is None:
        text = text.rstrip("\n") + f"\n\n[config_server]\n{line}\n"
    else:
        start = section.end()
        nxt = re.search(r"(?m)^\[", text[start:])
        end = start + nxt.start() if nxt else len(text)
        body = text[start:end]
        if re.search(r"(?m)^password[ \t]*=.*$", body):
            body = re.sub(r"(?m)^password[ \t]*=.*$", line, body, count=1)
        else:
            body = "\n" + line + body
        text = text[:start] + body + text[end:]
    atomic_write_text(config_path, text)
    os.chmod(config_path, 0o600)
    try:
        saved = load_config(config_path)["config_server"]["password"]
    except ConfigError as exc:
        raise ConfigServerError(f"{config_path}: could not save the generated FTP password: {exc}") from None
    if saved != password:
        raise ConfigServerError(f"{config_path}: the generated FTP password did not stick")
    return password, True


# -- the FTP server ------------------------------------------------------------------------------
class ConfigServer:
    """pyftpdlib FTP server exposing one directory to one authenticated user."""

    def __init__(self, directory: Path, *, user: str, password: str, host: str = "127.0.0.1", port: int = 2121,
                 on_upload: Callable[[Path], None] | None = None, passive_ports: range | None = None,
                 auth_failed_delay: float = 1.0, poll_s: float = 0.2) -> None:
        if not password:
            raise ConfigServerError("the config server needs a password (see [config_server] password)")
        if not user or user.lower() in ("anonymous", "ftp"):
            raise ConfigServerError(f"bad FTP user {user!r}: anonymous access is not allowed")
        self.directory = Path(directory)
        self.user = user
        self._password = password
        self.host, self.port = host, port
        self.on_upload = on_upload
        self.passive_ports = passive_ports
        self.auth_failed_delay = auth_failed_delay
        self.poll_s = poll_s
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _authorizer(self, home: str):
        from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer

        user, secret = self.user, self._password.encode("utf-8")

        class SingleUserAuthorizer(DummyAuthorizer):
            def validate_authentication(self, username, password, handler):
                ok_user = hmac.compare_digest(username.encode("utf-8", "replace"), user.encode("utf-8"))
                ok_pass = hmac.compare_digest(password.encode("utf-8", "replace"), secret)
                if not (ok_user and ok_pass):
                    raise AuthenticationFailed("Authentication failed.")

        authorizer = SingleUserAuthorizer()
        authorizer.add_user(user, "", home, perm=FTP_PERMISSIONS,
                            msg_login="PyCam config directory", msg_quit="Bye.")
        return authorizer

    def start(self) -> None:
        try:
            from pyftpdlib.handlers import FTPHandler
            from pyftpdlib.servers import FTPServer
        except ImportError as exc:
            raise ConfigServerError(f"pyftpdlib not available: {exc}") from None
        self.directory.mkdir(parents=True, exist_ok=True)
        home = str(self.directory.resolve())
        server = self

        class PyCamConfigHandler(FTPHandler):
            def on_file_received(self, file):
                if server.on_upload is not None:
                    try:
                        server.on_upload(Path(file))
                    except Exception:
                        log.exception("config server: upload callback failed for %s", file)

        PyCamConfigHandler.authorizer = self._authorizer(home)
        PyCamConfigHandler.banner = "PyCam config server ready."
        PyCamConfigHandler.permit_foreign_addresses = False
        PyCamConfigHandler.auth_failed_timeout = self.auth_failed_delay
        PyCamConfigHandler.max_login_attempts = 3
        if self.passive_ports:
            PyCamConfigHandler.passive_ports = self.passive_ports
        try:
            self._server = FTPServer((self.host, self.port), PyCamConfigHandler)
        except OSError as exc:
            raise ConfigServerError(f"config server: cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="config-ftp", daemon=True)
        self._thread.start()
        log.info("config server: ftp://%s:%d/ serves %s to user %s", *self.address, home, self.user)

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise ConfigServerError("config server is not running")
        host, port = self._server.address[:2]
        return host, port

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._server.ioloop.loop(self.poll_s, blocking=False)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._server is not None:
            self._server.close_all()
            self._server = None

    def __enter__(self) -> "ConfigServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- change detection and reload -------------------------------------------------------------------
def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    """Calls ``on_change(path)`` when the content of ``path`` changes (see the module docstring)."""

    def __init__(self, path: Path, on_change: Callable[[Path], None], *, poll_s: float = 1.0) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.poll_s = poll_s
        self._seen = _digest(self.path)
        self._candidate: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Take the current content as seen (after the owner itself rewrote the file)."""
        with self._lock:
            self._seen, self._candidate = _digest(self.path), None

    def trigger(self, path: Path | None = None) -> None:
        """An upload finished: check now (other files than ours are ignored)."""
        if path is None or Path(path).name == self.path.name:
            self._wake.set()

    def check(self, immediate: bool = False) -> bool:
        """Run ``on_change`` if the content changed; True if it ran."""
        with self._lock:
            digest = _digest(self.path)
            if digest is None or digest == self._seen:
                self._candidate = None
                return False
            if not immediate and digest != self._candidate:
                self._candidate = digest  # wait one poll: the file may still be being written
                return False
            self._seen, self._candidate = digest, None
        self.on_change(self.path)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check(immediate=woken)
            except Exception:
                log.exception("config watcher: handling %s failed", self.path)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="config-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class ConfigReloader:
    """Validate + apply a changed config file, then take a test photo; report the outcome."""

    def __init__(self, runtime_config: RuntimeConfig, take_test_photo: Callable[[], str], publish: Publish) -> None:
        self.runtime_config = runtime_config
        self.take_test_photo = take_test_photo
        self.publish = publish

    def __call__(self, path: Path) -> None:
        try:
            wanted = self.runtime_config.read_file(path)
            if wanted == self.runtime_config.last_values:
                return  # only another device's section changed (shared file): nothing to do here
            applied = self.runtime_config.apply_file(path)
        except RuntimeConfigError as exc:
            log.error("config reload: %s (previous settings stay in force)", exc)
            self.publish("config_reload", state="error", file=Path(path).name, key=exc.key, message=str(exc),
                         settings=dict(self.runtime_config.settings))
            return
        try:
            photo = self.take_test_photo()
        except Exception as exc:
            self.publish("config_reload", state="applied", file=Path(path).name, settings=applied,
                         test_photo=None, message=f"settings applied, but the test photo failed: {exc}")
            return
        self.publish("config_reload", state="applied", file=Path(path).name, settings=applied, test_photo=photo)


def passive_ports(config) -> range | None:
    """``[config_server] passive_port_min..max`` as a range (None: any free port)."""
    cs = config["config_server"]
    lo, hi = cs["passive_port_min"], cs["passive_port_max"]
    if not lo and not hi:
        return None
    if not lo or hi < lo:
        raise ConfigServerError(f"[config_server] passive_port_max = {hi}: must be >= passive_port_min = {lo} "
                                "(set both, or both 0)")
    return range(lo, hi + 1)


class ConfigService:
    """FTP server + watcher + reloader for one device service (in-process wiring)."""

    def __init__(self, config, runtime_config: RuntimeConfig, take_test_photo: Callable[[], str],
                 publish: Publish, *, password: str | None = None) -> None:
        cs = config["config_server"]
        password = password or cs["password"]
        self.reloader = ConfigReloader(runtime_config, take_test_photo, publish)
        self.watcher = ConfigWatcher(runtime_config.work_file, self.reloader, poll_s=cs["poll_s"])
        self.server = ConfigServer(runtime_config.work_dir, user=cs["user"], password=password,
                                   host=cs["bind_host"], port=cs["port"], on_upload=self.watcher.trigger,
                                   passive_ports=passive_ports(config))

    def start(self) -> None:
        self.watcher.start()
        try:
            self.server.start()
        except Exception:
            self.watcher.stop()
            raise

    def stop(self) -> None:
        self.server.stop()
        self.watcher.stop()


class DeviceRuntimeConfig:
    """USB runtime config + config-file watcher for a camera or spectrometer service.

    At start the USB file (or the last good working copy) is applied; afterwards every change
    of the working copy (an FTP upload through ``pycam config-server``, which runs as its own
    unit, or any other edit) is validated, applied and followed by a test photo; the outcome is
    sent as a ``config_reload`` event through the service's link to the master and clients.

    Settings are applied on the service's capture thread (``service.run_in_capture_thread``)
    so they never race a capture; ``ExposureTime`` / ``IntegrationTime`` switch automatic
    exposure off, like SSA/SSB/SSS do.  Drivers that do not declare
    ``Capability.RUNTIME_CONTROLS`` (the simulator) have no runtime config: :meth:`attach`
    returns None for them.
    """

    def __init__(self, service: Any, config: Any) -> None:
        self.service = service
        section = service.kind   # "camera" or "spectrometer"
        usb = config["usb_config"]
        self.runtime = RuntimeConfig(usb["usb_file"], usb["work_dir"], section, service.driver.control_specs,
                                     self._apply, publish=self._publish, device=service.device)
        self.watcher = ConfigWatcher(self.runtime.work_file,
                                     ConfigReloader(self.runtime, self._test_photo, self._publish),
                                     poll_s=config["config_server"]["poll_s"])

    @classmethod
    def attach(cls, service: Any, config: Any) -> "DeviceRuntimeConfig | None":
        if not config["usb_config"]["enabled"] or not supports(service.driver, Capability.RUNTIME_CONTROLS):
            return None
        try:
            return cls(service, config).start()
        except (OSError, RuntimeConfigError, TimeoutError) as exc:  # never stops acquisition
            log.error("%s: runtime config disabled: %s", service.device, exc)
            service.link.send_event("status", level="error", message=f"runtime config disabled: {exc}")
            return None

    def _publish(self, kind: str, **fields: Any) -> None:
        self.service.link.send_event(kind, **fields)

    def _apply_now(self, values: dict) -> dict:
        service = self.service
        applied = service.driver.apply_controls(values)
        if "ExposureTime" in applied:
            service.auto_exposure = False
            service.shutter_us = applied["ExposureTime"]
        if "AnalogueGain" in applied:
            service.gain = applied["AnalogueGain"]
        if "IntegrationTime" in applied:
            service.auto_integration = False
            service.integration_ms = applied["IntegrationTime"]
        service.link.send_event("settings", **service.settings())
        return applied

    def _apply(self, values: dict) -> dict:
        return self.service.run_in_capture_thread(lambda: self._apply_now(values))

    def _test_photo(self) -> str:
        import datetime as dt

        def take() -> str:
            return self.service.capture(dt.datetime.now(dt.timezone.utc).replace(microsecond=0), "Test")

        return self.service.run_in_capture_thread(take)

    def start(self) -> "DeviceRuntimeConfig":
        self.runtime.startup()
        self.watcher.reset()  # startup may have copied the USB file over the working copy
        self.watcher.start()
        return self

    def stop(self) -> None:
        self.watcher.stop()
