"""The main window: connection bar, one notebook tab per view, messages pane, shortcuts.

``run_gui(config_path)`` is the entry point used by ``pycam gui``, ``pycam_gui.py`` and
``pycam demo``.  :class:`PyCamApp` builds everything on a given Tk root so tests can drive
it.  Threads: the station client's own thread (network), :class:`LiveProcessing` (camera
chain and DOAS), :class:`TaskRunner` (blocking requests, file work, batch processing).  The
Tk thread only draws; everything reaches it through :class:`GuiQueue`, polled with ``after``.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
import tkinter as tk
from pathlib import Path
from tkinter import ttk

from pycam.config import Config, ConfigError, load_config
from pycam.formats.geometry import GeometryFileError, PCSLine, read_pcs_line, write_pcs_line
from pycam.gui.forms import ReplyTracker
from pycam.gui.live import LiveProcessing
from pycam.gui.station_link import ConnectionPane, StationLink, default_client_factory
from pycam.gui.worker import GuiQueue, QueuePoller, TaskRunner

log = logging.getLogger(__name__)

THEME = "arc"
WINDOW_SIZE = "1366x768"
#: the PCS line the GUI starts with when none was saved: vertical through the image centre,
#: positive flux towards +x (left to right in the image)
DEFAULT_PCS_LINE = PCSLine(324, 60, 324, 426, "right", "0")
STATE_DIR_ENV = "PYCAM_GUI_STATE_DIR"
#: GIL switch interval while the window is open (Python's default is 5 ms)
SWITCH_INTERVAL_S = 0.0005


def gui_state_dir() -> Path:
    """Where the GUI keeps its state (the last PCS lines): ``$PYCAM_GUI_STATE_DIR``, else
    ``$XDG_CONFIG_HOME/pycam/gui``, else ``~/.config/pycam/gui``."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pycam" / "gui"


def load_saved_lines(state_dir: Path) -> list[PCSLine]:
    """The PCS lines saved in ``state_dir/pcs_lines`` (unreadable files are skipped)."""
    lines = []
    for path in sorted((state_dir / "pcs_lines").glob("pcs_line_*.txt")):
        try:
            lines.append(read_pcs_line(path, name=path.stem[len("pcs_line_"):]))
        except (GeometryFileError, ValueError) as exc:
            log.warning("ignoring saved PCS line: %s", exc)
    return lines


def save_lines(state_dir: Path, lines) -> None:
    """Replace the saved PCS lines (each file written atomically)."""
    directory = state_dir / "pcs_lines"
    directory.mkdir(parents=True, exist_ok=True)
    keep = set()
    for line in lines:
        path = directory / f"pcs_line_{line.name}.txt"
        write_pcs_line(path, line)
        keep.add(path.name)
    for old in directory.glob("pcs_line_*.txt"):
        if old.name not in keep:
            old.unlink()

#: keyboard shortcuts (shown in the Help menu): sequence -> (description, method name)
SHORTCUTS = {
    "<Control-k>": ("Connect to the station", "connect"),
    "<Control-d>": ("Disconnect", "disconnect"),
    "<F5>": ("Start automated acquisition", "start_acquisition"),
    "<F6>": ("Stop automated acquisition", "stop_acquisition"),
    "<Control-t>": ("Test image A and B", "test_images"),
    "<Control-l>": ("Retrieve settings (LOG 1)", "retrieve_settings"),
    "<Control-s>": ("Save PCS lines", "save_lines"),
    "<Control-q>": ("Quit", "quit"),
}
for _n in range(1, 8):  # Alt+1 .. Alt+7: the tabs in order
    SHORTCUTS[f"<Alt-Key-{_n}>"] = (f"Show tab {_n}", f"show_tab_{_n}")


def apply_theme(root: tk.Tk, theme: str = THEME) -> str:
    """Use a ttkthemes theme; returns the theme in use (a built-in one if ttkthemes is missing)."""
    try:
        from ttkthemes import ThemedStyle
    except ImportError:
        log.warning("ttkthemes not installed: using the default ttk theme")
        return ttk.Style(root).theme_use()
    style = ThemedStyle(root)
    if theme in style.theme_names() or theme in style.get_themes():
        style.set_theme(theme)
    return style.theme_use()


def _station_address(config: Config) -> str:
    net = config["network"]
    return f"{net['master_host']}:{net['client_port']}"


class PyCamApp:
    """Everything in the window; ``close()`` stops threads and the client."""

    def __init__(self, root: tk.Tk, config: Config, *, client_factory=default_client_factory,
                 processor_factory=None, retriever_factory=None, autoconnect: bool = True,
                 poll_interval_ms: int = 25, state_dir: Path | None = None, report=None, truth=None) -> None:
        from pycam.gui import views  # the tab modules (matplotlib) load with the window

        self.root = root
        self.config = config
        self.queue = GuiQueue()
        self.tasks = TaskRunner(self.queue)
        if processor_factory is None:
            processor_factory = views.default_processor_factory(config)
        if retriever_factory is None:
            retriever_factory = views.default_retriever_factory(config)
        self.live = LiveProcessing(self.queue, processor_factory=processor_factory,
                                   retriever_factory=retriever_factory, truth=truth)
        self.link = StationLink(self.queue, config, data_sink=self.live, client_factory=client_factory)
        self.tracker = ReplyTracker()
        self.queue.subscribe("message", self.tracker.on_message)

        root.title("PyCam")
        root.geometry(WINDOW_SIZE)
        root.minsize(1000, 640)
        self.theme = apply_theme(root)

        panes = ttk.PanedWindow(root, orient="vertical")
        panes.pack(fill="both", expand=True)
        self.notebook = ttk.Notebook(panes)
        panes.add(self.notebook, weight=5)
        # the connection bar and messages pane sit below the tabs
        self.connection = ConnectionPane(panes, self.queue, on_connect=self.connect,
                                         on_disconnect=self.disconnect, on_edit_address=self.edit_address)
        self.connection.set_address(_station_address(config))
        panes.add(self.connection, weight=1)

        self.views = views.build_views(self)
        for title, view in self.views.items():
            self.notebook.add(view, text=title)
        self.state_dir = Path(state_dir) if state_dir is not None else gui_state_dir()
        analysis = self.views["Analysis"]
        analysis.editor.set_lines(load_saved_lines(self.state_dir) or [DEFAULT_PCS_LINE])
        analysis.editor.on_change = self._lines_edited
        self._bind_shortcuts()
        self._build_menu()

        # The Tk thread competes for the GIL with the client, live-processing and render
        # threads; a short switch interval keeps its waits (convoy effect) to a few ms.
        self._previous_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._started = time.monotonic()
        self.milestones: dict[str, float] = {}
        self._report = report
        self._watch_milestones()
        self.poller = QueuePoller(root, self.queue, interval_ms=poll_interval_ms)
        self.poller.start()
        self.live.start()
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self.ready = False
        self._autoconnect = autoconnect
        root.after(20, self._warm_up, 0)

    def _milestone(self, name: str) -> None:
        if name not in self.milestones:
            self.milestones[name] = time.monotonic() - self._started
            if self._report is not None:
                self._report(f"gui: {name} ({self.milestones[name]:.1f} s after start)")

    def _watch_milestones(self) -> None:
        """Note (and report, e.g. on the console of ``pycam demo``) when each kind of live result
        first reaches the window."""
        seen: set[str] = set()

        def image(frame) -> None:
            seen.add(frame.band)
            if {"A", "B"} <= seen:
                self._milestone("live A/B images shown")

        def fit(item) -> None:
            if item[1].ok:
                self._milestone("spectrum with its DOAS fit shown")

        def so2(result) -> None:
            if "column" in result.images:
                self._milestone("calibrated SO2 image shown")
            if "total" in result.rates:
                self._milestone("emission-rate series started")

        self.queue.subscribe("image", image)
        self.queue.subscribe("doas", fit)
        self.queue.subscribe("so2", so2)

    def _lines_edited(self, lines) -> None:
        self.views["Analysis"]._lines_changed(lines)
        self.tasks.submit(save_lines, self.state_dir, list(lines),
                          on_error=lambda exc: self.queue.post("error", f"cannot remember PCS lines: {exc}"))

    def canvases(self, view) -> list:
        """The blitting canvases of a view (and of its sub-panels such as the wizard)."""
        from pycam.gui.plots import BlitCanvas

        found = []
        for value in vars(view).values():
            if isinstance(value, BlitCanvas):
                found.append(value)
            elif isinstance(value, (ttk.Frame, ttk.LabelFrame)) and value is not view:
                found.extend(v for v in vars(value).values() if isinstance(v, BlitCanvas))
        return found

    def _warm_up(self, index: int) -> None:
        """Lay out and draw each tab once before data flows (first draws are the slow ones)."""
        tabs = self.notebook.tabs()
        if index < len(tabs):
            self.notebook.select(tabs[index])
            self.root.update_idletasks()
            for canvas in self.canvases(self.notebook.nametowidget(tabs[index])):
                canvas.refresh()
            self.root.after(20, self._warm_up, index + 1)
            return
        self.notebook.select(tabs[0])
        self.ready = True
        if self._autoconnect:
            self.connect()
        self._check_link()

    def _check_link(self) -> None:
        self.link.check_error()
        if not getattr(self, "_closed", False):
            self.root.after(1000, self._check_link)

    # --- actions (also bound to shortcuts) ----------------------------------------------
    def send(self, device: str, key: str, value):
        return self.link.send(device, key, value)

    def connect(self) -> None:
        try:
            self.link.connect()
        except Exception as exc:
            self.queue.post("error", f"cannot connect to {_station_address(self.config)}: {exc}")

    def disconnect(self) -> None:
        self.link.disconnect()

    def edit_address(self) -> None:
        from pycam.gui.dialogs import AddressDialog

        dialog = AddressDialog(self.root, self.config)
        self.root.wait_window(dialog)
        if dialog.result is not None:
            self.config = dialog.result
            self.link.config = dialog.result
            self.connection.set_address(_station_address(dialog.result))
            self.connect()

    def _view_action(self, view_title: str, method: str) -> None:
        view = self.views.get(view_title)
        if view is not None:
            getattr(view, method)()

    def start_acquisition(self) -> None:
        self._view_action("Acquisition", "start_acquisition")

    def stop_acquisition(self) -> None:
        self._view_action("Acquisition", "stop_acquisition")

    def test_images(self) -> None:
        self._view_action("Acquisition", "test_images")

    def retrieve_settings(self) -> None:
        self._view_action("Acquisition", "retrieve_settings")

    def save_lines(self) -> None:
        self._view_action("Analysis", "save_lines_dialog")

    def show_view(self, title: str) -> None:
        self.notebook.select(self.views[title])

    def show_tab(self, index: int) -> None:
        tabs = self.notebook.tabs()
        if 0 <= index < len(tabs):
            self.notebook.select(tabs[index])

    def _bind_shortcuts(self) -> None:
        for sequence, (_description, method) in SHORTCUTS.items():
            if method.startswith("show_tab_"):
                index = int(method.rsplit("_", 1)[1]) - 1
                self.root.bind_all(sequence, lambda _e, i=index: self.show_tab(i))
            else:
                self.root.bind_all(sequence, lambda _e, m=method: getattr(self, m)())

    def _build_menu(self) -> None:
        menu = tk.Menu(self.root)
        station = tk.Menu(menu, tearoff=False)
        station.add_command(label="Connect", accelerator="Ctrl+K", command=self.connect)
        station.add_command(label="Disconnect", accelerator="Ctrl+D", command=self.disconnect)
        station.add_command(label="Station address…", command=self.edit_address)
        station.add_separator()
        station.add_command(label="Quit", accelerator="Ctrl+Q", command=self.quit)
        menu.add_cascade(label="Station", menu=station)
        acquisition = tk.Menu(menu, tearoff=False)
        acquisition.add_command(label="Start acquisition", accelerator="F5", command=self.start_acquisition)
        acquisition.add_command(label="Stop acquisition", accelerator="F6", command=self.stop_acquisition)
        acquisition.add_command(label="Test images", accelerator="Ctrl+T", command=self.test_images)
        acquisition.add_command(label="Retrieve settings", accelerator="Ctrl+L", command=self.retrieve_settings)
        menu.add_cascade(label="Acquisition", menu=acquisition)
        help_menu = tk.Menu(menu, tearoff=False)
        help_menu.add_command(label="Keyboard shortcuts", command=self.show_shortcuts)
        menu.add_cascade(label="Help", menu=help_menu)
        self.root.configure(menu=menu)

    def show_shortcuts(self) -> None:
        from tkinter import messagebox

        text = "\n".join(f"{seq.strip('<>')}: {desc}" for seq, (desc, _m) in SHORTCUTS.items())
        messagebox.showinfo("Keyboard shortcuts", text, parent=self.root)

    def close(self) -> None:
        self.poller.stop()
        sys.setswitchinterval(self._previous_switch_interval)
        try:
            self.link.disconnect(wait=True)
        finally:
            self.live.stop()
            self.tasks.shutdown()
            for view in self.views.values():
                for canvas in self.canvases(view):
                    canvas.close()
                closer = getattr(view, "close", None)
                if closer is not None:
                    closer()

    def quit(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.close()
        self.root.destroy()


def take_clear_pair_when_connected(app: "PyCamApp", poll_ms: int = 500) -> None:
    """The simulated demo: once connected, take one Clear frame per camera (the live chain's
    clear-sky background, see ``LiveProcessing``)."""
    def check() -> None:
        if app.link.state == "connected":
            app.send("CM1", "TPA", "Clear")
            app.send("CM2", "TPB", "Clear")
        else:
            app.root.after(poll_ms, check)

    app.root.after(poll_ms, check)


def run_gui(config_path: Path, duration_s: float | None = None, show_truth: bool = False) -> int:
    """Open the GUI connected to the station in ``config_path``; returns the exit code.

    ``duration_s`` closes the window after that many seconds (for scripted demos);
    ``show_truth`` (the simulated demo) plots the simulator's true rate beside the live one."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"pycam gui: {exc}")
        return 2
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        print(f"pycam gui: no display available ({exc}); use `pycam demo --headless` without one")
        return 2
    truth = None
    if show_truth:
        from pycam.sim.line_truth import SimTruth

        truth = SimTruth(config).rate
    app = PyCamApp(root, config, report=lambda text: print(text, flush=True), truth=truth)
    if show_truth:
        take_clear_pair_when_connected(app)
    if duration_s is not None:
        root.after(int(duration_s * 1000), app.quit)
    # Ctrl-C / SIGTERM close the window cleanly (Tk callbacks would swallow KeyboardInterrupt)
    stop_requested: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def check_stop() -> None:
        if stop_requested:
            app.quit()
        else:
            root.after(200, check_stop)

    root.after(200, check_stop)
    try:
        root.mainloop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if stop_requested and stop_requested[0] == signal.SIGINT else 0
