"""The log view: only visible lines rendered, follow mode, search highlights, error marks."""

from __future__ import annotations

import re

from rich.style import Style
from textual.app import App, ComposeResult

from runctl_tui.tui.widgets.log_view import LogView, MemoryLines, ViewLine, styled_segments


class Counting(MemoryLines):
    """Counts which lines the view asked for."""

    def __init__(self, lines: list[ViewLine]) -> None:
        super().__init__(lines)
        self.asked: set[int] = set()

    def get(self, index: int) -> ViewLine | None:
        self.asked.add(index)
        return super().get(index)


class LogApp(App[None]):
    def __init__(self, store: MemoryLines) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        yield LogView(self.store)


def numbered(count: int) -> list[ViewLine]:
    return [ViewLine(f"step {n} loss {1 / (n + 1):.3f}") for n in range(count)]


async def test_only_the_lines_in_view_are_asked_for() -> None:
    store = Counting(numbered(100_000))
    app = LogApp(store)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.pause()
        assert max(store.asked) == 99_999
        # The first frame and the frame at the end: never the 100,000 lines.
        assert len(store.asked) <= 2 * 24
        assert view.scroll_y == view.max_scroll_y


async def test_follow_keeps_the_end_in_view_until_scrolled_up() -> None:
    store = MemoryLines(numbered(100))
    app = LogApp(store)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.pause()
        store.lines += numbered(50)
        view.lines_changed()
        await pilot.pause()
        assert view.scroll_y == 150 - 24
        await pilot.press("pageup")
        await pilot.pause()
        assert not view.follow
        store.lines += numbered(50)
        view.lines_changed()
        await pilot.pause()
        assert view.scroll_y < 200 - 24
        await pilot.press("G")
        await pilot.pause()
        assert view.follow
        assert view.scroll_y == 200 - 24


async def test_search_matches_and_error_lines_are_marked() -> None:
    lines = numbered(10) + [ViewLine("Traceback (most recent call last):", error=True)]
    app = LogApp(MemoryLines(lines))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        view.highlight(re.compile("loss"), current=3)
        await pilot.pause()
        row = view.render_line(3)
        styles = [seg.style for seg in row if seg.text == "loss"]
        assert styles
        assert styles[0] is not None
        assert styles[0].bold
        error_row = view.render_line(10)
        assert error_row.text.startswith("▌")


def test_colours_and_matches_overlap() -> None:
    line = ViewLine("error: loss nan", spans=((0, 5, Style(color="red")),))
    segments = styled_segments(line, [(7, 11)], current=None)
    assert "".join(s.text for s in segments) == "error: loss nan"
    red = [s for s in segments if s.style and s.style.color and s.style.color.name == "red"]
    assert [s.text for s in red] == ["error"]
    assert [s.text for s in segments if s.style and s.style.reverse] == ["loss"]
