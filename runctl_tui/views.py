"""Pure presentation of the fleet as cells and text, shared by the TUI and ``status``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runctl_tui.costs.rates import PriceTable, burn_rate
from runctl_tui.models import (
    FleetSnapshot,
    Instance,
    InstanceState,
    Lifecycle,
    ProviderStatus,
    format_duration,
    format_usd,
)

COLUMNS: tuple[str, ...] = (
    "",
    "NAME",
    "ID",
    "ZONE",
    "TYPE",
    "GPUS",
    "MARKET",
    "STATE",
    "UPTIME",
    "PUBLIC IP",
    "$/H",
)
"""Column headers; the first is the flags column (``P`` = protected)."""

STATE_COLUMN = COLUMNS.index("STATE")
RIGHT_ALIGNED = frozenset({COLUMNS.index("UPTIME"), COLUMNS.index("$/H")})

STATE_ORDER = {
    InstanceState.RUNNING: 0,
    InstanceState.PENDING: 1,
    InstanceState.STOPPING: 2,
    InstanceState.STOPPED: 3,
    InstanceState.SHUTTING_DOWN: 4,
    InstanceState.TERMINATED: 5,
    InstanceState.UNKNOWN: 6,
}


def market_label(instance: Instance) -> str:
    """``on-demand``, ``spot``, ``spot one-time`` or ``spot persist``."""
    if instance.lifecycle is Lifecycle.ON_DEMAND:
        return "on-demand"
    if instance.spot_request_type == "one-time":
        return "spot one-time"
    if instance.spot_request_type == "persistent":
        return "spot persist"
    return "spot"


def row_cells(instance: Instance, now: datetime, prices: PriceTable) -> tuple[str, ...]:
    """The table cells of one instance, in :data:`COLUMNS` order."""
    rate = prices.rate(instance)
    return (
        "P" if instance.protected else "",
        instance.name or "-",
        instance.id,
        instance.zone or instance.region,
        instance.instance_type,
        instance.gpus.label() if instance.gpus else "-",
        market_label(instance),
        instance.state.value,
        format_duration(instance.uptime(now)),
        instance.public_ip or "-",
        format_usd(rate.usd_per_hour) if rate else "?",
    )


def sort_key(instance: Instance) -> tuple[Any, ...]:
    """Stable display order: provider, region, live before stopped, then name."""
    return (
        instance.provider,
        instance.region,
        STATE_ORDER[instance.state] >= STATE_ORDER[InstanceState.STOPPED],
        instance.name or "~",
        instance.id,
    )


def status_line(status: ProviderStatus, now: datetime) -> str:
    """One line about a provider: freshness, or the failure, its fix and how stale the data is."""
    age = status.age(now)
    if status.ok:
        count = status.instance_count
        return f"{status.provider}: {count} instances, refreshed {format_duration(age)} ago"
    stale = "no data yet" if age is None else f"data {format_duration(age)} old"
    text = f"{status.provider}: {status.error} ({stale})"
    return f"{text}. Fix: {status.hint}" if status.hint else text


def burn_summary(instances: Sequence[Instance], prices: PriceTable) -> str:
    """``4 running · $126.37/h`` with a note when some prices are unknown."""
    running = sum(1 for i in instances if i.state is InstanceState.RUNNING)
    total, unknown = burn_rate(instances, prices)
    text = f"{running} running · {format_usd(total, per_hour=True)}"
    if unknown:
        text += f" (+{unknown} unpriced)"
    return text


def text_report(snapshot: FleetSnapshot, prices: PriceTable) -> str:
    """The fleet as a plain-text table for ``runctl-tui status``."""
    now = snapshot.taken_at
    instances = sorted(snapshot.instances, key=sort_key)
    headers = ("PROVIDER", "REGION", *COLUMNS[1:], "PROTECTED")
    rows = [
        (i.provider, i.region, *row_cells(i, now, prices)[1:], "yes" if i.protected else "")
        for i in instances
    ]
    widths = [
        max(len(h), *(len(r[n]) for r in rows)) if rows else len(h) for n, h in enumerate(headers)
    ]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    lines.append("")
    lines.extend(status_line(s, now) for s in snapshot.statuses)
    lines.append(
        f"total: {burn_summary(instances, prices)} (on-demand list prices of {prices.as_of})"
    )
    return "\n".join(lines)


STATUS_SCHEMA = "runctl-tui/status/v1"


def json_report(snapshot: FleetSnapshot, prices: PriceTable) -> dict[str, Any]:
    """The fleet in the stable, documented ``status --json`` schema."""
    now = snapshot.taken_at
    instances = sorted(snapshot.instances, key=sort_key)

    def one(instance: Instance) -> dict[str, Any]:
        rate = prices.rate(instance)
        uptime = instance.uptime(now)
        return {
            "provider": instance.provider,
            "id": instance.id,
            "name": instance.name,
            "region": instance.region,
            "zone": instance.zone,
            "instance_type": instance.instance_type,
            "gpus": instance.gpus.model_dump() if instance.gpus else None,
            "lifecycle": instance.lifecycle.value,
            "spot_request_type": instance.spot_request_type,
            "state": instance.state.value,
            "launched_at": instance.launched_at.isoformat() if instance.launched_at else None,
            "uptime_seconds": int(uptime.total_seconds()) if uptime is not None else None,
            "public_ip": instance.public_ip,
            "private_ip": instance.private_ip,
            "protected": instance.protected,
            "hourly_usd": str(rate.usd_per_hour) if rate else None,
            "tags": instance.tags,
        }

    total, unknown = burn_rate(instances, prices)
    return {
        "schema": STATUS_SCHEMA,
        "generated_at": now.isoformat(),
        "ok": snapshot.all_ok,
        "providers": [
            {
                "name": s.provider,
                "ok": s.ok,
                "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
                "error": s.error,
                "hint": s.hint,
                "instances": s.instance_count,
            }
            for s in snapshot.statuses
        ],
        "instances": [one(i) for i in instances],
        "totals": {
            "instances": len(instances),
            "running": sum(1 for i in instances if i.state is InstanceState.RUNNING),
            "hourly_usd": str(total),
            "unpriced_running": unknown,
            "prices_as_of": prices.as_of,
        },
    }
