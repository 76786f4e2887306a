"""A loss curve in braille characters: eight dots per cell, so a small pane shows a long run.

Pure text, no Textual: the log pane draws the lines this returns, and ``status``-like commands
could print them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BRAILLE_BASE = 0x2800
"""U+2800, the blank braille pattern; each of the 8 dots adds one bit."""

# Bit of each dot, by (column, row) inside a cell of 2 columns and 4 rows.
_DOT = {
    (0, 0): 0x01,
    (0, 1): 0x02,
    (0, 2): 0x04,
    (0, 3): 0x40,
    (1, 0): 0x08,
    (1, 1): 0x10,
    (1, 2): 0x20,
    (1, 3): 0x80,
}


@dataclass(frozen=True)
class Chart:
    """A drawn curve: its rows of text, top first, and the range of values it spans."""

    rows: tuple[str, ...]
    low: float | None
    """The smallest finite value drawn; ``None`` when nothing could be drawn."""
    high: float | None
    points: int
    """How many values were drawn (non-finite ones are left out)."""
    skipped: int
    """How many values were NaN or infinite, and so not drawn."""


def _buckets(values: Sequence[float], columns: int) -> list[float | None]:
    """``values`` cut into ``columns`` buckets in order, each the mean of its finite values."""
    if not values:
        return []
    if len(values) <= columns:
        return [v if math.isfinite(v) else None for v in values]
    out: list[float | None] = []
    for column in range(columns):
        start = column * len(values) // columns
        end = max(start + 1, (column + 1) * len(values) // columns)
        finite = [v for v in values[start:end] if math.isfinite(v)]
        out.append(sum(finite) / len(finite) if finite else None)
    return out


def braille_chart(values: Sequence[float], width: int, height: int) -> Chart:
    """``values`` (oldest first) as a line of braille dots ``width`` cells by ``height`` rows.

    Long series are averaged into as many points as there are dot columns; NaN and infinite
    values are not drawn (and counted in :attr:`Chart.skipped`); a flat series is drawn
    through the middle.
    """
    width, height = max(1, width), max(1, height)
    skipped = sum(1 for v in values if not math.isfinite(v))
    points = _buckets(values, width * 2)
    finite = [p for p in points if p is not None]
    blank = tuple(chr(BRAILLE_BASE) * width for _ in range(height))
    if not finite:
        return Chart(blank, None, None, 0, skipped)
    low, high = min(finite), max(finite)
    dots_high = height * 4
    cells = [[0] * width for _ in range(height)]
    previous: int | None = None
    for x, point in enumerate(points):
        if point is None:
            previous = None
            continue
        if high == low:
            y = dots_high // 2
        else:
            y = round((high - point) / (high - low) * (dots_high - 1))
        # Join to the previous point with a vertical run, so a steep drop reads as a line.
        top, bottom = (y, y) if previous is None else (min(y, previous), max(y, previous))
        for dot_y in range(top, bottom + 1):
            cells[dot_y // 4][x // 2] |= _DOT[(x % 2, dot_y % 4)]
        previous = y
    rows = tuple("".join(chr(BRAILLE_BASE + bits) for bits in row) for row in cells)
    return Chart(rows, low, high, len(finite), skipped)


def sparkline(values: Sequence[float], width: int) -> str:
    """One row of ``▁▂▃▄▅▆▇█`` for ``values``, averaged to ``width`` characters; ``·`` where
    a bucket held no finite value."""
    bars = "▁▂▃▄▅▆▇█"
    points = _buckets(values, max(1, width))
    finite = [p for p in points if p is not None]
    if not finite:
        return "·" * len(points)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for point in points:
        if point is None:
            out.append("·")
        elif span == 0:
            out.append(bars[len(bars) // 2])
        else:
            out.append(bars[min(len(bars) - 1, int((point - low) / span * len(bars)))])
    return "".join(out)


@dataclass(frozen=True)
class Series:
    """One named curve for :func:`braille_plot`: ``(x, y)`` points oldest first (x is the
    step, not necessarily evenly spaced), where they came from and the colour to draw them in."""

    name: str
    points: tuple[tuple[float, float], ...]
    source: str = "log"
    """``log`` (parsed from log lines) or ``tensorboard`` (read from event files)."""
    style: str = ""
    """A Rich style (``#e5c07b``, ``bold cyan``); empty for the default colour."""


@dataclass(frozen=True)
class Plot:
    """Several curves drawn on one grid of braille cells, sharing their x and y ranges."""

    layers: tuple[tuple[tuple[int, ...], ...], ...]
    """Per curve, the dot bits of every cell, rows top first."""
    width: int
    height: int
    low: float | None
    """The smallest value drawn (of every curve); ``None`` when nothing could be drawn."""
    high: float | None
    x_low: float | None
    """The first and last x drawn."""
    x_high: float | None
    drawn: tuple[int, ...]
    """Per curve, how many points were drawn."""
    skipped: tuple[int, ...]
    """Per curve, how many points were left out: NaN or infinite (or not positive on a log
    scale)."""
    log_scale: bool = False

    def rows(self) -> tuple[str, ...]:
        """Every curve's dots together, as rows of braille characters."""
        out = []
        for y in range(self.height):
            bits = [0] * self.width
            for layer in self.layers:
                for x, cell in enumerate(layer[y]):
                    bits[x] |= cell
            out.append("".join(chr(BRAILLE_BASE + b) for b in bits))
        return tuple(out)

    def owner(self, x: int, y: int) -> int | None:
        """The curve drawn on top in cell ``(x, y)``: the last one with a dot there."""
        for index in range(len(self.layers) - 1, -1, -1):
            if self.layers[index][y][x]:
                return index
        return None


def _scale(value: float, low: float, high: float, steps: int) -> int:
    """``value`` between ``low`` and ``high`` as one of ``steps`` positions, overflow-safe."""
    span = high - low
    if steps <= 1 or not span > 0:
        return 0
    if math.isfinite(span):
        fraction = (value - low) / span
    else:
        # Halved, a span wider than the largest float (-1e308 to 1e308) fits.
        fraction = (value / 2 - low / 2) / (high / 2 - low / 2)
    return min(steps - 1, max(0, round(fraction * (steps - 1))))


def _mean(values: list[float]) -> float:
    count = len(values)
    return math.fsum(v / count for v in values)


def braille_plot(
    series: Sequence[Sequence[tuple[float, float]]],
    width: int,
    height: int,
    *,
    log_scale: bool = False,
) -> Plot:
    """``series`` of ``(x, y)`` points drawn as lines ``width`` cells by ``height`` rows.

    Every curve shares one x range (first to last x of all) and one y range, so a training and
    an eval loss compare at a glance. Points falling in one dot column are averaged; columns
    between sparse points are joined by a straight line. NaN and infinite values (and values
    not above zero with ``log_scale``) are left out and counted in :attr:`Plot.skipped`.
    """
    width, height = max(1, width), max(1, height)
    columns, rows = width * 2, height * 4
    kept: list[list[tuple[float, float]]] = []
    skipped: list[int] = []
    for points in series:
        good = []
        for x, y in points:
            if math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_scale):
                good.append((x, math.log10(y) if log_scale else y))
        kept.append(good)
        skipped.append(len(points) - len(good))
    xs = [x for points in kept for x, _ in points]
    empty = tuple(tuple(0 for _ in range(width)) for _ in range(height))
    if not xs:
        return Plot(
            tuple(empty for _ in kept), width, height, None, None, None, None,
            tuple(0 for _ in kept), tuple(skipped), log_scale,
        )  # fmt: skip
    x_low, x_high = min(xs), max(xs)
    averaged: list[list[tuple[int, float]]] = []
    for points in kept:
        by_column: dict[int, list[float]] = {}
        for x, y in points:
            by_column.setdefault(_scale(x, x_low, x_high, columns), []).append(y)
        averaged.append([(column, _mean(by_column[column])) for column in sorted(by_column)])
    values = [y for points in averaged for _, y in points]
    low, high = min(values), max(values)
    layers = []
    for points in averaged:
        cells = [[0] * width for _ in range(height)]
        previous: tuple[int, int] | None = None
        for column, value in points:
            dot_y = rows // 2 if high == low else (rows - 1) - _scale(value, low, high, rows)
            start = column if previous is None else previous[0] + 1
            for x in range(start, column + 1):
                if previous is None:
                    top = bottom = dot_y
                else:
                    before = previous[1] + (dot_y - previous[1]) * (x - 1 - previous[0]) / (
                        column - previous[0]
                    )
                    here = previous[1] + (dot_y - previous[1]) * (x - previous[0]) / (
                        column - previous[0]
                    )
                    # Join to the column before with a vertical run, so a steep drop reads
                    # as a line.
                    top, bottom = sorted((round(before), round(here)))
                for y in range(top, bottom + 1):
                    cells[y // 4][x // 2] |= _DOT[(x % 2, y % 4)]
            previous = (column, dot_y)
        layers.append(tuple(tuple(row) for row in cells))
    if log_scale:
        low, high = 10.0**low, 10.0**high
    return Plot(
        tuple(layers), width, height, low, high, x_low, x_high,
        tuple(len(points) for points in averaged), tuple(skipped), log_scale,
    )  # fmt: skip


_SUFFIXES = ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"))


def format_value(value: float) -> str:
    """``value`` in at most about six characters: ``0.4123``, ``1.2e-5``, ``12.3k``, ``nan``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    size = abs(value)
    if size < 1e-3 or size >= 1e15:
        mantissa, _, exponent = f"{value:.1e}".partition("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    if size < 9999.5:
        return f"{value:.4g}"
    for scale, suffix in _SUFFIXES:
        text = f"{value / scale:.3g}"
        if abs(float(text)) < 1000:
            return f"{text}{suffix}"
    return f"{value:.1e}"
