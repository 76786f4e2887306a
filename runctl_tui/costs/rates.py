"""Hourly rates as the fleet shows them: each instance carries the rate its provider set."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from runctl_tui.models import Instance, InstanceState, format_usd

BILLED_STATES = frozenset({InstanceState.RUNNING})
"""EC2 bills compute only while an instance runs: not while pending, stopping, stopped,
shutting down or terminated. Storage is billed regardless and is counted elsewhere."""


def billed(instance: Instance) -> bool:
    """Whether ``instance`` is paying for compute right now."""
    return instance.state in BILLED_STATES


def hourly_cost(instance: Instance) -> Decimal | None:
    """What ``instance``'s compute costs per hour now: 0 unless running, ``None`` if unknown."""
    if not billed(instance):
        return Decimal(0)
    return instance.hourly_usd


def burn_rate(instances: Iterable[Instance]) -> tuple[Decimal, int]:
    """Dollars per hour of the billed instances, and how many of them have no known price."""
    total = Decimal(0)
    unknown = 0
    for instance in instances:
        cost = hourly_cost(instance)
        if cost is None:
            unknown += 1
        else:
            total += cost
    return total, unknown


def money(amount: Decimal) -> str:
    """A dollar amount as a plain decimal string with at least two decimals: ``0.00``, ``1.006``."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:.{places}f}"


def format_rate(instance: Instance, *, basis: bool = False) -> str:
    """The rate for people: ``$32.77/h``, ``~$1.23/h``, ``≤$21.96/h``; ``price unknown``.

    With ``basis`` where it comes from follows in parentheses, so an estimate says so in words.
    """
    rate = instance.rate
    if rate is None:
        return "price unknown"
    text = rate.marker + format_usd(rate.usd_per_hour, per_hour=True)
    if basis:
        text += f" ({rate.describe()})"
    elif rate.estimate:
        text += f" (estimate: {rate.region} price)" if rate.region else " (estimate)"
    return text
