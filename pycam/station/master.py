"""The master service (``pycam masterpi``): authenticates devices and clients, routes
addressed commands, forwards every reply/event/error to every client, stores data files.

Threads: one gatekeeper (accepts and runs every handshake in one selector loop with an
absolute deadline and caps, see pycam.net.gatekeeper), one reader per authenticated connection
(blocking receive) and one writer per connection (a bounded queue, see peers.py).  Nothing
polls.  In-process use (tests, the daily schedule, the watchdog)::

    master = Master(config)
    master.start()
    master.start_acquisition(); master.start_dark_set(); master.stop_acquisition()
    master.file_stored_callbacks.append(lambda path, device: ...)
    master.publish_event("watchdog", state="ok")
    master.stop()
"""
from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pycam.config import Config, require_device_secret
from pycam.net.connection import Connection, ConnectionClosed
from pycam.net.gatekeeper import ConnectionPolicy, Gatekeeper
from pycam.net.server import listen, raise_fd_limit
from pycam.protocol import commands as vocab
from pycam.protocol import events
from pycam.protocol.errors import CommandValueError, FrameError, MessageError, ProtocolError
from pycam.protocol.session import CLIENT_MAX_PAYLOAD, ServerSession
from pycam.protocol.messages import (Ack, Command, Data, Error, Event, Message, Reply, Subscribe,
                                     header_filename, utc_now_iso)
from pycam.station.health import StationHealth
from pycam.station.master_state import MasterState
from pycam.station.peers import Peer
from pycam.station.storage import DataStore, DiskFull, StorageError, check_origin
from pycam.station.storage_state import StorageState

log = logging.getLogger(__name__)

MASTER_SESSION = "master"   # session of commands the master sends on its own behalf


class Master:
    def __init__(self, config: Config, *, data_dir: Path | None = None, fsync: bool = True) -> None:
        net = config["network"]
        self.config = config
        self._secrets = {"device": require_device_secret(config), "client": net["secret"]}
        self.max_clients: int = net["max_clients"]
        self.policy = ConnectionPolicy.from_network(net)
        self.max_payload = net["max_frame_bytes"]
        self.bind_host: str = net["bind_host"]
        self._ports = {"device": net["device_port"], "client": net["client_port"]}
        storage = config["storage"]
        self.store = DataStore(Path(data_dir or storage["data_dir"]), storage["min_free_mb"], fsync=fsync)
        #: callables ``(path, device)`` run after each file is stored (watchdog, processing)
        self.file_stored_callbacks: list[Callable[[Path, str], None]] = []
        #: extra master command keys (e.g. SCH, the schedule) -> handler(value) -> reply value
        self.command_handlers: dict[str, Callable[[Any], Any]] = {}
        self.storage_state = StorageState(self._publish_storage)
        self.health = StationHealth(clock_warn_ms=config["health"]["clock_offset_warn_ms"])
        self._state = MasterState(Path(storage["spool_dir"]), fsync=fsync)
        self._acquiring = self._state.load_acquiring()   # a restarted master resumes acquiring
        self.stopped = threading.Event()
        self._lock = threading.RLock()
        self._devices: dict[str, Peer] = {}
        self._clients: dict[str, Peer] = {}
        self._settings: dict[str, dict] = {}
        self._pending: dict[int, tuple[str, int, str]] = {}   # our request id -> (session, their id, device)
        self._ids = itertools.count(1)
        self._acceptor: Gatekeeper | None = None
        self._readers: set[threading.Thread] = set()
        self.finished = threading.Event()
        self.files_stored = 0

    # ---------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        listeners = {}
        try:
            for tag in ("device", "client"):
                listeners[tag] = listen(self.bind_host, self._ports[tag])
        except OSError:
            for s in listeners.values():
                s.close()
            raise
        self._ports = {tag: s.getsockname()[1] for tag, s in listeners.items()}
        raise_fd_limit()
        for path in self.store.clean_temporaries():
            log.info("removed a half-written file left by an earlier run: %s", path)
        self._acceptor = Gatekeeper(
            listeners, new_session=lambda tag: ServerSession(   # clients send no data: small frames only
                {tag: self._secrets[tag]}, secrets.token_hex(4),
                self.max_payload if tag == "device" else min(self.max_payload, CLIENT_MAX_PAYLOAD)),
            admit=self._admit, established=self._established, welcome_devices=lambda: self.connected_devices,
            max_payload_bytes=self.max_payload, policy=self.policy, name="master-gatekeeper")
        self._acceptor.start()
        if self._acquiring:
            log.info("master: the station was acquiring when the master stopped: acquisition resumes")
        log.info("master listening: devices on %s:%d, clients on %s:%d, data in %s", self.bind_host,
                 self.device_port, self.bind_host, self.client_port, self.store.data_dir)

    @property
    def acquiring(self) -> bool:
        return self._acquiring

    @acquiring.setter
    def acquiring(self, on: bool) -> None:
        if bool(on) != self._acquiring:
            self._acquiring = bool(on)
            self._state.save_acquiring(self._acquiring)

    @property
    def device_port(self) -> int:
        return self._ports["device"]

    @property
    def client_port(self) -> int:
        return self._ports["client"]

    def stop(self) -> None:
        if self.stopped.is_set():
            self.finished.wait(30)
            return
        self.stopped.set()
        if self._acceptor is not None:
            self._acceptor.stop()
        with self._lock:
            peers = list(self._devices.values()) + list(self._clients.values())
        for peer in peers:
            peer.close()
        with self._lock:
            readers = [t for t in self._readers if t is not threading.current_thread()]
        for thread in readers:   # lets a file being written finish (no temporaries left)
            thread.join(timeout=10)
        self.finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the master has stopped completely."""
        return self.finished.wait(timeout)

    def __enter__(self) -> "Master":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def connected_devices(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(d for d in vocab.DEVICES if d in self._devices)

    # ---------------------------------------------------------------------- in-process API
    def start_acquisition(self) -> list[str]:
        """Start continuous capture on every connected device; returns the devices told."""
        self.store.new_sequence()
        self.acquiring = True
        told = self._send_own("STC", True, vocab.CAMERAS) + self._send_own("STS", True, (vocab.SPECTROMETER,))
        self.publish(events.Acquisition(acquiring=True, devices=tuple(told)))
        return told

    def stop_acquisition(self) -> list[str]:
        self.acquiring = False
        told = self._send_own("SPC", True, vocab.CAMERAS) + self._send_own("SPS", True, (vocab.SPECTROMETER,))
        self.publish(events.Acquisition(acquiring=False, devices=tuple(told)))
        return told

    def start_dark_set(self) -> list[str]:
        """Ask cameras (DKC) and spectrometer (DKS) for a dark set; DFC/DFS events follow."""
        return self._send_own("DKC", True, vocab.CAMERAS) + self._send_own("DKS", True, (vocab.SPECTROMETER,))

    def publish_event(self, kind: str, **fields: Any) -> None:
        """Send a declared event (pycam.protocol.events) from the master to every client."""
        self.publish(events.build(kind, **fields))

    def publish(self, event: events.StationEvent) -> None:
        self._to_clients(event.as_event(vocab.MASTER, utc_now_iso()))

    def _send_own(self, key: str, value: Any, devices: tuple[str, ...]) -> list[str]:
        told = []
        at = vocab.effect_time(time.time()) if key in vocab.SYNCHRONISED_KEYS else None
        for device in devices:
            if self._forward(device, key, value, MASTER_SESSION, next(self._ids), quiet=True, at=at):
                told.append(device)
        return told

    # ------------------------------------------------------------------------- connections
    def _admit(self, conn: Connection, hello, tag: str):
        """(gatekeeper thread) An authenticated peer: register it before its welcome, so nothing
        sent to it from now on is missed; returns the Peer or a refusal reason."""
        if tag == "device" and hello.device not in vocab.DEVICES:
            return f"unknown device id {hello.device[:10]!r} (expected {', '.join(vocab.DEVICES)})"
        if tag == "client" and len(self._clients) >= self.max_clients:
            return f"too many clients connected ([network] max_clients = {self.max_clients})"
        peer = Peer(conn, session=conn.session.session_id, role=tag, name=hello.name,
                    device=hello.device if tag == "device" else "", subscribe=hello.subscribe)
        self._register(peer)
        return peer

    def _established(self, peer: Peer) -> None:
        thread = threading.Thread(target=self._serve, args=(peer,), name=f"master-{peer.label}", daemon=True)
        with self._lock:
            self._readers.add(thread)
        peer.start()   # the queued messages follow the welcome
        thread.start()

    def _serve(self, peer: Peer) -> None:
        try:
            self._read_loop(peer)
        finally:
            self._unregister(peer)
            with self._lock:
                self._readers.discard(threading.current_thread())

    def _refuse(self, conn: Connection, exc: ProtocolError) -> None:
        try:
            conn.send(Error(key=exc.key, reason=exc.reason))
        except (ConnectionError, OSError):
            pass
        conn.close()

    def _register(self, peer: Peer) -> None:
        old = None
        with self._lock:
            if peer.role == "device":
                old = self._devices.get(peer.device)
                self._devices[peer.device] = peer
            else:
                self._clients[peer.session] = peer
        if old is not None:
            log.warning("%s reconnected: dropping its previous connection", peer.device)
            old.close()
        if peer.role == "device":
            log.info("device %s connected from %s", peer.device, peer.conn.peer)
            self.publish(events.DeviceConnected(device=peer.device))
            if self.acquiring:   # a device that (re)joins follows the station's state
                key = "STS" if peer.device == vocab.SPECTROMETER else "STC"
                self._forward(peer.device, key, True, MASTER_SESSION, next(self._ids), quiet=True)

    def _unregister(self, peer: Peer) -> None:
        peer.close()
        with self._lock:
            if peer.role == "device":
                if self._devices.get(peer.device) is not peer:
                    return   # already replaced by a newer connection
                del self._devices[peer.device]
                lost = [(rid, p) for rid, p in self._pending.items() if p[2] == peer.device]
                for rid, _ in lost:
                    del self._pending[rid]
            else:
                self._clients.pop(peer.session, None)
                return
        log.info("device %s disconnected", peer.device)
        self.health.forget(peer.device)
        self.publish(events.DeviceDisconnected(device=peer.device))
        for _rid, (session, their_id, device) in lost:
            self._to_clients(Error(key="device", reason=f"{device} disconnected before replying",
                                   request_id=their_id, device=device, session=session))

    def _read_loop(self, peer: Peer) -> None:
        conn = peer.conn
        while not self.stopped.is_set():
            try:
                msg = conn.receive()
            except ConnectionClosed as exc:
                if exc.mid_frame:
                    log.warning("%s: connection lost in the middle of a frame (nothing stored)", peer.label)
                return
            except FrameError as exc:
                log.warning("%s: %s; closing this connection", peer.label, exc)
                self._refuse(conn, exc)
                return
            except MessageError as exc:
                name = header_filename(exc.frame_header)
                peer.send(Error(key=exc.key, reason=exc.reason, request_id=exc.request_id, device=peer.device,
                                session=peer.session, filename=name))
                continue
            try:
                if peer.role == "device":
                    self._from_device(peer, msg)
                else:
                    self._from_client(peer, msg)
            except Exception as exc:  # a bug handling one message must not kill the connection
                log.exception("%s: error handling %s", peer.label, msg.kind)
                peer.send(Error(key=getattr(msg, "key", msg.kind), reason=f"internal error: {exc}",
                                request_id=getattr(msg, "request_id", None), session=peer.session))

    # ------------------------------------------------------------------------------ clients
    def _from_client(self, peer: Peer, msg: Message) -> None:
        if isinstance(msg, Command):
            self._client_command(peer, msg)
        elif isinstance(msg, Subscribe):
            peer.subscribe = set(msg.data_types)
        else:
            peer.send(Error(key=msg.kind, reason=f"clients may not send {msg.kind} messages", session=peer.session))

    def _client_command(self, peer: Peer, cmd: Command) -> None:
        try:
            vocab.check_address(cmd.device)
            value = vocab.parse_value(cmd.key, cmd.value)
            targets = vocab.route(cmd.key, cmd.device, self.connected_devices)
        except CommandValueError as exc:
            self._to_clients(Error(key=exc.key, reason=exc.reason, request_id=cmd.request_id,
                                   device=cmd.device if isinstance(cmd.device, str) else "", session=peer.session))
            return
        if not targets:
            self._to_clients(Error(key=cmd.key, reason="no connected device handles this key",
                                   request_id=cmd.request_id, device=cmd.device, session=peer.session))
            return
        if cmd.device == vocab.ALL:
            peer.send(events.Routed(request_id=cmd.request_id, session=peer.session, key=cmd.key,
                                    targets=tuple(targets)).as_event(vocab.MASTER, utc_now_iso()))
        self._note_station_state(cmd.key, value)
        at = vocab.effect_time(time.time()) if cmd.key in vocab.SYNCHRONISED_KEYS else None
        for target in targets:
            if target == vocab.MASTER:
                self._master_command(peer.session, cmd.request_id, cmd.key, value,
                                     devices_too=cmd.device == vocab.ALL)
            else:
                self._forward(target, cmd.key, value, peer.session, cmd.request_id, at=at)

    def _note_station_state(self, key: str, value: Any) -> None:
        if key in ("STC", "STS") and value and not self.acquiring:
            self.store.new_sequence()
            self.acquiring = True
        elif key in ("SPC", "SPS") and value:
            self.acquiring = False

    def _forward(self, device: str, key: str, value: Any, session: str, their_id: int, quiet: bool = False,
                 at: float | None = None) -> bool:
        with self._lock:
            peer = self._devices.get(device)
            if peer is not None:
                our_id = next(self._ids)
                self._pending[our_id] = (session, their_id, device)
        if peer is None or not peer.send(Command(request_id=our_id, device=device, key=key, value=value,
                                                 session=session, at=at)):
            if peer is not None:
                with self._lock:
                    self._pending.pop(our_id, None)
            if not quiet:
                self._to_clients(Error(key=key, reason=f"device {device} is not connected", request_id=their_id,
                                       device=device, session=session))
            return False
        return True

    def _master_command(self, session: str, rid: int, key: str, value: Any, devices_too: bool = False) -> None:
        def reply(v: Any) -> None:
            self._to_clients(Reply(request_id=rid, device=vocab.MASTER, key=key, value=v, session=session))

        if key == "IDN":
            reply(vocab.MASTER)
        elif key == "LOG":
            if value == 0:
                reply({"devices": list(self.connected_devices), "acquiring": self.acquiring,
                       "clients": len(self._clients), "files_stored": self.files_stored,
                       "storage_full": self.storage_state.full})
            elif value == 1:
                with self._lock:
                    settings = {d: dict(s) for d, s in self._settings.items() if d in self._devices}
                settings[vocab.MASTER] = {"data_dir": str(self.store.data_dir), "acquiring": self.acquiring,
                                          "devices": list(self.connected_devices), "health": self.health.snapshot(),
                                          "storage_full": self.storage_state.full}
                reply(settings)
            else:
                self._to_clients(Error(key=key, reason=f"LOG {value} is not implemented (0 ping, 1 settings)",
                                       request_id=rid, device=vocab.MASTER, session=session))
        elif key == "EXT":
            reply(bool(value))
            if value:   # after 'EXT to all', let the devices deliver their spooled files first
                threading.Thread(target=self._exit_after_devices, args=(8.0 if devices_too else 0.3,),
                                 name="master-exit", daemon=True).start()
        elif key == "RST":
            reply(bool(value))   # accepted; a no-op, as in PyCam
        elif key in self.command_handlers:
            try:
                reply(self.command_handlers[key](value))
            except (CommandValueError, ValueError) as exc:
                self._to_clients(Error(key=key, reason=getattr(exc, "reason", str(exc)), request_id=rid,
                                       device=vocab.MASTER, session=session))
        else:  # pragma: no cover - route() only sends master keys here
            self._to_clients(Error(key=key, reason="not handled by master", request_id=rid, session=session))

    def _exit_after_devices(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        self.stopped.wait(0.3)
        while self.connected_devices and time.monotonic() < deadline:
            self.stopped.wait(0.1)
        self.stop()

    # ------------------------------------------------------------------------------ devices
    def _from_device(self, peer: Peer, msg: Message) -> None:
        if isinstance(msg, Data):
            self._store(peer, msg)
        elif isinstance(msg, (Reply, Error)):
            with self._lock:
                origin = self._pending.pop(msg.request_id, None) if msg.request_id is not None else None
            session, their_id = (origin[0], origin[1]) if origin else (msg.session, msg.request_id)
            if isinstance(msg, Reply):
                if msg.key == "LOG" and isinstance(msg.value, dict):
                    with self._lock:
                        self._settings[peer.device] = msg.value
                out: Message = Reply(request_id=their_id, device=peer.device, key=msg.key, value=msg.value,
                                     session=session)
            else:
                out = Error(key=msg.key, reason=msg.reason, request_id=their_id, device=peer.device,
                            session=session, filename=msg.filename)
            self._to_clients(out)
        elif isinstance(msg, Event):
            if self.health.from_device(peer.device, msg, peer.send):
                return   # a clock probe, answered
            if msg.name == "settings":
                with self._lock:
                    self._settings[peer.device] = dict(msg.fields)
            self._to_clients(Event(name=msg.name, device=peer.device, fields=msg.fields, time=msg.time))
        else:
            peer.send(Error(key=msg.kind, reason=f"devices may not send {msg.kind} messages", device=peer.device))

    def _store(self, peer: Peer, data: Data) -> None:
        meta = data.meta
        if meta.device != peer.device:
            peer.send(Error(key="device", reason=f"{meta.filename}: data from {peer.device} claims to be from "
                                                 f"{meta.device}", device=peer.device, filename=meta.filename))
            return
        problem = check_origin(peer.device, meta)
        if problem:
            log.warning("%s: refused %s", peer.device, problem)
            peer.send(Error(key="data", reason=problem, device=peer.device, filename=meta.filename))
            return
        try:
            stored = self.store.store(data)
        except DiskFull as exc:   # one storage event for the clients, not one error per file
            peer.send(Error(key="storage", reason=str(exc), device=peer.device, filename=meta.filename))
            self.storage_state.refused(str(exc))
            return
        except StorageError as exc:
            log.error("%s: %s", peer.device, exc)
            error = Error(key="data", reason=str(exc), device=peer.device, filename=meta.filename)
            peer.send(error)
            self._to_clients(error)
            return
        path = stored.path
        if stored.duplicate:   # a resend of a file already stored: acknowledge it again, nothing else
            peer.send(Ack(filename=meta.filename, path=str(path)))
            return
        if stored.conflict:
            log.warning("%s: %s differs from the stored file of that name; kept as %s", peer.device,
                        meta.filename, path)
            self._to_clients(Error(key="data", device=peer.device, filename=meta.filename,
                                   reason=f"{meta.filename}: a different file of this name is already stored; "
                                          f"the new one is kept as {path}"))
        self.files_stored += 1
        self.storage_state.stored()
        peer.send(Ack(filename=meta.filename, path=str(path)))
        self._to_clients(events.FileStored(filename=meta.filename, path=str(path), data_type=meta.data_type,
                                           frame_type=meta.frame_type).as_event(peer.device, utc_now_iso()))
        with self._lock:
            subscribers = [c for c in self._clients.values() if meta.data_type in c.subscribe]
        for client in subscribers:
            client.send(data)
        for callback in list(self.file_stored_callbacks):
            try:
                callback(path, peer.device)
            except Exception:
                log.exception("file_stored callback %r failed for %s", callback, path)

    def _publish_storage(self, event: events.StationEvent) -> None:
        """Storage state changes go to the clients, and to the devices: on "ok" they stop
        backing off and send their spools at once."""
        self.publish(event)
        message = event.as_event(vocab.MASTER, utc_now_iso())
        with self._lock:
            devices = list(self._devices.values())
        for device in devices:
            device.send(message)

    def _to_clients(self, message: Message) -> None:
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.send(message)
