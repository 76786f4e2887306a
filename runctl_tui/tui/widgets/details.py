"""The details panel: everything known about the instance under the cursor."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from runctl_tui.costs.rates import PriceTable, billed, format_rate
from runctl_tui.models import Instance, format_duration
from runctl_tui.text import clean, one_line
from runctl_tui.views import market_label

TAG_KEY_WIDTH = 24
"""Longer tag keys fold onto more lines rather than squeezing the values out."""


def plain(value: object) -> Text:
    """``value`` as literal text: brackets are not markup, controls are shown escaped."""
    return Text(clean(value))


def unknown_fact(instance: Instance) -> str:
    """``none``, or why a GPU or instance-store fact is unknown when the provider could not say."""
    if instance.type_facts_missing:
        return f"unknown ({instance.type_facts_missing})"
    return "none"


def store_fact(instance: Instance) -> str:
    """The instance store's size, ``none``, or why it is unknown."""
    store = instance.instance_store_gb
    if store is None:
        return unknown_fact(instance) if instance.type_facts_missing else "unknown"
    return f"{store} GB" if store else "none"


def details_renderable(
    instance: Instance | None, now: datetime, prices: PriceTable
) -> RenderableType:
    """A key/value view of ``instance``: identity, network, launch, cost, volumes, tags."""
    if instance is None:
        return Text("No instance selected.", style="italic")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    launched = f"{instance.launched_at:%Y-%m-%d %H:%M:%S} UTC" if instance.launched_at else "-"
    rate = format_rate(instance, prices, basis=True)
    if not billed(instance):
        rate = f"none while {instance.state.value} (list rate {rate})"
    spot_request = [("Spot request", instance.spot_request_id)] if instance.spot_request_id else []
    rows: list[tuple[str, object]] = [
        ("Name", instance.name or "-"),
        ("ID", instance.id),
        ("Provider", instance.provider),
        ("Region", instance.region),
        ("Zone", instance.zone or "-"),
        ("State", instance.state.value),
        ("Type", instance.instance_type),
        ("GPUs", instance.gpus.label() if instance.gpus else unknown_fact(instance)),
        ("Instance store", store_fact(instance)),
        ("Market", market_label(instance)),
        *spot_request,
        ("Rate", rate),
        ("Launched", launched),
        ("Uptime", format_duration(instance.uptime(now))),
        ("Public IP", instance.public_ip or "-"),
        ("Private IP", instance.private_ip or "-"),
        ("AMI", instance.image_id or "-"),
        ("Key name", instance.key_name or "-"),
        ("Protected", "yes (terminate refused)" if instance.protected else "no"),
    ]
    for key, value in rows:
        facts.add_row(Text(key), plain(value))
    parts: list[RenderableType] = [facts, Text("")]
    parts.append(Text(f"Volumes ({len(instance.volumes)})", style="bold underline"))
    for volume in instance.volumes:
        fate = "deleted on terminate" if volume.delete_on_termination else "kept on terminate"
        parts.append(plain(f"  {volume.device}  {volume.id}  {fate}"))
    parts.append(Text(""))
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

    def __init__(self, prices: PriceTable, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prices = prices
        self.border_title = "Details"

    def compose(self) -> ComposeResult:
        """The single content block."""
        yield Static(id="details-body")

    def show(self, instance: Instance | None, now: datetime) -> None:
        """Display ``instance``."""
        self.query_one("#details-body", Static).update(
            details_renderable(instance, now, self.prices)
        )
        if instance is None:
            self.border_title = "Details"
            return
        # A border title given as a string is parsed as markup; a name is data.
        label = one_line(instance.name or instance.id, 40)
        self.border_title = Content.assemble("Details · ", label)
