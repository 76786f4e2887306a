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
