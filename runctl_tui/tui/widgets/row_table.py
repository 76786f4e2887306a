"""A table of rows with a cursor, titles on its first line, and only the rows in view drawn."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from runctl_tui.text import cell_width, clip

Row = TypeVar("Row")

HEADER_STYLE = Style(bold=True, dim=True)
CURSOR_STYLE = Style(reverse=True)
CURSOR_UNFOCUSED_STYLE = Style(bgcolor="grey23")
DIM_STYLE = Style(dim=True)


@dataclass(frozen=True)
class Column:
    """One column of a row table: its title, its width (0: it shares what the others leave)
    and its alignment."""

    title: str
    width: int
    right: bool = False


def fit_cell(text: str, width: int, right: bool = False) -> str:
    """``text`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
    text = clip(text, width)
    gap = " " * max(0, width - cell_width(text))
    return gap + text if right else text + gap


NAVIGATION: list[BindingType] = [
    Binding("up,k", "cursor_up", "Up", show=False),
    Binding("down,j", "cursor_down", "Down", show=False),
    Binding("pageup", "page_up", "Page up", show=False),
    Binding("pagedown", "page_down", "Page down", show=False),
    Binding("home,g", "first", "First", show=False),
    Binding("end,G", "last", "Last", show=False),
]
"""The cursor keys every row table takes; a subclass adds its ``enter``."""


class RowTable(ScrollView, Generic[Row], can_focus=True):
    """Rows under a line of column titles, a cursor kept on its row across updates.

    A subclass names its :attr:`COLUMNS`, gives each row's cells (:meth:`row_cells`), their
    widths at a width (:meth:`column_widths`: 0 hides a column) and styles (:meth:`cell_style`),
    and says what ``enter`` on a row posts (:meth:`chosen`).
    """

    BINDINGS: ClassVar[list[BindingType]] = NAVIGATION
    COLUMNS: ClassVar[tuple[Column, ...]] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: tuple[Row, ...] = ()
        self.cursor = 0

    @property
    def selected(self) -> Row | None:
        """The row under the cursor."""
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def show_rows(self, rows: Sequence[Row], identity: Callable[[Row], Hashable]) -> None:
        """Show ``rows``; the cursor stays on the row of the same ``identity``, if still there."""
        current = self.selected
        self.rows = tuple(rows)
        if current is not None:
            wanted = identity(current)
            index = next((n for n, row in enumerate(self.rows) if identity(row) == wanted), None)
            self.cursor = 0 if index is None else index
        self.cursor = min(self.cursor, max(0, len(self.rows) - 1))
        # One more line than rows: the column titles stay on the first.
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        self.refresh()

    def chosen(self, row: Row) -> Message | None:
        """What ``enter`` on ``row`` posts; nothing unless a subclass says."""
        return None

    def column_widths(self, total: int) -> Sequence[int]:
        """Each column's width when the table is ``total`` cells wide; 0 hides it."""
        raise NotImplementedError

    def row_cells(self, index: int) -> Sequence[str]:
        """Row ``index``'s cells, plain and safe to show, in :attr:`COLUMNS` order."""
        raise NotImplementedError

    def cell_style(self, row: Row, column: int, cell: str) -> Style | None:
        """How cell ``column`` of ``row`` is drawn; plain unless a subclass says."""
        return None

    def render_line(self, y: int) -> Strip:
        """The column titles on the first line, then the rows from the scroll position."""
        width = self.size.width
        widths = self.column_widths(width)
        if y == 0:
            titles = [(column.title, HEADER_STYLE) for column in self.COLUMNS]
            return self._line(titles, widths, width)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.rows):
            return Strip.blank(width)
        row = self.rows[index]
        cells = [
            (cell, self.cell_style(row, n, cell)) for n, cell in enumerate(self.row_cells(index))
        ]
        strip = self._line(cells, widths, width)
        if index == self.cursor:
            strip = strip.apply_style(CURSOR_STYLE if self.has_focus else CURSOR_UNFOCUSED_STYLE)
        return strip

    def _line(
        self, cells: Sequence[tuple[str, Style | None]], widths: Sequence[int], width: int
    ) -> Strip:
        segments: list[Segment] = []
        for column, (text, style), room in zip(self.COLUMNS, cells, widths, strict=True):
            if not room:
                continue
            if segments:
                segments.append(Segment(" "))
            segments.append(Segment(fit_cell(text, room, column.right), style))
        return Strip(segments).adjust_cell_length(width)

    def on_focus(self) -> None:
        """The cursor row shows the focus."""
        self.refresh()

    def on_blur(self) -> None:
        """The cursor row shows the focus."""
        self.refresh()

    def _body_height(self) -> int:
        return max(1, self.size.height - 1)

    def move_to(self, index: int) -> None:
        """Put the cursor on row ``index`` (clamped) and scroll it into view."""
        if not self.rows:
            return
        self.cursor = max(0, min(index, len(self.rows) - 1))
        top = int(self.scroll_y)
        height = self._body_height()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
        self.refresh()

    def action_cursor_up(self) -> None:
        """One row up."""
        self.move_to(self.cursor - 1)

    def action_cursor_down(self) -> None:
        """One row down."""
        self.move_to(self.cursor + 1)

    def action_page_up(self) -> None:
        """A screen up."""
        self.move_to(self.cursor - self._body_height())

    def action_page_down(self) -> None:
        """A screen down."""
        self.move_to(self.cursor + self._body_height())

    def action_first(self) -> None:
        """The first row."""
        self.move_to(0)

    def action_last(self) -> None:
        """The last row."""
        self.move_to(len(self.rows) - 1)

    def action_choose(self) -> None:
        """Post what ``enter`` on the row under the cursor means."""
        selected = self.selected
        message = None if selected is None else self.chosen(selected)
        if message is not None:
            self.post_message(message)

    def on_click(self, event: Any) -> None:
        """A click puts the cursor on the row clicked."""
        y = getattr(event, "y", 0)
        if y >= 1:
            self.move_to(int(self.scroll_y) + y - 1)

    def on_resize(self) -> None:
        """Keep the cursor in view."""
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        # The cursor as it is after the refresh: a key may move it before then.
        self.call_after_refresh(lambda: self.move_to(self.cursor))
