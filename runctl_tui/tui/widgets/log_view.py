"""The log view: renders only the lines in view, fetched from a store that keeps a window.

The store (the file is the store; memory holds an index and a window) answers ``get(i)`` at
once with a line it holds, or ``None`` after which it loads that part and tells the view; the
view never waits for I/O. Follow mode keeps the last line in view as lines arrive; scrolling up
leaves it, ``G``/``end`` comes back.

Wrap mode (``w``) lays the screen out like ``less``: ``scroll_y`` still counts lines, the
screen is filled from the top line down, each line taking the rows it needs; at the end it is
filled from the last line up, so the last row of the last line is on the bottom row. Only the
lines on screen are measured, and one line takes at most a screen of rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

GUTTER_STYLE = Style(dim=True)
MATCH_STYLE = Style(reverse=True)
CURRENT_MATCH_STYLE = Style(reverse=True, bold=True, underline=True)
ERROR_MARK_STYLE = Style(color="red", bold=True)
PENDING_STYLE = Style(dim=True, italic=True)
CURRENT_LINE_STYLE = Style(bgcolor="grey23")
"""Under the line a search or an error jump went to, so it stands out without a match."""
MATCH_LOOKAHEAD = 1024
"""Characters past the shown part of a capped wrapped line searched for a match crossing it."""


@dataclass(frozen=True)
class ViewLine:
    """One line as shown: text already safe (no control characters), and its colour spans."""

    text: str
    spans: tuple[tuple[int, int, Style], ...] = ()
    """``(start, end, style)`` over character offsets of :attr:`text`, from ANSI colours."""
    error: bool = False
    """An error pattern matched: the gutter marks it."""


class LineStore(Protocol):
    """Where the view's lines come from."""

    def __len__(self) -> int:
        """Lines known so far (it grows as the log does)."""
        ...

    def get(self, index: int) -> ViewLine | None:
        """The line now if held, else ``None`` (the store then loads it and says so)."""
        ...


class MemoryLines:
    """A store holding every line in memory: for tests, and short logs."""

    def __init__(self, lines: Sequence[ViewLine] = ()) -> None:
        self.lines = list(lines)

    def __len__(self) -> int:
        return len(self.lines)

    def get(self, index: int) -> ViewLine | None:
        """The line, always held."""
        return self.lines[index] if 0 <= index < len(self.lines) else None


def styled_segments(
    line: ViewLine, matches: Sequence[tuple[int, int]], current: int | None
) -> list[Segment]:
    """``line`` as segments: its colours, with search matches (and the current one) on top."""
    text = line.text
    if not text:
        return []
    # Character-level styles, merged in order: colours, then matches.
    cuts = {0, len(text)}
    for start, end, _ in line.spans:
        cuts.update((max(0, start), min(len(text), end)))
    for start, end in matches:
        cuts.update((max(0, start), min(len(text), end)))
    points = sorted(c for c in cuts if 0 <= c <= len(text))
    segments: list[Segment] = []
    for left, right in zip(points, points[1:], strict=False):
        if left >= right:
            continue
        style = Style()
        for start, end, span_style in line.spans:
            if start <= left and right <= end:
                style += span_style
        for n, (start, end) in enumerate(matches):
            if start <= left and right <= end:
                style += CURRENT_MATCH_STYLE if n == current else MATCH_STYLE
        segments.append(Segment(text[left:right], style or None))
    return segments


def wrap_ranges(text: str, width: int, limit: int) -> tuple[list[tuple[int, int]], int]:
    """Where ``text`` breaks into rows of ``width`` cells: at most ``limit`` rows of
    ``(start, end)`` character offsets, and how many characters are left after them.

    A wide character never straddles two rows; only the first ``limit * width`` characters
    are looked at, so a line of any length costs no more than a screen of it.
    """
    width = max(1, width)
    limit = max(1, limit)
    length = len(text)
    if not length:
        return [(0, 0)], 0
    head = text[: limit * width]
    if head.isascii():
        ranges = [(a, min(a + width, length)) for a in range(0, len(head), width)]
        return ranges, length - ranges[-1][1]
    ranges = []
    start = used = 0
    for pos, char in enumerate(head):
        size = get_character_cell_size(char)
        if used + size > width and pos > start:
            ranges.append((start, pos))
            if len(ranges) == limit:
                return ranges, length - pos
            start, used = pos, 0
        used += size
    ranges.append((start, len(head)))
    return ranges, length - len(head)


def _shift(
    line: ViewLine, matches: Sequence[tuple[int, int]], start: int, end: int
) -> tuple[ViewLine, list[tuple[int, int]]]:
    """Characters ``start`` to ``end`` of ``line``, with the spans and matches over them."""
    spans = tuple((a - start, b - start, st) for a, b, st in line.spans if a < end and b > start)
    part = ViewLine(line.text[start:end], spans, line.error)
    return part, [(a - start, b - start) for a, b in matches if a < end and b > start]


class LogView(ScrollView, can_focus=True):
    """Lines of a log, only those in view rendered; follows the end unless scrolled away."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("g,home", "top", "Top", show=False),
        Binding("G,end", "bottom", "End", show=False),
        Binding("f", "toggle_follow", "Follow"),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("ctrl+l,number_sign", "toggle_numbers", "Line numbers", show=False),
    ]

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    follow: reactive[bool] = reactive(True)
    """Keep the last line in view as lines arrive."""
    show_numbers: reactive[bool] = reactive(False)
    wrap: reactive[bool] = reactive(False)
    """Break long lines at the view's width instead of scrolling sideways."""

    @dataclass
    class FollowChanged(Message):
        """Follow mode was turned on or off (by a key, or by scrolling away)."""

        follow: bool

    def __init__(self, store: LineStore, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.pattern: re.Pattern[str] | None = None
        self.current_match: int | None = None
        """The line of the current search match, if any."""
        self._widest = 0
        self._count = 0
        self._catching_up = False
        self._end_pinned = False
        """Wrap mode: laid out from the last line up, though the scroll cannot say so (the
        log is shorter than the screen in lines, not in rows)."""
        self._layout_key: tuple[int, ...] | None = None
        self._layout: list[tuple[int, Strip]] = []
        """Wrap mode: each row on screen, with the line it belongs to (-1: none)."""

    # Data ----------------------------------------------------------------------------------

    def lines_changed(self) -> None:
        """The store grew (or was reset): resize, and stay at the end when following."""
        count = len(self.store)
        if count < self._count:
            self._widest = 0
        self._count = count
        self._layout_key = None
        self._update_size()
        if self.follow:
            # Now, so the first frame drawn already shows the end; and again once the new
            # virtual size is laid out, in case the scroll was clamped to the old one.
            self._to_end()
            self.call_after_refresh(self._to_end)
        self.refresh()

    def _catch_up(self) -> None:
        self._catching_up = False
        self._to_end()

    def _to_end(self) -> None:
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def _gutter(self) -> int:
        return len(str(max(1, self._count))) + 2 if self.show_numbers else 2

    def _update_size(self) -> None:
        width = 0 if self.wrap else self._widest + self._gutter()
        size = Size(width, self._count)
        if size == self.virtual_size:
            return
        self.virtual_size = size
        if self.follow:
            # A wider line brings the horizontal scrollbar, which takes a row: stay at the end.
            self.call_after_refresh(self._to_end)

    def on_resize(self) -> None:
        """A followed log keeps its last line in view when the view changes height."""
        if self.follow:
            self.call_after_refresh(self._to_end)

    def watch_show_numbers(self) -> None:
        """Make room for the numbers."""
        self._layout_key = None
        self._update_size()
        self.refresh()

    def watch_wrap(self, wrap: bool) -> None:
        """Wrap at the view's width (no sideways scroll), or scroll sideways again."""
        self._layout_key = None
        self._end_pinned = False
        if wrap:
            self.scroll_to(x=0, animate=False, immediate=True)
        self._update_size()
        self.refresh()

    def watch_follow(self, follow: bool) -> None:
        """Say so, and go to the end when following starts."""
        self.post_message(self.FollowChanged(follow))
        if follow:
            self.call_after_refresh(self._to_end)

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Scrolling up leaves follow mode; reaching the end again does not resume it."""
        super().watch_scroll_y(old, new)
        if new < old:
            self._end_pinned = False
        if new < old and self.follow and new < self.max_scroll_y:
            self.follow = False

    # Searching -----------------------------------------------------------------------------

    def highlight(self, pattern: re.Pattern[str] | None, current: int | None = None) -> None:
        """Highlight matches of ``pattern``; ``current`` is the line to bring into view."""
        self.pattern = pattern
        self.current_match = current
        self._layout_key = None
        if current is not None:
            self.follow = False
            if self.wrap:
                self._wrapped_bring_into_view(current)
            else:
                self.scroll_to(y=max(0, current - self.size.height // 2), animate=False)
        self.refresh()

    def visible_lines(self) -> range:
        """The lines with at least one row on screen (in wrap mode too)."""
        if not self.wrap:
            top = int(self.scroll_y)
            return range(top, min(self._count, top + max(1, self.size.height)))
        shown = [index for index, _ in self._wrapped_layout() if index >= 0]
        return range(shown[0], shown[-1] + 1) if shown else range(int(self.scroll_y), 0)

    # Rendering -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One line of the view: gutter (error mark, number), then the text from ``scroll_x``."""
        if y == 0 and self.follow and self.scroll_y < self.max_scroll_y and not self._catching_up:
            # Followed, but the scroll was set before the last size change was laid out:
            # catch up once this frame is drawn, whatever the order the layout happened in.
            self._catching_up = True
            self.call_later(self._catch_up)
        if self.wrap:
            layout = self._wrapped_layout()
            return layout[y][1] if 0 <= y < len(layout) else Strip.blank(self.size.width)
        scroll_x, scroll_y = self.scroll_offset
        count = self._count
        if self.follow:
            # The end as the store has it now, even before the scroll (or the size) caught up
            # with lines that came in since the last layout.
            count = len(self.store)
            scroll_y = max(0, count - max(1, self.size.height))
        index = scroll_y + y
        width = self.size.width
        if index >= count:
            return Strip.blank(width)
        line = self.store.get(index)
        gutter = self._gutter()
        if line is None:
            text = " " * gutter + "…"
            return Strip([Segment(text, PENDING_STYLE)]).adjust_cell_length(width)
        mark = Segment("▌" if line.error else " ", ERROR_MARK_STYLE if line.error else None)
        number = Segment(f"{index + 1:>{gutter - 2}} ", GUTTER_STYLE) if self.show_numbers else None
        matches: list[tuple[int, int]] = []
        if self.pattern is not None:
            matches = [m.span() for m in self.pattern.finditer(line.text) if m.end() > m.start()]
        current = 0 if matches and index == self.current_match else None
        body = styled_segments(line, matches, current)
        length = cell_len(line.text)
        if length > self._widest:
            self._widest = length
            self.call_later(self._update_size)
        strip = Strip(body).crop(scroll_x, scroll_x + max(0, width - gutter))
        head = [mark, number] if number is not None else [mark, Segment(" ")]
        shown = Strip([*head, *strip]).adjust_cell_length(width)
        return shown.apply_style(CURRENT_LINE_STYLE) if index == self.current_match else shown

    # Wrapping ------------------------------------------------------------------------------

    def _at_end(self) -> bool:
        """Whether the wrapped screen is laid out from the last line up."""
        end = self.max_scroll_y
        return self.follow or self._end_pinned or (end > 0 and self.scroll_y >= end)

    def _line_rows(self, index: int, limit: int) -> list[Strip]:
        """Line ``index`` wrapped at the view's width: at most ``limit`` rows."""
        width = self.size.width
        gutter = self._gutter()
        line = self.store.get(index)
        if line is None:
            return [Strip([Segment(" " * gutter + "…", PENDING_STYLE)]).adjust_cell_length(width)]
        text = line.text
        ranges, rest = wrap_ranges(text, width - gutter, limit)
        if rest and len(ranges) == max(1, limit) and len(ranges) > 1:
            ranges.pop()
            rest = len(text) - ranges[-1][1]
        matches: list[tuple[int, int]] = []
        if self.pattern is not None:
            stop = min(len(text), ranges[-1][1] + MATCH_LOOKAHEAD)
            matches = [
                m.span() for m in self.pattern.finditer(text, 0, stop) if m.end() > m.start()
            ]
        is_current = index == self.current_match
        mark = Segment("▌" if line.error else " ", ERROR_MARK_STYLE if line.error else None)
        first = (
            Segment(f"{index + 1:>{gutter - 2}} ", GUTTER_STYLE)
            if self.show_numbers
            else Segment(" ")
        )
        blank = Segment(" " * (gutter - 1))
        rows: list[Strip] = []
        for n, (start, end) in enumerate(ranges):
            part, part_matches = _shift(line, matches, start, end)
            current = (
                0
                if is_current and matches and matches[0][0] < end and matches[0][1] > start
                else None
            )
            body = styled_segments(part, part_matches, current)
            rows.append(Strip([mark, first if n == 0 else blank, *body]))
        if rest:
            note = f"… ({rest:,} more characters, w to unwrap)"
            rows.append(Strip([mark, blank, Segment(note, PENDING_STYLE)]))
        rows = [row.adjust_cell_length(width) for row in rows]
        if is_current:
            rows = [row.apply_style(CURRENT_LINE_STYLE) for row in rows]
        return rows

    def _wrapped_layout(self) -> list[tuple[int, Strip]]:
        """The rows on screen, laid out from the top line down, or from the last line up."""
        height = max(1, self.size.height)
        at_end = self._at_end()
        top = int(self.scroll_y)
        key = (top, self.size.width, height, self._count, int(at_end))
        if key == self._layout_key:
            return self._layout
        rows: list[tuple[int, Strip]] = []
        if at_end:
            blocks: list[tuple[int, list[Strip]]] = []
            total = 0
            index = self._count - 1
            while index >= 0 and total < height:
                strips = self._line_rows(index, height)
                blocks.append((index, strips))
                total += len(strips)
                index -= 1
            rows = [(i, strip) for i, strips in reversed(blocks) for strip in strips]
            rows = rows[max(0, len(rows) - height) :]
        else:
            index = top
            while index < self._count and len(rows) < height:
                rows.extend((index, strip) for strip in self._line_rows(index, height))
                index += 1
            rows = rows[:height]
        blank = Strip.blank(self.size.width)
        rows.extend((-1, blank) for _ in range(height - len(rows)))
        self._layout_key = key
        self._layout = rows
        return rows

    def _rows_above(self, index: int, rows: int) -> int:
        """The line to put at the top so that ``rows`` rows of lines come before ``index``."""
        height = max(1, self.size.height)
        while index > 0 and rows > 0:
            index -= 1
            rows -= len(self._line_rows(index, height))
        return index

    def _wrapped_scroll_to(self, top: int) -> None:
        """Put line ``top`` at the top of the wrapped screen (follow stops)."""
        self.follow = False
        self._end_pinned = False
        end = self.max_scroll_y
        self.scroll_to(y=max(0, min(top, end - 1 if end > 0 else 0)), animate=False)
        self._layout_key = None
        self.refresh()

    def _wrapped_to_end(self) -> None:
        """Lay the wrapped screen out from the last line up."""
        self._end_pinned = True
        self.scroll_to(y=self.max_scroll_y, animate=False)
        self._layout_key = None
        self.refresh()

    def _wrapped_bring_into_view(self, line: int) -> None:
        """Show ``line`` near the middle of the wrapped screen."""
        top = self._rows_above(line, max(1, self.size.height) // 2)
        if top >= self.max_scroll_y and self._fits_at_end(line):
            self._wrapped_to_end()
        else:
            # Past the last top line the scroll allows, the line may still be below the
            # screen; the nearest top line is the best there is.
            self._wrapped_scroll_to(top)

    def _fits_at_end(self, line: int) -> bool:
        """Whether ``line`` is on screen when it is laid out from the last line up."""
        height = max(1, self.size.height)
        rows = 0
        for index in range(self._count - 1, line, -1):
            rows += len(self._line_rows(index, height))
            if rows >= height:
                return False
        return True

    def _shown(self) -> tuple[int, int, bool]:
        """Wrap mode: the first and last lines on screen, and whether the first one's first
        row is on screen."""
        layout = self._wrapped_layout()
        shown = [index for index, _ in layout if index >= 0]
        if not shown:
            return 0, 0, True
        first = shown[0]
        if not self._at_end():
            return first, shown[-1], True
        whole = len(self._line_rows(first, max(1, self.size.height)))
        return first, shown[-1], shown.count(first) == whole

    # Keys ----------------------------------------------------------------------------------

    def action_scroll_up(self) -> None:
        """One line up; in wrap mode at the end, from the line at the top."""
        if not self.wrap or not self._at_end():
            super().action_scroll_up()
            return
        first, _, starts = self._shown()
        self._wrapped_scroll_to(first - 1 if starts else first)

    def action_scroll_down(self) -> None:
        """One line down; in wrap mode, the last screen is laid out from the end."""
        if self.wrap and not self._at_end() and self.scroll_y >= self.max_scroll_y:
            _, last, _ = self._shown()
            if last >= self._count - 1:
                return
            self._wrapped_to_end()
            return
        super().action_scroll_down()

    def action_page_up(self) -> None:
        """A screen up; in wrap mode, the rows just above the top line."""
        if not self.wrap:
            super().action_page_up()
            return
        first, _, starts = self._shown()
        if first == 0 and starts:
            self._wrapped_scroll_to(0)
            return
        height = max(1, self.size.height)
        self._wrapped_scroll_to(self._rows_above(first + (0 if starts else 1), height))

    def action_page_down(self) -> None:
        """A screen down; in wrap mode, from the last line on screen."""
        if not self.wrap:
            super().action_page_down()
            return
        if self._at_end():
            return
        first, last, _ = self._shown()
        shown = sum(1 for index, _ in self._wrapped_layout() if index == last)
        ends = shown == len(self._line_rows(last, max(1, self.size.height)))
        # A line cut at the bottom comes back at the top, unless it alone filled the screen.
        target = last + 1 if ends or last == first else last
        if target >= self.max_scroll_y:
            self._wrapped_to_end()
        else:
            self._wrapped_scroll_to(target)

    def action_top(self) -> None:
        """First line; follow stops."""
        self.follow = False
        self._end_pinned = False
        self._layout_key = None
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def action_bottom(self) -> None:
        """Last line; follow resumes."""
        self.follow = True
        self.scroll_to(y=self.max_scroll_y, animate=False)

    def action_toggle_follow(self) -> None:
        """Follow on or off."""
        self.follow = not self.follow

    def action_toggle_numbers(self) -> None:
        """Line numbers on or off."""
        self.show_numbers = not self.show_numbers

    def action_toggle_wrap(self) -> None:
        """Wrap long lines, or scroll sideways."""
        self.wrap = not self.wrap
