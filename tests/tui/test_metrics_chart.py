"""The loss chart in a small app: curves, axes, the legend, redraws only on change."""

from __future__ import annotations

import math
from collections.abc import Callable

from textual.app import App, ComposeResult

from runctl_tui.logs.chart import Series
from runctl_tui.tui.widgets.metrics_chart import MetricsChart

SnapCompare = Callable[..., bool]


def falling_loss() -> Series:
    """A training loss over 2,000 steps, a little noisy, with two NaN steps."""
    points = []
    for step in range(0, 2001, 10):
        value = 2.4 * math.exp(-step / 350) + 0.35 + 0.04 * math.sin(step / 7)
        points.append((float(step), math.nan if step in (600, 610) else value))
    return Series("train/loss", tuple(points), "tensorboard", "#61afef")


def eval_loss() -> Series:
    """An eval loss every 250 steps."""
    points = tuple((float(s), 2.2 * math.exp(-s / 450) + 0.5) for s in range(250, 2001, 250))
    return Series("eval_loss", points, "log", "#e5c07b")


class ChartApp(App[None]):
    """The chart alone, filling the screen."""

    CSS = "MetricsChart { height: 1fr; }"

    def __init__(self, series: list[Series]) -> None:
        super().__init__()
        self.initial = series

    def compose(self) -> ComposeResult:
        yield MetricsChart()

    def on_mount(self) -> None:
        self.query_one(MetricsChart).set_series(self.initial)


def screen_text(app: App[None]) -> list[str]:
    """The chart's rows as plain text."""
    chart = app.query_one(MetricsChart)
    return [chart.render_line(y).text for y in range(chart.size.height)]


async def test_legend_axes_and_curves_are_drawn() -> None:
    app = ChartApp([falling_loss(), eval_loss()])
    async with app.run_test(size=(80, 12)) as pilot:
        await pilot.pause()
        rows = screen_text(app)

    legend = rows[0]
    assert "train/loss tensorboard" in legend
    assert "(2 nan)" in legend
    assert "eval_loss log 0.5" in legend
    assert rows[1].lstrip().startswith("2.7")  # the highest value, on the top row
    assert rows[-2].lstrip().startswith("0.3")  # the lowest, on the bottom row
    assert rows[-1].strip().startswith("0 ")
    assert rows[-1].strip().endswith(" 2000")
    assert all(len(row) == 80 for row in rows)
    assert any(0x2800 < ord(c) <= 0x28FF for c in rows[1])


async def test_the_same_data_again_does_not_redraw() -> None:
    app = ChartApp([falling_loss()])
    async with app.run_test(size=(80, 12)) as pilot:
        await pilot.pause()
        chart = app.query_one(MetricsChart)
        draws = chart.draws
        assert not chart.set_series([falling_loss()])
        await pilot.pause()
        assert chart.draws == draws

        assert chart.set_series([falling_loss(), eval_loss()])
        await pilot.pause()
        assert chart.draws == draws + 1


async def test_names_are_data_not_markup() -> None:
    hostile = Series("[bold red]x[/]\x1b[2J\nloss", ((0.0, 1.0), (1.0, 0.5)), "log", "")
    app = ChartApp([hostile])
    async with app.run_test(size=(80, 12)) as pilot:
        await pilot.pause()
        legend = screen_text(app)[0]
    assert "[bold red]x[/]␛[2J␤loss" in legend


async def test_nothing_to_show_and_the_log_scale() -> None:
    app = ChartApp([])
    async with app.run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        assert screen_text(app)[0].startswith("no metrics yet")
        chart = app.query_one(MetricsChart)
        chart.set_series([Series("loss", ((0.0, 10.0), (1.0, 0.0), (2.0, 0.1)), "log")])
        chart.toggle_log_scale()
        await pilot.pause()
        rows = screen_text(app)
    assert "(1 left out)" in rows[0]
    assert "log scale" in rows[0]
    assert rows[1].lstrip().startswith("10")
    assert rows[-2].lstrip().startswith("0.1")


def test_snapshot_falling_loss_and_eval_loss(snap_compare: SnapCompare) -> None:
    assert snap_compare(ChartApp([falling_loss(), eval_loss()]), terminal_size=(80, 12))
