"""The cost service behind the fleet: accrual over polls and restarts, alerts, leaks, idle stops."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runctl_tui.audit import Journal
from runctl_tui.config import CostsSettings
from runctl_tui.costs.budget import BudgetLevel
from runctl_tui.costs.report import CostLine, CostReport
from runctl_tui.models import Action, GpuUsage, Instance, InstanceState, Outcome, Rate
from runctl_tui.providers.base import ProviderError
from runctl_tui.services.costs import CostService
from runctl_tui.services.fleet import Fleet
from tests.fakes import T0, FakeClock, FakeProvider, make_instance

RATE = Decimal("3.6")
"""Six cents a minute: ten minutes cost exactly $0.60."""
KEY = "fake:i-1"


def rated(instance_id: str = "i-1", **kwargs: Any) -> Instance:
    """A running instance at :data:`RATE`, launched an hour before ``T0``."""
    kwargs.setdefault("rate", Rate(usd_per_hour=RATE, source="test table"))
    return make_instance(instance_id, **kwargs)


class Bench:
    """A fake provider, a fleet and its cost service on one ledger file and one clock."""

    def __init__(self, tmp_path: Path, clock: FakeClock, provider: FakeProvider) -> None:
        self.path = tmp_path / "data" / "ledger.sqlite3"
        self.journal = Journal(tmp_path / "journal.jsonl")
        self.clock = clock
        self.provider = provider
        self.services: list[CostService] = []
        self.fleet = self.restart()

    def restart(self, settings: CostsSettings | None = None) -> Fleet:
        """A new fleet and cost service on the same ledger file (runctl-tui started again)."""
        for service in self.services:
            service.close()
        costs = CostService(settings, path=self.path, clock=self.clock, tz=UTC)
        self.services.append(costs)
        self.fleet = Fleet([self.provider], journal=self.journal, clock=self.clock, costs=costs)
        return self.fleet

    @property
    def costs(self) -> CostService:
        """The cost service in use."""
        assert self.fleet.costs is not None
        return self.fleet.costs

    def poll(self, after: timedelta = timedelta(0)) -> CostReport:
        """Move the clock by ``after``, poll, and return the poll's cost report."""
        self.clock.advance(after)
        self.fleet.poll(deadline=5)
        report = self.fleet.cost_report
        assert report is not None
        assert report.generated_at == self.clock.now
        return report

    def close(self) -> None:
        """Close every ledger connection."""
        for service in self.services:
            service.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider([rated()])


@pytest.fixture
def bench(tmp_path: Path, clock: FakeClock, provider: FakeProvider) -> Iterator[Bench]:
    made = Bench(tmp_path, clock, provider)
    yield made
    made.close()


def line(report: CostReport, key: str = KEY) -> CostLine:
    """The line of ``key``."""
    (found,) = [x for x in report.lines if x.key == key]
    return found


def minutes(count: int) -> Decimal:
    """What :data:`RATE` costs in ``count`` minutes."""
    return RATE * count / 60


# Accrual ---------------------------------------------------------------------------------------


def test_two_polls_ten_minutes_apart_accrue_exactly_rate_times_time(bench: Bench) -> None:
    first = bench.poll()
    second = bench.poll(timedelta(minutes=10))

    # The first poll proves the hour since launch; the second adds exactly ten minutes.
    assert line(first).month_usd == minutes(60)
    assert line(second).month_usd == minutes(70) == Decimal("4.2")
    assert line(second).today_usd == Decimal("4.2")
    assert line(second).month_hours == Decimal(70) / 60
    assert second.total.month_usd - first.total.month_usd == Decimal("0.6")
    assert line(second).burn_usd_per_hour == RATE
    assert second.ledger_error is None
    assert second.ledger_path == str(bench.path)


def test_a_restart_neither_loses_nor_double_counts(bench: Bench) -> None:
    bench.poll()
    bench.poll(timedelta(minutes=10))

    bench.restart()
    again = bench.poll()
    later = bench.poll(timedelta(minutes=10))

    assert line(again).month_usd == minutes(70)
    assert line(later).month_usd == minutes(80)
    bench.restart()
    assert line(bench.poll(timedelta(minutes=5))).month_usd == minutes(85)


def test_a_read_records_nothing(bench: Bench) -> None:
    bench.poll()
    bench.clock.advance(timedelta(minutes=30))

    snapshot = bench.fleet.snapshot()
    read = bench.costs.read(snapshot)

    assert line(read).month_usd == minutes(60)
    assert line(bench.costs.read(snapshot)).month_usd == minutes(60)
    assert line(bench.poll()).month_usd == minutes(90)


def test_read_since_a_date_reports_from_there(bench: Bench) -> None:
    bench.poll()
    bench.poll(timedelta(minutes=30))

    since = T0 - timedelta(minutes=10)
    read = bench.costs.read(bench.fleet.snapshot(), since=since)

    assert read.month_start == since
    assert line(read).month_usd == minutes(40)
    assert line(read).today_usd == minutes(90)


def test_a_failed_poll_does_not_extend_and_the_next_proves_the_gap_from_launch(
    bench: Bench, provider: FakeProvider
) -> None:
    bench.poll()
    provider.list_error = ProviderError("fake", "API down")

    failed = bench.poll(timedelta(minutes=10))

    assert line(failed).month_usd == minutes(60)
    provider.list_error = None
    back = bench.poll(timedelta(minutes=10))
    assert line(back).month_usd == minutes(80)
    assert back.gaps == ()


def test_a_restart_of_the_instance_during_a_failure_leaves_a_gap(
    bench: Bench, provider: FakeProvider
) -> None:
    bench.poll()
    provider.list_error = ProviderError("fake", "API down")
    bench.poll(timedelta(minutes=10))
    # Stopped and started again while nobody could see it: launched 5 minutes before the poll.
    provider.set(rated(launched_at=T0 + timedelta(minutes=15)))
    provider.list_error = None

    back = bench.poll(timedelta(minutes=10))

    assert line(back).month_usd == minutes(65)
    (gap,) = back.gaps
    assert (gap.key, gap.start, gap.end) == (KEY, T0, T0 + timedelta(minutes=15))


def test_a_stopped_instance_stops_accruing(bench: Bench, provider: FakeProvider) -> None:
    bench.poll()
    provider.set_state("i-1", InstanceState.STOPPED)

    stopped = bench.poll(timedelta(minutes=10))
    later = bench.poll(timedelta(hours=2))

    assert line(stopped).burn_usd_per_hour == 0
    assert line(later).month_usd == line(stopped).month_usd == minutes(60)


def test_a_terminated_and_vanished_instance_is_kept_as_gone(
    bench: Bench, provider: FakeProvider
) -> None:
    bench.poll()
    bench.poll(timedelta(minutes=10))
    del provider.instances["i-1"]

    report = bench.poll(timedelta(minutes=10))

    gone = line(report)
    assert gone.state == "gone"
    assert gone.month_usd == minutes(70)
    assert report.total.burn_usd_per_hour == 0


# Budgets ---------------------------------------------------------------------------------------


def test_budget_crossings_alert_once_each(bench: Bench) -> None:
    bench.restart(CostsSettings(daily_budget=Decimal(5)))

    levels = []
    alerts = []
    for step in (0, 10, 10, 10, 10):
        report = bench.poll(timedelta(minutes=step))
        (budget,) = report.budgets
        levels.append(budget.level)
        alerts.append(report.alerts)

    # $3.60 (72%), $4.20 (84%), $4.80 (96%), $5.40 (108%), $6.00.
    assert levels == [BudgetLevel.OK, BudgetLevel.WARN, BudgetLevel.WARN] + [BudgetLevel.OVER] * 2
    assert [len(a) for a in alerts] == [0, 1, 0, 1, 0]
    (warn,) = alerts[1]
    assert (warn.severity, warn.bell) == ("warning", True)
    # At 12:10 UTC: $4.20 spent plus 11h50m at $3.60/h.
    assert warn.text == "budget warning: today $4.20 of $5.00 (84%), projected $46.80"
    (over,) = alerts[3]
    assert (over.severity, over.bell) == ("error", True)
    assert over.text.startswith("over budget: today $5.40 of $5.00 (108%)")


# Trust, but verify -----------------------------------------------------------------------------


def test_a_stop_that_did_not_take_is_a_leak_alerted_once(
    bench: Bench, provider: FakeProvider
) -> None:
    bench.poll()
    (result,) = bench.fleet.act_now(Action.STOP, [provider.instances["i-1"]])
    assert result.outcome is Outcome.DONE
    # The provider said it was stopping, but it is still up.
    provider.set_state("i-1", InstanceState.RUNNING)

    reports = [bench.poll(timedelta(seconds=10)) for _ in range(5)]

    assert [len(r.alerts) for r in reports] == [0, 0, 1, 0, 0]
    (alert,) = reports[2].alerts
    assert (alert.severity, alert.bell) == ("error", True)
    assert alert.text == (
        "still billing $3.60/h: i-1 was stopped 3 polls ago but shows running; "
        "check it at its provider"
    )
    assert [f.kind for f in line(reports[1]).flags] == []
    for later in reports[2:]:
        assert [f.kind for f in line(later).flags] == ["leak"]
        assert [leak.key for leak in later.leaks] == [KEY]


def test_a_stop_that_took_is_no_leak(bench: Bench, provider: FakeProvider) -> None:
    bench.poll()
    bench.fleet.act_now(Action.STOP, [provider.instances["i-1"]])
    provider.set_state("i-1", InstanceState.STOPPED)

    reports = [bench.poll(timedelta(seconds=10)) for _ in range(4)]

    assert all(r.alerts == () and r.leaks == () for r in reports)


# Idle stops ------------------------------------------------------------------------------------


def idle_gpu(instance_id: str = "i-1", **kwargs: Any) -> Instance:
    """A running GPU instance whose only GPU does nothing."""
    return rated(instance_id, gpu_usage=(GpuUsage(index=0, utilization_percent=0),), **kwargs)


def idle_for_a_while(bench: Bench, settings: CostsSettings) -> CostReport:
    """Poll every 5 minutes for 15 minutes: the GPU is then idle."""
    bench.restart(settings)
    report = bench.poll()
    for _ in range(3):
        report = bench.poll(timedelta(minutes=5))
    return report


@pytest.fixture
def idle_provider(provider: FakeProvider) -> FakeProvider:
    provider.set(idle_gpu())
    provider.set(idle_gpu("i-2", protected=True))
    return provider


@pytest.mark.usefixtures("idle_provider")
def test_stop_idle_stops_idle_gpus_once_a_budget_is_over(bench: Bench) -> None:
    settings = CostsSettings(daily_budget=Decimal(1), on_budget_exceeded="stop-idle")

    report = idle_for_a_while(bench, settings)

    assert report.budgets[0].level is BudgetLevel.OVER
    assert [f.kind for f in line(report).flags] == ["idle"]
    targets, skipped = bench.costs.idle_stops(report)
    assert [i.key for i in targets] == [KEY]
    assert [(i.key, why.split(" ")[0]) for i, why in skipped] == [("fake:i-2", "protected")]


@pytest.mark.usefixtures("idle_provider")
@pytest.mark.parametrize(
    "settings",
    [
        CostsSettings(daily_budget=Decimal(1)),
        CostsSettings(daily_budget=Decimal(1000), on_budget_exceeded="stop-idle"),
        CostsSettings(on_budget_exceeded="stop-idle"),
    ],
    ids=["notify-only", "budget-not-over", "no-budget"],
)
def test_no_idle_stops_without_stop_idle_and_an_exceeded_budget(
    bench: Bench, settings: CostsSettings
) -> None:
    report = idle_for_a_while(bench, settings)

    assert [f.kind for f in line(report).flags] == ["idle"]
    assert bench.costs.idle_stops(report) == ([], [])


# GPU probes ------------------------------------------------------------------------------------


def test_probes_are_due_for_gpu_machines_without_figures(bench: Bench) -> None:
    instance = rated()

    (due,) = bench.costs.probes_due([instance])
    assert due.key == KEY
    assert bench.costs.probes_due([instance]) == []

    bench.costs.probed(KEY, [GpuUsage(index=0, utilization_percent=0)])
    assert bench.costs.probes_due([instance]) == []
    assert bench.costs.probes_due([idle_gpu()]) == []


# The ledger file -------------------------------------------------------------------------------


def test_a_ledger_path_that_is_a_directory_is_one_line_and_the_report_is_built(
    tmp_path: Path, clock: FakeClock, provider: FakeProvider
) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.mkdir()
    costs = CostService(path=path, clock=clock, tz=UTC)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), clock=clock, costs=costs)

    fleet.poll(deadline=5)

    report = fleet.cost_report
    assert report is not None
    assert report.ledger_error is not None
    assert str(path) in report.ledger_error
    assert "\n" not in report.ledger_error
    assert line(report).burn_usd_per_hour == RATE
    assert line(report).today_usd == 0
    assert costs.ledger_error == report.ledger_error


def test_a_ledger_that_is_not_a_database_is_one_line(
    tmp_path: Path, clock: FakeClock, provider: FakeProvider
) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is no database\n" * 100)
    costs = CostService(path=path, clock=clock, tz=UTC)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), clock=clock, costs=costs)

    fleet.poll(deadline=5)

    report = fleet.cost_report
    assert report is not None
    assert report.ledger_error == (
        f"ledger {path}: not a ledger database or corrupt "
        "(move it away or run costs --reset-ledger)"
    )
    assert [x.key for x in report.lines] == [KEY]
    costs.close()


def test_reset_ledger_forgets_earlier_spend(bench: Bench, provider: FakeProvider) -> None:
    provider.set(rated("i-2"))
    bench.poll()
    bench.poll(timedelta(minutes=10))
    del provider.instances["i-2"]
    assert line(bench.poll(), "fake:i-2").state == "gone"

    bench.costs.reset_ledger()
    read = bench.costs.read(bench.fleet.snapshot())
    bench.restart()
    report = bench.poll(timedelta(minutes=10))

    assert [x.key for x in read.lines] == [KEY]
    assert line(read).month_usd == 0
    assert read.total.month_usd == 0
    # The one still running is proven again from its launch; the gone one is forgotten.
    assert [x.key for x in report.lines] == [KEY]
    assert line(report).month_usd == minutes(80)


def test_a_ledger_whose_directory_cannot_be_made_is_one_line(
    tmp_path: Path, clock: FakeClock, provider: FakeProvider
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be\n", encoding="utf-8")
    costs = CostService(path=blocker / "ledger.sqlite3", clock=clock, tz=UTC)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), clock=clock, costs=costs)

    fleet.poll(deadline=5)

    report = fleet.cost_report
    assert report is not None
    assert report.ledger_error is not None
    assert report.ledger_error.startswith(f"ledger {blocker / 'ledger.sqlite3'}: cannot create")
    assert line(report).burn_usd_per_hour == RATE


def test_a_ledger_error_clears_once_a_write_succeeds(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wait a fifth of a second for the lock instead of ten.
    monkeypatch.setattr("runctl_tui.costs.ledger.BUSY_TIMEOUT_SECONDS", 0.2)
    bench.restart()
    bench.poll()
    other = sqlite3.connect(bench.path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        locked = bench.poll(timedelta(minutes=10))
        other.execute("ROLLBACK")
    finally:
        other.close()

    assert locked.ledger_error == f"ledger {bench.path}: locked by another process for too long"
    assert line(locked).month_usd == minutes(60)
    back = bench.poll(timedelta(minutes=10))
    assert line(back).month_usd == minutes(80)
    assert back.ledger_error is None


def test_monthly_budget_of_a_report_since_a_date_counts_this_month_only(
    bench: Bench, provider: FakeProvider
) -> None:
    # Launched at noon on the last day of February: 12 hours then, 12 hours this month.
    provider.set(rated(launched_at=T0 - timedelta(hours=24)))
    bench.restart(CostsSettings(monthly_budget=Decimal(100)))
    bench.poll()

    read = bench.costs.read(bench.fleet.snapshot(), since=T0 - timedelta(days=20))

    assert line(read).month_usd == RATE * 24
    (budget,) = read.budgets
    assert budget.spent == RATE * 12
    assert budget.level is BudgetLevel.OK


def test_a_machine_first_seen_today_brings_its_earlier_days_at_once(tmp_path: Path) -> None:
    # Noon on the 3rd; the first instance has run since 11:00, the second since noon yesterday.
    clock = FakeClock(T0 + timedelta(days=2))
    now = clock.now
    provider = FakeProvider([rated("i-1", launched_at=now - timedelta(hours=1))])
    bench = Bench(tmp_path, clock, provider)
    try:
        assert bench.poll().total.month_usd == Decimal("3.6")
        # Earlier days are kept between polls; a machine seen for the first time with a launch
        # yesterday reaches back before today, so they are read again on this very poll.
        provider.instances["i-2"] = rated("i-2", launched_at=now - timedelta(hours=24))
        second = bench.poll(timedelta(minutes=10))
        # 1h10m and 12h10m today ($4.20 + $43.80); 24h10m in all for the second ($87.00).
        assert second.total.today_usd == Decimal("48.0")
        assert second.total.month_usd == Decimal("91.2")
    finally:
        bench.close()


def test_a_machine_whose_gpu_load_cannot_be_read_says_why(tmp_path: Path, clock: FakeClock) -> None:
    provider = FakeProvider([rated("i-1")])
    bench = Bench(tmp_path, clock, provider)
    try:
        report = bench.poll()
        due = bench.costs.probes_due(list(bench.fleet.snapshot().instances))
        assert [i.key for i in due] == [KEY]
        bench.costs.probed(KEY, None, "host key of 54.1.2.3 is not trusted yet")

        again = bench.poll(timedelta(seconds=10))

        assert line(report).gpu_note is None
        assert line(again).gpu_note == (
            "GPU load not read over SSH: host key of 54.1.2.3 is not trusted yet"
        )
        # Not idle either way: the check cannot judge it.
        assert not any(f.kind == "idle" for f in line(again).flags)
    finally:
        bench.close()
