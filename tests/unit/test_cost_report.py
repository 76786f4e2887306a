"""The cost report: what bills, burn rates, totals, projections, flags and budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from runctl_tui.costs.budget import BudgetLevel, Period
from runctl_tui.costs.idle import IdleState
from runctl_tui.costs.ledger import Spend
from runctl_tui.costs.report import (
    CostLine,
    CostReport,
    billables,
    build_report,
    burn,
)
from runctl_tui.costs.verify import Leak
from runctl_tui.models import (
    Action,
    FleetSnapshot,
    Instance,
    InstanceState,
    ProviderStatus,
    Rate,
    StorageItem,
)
from tests.fakes import T0, make_instance, make_run

NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
DAY = datetime(2026, 3, 10, tzinfo=UTC)
MONTH = datetime(2026, 3, 1, tzinfo=UTC)


def rate(usd: str, source: str = "test table") -> Rate:
    """A rate of ``usd`` dollars an hour."""
    return Rate(usd_per_hour=Decimal(usd), source=source)


def volume(
    volume_id: str = "vol-1",
    *,
    provider: str = "fake",
    attached_to: str | None = None,
    attached_state: InstanceState | None = None,
    monthly: str | None = "8.00",
) -> StorageItem:
    """A gp3 volume priced at ``monthly`` dollars a month (over 730 hours)."""
    return StorageItem(
        provider=provider,
        id=volume_id,
        name=f"disk {volume_id}",
        location="us-east-1",
        volume_type="gp3",
        size_gb=100,
        attached_to=attached_to,
        attached_state=attached_state,
        created_at=NOW - timedelta(days=3),
        rate=None if monthly is None else rate(str(Decimal(monthly) / 730), "EBS table"),
        monthly_usd=None if monthly is None else Decimal(monthly),
    )


def snapshot(
    instances: list[Instance] | None = None,
    storage: list[StorageItem] | None = None,
    *,
    failed: frozenset[str] = frozenset(),
    providers: tuple[str, ...] = ("fake",),
) -> FleetSnapshot:
    """A poll at :data:`NOW`; providers in ``failed`` did not answer."""
    statuses = tuple(
        ProviderStatus(
            provider=name, ok=name not in failed, error="down" if name in failed else None
        )
        for name in providers
    )
    return FleetSnapshot(
        instances=tuple(instances or ()),
        statuses=statuses,
        taken_at=NOW,
        storage=tuple(storage or ()),
    )


def spend(key: str, usd: str, *, seconds: int = 3600, provider: str = "fake") -> Spend:
    """What the ledger says ``key`` cost."""
    return Spend(
        key=key,
        provider=provider,
        name=f"name of {key}",
        kind="ec2",
        location="us-east-1",
        seconds=Decimal(seconds),
        usd=Decimal(usd),
        usd_per_hour=Decimal("1"),
        rate_source="test table",
        unpriced_seconds=Decimal(0),
    )


def report(shot: FleetSnapshot, **kwargs: Any) -> CostReport:
    """The report of ``shot`` at :data:`NOW`, days and months in UTC unless told."""
    kwargs.setdefault("tz", UTC)
    return build_report(shot, now=NOW, day_start=DAY, month_start=MONTH, **kwargs)


def line_of(built: CostReport, key: str) -> CostLine:
    """The one line of ``key``."""
    (found,) = [line for line in built.lines if line.key == key]
    return found


# What bills ----------------------------------------------------------------------------------


def test_billables_skip_runs_and_providers_that_did_not_answer() -> None:
    shot = snapshot(
        [
            make_instance("i-1", rate=rate("2.5")),
            make_run(4242),
            make_instance("i-2", provider="down", rate=rate("9")),
        ],
        [volume("vol-1"), volume("vol-2", provider="down")],
        failed=frozenset({"down"}),
        providers=("fake", "down"),
    )

    found = {b.key: b for b in billables(shot)}

    assert set(found) == {"fake:i-1", "fake:vol-1"}
    assert found["fake:i-1"].usd_per_hour == Decimal("2.5")
    assert found["fake:i-1"].since == T0 - timedelta(hours=1)
    assert found["fake:i-1"].billing is True


def test_storage_always_bills_and_a_stopped_instance_does_not() -> None:
    shot = snapshot(
        [make_instance("i-1", state=InstanceState.STOPPED, rate=rate("2.5"))],
        [volume("vol-1", attached_to="i-1", attached_state=InstanceState.STOPPED)],
    )

    found = {b.key: b for b in billables(shot)}

    assert found["fake:i-1"].billing is False
    assert found["fake:vol-1"].billing is True
    assert found["fake:vol-1"].since == NOW - timedelta(days=3)
    assert found["fake:vol-1"].usd_per_hour == Decimal("8.00") / 730


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (InstanceState.RUNNING, Decimal("2.5")),
        (InstanceState.PENDING, Decimal(0)),
        (InstanceState.STOPPING, Decimal(0)),
        (InstanceState.STOPPED, Decimal(0)),
        (InstanceState.TERMINATED, Decimal(0)),
    ],
)
def test_burn_is_zero_unless_running(state: InstanceState, expected: Decimal) -> None:
    built = report(snapshot([make_instance("i-1", state=state, rate=rate("2.5"))]))

    assert line_of(built, "fake:i-1").burn_usd_per_hour == expected
    assert built.total.burn_usd_per_hour == expected


def test_burn_of_an_unknown_rate() -> None:
    assert burn(None, True) is None
    assert burn(None, False) == 0
    assert burn(rate("1.25"), True) == Decimal("1.25")


def test_unknown_rate_is_counted_as_unpriced_not_in_the_totals() -> None:
    shot = snapshot(
        [
            make_instance("i-1", rate=None),
            make_instance("i-2", rate=rate("3")),
            make_instance("i-3", rate=None, state=InstanceState.STOPPED),
        ]
    )

    built = report(shot)

    unknown = line_of(built, "fake:i-1")
    assert unknown.burn_usd_per_hour is None
    assert [f.kind for f in unknown.flags] == ["unpriced"]
    assert unknown.flags[0].text == "rate unknown: not in the totals"
    assert line_of(built, "fake:i-3").flags == ()
    assert built.total.burn_usd_per_hour == Decimal(3)
    assert built.total.unpriced == 1
    (fake,) = built.providers
    assert fake.unpriced == 1


# Totals and projections ----------------------------------------------------------------------


def test_totals_per_provider_and_in_all_add_up_exactly() -> None:
    shot = snapshot(
        [
            make_instance("i-1", rate=rate("1.006")),
            make_instance("i-2", rate=rate("32.7726")),
            make_instance("i-3", provider="other", rate=rate("0.1")),
        ],
        [volume("vol-1", monthly="8.00")],
        providers=("fake", "other"),
    )
    today = [
        spend("fake:i-1", "0.3353333333333333333333333333"),
        spend("fake:i-2", "10.924200000000000000000000001"),
        spend("other:i-3", "0.0333333333333333333333333333", provider="other"),
        spend("fake:vol-1", "0.0036529680365296803652968037"),
    ]
    month = [
        spend("fake:i-1", "20.12"),
        spend("fake:i-2", "700.0000000000000000000000007"),
        spend("other:i-3", "1.1", provider="other"),
        spend("fake:vol-1", "2.0876"),
    ]

    built = report(shot, today=today, month=month)

    by_provider = {t.provider: t for t in built.providers}
    assert list(by_provider) == ["fake", "other"]
    for name, totals in by_provider.items():
        mine = [line for line in built.lines if line.provider == name]
        assert totals.today_usd == sum((line.today_usd for line in mine), Decimal(0))
        assert totals.month_usd == sum((line.month_usd for line in mine), Decimal(0))
        assert totals.burn_usd_per_hour == sum(
            (line.burn_usd_per_hour or Decimal(0) for line in mine), Decimal(0)
        )
    total = built.total
    assert total.provider == "total"
    assert total.today_usd == sum((Decimal(s.usd) for s in today), Decimal(0))
    assert total.month_usd == sum((Decimal(s.usd) for s in month), Decimal(0))
    assert total.today_usd == sum((t.today_usd for t in built.providers), Decimal(0))
    assert total.month_usd == sum((t.month_usd for t in built.providers), Decimal(0))
    assert (
        total.burn_usd_per_hour
        == Decimal("1.006") + Decimal("32.7726") + Decimal("0.1") + Decimal("8.00") / 730
    )
    assert line_of(built, "fake:i-1").month_hours == Decimal(1)


def test_totals_do_not_depend_on_the_order_of_the_lines() -> None:
    shot = snapshot(
        [make_instance("i-1", rate=rate("1")), make_instance("i-2", rate=rate("2"))],
        [volume("vol-1")],
    )
    tiny = "0.0000000000000000000000000006"
    month = [spend("fake:i-1", "1"), spend("fake:i-2", tiny), spend("fake:vol-1", tiny)]

    built = report(shot, month=month)

    # Listed: the flagged volume, then by burn rate.
    assert [line.key for line in built.lines] == ["fake:vol-1", "fake:i-2", "fake:i-1"]
    assert built.total.month_usd == sum((line.month_usd for line in built.lines), Decimal(0))


@pytest.mark.parametrize(
    ("zone", "day_left", "month_left"),
    [
        # 18:00 UTC: six hours to midnight; 21 days and 6 hours to April.
        (UTC, Decimal(6), Decimal(21 * 24 + 6)),
        # 14:00 in New York (EDT since March 8): ten hours to its midnight.
        (ZoneInfo("America/New_York"), Decimal(10), Decimal(21 * 24 + 10)),
        # 19:00 in Berlin; its clocks go forward on March 29, so the month is an hour short.
        (ZoneInfo("Europe/Berlin"), Decimal(5), Decimal(21 * 24 + 5 - 1)),
    ],
)
def test_projections_are_spend_plus_burn_until_the_period_ends(
    zone: tzinfo, day_left: Decimal, month_left: Decimal
) -> None:
    shot = snapshot(
        [make_instance("i-1", rate=rate("1.006")), make_instance("i-2", rate=rate("2"))]
    )
    today = [spend("fake:i-1", "4.5")]
    month = [spend("fake:i-1", "100.25"), spend("fake:i-2", "3")]

    built = report(shot, today=today, month=month, tz=zone)

    burn_now = Decimal("3.006")
    assert built.total.burn_usd_per_hour == burn_now
    assert built.total.projected_today_usd == Decimal("4.5") + burn_now * day_left
    assert built.total.projected_month_usd == Decimal("103.25") + burn_now * month_left


def test_since_launch_is_rate_times_uptime_without_a_ledger() -> None:
    running = make_instance("i-1", rate=rate("3.6"), launched_at=NOW - timedelta(minutes=90))
    stopped = make_instance("i-2", rate=rate("3.6"), state=InstanceState.STOPPED)

    built = report(snapshot([running, stopped]))
    with_ledger = report(snapshot([running]), since_launch={"fake:i-1": Decimal("5.1")})

    assert line_of(built, "fake:i-1").since_launch_usd == Decimal("5.4")
    assert line_of(built, "fake:i-2").since_launch_usd is None
    assert line_of(with_ledger, "fake:i-1").since_launch_usd == Decimal("5.1")


# What only the ledger remembers ----------------------------------------------------------------


def test_what_the_ledger_remembers_but_the_fleet_does_not_show_is_gone() -> None:
    shot = snapshot([make_instance("i-1", rate=rate("1"))])
    month = [spend("fake:i-1", "2"), spend("fake:i-old", "7.25", seconds=7200)]
    today = [spend("fake:i-old", "1.5")]

    built = report(shot, today=today, month=month)

    gone = line_of(built, "fake:i-old")
    assert (gone.state, gone.id, gone.name) == ("gone", "i-old", "name of fake:i-old")
    assert gone.billing is False
    assert gone.burn_usd_per_hour == 0
    assert gone.rate is None
    assert (gone.today_usd, gone.month_usd, gone.month_hours) == (
        Decimal("1.5"),
        Decimal("7.25"),
        Decimal(2),
    )
    assert built.total.month_usd == Decimal("9.25")
    assert built.total.today_usd == Decimal("1.5")


def test_a_line_of_a_provider_that_did_not_answer_stays_with_its_spend() -> None:
    stale = make_instance("i-9", provider="down", rate=rate("4"))
    shot = snapshot([stale], failed=frozenset({"down"}), providers=("down",))

    built = report(shot, month=[spend("down:i-9", "12", provider="down")])

    line = line_of(built, "down:i-9")
    assert line.month_usd == Decimal(12)
    assert [t.provider for t in built.providers] == ["down"]


# Flags -------------------------------------------------------------------------------------------


def test_orphaned_volume_flag() -> None:
    built = report(snapshot([], [volume("vol-1", monthly="8.00")]))

    line = line_of(built, "fake:vol-1")
    assert line.state == "unattached"
    assert line.monthly_usd == Decimal("8.00")
    assert [(f.kind, f.text) for f in line.flags] == [("orphaned", "orphaned volume, $8.00/month")]
    assert built.flagged == (line,)


def test_orphaned_volume_of_unknown_price() -> None:
    built = report(snapshot([], [volume("vol-1", monthly=None)]))

    line = line_of(built, "fake:vol-1")
    assert [f.text for f in line.flags] == [
        "orphaned volume, ?/month",
        "rate unknown: not in the totals",
    ]
    assert built.total.unpriced == 1


def test_a_stopped_instances_volume_is_flagged_as_kept_for_it() -> None:
    stopped = make_instance("i-1", state=InstanceState.STOPPED, rate=rate("1"))
    kept = volume("vol-1", attached_to="i-1", attached_state=InstanceState.STOPPED, monthly="12.5")
    running = volume("vol-2", attached_to="i-2", attached_state=InstanceState.RUNNING)

    built = report(snapshot([stopped], [kept, running]))

    assert [f.text for f in line_of(built, "fake:vol-1").flags] == [
        "kept for stopped i-1, $12.50/month"
    ]
    assert line_of(built, "fake:vol-1").state == "on i-1"
    assert line_of(built, "fake:vol-2").flags == ()
    assert line_of(built, "fake:vol-2").billing is True


def test_idle_flag_on_a_running_instance_only() -> None:
    running = make_instance("i-1", rate=rate("32.7726"))
    stopped = make_instance("i-2", rate=rate("1"), state=InstanceState.STOPPED)
    idle = {
        key: IdleState(key, NOW - timedelta(minutes=17), NOW, 1.0)
        for key in ("fake:i-1", "fake:i-2")
    }

    built = report(snapshot([running, stopped]), idle=idle)

    assert [(f.kind, f.text) for f in line_of(built, "fake:i-1").flags] == [
        ("idle", "idle 17m, burning $32.77/h")
    ]
    assert line_of(built, "fake:i-2").flags == ()


def test_leak_flag_says_what_still_bills() -> None:
    instance = make_instance("i-1", rate=rate("21.96"))
    leak = Leak(
        key="fake:i-1",
        instance=instance,
        action=Action.STOP,
        reported="stopping",
        since=NOW - timedelta(minutes=1),
        polls=3,
        shows="shows running",
    )

    built = report(snapshot([instance, make_instance("i-2", rate=rate("99"))]), leaks=[leak])

    flags = line_of(built, "fake:i-1").flags
    assert [(f.kind, f.text) for f in flags] == [
        ("leak", "still billing $21.96/h: i-1 was stopped 3 polls ago but shows running")
    ]
    assert built.leaks == (leak,)
    # Flagged lines come first, whatever burns more.
    assert [line.key for line in built.lines] == ["fake:i-1", "fake:i-2"]


# Budgets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spent", "level"),
    [("79.99", BudgetLevel.OK), ("80", BudgetLevel.WARN), ("99.99", BudgetLevel.WARN)]
    + [("100", BudgetLevel.OVER), ("250", BudgetLevel.OVER)],
)
def test_daily_budget_levels(spent: str, level: BudgetLevel) -> None:
    shot = snapshot([make_instance("i-1", rate=rate("1"))])

    built = report(shot, today=[spend("fake:i-1", spent)], daily_budget=Decimal(100))

    (budget,) = built.budgets
    assert budget.period is Period.TODAY
    assert budget.level is level
    assert budget.spent == Decimal(spent)
    assert budget.projected == Decimal(spent) + 6


def test_monthly_budget_uses_this_months_spend_and_projection() -> None:
    shot = snapshot([make_instance("i-1", rate=rate("1"))])

    built = report(
        shot,
        today=[spend("fake:i-1", "1")],
        month=[spend("fake:i-1", "450")],
        daily_budget=Decimal(1000),
        monthly_budget=Decimal(500),
    )

    daily, monthly = built.budgets
    assert (daily.period, daily.level) == (Period.TODAY, BudgetLevel.OK)
    assert (monthly.period, monthly.level) == (Period.MONTH, BudgetLevel.WARN)
    assert monthly.projected == Decimal(450) + Decimal(21 * 24 + 6)
    assert monthly.projected_level is BudgetLevel.OVER


def test_no_budget_configured_means_no_budget_lines() -> None:
    built = report(snapshot([make_instance("i-1", rate=rate("1"))]))

    assert built.budgets == ()


def test_an_empty_fleet_reports_zeros() -> None:
    built = report(snapshot())

    assert built.lines == ()
    assert built.total.burn_usd_per_hour == 0
    assert built.total.projected_month_usd == 0
    assert [t.provider for t in built.providers] == ["fake"]
