"""The cost ledger: intervals, gaps, rates in force, restarts and bad files."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runctl_tui.costs.ledger import (
    GAP_REASON,
    Billable,
    Ledger,
    LedgerError,
    day_start,
    default_path,
    merge_spend,
    month_start,
)

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MONTH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def item(
    key: str = "aws:i-1",
    *,
    billing: bool = True,
    rate: str | None = "3.6",
    since: datetime | None = None,
    name: str = "trainer",
) -> Billable:
    """A billable EC2 instance with the given state, rate and launch time."""
    return Billable(
        key=key,
        provider=key.split(":")[0],
        name=name,
        kind="ec2",
        location="us-east-1",
        billing=billing,
        usd_per_hour=None if rate is None else Decimal(rate),
        rate_source="on-demand list, 2026-01-01",
        since=since,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A fresh ledger whose clock is frozen at ``T0``."""
    return Ledger(tmp_path / "ledger.sqlite3", clock=lambda: T0)


def poll(
    ledger: Ledger, items: list[Billable], start: datetime, count: int, step: int = 10
) -> datetime:
    """Record ``items`` every ``step`` seconds ``count`` times from ``start``; the last time."""
    at = start
    for n in range(count):
        at = start + timedelta(seconds=step * n)
        ledger.record(items, at)
    return at


def test_continuous_polls_make_one_interval_priced_exactly(ledger: Ledger) -> None:
    poll(ledger, [item()], T0, 361)  # one hour of 10 s polls

    assert ledger.totals(*MONTH) == Decimal("3.6")
    [spend] = ledger.spend(*MONTH)
    assert spend.seconds == 3600
    assert spend.usd == Decimal("3.6")
    assert spend.usd_per_hour == Decimal("3.6")
    assert spend.rate_source == "on-demand list, 2026-01-01"
    assert spend.unpriced_seconds == 0
    rows = sqlite3.connect(ledger.path).execute("SELECT count(*) FROM intervals").fetchone()
    assert rows == (1,)


def test_default_clock_is_used_without_at(ledger: Ledger) -> None:
    ledger.record([item(since=T0 - HOUR)])

    assert ledger.totals(*MONTH) == Decimal("3.6")


def test_first_sight_with_since_backfills_from_launch(ledger: Ledger) -> None:
    ledger.record([item(since=T0 - 2 * HOUR)], T0)

    assert ledger.totals(*MONTH) == Decimal("7.2")
    assert ledger.gaps(*MONTH) == []


def test_first_sight_without_since_counts_from_now(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    ledger.record([item()], T0 + timedelta(seconds=60))

    assert ledger.totals(*MONTH) == Decimal("0.06")


def test_gap_with_unchanged_launch_time_is_proven(ledger: Ledger) -> None:
    launch = T0 - HOUR
    ledger.record([item(since=launch)], T0)
    ledger.record([item(since=launch)], T0 + 3 * HOUR)

    assert ledger.totals(*MONTH) == Decimal("14.4")
    assert ledger.gaps(*MONTH) == []


def test_gap_after_a_restart_counts_from_the_new_launch_and_notes_the_rest(ledger: Ledger) -> None:
    ledger.record([item(since=T0 - HOUR)], T0)
    relaunch = T0 + 2 * HOUR
    ledger.record([item(since=relaunch)], T0 + 3 * HOUR)

    assert ledger.totals(*MONTH) == Decimal("7.2")  # [T0-1h, T0] + [T0+2h, T0+3h]
    [gap] = ledger.gaps(*MONTH)
    assert (gap.key, gap.name, gap.start, gap.end) == ("aws:i-1", "trainer", T0, relaunch)
    assert gap.reason == GAP_REASON


def test_gap_without_since_is_noted_and_not_counted(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    ledger.record([item()], T0 + HOUR)

    assert ledger.totals(*MONTH) == 0
    [gap] = ledger.gaps(*MONTH)
    assert (gap.start, gap.end) == (T0, T0 + HOUR)


def test_short_pause_without_since_is_continuous(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    ledger.record([item()], T0 + timedelta(minutes=5))

    assert ledger.totals(*MONTH) == Decimal("0.3")


def test_item_gone_ends_at_its_last_sample(ledger: Ledger) -> None:
    poll(ledger, [item(), item("aws:i-2")], T0, 7)  # 60 s
    poll(ledger, [item("aws:i-2")], T0 + timedelta(seconds=70), 6)  # i-1 gone

    by_key = {s.key: s.seconds for s in ledger.spend(*MONTH)}
    assert by_key == {"aws:i-1": 60, "aws:i-2": 120}


def test_item_no_longer_billing_stops_accruing(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    ledger.record([item()], T0 + timedelta(seconds=60))
    ledger.record([item(billing=False)], T0 + timedelta(seconds=70))
    ledger.record([item(billing=False)], T0 + timedelta(seconds=200))

    assert ledger.totals(*MONTH) == Decimal("0.06")


def test_stopped_then_started_counts_from_the_new_launch(ledger: Ledger) -> None:
    ledger.record([item(since=T0)], T0 + timedelta(seconds=60))
    ledger.record([item(billing=False)], T0 + timedelta(seconds=70))
    start = T0 + timedelta(seconds=100)
    ledger.record([item(since=start)], T0 + timedelta(seconds=160))

    assert ledger.totals(*MONTH) == Decimal("0.12")  # 60 s + 60 s
    assert ledger.gaps(*MONTH) == []


def test_started_again_without_new_launch_time_counts_from_now(ledger: Ledger) -> None:
    ledger.record([item(since=T0)], T0 + timedelta(seconds=60))
    ledger.record([item(billing=False)], T0 + timedelta(seconds=70))
    ledger.record([item(since=T0)], T0 + timedelta(seconds=80))
    ledger.record([item(since=T0)], T0 + timedelta(seconds=90))

    assert ledger.totals(*MONTH) == Decimal("0.07")  # 60 s + 10 s


def test_rate_change_keeps_each_part_at_its_own_rate(ledger: Ledger) -> None:
    ledger.record([item(rate="3.6", since=T0)], T0 + HOUR)
    ledger.record([item(rate="7.2", since=T0)], T0 + HOUR + timedelta(seconds=10))
    ledger.record([item(rate="7.2", since=T0)], T0 + 2 * HOUR + timedelta(seconds=10))

    # 1 h 10 s at the old rate (up to the sample that saw the change), then 1 h at the new.
    assert ledger.totals(*MONTH) == Decimal("3.61") + Decimal("7.2")
    [spend] = ledger.spend(*MONTH)
    assert spend.usd_per_hour == Decimal("7.2")


def test_unknown_rate_tracks_time_without_cost(ledger: Ledger) -> None:
    ledger.record([item(rate=None, since=T0)], T0 + HOUR)

    assert ledger.totals(*MONTH) == 0
    [spend] = ledger.spend(*MONTH)
    assert spend.seconds == 3600
    assert spend.unpriced_seconds == 3600
    assert spend.usd == 0
    assert spend.usd_per_hour is None


def test_spend_clips_to_the_range(ledger: Ledger) -> None:
    ledger.record([item(since=T0)], T0 + 3 * HOUR)

    assert ledger.totals(T0 + HOUR, T0 + 2 * HOUR) == Decimal("3.6")
    assert ledger.totals(T0 - HOUR, T0) == 0
    assert ledger.spend(T0 + 4 * HOUR, T0 + 5 * HOUR) == []


def test_stale_sample_never_double_counts(ledger: Ledger) -> None:
    ledger.record([item(since=T0)], T0 + HOUR)
    ledger.record([item(since=T0)], T0 + timedelta(minutes=30))
    ledger.record([item(since=T0)], T0 + HOUR)

    assert ledger.totals(*MONTH) == Decimal("3.6")


def test_a_duplicate_key_in_one_poll_counts_once(ledger: Ledger) -> None:
    ledger.record([item(since=T0), item(since=T0)], T0 + HOUR)

    assert ledger.totals(*MONTH) == Decimal("3.6")


def test_since_in_the_future_is_clamped(ledger: Ledger) -> None:
    ledger.record([item(since=T0 + HOUR)], T0)
    ledger.record([item(since=T0 + HOUR)], T0 + timedelta(seconds=10))

    assert ledger.totals(*MONTH) == Decimal("0.01")


def test_rename_is_shown(ledger: Ledger) -> None:
    ledger.record([item(since=T0)], T0 + HOUR)
    ledger.record([item(since=T0, name="renamed")], T0 + HOUR + timedelta(seconds=10))

    [spend] = ledger.spend(*MONTH)
    assert spend.name == "renamed"


def test_restart_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = Ledger(path)
    poll(first, [item(since=T0)], T0, 7)
    first.close()
    second = Ledger(path)
    poll(second, [item(since=T0)], T0 + timedelta(seconds=70), 6)

    assert second.totals(*MONTH) == Decimal("0.12")


def test_two_writers_never_double_count(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    tui, status = Ledger(path), Ledger(path)
    for n in range(60):
        writer = status if n % 7 == 3 else tui
        writer.record([item(since=T0)], T0 + timedelta(seconds=10 * n))
    status.record([item(since=T0)], T0 + timedelta(seconds=300))  # late and stale

    assert tui.totals(*MONTH) == Decimal("0.59")
    assert status.totals(*MONTH) == Decimal("0.59")


def test_concurrent_threads_on_two_connections(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledgers = [Ledger(path), Ledger(path)]
    fleet = [item(f"aws:i-{n}", since=T0) for n in range(50)]

    def run(ledger: Ledger, offset: int) -> None:
        for n in range(offset, 200, 2):
            ledger.record(fleet, T0 + timedelta(seconds=10 * n))

    threads = [threading.Thread(target=run, args=(ledger, i)) for i, ledger in enumerate(ledgers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Samples may commit out of order; whatever was recorded last is at most 1990 s.
    total = ledgers[0].totals(*MONTH)
    assert total <= 50 * Decimal("1.99")
    assert total >= 50 * Decimal("1.98")


def test_reset_forgets_everything(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    ledger.record([item()], T0 + HOUR)
    ledger.reset()

    assert ledger.totals(*MONTH) == 0
    assert ledger.spend(*MONTH) == []
    assert ledger.gaps(*MONTH) == []
    ledger.record([item(since=T0)], T0 + HOUR)
    assert ledger.totals(*MONTH) == Decimal("3.6")


def test_directories_are_created(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a" / "b" / "ledger.sqlite3")

    assert ledger.path.exists()


def test_corrupt_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(LedgerError, match=str(path)) as raised:
        Ledger(path)
    assert "\n" not in str(raised.value)


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()

    with pytest.raises(LedgerError, match="not a runctl-tui ledger"):
        Ledger(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()

    with pytest.raises(LedgerError, match="newer"):
        Ledger(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_directory_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(LedgerError, match=str(locked)):
            Ledger(locked / "sub" / "ledger.sqlite3")
    finally:
        locked.chmod(0o700)


def test_directory_in_the_way_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(LedgerError, match=str(blocker)):
        Ledger(blocker / "ledger.sqlite3")


def test_locked_database_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    monkeypatch.setattr("runctl_tui.costs.ledger.BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        ledger._db.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(LedgerError, match=f"{path}.*locked"):
            ledger.record([item()], T0)
    finally:
        holder.execute("ROLLBACK")
    ledger.record([item(since=T0)], T0 + HOUR)
    assert ledger.totals(*MONTH) == Decimal("3.6")


def test_naive_datetime_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="naive"):
        ledger.record([item()], datetime(2026, 1, 1))


def test_default_path_is_in_the_data_directory(tmp_path: Path) -> None:
    assert default_path().name == "ledger.sqlite3"
    assert str(tmp_path) in str(default_path())  # under the test's XDG_DATA_HOME


def test_day_and_month_start_in_a_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    now = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)  # 00:30 on the 30th in Paris (summer time)

    assert day_start(now, paris) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert month_start(now, paris) == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # winter time
    fixed = timezone(timedelta(hours=-5))
    assert day_start(now, fixed) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)


def test_day_start_in_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        now = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)
        assert day_start(now) == datetime(2026, 3, 29, tzinfo=UTC)
        assert month_start(now) == datetime(2026, 3, 1, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_merged_spend_of_adjacent_ranges_is_the_spend_of_both(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    ledger.record([item()], T0 + timedelta(minutes=4))
    ledger.record([item()], T0 + timedelta(minutes=8))
    middle = T0 + timedelta(minutes=3)
    end = T0 + timedelta(minutes=8)

    merged = merge_spend(ledger.spend(T0, middle), ledger.spend(middle, end))

    assert merged == ledger.spend(T0, end)


def test_writes_say_how_far_back_they_reached(ledger: Ledger) -> None:
    ledger.record([item()], T0)
    # The first write reads what is there: anything may have changed before it.
    assert ledger.changed_since_asked() == datetime(1970, 1, 1, tzinfo=UTC)
    assert ledger.changed_since_asked() is None
    ledger.record([item()], T0 + timedelta(minutes=1))
    # Extending an interval changes spend from its last sample on.
    assert ledger.changed_since_asked() == T0
    ledger.record([item(), item("aws:i-2", since=T0 - 5 * HOUR)], T0 + timedelta(minutes=2))
    # A machine seen for the first time is counted from its launch.
    assert ledger.changed_since_asked() == T0 - 5 * HOUR


def test_spend_since_each_resource_s_own_start(ledger: Ledger) -> None:
    ledger.record([item(rate="3.6"), item("aws:i-2", rate="7.2")], T0)
    ledger.record([item(rate="3.6"), item("aws:i-2", rate="7.2")], T0 + timedelta(minutes=4))
    # The spot price of i-1 moves: each part at its own rate.
    ledger.record([item(rate="7.2"), item("aws:i-2", rate="7.2")], T0 + timedelta(minutes=8))
    end = T0 + timedelta(minutes=8)

    spent = ledger.spend_since({"aws:i-1": T0, "aws:i-2": T0 + timedelta(minutes=4)}, end)

    # i-1: 8 minutes at $3.60/h (the new price starts at the sample that saw it); i-2: 4 at $7.20.
    assert spent == {"aws:i-1": Decimal("0.48"), "aws:i-2": Decimal("0.48")}
    assert ledger.spend_since({}, end) == {}
    assert ledger.spend_since({"aws:unknown": T0}, end) == {}
