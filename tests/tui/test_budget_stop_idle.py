"""An exceeded budget with ``on_budget_exceeded = "stop-idle"`` stops idle GPU machines through
the fleet's checks and journal; without the setting it only says so."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from textual.pilot import Pilot

from runctl_tui.audit import Journal
from runctl_tui.config import CostsSettings, Settings
from runctl_tui.models import GpuUsage, InstanceState
from runctl_tui.services.costs import CostService
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.main import MainScreen
from tests.fakes import FakeClock, FakeProvider, make_instance

IDLE = (GpuUsage(index=0, name="A10G", utilization_percent=0),)
BUSY = (GpuUsage(index=0, name="A10G", utilization_percent=97),)


def fleet_of(tmp_path: Path, clock: FakeClock, **costs: object) -> tuple[Fleet, FakeProvider]:
    provider = FakeProvider(
        [
            make_instance(
                "i-idle", provider="aws", name="forgotten", gpu_usage=IDLE, launched_at=clock.now
            ),
            make_instance(
                "i-busy", provider="aws", name="training", gpu_usage=BUSY, launched_at=clock.now
            ),
            make_instance(
                "i-guard",
                provider="aws",
                name="kept",
                gpu_usage=IDLE,
                protected=True,
                launched_at=clock.now,
            ),
        ],
        name="aws",
    )
    settings = CostsSettings(daily_budget=Decimal("0.01"), idle_minutes=1, **costs)
    service = CostService(settings, path=tmp_path / "ledger.sqlite3", clock=clock)
    fleet = Fleet(
        [provider], journal=Journal(tmp_path / "journal.jsonl"), clock=clock, costs=service
    )
    return fleet, provider


async def poll_minutes(pilot: Pilot[None], clock: FakeClock, screen: MainScreen, n: int) -> None:
    for _ in range(n):
        clock.advance(timedelta(seconds=40))
        before = screen.poller.polls_finished
        screen.poll_now()
        for _ in range(100):
            await pilot.pause(0.02)
            if screen.poller.polls_finished > before:
                break
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def journal_lines(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_an_exceeded_budget_stops_only_the_idle_unprotected_machine(tmp_path: Path) -> None:
    clock = FakeClock()
    fleet, provider = fleet_of(tmp_path, clock, on_budget_exceeded="stop-idle")
    app = RunctlApp(Settings(poll_seconds=3600), fleet, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen_stack[0]
        assert isinstance(screen, MainScreen)
        await poll_minutes(pilot, clock, screen, 4)

        assert provider.instances["i-idle"].state in {InstanceState.STOPPING, InstanceState.STOPPED}
        assert provider.instances["i-busy"].state is InstanceState.RUNNING
        assert provider.instances["i-guard"].state is InstanceState.RUNNING
        entries = [e for e in journal_lines(tmp_path) if e.get("id") == "i-idle"]
        assert [e["result"] for e in entries] == ["attempted", "done"]
        assert "stop-idle" in str(entries[0]["detail"])
        # Once: later polls do not try again.
        await poll_minutes(pilot, clock, screen, 2)
        again = [e for e in journal_lines(tmp_path) if e.get("id") == "i-idle"]
        assert len(again) == 2


async def test_without_stop_idle_an_exceeded_budget_only_alerts(tmp_path: Path) -> None:
    clock = FakeClock()
    fleet, provider = fleet_of(tmp_path, clock)
    app = RunctlApp(Settings(poll_seconds=3600), fleet, clock=clock)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen_stack[0]
        assert isinstance(screen, MainScreen)
        await poll_minutes(pilot, clock, screen, 4)

        assert provider.instances["i-idle"].state is InstanceState.RUNNING
        assert journal_lines(tmp_path) == []
        report = fleet.cost_report
        assert report is not None
        assert [b.level.value for b in report.budgets] == ["over"]
        idle = next(line for line in report.lines if line.id == "i-idle")
        assert [f.kind for f in idle.flags] == ["idle"]
