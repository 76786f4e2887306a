"""The details panel: everything known about the instance under the cursor."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from runctl_tui.costs.rates import PriceTable
from runctl_tui.models import Instance, format_duration, format_usd
from runctl_tui.views import market_label


def details_renderable(
    instance: Instance | None, now: datetime, prices: PriceTable
) -> RenderableType:
    """A key/value view of ``instance``: identity, network, launch, cost, volumes, tags."""
    if instance is None:
        return Text("No instance selected.", style="italic")
    rate = prices.rate(instance)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    launched = f"{instance.launched_at:%Y-%m-%d %H:%M:%S} UTC" if instance.launched_at else "-"
    rows: list[tuple[str, str]] = [
        ("Name", instance.name or "-"),
        ("ID", instance.id),
        ("Provider", instance.provider),
        ("Region", instance.region),
        ("Zone", instance.zone or "-"),
        ("State", instance.state.value),
        ("Type", instance.instance_type),
        ("GPUs", instance.gpus.label() if instance.gpus else "none"),
        (
            "Instance store",
            f"{instance.instance_store_gb} GB" if instance.instance_store_gb else "none",
        ),
        ("Market", market_label(instance)),
        (
            "Rate",
            f"{format_usd(rate.usd_per_hour, per_hour=True)} ({rate.basis})" if rate else "unknown",
        ),
        ("Launched", launched),
        ("Uptime", format_duration(instance.uptime(now))),
        ("Public IP", instance.public_ip or "-"),
        ("Private IP", instance.private_ip or "-"),
        ("AMI", instance.image_id or "-"),
        ("Key name", instance.key_name or "-"),
        ("Protected", "yes (terminate refused)" if instance.protected else "no"),
    ]
    for key, value in rows:
        facts.add_row(key, value)
    parts: list[RenderableType] = [facts, Text("")]
    parts.append(Text(f"Volumes ({len(instance.volumes)})", style="bold underline"))
    for volume in instance.volumes:
        fate = "deleted on terminate" if volume.delete_on_termination else "kept on terminate"
        parts.append(Text(f"  {volume.device}  {volume.id}  {fate}"))
    parts.append(Text(""))
    parts.append(Text(f"Tags ({len(instance.tags)})", style="bold underline"))
    tags = Table.grid(padding=(0, 2))
    tags.add_column(style="cyan", no_wrap=True)
    tags.add_column(overflow="fold")
    for key in sorted(instance.tags):
        tags.add_row(f"  {key}", instance.tags[key])
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

    def compose(self):  # type: ignore[no-untyped-def]
        """The single content block."""
        yield Static(id="details-body")

    def show(self, instance: Instance | None, now: datetime) -> None:
        """Display ``instance``."""
        self.query_one("#details-body", Static).update(
            details_renderable(instance, now, self.prices)
        )
        self.border_title = f"Details · {instance.name or instance.id}" if instance else "Details"
