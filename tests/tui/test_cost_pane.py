"""The cost pane: waiting state, budgets, totals, flagged lines, the rate-source dialog, stopping
an idle GPU through the fleet's confirmation, alerts announced once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from runctl_tui.costs.idle import IdleState
from runctl_tui.costs.ledger import Gap, Spend
from runctl_tui.costs.report import Alert, CostReport, build_report
from runctl_tui.costs.verify import Leak
from runctl_tui.models import (
    Action,
    FleetSnapshot,
    Instance,
    InstanceState,
    Rate,
    StorageItem,
)
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes.costs import (
    CostsPane,
    CostTable,
    column_widths,
    gaps_summary,
    line_cells,
    notes_text,
    totals_cells,
)
from runctl_tui.tui.screens.confirm import ConfirmAction, ConfirmScreen
from runctl_tui.tui.screens.rate_source import RateSourceScreen, rate_sources

from .conftest import NOW, AppFactory, machine, pod
from .test_dashboard import notices, settle

SIZE = (120, 36)
DAY_START = NOW.replace(hour=0)
MONTH_START = NOW.replace(day=1, hour=0)
PRICE_DATE = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)

HOSTILE = "[bold red]pwned[/] \x1b[31mred\x1b[0m \u202eevil"
"""A name that is markup, an escape sequence and a bidi override at once."""


@pytest.fixture(autouse=True)
def unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialogs take keys as soon as they are painted; test_key_bursts.py covers the guard."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)


def rate(usd: str, source: str = "AWS Price List API", **extra: object) -> Rate:
    """A rate as the rate sources produce them."""
    fields: dict[str, object] = {"region": "us-east-1", "as_of": PRICE_DATE}
    fields.update(extra)
    return Rate(usd_per_hour=Decimal(usd), source=source, **fields)


def priced(
    instance: Instance, usd: str, source: str = "AWS Price List API", **extra: object
) -> Instance:
    """``instance`` with a rate."""
    region = extra.pop("region", instance.location)
    return instance.model_copy(update={"rate": rate(usd, source, region=region, **extra)})


def disk(
    id: str, gb: int, monthly: str, *, attached_to: str | None = None, name: str = ""
) -> StorageItem:
    """A gp3 volume at ``monthly`` dollars a month."""
    per_month = Decimal(monthly)
    return StorageItem(
        provider="aws",
        id=id,
        name=name,
        location="us-east-1",
        volume_type="gp3",
        size_gb=gb,
        iops=3000,
        throughput_mibps=125,
        attached_to=attached_to,
        attached_state=InstanceState.STOPPED if attached_to else None,
        created_at=NOW - timedelta(days=40),
        rate=rate(str(per_month / 730), "AWS Price List API (EBS)"),
        monthly_usd=per_month,
    )


def spend(item: Instance | StorageItem, usd: str, hours: int) -> Spend:
    """What ``item`` cost over ``hours`` by the ledger."""
    hourly = item.rate.usd_per_hour if item.rate is not None else None
    kind = item.kind
    return Spend(
        key=item.key,
        provider=item.provider,
        name=item.name,
        kind=kind,
        location=item.location,
        seconds=Decimal(hours * 3600),
        usd=Decimal(usd),
        usd_per_hour=hourly,
        rate_source="" if item.rate is None else item.rate.describe(),
        unpriced_seconds=Decimal(0),
    )


def fleet() -> tuple[list[Instance], list[StorageItem]]:
    """A p5 left idle, a spot p4d, a g5 priced from the bundled table, a stopped g5, a p4d
    priced from another region, a RunPod pod; an orphaned volume and a stopped one's disk."""
    p5 = priced(
        machine("i-0a11", "llama3-70b-sft", "p5.48xlarge", age=timedelta(days=2, hours=5)),
        "98.32",
    )
    p4d = priced(
        machine("i-0b22", "dpo-sweep-lr3e-6", "p4d.24xlarge", spot="persistent"),
        "32.77",
        upper_bound=True,
    )
    g5 = priced(
        machine("i-0d44", "eval-harness", age=timedelta(minutes=47)),
        "1.006",
        "bundled price table",
        as_of=datetime(2026, 10, 1, tzinfo=UTC),
        note="the AWS Price List API did not answer: AccessDenied (pricing:GetProducts)",
    )
    stopped = priced(machine("i-0e55", "notebook-ana", state=InstanceState.STOPPED), "1.212")
    eu = priced(
        machine("i-0f66", "reward-model-7b", "p4d.24xlarge", region="eu-west-1"),
        "35.61",
        region="us-east-1",
        estimate=True,
    )
    runpod = pod("x7k2m9q4w1e8r3", "llama3-8b-sft", "RTX 4090", 2, "1.38", util=(94, 91))
    runpod = runpod.model_copy(
        update={
            "rate": Rate(
                usd_per_hour=Decimal("1.38"), source="the pod's costPerHr", region="EU-RO-1"
            )
        }
    )
    storage = [
        disk("vol-0orphan1", 500, "40.00", name="old-dataset"),
        disk("vol-0e55", 100, "8.00", attached_to="i-0e55"),
    ]
    return [p5, p4d, g5, stopped, eu, runpod], storage


def sample_report(
    *,
    daily_budget: str | None = "5000",
    monthly_budget: str | None = "60000",
    leak: bool = False,
    ledger_error: str | None = None,
    extra: list[Instance] | None = None,
) -> CostReport:
    """The report of :func:`fleet` at noon, with the ledger's spend and two gaps."""
    instances, storage = fleet()
    instances += extra or []
    gone = Spend(
        key="aws:i-0zz99",
        provider="aws",
        name="sweep-old",
        kind="ec2",
        location="us-east-1",
        seconds=Decimal(12 * 3600),
        usd=Decimal("412.50"),
        usd_per_hour=Decimal("34.375"),
        rate_source="AWS Price List API · us-east-1",
        unpriced_seconds=Decimal(0),
    )
    today = [
        spend(instances[0], "1179.84", 12),
        spend(instances[1], "393.24", 12),
        spend(instances[2], "0.79", 1),
        spend(instances[4], "427.32", 12),
        spend(instances[5], "7.27", 5),
        spend(storage[0], "0.66", 12),
        spend(storage[1], "0.13", 12),
    ]
    month = [
        spend(instances[0], "5112.64", 52),
        spend(instances[1], "6488.46", 198),
        spend(instances[2], "0.79", 1),
        spend(instances[3], "96.96", 80),
        spend(instances[4], "961.47", 27),
        spend(instances[5], "7.27", 5),
        spend(storage[0], "29.59", 540),
        spend(storage[1], "5.92", 540),
        gone,
    ]
    idle = {
        "aws:i-0a11": IdleState(
            key="aws:i-0a11",
            since=NOW - timedelta(minutes=17),
            last_reading=NOW,
            max_percent=0.0,
        )
    }
    leaks = []
    if leak:
        stale = instances[4]
        leaks.append(
            Leak(
                key=stale.key,
                instance=stale,
                action=Action.STOP,
                reported="stopped",
                since=NOW - timedelta(minutes=3),
                polls=3,
                shows="shows running",
            )
        )
    gaps = [
        Gap(
            "aws:i-0b22",
            "dpo-sweep-lr3e-6",
            NOW - timedelta(hours=9),
            NOW - timedelta(hours=4, minutes=48),
            "may have run while runctl-tui was closed; not counted",
        ),
        Gap(
            "aws:i-0f66",
            "reward-model-7b",
            NOW - timedelta(hours=9),
            NOW - timedelta(hours=6),
            "may have run while runctl-tui was closed; not counted",
        ),
    ]
    snapshot = FleetSnapshot(
        instances=tuple(instances), statuses=(), taken_at=NOW, storage=tuple(storage)
    )
    return build_report(
        snapshot,
        now=NOW,
        day_start=DAY_START,
        month_start=MONTH_START,
        today=today,
        month=month,
        idle=idle,
        leaks=leaks,
        gaps=gaps,
        daily_budget=None if daily_budget is None else Decimal(daily_budget),
        monthly_budget=None if monthly_budget is None else Decimal(monthly_budget),
        ledger_path="/home/maria/.local/share/runctl/ledger.sqlite3",
        ledger_error=ledger_error,
    )


def costs_pane(app: RunctlApp) -> CostsPane:
    """The cost pane of the main screen."""
    return app.screen_stack[0].query_one(CostsPane)


async def open_costs(pilot: Pilot[None], report: CostReport | None = None) -> CostsPane:
    """Wait for the first poll, show the cost pane, then ``report`` in it."""
    await settle(pilot)
    await pilot.press("5")
    await settle(pilot)
    pane = costs_pane(pilot.app)  # type: ignore[arg-type]
    if report is not None:
        pane.show_report(report)
        await pilot.pause()
    return pane


def static_text(pane: CostsPane, selector: str) -> str:
    """A Static's text, plain."""
    content = pane.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def table_text(table: CostTable) -> list[str]:
    """Every rendered line of the resource table, plain."""
    return [table.render_line(y).text for y in range(table.size.height)]


# Pure parts --------------------------------------------------------------------------------


def test_lines_flagged_first_and_cells() -> None:
    report = sample_report()
    first = report.lines[0]
    assert first.key == "aws:i-0a11"
    assert line_cells(first) == (
        "llama3-70b-sft · i-0a11",
        "aws ec2",
        "us-east-1",
        "running",
        "$98.32",
        line_cells(first)[5],
        "$1,179.84",
        "$5,112.64",
        "idle 17m, burning $98.32/h",
    )
    flagged = [line.key for line in report.lines if line.flags]
    assert set(flagged) == {"aws:i-0a11", "aws:vol-0orphan1", "aws:vol-0e55"}
    parked = next(line for line in report.lines if line.key == "aws:vol-0e55")
    assert line_cells(parked)[-1].startswith("kept for stopped i-0e55, ")
    orphan = next(line for line in report.lines if line.key == "aws:vol-0orphan1")
    assert line_cells(orphan)[-1] == "orphaned volume, $40.00/month"
    spot = next(line for line in report.lines if line.key == "aws:i-0b22")
    assert line_cells(spot)[4] == "≤$32.77"
    stopped = next(line for line in report.lines if line.key == "aws:i-0e55")
    assert line_cells(stopped)[4] == "-"
    gone = next(line for line in report.lines if line.key == "aws:i-0zz99")
    assert line_cells(gone)[3] == "gone"


def test_hostile_names_are_plain_one_line_text() -> None:
    extra = priced(machine("i-0bad", HOSTILE), "1.00")
    report = sample_report(extra=[extra])
    line = next(line for line in report.lines if line.key == "aws:i-0bad")
    label = line_cells(line)[0]
    assert "\x1b" not in label
    assert "\u202e" not in label
    assert "[bold red]pwned[/]" in label


def test_totals_cells_carry_markers_and_unpriced() -> None:
    report = sample_report()
    cells = [cell.plain for cell in totals_cells(report.total)]
    assert cells[0] == "TOTAL"
    assert cells[1].startswith("≤$")
    assert cells[1].endswith("/h")
    assert cells[6] == ""


def test_gaps_are_summarised_once_per_reason() -> None:
    report = sample_report()
    assert gaps_summary(report.gaps) == [
        "not counted: up to 4h12m of 2 resources: may have run while runctl-tui was closed"
    ]


def test_notes_say_ledger_error_and_age() -> None:
    report = sample_report(ledger_error="database is locked")
    text = notes_text(report, NOW + timedelta(seconds=42)).plain
    assert "⚠ database is locked" in text
    assert "--reset-ledger" in text
    assert "ledger.sqlite3" in text
    assert text.endswith("figures of 12:00:00 UTC, 42s ago")


def test_rate_sources_group_by_source() -> None:
    report = sample_report()
    aws = [line for line in report.lines if line.provider == "aws" and line.billing]
    sources = rate_sources(aws)
    assert sources[0][0].startswith("AWS Price List API · us-east-1")
    bundled = next(row for row in sources if row[0].startswith("bundled price table"))
    assert bundled[1] == 1
    assert bundled[3] == (
        "the AWS Price List API did not answer: AccessDenied (pricing:GetProducts)",
    )


def test_column_widths_fill_the_line() -> None:
    for width in (100, 118, 160):
        for name, flag in ((0, 0), (20, 26), (60, 120)):
            widths = column_widths(width, name, flag)
            shown = [w for w in widths if w]
            assert sum(shown) + len(shown) - 1 == width
    roomy = column_widths(118, 22, 20)
    assert roomy[0] == 22
    assert roomy[-1] >= 20
    tight = column_widths(118, 60, 120)
    assert tight[-1] > tight[0] >= 14
    # At 80 columns WHERE, THIS RUN, THIS MONTH and PROVIDER give way so that the flag can be
    # read; NAME / ID, STATE, $/H and TODAY stay.
    narrow = column_widths(78, 30, 40)
    assert [n for n, w in enumerate(narrow) if not w] == [1, 2, 5, 7]
    assert narrow[-1] >= 24


# Pilot -------------------------------------------------------------------------------------


async def test_waiting_until_the_first_report(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot)
        assert pane.has_class("-waiting")
        assert "Waiting for the first poll" in static_text(pane, "#costs-waiting")
        assert app.focused is pane.table
        pane.show_report(sample_report())
        await pilot.pause()
        assert not pane.has_class("-waiting")
        assert not pane.query_one("#costs-waiting").display


async def test_report_fills_totals_lines_and_budgets(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        report = sample_report()
        pane = await open_costs(pilot, report)
        totals: DataTable[Text] = pane.totals_table
        rows = [[c.plain for c in totals.get_row_at(n)] for n in range(totals.row_count)]
        assert [row[0] for row in rows] == ["aws", "runpod", "TOTAL"]
        assert rows[1][1] == "$1.38/h"
        assert pane.table.lines == report.lines
        shown = table_text(pane.table)
        assert shown[0].startswith("NAME / ID")
        assert "idle 17m, burning $98.32/h" in shown[1]
        budgets = static_text(pane, "#costs-budgets")
        assert "today $" in budgets
        assert "this month $" in budgets
        assert not pane.has_class("-over")


async def test_over_budget_turns_the_pane_red(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report(daily_budget="1000"))
        assert pane.has_class("-over")
        assert "OVER BUDGET" in static_text(pane, "#costs-budgets")
        assert "OVER BUDGET" in str(pane.border_title)
        pane.show_report(sample_report(daily_budget="100000"))
        await pilot.pause()
        assert not pane.has_class("-over")


async def test_enter_shows_the_rate_source(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report())
        assert pane.table.move_to_key("aws:i-0d44")
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RateSourceScreen)
        text = dialog.plain()
        assert "$1.006/h" in text
        assert "bundled price table" in text
        assert "2026-10-01" in text
        assert "us-east-1" in text
        assert "AccessDenied (pricing:GetProducts)" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        assert pane.table.move_to_key("aws:vol-0orphan1")
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RateSourceScreen)
        assert "$40.00" in dialog.plain()
        assert "500 GB gp3 · 3000 IOPS · 125 MiB/s" in dialog.plain()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


async def test_enter_on_totals_lists_its_sources(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report())
        pane.totals_table.focus()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RateSourceScreen)
        text = dialog.plain()
        assert "Totals" in text
        assert "bundled price table" in text
        assert "at most this" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RateSourceScreen)


async def test_stop_key_on_an_idle_gpu_asks_to_stop_it(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report())
        assert pane.table.selected is not None
        assert pane.table.selected.key == "aws:i-0a11"
        await pilot.press("s")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ConfirmAction)
        assert dialog.action is Action.STOP
        assert [t.key for t in dialog.targets] == ["aws:i-0a11"]
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is app.screen_stack[0]


async def test_stop_key_on_a_disk_says_why_not(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report())
        assert pane.table.move_to_key("aws:vol-0orphan1")
        await pilot.press("s")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        assert any("is a disk" in n for n in notices(app))
        assert pane.table.move_to_key("aws:i-0zz99")
        await pilot.press("s")
        await pilot.pause()
        assert any("no longer exists" in n for n in notices(app))


async def test_alerts_are_announced_once_per_report(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    rings: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(None))
    alerts = (
        Alert("error", "over budget: today $2,009.25 of $1,000.00 [/]", bell=True),
        Alert("warning", "budget warning: this month"),
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = costs_pane(app)
        # Not on screen: alerts come with every poll all the same.
        report = dataclasses.replace(sample_report(), alerts=alerts)
        pane.show_report(report)
        pane.show_report(report)
        await pilot.pause()
        said = [n for n in notices(app) if "budget" in n]
        assert said == [alerts[0].text, alerts[1].text]
        assert len(rings) == 1
        pane.show_report(dataclasses.replace(sample_report(), alerts=()))
        await pilot.pause()
        assert len([n for n in notices(app) if "budget" in n]) == 2


async def test_many_lines_render_only_the_rows_in_view(make_app: AppFactory) -> None:
    app = make_app()
    instances, storage = fleet()
    many = [disk(f"vol-{n:05d}", 100, "8.00", attached_to=f"i-{n:05d}") for n in range(3000)]
    snapshot = FleetSnapshot(
        instances=tuple(instances), statuses=(), taken_at=NOW, storage=tuple(storage + many)
    )
    report = build_report(snapshot, now=NOW, day_start=DAY_START, month_start=MONTH_START)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, report)
        table = pane.table
        assert len(table.lines) == len(report.lines)
        assert table.virtual_size.height == len(report.lines) + 1
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor == len(report.lines) - 1
        # Only the rows drawn so far have had their cells worked out.
        assert len(table._cells) < 200


async def test_hostile_names_reach_the_table_and_dialog_literally(make_app: AppFactory) -> None:
    app = make_app()
    extra = priced(machine("i-0bad", HOSTILE), "1.00")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report(extra=[extra]))
        assert pane.table.move_to_key("aws:i-0bad")
        await pilot.pause()
        row = table_text(pane.table)[pane.table.cursor + 1]
        assert "[bold red]pwn" in row
        assert "\x1b" not in row
        await pilot.press("enter")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, RateSourceScreen)
        assert "[bold red]pwned[/]" in dialog.plain()
        assert "\x1b" not in dialog.plain()
        assert "\u202e" not in dialog.plain()


async def test_budget_warning_colours_the_pane(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_costs(pilot, sample_report(daily_budget="2400"))
        assert pane.has_class("-warn")
        assert not pane.has_class("-over")
        assert "⚠ budget" in static_text(pane, "#costs-budgets")
