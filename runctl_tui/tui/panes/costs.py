"""The cost pane: budgets, burn rate and spend per provider, every resource's cost, and flags.

Everything comes from the :class:`~runctl_tui.costs.report.CostReport` of the last poll. The
resource table renders only the rows in view, so a fleet of thousands of disks and instances
scrolls as freely as a handful. ``enter`` on a row says where its rate came from; the stop key
on an idle instance asks to stop it through the fleet's usual confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.widget import Widget
from textual.widgets import DataTable, Static

from runctl_tui.keys import BINDINGS as KEY_BINDINGS
from runctl_tui.models import Action, format_duration, format_usd
from runctl_tui.text import cell_width, clean, one_line
from runctl_tui.tui.messages import FleetPolled
from runctl_tui.tui.panes import Pane, PaneContext
from runctl_tui.tui.widgets.footer import textual_binding
from runctl_tui.tui.widgets.row_table import (
    DIM_STYLE,
    NAVIGATION,
    Column,
    RowTable,
)

if TYPE_CHECKING:
    from runctl_tui.costs.budget import BudgetStatus
    from runctl_tui.costs.ledger import Gap
    from runctl_tui.costs.report import CostLine, CostReport, Totals

WAITING = "Waiting for the first poll: costs appear once it has finished and been recorded."

STOP_BINDING_IDS = frozenset({"stop-instance"})
"""The bindings of :data:`runctl_tui.keys.BINDINGS` the pane takes up (the same keys as on
the fleet, so a keymap moves both)."""

FLAG_STYLES = {
    "leak": Style(color="red", bold=True),
    "idle": Style(color="yellow", bold=True),
    "orphaned": Style(color="yellow"),
    "unpriced": Style(color="magenta"),
    "gone": Style(dim=True),
}
"""How each kind of flag is coloured in the table."""

BUDGET_STYLES = {"ok": "green", "warn": "bold yellow", "over": "bold white on red"}
"""How a budget line looks at each level."""

FLAGGED_NAME_STYLE = Style(bold=True)


COLUMNS = (
    Column("NAME / ID", 0),
    Column("PROVIDER", 10),
    Column("WHERE", 9),
    Column("STATE", 10),
    Column("$/H", 8, right=True),
    Column("THIS RUN", 9, right=True),
    Column("TODAY", 9, right=True),
    Column("THIS MONTH", 10, right=True),
    Column("FLAG", 0),
)
"""The resource columns; NAME / ID and FLAG share what the others leave. THIS RUN is the
spend since the current running period began (launch or the last start)."""

FLAG_COLUMN = len(COLUMNS) - 1
NAME_MIN = 14
FLAG_MIN = 12
FLAG_WANTED = 24
"""On a narrow terminal columns give way until the flag has this much room."""
DROP_ORDER = (2, 5, 7, 1)
"""Columns that give way on a narrow terminal, first to last: WHERE, THIS RUN, THIS MONTH,
PROVIDER. NAME / ID, STATE, $/H, TODAY and FLAG always stay."""

TOTALS_COLUMNS = (
    "PROVIDER",
    "BURN NOW",
    "TODAY",
    "THIS MONTH",
    "BY END OF DAY",
    "BY END OF MONTH",
    "UNPRICED",
)
"""What each totals row shows."""


def money(amount: Decimal | None, marker: str = "", per_hour: bool = False) -> str:
    """``$1.01`` (``≤$1.01/h`` with a marker); ``?`` when unknown."""
    if amount is None:
        return "?"
    return f"{marker}{format_usd(amount, per_hour=per_hour)}"


def duration(seconds: float) -> str:
    """``42s``, ``17m``, ``4h12m``, ``3d04h``: a span, for notes."""
    return format_duration(timedelta(seconds=max(int(seconds), 0)))


def line_label(line: CostLine) -> str:
    """``name · id``, or the id alone when it has no name; plain and one line."""
    name = clean(line.name).strip()
    ident = clean(line.id)
    return f"{name} · {ident}" if name and name != ident else ident


def line_cells(line: CostLine) -> tuple[str, ...]:
    """One resource row as plain, safe text, in :data:`COLUMNS` order."""
    marker = "" if line.rate is None else line.rate.marker
    if not line.billing:
        rate = "-"
    elif line.burn_usd_per_hour is None:
        rate = "?"
    else:
        rate = money(line.burn_usd_per_hour, marker)
    since = "" if line.since_launch_usd is None else money(line.since_launch_usd, marker)
    flags = "; ".join(one_line(flag.text, 200) for flag in line.flags)
    return (
        line_label(line),
        f"{one_line(line.provider, 40)} {one_line(line.kind, 40)}",
        one_line(line.location, 60),
        one_line(line.state, 40),
        rate,
        since,
        money(line.today_usd),
        money(line.month_usd),
        flags,
    )


def flag_style(line: CostLine) -> Style | None:
    """The colour of a line's flag text: its most urgent flag's."""
    for kind in FLAG_STYLES:
        if any(flag.kind == kind for flag in line.flags):
            return FLAG_STYLES[kind]
    return None


def totals_cells(totals: Totals) -> tuple[Text, ...]:
    """One totals row: provider, burn now, today, month, projections, unpriced count."""
    marker = totals.marker
    total = totals.provider == "total"
    style = "bold" if total else ""
    unpriced = f"{totals.unpriced} not counted" if totals.unpriced else ""
    return (
        Text("TOTAL" if total else one_line(totals.provider, 30), style=style),
        Text(money(totals.burn_usd_per_hour, marker, per_hour=True), style=style),
        Text(money(totals.today_usd, marker), style=style),
        Text(money(totals.month_usd, marker), style=style),
        Text(money(totals.projected_today_usd, marker), style=style),
        Text(money(totals.projected_month_usd, marker), style=style),
        Text(unpriced, style="magenta" if unpriced else ""),
    )


def budget_text(statuses: Sequence[BudgetStatus]) -> Text:
    """One line per budget, coloured by level; how to set one when none is."""
    if not statuses:
        return Text(
            "No budget set: daily_budget and monthly_budget in the config "
            "warn at 80% and alert at 100%",
            style="dim",
        )
    text = Text()
    for n, status in enumerate(statuses):
        if n:
            text.append("\n")
        level = str(getattr(status.level, "value", status.level))
        label = {"ok": "budget", "warn": "⚠ budget", "over": "OVER BUDGET"}.get(level, "budget")
        text.append(f" {label:<11} ", style=BUDGET_STYLES.get(level, ""))
        text.append(" ")
        text.append(one_line(status.describe(), 300), style="" if level == "ok" else "bold")
    return text


def markers_note(report: CostReport) -> str:
    """What ``≤`` and ``~`` mean, when a figure on screen carries one."""
    markers = {t.marker for t in (*report.providers, report.total)}
    markers.update(line.rate.marker for line in report.lines if line.rate is not None)
    parts = []
    if "≤" in markers:
        parts.append("≤ at most (spot counted at its on-demand price)")
    if "~" in markers:
        parts.append("~ estimated from another region's price")
    return " · ".join(parts)


def _union_seconds(spans: Iterable[tuple[datetime, datetime]]) -> float:
    """Seconds covered by ``spans``, overlaps counted once."""
    total = 0.0
    end: datetime | None = None
    start: datetime | None = None
    for lo, hi in sorted(spans):
        if hi <= lo:
            continue
        if end is None or start is None or lo > end:
            if end is not None and start is not None:
                total += (end - start).total_seconds()
            start, end = lo, hi
        elif hi > end:
            end = hi
    if end is not None and start is not None:
        total += (end - start).total_seconds()
    return total


def gaps_summary(gaps: Sequence[Gap]) -> list[str]:
    """One line per reason: ``not counted: up to 4h12m of 3 resources: may have run while
    runctl-tui was closed``."""
    by_reason: dict[str, list[Gap]] = {}
    for gap in gaps:
        by_reason.setdefault(one_line(gap.reason, 120) or "unknown", []).append(gap)
    lines = []
    for reason, found in by_reason.items():
        seconds = _union_seconds((g.start, g.end) for g in found)
        keys = {g.key for g in found}
        noun = "resource" if len(keys) == 1 else "resources"
        why = reason.removesuffix("; not counted")
        lines.append(f"not counted: up to {duration(seconds)} of {len(keys)} {noun}: {why}")
    return lines


def age_text(generated_at: datetime, now: datetime) -> str:
    """``figures of 12:00:03 UTC, 5s ago``."""
    stamp = generated_at.strftime("%H:%M:%S UTC")
    age = (now - generated_at).total_seconds()
    if age < 0:
        return f"figures of {stamp}"
    return f"figures of {stamp}, {duration(age)} ago"


def notes_text(report: CostReport, now: datetime) -> Text:
    """Below the table: the ledger's error or gaps, where it is, markers, and the age."""
    text = Text()
    if report.ledger_error is not None:
        text.append("⚠ ", style="bold red")
        text.append(one_line(report.ledger_error, 300), style="bold red")
        text.append(
            " · spend shown covers this poll only; check that the ledger file is writable "
            "(free space, permissions), or start afresh with runctl-tui costs --reset-ledger",
            style="red",
        )
        text.append("\n")
    for line in gaps_summary(report.gaps):
        text.append(line, style="yellow")
        text.append("\n")
    for note in report.notes:
        text.append(one_line(note, 300), style="dim")
        text.append("\n")
    meaning = markers_note(report)
    if meaning:
        text.append(meaning, style="dim")
        text.append("\n")
    if report.ledger_path:
        text.append("ledger ", style="dim")
        text.append(one_line(report.ledger_path, 200), style="dim")
        text.append(" · ", style="dim")
    text.append(age_text(report.generated_at, now), style="dim")
    return text


def column_widths(total: int, name_need: int = 0, flag_need: int = 0) -> list[int]:
    """Each column's width at ``total`` cells.

    NAME / ID and FLAG share what the fixed columns leave: each gets what its longest cell
    needs when both fit; otherwise the flag gets up to two thirds, as it is what must be read.
    """
    shown = list(range(len(COLUMNS)))
    for column in DROP_ORDER:
        fixed = sum(COLUMNS[n].width for n in shown) + len(shown) - 1
        if total - fixed >= NAME_MIN + FLAG_WANTED:
            break
        shown.remove(column)
    fixed = sum(COLUMNS[n].width for n in shown) + len(shown) - 1
    left = max(NAME_MIN + FLAG_MIN, total - fixed)
    name_need = max(NAME_MIN, name_need)
    if name_need + flag_need <= left:
        name = name_need
    else:
        flag = max(FLAG_MIN, min(flag_need, left * 2 // 3))
        name = max(NAME_MIN, left - flag)
    widths = [c.width if n in shown else 0 for n, c in enumerate(COLUMNS)]
    widths[0] = name
    widths[FLAG_COLUMN] = max(FLAG_MIN, left - name)
    return widths


class CostTable(RowTable["CostLine"]):
    """Every resource's cost, one row each, flagged first; only the rows in view are rendered."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *NAVIGATION,
        Binding("enter", "choose", "Rate source"),
    ]
    COLUMNS = COLUMNS

    DEFAULT_CSS = """
    CostTable { height: 1fr; overflow-x: hidden; }
    """

    @dataclass
    class Chosen(Message):
        """``enter`` on a row: show where its rate came from."""

        line: CostLine

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cells: dict[int, tuple[str, ...]] = {}
        self._name_need = 0
        self._flag_need = 0

    @property
    def lines(self) -> tuple[CostLine, ...]:
        """The lines shown, in order."""
        return self.rows

    def show(self, lines: Sequence[CostLine]) -> None:
        """Show ``lines``; the cursor stays on the resource it was on, if still listed."""
        self._cells = {}
        # Widest name and flag, capped: cheap enough for thousands of lines once a poll.
        self._name_need = max((min(cell_width(line_label(x)), 60) for x in lines), default=0)
        self._flag_need = max(
            (min(cell_width("; ".join(f.text for f in x.flags)), 120) for x in lines),
            default=0,
        )
        self.show_rows(lines, lambda line: line.key)

    def chosen(self, row: CostLine) -> Message:
        """``enter``: where its rate came from."""
        return self.Chosen(row)

    def cells(self, index: int) -> tuple[str, ...]:
        """Row ``index``'s cells, worked out once per report."""
        found = self._cells.get(index)
        if found is None:
            found = self._cells[index] = line_cells(self.lines[index])
        return found

    def move_to_key(self, key: str) -> bool:
        """Put the cursor on the resource ``key``; whether it is listed."""
        for n, line in enumerate(self.lines):
            if line.key == key:
                self.move_to(n)
                return True
        return False

    def column_widths(self, total: int) -> list[int]:
        """NAME / ID and FLAG share what is left; narrow, some columns give way."""
        return column_widths(total, self._name_need, self._flag_need)

    def row_cells(self, index: int) -> tuple[str, ...]:
        """Row ``index``'s cells, worked out once per report."""
        return self.cells(index)

    def cell_style(self, row: CostLine, column: int, cell: str) -> Style | None:
        """Flags coloured, flagged names bold, the rate of what does not bill dimmed."""
        if column == FLAG_COLUMN:
            return flag_style(row)
        if column == 0 and row.flags:
            return FLAGGED_NAME_STYLE
        return DIM_STYLE if not row.billing and column in (3, 4) else None


class CostsPane(Pane):
    """What the fleet costs: budgets, totals per provider, every resource, notes."""

    PANE_ID = "costs"

    BINDINGS: ClassVar[list[BindingType]] = [
        textual_binding(binding) for binding in KEY_BINDINGS if binding.id in STOP_BINDING_IDS
    ]

    DEFAULT_CSS = """
    CostsPane { border: round $panel-lighten-2; border-title-color: $text-accent; }
    CostsPane.-over { border: heavy $error; border-title-color: $text-error; }
    CostsPane.-warn { border: round $warning; border-title-color: $text-warning; }
    CostsPane #costs-waiting { height: 1fr; padding: 1 2; color: $text-muted; }
    CostsPane #costs-budgets { height: auto; padding: 0 1; }
    CostsPane #costs-totals { height: auto; max-height: 10; margin: 1 0 0 0; }
    CostsPane #costs-lines { height: 1fr; margin: 1 0 0 0; }
    CostsPane #costs-notes { height: auto; max-height: 8; padding: 0 1; }
    CostsPane.-waiting #costs-budgets, CostsPane.-waiting #costs-totals,
    CostsPane.-waiting #costs-lines, CostsPane.-waiting #costs-notes { display: none; }
    CostsPane #costs-waiting { display: none; }
    CostsPane.-waiting #costs-waiting { display: block; }
    """

    def __init__(self, context: PaneContext) -> None:
        super().__init__(context)
        self.report: CostReport | None = None
        """The report shown; ``None`` until the first poll's arrives."""
        self._announced: CostReport | None = None
        self._lines = CostTable(id="costs-lines")

    def compose(self) -> ComposeResult:
        """Waiting note, budgets, totals, resources, notes."""
        yield Static(Text(WAITING), id="costs-waiting")
        yield Static(Text(""), id="costs-budgets")
        totals: DataTable[Text] = DataTable(
            id="costs-totals", cursor_type="row", show_cursor=True, zebra_stripes=False
        )
        yield totals
        yield self._lines
        yield Static(Text(""), id="costs-notes")

    def on_mount(self) -> None:
        """Columns; waiting until a report comes; the age of the figures ticks."""
        self.border_title = "Costs"
        self.totals_table.add_columns(*TOTALS_COLUMNS)
        self.add_class("-waiting")
        self.set_interval(1.0, self.tick, name="costs-age")

    @property
    def table(self) -> CostTable:
        """The resource table."""
        return self._lines

    @property
    def totals_table(self) -> DataTable[Text]:
        """The totals, one row per provider and a total row."""
        return self.query_one("#costs-totals", DataTable)

    def focus_target(self) -> Widget | None:
        """The resource table."""
        return self._lines

    def now(self) -> datetime:
        """The pane's clock."""
        return self.context.clock()

    # What the screen passes down -----------------------------------------------------------

    def fleet_polled(self, event: FleetPolled) -> None:
        """Show the poll's cost report, when it has one."""
        if event.costs is not None:
            self.show_report(event.costs)

    def show_report(self, report: CostReport) -> None:
        """Put ``report`` on screen and announce its alerts (once per report)."""
        self.report = report
        self.remove_class("-waiting")
        levels = {str(getattr(b.level, "value", b.level)) for b in report.budgets}
        self.set_class("over" in levels, "-over")
        self.set_class("warn" in levels and "over" not in levels, "-warn")
        self.border_title = "Costs · OVER BUDGET" if "over" in levels else "Costs"
        self.query_one("#costs-budgets", Static).update(budget_text(report.budgets))
        self.show_totals(report)
        self._lines.show(report.lines)
        self.tick()
        self.announce(report)

    def show_totals(self, report: CostReport) -> None:
        """One row per provider, then the total; the cursor stays on its provider."""
        table = self.totals_table
        current = table.cursor_row
        table.clear()
        for totals in (*report.providers, report.total):
            table.add_row(*totals_cells(totals), key=f"totals:{totals.provider}")
        if table.row_count:
            table.move_cursor(row=min(current, table.row_count - 1), animate=False)

    def announce(self, report: CostReport) -> None:
        """Notify each of the report's alerts once, with the bell where asked."""
        if report is self._announced:
            return
        self._announced = report
        ring = False
        for alert in report.alerts:
            severity: SeverityLevel = "error" if alert.severity == "error" else "warning"
            self.notify(one_line(alert.text, 300), severity=severity, timeout=15, markup=False)
            ring = ring or alert.bell
        if ring:
            self.app.bell()

    def tick(self) -> None:
        """Keep the age of the figures honest between polls."""
        if self.report is not None:
            self.query_one("#costs-notes", Static).update(notes_text(self.report, self.now()))

    # Rate sources --------------------------------------------------------------------------

    @on(CostTable.Chosen)
    def show_line_source(self, event: CostTable.Chosen) -> None:
        """``enter`` on a resource: where its rate came from."""
        event.stop()
        from runctl_tui.tui.screens.rate_source import RateSourceScreen

        self.app.push_screen(RateSourceScreen.for_line(event.line))

    @on(DataTable.RowSelected, "#costs-totals")
    def show_totals_source(self, event: DataTable.RowSelected) -> None:
        """``enter`` on a totals row: the sources that make it up."""
        event.stop()
        if self.report is None or event.row_key.value is None:
            return
        provider = event.row_key.value.removeprefix("totals:")
        totals = next(
            (t for t in (*self.report.providers, self.report.total) if t.provider == provider),
            None,
        )
        if totals is None:
            return
        from runctl_tui.tui.screens.rate_source import RateSourceScreen

        self.app.push_screen(RateSourceScreen.for_totals(totals, self.report))

    # Stopping ------------------------------------------------------------------------------

    def action_act(self, name: str) -> None:
        """The stop key on a resource: ask to stop it through the fleet's confirmation."""
        if name != "stop":
            return
        if self.report is None:
            self.notify("No costs yet: waiting for the first poll.", severity="warning")
            return
        line = self._lines.selected
        if line is None or not self._lines.has_focus:
            self.notify("Pick a resource in the table below to stop it.", severity="warning")
            return
        if line.instance is None:
            self.notify(why_not_stoppable(line), severity="warning", timeout=8, markup=False)
            return
        ask = stop_asker(self.screen)
        if ask is None:
            self.notify("Stopping is done from the fleet pane here.", severity="warning")
            return
        ask(Action.STOP, targets=(line.instance,))


def why_not_stoppable(line: CostLine) -> str:
    """Why the stop key does nothing on ``line``, in one line."""
    label = one_line(line_label(line), 80)
    if line.state == "gone":
        return f"{label} no longer exists: only the ledger remembers what it cost."
    if line.storage is not None:
        place = one_line(line.location, 40)
        return (
            f"{label} is a disk: it bills until it is deleted; snapshot or delete it "
            f"from the provider's console ({place})."
        )
    return f"{label} cannot be stopped from here."


def stop_asker(screen: object) -> Callable[..., None] | None:
    """The fleet pane's ``ask`` on the main screen, if ``screen`` is one."""
    from runctl_tui.tui.panes.fleet import FleetPane

    try:
        fleet_pane = getattr(screen, "fleet_pane", None)
    except Exception:
        return None
    return fleet_pane.ask if isinstance(fleet_pane, FleetPane) else None


PANE = CostsPane
