"""What an EBS volume costs by type, size and provisioned performance, from the bundled, dated
EBS price table. Pure: no I/O beyond reading that table, ``Decimal`` dollars throughout."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from runctl_tui.models import Rate

EBS_SOURCE = "bundled EBS price table"
REFERENCE_REGION = "us-east-1"
"""Regions the table lacks are priced at this region's figures, as estimates."""


@dataclass(frozen=True)
class TypePrices:
    """The prices of one volume type in one region, per month."""

    gb_month: Decimal
    """Per GB of provisioned size."""
    iops_month: Decimal = Decimal(0)
    """Per provisioned IOPS (above ``free_iops``), where IOPS are billed at one rate."""
    free_iops: int = 0
    """IOPS included with the storage price (gp3: 3,000)."""
    iops_tiers: tuple[tuple[int | None, Decimal], ...] = ()
    """``(up to, price)`` per provisioned IOPS, in order; ``None`` for the last, open tier
    (io2)."""
    mibps_month: Decimal = Decimal(0)
    """Per provisioned MiB/s of throughput above ``free_mibps``."""
    free_mibps: int = 0
    """Throughput included with the storage price (gp3: 125 MiB/s)."""

    def iops_cost(self, iops: int) -> Decimal:
        """The monthly price of ``iops`` provisioned IOPS."""
        if self.iops_tiers:
            total, below = Decimal(0), 0
            for upper, price in self.iops_tiers:
                top = iops if upper is None else min(iops, upper)
                if top > below:
                    total += (top - below) * price
                if upper is None or iops <= upper:
                    break
                below = upper
            return total
        return max(iops - self.free_iops, 0) * self.iops_month


@dataclass(frozen=True)
class EbsTable:
    """EBS prices by region and volume type."""

    as_of: datetime
    hours_per_month: Decimal
    regions: Mapping[str, Mapping[str, TypePrices]]


@dataclass(frozen=True)
class VolumeCost:
    """What one volume costs and how the figure was found."""

    monthly_usd: Decimal
    hours_per_month: Decimal
    region: str
    """The region whose prices were used."""
    estimate: bool
    """Priced at :data:`REFERENCE_REGION`'s figures: the volume's region is not in the table."""
    as_of: datetime
    note: str = ""

    @property
    def hourly_usd(self) -> Decimal:
        """The monthly price spread over the month's hours (730, as AWS counts)."""
        return self.monthly_usd / self.hours_per_month

    def rate(self) -> Rate:
        """The hourly figure as a :class:`~runctl_tui.models.Rate` that says where it came from."""
        return Rate(
            usd_per_hour=self.hourly_usd,
            source=EBS_SOURCE,
            as_of=self.as_of,
            region=self.region,
            estimate=self.estimate,
            note=self.note,
        )


def _type_prices(raw: Mapping[str, Any]) -> TypePrices:
    tiers = tuple(
        (None if upper is None else int(upper), Decimal(price))
        for upper, price in raw.get("iops_tiers", ())
    )
    return TypePrices(
        gb_month=Decimal(raw["gb_month"]),
        iops_month=Decimal(raw.get("iops_month", "0")),
        free_iops=int(raw.get("free_iops", 0)),
        iops_tiers=tiers,
        mibps_month=Decimal(raw.get("mibps_month", "0")),
        free_mibps=int(raw.get("free_mibps", 0)),
    )


def parse_table(raw: Mapping[str, Any]) -> EbsTable:
    """An :class:`EbsTable` from the JSON shape of ``ebs_usd.json``."""
    regions: dict[str, dict[str, TypePrices]] = {}
    aliases: dict[str, str] = {}
    for region, types in raw["regions"].items():
        if isinstance(types, str):
            aliases[region] = types
        else:
            regions[region] = {name: _type_prices(value) for name, value in types.items()}
    for region, same_as in aliases.items():
        regions[region] = regions[same_as]
    return EbsTable(
        as_of=datetime.fromisoformat(raw["as_of"]).replace(tzinfo=UTC),
        hours_per_month=Decimal(str(raw.get("hours_per_month", "730"))),
        regions=regions,
    )


@cache
def ebs_table() -> EbsTable:
    """The table shipped with the package, read once."""
    text = resources.files("runctl_tui.costs").joinpath("ebs_usd.json").read_text("utf-8")
    return parse_table(json.loads(text))


def volume_cost(
    volume_type: str,
    size_gb: int,
    *,
    iops: int | None = None,
    throughput_mibps: int | None = None,
    region: str = REFERENCE_REGION,
    table: EbsTable | None = None,
) -> VolumeCost | None:
    """The monthly (and hourly) cost of one volume; ``None`` for a type the table lacks.

    gp3 bills IOPS above 3,000 and throughput above 125 MiB/s; io1 and io2 bill every
    provisioned IOPS (io2 in tiers); gp2, st1, sc1 and standard bill the size only.
    """
    table = table or ebs_table()
    estimate = region not in table.regions
    priced_in = REFERENCE_REGION if estimate else region
    prices = table.regions.get(priced_in, {}).get(volume_type)
    if prices is None:
        return None
    monthly = max(size_gb, 0) * prices.gb_month
    if prices.iops_tiers or prices.iops_month:
        monthly += prices.iops_cost(max(iops or 0, 0))
    if prices.mibps_month and throughput_mibps is not None:
        monthly += max(throughput_mibps - prices.free_mibps, 0) * prices.mibps_month
    notes: list[str] = []
    if estimate:
        notes.append(f"{REFERENCE_REGION} prices used for {region}")
    if volume_type == "standard":
        notes.append("I/O requests are billed on top and not counted")
    return VolumeCost(
        monthly_usd=monthly,
        hours_per_month=table.hours_per_month,
        region=priced_in,
        estimate=estimate,
        as_of=table.as_of,
        note="; ".join(notes),
    )


def known_types(table: EbsTable | None = None) -> Sequence[str]:
    """The volume types the table prices in its reference region."""
    return sorted((table or ebs_table()).regions.get(REFERENCE_REGION, {}))
