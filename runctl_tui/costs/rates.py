"""Hourly rates from the bundled, dated on-demand price table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources

from runctl_tui.models import Ec2Details, Instance, InstanceState, Lifecycle, format_usd

FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class Rate:
    """An hourly list price and where it came from."""

    usd_per_hour: Decimal
    basis: str
    """Short provenance shown beside the figure, e.g. ``on-demand list, 2025-06-05``."""
    estimate: bool = False
    """Taken from another region's table: the real price may differ."""
    upper_bound: bool = False
    """Spot: billed at the market price, which is at most this on-demand figure."""

    @property
    def marker(self) -> str:
        """``≤`` for an upper bound, ``~`` for an estimate, else nothing."""
        if self.upper_bound:
            return "≤"
        return "~" if self.estimate else ""


@dataclass(frozen=True)
class PriceTable:
    """On-demand list prices by region and instance type."""

    as_of: str
    prices: dict[str, dict[str, Decimal]]

    def rate(self, instance: Instance) -> Rate | None:
        """The list price for ``instance``'s type; ``None`` when the table lacks it.

        A price the provider set on the instance itself wins over the table.
        """
        if instance.hourly_usd is not None:
            return Rate(instance.hourly_usd, instance.rate_source or f"set by {instance.provider}")
        details = instance.details
        if not isinstance(details, Ec2Details):
            # Only EC2 types are in the table; other providers price their own items.
            return None
        regional = self.prices.get(instance.location, {})
        price = regional.get(details.instance_type)
        basis = f"on-demand list price of {self.as_of}"
        estimate = False
        if price is None:
            price = self.prices.get(FALLBACK_REGION, {}).get(details.instance_type)
            basis = f"estimate: {FALLBACK_REGION} on-demand list price of {self.as_of}"
            estimate = True
        if price is None:
            return None
        spot = details.lifecycle is Lifecycle.SPOT
        if spot:
            basis = f"upper bound: {basis}; spot is billed at the market price"
        return Rate(price, basis, estimate=estimate, upper_bound=spot)


@cache
def bundled_prices() -> PriceTable:
    """The price table shipped with the package."""
    raw = json.loads(
        resources.files("runctl_tui.costs").joinpath("ec2_on_demand_usd.json").read_text("utf-8")
    )
    regions: dict[str, dict[str, Decimal]] = {}
    aliases: dict[str, str] = {}
    for region, table in raw["regions"].items():
        if isinstance(table, str):
            aliases[region] = table
        else:
            regions[region] = {k: Decimal(v) for k, v in table.items()}
    for region, same_as in aliases.items():
        regions[region] = regions[same_as]
    return PriceTable(as_of=raw["as_of"], prices=regions)


BILLED_STATES = frozenset({InstanceState.RUNNING})
"""EC2 bills compute only while an instance runs: not while pending, stopping, stopped,
shutting down or terminated. Storage is billed regardless and is counted elsewhere."""


def billed(instance: Instance) -> bool:
    """Whether ``instance`` is paying for compute right now."""
    return instance.state in BILLED_STATES


def hourly_cost(instance: Instance, table: PriceTable) -> Decimal | None:
    """What ``instance``'s compute costs per hour now: 0 unless running, ``None`` if unknown."""
    if not billed(instance):
        return Decimal(0)
    rate = table.rate(instance)
    return None if rate is None else rate.usd_per_hour


def burn_rate(instances: Iterable[Instance], table: PriceTable) -> tuple[Decimal, int]:
    """Dollars per hour of the billed instances, and how many of them have no known price."""
    total = Decimal(0)
    unknown = 0
    for instance in instances:
        cost = hourly_cost(instance, table)
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


def format_rate(instance: Instance, table: PriceTable, *, basis: bool = False) -> str:
    """The list rate for people: ``$32.77/h``, ``~$1.23/h``, ``≤$21.96/h``; ``price unknown``.

    With ``basis`` the provenance follows in parentheses, so an estimate says so in words.
    """
    rate = table.rate(instance)
    if rate is None:
        return "price unknown"
    text = rate.marker + format_usd(rate.usd_per_hour, per_hour=True)
    if basis:
        text += f" ({rate.basis})"
    elif rate.estimate:
        text += f" (estimate: {FALLBACK_REGION} price)"
    return text
