"""The details panel: everything known about the instance under the cursor."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from runctl_tui.costs.rates import billed, format_rate
from runctl_tui.models import Ec2Details, Instance, format_duration, format_usd
from runctl_tui.text import clean, one_line

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostLine

TAG_KEY_WIDTH = 24
"""Longer tag keys fold onto more lines rather than squeezing the values out."""


def plain(value: object) -> Text:
    """``value`` as literal text: brackets are not markup, controls are shown escaped."""
    return Text(clean(value))


def gpu_fact(instance: Instance) -> str:
    """The GPUs, ``none``, or why they are unknown when the provider could not say."""
    if instance.gpus:
        return instance.gpus.label()
    details = instance.details
    if isinstance(details, Ec2Details) and details.type_facts_missing:
        return f"unknown ({details.type_facts_missing})"
    return "none"


def usage_fact(instance: Instance) -> list[tuple[str, str]]:
    """One row per GPU with its load now, where the provider measures it."""
    rows = []
    for gpu in instance.gpu_usage:
        util = "?" if gpu.utilization_percent is None else f"{gpu.utilization_percent}%"
        memory = ""
        if gpu.memory_used_mib is not None and gpu.memory_total_mib:
            memory = f", {gpu.memory_used_mib} of {gpu.memory_total_mib} MiB"
        elif gpu.memory_percent is not None:
            memory = f", memory {gpu.memory_percent}% used"
        label = f"GPU {gpu.index}"
        rows.append((label, f"{gpu.name + ': ' if gpu.name else ''}{util} busy{memory}"))
    return rows


def spent_fact(line: CostLine | None) -> list[tuple[str, object]]:
    """``Spent: this run $X · today $Y · this month $Z``, once the ledger has figures."""
    if line is None:
        return []
    parts = []
    if line.since_launch_usd is not None:
        parts.append(f"this run {format_usd(line.since_launch_usd)}")
    parts.append(f"today {format_usd(line.today_usd)}")
    parts.append(f"this month {format_usd(line.month_usd)}")
    facts: list[tuple[str, object]] = [("Spent", " · ".join(parts))]
    facts.extend(("Flag", flag.text) for flag in line.flags)
    if line.gpu_note:
        facts.append(("Idle check", line.gpu_note))
    return facts


def details_renderable(
    instance: Instance | None, now: datetime, spent: CostLine | None = None
) -> RenderableType:
    """A key/value view of ``instance``: identity, what its kind adds, cost, tags."""
    if instance is None:
        return Text("No instance selected.", style="italic")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    launched = f"{instance.launched_at:%Y-%m-%d %H:%M:%S} UTC" if instance.launched_at else "-"
    rate = format_rate(instance, basis=True)
    if not billed(instance):
        rate = f"none while {instance.state.value} (rate when running {rate})"
    protected = "no"
    if instance.protected:
        protected = f"yes, by {instance.protected_by}" if instance.protected_by else "yes"
        protected += " (terminate and kill refused)"
    rows: list[tuple[str, object]] = [
        ("Name", instance.name or "-"),
        ("ID", instance.id),
        ("Provider", instance.provider),
        ("Kind", instance.kind),
        ("Location", instance.location),
        ("State", instance.state.value),
        ("GPUs", gpu_fact(instance)),
        *usage_fact(instance),
        *instance.details.facts(),
        ("Rate", rate),
        *spent_fact(spent),
        ("Launched", launched),
        ("Uptime", format_duration(instance.uptime(now))),
        ("Protected", protected),
    ]
    for key, value in rows:
        facts.add_row(Text(key), plain(value))
    parts: list[RenderableType] = [facts, Text("")]
    parts.append(Text(f"Tags ({len(instance.tags)})", style="bold underline"))
    tags = Table.grid(padding=(0, 2))
    tags.add_column(style="cyan", overflow="fold", max_width=TAG_KEY_WIDTH)
    tags.add_column(overflow="fold")
    for key in sorted(instance.tags):
        tags.add_row(plain(f"  {key}"), plain(instance.tags[key]))
    parts.append(tags)
    return Group(*parts)


class DetailsPanel(VerticalScroll):
    """Scrollable details of one instance."""

    DEFAULT_CSS = """
    DetailsPanel > Static { width: 100%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Details"

    def compose(self) -> ComposeResult:
        """The single content block."""
        yield Static(id="details-body")

    def show(self, instance: Instance | None, now: datetime, spent: CostLine | None = None) -> None:
        """Display ``instance``, with what it cost (``spent``) when the ledger says."""
        self.query_one("#details-body", Static).update(details_renderable(instance, now, spent))
        if instance is None:
            self.border_title = "Details"
            return
        # A border title given as a string is parsed as markup; a name is data.
        label = one_line(instance.name or instance.id, 40)
        self.border_title = Content.assemble("Details · ", label)
