"""Pure presentation of the fleet as cells and text, shared by the TUI and ``status``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from runctl_tui.costs.rates import billed, burn_rate, hourly_cost, money
from runctl_tui.models import (
    Ec2Details,
    FleetSnapshot,
    Instance,
    InstanceState,
    Lifecycle,
    PodDetails,
    ProviderStatus,
    format_duration,
    format_usd,
)
from runctl_tui.text import cell_width, clean, clip

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostReport

COLUMNS: tuple[str, ...] = (
    "",
    "PROVIDER",
    "NAME",
    "ID",
    "WHERE",
    "TYPE",
    "GPUS",
    "MARKET",
    "STATE",
    "UPTIME",
    "ADDRESS",
    "$/H",
    "COST",
)
"""Column headers; the first is the flags column (``P`` = protected)."""

STATE_COLUMN = COLUMNS.index("STATE")
RIGHT_ALIGNED = frozenset({COLUMNS.index("UPTIME"), COLUMNS.index("$/H"), COLUMNS.index("COST")})

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
    """``on-demand``, ``spot``, ``spot one-time``, ``spot persist``; ``-`` if not bought."""
    return instance.details.market


MAX_CELL = 200
"""No cell needs more: longer values are cut here and shown whole in the details panel."""


def gpu_cell(instance: Instance) -> str:
    """``8x H100 80G``, ``-`` for none, ``?`` when the type's facts are unknown."""
    if instance.gpus:
        return clean(instance.gpus.label())
    missing = isinstance(instance.details, Ec2Details) and instance.details.type_facts_missing
    return "?" if missing else "-"


def rate_cell(instance: Instance) -> str:
    """What the instance costs per hour now: ``-`` when it pays no compute, ``?`` if unknown.

    ``~`` marks a price taken from another region's table, ``≤`` a spot upper bound.
    """
    if not billed(instance):
        return "-"
    rate = instance.rate
    return rate.marker + format_usd(rate.usd_per_hour) if rate else "?"


def cost_cell(instance: Instance, now: datetime, spent: Decimal | None = None) -> str:
    """What the current running period has cost so far: the ledger's figure when given,
    else the rate times the uptime; ``-`` when it does not run or costs nothing."""
    if not billed(instance) or instance.kind == "process":
        return "-"
    if spent is None:
        uptime = instance.uptime(now)
        if instance.rate is None or uptime is None:
            return "?" if instance.rate is None else "-"
        seconds = Decimal(int(uptime.total_seconds()))
        spent = instance.rate.usd_per_hour * seconds / Decimal(3600)
    if not spent:
        return "-"
    marker = instance.rate.marker if instance.rate else ""
    return marker + format_usd(spent)


def row_cells(
    instance: Instance, now: datetime, spent: Mapping[str, Decimal] | None = None
) -> tuple[str, ...]:
    """The table cells of one instance, in :data:`COLUMNS` order, escaped and one line each.

    ``spent`` is what each running item's current period has cost, by key, from the ledger.
    """

    def cell(value: object) -> str:
        return clip(clean(value), MAX_CELL)

    return (
        "P" if instance.protected else "",
        cell(instance.provider),
        cell(instance.name) if instance.name else "-",
        cell(instance.id),
        cell(instance.details.sublocation or instance.location),
        cell(instance.details.type_label),
        gpu_cell(instance),
        cell(market_label(instance)),
        instance.state.value,
        format_duration(instance.uptime(now)),
        cell(address) if (address := instance.details.address) else "-",
        rate_cell(instance),
        cost_cell(instance, now, (spent or {}).get(instance.key)),
    )


FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("NAME",),
    "id": ("ID",),
    "where": ("WHERE",),
    "zone": ("WHERE",),
    "az": ("WHERE",),
    "type": ("TYPE",),
    "gpu": ("GPUS",),
    "gpus": ("GPUS",),
    "market": ("MARKET",),
    "state": ("STATE",),
    "ip": ("ADDRESS",),
    "address": ("ADDRESS",),
}
"""``field=value`` names that match a column; ``region``, ``provider`` and ``ip`` also match
attributes that have no column of their own."""


def _instance_fields(instance: Instance, cells: Sequence[str]) -> dict[str, list[str]]:
    fields = {
        name: [cells[COLUMNS.index(column)] for column in columns]
        for name, columns in FILTER_FIELDS.items()
    }
    fields["region"] = [instance.location]
    fields["location"] = [instance.location]
    fields["kind"] = [instance.kind]
    fields["provider"] = [instance.provider]
    fields["ip"] += [_private_ip(instance)]
    return {name: [v.lower() for v in values] for name, values in fields.items()}


class RowFilter:
    """A parsed filter: every term must hold for a row to be shown.

    Terms are separated by spaces: ``:aws`` shows one provider; ``word`` occurs anywhere
    (cells, region, IPs, AMI, tags as ``key=value``); ``!word`` occurs nowhere;
    ``field=value`` occurs in that column (``state``, ``region``, ``zone``, ``type``, ``name``,
    ``id``, ``market``, ``gpus``, ``provider``, ``ip``) or, for any other field, in the tag of
    that name. Matching ignores case.
    """

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.terms: list[tuple[bool, str | None, str]] = []
        """(negated, field or ``None``, lower-case needle) per term."""
        for word in self.text.split():
            negated = word.startswith("!")
            word = word[1:] if negated else word
            if word.startswith(":") and len(word) > 1:
                # k9s style: ``:aws`` shows one provider's rows.
                self.terms.append((negated, "provider", word[1:].lower()))
                continue
            if not word:
                continue
            field, sep, value = word.partition("=")
            if sep and field:
                self.terms.append((negated, field.lower(), value.lower()))
            else:
                self.terms.append((negated, None, word.lower()))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, instance: Instance, cells: Sequence[str]) -> bool:
        """Whether the row of ``instance`` with ``cells`` passes every term."""
        if not self.terms:
            return True
        fields = _instance_fields(instance, cells)
        tags = {k.lower(): v.lower() for k, v in instance.tags.items()}
        anywhere: list[str] | None = None
        for negated, field, needle in self.terms:
            if field is None:
                if anywhere is None:
                    anywhere = [c.lower() for c in cells]
                    anywhere += [
                        instance.location.lower(),
                        _private_ip(instance).lower(),
                        _image(instance).lower(),
                        instance.name.lower(),
                    ]
                    anywhere += [f"{k}={v}" for k, v in tags.items()]
                found = any(needle in text for text in anywhere)
            elif field in fields:
                found = any(needle in value for value in fields[field])
            else:
                found = field in tags and needle in tags[field]
            if found == negated:
                return False
        return True


def parse_filter(text: str) -> RowFilter:
    """The :class:`RowFilter` for what the user typed."""
    return RowFilter(text)


def _private_ip(instance: Instance) -> str:
    details = instance.details
    return (details.private_ip or "") if isinstance(details, Ec2Details) else ""


def _image(instance: Instance) -> str:
    details = instance.details
    if isinstance(details, Ec2Details):
        return details.image_id or ""
    if isinstance(details, PodDetails):
        return details.image or ""
    return ""


def sort_key(instance: Instance) -> tuple[Any, ...]:
    """Stable display order: provider, location, a host before its runs, live before
    stopped, then name."""
    return (
        instance.provider,
        instance.location,
        instance.kind != "host",
        STATE_ORDER[instance.state] >= STATE_ORDER[InstanceState.STOPPED],
        instance.name or "~",
        instance.id,
    )


def _money_order(cell: str) -> Decimal:
    """``$1,234.50``, ``~$1.01`` or ``≤$0.805`` as a number; ``-`` is 0, ``?`` sorts first."""
    digits = cell.lstrip("~≤$").replace(",", "")
    if cell == "?":
        return Decimal(-1)
    try:
        return Decimal(digits)
    except ArithmeticError:
        return Decimal(0)


def column_order(column: int, instance: Instance, cells: Sequence[str]) -> tuple[Any, ...]:
    """How rows sort by ``column``: numbers as numbers, states in lifecycle order, text by case.

    Ties keep the default order (:func:`sort_key`).
    """
    name = COLUMNS[column]
    value: Any
    if name == "$/H":
        value = _money_order(cells[column])
    elif name == "UPTIME":
        # Up longest = launched earliest; what is not up (no uptime shown) sorts first.
        up = instance.launched_at is not None and cells[column] != "-"
        value = -instance.launched_at.timestamp() if up and instance.launched_at else float("-inf")
    elif name == "STATE":
        value = STATE_ORDER[instance.state]
    elif name == "GPUS":
        value = (instance.gpus.count, instance.gpus.model) if instance.gpus else (0, "")
    elif name == "":
        value = not instance.protected
    else:
        value = cells[column].lower()
    return (value, *sort_key(instance))


def status_line(status: ProviderStatus, now: datetime) -> str:
    """One line about a provider: freshness, or the failure, its fix and how stale the data is."""
    age = status.age(now)
    provider = clean(status.provider)
    if status.ok:
        count = status.instance_count
        text = f"{provider}: {count} instances, refreshed {format_duration(age)} ago"
    elif not status.configured:
        text = f"{provider}: {clean(status.error)}"
        if status.hint:
            text += f". Set up: {clean(status.hint)}"
    else:
        stale = "no data yet" if age is None else f"data {format_duration(age)} old"
        text = f"{provider}: {clean(status.error)} ({stale})"
        if status.hint:
            text += f". Fix: {clean(status.hint)}"
    if status.identity:
        text += f" ({clean(status.identity)})"
    for warning in status.warnings:
        text += f"; warning: {clean(warning)}"
    return text


def burn_summary(instances: Sequence[Instance]) -> str:
    """``4 running · $126.37/h`` with a note when some prices are unknown.

    ``≤`` when spot instances are counted at their on-demand price (an upper bound), ``~``
    when a price comes from another region's table.
    """
    running = [i for i in instances if billed(i)]
    total, unknown = burn_rate(instances)
    rates = [i.rate for i in running if i.rate is not None]
    marker = "≤" if any(r.upper_bound for r in rates) else ""
    marker = marker or ("~" if any(r.estimate for r in rates) else "")
    text = f"{len(running)} running · {marker}{format_usd(total, per_hour=True)}"
    if unknown:
        text += f" (+{unknown} unpriced)"
    return text


def cost_flags_summary(report: CostReport) -> str:
    """`` · 2 idle GPU burning $33.16/h · 1 still billing``: what burns money unnoticed, for
    the provider bar; empty when nothing does."""
    parts = []
    idle = [line for line in report.lines if any(f.kind == "idle" for f in line.flags)]
    if idle:
        burn = sum((line.burn_usd_per_hour or Decimal(0) for line in idle), Decimal(0))
        parts.append(f"{len(idle)} idle GPU burning {format_usd(burn, per_hour=True)} (5)")
    leaks = sum(1 for line in report.lines if any(f.kind == "leak" for f in line.flags))
    if leaks:
        parts.append(f"{leaks} still billing after a stop (5)")
    return "".join(f" · {part}" for part in parts)


def text_report(snapshot: FleetSnapshot, spent: Mapping[str, Decimal] | None = None) -> str:
    """The fleet as a plain-text table for ``runctl-tui status``."""
    now = snapshot.taken_at
    instances = sorted(snapshot.instances, key=sort_key)
    headers = ("PROVIDER", "REGION", *COLUMNS[2:], "PROTECTED")
    name_column = headers.index("NAME")
    rows = []
    for i in instances:
        row = [clean(i.provider), clean(i.location), *row_cells(i, now, spent)[2:]]
        row.append("yes" if i.protected else "")
        row[name_column] = clip(row[name_column], TEXT_NAME_WIDTH)
        rows.append(row)
    widths = [
        max(cell_width(h), *(cell_width(r[n]) for r in rows)) if rows else len(h)
        for n, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            cell + " " * (w - cell_width(cell)) for cell, w in zip(row, widths, strict=True)
        ).rstrip()
        for row in (headers, *rows)
    ]
    lines.append("")
    lines.extend(status_line(s, now) for s in snapshot.statuses)
    lines.append(f"total: {burn_summary(instances)}")
    return "\n".join(lines)


def _lifecycle(instance: Instance) -> str | None:
    details = instance.details
    if isinstance(details, Ec2Details):
        return details.lifecycle.value
    if isinstance(details, PodDetails):
        return (Lifecycle.SPOT if details.interruptible else Lifecycle.ON_DEMAND).value
    return None


TEXT_NAME_WIDTH = 40
"""Names longer than this are cut in ``status`` text output; ``--json`` has them whole."""

STATUS_SCHEMA = "runctl-tui/status/v1"


def prices_as_of(instances: Sequence[Instance]) -> str | None:
    """The date of the oldest price a running instance is counted at (``YYYY-MM-DD``)."""
    dates = [
        i.rate.as_of.date().isoformat()
        for i in instances
        if billed(i) and i.rate is not None and i.rate.as_of is not None
    ]
    return min(dates, default=None)


def json_report(
    snapshot: FleetSnapshot, spent: Mapping[str, Decimal] | None = None
) -> dict[str, Any]:
    """The fleet in the stable, documented ``status --json`` schema."""
    now = snapshot.taken_at
    instances = sorted(snapshot.instances, key=sort_key)

    def one(instance: Instance) -> dict[str, Any]:
        ec2 = instance.details if isinstance(instance.details, Ec2Details) else None
        rate = instance.rate
        cost = hourly_cost(instance)
        so_far = (spent or {}).get(instance.key)
        uptime = instance.uptime(now)
        return {
            "provider": instance.provider,
            "id": instance.id,
            "name": instance.name,
            "kind": instance.kind,
            "region": instance.location,
            "zone": ec2.zone if ec2 else None,
            "instance_type": instance.details.type_label,
            "gpus": instance.gpus.model_dump() if instance.gpus else None,
            "gpu_usage": [g.model_dump() for g in instance.gpu_usage],
            "instance_store_gb": ec2.instance_store_gb if ec2 else None,
            "type_facts_missing": ec2.type_facts_missing if ec2 else None,
            "lifecycle": _lifecycle(instance),
            "spot_request_type": ec2.spot_request_type if ec2 else None,
            "spot_request_id": ec2.spot_request_id if ec2 else None,
            "state": instance.state.value,
            "launched_at": instance.launched_at.isoformat() if instance.launched_at else None,
            "uptime_seconds": int(uptime.total_seconds()) if uptime is not None else None,
            "public_ip": ec2.public_ip if ec2 else None,
            "private_ip": ec2.private_ip if ec2 else None,
            "address": instance.details.address,
            "protected": instance.protected,
            "hourly_usd": money(cost) if cost is not None else None,
            "list_hourly_usd": money(rate.usd_per_hour) if rate else None,
            "price_basis": rate.describe() if rate else None,
            "rate_source": instance.rate_source,
            "rate_as_of": rate.as_of.isoformat() if rate and rate.as_of else None,
            "rate_region": rate.region if rate else None,
            "running_period_usd": money(so_far) if so_far is not None else None,
            "tags": instance.tags,
            "details": instance.details.model_dump(mode="json"),
        }

    total, unknown = burn_rate(instances)
    return {
        "schema": STATUS_SCHEMA,
        "generated_at": now.isoformat(),
        "ok": snapshot.all_ok,
        "providers": [
            {
                "name": s.provider,
                "ok": s.ok,
                "configured": s.configured,
                "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
                "error": s.error,
                "hint": s.hint,
                "warnings": list(s.warnings),
                "identity": s.identity,
                "instances": s.instance_count,
            }
            for s in snapshot.statuses
        ],
        "instances": [one(i) for i in instances],
        "totals": {
            "instances": len(instances),
            "running": sum(1 for i in instances if i.state is InstanceState.RUNNING),
            "hourly_usd": money(total),
            "unpriced_running": unknown,
            "prices_as_of": prices_as_of(instances),
        },
    }
