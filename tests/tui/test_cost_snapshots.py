"""Snapshots of the cost pane at 120x36: normal, over budget, an idle GPU's flag, orphaned
volumes, and the rate-source dialog."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta

from textual.pilot import Pilot

from runctl_tui.costs.ledger import Gap
from runctl_tui.costs.report import CostReport, build_report
from runctl_tui.models import FleetSnapshot

from .conftest import NOW, AppFactory
from .test_cost_pane import DAY_START, MONTH_START, SIZE, costs_pane, disk, fleet, sample_report
from .test_dashboard import settle

SnapCompare = Callable[..., bool]


def showing(
    report: CostReport | None, *keys: str, key: str | None = None
) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Wait for the first poll, show the cost pane with ``report``, put the cursor on ``key``,
    press ``keys``."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        pane = costs_pane(pilot.app)  # type: ignore[arg-type]
        if report is not None:
            pane.show_report(report)
        await pilot.pause()
        if key is not None:
            pane.table.move_to_key(key)
        if keys:
            await pilot.press(*keys)
        await settle(pilot)

    return run_before


def test_costs_waiting(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=showing(None))


def test_costs_normal(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=showing(sample_report()))


def test_costs_over_budget(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    report = sample_report(daily_budget="1500", monthly_budget="15000", leak=True)
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=showing(report))


def test_costs_idle_flag_rate_source(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    assert snap_compare(
        make_app(),
        terminal_size=SIZE,
        run_before=showing(sample_report(), "enter", key="aws:i-0a11"),
    )


def test_costs_orphaned_volumes(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    instances, storage = fleet()
    orphans = [
        disk("vol-0a1b2c3d4e", 2000, "160.00", name="imagenet-shards"),
        disk("vol-0f9e8d7c6b", 750, "60.00", name="[red]ckpt-backup[/]"),
        disk("vol-05a5a5a5a5", 50, "4.00"),
    ]
    snapshot = FleetSnapshot(
        instances=tuple(instances[3:4]),
        statuses=(),
        taken_at=NOW,
        storage=tuple([*storage, *orphans]),
    )
    report = build_report(
        snapshot,
        now=NOW,
        day_start=DAY_START,
        month_start=MONTH_START,
        gaps=[
            Gap(
                "aws:vol-0a1b2c3d4e",
                "imagenet-shards",
                NOW - timedelta(days=2),
                NOW - timedelta(days=1, hours=20),
                "may have run while runctl-tui was closed; not counted",
            )
        ],
        ledger_error="ledger /home/maria/.local/share/runctl/ledger.sqlite3: disk I/O error",
    )
    report = dataclasses.replace(
        report, ledger_path="/home/maria/.local/share/runctl/ledger.sqlite3"
    )
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=showing(report))
