"""EBS volume costs against figures worked out by hand from the bundled table."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources

import pytest

from runctl_tui.costs.ebs import EBS_SOURCE, ebs_table, known_types, parse_table, volume_cost


def monthly(volume_type: str, size_gb: int, region: str = "us-east-1", **kwargs: int) -> Decimal:
    cost = volume_cost(volume_type, size_gb, region=region, **kwargs)  # type: ignore[arg-type]
    assert cost is not None
    return cost.monthly_usd


@pytest.mark.parametrize(
    ("volume_type", "size_gb", "extra", "expected"),
    [
        # 100 GB x $0.10
        ("gp2", 100, {"iops": 300}, "10.00"),
        # 500 GB x $0.08; 3,000 IOPS and 125 MiB/s come with the storage
        ("gp3", 500, {"iops": 3000, "throughput_mibps": 125}, "40.00"),
        # 200 x 0.08 + (4,000 - 3,000) x 0.005 + (250 - 125) x 0.04 = 16 + 5 + 5
        ("gp3", 200, {"iops": 4000, "throughput_mibps": 250}, "26.00"),
        # 100 x 0.125 + 5,000 x 0.065 = 12.50 + 325
        ("io1", 100, {"iops": 5000}, "337.50"),
        # 100 x 0.125 + 32,000 x 0.065 = 12.50 + 2,080
        ("io2", 100, {"iops": 32000}, "2092.50"),
        # 12.50 + 32,000 x 0.065 + 32,000 x 0.0455 + 16,000 x 0.03185
        # = 12.50 + 2,080 + 1,456 + 509.60
        ("io2", 100, {"iops": 80000}, "4058.10"),
        # 1,000 GB x $0.045
        ("st1", 1000, {"iops": 500}, "45.00"),
        # 1,000 GB x $0.015
        ("sc1", 1000, {}, "15.00"),
        # 10 GB x $0.05
        ("standard", 10, {}, "0.50"),
    ],
)
def test_monthly_cost_in_us_east_1(
    volume_type: str, size_gb: int, extra: dict[str, int], expected: str
) -> None:
    cost = volume_cost(
        volume_type,
        size_gb,
        iops=extra.get("iops"),
        throughput_mibps=extra.get("throughput_mibps"),
    )
    assert cost is not None
    assert cost.monthly_usd == Decimal(expected)


def test_gp3_below_its_free_figures_costs_the_storage_only() -> None:
    assert monthly("gp3", 100, iops=3000, throughput_mibps=125) == Decimal("8.00")
    assert monthly("gp3", 100) == Decimal("8.00")


def test_hourly_is_the_month_over_730_hours() -> None:
    cost = volume_cost("gp3", 500)
    assert cost is not None
    assert cost.hourly_usd == Decimal(40) / Decimal(730)
    assert (cost.hourly_usd * 730).quantize(Decimal("0.01")) == Decimal("40.00")
    rate = cost.rate()
    assert rate.usd_per_hour == cost.hourly_usd
    assert (rate.source, rate.region, rate.estimate) == (EBS_SOURCE, "us-east-1", False)
    assert rate.as_of == ebs_table().as_of


def test_a_listed_region_has_its_own_prices() -> None:
    # 100 GB x $0.088 in Ireland
    cost = volume_cost("gp3", 100, region="eu-west-1")
    assert cost is not None
    assert (cost.monthly_usd, cost.region, cost.estimate) == (Decimal("8.80"), "eu-west-1", False)
    # us-west-2 lists the same prices as us-east-1
    assert monthly("gp2", 100, region="us-west-2") == Decimal("10.00")


def test_another_region_is_an_estimate_from_us_east_1() -> None:
    cost = volume_cost("gp2", 100, region="ap-south-1")
    assert cost is not None
    assert (cost.monthly_usd, cost.region, cost.estimate) == (Decimal("10.00"), "us-east-1", True)
    assert cost.note == "us-east-1 prices used for ap-south-1"
    assert cost.rate().marker == "~"


def test_magnetic_volumes_say_their_io_is_not_counted() -> None:
    cost = volume_cost("standard", 10)
    assert cost is not None
    assert cost.note == "I/O requests are billed on top and not counted"


def test_an_unknown_type_has_no_cost() -> None:
    assert volume_cost("gp9", 100) is None
    assert volume_cost("", 100) is None


def test_the_table_prices_every_type_it_names() -> None:
    assert list(known_types()) == ["gp2", "gp3", "io1", "io2", "sc1", "st1", "standard"]


def test_the_bundled_table_is_dated_and_sourced() -> None:
    raw = json.loads(resources.files("runctl_tui.costs").joinpath("ebs_usd.json").read_text())
    assert raw["as_of"]
    assert "aws.amazon.com/ebs/pricing" in raw["source"]
    table = parse_table(raw)
    assert table.hours_per_month == Decimal(730)
    assert set(table.regions["eu-west-1"]) == set(table.regions["us-east-1"])
