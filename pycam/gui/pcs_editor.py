"""Mouse editing of plume cross-section (PCS) lines on an image axes.

* Drag on empty image space: draw a new line (0 -> 1 in the drag direction).
* Press near an end point and drag: move that end; press near the line's body: move it.
* Right click on a line, or select it and press Delete: remove it.

Lines are :class:`pycam.formats.geometry.PCSLine` in image pixels (648x486, origin top
left) and are saved in PyCam's line format with :func:`write_pcs_line`.  The artists are
animated, so dragging only blits.  ``on_change(lines)`` is called after every edit.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from pycam.formats.geometry import PCSLine, read_pcs_line, write_pcs_line

PICK_RADIUS_PX = 8.0  # in image pixels
MIN_LENGTH_PX = 5.0
LINE_COLOURS = ("#00e5ff", "#ffeb3b", "#76ff03", "#ff4081", "#ffffff", "#ff9100")


def _distance_to_segment(px, py, x0, y0, x1, y1) -> float:
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - x0) * dx + (py - y0) * dy) / length2))
    return math.hypot(px - (x0 + t * dx), py - (y0 + t * dy))


def normal_tip(line: PCSLine, length: float = 15.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """Segment from the midpoint along the positive-flux normal, in image coordinates.

    Same rule as the processing chain (pyplis's): the normals are (-dy, dx) and (dy, -dx);
    ``left`` is the first and ``right`` the second, swapped when dx*dy < 0.
    """
    mx, my = (line.x0 + line.x1) / 2, (line.y0 + line.y1) / 2
    dx, dy = line.x1 - line.x0, line.y1 - line.y0
    norm = math.hypot(dx, dy) or 1.0
    first = (-dy / norm, dx / norm)
    left = (-first[0], -first[1]) if dx * dy < 0 else first
    nx, ny = left if line.orientation == "left" else (-left[0], -left[1])
    return (mx, my), (mx + nx * length, my + ny * length)


class PCSEditor:
    def __init__(self, blit_canvas, ax, image_shape=(486, 648),
                 on_change: Callable[[list[PCSLine]], None] | None = None) -> None:
        self.blit = blit_canvas
        self.ax = ax
        self.height, self.width = image_shape
        self.on_change = on_change
        self.lines: list[PCSLine] = []
        self._artists: list[tuple] = []   # (line artist, normal artist, label artist)
        self.selected: int | None = None
        self.enabled = True
        self._drag: dict | None = None
        self._counter = 0
        canvas = blit_canvas.canvas
        canvas.mpl_connect("button_press_event", self._press)
        canvas.mpl_connect("motion_notify_event", self._motion)
        canvas.mpl_connect("button_release_event", self._release)

    # --- model ---------------------------------------------------------------------
    def _next_name(self) -> str:
        taken = {line.name for line in self.lines}
        while str(self._counter) in taken:
            self._counter += 1
        return str(self._counter)

    def _clip(self, x: float, y: float) -> tuple[int, int]:
        return (int(round(min(max(x, 0), self.width - 1))), int(round(min(max(y, 0), self.height - 1))))

    def set_lines(self, lines, notify: bool = True) -> None:
        self.lines = list(lines)
        self.selected = None
        self._rebuild_artists()
        if notify:
            self._changed()

    def add_line(self, x0, y0, x1, y1, orientation: str = "left", name: str | None = None) -> PCSLine:
        (ax0, ay0), (ax1, ay1) = self._clip(x0, y0), self._clip(x1, y1)
        line = PCSLine(ax0, ay0, ax1, ay1, orientation, name or self._next_name())
        self.lines.append(line)
        self.selected = len(self.lines) - 1
        self._rebuild_artists()
        self._changed()
        return line

    def delete(self, index: int | None = None) -> None:
        index = self.selected if index is None else index
        if index is None or not 0 <= index < len(self.lines):
            return
        del self.lines[index]
        self.selected = None
        self._rebuild_artists()
        self._changed()

    def flip_selected(self) -> None:
        if self.selected is None:
            return
        line = self.lines[self.selected]
        self.lines[self.selected] = PCSLine(line.x0, line.y0, line.x1, line.y1,
                                            "right" if line.orientation == "left" else "left", line.name)
        self._update_artists()
        self._changed()

    def save(self, directory: str | Path) -> list[Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [write_pcs_line(directory / f"pcs_line_{line.name}.txt", line) for line in self.lines]

    def load(self, paths) -> None:
        lines = []
        for path in paths:
            stem = Path(path).stem
            name = stem[len("pcs_line_"):] if stem.startswith("pcs_line_") else stem
            lines.append(read_pcs_line(path, name=name))
        self.set_lines(lines)

    def _changed(self) -> None:
        self.blit.refresh()
        if self.on_change is not None:
            self.on_change(list(self.lines))

    # --- artists -----------------------------------------------------------------------
    def _rebuild_artists(self) -> None:
        for artists in self._artists:
            for artist in artists:
                self.blit.forget_artist(artist)
                artist.remove()
        self._artists = []
        for i, _line in enumerate(self.lines):
            colour = LINE_COLOURS[i % len(LINE_COLOURS)]
            (body,) = self.ax.plot([], [], color=colour, lw=2.0, marker="o", ms=4)
            (normal,) = self.ax.plot([], [], color=colour, lw=1.2)
            label = self.ax.text(0, 0, "", color=colour, fontsize=9, fontweight="bold")
            self.blit.animate(body, normal, label)
            self._artists.append((body, normal, label))
        self._update_artists()

    def _update_artists(self) -> None:
        for i, (line, (body, normal, label)) in enumerate(zip(self.lines, self._artists)):
            body.set_data([line.x0, line.x1], [line.y0, line.y1])
            body.set_linewidth(3.0 if i == self.selected else 1.8)
            (mx, my), (tx, ty) = normal_tip(line)
            normal.set_data([mx, tx], [my, ty])
            label.set_position((line.x1 + 4, line.y1))
            label.set_text(line.name)

    # --- mouse -------------------------------------------------------------------------
    def hit(self, x: float, y: float) -> tuple[int, str] | None:
        """(index, 'p0'|'p1'|'body') of the line under (x, y), or None."""
        best = None
        for i, line in enumerate(self.lines):
            for part, (px, py) in (("p0", (line.x0, line.y0)), ("p1", (line.x1, line.y1))):
                d = math.hypot(x - px, y - py)
                if d <= PICK_RADIUS_PX and (best is None or d < best[0]):
                    best = (d, i, part)
            if best is None or best[2] == "body":
                d = _distance_to_segment(x, y, line.x0, line.y0, line.x1, line.y1)
                if d <= PICK_RADIUS_PX and (best is None or d < best[0]):
                    best = (d, i, "body")
        return None if best is None else (best[1], best[2])

    def _press(self, event) -> None:
        if not self.enabled or event.inaxes is not self.ax or event.xdata is None:
            return
        hit = self.hit(event.xdata, event.ydata)
        if event.button == 3:
            if hit is not None:
                self.delete(hit[0])
            return
        if event.button != 1:
            return
        if hit is not None:
            self.selected = hit[0]
            self._drag = {"mode": hit[1], "index": hit[0], "start": (event.xdata, event.ydata),
                          "line": self.lines[hit[0]]}
        else:
            self.selected = None
            self._drag = {"mode": "new", "start": (event.xdata, event.ydata)}
            (preview,) = self.ax.plot([], [], color="#ffffff", lw=1.5, ls="--")
            self.blit.animate(preview)
            self._drag["preview"] = preview
        self._update_artists()
        self.blit.refresh()

    def _motion(self, event) -> None:
        if self._drag is None or event.inaxes is not self.ax or event.xdata is None:
            return
        x, y = event.xdata, event.ydata
        drag = self._drag
        if drag["mode"] == "new":
            sx, sy = drag["start"]
            drag["preview"].set_data([sx, x], [sy, y])
        else:
            self.lines[drag["index"]] = self._moved(drag, x, y) or self.lines[drag["index"]]
            self._update_artists()
        self.blit.refresh()

    def _moved(self, drag, x, y) -> PCSLine | None:
        line: PCSLine = drag["line"]
        if drag["mode"] == "body":
            dx, dy = x - drag["start"][0], y - drag["start"][1]
            p0, p1 = self._clip(line.x0 + dx, line.y0 + dy), self._clip(line.x1 + dx, line.y1 + dy)
        elif drag["mode"] == "p0":
            p0, p1 = self._clip(x, y), (line.x1, line.y1)
        else:
            p0, p1 = (line.x0, line.y0), self._clip(x, y)
        if math.hypot(p1[0] - p0[0], p1[1] - p0[1]) < MIN_LENGTH_PX:
            return None
        return PCSLine(p0[0], p0[1], p1[0], p1[1], line.orientation, line.name)

    def _release(self, event) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        if drag["mode"] == "new":
            preview = drag["preview"]
            self.blit.forget_artist(preview)
            preview.remove()
            if event.xdata is not None and event.inaxes is self.ax:
                sx, sy = drag["start"]
                if math.hypot(event.xdata - sx, event.ydata - sy) >= MIN_LENGTH_PX:
                    self.add_line(sx, sy, event.xdata, event.ydata)
                    return
            self.blit.refresh()
        else:
            self._changed()
