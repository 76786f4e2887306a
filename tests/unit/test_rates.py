"""The rate each instance carries, as the views read it: burn rate, hourly cost, wording."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from runctl_tui.costs.rates import burn_rate, format_rate, hourly_cost, money
from runctl_tui.models import Instance, InstanceState, Rate
from tests.fakes import make_instance


def rated(instance_id: str = "i-1", usd: str | None = "1.006", **extra: Any) -> Instance:
    rate = None if usd is None else Rate(usd_per_hour=Decimal(usd), source="test table")
    return make_instance(instance_id, rate=rate, **extra)


def test_burn_rate_counts_only_billed_instances_and_unknown_rates() -> None:
    fleet = [
        rated("i-1"),
        rated("i-2", "55.04", state=InstanceState.PENDING),
        rated("i-3", "55.04", state=InstanceState.STOPPED),
        rated("i-4", "55.04", state=InstanceState.STOPPING),
        rated("i-5", "55.04", state=InstanceState.TERMINATED),
        rated("i-6", None),
        rated("i-7", None, state=InstanceState.STOPPED),
        rated("i-8", "1.006", spot="one-time"),
    ]

    total, unknown = burn_rate(fleet)

    # Only running instances pay for compute: pending, stopping and stopped ones do not.
    assert total == Decimal("2.012")
    assert unknown == 1


def test_hourly_cost_is_zero_unless_running() -> None:
    assert hourly_cost(rated()) == Decimal("1.006")
    for state in (InstanceState.STOPPED, InstanceState.TERMINATED, InstanceState.STOPPING):
        assert hourly_cost(rated(state=state)) == Decimal(0)
    assert hourly_cost(rated(usd=None)) is None


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0", "0.00"), ("55.04", "55.04"), ("1.006", "1.006"), ("0.5", "0.50"), ("12", "12.00")],
)
def test_money_has_at_least_two_decimals(amount: str, text: str) -> None:
    assert money(Decimal(amount)) == text


def test_format_rate_marks_estimates_and_upper_bounds_and_says_whence() -> None:
    plain = make_instance(rate=Rate(usd_per_hour=Decimal("1.006"), source="AWS Price List API"))
    estimate = make_instance(
        rate=Rate(usd_per_hour=Decimal("1.006"), source="bundled price table", estimate=True)
    )
    bound = make_instance(
        rate=Rate(usd_per_hour=Decimal("1.006"), source="bundled price table", upper_bound=True)
    )

    assert format_rate(plain) == "$1.01/h"
    assert format_rate(estimate) == "~$1.01/h (estimate)"
    elsewhere = make_instance(
        rate=Rate(usd_per_hour=Decimal("1.006"), source="table", estimate=True, region="us-east-1")
    )
    assert format_rate(elsewhere) == "~$1.01/h (estimate: us-east-1 price)"
    assert format_rate(bound) == "≤$1.01/h"
    assert format_rate(make_instance(rate=None)) == "price unknown"
    assert format_rate(plain, basis=True) == "$1.01/h (AWS Price List API)"


def test_burn_rate_of_nothing() -> None:
    assert burn_rate([]) == (Decimal(0), 0)
