"""A loss chart: one to three curves in braille filling the widget, with axes and a legend.

Curves come from log lines or TensorBoard event files (:class:`~runctl_tui.logs.chart.Series`);
names are data, drawn as plain segments, never as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from runctl_tui.logs.chart import Plot, Series, braille_plot, format_value
from runctl_tui.text import clean, clip

__all__ = ["SERIES_STYLES", "MetricsChart", "Series"]

SERIES_STYLES = ("#61afef", "#e5c07b", "#c678dd")
"""Colours for the first, second and third curve when a series names none."""
MAX_SERIES = 3

_MUTED = Style(color="#7f848e")
_AXIS = Style(color="#5c6370")


def _style(series: Series, index: int) -> Style:
    try:
        return Style.parse(series.style or SERIES_STYLES[index % len(SERIES_STYLES)])
    except Exception:  # noqa: BLE001 - a style from config that Rich cannot parse
        return Style.parse(SERIES_STYLES[index % len(SERIES_STYLES)])


def _latest(points: Sequence[tuple[float, float]]) -> float | None:
    for _, value in reversed(points):
        if math.isfinite(value):
            return value
    return None


class MetricsChart(Widget):
    """Curves of a run (loss, eval loss, ...) as a braille line chart with a legend."""

    DEFAULT_CSS = """
    MetricsChart {
        height: 10;
        width: 1fr;
    }
    """

    log_scale: reactive[bool] = reactive(False)
    """Whether values are drawn on a log scale (values not above zero are then left out)."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._series: tuple[Series, ...] = ()
        self._lines: list[Strip] | None = None
        self._drawn_for: tuple[int, int, bool] | None = None
        self.draws = 0
        """How many times the chart was laid out: once per change of data, size or scale."""

    @property
    def series(self) -> tuple[Series, ...]:
        """The curves shown."""
        return self._series

    def set_series(self, series: Sequence[Series]) -> bool:
        """Show ``series`` (the first three); redraws only when they differ from what is shown.
        Whether they did."""
        new = tuple(series[:MAX_SERIES])
        if new == self._series:
            return False
        self._series = new
        self._lines = None
        self.refresh()
        return True

    def toggle_log_scale(self) -> None:
        """Switch between a linear and a log scale."""
        self.log_scale = not self.log_scale

    def watch_log_scale(self) -> None:
        self._lines = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """Row ``y`` of the chart."""
        width, height = self.size
        key = (width, height, self.log_scale)
        if self._lines is None or self._drawn_for != key:
            self._lines = self._layout(width, height)
            self._drawn_for = key
            self.draws += 1
        if 0 <= y < len(self._lines):
            return self._lines[y]
        return Strip.blank(width, self.rich_style)

    # -- layout -------------------------------------------------------------------------------

    def _layout(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        blank = Strip.blank(width, base)
        lines = [blank] * height
        if width <= 0 or height <= 0:
            return lines
        if not self._series:
            lines[0] = self._fit([Segment("no metrics yet", base + _MUTED)], width)
            return lines
        plot_rows = height - 1 if height < 3 else height - 2
        points = [s.points for s in self._series]
        gutter = 5
        for _ in range(3):
            if width - gutter < 4:
                gutter = 0
            plot = braille_plot(points, width - gutter, max(1, plot_rows), log_scale=self.log_scale)
            labels = ("", "")
            if plot.high is not None and plot.low is not None:
                labels = (format_value(plot.high), format_value(plot.low))
            needed = max(map(len, labels)) + 1 if labels[0] and gutter else 0
            if needed <= gutter:
                break
            gutter = needed
        lines[0] = self._legend(plot, width)
        if plot_rows <= 0:
            return lines
        styles = [base + _style(s, i) for i, s in enumerate(self._series)]
        for row in range(plot_rows):
            segments: list[Segment] = []
            if gutter:
                label = labels[0] if row == 0 else labels[1] if row == plot_rows - 1 else ""
                tick = "┤" if label else "│"
                segments.append(Segment(label.rjust(gutter - 1) + tick, base + _AXIS))
            segments.extend(self._plot_row(plot, row, styles, base))
            lines[1 + row] = self._fit(segments, width)
        if height >= 3:
            lines[height - 1] = self._x_axis(plot, width, gutter)
        return lines

    def _plot_row(self, plot: Plot, row: int, styles: list[Style], base: Style) -> list[Segment]:
        segments: list[Segment] = []
        run: list[str] = []
        run_style: Style | None = None
        for x in range(plot.width):
            owner = plot.owner(x, row)
            bits = 0
            for layer in plot.layers:
                bits |= layer[row][x]
            style = styles[owner] if owner is not None else base
            if style is not run_style and run:
                segments.append(Segment("".join(run), run_style))
                run = []
            run_style = style
            run.append(chr(0x2800 + bits) if bits else " ")
        if run:
            segments.append(Segment("".join(run), run_style))
        return segments

    def _legend(self, plot: Plot, width: int) -> Strip:
        base = self.rich_style
        segments: list[Segment] = []
        for index, series in enumerate(self._series):
            if index:
                segments.append(Segment("   ", base))
            latest = _latest(series.points)
            segments.append(Segment("━━ ", base + _style(series, index)))
            segments.append(Segment(clip(clean(series.name), 32), base + Style(bold=True)))
            segments.append(Segment(f" {clean(series.source)} ", base + _MUTED))
            segments.append(Segment(format_value(latest) if latest is not None else "–", base))
            skipped = plot.skipped[index]
            if skipped:
                what = "nan" if not self.log_scale else "left out"
                segments.append(Segment(f" ({skipped} {what})", base + _MUTED))
        if self.log_scale:
            segments.append(Segment("   log scale", base + _MUTED))
        return self._fit(segments, width)

    def _x_axis(self, plot: Plot, width: int, gutter: int) -> Strip:
        base = self.rich_style
        if plot.x_low is None or plot.x_high is None:
            return Strip.blank(width, base)
        first, last = format_value(plot.x_low), format_value(plot.x_high)
        inner = width - gutter
        fill = inner - len(first) - len(last) - 2
        text = f"{first}…{last}"[:inner] if fill < 1 else f"{first} {'─' * fill} {last}"
        return self._fit([Segment(" " * gutter, base), Segment(text, base + _AXIS)], width)

    def _fit(self, segments: list[Segment], width: int) -> Strip:
        return Strip(segments).crop(0, width).extend_cell_length(width, self.rich_style)
