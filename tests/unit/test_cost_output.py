"""``runctl-tui costs`` output: the text table, the JSON schema and the CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from runctl_tui.costs.ledger import Gap, Spend
from runctl_tui.costs.output import (
    COSTS_SCHEMA,
    CSV_COLUMNS,
    cents,
    csv_costs,
    json_costs,
    safe_cell,
    text_costs,
)
from runctl_tui.costs.report import CostReport, build_report
from runctl_tui.models import FleetSnapshot, InstanceState, ProviderStatus, Rate, StorageItem
from runctl_tui.text import clean
from tests.fakes import make_instance

NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
DAY = datetime(2026, 3, 10, tzinfo=UTC)
MONTH = datetime(2026, 3, 1, tzinfo=UTC)

HOSTILE_NAME = "[@click=app.quit]x[/]\x1b[31mred\nsecond\u202eline"
FORMULA = "=cmd|' /C calc'!A0"


def rate(usd: str) -> Rate:
    """A rate from the bundled table, as of a date, in us-east-1."""
    return Rate(
        usd_per_hour=Decimal(usd),
        source="bundled price table",
        as_of=datetime(2025, 6, 5, tzinfo=UTC),
        region="us-east-1",
    )


def spend(key: str, usd: str, seconds: int = 3600) -> Spend:
    """What the ledger says ``key`` cost."""
    return Spend(
        key=key,
        provider=key.split(":")[0],
        name=f"old {key}",
        kind="ec2",
        location="us-east-1",
        seconds=Decimal(seconds),
        usd=Decimal(usd),
        usd_per_hour=Decimal(1),
        rate_source="bundled price table",
        unpriced_seconds=Decimal(0),
    )


def build(*, names: tuple[str, str] = ("trainer", "eval"), **kwargs: Any) -> CostReport:
    """Two instances, an orphaned volume and a gone resource, with odd-digit money."""
    instances = (
        make_instance("i-1", name=names[0], rate=rate("1.006")),
        make_instance("i-2", name=names[1], rate=rate("32.7726")),
    )
    storage = (
        StorageItem(
            provider="fake",
            id="vol-1",
            location="us-east-1",
            volume_type="gp3",
            size_gb=50,
            created_at=NOW - timedelta(days=2),
            rate=rate(str(Decimal(4) / 730)),
            monthly_usd=Decimal("4.00"),
        ),
    )
    shot = FleetSnapshot(
        instances=instances,
        statuses=(ProviderStatus(provider="fake", ok=True),),
        taken_at=NOW,
        storage=storage,
    )
    today = [
        spend("fake:i-1", "0.3353333333333333333333333333"),
        spend("fake:i-2", "10.92420000000000000000000001"),
    ]
    month = [*today, spend("fake:i-gone", "123.4567891234567891234567891", 7200)]
    kwargs.setdefault("ledger_path", "/data/ledger.sqlite3")
    return build_report(
        shot,
        now=NOW,
        day_start=DAY,
        month_start=MONTH,
        today=today,
        month=month,
        tz=UTC,
        **kwargs,
    )


# Text --------------------------------------------------------------------------------------------


def test_text_has_one_line_per_resource_then_totals() -> None:
    report = build(daily_budget=Decimal(20))

    lines = text_costs(report).splitlines()

    header = lines[0].split()
    assert header[:3] == ["PROVIDER", "ID", "NAME"]
    assert header[-3:] == ["THIS", "MONTH", "FLAG"]
    rows = lines[1 : 1 + len(report.lines)]
    assert len(rows) == 4
    assert {row.split()[1] for row in rows} == {"i-1", "i-2", "vol-1", "i-gone"}
    assert lines[1 + len(report.lines)] == ""
    totals = lines[2 + len(report.lines) :]
    assert totals[0].split()[:2] == ["PROVIDER", "BURN"]
    assert totals[1].split()[0] == "fake"
    assert totals[2].split()[0] == "TOTAL"
    assert totals[3] == "budget: today $11.26 of $20.00 (56%), projected $213.96 [ok]"
    assert totals[-1] == "ledger: /data/ledger.sqlite3"


def test_text_shows_orphaned_and_gone_resources() -> None:
    text = text_costs(build())

    (volume,) = [line for line in text.splitlines() if "vol-1" in line]
    assert volume.endswith("orphaned volume, $4.00/month")
    (gone,) = [line for line in text.splitlines() if "i-gone" in line]
    assert " gone " in gone
    assert "$123.46" in gone


def test_text_escapes_control_characters_and_keeps_markup_literal() -> None:
    text = text_costs(build(names=(HOSTILE_NAME, "fine")))

    lines = text.splitlines()
    assert len(lines) == 1 + 4 + 1 + 3 + 1
    assert all(clean(line) == line for line in lines)
    assert "\x1b" not in text
    assert "\u202e" not in text
    (hostile,) = [line for line in lines if " i-1 " in line]
    assert "[@click=app.quit]x[/]" in hostile


def test_text_with_gaps_and_a_ledger_error() -> None:
    gap = Gap("fake:i-1", "trainer", NOW - timedelta(hours=5), NOW - timedelta(hours=1), "closed")
    report = build(gaps=[gap], ledger_error="ledger /x: read-only\x1b[2J")

    lines = text_costs(report, period="since 2026-01-01").splitlines()

    assert "SINCE 2026-01-01" in lines[0]
    assert lines[-2].startswith("not counted: 1 gap, 4h00m in all")
    assert lines[-1] == "ledger: ledger /x: read-only␛[2J: figures cover this poll only"


def test_text_of_nothing() -> None:
    shot = FleetSnapshot(instances=(), statuses=(), taken_at=NOW)
    report = build_report(shot, now=NOW, day_start=DAY, month_start=MONTH, tz=UTC)

    text = text_costs(report)

    assert text.splitlines()[0] == "No resources and no recorded spend."
    assert "TOTAL" in text


def test_cents_rounds_half_up_for_display_only() -> None:
    assert cents(Decimal("0.005")) == "0.01"
    assert cents(Decimal("10.924200001")) == "10.92"
    assert cents(None) == "-"


# JSON --------------------------------------------------------------------------------------------


def test_json_schema_and_money_round_trips_exactly() -> None:
    report = build(daily_budget=Decimal(20), monthly_budget=Decimal("1000.5"))

    data = json.loads(json.dumps(json_costs(report)))

    assert data["schema"] == COSTS_SCHEMA == "runctl-tui/costs/v1"
    assert data["generated_at"] == NOW.isoformat()
    assert data["period_start"] == MONTH.isoformat()
    by_id = {r["id"]: r for r in data["resources"]}
    assert set(by_id) == {"i-1", "i-2", "vol-1", "i-gone"}
    for line in report.lines:
        out = by_id[line.id]
        assert isinstance(out["today_usd"], str)
        assert Decimal(out["today_usd"]) == line.today_usd
        assert Decimal(out["period_usd"]) == line.month_usd
        assert Decimal(out["period_hours"]) == line.month_hours
        if line.burn_usd_per_hour is not None:
            assert Decimal(out["burn_usd_per_hour"]) == line.burn_usd_per_hour
    total = data["totals"]
    assert total["provider"] == "total"
    for name, exact in [
        ("burn_usd_per_hour", report.total.burn_usd_per_hour),
        ("today_usd", report.total.today_usd),
        ("period_usd", report.total.month_usd),
        ("projected_today_usd", report.total.projected_today_usd),
        ("projected_month_usd", report.total.projected_month_usd),
    ]:
        assert isinstance(total[name], str)
        assert Decimal(total[name]) == exact, name
    assert Decimal(total["period_usd"]) == sum(
        (Decimal(r["period_usd"]) for r in data["resources"]), Decimal(0)
    )
    assert [b["period"] for b in data["budgets"]] == ["today", "this month"]
    assert Decimal(data["budgets"][1]["limit_usd"]) == Decimal("1000.5")
    assert data["ledger"] == {"path": "/data/ledger.sqlite3", "error": None}


def test_json_resource_says_where_its_rate_came_from() -> None:
    data = json_costs(build())

    by_id = {r["id"]: r for r in data["resources"]}
    trainer = by_id["i-1"]
    assert trainer["usd_per_hour"] == "1.006"
    assert trainer["rate_source"] == "bundled price table"
    assert trainer["rate_as_of"] == "2025-06-05T00:00:00+00:00"
    assert trainer["rate_region"] == "us-east-1"
    assert trainer["state"] == "running"
    assert by_id["vol-1"]["monthly_usd"] == "4.00"
    assert by_id["vol-1"]["flags"] == [{"kind": "orphaned", "text": "orphaned volume, $4.00/month"}]
    gone = by_id["i-gone"]
    assert (gone["state"], gone["usd_per_hour"], gone["rate_source"]) == ("gone", None, None)


def test_json_keeps_hostile_names_as_data() -> None:
    data = json_costs(build(names=(HOSTILE_NAME, "eval")))

    (trainer,) = [r for r in data["resources"] if r["id"] == "i-1"]
    assert trainer["name"] == HOSTILE_NAME


# CSV ---------------------------------------------------------------------------------------------


def parse(text: str) -> list[list[str]]:
    """The rows of a CSV document."""
    return list(csv.reader(io.StringIO(text)))


def test_csv_header_rows_and_total() -> None:
    report = build()

    rows = parse(csv_costs(report))

    assert tuple(rows[0]) == CSV_COLUMNS
    body, total = rows[1:-1], rows[-1]
    assert len(body) == len(report.lines)
    column = {name: n for n, name in enumerate(CSV_COLUMNS)}
    assert total[0] == "TOTAL"
    assert Decimal(total[column["period_usd"]]) == report.total.month_usd
    assert Decimal(total[column["today_usd"]]) == report.total.today_usd
    assert Decimal(total[column["usd_per_hour"]]) == report.total.burn_usd_per_hour
    assert sum((Decimal(r[column["period_usd"]]) for r in body), Decimal(0)) == Decimal(
        total[column["period_usd"]]
    )
    (trainer,) = [r for r in body if r[column["id"]] == "i-1"]
    assert trainer[column["usd_per_hour"]] == "1.006"
    assert trainer[column["rate_source"]] == "bundled price table · us-east-1 · 2025-06-05"


@pytest.mark.parametrize(
    "name", [FORMULA, "+SUM(A1:A9)", "-2+3", "@SUM(A1)", '=HYPERLINK("http://x")']
)
def test_csv_neutralises_formulas(name: str) -> None:
    rows = parse(csv_costs(build(names=(name, "eval"))))

    column = CSV_COLUMNS.index("name")
    (trainer,) = [r for r in rows if r[CSV_COLUMNS.index("id")] == "i-1"]
    assert trainer[column] == "'" + name


def test_csv_cells_have_no_control_characters() -> None:
    text = csv_costs(build(names=(HOSTILE_NAME, "eval")))

    rows = parse(text)
    assert len(rows) == 1 + 4 + 1
    assert all(clean(cell) == cell for row in rows for cell in row)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        ("\x1b=x", "␛=x"),
        ("=\nx", "'=␤x"),
    ],
)
def test_safe_cell(text: str, expected: str) -> None:
    assert safe_cell(text) == expected


def test_csv_of_a_stopped_instance_has_no_spend_but_its_rate() -> None:
    shot = FleetSnapshot(
        instances=(make_instance("i-1", state=InstanceState.STOPPED, rate=rate("2")),),
        statuses=(ProviderStatus(provider="fake", ok=True),),
        taken_at=NOW,
    )
    report = build_report(shot, now=NOW, day_start=DAY, month_start=MONTH, tz=UTC)

    rows = parse(csv_costs(report))

    (line,) = rows[1:-1]
    assert line[CSV_COLUMNS.index("state")] == "stopped"
    assert line[CSV_COLUMNS.index("usd_per_hour")] == "2.00"
    assert line[CSV_COLUMNS.index("period_usd")] == "0.00"
    assert rows[-1][CSV_COLUMNS.index("usd_per_hour")] == "0.00"
