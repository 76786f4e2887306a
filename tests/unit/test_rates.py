"""The bundled on-demand price table and the burn rate."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from importlib import resources

import pytest

from runctl_tui.costs.rates import (
    FALLBACK_REGION,
    PriceTable,
    bundled_prices,
    burn_rate,
    format_rate,
    hourly_cost,
    money,
)
from runctl_tui.models import InstanceState
from tests.fakes import make_instance


def test_bundled_table_loads_dated_decimal_prices() -> None:
    table = bundled_prices()

    date.fromisoformat(table.as_of)
    assert FALLBACK_REGION in table.prices
    us_east = table.prices[FALLBACK_REGION]
    assert len(us_east) > 20
    assert all(isinstance(price, Decimal) and price > 0 for price in us_east.values())
    # Exactly as published, not rounded through a float.
    assert us_east["p5.48xlarge"] == Decimal("55.04")
    assert us_east["t3.micro"] == Decimal("0.0104")


def test_every_region_in_the_file_is_in_the_table() -> None:
    raw = json.loads(
        resources.files("runctl_tui.costs").joinpath("ec2_on_demand_usd.json").read_text("utf-8")
    )

    assert set(bundled_prices().prices) == set(raw["regions"])
    for region, table in raw["regions"].items():
        if isinstance(table, str):
            assert bundled_prices().prices[region] == bundled_prices().prices[table]


@pytest.mark.parametrize(
    "instance_type", ["g5.xlarge", "p4d.24xlarge", "p5.48xlarge", "g6e.xlarge"]
)
def test_demo_gpu_types_are_priced(instance_type: str) -> None:
    assert bundled_prices().rate(make_instance(instance_type=instance_type)) is not None


def test_rate_in_a_listed_region() -> None:
    rate = bundled_prices().rate(make_instance(region="us-east-1", instance_type="g5.xlarge"))

    assert rate is not None
    assert rate.usd_per_hour == Decimal("1.006")
    assert rate.basis == f"on-demand list price of {bundled_prices().as_of}"


def test_unlisted_region_falls_back_to_us_east_1_and_says_so() -> None:
    table = PriceTable(
        as_of="2025-01-01",
        prices={
            "us-east-1": {"g5.xlarge": Decimal("1.00")},
            "eu-west-1": {"c6i.xlarge": Decimal("0.2")},
        },
    )

    rate = table.rate(make_instance(region="ap-south-1", instance_type="g5.xlarge"))
    # The region is listed but the type is not: the fallback applies too.
    partial = table.rate(make_instance(region="eu-west-1", instance_type="g5.xlarge"))
    own = table.rate(make_instance(region="eu-west-1", instance_type="c6i.xlarge"))

    assert rate is not None
    assert rate.usd_per_hour == Decimal("1.00")
    assert rate.basis == "estimate: us-east-1 on-demand list price of 2025-01-01"
    assert rate.estimate
    assert rate.marker == "~"
    assert partial == rate
    assert own is not None
    assert own.usd_per_hour == Decimal("0.2")
    assert "us-east-1" not in own.basis


def test_unknown_type_has_no_rate() -> None:
    assert bundled_prices().rate(make_instance(instance_type="x99.mega")) is None


def test_spot_rate_is_labelled_an_upper_bound() -> None:
    table = bundled_prices()
    on_demand = table.rate(make_instance(instance_type="p4d.24xlarge"))
    spot = table.rate(make_instance(instance_type="p4d.24xlarge", spot="persistent"))

    assert on_demand is not None
    assert spot is not None
    assert spot.usd_per_hour == on_demand.usd_per_hour
    assert spot.basis.startswith("upper bound: ")
    assert "spot is billed at the market price" in spot.basis
    assert "upper bound" not in on_demand.basis


def test_burn_rate_counts_only_billed_instances_and_unknown_types() -> None:
    table = PriceTable(
        as_of="2025-01-01",
        prices={"us-east-1": {"g5.xlarge": Decimal("1.006"), "p5.48xlarge": Decimal("55.04")}},
    )
    fleet = [
        make_instance("i-1", instance_type="g5.xlarge"),
        make_instance("i-2", instance_type="p5.48xlarge", state=InstanceState.PENDING),
        make_instance("i-3", instance_type="p5.48xlarge", state=InstanceState.STOPPED),
        make_instance("i-4", instance_type="p5.48xlarge", state=InstanceState.STOPPING),
        make_instance("i-5", instance_type="p5.48xlarge", state=InstanceState.TERMINATED),
        make_instance("i-6", instance_type="weird.large"),
        make_instance("i-7", instance_type="weird.large", state=InstanceState.STOPPED),
        make_instance("i-8", instance_type="g5.xlarge", region="eu-west-1", spot="one-time"),
    ]

    total, unknown = burn_rate(fleet, table)

    # Only running instances pay for compute: pending, stopping and stopped ones do not.
    assert total == Decimal("2.012")
    assert unknown == 1


def test_hourly_cost_is_zero_unless_running() -> None:
    table = PriceTable(as_of="2025-01-01", prices={"us-east-1": {"g5.xlarge": Decimal("1.006")}})

    assert hourly_cost(make_instance(instance_type="g5.xlarge"), table) == Decimal("1.006")
    for state in (InstanceState.STOPPED, InstanceState.TERMINATED, InstanceState.STOPPING):
        stopped = make_instance(instance_type="g5.xlarge", state=state)
        assert hourly_cost(stopped, table) == Decimal(0)
    assert hourly_cost(make_instance(instance_type="x.odd"), table) is None


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0", "0.00"), ("55.04", "55.04"), ("1.006", "1.006"), ("0.5", "0.50"), ("12", "12.00")],
)
def test_money_has_at_least_two_decimals(amount: str, text: str) -> None:
    assert money(Decimal(amount)) == text


def test_format_rate_marks_estimates_and_upper_bounds() -> None:
    table = PriceTable(as_of="2025-01-01", prices={"us-east-1": {"g5.xlarge": Decimal("1.006")}})

    assert format_rate(make_instance(instance_type="g5.xlarge"), table) == "$1.01/h"
    elsewhere = make_instance(instance_type="g5.xlarge", region="eu-west-1")
    assert format_rate(elsewhere, table) == "~$1.01/h (estimate: us-east-1 price)"
    spot = make_instance(instance_type="g5.xlarge", spot="persistent")
    assert format_rate(spot, table) == "≤$1.01/h"
    assert format_rate(make_instance(instance_type="x.odd"), table) == "price unknown"


def test_burn_rate_of_nothing() -> None:
    assert burn_rate([], bundled_prices()) == (Decimal(0), 0)
