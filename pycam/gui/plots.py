"""Embedded matplotlib canvases that update by blitting, never by rebuilding the figure.

:class:`BlitCanvas` owns a ``Figure`` on a Tk canvas.  Artists that change with the data are
registered with :meth:`BlitCanvas.animate` (``set_animated(True)``): a full draw renders the
static parts once and saves the background; each data update restores that background,
draws only the animated artists and blits.  A full draw happens only when the layout
changes (resize, new axis limits, new colour scale): :meth:`request_full_draw`.
``full_draws`` and ``blits`` count both paths (tests check that updates are blits).
"""
from __future__ import annotations

import concurrent.futures
import math
import threading
from typing import Callable, Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
from matplotlib.figure import Figure


class _BlitFigureCanvas(FigureCanvasTkAgg):
    """The Tk canvas; its idle redraw (after a resize or a tab first shown) goes through the
    owner, which renders off the Tk thread, instead of a synchronous full draw."""

    owner: "BlitCanvas | None" = None

    def draw_idle(self):
        owner = self.owner
        if owner is None or owner.full_draws == 0:
            super().draw_idle()
            return
        owner.request_full_draw()
        self.get_tk_widget().after_idle(owner.refresh)


class BlitCanvas:
    """A figure on a Tk canvas, updated by blitting; full redraws render off the Tk thread.

    Full draws (new axis limits or colour scale) take a few hundred ms on a busy machine,
    so after the first one they are rendered by Agg on a helper thread
    (``FigureCanvasAgg.draw``; no Tk call there) while the Tk thread keeps running.  During
    that render, :attr:`rendering` is True: views then postpone scale changes, and
    refreshes are remembered and done when the render is back (the Tk thread copies it to
    the screen and draws the animated artists).
    """

    RENDER_POLL_MS = 15

    def __init__(self, master, figsize=(5.0, 3.5), dpi: int = 80, background_render: bool = True) -> None:
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        self.canvas = _BlitFigureCanvas(self.figure, master=master)
        self.canvas.owner = self
        self.widget = self.canvas.get_tk_widget()
        self._animated: list = []
        self._background = None
        self._axes_backgrounds: dict = {}
        self._needs_full = True
        self.full_draws = 0
        self.blits = 0
        self.background_render = background_render
        self.rendering = False
        self._render_future = None
        self._render_pool = None
        self._pending_refresh = False
        self._after_render: list[Callable[[], None]] = []
        self.render_errors: list[str] = []
        self.canvas.mpl_connect("draw_event", self._on_draw)
        self.canvas.mpl_connect("resize_event", lambda _e: self._relayout())
        self._layout_done = False

    def animate(self, *artists) -> None:
        for artist in artists:
            artist.set_animated(True)
            self._animated.append(artist)

    def after_render(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now, or, while a background render reads the figure, on the Tk thread
        as soon as that render is back: changes to artists the render draws (colour scale,
        colour map, the colour bar) must not happen under it (the renderer writes the norm
        limits back and a change made meanwhile would be lost)."""
        if self.rendering:
            self._after_render.append(fn)
        else:
            fn()

    def request_full_draw(self, relayout: bool = False) -> None:
        """Redraw everything at the next refresh; ``relayout`` also re-runs the layout
        solver (new tick labels may need other margins)."""
        self._needs_full = True
        if relayout and self._layout_done and not self.rendering:
            self._layout_done = False
            self.figure.set_layout_engine("constrained")

    def _relayout(self) -> None:
        """After a resize the next full draw runs the (slow) constrained layout once more."""
        self._layout_done = False
        self.figure.set_layout_engine("constrained")
        self._needs_full = True
        self._background = None

    def _on_draw(self, _event) -> None:
        # any full draw (ours, Tk's draw_idle after a resize, or a background render) covers
        # pending layout changes
        self.full_draws += 1
        self._needs_full = False
        if not self._layout_done:
            # freeze the layout: later full draws (new axis limits) skip the layout solver
            self._layout_done = True
            self.figure.set_layout_engine("none")
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        self._axes_backgrounds = {ax: self.canvas.copy_from_bbox(ax.bbox) for ax in self.figure.axes}
        if threading.current_thread() is threading.main_thread():
            self._draw_animated()  # off the Tk thread the animated artists wait for the Tk thread

    def _draw_animated(self, only_axes=None) -> None:
        renderer = self.canvas.get_renderer()
        for artist in self._animated:
            if not artist.get_visible() or artist.figure is None:
                continue
            if only_axes is not None and artist.axes not in only_axes:
                continue
            artist.axes.draw_artist(artist) if artist.axes is not None else artist.draw(renderer)

    def refresh_axes(self, *axes) -> None:
        """Redraw only the animated artists inside ``axes`` (each blitted within its own box).

        Artists drawn outside their axes box would leave traces, so per-axes refresh is for
        artists that stay inside (images, lines, in-axes text).
        """
        if self.rendering:
            self._pending_refresh = True
            return
        if self._needs_full or self._background is None or not self.widget.winfo_ismapped() \
                or any(ax not in self._axes_backgrounds for ax in axes):
            self.refresh()
            return
        for ax in axes:
            self.canvas.restore_region(self._axes_backgrounds[ax])
        self._draw_animated(set(axes))
        for ax in axes:
            self.canvas.blit(ax.bbox)
        self.blits += 1

    def refresh(self) -> None:
        """Show the current artist data: blit if possible, full draw if the layout changed."""
        if self.rendering:
            self._pending_refresh = True
            return
        if not self.widget.winfo_ismapped():
            return  # the last picture stays; a pending full draw happens once visible
        if self._needs_full or self._background is None:
            if self.background_render and self.full_draws > 0:
                self._start_background_render()
                return
            self.canvas.draw()  # the draw_event saves the background and draws animated artists
            return
        self._blit_all()

    def _blit_all(self) -> None:
        self.canvas.restore_region(self._background)
        self._draw_animated()
        self.canvas.blit(self.figure.bbox)
        self.blits += 1

    # --- full draws off the Tk thread ------------------------------------------------------
    def _start_background_render(self) -> None:
        if self._render_pool is None:
            self._render_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                      thread_name_prefix="pycam-gui-render")
        self.rendering = True
        self._pending_refresh = False
        self._render_future = self._render_pool.submit(FigureCanvasAgg.draw, self.canvas)
        self.widget.after(self.RENDER_POLL_MS, self._finish_background_render)

    def _finish_background_render(self) -> None:
        future = self._render_future
        if future is None:
            return
        if not future.done():
            self.widget.after(self.RENDER_POLL_MS, self._finish_background_render)
            return
        self._render_future = None
        self.rendering = False
        error = future.exception()
        if error is not None:  # e.g. an artist changed under the renderer: draw again here
            self.render_errors.append(f"{type(error).__name__}: {error}")
            self._run_after_render()
            self.canvas.draw()
            return
        if self.widget.winfo_exists():
            self._blit_all()
        self._run_after_render()
        if self._needs_full and not self.rendering:  # requested while rendering
            self.refresh()

    def _run_after_render(self) -> None:
        deferred, self._after_render = self._after_render, []
        for fn in deferred:
            fn()

    def forget_artist(self, artist) -> None:
        if artist in self._animated:
            self._animated.remove(artist)

    def close(self) -> None:
        if self._render_pool is not None:
            self._render_pool.shutdown(wait=True)
            self._render_pool = None


#: image pixels per screen pixel above which live images are shown at half resolution
DISPLAY_STRIDE = 2


def display_extent(shape) -> tuple[float, float, float, float]:
    """``imshow`` extent keeping full-resolution pixel coordinates for a strided image."""
    h, w = shape[:2]
    return (-0.5, w - 0.5, h - 0.5, -0.5)


def for_display(image: np.ndarray, stride: int = DISPLAY_STRIDE) -> np.ndarray:
    """Every ``stride``-th pixel (a view): live panels are smaller than the 648x486 frames,
    and resampling the full frame on every update is the most expensive part of a blit."""
    return image[::stride, ::stride] if stride > 1 else image


def nice_limits(lo: float, hi: float) -> tuple[float, float]:
    """Round a data range outwards to a 'nice' step, so the scale changes rarely."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    span = hi - lo
    step = 10 ** math.floor(math.log10(span))
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= 5:
            step *= mult
            break
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def robust_range(values: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> tuple[float, float]:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if finite.size == 0:
        return 0.0, 1.0
    step = max(1, finite.size // 20_000)  # a subsample is enough for a colour scale
    sample = finite.ravel()[::step]
    lo, hi = np.percentile(sample, [lo_pct, hi_pct])
    return float(lo), float(hi)


class GrowingSeries:
    """Time-series lines whose x-axis grows in steps (one full draw per step, blits between)."""

    def __init__(self, blit: BlitCanvas, ax, window_s: float = 600.0) -> None:
        self.blit = blit
        self.ax = ax
        self.window_s = window_s
        self.lines: dict[str, object] = {}
        self.data: dict[str, tuple[list[float], list[float]]] = {}
        self._xlim = (0.0, 60.0)
        self._ylim = (0.0, 1.0)
        ax.set_xlim(*self._xlim)
        ax.set_ylim(*self._ylim)

    def line(self, name: str, **style):
        if name not in self.lines:
            (artist,) = self.ax.plot([], [], label=name, **style)
            self.blit.animate(artist)
            self.lines[name] = artist
            self.data[name] = ([], [])
            self.blit.request_full_draw()  # the legend changed
        return self.lines[name]

    def append(self, name: str, x: float, y: float) -> None:
        if name not in self.data:
            self.line(name)
        xs, ys = self.data[name]
        xs.append(float(x))
        ys.append(float(y))
        if len(xs) > 20_000:
            del xs[:10_000], ys[:10_000]
        self.lines[name].set_data(xs, ys)

    def fit_limits(self, extra_values: Iterable[float] = ()) -> None:
        """Extend the axes in coarse steps when data leaves them (then a full draw is due)."""
        if self.blit.rendering:
            return  # the axes are being drawn off the Tk thread: change them next time
        all_x = [x for xs, _ in self.data.values() for x in xs[-1:]]
        all_y = [y for _, ys in self.data.values() for y in ys if math.isfinite(y)]
        all_y.extend(v for v in extra_values if math.isfinite(v))
        if not all_x:
            return
        x_hi = max(all_x)
        x0, x1 = self._xlim
        if x_hi > x1:
            width = max(60.0, (x1 - x0))
            new_x1 = x_hi + width * 0.5
            new_x0 = max(x0, new_x1 - max(self.window_s, width * 1.5))
            self._xlim = (new_x0, new_x1)
            self.ax.set_xlim(*self._xlim)
            self.blit.request_full_draw(relayout=True)
        if all_y:
            lo, hi = min(all_y), max(all_y)
            y0, y1 = self._ylim
            margin = max(0.15 * (hi - lo), 0.05 * max(abs(lo), abs(hi)), 1e-12)
            target = nice_limits(lo - margin, hi + margin)
            outside = lo < y0 or hi > y1
            too_loose = len(all_y) > 5 and (y1 - y0) > 5 * (target[1] - target[0])
            if outside or too_loose:
                self._ylim = target
                self.ax.set_ylim(*self._ylim)
                self.blit.request_full_draw(relayout=True)


#: Height (axes fraction) of the crosses that mark flagged samples without a value.
FLAG_ROW = 0.04
#: How close (display px) the pointer must be to a flagged sample for its tooltip.
TOOLTIP_PX = 6.0
FLAG_GREY = "#9a9a9a"


class FlaggedMarks:
    """Grey marks for flagged emission-rate samples on a rate axis, with a hover tooltip.

    A flagged sample that kept its value gets a grey ring on it; one whose value was blanked
    (an invalidating flag, :mod:`pycam.processing.quality`) gets a grey cross along the bottom
    of the axes - never a point at zero.  Hovering within TOOLTIP_PX of a mark shows the line,
    time, value and reason codes."""

    def __init__(self, blit: BlitCanvas, ax, max_marks: int = 4000) -> None:
        from matplotlib.transforms import blended_transform_factory

        self.blit = blit
        self.ax = ax
        self.max_marks = max_marks
        self.marks: list[tuple[float, float, str, str]] = []     # (t, value or nan, line, reasons)
        (self.valued,) = ax.plot([], [], ls="none", marker="o", ms=6, mfc="none", mec=FLAG_GREY, mew=1.2, zorder=5)
        (self.blank,) = ax.plot([], [], ls="none", marker="x", ms=5, color=FLAG_GREY, zorder=5,
                                transform=blended_transform_factory(ax.transData, ax.transAxes))
        self.tip = ax.annotate("", xy=(0, 0), xytext=(8, 8), textcoords="offset points", fontsize=7,
                               bbox=dict(boxstyle="round", fc="#fffbe6", ec=FLAG_GREY), visible=False, zorder=10)
        blit.animate(self.valued, self.blank, self.tip)
        blit.figure.canvas.mpl_connect("motion_notify_event", self.hover)

    def add(self, t: float, value: float, line: str, flag: int, reason: str) -> None:
        """Record a sample (only flagged ones leave a mark); call :meth:`update` after a batch."""
        if flag:
            self.marks.append((float(t), float(value), str(line), reason or f"flag {flag}"))

    def update(self) -> None:
        del self.marks[:-self.max_marks]
        valued = [(t, v) for t, v, _l, _r in self.marks if math.isfinite(v)]
        blank = [t for t, v, _l, _r in self.marks if not math.isfinite(v)]
        self.valued.set_data([t for t, _ in valued], [v for _, v in valued])
        self.blank.set_data(blank, [FLAG_ROW] * len(blank))

    def clear(self) -> None:
        self.marks.clear()
        self.update()

    def tooltip_at(self, x_px: float, y_px: float) -> str | None:
        """The tooltip text of the mark nearest the display point, if within TOOLTIP_PX."""
        best, text = TOOLTIP_PX, None
        data = self.ax.transData.transform
        bottom = self.blank.get_transform().transform
        for t, v, line, why in self.marks:
            x, y = data((t, v)) if math.isfinite(v) else bottom((t, FLAG_ROW))
            d = math.hypot(x - x_px, y - y_px)
            if d <= best:
                best = d
                value = f"{v:.2f} kg/s" if math.isfinite(v) else "no value"
                text = f"line {line}, t={t:.0f} s: {value}\nflagged: {why.replace(';', ', ')}"
        return text

    def hover(self, event) -> None:
        text = self.tooltip_at(event.x, event.y) if event.inaxes is self.ax else None
        if text is None:
            if self.tip.get_visible():
                self.tip.set_visible(False)
                self.blit.refresh()
            return
        self.tip.xy = self.ax.transData.inverted().transform((event.x, event.y))
        self.tip.set_text(text)
        self.tip.set_visible(True)
        self.blit.refresh()
