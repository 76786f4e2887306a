"""Where a cost figure comes from: a resource's rate, source, date and region, or the sources
behind a provider's totals. ``escape`` or ``enter`` closes it; keys typed before it was shown
are dropped, so the ``enter`` that opened it cannot also close it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from runctl_tui.models import Rate, format_usd
from runctl_tui.text import clean, one_line
from runctl_tui.tui.screens.confirm import KeyGuard, event_clock, guarded_key

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostLine, CostReport, Totals

LABEL_WIDTH = 14
"""Cells for the field names on the left."""

HOURS_PER_MONTH = Decimal(730)
"""How providers turn a monthly storage price into an hourly one."""

MARKER_MEANINGS = {
    "≤": "at most this: a spot instance counted at its on-demand price",
    "~": "an estimate: taken from another region's price",
}


@dataclass(frozen=True)
class Field:
    """One labelled line of the dialog."""

    label: str
    value: str
    style: str = ""


def exact_usd(amount: Decimal) -> str:
    """``$1.006``: the figure as the rate source gave it, to at most six decimals (at least
    two), unlike the rounded figures of the table."""
    exponent = amount.quantize(Decimal("0.000001")).normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"${amount:,.{places}f}"


def _hours(hours: Decimal) -> str:
    return f"{hours.quantize(Decimal('0.01'))} h"


def rate_fields(rate: Rate | None, location: str) -> list[Field]:
    """What a rate says about itself: figure, source, date, region, note, marker."""
    if rate is None:
        return [Field("Rate", "unknown: not counted in the totals", "bold magenta")]
    fields = [
        Field("Rate", f"{rate.marker}{exact_usd(rate.usd_per_hour)}/h", "bold"),
        Field("Source", one_line(rate.source, 200)),
        Field(
            "As of",
            rate.as_of.strftime("%Y-%m-%d %H:%M UTC")
            if rate.as_of is not None
            else "configured (no date)",
        ),
        Field("Region", one_line(rate.region or location, 80)),
    ]
    if rate.marker:
        fields.append(Field("Marker", f"{rate.marker} {MARKER_MEANINGS[rate.marker]}", "yellow"))
    if rate.note:
        fields.append(Field("Note", one_line(rate.note, 300), "yellow"))
    return fields


def line_fields(line: CostLine) -> list[Field]:
    """Everything the dialog shows about one resource."""
    fields = [
        Field("Resource", one_line(line.id, 120), "bold"),
    ]
    if line.name and line.name != line.id:
        fields.append(Field("Name", one_line(line.name, 120)))
    fields.append(Field("Provider", f"{one_line(line.provider, 40)} · {one_line(line.kind, 40)}"))
    fields.append(Field("Where", one_line(line.location, 80)))
    fields.append(Field("State", one_line(line.state, 60)))
    fields.extend(rate_fields(line.rate, line.location))
    if line.monthly_usd is not None:
        fields.append(
            Field("Per month", f"{format_usd(line.monthly_usd)} (storage is quoted monthly)")
        )
    storage = line.storage
    if storage is not None:
        size = f"{storage.size_gb} GB {one_line(storage.volume_type, 20)}".strip()
        extra = []
        if storage.iops is not None:
            extra.append(f"{storage.iops} IOPS")
        if storage.throughput_mibps is not None:
            extra.append(f"{storage.throughput_mibps} MiB/s")
        fields.append(Field("Disk", " · ".join([size, *extra])))
    if not line.billing:
        fields.append(Field("Billing", "not now (only running machines bill for compute)", "dim"))
    if line.since_launch_usd is not None:
        fields.append(
            Field("This run", f"{format_usd(line.since_launch_usd)} since launch or last start")
        )
    fields.append(Field("Today", format_usd(line.today_usd)))
    fields.append(
        Field("This month", f"{format_usd(line.month_usd)} over {_hours(line.month_hours)}")
    )
    for flag in line.flags:
        fields.append(Field("Flag", one_line(flag.text, 300), "bold red"))
    if line.gpu_note:
        fields.append(Field("Idle check", one_line(line.gpu_note, 300), "yellow"))
    return fields


def totals_fields(totals: Totals, report: CostReport) -> list[Field]:
    """A totals row's figures, then each rate source behind it with its items and burn."""
    marker = totals.marker
    everything = totals.provider == "total"
    fields = [
        Field("Totals", "every provider" if everything else one_line(totals.provider, 40), "bold"),
        Field("Burn now", marker + format_usd(totals.burn_usd_per_hour, per_hour=True)),
        Field("Today", marker + format_usd(totals.today_usd)),
        Field("This month", marker + format_usd(totals.month_usd)),
        Field("By end of day", marker + format_usd(totals.projected_today_usd)),
        Field("By month end", marker + format_usd(totals.projected_month_usd)),
    ]
    if marker:
        fields.append(Field("Marker", f"{marker} {MARKER_MEANINGS[marker]}", "yellow"))
    if totals.unpriced:
        noun = "item bills" if totals.unpriced == 1 else "items bill"
        fields.append(
            Field(
                "Unpriced",
                f"{totals.unpriced} {noun} at an unknown rate: not in these figures",
                "magenta",
            )
        )
    chosen = [
        line
        for line in report.lines
        if line.billing and (everything or line.provider == totals.provider)
    ]
    for source, count, burn, notes in rate_sources(chosen):
        noun = "item" if count == 1 else "items"
        value = f"{source}: {count} {noun}, {format_usd(burn, per_hour=True)}"
        fields.append(Field("Source", value))
        for note in notes:
            fields.append(Field("", f"  {note}", "yellow"))
    if not chosen:
        fields.append(Field("Source", "nothing bills now", "dim"))
    return fields


def rate_sources(lines: Sequence[CostLine]) -> list[tuple[str, int, Decimal, tuple[str, ...]]]:
    """``(source, items, burn per hour, notes)`` for each rate source of ``lines``, the
    largest burn first; items without a rate are grouped as ``no rate known``."""
    grouped: dict[str, tuple[int, Decimal, dict[str, None]]] = {}
    for line in lines:
        rate = line.rate
        source = "no rate known" if rate is None else one_line(rate.describe(), 160)
        count, burn, notes = grouped.get(source, (0, Decimal(0), {}))
        if rate is not None and rate.note:
            notes[one_line(rate.note, 200)] = None
        grouped[source] = (count + 1, burn + (line.burn_usd_per_hour or Decimal(0)), notes)
    rows = [(source, n, burn, tuple(notes)) for source, (n, burn, notes) in grouped.items()]
    return sorted(rows, key=lambda row: (-row[2], row[0]))


def fields_text(fields: Sequence[Field]) -> Text:
    """The fields as aligned lines of plain text, never markup."""
    text = Text()
    for n, field in enumerate(fields):
        if n:
            text.append("\n")
        text.append(clean(field.label).ljust(LABEL_WIDTH), style="dim")
        text.append(clean(field.value), style=field.style)
    return text


class RateSourceScreen(ModalScreen[None]):
    """Where a figure's rate came from; ``escape`` or ``enter`` closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close", show=False),
    ]

    CLOSE_KEYS: ClassVar[frozenset[str]] = frozenset({"escape", "enter"})

    DEFAULT_CSS = """
    RateSourceScreen { align: center middle; }
    RateSourceScreen #dialog {
        width: 96;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    RateSourceScreen #title { text-style: bold; width: 1fr; margin-bottom: 1; }
    RateSourceScreen #fields { height: auto; max-height: 24; }
    RateSourceScreen #keys { color: $text-muted; }
    """

    def __init__(self, title: str, fields: Sequence[Field]) -> None:
        super().__init__()
        self.title_text = title
        self.fields = tuple(fields)
        self.guard = KeyGuard(seconds=0.0)

    @classmethod
    def for_line(cls, line: CostLine) -> RateSourceScreen:
        """The dialog of one resource."""
        name = one_line(line.name or line.id, 60)
        return cls(f"Rate source · {name}", line_fields(line))

    @classmethod
    def for_totals(cls, totals: Totals, report: CostReport) -> RateSourceScreen:
        """The dialog of a provider's totals, or of everything."""
        which = "all providers" if totals.provider == "total" else one_line(totals.provider, 40)
        return cls(f"Rate sources · {which}", totals_fields(totals, report))

    def compose(self) -> ComposeResult:
        """Title, fields and the keys."""
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text), id="title")
            with VerticalScroll(id="fields"):
                yield Static(fields_text(self.fields), id="fields-text")
            yield Static(Text("esc / enter close"), id="keys")

    def on_mount(self) -> None:
        """Keys count once the dialog has been painted."""
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.guard.show(event_clock())

    async def on_key(self, event: events.Key) -> None:
        """Drop keys that were typed before the dialog was on screen."""
        if not self.is_active:
            event.stop()
            event.prevent_default()
            return
        await guarded_key(self, event, self.guard, self.CLOSE_KEYS)

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)

    def plain(self) -> str:
        """The dialog's text, for tests and screen readers."""
        return fields_text(self.fields).plain
