"""The log view: only visible lines rendered, follow mode, search highlights, error marks."""

from __future__ import annotations

import re

from rich.cells import cell_len
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


def row_text(view: LogView, y: int) -> str:
    return view.render_line(y).text


async def test_wrap_keeps_colours_and_a_match_across_the_break() -> None:
    text = "a" * 30 + "RED" + "b" * 10 + "loss" + "c" * 20
    # Red over the break at 38 cells of text (40 wide, 2 for the gutter).
    line = ViewLine(text, spans=((30, 40, Style(color="red")),))
    app = LogApp(MemoryLines([line]))
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.press("w")
        await pilot.pause()
        assert view.wrap
        width = view.size.width
        room = width - 2
        view.highlight(re.compile("b{6}loss"), current=0)
        await pilot.pause()
        rows = [view.render_line(y) for y in range(3)]
        assert [r.text[2:].rstrip() for r in rows] == [
            text[:room],
            text[room : 2 * room],
            text[2 * room :],
        ][: len(rows)]
        assert rows[1].text.startswith("  ")
        red = "".join(
            seg.text
            for row in rows
            for seg in row
            if seg.style is not None and seg.style.color is not None
        )
        assert red == text[30:40]
        matched = "".join(
            seg.text for row in rows for seg in row if seg.style is not None and seg.style.reverse
        )
        assert matched == "bbbbbbloss"
        assert all(
            seg.style is not None and seg.style.bold
            for row in rows
            for seg in row
            if seg.style is not None and seg.style.reverse
        )
        assert view.max_scroll_x == 0


async def test_wide_characters_never_straddle_the_break() -> None:
    text = "x" + "中" * 40
    app = LogApp(MemoryLines([ViewLine(text)]))
    async with app.run_test(size=(41, 10)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        view.wrap = True
        await pilot.pause()
        room = view.size.width - 2
        rows = [view.render_line(y) for y in range(4)]
        assert all(row.cell_length == view.size.width for row in rows)
        joined = "".join(row.text[2:].rstrip() for row in rows)
        assert joined == text
        first = rows[0].text[2:]
        # The row is one cell short rather than cut a character in half.
        assert cell_len(first.rstrip()) <= room
        assert cell_len(first.rstrip()) >= room - 1


async def test_follow_keeps_the_last_row_of_a_wrapped_last_line() -> None:
    store = MemoryLines(numbered(100))
    app = LogApp(store)
    async with app.run_test(size=(40, 12)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.press("w")
        await pilot.pause()
        store.lines.append(ViewLine("tail " + "z" * 200 + " END"))
        view.lines_changed()
        await pilot.pause()
        height = view.size.height
        assert view.follow
        assert row_text(view, height - 1).rstrip().endswith("END")
        assert "step 99 " in "".join(row_text(view, y) for y in range(height))
        # Up leaves the end; G comes back to it.
        await pilot.press("up")
        await pilot.pause()
        assert not view.follow
        assert not row_text(view, height - 1).rstrip().endswith("END")
        await pilot.press("G")
        await pilot.pause()
        assert row_text(view, height - 1).rstrip().endswith("END")
        await pilot.press("g")
        await pilot.pause()
        assert row_text(view, 0).startswith("  step 0 ")
        await pilot.press("pagedown")
        await pilot.pause()
        assert row_text(view, 0).startswith(f"  step {height} ")


async def test_unwrapping_scrolls_sideways_again() -> None:
    app = LogApp(MemoryLines([ViewLine("w" * 300), *numbered(5)]))
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.pause()
        assert view.max_scroll_x > 0
        view.scroll_to(x=50, animate=False, immediate=True)
        await pilot.press("w")
        await pilot.pause()
        assert view.scroll_x == 0
        assert view.max_scroll_x == 0
        assert row_text(view, 1).startswith("  w")
        await pilot.press("w")
        await pilot.pause()
        assert not view.wrap
        assert view.max_scroll_x > 0
        assert row_text(view, 1).startswith("  step 0 ")
        view.scroll_to(x=10, animate=False, immediate=True)
        await pilot.pause()
        assert view.scroll_x == 10


async def test_a_huge_line_wraps_to_at_most_a_screen() -> None:
    huge = "0123456789" * 1_000_000
    store = Counting([ViewLine(huge), ViewLine("after")])
    app = LogApp(store)
    async with app.run_test(size=(60, 15)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.press("w")
        await pilot.press("g")
        await pilot.pause()
        height = view.size.height
        rows = [row_text(view, y) for y in range(height)]
        assert rows[0].startswith("  0123456789")
        marker = rows[height - 1]
        assert "more characters, w to unwrap" in marker
        shown = (height - 1) * (view.size.width - 2)
        assert f"{len(huge) - shown:,}" in marker
        await pilot.press("pagedown")
        await pilot.pause()
        assert "after" in "".join(row_text(view, y) for y in range(height))


async def test_hash_toggles_line_numbers_and_wrapped_rows_have_a_blank_gutter() -> None:
    app = LogApp(MemoryLines([ViewLine("e" * 100, error=True), *numbered(3)]))
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(LogView)
        view.lines_changed()
        await pilot.press("number_sign", "w", "g")
        await pilot.pause()
        assert view.show_numbers
        first, second = row_text(view, 0), row_text(view, 1)
        assert first.startswith("▌1 e")
        assert second.startswith("▌  e")
