"""The fleet table: renders only the rows in view, keyed by instance, cursor kept by key."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from runctl_tui.models import Instance, InstanceState
from runctl_tui.text import clean
from runctl_tui.views import (
    COLUMNS,
    RIGHT_ALIGNED,
    STATE_COLUMN,
    RowFilter,
    column_order,
    parse_filter,
    row_cells,
    sort_key,
)

GAP = 2
NARROW_GAP = 1
DIMMED_STATES = frozenset({InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN})

PROVIDER = COLUMNS.index("PROVIDER")
NAME = COLUMNS.index("NAME")
ID = COLUMNS.index("ID")
WHERE = COLUMNS.index("WHERE")
TYPE = COLUMNS.index("TYPE")
GPUS = COLUMNS.index("GPUS")
MARKET = COLUMNS.index("MARKET")
UPTIME = COLUMNS.index("UPTIME")
ADDRESS = COLUMNS.index("ADDRESS")
PRICE = COLUMNS.index("$/H")
COST = COLUMNS.index("COST")

MAX_WIDTH = {NAME: 28, ID: 24, WHERE: 16, TYPE: 20, GPUS: 16, ADDRESS: 39}
"""Longer values are cut with an ellipsis; the details panel shows them whole."""

MIN_WIDTH = {
    # Fixed at their longest value, so a row changing state or market never moves a column.
    STATE_COLUMN: max(cell_len(state.value) for state in InstanceState),
    MARKET: cell_len("spot one-time"),
    UPTIME: cell_len("99d23h"),
    PRICE: cell_len("≤$99.99"),
    COST: cell_len("$9,999.99"),
}

SHORT_ID = 8
"""Characters of the ID kept when it collapses: the tail, where ids differ."""


def fit(text: str, width: int, right: bool = False) -> str:
    """Pad or truncate ``text`` to exactly ``width`` cells, with an ellipsis when cut."""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    padding = " " * (width - length)
    return padding + text if right else text + padding


def short_id(text: str) -> str:
    """The tail of an id behind an ellipsis, when the whole id does not fit."""
    return "…" + text[-SHORT_ID:] if len(text) > SHORT_ID + 1 else text


@dataclass(frozen=True)
class Layout:
    """Which columns are shown, how wide each is, and the gap between them."""

    columns: tuple[int, ...]
    """Indices into :data:`COLUMNS`, in display order."""
    widths: tuple[int, ...]
    """The width of each shown column."""
    gap: int = GAP
    short_ids: bool = False
    """IDs are shown as their tail."""

    @property
    def total(self) -> int:
        """Width of a whole line."""
        return sum(self.widths) + self.gap * max(len(self.widths) - 1, 0)


def layout(widths: Sequence[int], available: int, *, providers: int = 1) -> Layout:
    """Fit the columns into ``available`` cells, giving up the least useful first.

    PROVIDER is shown only when rows come from more than one provider. ADDRESS and WHERE
    go first, then the ID collapses to its tail, UPTIME goes, PROVIDER goes, COST goes, NAME
    narrows, the gaps narrow, MARKET goes, NAME narrows further, then GPUS, TYPE and ID go.
    NAME, STATE and $/H always stay; what is still too wide scrolls sideways.
    """
    shown = [n for n in range(len(COLUMNS)) if n != PROVIDER or providers > 1]
    current = list(widths)
    gap = GAP
    short_ids = False

    def total() -> int:
        return sum(current[n] for n in shown) + gap * (len(shown) - 1)

    def drop(column: int) -> None:
        shown.remove(column)

    def shorten_ids() -> None:
        nonlocal short_ids
        short_ids = True
        current[ID] = min(current[ID], SHORT_ID + 1)

    def narrow_name(width: int) -> None:
        current[NAME] = min(current[NAME], max(width, cell_len(COLUMNS[NAME])))

    def narrow_gaps() -> None:
        nonlocal gap
        gap = NARROW_GAP

    steps: tuple[Callable[[], None], ...] = (
        lambda: drop(ADDRESS),
        lambda: drop(WHERE),
        shorten_ids,
        lambda: drop(UPTIME),
        lambda: drop(PROVIDER) if PROVIDER in shown else None,
        lambda: drop(COST),
        lambda: narrow_name(20),
        narrow_gaps,
        lambda: drop(MARKET),
        lambda: narrow_name(12),
        # Beside the details panel, which names the instance in full, the row only points.
        lambda: drop(GPUS),
        lambda: drop(TYPE),
        lambda: drop(ID),
        lambda: narrow_name(8),
    )
    for step in steps:
        if total() <= available:
            break
        step()
    return Layout(tuple(shown), tuple(current[n] for n in shown), gap, short_ids)


@dataclass(frozen=True)
class Row:
    """One displayed instance with its rendered cells."""

    instance: Instance
    cells: tuple[str, ...]


@dataclass(frozen=True)
class TableData:
    """Sorted rows and column widths, ready to display; built off the event loop."""

    rows: tuple[Row, ...]
    widths: tuple[int, ...]
    providers: int = 1
    """How many providers the rows come from."""


def prepare(
    instances: Sequence[Instance], now: datetime, spent: Mapping[str, Decimal] | None = None
) -> TableData:
    """Sort ``instances`` and render their cells; pure, so a worker thread can do it.

    ``spent``: what each running item's current period has cost, by key (the ledger's figures).
    """
    # row_cells escapes whatever a provider set: the cells go to the terminal as they are.
    rows = tuple(Row(i, row_cells(i, now, spent)) for i in sorted(instances, key=sort_key))
    widths = [max(cell_len(c), MIN_WIDTH.get(n, 0)) for n, c in enumerate(COLUMNS)]
    for row in rows:
        for n, cell in enumerate(row.cells):
            widths[n] = max(widths[n], cell_len(cell))
    capped = [min(w, MAX_WIDTH.get(n, w)) for n, w in enumerate(widths)]
    # The first column carries the mark as well as the protection flag.
    capped[0] = 2
    return TableData(rows, tuple(capped), len({row.instance.provider for row in rows}))


class InstanceTable(ScrollView, can_focus=True):
    """Every instance of the fleet, one line each, with a cursor and marks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES = {
        "instance-table--header",
        "instance-table--cursor",
        "instance-table--marked",
        "instance-table--stale",
        "instance-table--dim",
        "instance-table--empty",
        "instance-table--protected",
        "instance-table--state-running",
        "instance-table--state-pending",
        "instance-table--state-stopped",
        "instance-table--state-gone",
    }

    DEFAULT_CSS = """
    InstanceTable {
        background: $surface;
        scrollbar-gutter: stable;
    }
    InstanceTable > .instance-table--header { text-style: bold; background: $panel; }
    InstanceTable > .instance-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
    }
    InstanceTable:focus > .instance-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    InstanceTable > .instance-table--marked { color: $text-accent; text-style: bold; }
    InstanceTable > .instance-table--stale { text-style: italic; color: $text-muted; }
    InstanceTable > .instance-table--dim { color: $text-disabled; }
    InstanceTable > .instance-table--empty { color: $text-muted; text-style: italic; }
    InstanceTable > .instance-table--protected { color: $text-warning; text-style: bold; }
    InstanceTable > .instance-table--state-running { color: $text-success; }
    InstanceTable > .instance-table--state-pending { color: $text-warning; }
    InstanceTable > .instance-table--state-stopped { color: $text-muted; }
    InstanceTable > .instance-table--state-gone { color: $text-error; }
    """

    class CursorMoved(Message):
        """The instance under the cursor changed (or its data did)."""

        def __init__(self, instance: Instance | None) -> None:
            self.instance = instance
            super().__init__()

    class MarksChanged(Message):
        """Rows were marked or unmarked."""

        def __init__(self, count: int) -> None:
            self.count = count
            super().__init__()

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.empty_text = "Waiting for the first poll…"
        self.marked: set[str] = set()
        self._all: list[Row] = []
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}
        self._widths: tuple[int, ...] = tuple(
            max(cell_len(c), MIN_WIDTH.get(n, 0)) for n, c in enumerate(COLUMNS)
        )
        self._providers = 1
        self._layout = layout(self._widths, sum(self._widths) * 2)
        self._cursor = 0
        self._cursor_key: str | None = None
        self._filter = ""
        self._row_filter: RowFilter | None = None
        self.sort_column: int | None = None
        """The column rows are sorted by; ``None`` for the default order."""
        self.sort_reverse = False
        self._stale: frozenset[str] = frozenset()
        self._notified: Instance | None = None

    # Data in -------------------------------------------------------------------------------

    def show_data(self, data: TableData, stale: Collection[str] = ()) -> None:
        """Replace the rows with ``data`` from :func:`prepare`; cursor, marks and scroll stay."""
        self._stale = frozenset(stale)
        self._all = list(data.rows)
        self._widths = data.widths
        self._providers = data.providers
        present = {row.instance.key for row in self._all}
        if self.marked - present:
            self.marked &= present
            self.post_message(self.MarksChanged(len(self.marked)))
        self._apply()

    def set_filter(self, text: str) -> None:
        """Show only the rows that ``text`` matches (see :func:`runctl_tui.views.parse_filter`)."""
        self._filter = text.strip()
        self._row_filter = parse_filter(self._filter) if self._filter else None
        self._apply()

    @property
    def filter_text(self) -> str:
        """The filter in force, as typed (stripped)."""
        return self._filter

    def sort_by(self, column: int | None, reverse: bool = False) -> None:
        """Sort the rows by ``column`` (``None``: provider, region, live first, name)."""
        self.sort_column = column
        self.sort_reverse = reverse
        self._apply()

    def action_sort_next(self) -> None:
        """Sort by the next shown column; after the last, back to the default order."""
        shown = [n for n in self._layout.columns if COLUMNS[n]]
        if self.sort_column not in shown:
            column: int | None = shown[0] if shown else None
        else:
            position = shown.index(self.sort_column)
            column = shown[position + 1] if position + 1 < len(shown) else None
        self.sort_by(column, self.sort_reverse)

    def action_sort_reverse(self) -> None:
        """Reverse the order of the rows."""
        self.sort_by(self.sort_column, not self.sort_reverse)

    def _apply(self) -> None:
        row_filter = self._row_filter
        rows = (
            [r for r in self._all if row_filter.matches(r.instance, r.cells)]
            if row_filter is not None
            else list(self._all)
        )
        column = self.sort_column
        if column is not None:
            rows.sort(
                key=lambda r: column_order(column, r.instance, r.cells), reverse=self.sort_reverse
            )
        elif self.sort_reverse:
            rows.reverse()
        self._rows = rows
        self._index = {row.instance.key: n for n, row in enumerate(rows)}
        if self._cursor_key in self._index:
            self._cursor = self._index[self._cursor_key]
        else:
            self._cursor = min(self._cursor, max(len(rows) - 1, 0))
            self._cursor_key = rows[self._cursor].instance.key if rows else None
        self._relayout()
        if self.is_mounted:
            # Rows added above the cursor push it down: follow it only if it leaves the view.
            self._scroll_to_cursor()
        self._notify_cursor()
        self.refresh()

    def _relayout(self) -> None:
        available = self.scrollable_content_region.width if self.is_mounted else 0
        if available:
            self._layout = layout(self._widths, available, providers=self._providers)
        self.virtual_size = Size(self._layout.total, len(self._rows) + 1)

    def on_resize(self, event: events.Resize) -> None:
        """Choose the columns again for the new width."""
        self._relayout()
        self.refresh()

    # Data out ------------------------------------------------------------------------------

    @property
    def column_layout(self) -> Layout:
        """The columns shown at the current width."""
        return self._layout

    @property
    def row_count(self) -> int:
        """Rows shown after filtering."""
        return len(self._rows)

    @property
    def total_count(self) -> int:
        """Rows before filtering."""
        return len(self._all)

    @property
    def keys(self) -> list[str]:
        """Keys of the rows shown, in display order."""
        return [row.instance.key for row in self._rows]

    @property
    def cursor_row(self) -> int:
        """Index of the cursor among the rows shown."""
        return self._cursor

    @property
    def current(self) -> Instance | None:
        """The instance under the cursor."""
        return self._rows[self._cursor].instance if self._rows else None

    def instance(self, key: str) -> Instance | None:
        """The shown instance with ``key``, if any."""
        index = self._index.get(key)
        return None if index is None else self._rows[index].instance

    def targets(self) -> tuple[Instance, ...]:
        """What an action applies to: the marked rows (in display order), else the cursor row."""
        if self.marked:
            return tuple(r.instance for r in self._all if r.instance.key in self.marked)
        return (self.current,) if self.current else ()

    # Cursor and marks ----------------------------------------------------------------------

    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view."""
        if not self._rows:
            return
        self._cursor = max(0, min(row, len(self._rows) - 1))
        self._cursor_key = self._rows[self._cursor].instance.key
        self._scroll_to_cursor()
        self._notify_cursor()
        self.refresh()

    def move_to_key(self, key: str) -> None:
        """Put the cursor on the instance with ``key``."""
        if key in self._index:
            self.move_cursor(self._index[key])

    def toggle_mark(self) -> None:
        """Mark or unmark the cursor row."""
        if not self._rows:
            return
        key = self._rows[self._cursor].instance.key
        self.marked.symmetric_difference_update({key})
        self.post_message(self.MarksChanged(len(self.marked)))
        self.refresh()

    def clear_marks(self) -> None:
        """Unmark every row."""
        if self.marked:
            self.marked.clear()
            self.post_message(self.MarksChanged(0))
            self.refresh()

    def _body_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_offset.y)
        height = self._body_height()
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, immediate=True)

    def _notify_cursor(self) -> None:
        current = self.current
        if current is not self._notified:
            self._notified = current
            self.post_message(self.CursorMoved(current))

    def action_cursor_up(self) -> None:
        """Move up one row."""
        self.move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        """Move down one row."""
        self.move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        """Move up one screen."""
        self.move_cursor(self._cursor - self._body_height())

    def action_page_down(self) -> None:
        """Move down one screen."""
        self.move_cursor(self._cursor + self._body_height())

    def action_first(self) -> None:
        """Move to the first row."""
        self.move_cursor(0)

    def action_last(self) -> None:
        """Move to the last row."""
        self.move_cursor(len(self._rows) - 1)

    def header_cells(self) -> tuple[str, ...]:
        """The column titles, the sorted one marked ``▲`` (ascending) or ``▼``."""
        if self.sort_column is None:
            return COLUMNS
        titles = list(COLUMNS)
        titles[self.sort_column] += " ▼" if self.sort_reverse else " ▲"
        return tuple(titles)

    def column_at(self, x: int) -> int | None:
        """The column under content offset ``x`` (scrolling included), if any."""
        position = x + round(self.scroll_offset.x)
        shown = self._layout
        for n, width in zip(shown.columns, shown.widths, strict=True):
            if position < width:
                return n
            position -= width + shown.gap
            if position < 0:
                return None
        return None

    def on_click(self, event: events.Click) -> None:
        """Clicking a row puts the cursor on it; clicking a title sorts by it (again: reversed)."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y >= 1:
            self.move_cursor(round(self.scroll_offset.y) + offset.y - 1)
            return
        column = self.column_at(offset.x)
        if column is not None and COLUMNS[column]:
            reverse = column == self.sort_column and not self.sort_reverse
            self.sort_by(column, reverse)

    # Rendering -----------------------------------------------------------------------------

    def _style(self, component: str) -> Style:
        return self.get_component_rich_style(f"instance-table--{component}")

    def _line(self, cells: Sequence[str], styles: Sequence[Style], base: Style) -> list[Segment]:
        segments: list[Segment] = []
        shown = self._layout
        gap = Segment(" " * shown.gap, base)
        for position, (n, width) in enumerate(zip(shown.columns, shown.widths, strict=True)):
            if position:
                segments.append(gap)
            cell = cells[n]
            if n == ID and shown.short_ids:
                cell = short_id(cell)
            segments.append(Segment(fit(cell, width, n in RIGHT_ALIGNED), styles[n]))
        return segments

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the view: the header, a row, or blank."""
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            header = base + self._style("header")
            segments = self._line(self.header_cells(), [header] * len(COLUMNS), header)
        else:
            index = scroll_y + y - 1
            if not self._rows:
                if y != 2:
                    return Strip.blank(width, base)
                text = fit(clean(self.empty_text), max(width - 2, 1))
                strip = Strip([Segment("  " + text, base + self._style("empty"))])
                return strip.extend_cell_length(width, base).crop(0, width)
            if index >= len(self._rows):
                return Strip.blank(width, base)
            segments = self._row_segments(index, base)
        strip = Strip(segments).extend_cell_length(scroll_x + width, base)
        return strip.crop(scroll_x, scroll_x + width)

    def _row_segments(self, index: int, base: Style) -> list[Segment]:
        row = self._rows[index]
        instance = row.instance
        marked = instance.key in self.marked
        style = base
        if instance.provider in self._stale:
            style += self._style("stale")
        elif instance.state in DIMMED_STATES:
            style += self._style("dim")
        if marked:
            style += self._style("marked")
        cursor = index == self._cursor
        if cursor:
            style += self._style("cursor")
        styles = [style] * len(row.cells)
        if not cursor:
            styles[STATE_COLUMN] = style + self._style(f"state-{state_class(instance.state)}")
            if instance.protected:
                styles[0] = style + self._style("protected")
        cells = list(row.cells)
        cells[0] = ("●" if marked else " ") + cells[0]
        return self._line(cells, styles, style)


def state_class(state: InstanceState) -> str:
    """The style suffix for a state."""
    if state is InstanceState.RUNNING:
        return "running"
    if state in {InstanceState.PENDING, InstanceState.STOPPING}:
        return "pending"
    if state in DIMMED_STATES:
        return "gone"
    return "stopped"
