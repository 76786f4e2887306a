"""Budgets: levels, the one-line summary, projections, one announcement per crossing, and
what an exceeded budget stops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runctl_tui.costs.budget import (
    BudgetLevel,
    BudgetStatus,
    BudgetWatch,
    Period,
    budget_status,
    hours_left,
    period_end,
    plan_idle_stops,
    projection,
    stop_idle_targets,
)
from runctl_tui.costs.idle import IdleState
from runctl_tui.models import Instance, InstanceState, PodDetails
from tests.fakes import T0, make_instance, make_run

D = Decimal


def status(spent: str, limit: str = "500", period: Period = Period.TODAY) -> BudgetStatus:
    """A status with the projection equal to what is spent."""
    return budget_status(period, D(limit), D(spent), D(spent))


@pytest.mark.parametrize(
    ("spent", "level"),
    [
        ("0", BudgetLevel.OK),
        ("399.99", BudgetLevel.OK),
        ("400", BudgetLevel.WARN),
        ("499.99", BudgetLevel.WARN),
        ("500.00", BudgetLevel.OVER),
        ("1200", BudgetLevel.OVER),
    ],
)
def test_the_level_is_exact_at_80_and_100_percent(spent: str, level: BudgetLevel) -> None:
    assert status(spent).level is level


def test_describe_is_one_line_with_spend_limit_percent_and_projection() -> None:
    today = budget_status("today", D("500.00"), D("412.07"), D("611.20"))

    assert today.describe() == "today $412.07 of $500.00 (82%), projected $611.20"
    assert today.period is Period.TODAY
    assert today.percent == D("82.414")
    assert today.projected_level is BudgetLevel.OVER


def test_the_percentage_is_never_rounded_up_to_the_limit() -> None:
    nearly = budget_status(Period.MONTH, D("1000"), D("999.99"), D("999.99"))

    assert nearly.level is BudgetLevel.WARN
    assert nearly.describe() == "this month $999.99 of $1,000.00 (99%), projected $999.99"
    assert "(240%)" in budget_status(Period.TODAY, D("500.00"), D("1200"), D("1200")).describe()


def test_a_projection_below_the_spend_is_the_spend() -> None:
    assert budget_status(Period.TODAY, D(10), D(5), D(1)).projected == D(5)


@pytest.mark.parametrize(
    ("limit", "spent"), [("0", "1"), ("-5", "1"), ("NaN", "1"), ("10", "-1"), ("10", "Infinity")]
)
def test_nonsense_figures_are_refused_in_one_line(limit: str, spent: str) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        budget_status(Period.TODAY, D(limit), D(spent), D(0))


def test_periods_end_at_midnight_and_at_the_first_of_next_month() -> None:
    now = datetime(2026, 2, 27, 18, 30, tzinfo=UTC)

    assert period_end(Period.TODAY, now) == datetime(2026, 2, 28, tzinfo=UTC)
    assert period_end(Period.MONTH, now) == datetime(2026, 3, 1, tzinfo=UTC)
    assert period_end(Period.MONTH, datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert hours_left(Period.TODAY, now) == D("5.5")
    assert hours_left(Period.MONTH, now) == D("29.5")


def test_periods_follow_the_time_zone_of_the_clock_given() -> None:
    berlin = timezone(timedelta(hours=1))
    now = datetime(2026, 3, 1, 23, 0, tzinfo=berlin)

    assert hours_left(Period.TODAY, now) == D(1)
    assert hours_left(Period.TODAY, now.astimezone(UTC)) == D(2)


def test_a_day_with_a_clock_change_has_23_or_25_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")

    assert hours_left(Period.TODAY, datetime(2026, 3, 29, tzinfo=berlin)) == D(23)
    assert hours_left(Period.TODAY, datetime(2026, 10, 25, tzinfo=berlin)) == D(25)
    assert hours_left(Period.MONTH, datetime(2026, 3, 1, tzinfo=berlin)) == D(31 * 24 - 1)


def test_a_clock_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        hours_left(Period.TODAY, datetime(2026, 3, 1, 12))


def test_projection_adds_the_burn_over_the_hours_left() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)

    assert projection(Period.TODAY, D("412.07"), D("49.78"), now) == D("611.19")
    assert projection(Period.TODAY, D(10), D(-3), now) == D(10)


def test_the_watch_announces_each_rise_once() -> None:
    watch = BudgetWatch()

    assert watch.update([status("100")]) == []
    (warn,) = watch.update([status("410")])
    assert (warn.previous, warn.level) == (BudgetLevel.OK, BudgetLevel.WARN)
    assert warn.describe() == "budget warning: today $410.00 of $500.00 (82%), projected $410.00"
    assert watch.update([status("450")]) == []
    (over,) = watch.update([status("500")])
    assert (over.previous, over.level) == (BudgetLevel.WARN, BudgetLevel.OVER)
    assert over.describe().startswith("over budget: today $500.00 of $500.00 (100%)")
    assert watch.update([status("520")]) == []
    assert watch.level(Period.TODAY) is BudgetLevel.OVER


def test_ok_straight_to_over_is_one_crossing() -> None:
    watch = BudgetWatch()

    (crossing,) = watch.update([status("10"), status("600", period=Period.MONTH)])
    assert (crossing.status.period, crossing.previous, crossing.level) == (
        Period.MONTH,
        BudgetLevel.OK,
        BudgetLevel.OVER,
    )


def test_the_first_status_seen_already_warning_is_announced() -> None:
    (crossing,) = BudgetWatch().update([status("450")])
    assert crossing.level is BudgetLevel.WARN


def test_periods_are_watched_separately() -> None:
    watch = BudgetWatch()
    watch.update([status("450"), status("450", "5000", Period.MONTH)])

    (month,) = watch.update([status("460"), status("4100", "5000", Period.MONTH)])
    assert month.status.period is Period.MONTH


def test_a_new_day_rearms_the_watch() -> None:
    watch = BudgetWatch()
    watch.update([status("510")])

    assert watch.update([status("3")]) == []
    assert watch.level(Period.TODAY) is BudgetLevel.OK
    (warn,) = watch.update([status("401")])
    assert warn.level is BudgetLevel.WARN


def test_a_new_day_already_over_is_announced_again() -> None:
    watch = BudgetWatch()
    watch.update([status("600")])

    # Spend fell (a new day) yet is over again, e.g. after a long gap between polls.
    (again,) = watch.update([status("550")])
    assert (again.previous, again.level) == (BudgetLevel.OK, BudgetLevel.OVER)


def test_a_raised_limit_lowers_the_level_and_a_later_rise_is_announced() -> None:
    watch = BudgetWatch()
    watch.update([status("510")])

    assert watch.update([status("520", limit="1000")]) == []
    assert watch.level(Period.TODAY) is BudgetLevel.OK
    (warn,) = watch.update([status("800", limit="1000")])
    assert warn.level is BudgetLevel.WARN


def _idle(*instances: Instance) -> dict[str, IdleState]:
    return {i.key: IdleState(i.key, T0, T0 + timedelta(minutes=20), 1.0) for i in instances}


def _pod(pod_id: str, **extra: object) -> Instance:
    fields: dict[str, object] = {
        "provider": "runpod",
        "id": pod_id,
        "location": "EU-RO-1",
        "state": InstanceState.RUNNING,
        "details": PodDetails(desired_status="RUNNING", gpu_count=1),
    }
    fields.update(extra)
    return Instance.model_validate(fields)


def test_an_exceeded_budget_stops_idle_running_instances_and_pods_only() -> None:
    idle_ec2 = make_instance("i-idle")
    busy_ec2 = make_instance("i-busy")
    idle_pod = _pod("pod-idle")
    stopped = make_instance("i-stopped", state=InstanceState.STOPPED)
    run = make_run()

    targets = stop_idle_targets(
        [idle_ec2, busy_ec2, idle_pod, stopped, run], _idle(idle_ec2, idle_pod, stopped, run)
    )

    assert [t.id for t in targets] == ["i-idle", "pod-idle"]


def test_protected_and_one_time_spot_instances_are_left_running_with_a_reason() -> None:
    protected = make_instance("i-keep", protected=True)
    one_time = make_instance("i-spot", spot="one-time")
    persistent = make_instance("i-persist", spot="persistent")
    stopping = make_instance("i-stopping", state=InstanceState.STOPPING)

    targets, skipped = plan_idle_stops(
        [protected, one_time, persistent, stopping],
        _idle(protected, one_time, persistent, stopping),
    )

    assert [t.id for t in targets] == ["i-persist"]
    reasons = {instance.id: why for instance, why in skipped}
    assert reasons == {
        "i-keep": "protected (tag runctl:protect=true): stop it yourself",
        "i-spot": "a one-time spot instance cannot be stopped, only terminated",
        "i-stopping": "it is stopping",
    }


def test_nothing_is_stopped_without_idle_items() -> None:
    assert stop_idle_targets([make_instance("i-1")], {}) == []


@given(st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=40))
def test_within_one_period_each_level_is_announced_at_most_once(spends: list[int]) -> None:
    watch = BudgetWatch()
    announced: list[BudgetLevel] = []
    total = 0
    for extra in spends:
        total += extra
        announced += [c.level for c in watch.update([status(str(total), limit="10000")])]

    assert len(announced) == len(set(announced))
    assert announced == sorted(announced, key=[BudgetLevel.WARN, BudgetLevel.OVER].index)
    assert (announced[-1] if announced else BudgetLevel.OK) is status(str(total), "10000").level
