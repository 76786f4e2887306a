"""Budgets: how much of the day's and the month's limit is spent, and when to say so.

Pure arithmetic on ``Decimal`` dollars: the ledger says what was spent, the burn rate what is
being spent, and this module turns both into a level (ok, warning, over) and announces each
crossing once. What ``on_budget_exceeded = "stop-idle"`` would stop is decided here too; the
stops themselves go through the fleet's guarded, journaled actions.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from runctl_tui.models import Ec2Details, Instance, InstanceState, format_usd

if TYPE_CHECKING:
    from runctl_tui.costs.idle import IdleState

WARN_PERCENT = Decimal(80)
"""At this share of the limit a budget warns."""
OVER_PERCENT = Decimal(100)
"""At this share of the limit a budget is exceeded."""
STOPPABLE_KINDS = frozenset({"ec2", "pod"})
"""Kinds of item that stop billing compute when stopped (hosts and runs are not rented)."""
SECONDS_PER_HOUR = Decimal(3600)


class Period(StrEnum):
    """The span a budget covers."""

    TODAY = "today"
    MONTH = "this month"


class BudgetLevel(StrEnum):
    """How close spending is to its limit."""

    OK = "ok"
    WARN = "warn"
    """At least :data:`WARN_PERCENT` of the limit is spent."""
    OVER = "over"
    """The limit is reached or passed."""


_RANK = {BudgetLevel.OK: 0, BudgetLevel.WARN: 1, BudgetLevel.OVER: 2}


def level_of(limit: Decimal, spent: Decimal) -> BudgetLevel:
    """The level of ``spent`` against ``limit``, compared exactly (no rounding)."""
    if spent * 100 >= limit * OVER_PERCENT:
        return BudgetLevel.OVER
    if spent * 100 >= limit * WARN_PERCENT:
        return BudgetLevel.WARN
    return BudgetLevel.OK


@dataclass(frozen=True)
class BudgetStatus:
    """One budget at one moment: its limit, what is spent, where the burn rate leads."""

    period: Period
    limit: Decimal
    spent: Decimal
    projected: Decimal
    """``spent`` plus the current burn rate times the hours left in the period."""
    level: BudgetLevel

    @property
    def percent(self) -> Decimal:
        """Share of the limit spent, in percent, unrounded."""
        return self.spent * 100 / self.limit

    @property
    def projected_level(self) -> BudgetLevel:
        """The level the period ends at if the burn rate holds."""
        return level_of(self.limit, self.projected)

    def describe(self) -> str:
        """One line: ``today $412.07 of $500.00 (82%), projected $611.20``."""
        # Rounded down: 99.7% spent must not read as 100% while the budget still holds.
        shown = int(self.percent.to_integral_value(rounding=ROUND_FLOOR))
        return (
            f"{self.period} {format_usd(self.spent)} of {format_usd(self.limit)} "
            f"({shown}%), projected {format_usd(self.projected)}"
        )


def budget_status(
    period: Period | str, limit: Decimal, spent: Decimal, projected: Decimal
) -> BudgetStatus:
    """The status of a budget of ``limit`` dollars for ``period``.

    Raises ``ValueError`` for a limit that is not a positive amount, or money below zero.
    """
    if not limit.is_finite() or limit <= 0:
        raise ValueError(f"a {Period(period)} budget must be more than $0, not {limit}")
    if not spent.is_finite() or spent < 0 or not projected.is_finite() or projected < 0:
        raise ValueError(f"spend {spent} / projection {projected} must be $0 or more")
    return BudgetStatus(
        period=Period(period),
        limit=limit,
        spent=spent,
        projected=max(projected, spent),
        level=level_of(limit, spent),
    )


def period_end(period: Period | str, now: datetime) -> datetime:
    """When ``period`` ends: the next midnight, or the first of next month, in ``now``'s zone
    (``now`` must be aware)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if Period(period) is Period.TODAY:
        return midnight + timedelta(days=1)
    days = calendar.monthrange(now.year, now.month)[1]
    return midnight.replace(day=1) + timedelta(days=days)


def hours_left(period: Period | str, now: datetime) -> Decimal:
    """Hours from ``now`` to the end of ``period``, exact to the microsecond."""
    if now.tzinfo is None:
        raise ValueError("the budget clock must say its time zone")
    # In UTC: a difference of two times in one zone ignores a DST change between them.
    left = period_end(period, now).astimezone(UTC) - now.astimezone(UTC)
    seconds = Decimal(left.days * 86400 + left.seconds) + Decimal(left.microseconds) / 10**6
    return seconds / SECONDS_PER_HOUR


def projection(period: Period | str, spent: Decimal, burn: Decimal, now: datetime) -> Decimal:
    """``spent`` plus ``burn`` dollars an hour until the end of ``period``."""
    return spent + max(burn, Decimal(0)) * hours_left(period, now)


@dataclass(frozen=True)
class BudgetCrossing:
    """A budget that moved to a higher level: announce it once."""

    status: BudgetStatus
    previous: BudgetLevel

    @property
    def level(self) -> BudgetLevel:
        """The level reached."""
        return self.status.level

    def describe(self) -> str:
        """One line: ``budget warning: today $412.07 of $500.00 (82%), projected $611.20``."""
        word = "over budget" if self.level is BudgetLevel.OVER else "budget warning"
        return f"{word}: {self.status.describe()}"


class BudgetWatch:
    """Remembers each period's level between polls and reports every rise exactly once.

    A rise is ok to warn, warn to over, or ok straight to over. Spend that falls means a new
    day or month began: the period is re-armed and starts from ok again. A level that falls
    while spend does not (a limit raised in the config) is remembered too, so a later rise is
    announced again.
    """

    def __init__(self) -> None:
        self._levels: dict[Period, BudgetLevel] = {}
        self._spent: dict[Period, Decimal] = {}

    def level(self, period: Period | str) -> BudgetLevel:
        """The level last seen for ``period``; ok before any."""
        return self._levels.get(Period(period), BudgetLevel.OK)

    def update(self, statuses: Iterable[BudgetStatus]) -> list[BudgetCrossing]:
        """Feed this poll's statuses; the crossings to announce now, in the order given."""
        crossings: list[BudgetCrossing] = []
        for status in statuses:
            before = self._levels.get(status.period, BudgetLevel.OK)
            if status.spent < self._spent.get(status.period, Decimal(0)):
                before = BudgetLevel.OK
            if _RANK[status.level] > _RANK[before]:
                crossings.append(BudgetCrossing(status, before))
            self._levels[status.period] = status.level
            self._spent[status.period] = status.spent
        return crossings


def _stop_refusal(instance: Instance) -> str | None:
    """Why an idle ``instance`` is left alone by the automatic stop, or ``None``."""
    if instance.state is not InstanceState.RUNNING:
        return f"it is {instance.state}"
    if instance.kind not in STOPPABLE_KINDS:
        return "only EC2 instances and pods are stopped automatically"
    if instance.protected:
        return f"protected ({instance.protected_by or 'protection marker'}): stop it yourself"
    if isinstance(instance.details, Ec2Details) and instance.details.one_time_spot:
        return "a one-time spot instance cannot be stopped, only terminated"
    return None


def plan_idle_stops(
    instances: Sequence[Instance], idle: Mapping[str, IdleState]
) -> tuple[list[Instance], list[tuple[Instance, str]]]:
    """What ``on_budget_exceeded = "stop-idle"`` stops, and the idle items it leaves running
    with the reason why (for the journal and the notification)."""
    targets: list[Instance] = []
    skipped: list[tuple[Instance, str]] = []
    for instance in instances:
        if instance.key not in idle:
            continue
        why = _stop_refusal(instance)
        if why is None:
            targets.append(instance)
        else:
            skipped.append((instance, why))
    return targets, skipped


def stop_idle_targets(
    instances: Sequence[Instance], idle: Mapping[str, IdleState]
) -> list[Instance]:
    """The idle items an exceeded budget stops: running EC2 instances and pods that can stop.

    Protected items are left running. Protection only forbids destroying, and a stop destroys
    nothing on an EBS-backed instance, but an automatic stop happens with nobody watching: a
    pod's container disk and an instance's local NVMe are wiped by it, and a protected item is
    one its owner asked to keep. It stays flagged idle, and ``s`` stops it by hand. One-time spot
    instances cannot stop at all. The fleet's guarded action checks each stop again.
    """
    return plan_idle_stops(instances, idle)[0]
