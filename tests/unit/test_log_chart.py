"""The loss curve drawn in braille, and the one-line sparkline."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from runctl_tui.logs.chart import BRAILLE_BASE, braille_chart, braille_plot, format_value, sparkline


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


def column_dots(grid: list[list[bool]], x: int) -> list[int]:
    """The dot rows set in dot column ``x``."""
    return [y for y in range(len(grid)) if grid[y][x]]


def test_steps_need_not_be_evenly_spaced() -> None:
    plot = braille_plot([[(0.0, 1.0), (90.0, 0.0), (100.0, 1.0)]], width=10, height=2)
    grid = dots(plot.rows())

    assert (plot.x_low, plot.x_high) == (0.0, 100.0)
    assert column_dots(grid, 0) == [0]
    # Step 90 lands at 9/10 of the width, and the line falls to it through every column.
    assert 7 in column_dots(grid, round(0.9 * 19))
    assert all(column_dots(grid, x) for x in range(20))


def test_curves_share_one_range_and_keep_their_own_layers() -> None:
    loss = [(float(s), 2.0 - s / 100) for s in range(0, 101, 5)]
    eval_loss = [(50.0, 1.8), (100.0, 1.6)]
    plot = braille_plot([loss, eval_loss], width=20, height=4)

    assert (plot.low, plot.high) == (1.0, 2.0)
    assert plot.drawn == (21, 2)
    eval_grid = dots(tuple("".join(chr(BRAILLE_BASE + b) for b in row) for row in plot.layers[1]))
    assert not any(eval_grid[y][x] for y in range(16) for x in range(19))  # starts at step 50
    assert column_dots(eval_grid, 39) == [6]
    assert plot.owner(19, 1) == 1
    assert plot.owner(0, 0) == 0
    assert plot.owner(0, 3) is None


def test_non_finite_values_and_log_scale() -> None:
    points = [(0.0, 100.0), (1.0, math.nan), (2.0, 1.0), (3.0, -1.0), (4.0, 0.01)]
    linear = braille_plot([points], width=5, height=2)
    logged = braille_plot([points], width=5, height=2, log_scale=True)

    assert linear.skipped == (1,)
    assert logged.skipped == (2,)
    assert logged.low is not None
    assert math.isclose(logged.low, 0.01)
    assert logged.high is not None
    assert math.isclose(logged.high, 100.0)
    # On a log scale 1.0 sits halfway between 0.01 and 100.
    assert column_dots(dots(logged.rows()), round(2 / 4 * 9))[-1] in (3, 4)


def test_nothing_drawable_is_a_blank_plot() -> None:
    plot = braille_plot([[(0.0, math.nan)], []], width=3, height=2)
    assert plot.rows() == (chr(BRAILLE_BASE) * 3,) * 2
    assert (plot.low, plot.x_low, plot.skipped) == (None, None, (1, 0))


def test_values_are_formatted_compactly() -> None:
    assert [
        format_value(v)
        for v in (0.41234, 2.5, 0.0, 1234.5, 12345, 3e6, 9999.6, 1.2e-5, -1.234e-4, 1e20)
    ] == ["0.4123", "2.5", "0", "1234", "12.3k", "3M", "10k", "1.2e-5", "-1.2e-4", "1e20"]
    assert [format_value(v) for v in (math.nan, math.inf, -math.inf)] == ["nan", "inf", "-inf"]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    curves=st.lists(st.lists(st.tuples(finite, finite), max_size=80), min_size=1, max_size=3),
    width=st.integers(min_value=1, max_value=60),
    height=st.integers(min_value=1, max_value=8),
)
def test_any_finite_points_give_a_plot_of_the_asked_size(
    curves: list[list[tuple[float, float]]], width: int, height: int
) -> None:
    plot = braille_plot(curves, width, height)
    rows = plot.rows()
    assert len(rows) == height
    assert all(len(row) == width for row in rows)
    assert len(plot.layers) == len(curves)
    assert plot.skipped == (0,) * len(curves)
    if any(curves):
        grid = dots(rows)
        assert any(grid[0]) or plot.low == plot.high
        assert any(grid[-1]) or plot.low == plot.high


@given(
    values=st.lists(finite, min_size=2, max_size=120),
    width=st.integers(min_value=1, max_value=60),
    height=st.integers(min_value=1, max_value=8),
)
def test_the_lowest_and_highest_values_land_on_the_bottom_and_top_rows(
    values: list[float], width: int, height: int
) -> None:
    points = [(float(step), value) for step, value in enumerate(values)]
    plot = braille_plot([points], width, height)
    grid = dots(plot.rows())
    if len(values) <= width * 2:
        # Every point has its own dot column: the range is that of the values themselves.
        assert (plot.low, plot.high) == (min(values), max(values))
    if plot.low != plot.high:
        low_x = round(values.index(min(values)) / (len(values) - 1) * (width * 2 - 1))
        high_x = round(values.index(max(values)) / (len(values) - 1) * (width * 2 - 1))
        if len(values) <= width * 2:
            assert grid[-1][low_x]
            assert grid[0][high_x]
        assert any(grid[-1])
        assert any(grid[0])
