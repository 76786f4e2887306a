"""Hourly rates from the bundled, dated on-demand price table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources

from runctl_tui.models import Instance, InstanceState, Lifecycle

FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class Rate:
    """An hourly price and where it came from."""

    usd_per_hour: Decimal
    basis: str
    """Short provenance shown beside the figure, e.g. ``on-demand list, 2025-06-05``."""


@dataclass(frozen=True)
class PriceTable:
    """On-demand list prices by region and instance type."""

    as_of: str
    prices: dict[str, dict[str, Decimal]]

    def rate(self, instance: Instance) -> Rate | None:
        """The list price for ``instance``'s type; ``None`` when the table lacks it."""
        regional = self.prices.get(instance.region, {})
        price = regional.get(instance.instance_type)
        basis = f"on-demand list price of {self.as_of}"
        if price is None:
            price = self.prices.get(FALLBACK_REGION, {}).get(instance.instance_type)
            basis = f"{FALLBACK_REGION} on-demand list price of {self.as_of}"
        if price is None:
            return None
        if instance.lifecycle is Lifecycle.SPOT:
            basis = f"upper bound: {basis}; spot is billed at the market price"
        return Rate(price, basis)


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


BILLED_STATES = frozenset({InstanceState.RUNNING, InstanceState.PENDING})


def burn_rate(instances: Iterable[Instance], table: PriceTable) -> tuple[Decimal, int]:
    """Dollars per hour of the billed instances, and how many of them have no known price."""
    total = Decimal(0)
    unknown = 0
    for instance in instances:
        if instance.state not in BILLED_STATES:
            continue
        rate = table.rate(instance)
        if rate is None:
            unknown += 1
        else:
            total += rate.usd_per_hour
    return total, unknown
