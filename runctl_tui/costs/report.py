"""The cost report: burn rate now, spend today and this month, projections, budgets and flags.

Pure: built from a fleet snapshot, what the ledger says was spent, and the trackers' findings.
Money is ``Decimal`` throughout; rounding happens only where it is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from runctl_tui.costs.budget import BudgetStatus, Period, budget_status, hours_left
from runctl_tui.costs.idle import IdleState, idle_flag
from runctl_tui.costs.ledger import Billable, Gap, Spend
from runctl_tui.costs.verify import Leak
from runctl_tui.models import (
    FleetSnapshot,
    Instance,
    InstanceState,
    Rate,
    StorageItem,
    format_usd,
)
from runctl_tui.text import one_line

ZERO = Decimal(0)
HOUR = Decimal(3600)

BILLING_STATES = frozenset({InstanceState.RUNNING})
"""Compute bills only while running: not while pending, stopping, stopped or terminated."""

PARKED_STATES = frozenset({InstanceState.STOPPED, InstanceState.STOPPING})
"""A disk of an instance in these states bills for data nobody is using right now."""

UNBILLED_KINDS = frozenset({"process"})
"""Items that never bill on their own: a training run costs what its machine costs."""


def billing(instance: Instance) -> bool:
    """Whether ``instance`` pays for compute right now."""
    return instance.kind not in UNBILLED_KINDS and instance.state in BILLING_STATES


def instance_billable(instance: Instance) -> Billable | None:
    """``instance`` as the ledger records it; ``None`` for items that never bill."""
    if instance.kind in UNBILLED_KINDS:
        return None
    rate = instance.rate
    return Billable(
        key=instance.key,
        provider=instance.provider,
        name=instance.name,
        kind=instance.kind,
        location=instance.location,
        billing=billing(instance),
        usd_per_hour=None if rate is None else rate.usd_per_hour,
        rate_source="" if rate is None else rate.describe(),
        since=instance.launched_at,
    )


def storage_billable(item: StorageItem) -> Billable:
    """A disk as the ledger records it: billed for as long as it exists."""
    rate = item.rate
    return Billable(
        key=item.key,
        provider=item.provider,
        name=item.name,
        kind=item.kind,
        location=item.location,
        billing=True,
        usd_per_hour=None if rate is None else rate.usd_per_hour,
        rate_source="" if rate is None else rate.describe(),
        since=item.created_at,
    )


def billables(snapshot: FleetSnapshot) -> list[Billable]:
    """Everything in ``snapshot`` that may cost money, for the ledger.

    Rows of a provider that did not answer this poll are stale: they are left out, so the
    ledger counts nothing it did not see. When the provider answers again, the ledger proves
    the time in between from launch times, or says it could not.
    """
    failed = {s.provider for s in snapshot.statuses if not s.ok}
    found = [
        b
        for b in map(instance_billable, snapshot.instances)
        if b is not None and b.provider not in failed
    ]
    found.extend(storage_billable(i) for i in snapshot.storage if i.provider not in failed)
    return found


def burn(rate: Rate | None, billed: bool) -> Decimal | None:
    """Dollars per hour now: 0 unless billed, ``None`` when billed at an unknown rate."""
    if not billed:
        return ZERO
    return None if rate is None else rate.usd_per_hour


@dataclass(frozen=True)
class Flag:
    """Something about a line that costs money unnoticed."""

    kind: str
    """``idle``, ``orphaned``, ``leak``, ``unpriced`` or ``gone``."""
    text: str


@dataclass(frozen=True)
class Alert:
    """One announcement: a notification, with the bell when it is an alert."""

    severity: str
    """``warning`` or ``error``."""
    text: str
    bell: bool = False


@dataclass(frozen=True)
class CostLine:
    """One resource: what it burns now and what it cost today and this month."""

    key: str
    provider: str
    id: str
    name: str
    kind: str
    """``ec2``, ``pod``, ``host``, ``ebs``, ``pod-volume``... as the fleet names it."""
    location: str
    state: str
    """Its state now; ``gone`` when only the ledger remembers it."""
    rate: Rate | None
    billing: bool
    burn_usd_per_hour: Decimal | None
    """Now: 0 when not billed, ``None`` when billed at an unknown rate."""
    since_launch_usd: Decimal | None
    """The current running period (since launch or the last start), while it runs."""
    today_usd: Decimal
    month_usd: Decimal
    month_hours: Decimal
    monthly_usd: Decimal | None = None
    """A disk's price per month, as storage is quoted."""
    flags: tuple[Flag, ...] = ()
    instance: Instance | None = None
    """The fleet row, for acting on it (``None`` for disks and for what no longer exists)."""
    storage: StorageItem | None = None
    gpu_note: str | None = None
    """Why the idle check cannot judge it (its GPU load could not be read), when it cannot."""


@dataclass(frozen=True)
class Totals:
    """Burn rate, spend and projections of one provider, or of everything."""

    provider: str
    """The provider's name; ``total`` for everything."""
    burn_usd_per_hour: Decimal
    today_usd: Decimal
    month_usd: Decimal
    projected_today_usd: Decimal
    """Spent today plus the burn rate until midnight."""
    projected_month_usd: Decimal
    """Spent this month plus the burn rate until the month ends."""
    unpriced: int = 0
    """Billed items whose rate is unknown (not in the figures)."""
    marker: str = ""
    """``≤`` when a figure is an upper bound, ``~`` an estimate."""


@dataclass(frozen=True)
class CostReport:
    """Everything the cost pane and ``runctl-tui costs`` show."""

    generated_at: datetime
    day_start: datetime
    month_start: datetime
    lines: tuple[CostLine, ...]
    providers: tuple[Totals, ...]
    total: Totals
    budgets: tuple[BudgetStatus, ...] = ()
    gaps: tuple[Gap, ...] = ()
    """Time the ledger could not prove (runctl-tui was closed)."""
    leaks: tuple[Leak, ...] = ()
    ledger_path: str = ""
    ledger_error: str | None = None
    """Why the ledger could not be read or written: spend then covers this poll only."""
    alerts: tuple[Alert, ...] = ()
    """What to announce once: a budget crossed, a new leak."""
    notes: tuple[str, ...] = field(default=())

    @property
    def flagged(self) -> tuple[CostLine, ...]:
        """Lines with a flag: idle, orphaned, still billing after a stop."""
        return tuple(line for line in self.lines if line.flags)


def _hours(delta: timedelta) -> Decimal:
    return Decimal(max(int(delta.total_seconds()), 0)) / HOUR


def _since_launch(
    rate: Rate | None, billed: bool, launched: datetime | None, spent: Decimal | None, now: datetime
) -> Decimal | None:
    if not billed or launched is None:
        return None
    if spent is not None:
        return spent
    if rate is None:
        return None
    return rate.usd_per_hour * _hours(now - launched)


def _marker(rates: Iterable[Rate | None]) -> str:
    known = [r for r in rates if r is not None]
    if any(r.upper_bound for r in known):
        return "≤"
    return "~" if any(r.estimate for r in known) else ""


def _flags(
    rate: Rate | None,
    billed: bool,
    idle: IdleState | None,
    leak: Leak | None,
) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    if leak is not None:
        flags.append(Flag("leak", leak.describe()))
    if idle is not None and billed:
        flags.append(Flag("idle", idle_flag(idle, None if rate is None else rate.usd_per_hour)))
    if billed and rate is None:
        flags.append(Flag("unpriced", "rate unknown: not in the totals"))
    return tuple(flags)


def build_report(
    snapshot: FleetSnapshot,
    *,
    now: datetime,
    day_start: datetime,
    month_start: datetime,
    today: Sequence[Spend] = (),
    month: Sequence[Spend] = (),
    since_launch: Mapping[str, Decimal] | None = None,
    idle: Mapping[str, IdleState] | None = None,
    gpu_notes: Mapping[str, str] | None = None,
    leaks: Sequence[Leak] = (),
    gaps: Sequence[Gap] = (),
    daily_budget: Decimal | None = None,
    monthly_budget: Decimal | None = None,
    ledger_path: str = "",
    ledger_error: str | None = None,
    tz: tzinfo | None = None,
    budget_month_usd: Decimal | None = None,
) -> CostReport:
    """The report of ``snapshot`` with the ledger's spend of ``today`` and this ``month``.

    ``since_launch`` is the ledger's spend of each running item since its launch; without
    it (no ledger) the current rate times the uptime stands in. ``budget_month_usd`` is the
    calendar month's spend when ``month`` covers another period (``costs --since``).
    """
    spent_today = {s.key: s.usd for s in today}
    spent_month = {s.key: s for s in month}
    launched_spend = since_launch or {}
    idle = idle or {}
    leak_by_key = {leak.key: leak for leak in leaks}
    lines: list[CostLine] = []
    seen: set[str] = set()

    for instance in snapshot.instances:
        if instance.kind in UNBILLED_KINDS:
            continue
        seen.add(instance.key)
        billed = billing(instance)
        rate = instance.rate
        month_spend = spent_month.get(instance.key)
        lines.append(
            CostLine(
                key=instance.key,
                provider=instance.provider,
                id=instance.id,
                name=instance.name,
                kind=instance.kind,
                location=instance.location,
                state=instance.state.value,
                rate=rate,
                billing=billed,
                burn_usd_per_hour=burn(rate, billed),
                since_launch_usd=_since_launch(
                    rate, billed, instance.launched_at, launched_spend.get(instance.key), now
                ),
                today_usd=spent_today.get(instance.key, ZERO),
                month_usd=month_spend.usd if month_spend else ZERO,
                month_hours=Decimal(month_spend.seconds) / HOUR if month_spend else ZERO,
                flags=_flags(rate, billed, idle.get(instance.key), leak_by_key.get(instance.key)),
                instance=instance,
                gpu_note=(gpu_notes or {}).get(instance.key) if billed else None,
            )
        )
    for item in snapshot.storage:
        seen.add(item.key)
        rate = item.rate
        month_spend = spent_month.get(item.key)
        flags = list(_flags(rate, True, None, None))
        monthly = "?" if item.monthly_usd is None else format_usd(item.monthly_usd)
        if item.orphaned:
            flags.insert(0, Flag("orphaned", f"orphaned volume, {monthly}/month"))
        elif item.attached_state in PARKED_STATES:
            owner = one_line(item.attached_to or "?", 40)
            flags.insert(0, Flag("parked", f"kept for stopped {owner}, {monthly}/month"))
        lines.append(
            CostLine(
                key=item.key,
                provider=item.provider,
                id=item.id,
                name=item.name,
                kind=item.kind,
                location=item.location,
                state="unattached" if item.orphaned else f"on {item.attached_to}",
                rate=rate,
                billing=True,
                burn_usd_per_hour=burn(rate, True),
                since_launch_usd=None,
                today_usd=spent_today.get(item.key, ZERO),
                month_usd=month_spend.usd if month_spend else ZERO,
                month_hours=Decimal(month_spend.seconds) / HOUR if month_spend else ZERO,
                monthly_usd=item.monthly_usd,
                flags=tuple(flags),
                storage=item,
            )
        )
    # What the ledger remembers but the fleet no longer shows: terminated, deleted, or of a
    # provider that did not answer this time.
    for key, spend in spent_month.items():
        if key in seen:
            continue
        lines.append(
            CostLine(
                key=key,
                provider=spend.provider,
                id=key.split(":", 1)[-1],
                name=spend.name,
                kind=spend.kind,
                location=spend.location,
                state="gone",
                rate=None,
                billing=False,
                burn_usd_per_hour=ZERO,
                since_launch_usd=None,
                today_usd=spent_today.get(key, ZERO),
                month_usd=spend.usd,
                month_hours=Decimal(spend.seconds) / HOUR,
            )
        )

    # Days and months end at midnight where the user is.
    local_now = now.astimezone(tz)
    day_left = hours_left(Period.TODAY, local_now)
    month_left = hours_left(Period.MONTH, local_now)

    def totals(provider: str, chosen: Sequence[CostLine]) -> Totals:
        rate_now = sum((line.burn_usd_per_hour or ZERO for line in chosen), ZERO)
        spent_day = sum((line.today_usd for line in chosen), ZERO)
        spent_month = sum((line.month_usd for line in chosen), ZERO)
        return Totals(
            provider=provider,
            burn_usd_per_hour=rate_now,
            today_usd=spent_day,
            month_usd=spent_month,
            projected_today_usd=spent_day + rate_now * day_left,
            projected_month_usd=spent_month + rate_now * month_left,
            unpriced=sum(1 for line in chosen if line.billing and line.burn_usd_per_hour is None),
            marker=_marker(line.rate for line in chosen if line.billing),
        )

    # Summed in the order listed, so that the totals are exactly the sum of the lines shown.
    lines.sort(key=_line_order)
    names = list(
        dict.fromkeys([s.provider for s in snapshot.statuses] + [x.provider for x in lines])
    )
    providers = tuple(totals(name, [x for x in lines if x.provider == name]) for name in names)
    total = totals("total", lines)
    budgets: list[BudgetStatus] = []
    if daily_budget is not None:
        budgets.append(
            budget_status(Period.TODAY, daily_budget, total.today_usd, total.projected_today_usd)
        )
    if monthly_budget is not None:
        month_spent = total.month_usd if budget_month_usd is None else budget_month_usd
        month_projected = month_spent + total.burn_usd_per_hour * month_left
        budgets.append(budget_status(Period.MONTH, monthly_budget, month_spent, month_projected))
    return CostReport(
        generated_at=now,
        day_start=day_start,
        month_start=month_start,
        lines=tuple(lines),
        providers=providers,
        total=total,
        budgets=tuple(budgets),
        gaps=tuple(gaps),
        leaks=tuple(leaks),
        ledger_path=ledger_path,
        ledger_error=ledger_error,
    )


def _line_order(line: CostLine) -> tuple[int, Decimal, Decimal, str]:
    """Flagged lines first, then by burn rate, then by this month's spend."""
    return (0 if line.flags else 1, -(line.burn_usd_per_hour or ZERO), -line.month_usd, line.key)
