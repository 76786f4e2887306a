"""The log view: renders only the lines in view, fetched from a store that keeps a window.

The store (the file is the store; memory holds an index and a window) answers ``get(i)`` at
once with a line it holds, or ``None`` after which it loads that part and tells the view; the
view never waits for I/O. Follow mode keeps the last line in view as lines arrive; scrolling up
leaves it, ``G``/``end`` comes back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from rich.cells import cell_len
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
        Binding("ctrl+l", "toggle_numbers", "Line numbers", show=False),
    ]

    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    follow: reactive[bool] = reactive(True)
    """Keep the last line in view as lines arrive."""
    show_numbers: reactive[bool] = reactive(False)

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

    # Data ----------------------------------------------------------------------------------

    def lines_changed(self) -> None:
        """The store grew (or was reset): resize, and stay at the end when following."""
        count = len(self.store)
        if count < self._count:
            self._widest = 0
        self._count = count
        self._update_size()
        if self.follow:
            # After the new virtual size is laid out, or the scroll is clamped to the old one.
            self.call_after_refresh(self._to_end)
        self.refresh()

    def _to_end(self) -> None:
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def _gutter(self) -> int:
        return len(str(max(1, self._count))) + 2 if self.show_numbers else 2

    def _update_size(self) -> None:
        self.virtual_size = Size(self._widest + self._gutter(), self._count)

    def watch_show_numbers(self) -> None:
        """Make room for the numbers."""
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
        if new < old and self.follow and new < self.max_scroll_y:
            self.follow = False

    # Searching -----------------------------------------------------------------------------

    def highlight(self, pattern: re.Pattern[str] | None, current: int | None = None) -> None:
        """Highlight matches of ``pattern``; ``current`` is the line to bring into view."""
        self.pattern = pattern
        self.current_match = current
        if current is not None:
            self.follow = False
            self.scroll_to(y=max(0, current - self.size.height // 2), animate=False)
        self.refresh()

    # Rendering -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One line of the view: gutter (error mark, number), then the text from ``scroll_x``."""
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if index >= self._count:
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

    # Keys ----------------------------------------------------------------------------------

    def action_top(self) -> None:
        """First line; follow stops."""
        self.follow = False
        self.scroll_to(y=0, animate=False)

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
