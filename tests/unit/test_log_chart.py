"""The loss curve drawn in braille, and the one-line sparkline."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from runctl_tui.logs.chart import BRAILLE_BASE, braille_chart, sparkline


def dots(rows: tuple[str, ...]) -> list[list[bool]]:
    """The chart as a grid of dots (x across, y down)."""
    bits = [(0, 0x01), (0, 0x02), (0, 0x04), (0, 0x40), (1, 0x08), (1, 0x10), (1, 0x20), (1, 0x80)]
    grid = [[False] * (len(rows[0]) * 2) for _ in range(len(rows) * 4)]
    for row, text in enumerate(rows):
        for cell, char in enumerate(text):
            value = ord(char) - BRAILLE_BASE
            for n, (dx, bit) in enumerate(bits):
                if value & bit:
                    grid[row * 4 + n % 4][cell * 2 + dx] = True
    return grid


def test_a_falling_loss_runs_from_top_left_to_bottom_right() -> None:
    chart = braille_chart([2.5 - 0.1 * i for i in range(20)], width=10, height=3)
    grid = dots(chart.rows)

    assert chart.low is not None
    assert math.isclose(chart.low, 0.6)
    assert (chart.high, chart.points) == (2.5, 20)
    assert grid[0][0]
    assert grid[-1][-1]
    assert not grid[-1][0]
    assert not grid[0][-1]
    # Every column has a dot: the line is unbroken.
    assert all(any(grid[y][x] for y in range(len(grid))) for x in range(20))


def test_nan_and_inf_are_left_out_and_counted() -> None:
    chart = braille_chart([1.0, math.nan, 0.5, math.inf, 0.25], width=5, height=2)

    assert chart.skipped == 2
    assert chart.points == 3
    assert (chart.low, chart.high) == (0.25, 1.0)


def test_a_long_run_is_averaged_into_the_width() -> None:
    chart = braille_chart([float(i % 7) for i in range(100_000)], width=40, height=4)

    assert chart.points == 80
    assert all(len(row) == 40 for row in chart.rows)


def test_nothing_to_draw_is_blank() -> None:
    chart = braille_chart([math.nan, math.nan], width=3, height=2)
    assert chart.rows == (chr(BRAILLE_BASE) * 3,) * 2
    assert chart.low is None


def test_sparkline() -> None:
    assert sparkline([3.0, 2.0, 1.0, 0.0], width=4) == "█▆▃▁"
    assert sparkline([1.0, 1.0], width=2) == "▅▅"
    assert sparkline([math.nan, 1.0], width=2) == "·▅"
    assert sparkline([], width=3) == ""


@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=300),
    width=st.integers(min_value=1, max_value=60),
    height=st.integers(min_value=1, max_value=8),
)
def test_any_values_give_a_chart_of_the_asked_size(
    values: list[float], width: int, height: int
) -> None:
    chart = braille_chart(values, width, height)
    assert len(chart.rows) == height
    assert all(len(row) == width for row in chart.rows)
    assert all(BRAILLE_BASE <= ord(c) <= BRAILLE_BASE + 0xFF for row in chart.rows for c in row)
    assert len(sparkline(values, width)) == min(width, len(values)) or len(values) > width
