"""Threading model of the GUI: nothing slow ever runs on the Tk thread.

* :class:`GuiQueue` is the only way results reach widgets.  Any thread ``post``\\ s an
  event ``(kind, payload)``; the Tk thread drains the queue from an ``after`` callback
  (:meth:`GuiQueue.pump`), with a time budget per tick so a burst never freezes the window.
  Events posted with a ``coalesce`` key replace an older, not yet delivered event with the
  same key (live images: only the newest frame is drawn).
* :class:`TaskRunner` runs blocking calls (``client.request``, file IO, a batch run) on a
  small thread pool and posts their result or error back as events.
* :class:`TickMonitor` records the gap between consecutive ``after`` ticks: the longest gap
  is how long the event loop was blocked (used by tests and ``benchmarks/gui_latency.py``).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GuiEvent:
    """One thing for the Tk thread to show: ``kind`` selects the handlers."""

    kind: str
    payload: Any = None
    posted: float = dataclasses.field(default_factory=time.monotonic)


class GuiQueue:
    """Thread-safe event queue drained on the Tk thread by an ``after`` loop.

    Handlers are registered per kind with :meth:`subscribe`; they run on the Tk thread only.
    """

    def __init__(self, max_pending: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._order: collections.deque[tuple[int, GuiEvent, str | None]] = collections.deque()
        self._latest_for_key: dict[str, int] = {}
        self._seq = itertools.count()
        self._max_pending = max_pending
        self._handlers: dict[str, list[Callable[[Any], None]]] = collections.defaultdict(list)
        self.dropped = 0
        self.delivered = 0
        self.handler_errors: list[str] = []
        #: longest time the handlers of one event took, per kind (seconds, Tk thread)
        self.slowest: dict[str, float] = {}

    # --- any thread -------------------------------------------------------------------
    def post(self, kind: str, payload: Any = None, *, coalesce: str | None = None) -> None:
        """Queue an event; with ``coalesce`` an older undelivered event with that key is dropped."""
        event = GuiEvent(kind, payload)
        with self._lock:
            seq = next(self._seq)
            if coalesce is not None:
                if coalesce in self._latest_for_key:
                    self.dropped += 1
                self._latest_for_key[coalesce] = seq
            if len(self._order) >= self._max_pending:
                self._order.popleft()
                self.dropped += 1
            self._order.append((seq, event, coalesce))

    def pending(self) -> int:
        with self._lock:
            return len(self._order)

    # --- Tk thread --------------------------------------------------------------------
    def subscribe(self, kind: str, handler: Callable[[Any], None]) -> None:
        self._handlers[kind].append(handler)

    def _next(self) -> GuiEvent | None:
        with self._lock:
            while self._order:
                seq, event, key = self._order.popleft()
                if key is not None:
                    if self._latest_for_key.get(key) != seq:
                        continue  # superseded by a newer event with the same key
                    del self._latest_for_key[key]
                return event
            return None

    def pump(self, budget_s: float = 0.03) -> int:
        """Deliver queued events until empty or ``budget_s`` is spent; returns how many."""
        start = time.monotonic()
        count = 0
        while time.monotonic() - start < budget_s:
            event = self._next()
            if event is None:
                break
            count += 1
            started = time.monotonic()
            for handler in list(self._handlers.get(event.kind, ())):
                try:
                    handler(event.payload)
                except Exception as exc:  # a broken handler must not stop the pump
                    message = f"{event.kind}: {type(exc).__name__}: {exc}"
                    log.exception("GUI handler failed for %s", event.kind)
                    self.handler_errors.append(message)
            spent = time.monotonic() - started
            if spent > self.slowest.get(event.kind, 0.0):
                self.slowest[event.kind] = spent
        self.delivered += count
        return count


class TickMonitor:
    """Longest interval between ``after`` ticks (the event loop's worst blocking time)."""

    def __init__(self, expected_interval_s: float) -> None:
        self.expected_interval_s = expected_interval_s
        self._last: float | None = None
        self.max_gap_s = 0.0
        self.ticks = 0
        self.gaps: list[float] = []

    def tick(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            gap = now - self._last
            self.gaps.append(gap)
            if len(self.gaps) > 100_000:
                del self.gaps[:50_000]
            self.max_gap_s = max(self.max_gap_s, gap)
        self._last = now
        self.ticks += 1

    def reset(self) -> None:
        self._last = None
        self.max_gap_s = 0.0
        self.ticks = 0
        self.gaps.clear()

    @property
    def max_blocked_s(self) -> float:
        """Longest gap minus the scheduled interval: time the loop could not run."""
        return max(0.0, self.max_gap_s - self.expected_interval_s)


class QueuePoller:
    """The ``after`` loop: drains a :class:`GuiQueue` every ``interval_ms`` on the Tk thread."""

    def __init__(self, tk_widget, queue: GuiQueue, interval_ms: int = 25, budget_s: float = 0.03) -> None:
        self._widget = tk_widget
        self._queue = queue
        self.interval_ms = interval_ms
        self.budget_s = budget_s
        self.monitor = TickMonitor(interval_ms / 1000.0)
        self._after_id: str | None = None
        self._running = False

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._after_id = self._widget.after(self.interval_ms, self._tick)

    def stop(self) -> None:
        self._running = False
        if self._after_id is not None:
            try:
                self._widget.after_cancel(self._after_id)
            except Exception:
                pass
            self._after_id = None

    def _tick(self) -> None:
        if not self._running:
            return
        self.monitor.tick()
        try:
            self._queue.pump(self.budget_s)
        finally:
            if self._running:
                self._after_id = self._widget.after(self.interval_ms, self._tick)


class TaskRunner:
    """Runs blocking callables on worker threads; results come back as GUI events.

    ``submit(fn, ..., on_done=cb, on_error=cb)``: ``cb`` runs on the Tk thread (through the
    queue) with the result or the exception.
    """

    def __init__(self, queue: GuiQueue, workers: int = 2, name: str = "pycam-gui-task") -> None:
        self._queue = queue
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._closed = False
        queue.subscribe("_task_done", self._deliver)

    @staticmethod
    def _deliver(payload) -> None:
        callback, value = payload
        if callback is not None:
            callback(value)

    def submit(self, fn: Callable[..., Any], *args, on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None, **kwargs) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("task runner is shut down")

        def job():
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # reported to the GUI, never lost
                self._queue.post("_task_done", (on_error, exc))
                if on_error is None:
                    self._queue.post("error", f"{getattr(fn, '__name__', 'task')}: {exc}")
                return None
            self._queue.post("_task_done", (on_done, result))
            return result

        return self._pool.submit(job)

    def shutdown(self, wait: bool = False) -> None:
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
