"""Pure presentation: table cells, order, the text report and the JSON schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from runctl_tui.models import (
    FleetSnapshot,
    GpuSpec,
    Instance,
    InstanceState,
    ProviderStatus,
)
from runctl_tui.text import clean
from runctl_tui.views import (
    COLUMNS,
    STATUS_SCHEMA,
    burn_summary,
    column_order,
    json_report,
    market_label,
    parse_filter,
    row_cells,
    sort_key,
    status_line,
    text_report,
)
from tests.fakes import T0, make_instance

H100 = GpuSpec(count=8, model="H100", memory_mib=81920)


def cells(instance: Instance) -> dict[str, str]:
    return dict(zip(COLUMNS, row_cells(instance, T0), strict=True))


def test_row_cells_of_a_running_protected_gpu_instance() -> None:
    instance = make_instance(
        "i-0a11",
        name="llama3-70b-sft",
        zone="us-east-1a",
        instance_type="p5.48xlarge",
        gpus=H100,
        protected=True,
        launched_at=T0 - timedelta(days=2, hours=5),
        public_ip="54.210.1.10",
    )

    assert row_cells(instance, T0) == (
        "P",
        "fake",
        "llama3-70b-sft",
        "i-0a11",
        "us-east-1a",
        "p5.48xlarge",
        "8x H100 80G",
        "on-demand",
        "running",
        "2d05h",
        "54.210.1.10",
        "$55.04",
        "$2,917.12",
    )
    assert len(COLUMNS) == len(row_cells(instance, T0))


def test_row_cells_placeholders() -> None:
    instance = make_instance(
        "i-1",
        name="",
        zone=None,
        region="eu-west-1",
        instance_type="x1.odd",
        gpus=None,
        state=InstanceState.STOPPED,
    )

    row = cells(instance)

    assert row[""] == ""
    assert row["NAME"] == "-"
    assert row["WHERE"] == "eu-west-1"
    assert row["GPUS"] == "-"
    assert row["STATE"] == "stopped"
    assert row["UPTIME"] == "-"
    assert row["ADDRESS"] == "-"
    # A stopped instance pays for no compute, priced or not.
    assert row["$/H"] == "-"
    assert cells(instance.model_copy(update={"state": InstanceState.RUNNING}))["$/H"] == "?"


def test_row_cells_small_price_keeps_three_places() -> None:
    assert cells(make_instance(instance_type="t3.micro"))["$/H"] == "$0.010"


@pytest.mark.parametrize(
    ("spot", "label"),
    [(None, "on-demand"), ("one-time", "spot one-time"), ("persistent", "spot persist")],
)
def test_market_label(spot: str | None, label: str) -> None:
    assert market_label(make_instance(spot=spot)) == label
    assert cells(make_instance(spot=spot))["MARKET"] == label


def test_market_label_of_spot_with_unknown_request() -> None:
    assert market_label(make_instance(spot="", lifecycle="spot")) == "spot"


def test_sort_key_orders_provider_region_live_then_name() -> None:
    fleet = [
        make_instance("i-9", name="zeta", region="us-east-1"),
        make_instance("i-8", name="alpha", region="us-east-1", state=InstanceState.STOPPED),
        make_instance("i-7", name="", region="us-east-1"),
        make_instance("i-6", name="beta", region="us-east-1", state=InstanceState.PENDING),
        make_instance("i-5", name="alpha", region="eu-west-1"),
        make_instance("i-4", name="alpha", region="us-east-1", state=InstanceState.TERMINATED),
        make_instance("i-3", name="aaa", provider="b-provider", region="ap-south-1"),
    ]

    ordered = [i.id for i in sorted(fleet, key=sort_key)]

    # Stopped and terminated share the second group, ordered by name, then id.
    assert ordered == ["i-3", "i-5", "i-6", "i-9", "i-7", "i-4", "i-8"]


def test_sort_key_breaks_ties_by_id() -> None:
    fleet = [make_instance("i-2", name="same"), make_instance("i-1", name="same")]

    assert [i.id for i in sorted(fleet, key=sort_key)] == ["i-1", "i-2"]


def test_status_lines() -> None:
    now = T0 + timedelta(minutes=3)
    ok = ProviderStatus(provider="aws", ok=True, refreshed_at=T0, instance_count=4)
    stale = ProviderStatus(
        provider="aws", ok=False, refreshed_at=T0, error="AWS SSO session expired", hint="run it"
    )
    never = ProviderStatus(provider="aws", ok=False, error="no AWS credentials found")

    assert status_line(ok, now) == "aws: 4 instances, refreshed 3m ago"
    assert status_line(stale, now) == "aws: AWS SSO session expired (data 3m old). Fix: run it"
    assert status_line(never, now) == "aws: no AWS credentials found (no data yet)"


def test_burn_summary() -> None:
    fleet = [
        make_instance("i-1", instance_type="p5.48xlarge"),
        make_instance("i-2", instance_type="g5.xlarge"),
        make_instance("i-3", instance_type="g5.xlarge", state=InstanceState.STOPPED),
        make_instance("i-4", instance_type="unknown.type"),
    ]

    assert burn_summary(fleet) == "3 running · $56.05/h (+1 unpriced)"
    assert burn_summary([]) == "0 running · $0.00/h"


def snapshot(*statuses: ProviderStatus) -> FleetSnapshot:
    instances = (
        make_instance(
            "i-2",
            provider="aws",
            name="trainer",
            instance_type="p5.48xlarge",
            gpus=H100,
            zone="us-east-1a",
            launched_at=T0 - timedelta(hours=2),
            public_ip="54.1.2.3",
            private_ip="10.0.0.2",
            tags={"Name": "trainer", "owner": "maria"},
            protected=True,
        ),
        make_instance(
            "i-1",
            provider="aws",
            name="notebook",
            state=InstanceState.STOPPED,
            spot="persistent",
            gpus=None,
        ),
    )
    return FleetSnapshot(
        instances=instances,
        statuses=statuses
        or (ProviderStatus(provider="aws", ok=True, refreshed_at=T0, instance_count=2),),
        taken_at=T0,
    )


def test_json_report_schema() -> None:
    report = json_report(snapshot())
    # It is what `status --json` prints: it must survive json.dumps unchanged.
    report = json.loads(json.dumps(report))

    assert set(report) == {"schema", "generated_at", "ok", "providers", "instances", "totals"}
    assert report["schema"] == STATUS_SCHEMA == "runctl-tui/status/v1"
    assert datetime.fromisoformat(report["generated_at"]) == T0
    assert report["ok"] is True
    assert report["providers"] == [
        {
            "name": "aws",
            "ok": True,
            "configured": True,
            "refreshed_at": T0.isoformat(),
            "error": None,
            "hint": None,
            "warnings": [],
            "identity": None,
            "instances": 2,
        }
    ]
    trainer, notebook = report["instances"]
    # Fields added since v1 was published; every v1 field keeps its name and meaning.
    assert trainer.pop("kind") == "ec2"
    assert trainer.pop("gpu_usage") == []
    assert trainer.pop("address") == "54.1.2.3"
    assert trainer.pop("rate_source") == "bundled price table"
    assert trainer.pop("rate_as_of") == "2025-06-05T00:00:00+00:00"
    assert trainer.pop("rate_region") == "us-east-1"
    assert trainer.pop("running_period_usd") is None
    assert trainer.pop("details")["instance_type"] == "p5.48xlarge"
    assert trainer == {
        "provider": "aws",
        "id": "i-2",
        "name": "trainer",
        "region": "us-east-1",
        "zone": "us-east-1a",
        "instance_type": "p5.48xlarge",
        "gpus": {"count": 8, "model": "H100", "memory_mib": 81920},
        "instance_store_gb": 0,
        "type_facts_missing": None,
        "lifecycle": "on-demand",
        "spot_request_type": None,
        "spot_request_id": None,
        "state": "running",
        "launched_at": (T0 - timedelta(hours=2)).isoformat(),
        "uptime_seconds": 7200,
        "public_ip": "54.1.2.3",
        "private_ip": "10.0.0.2",
        "protected": True,
        "hourly_usd": "55.04",
        "list_hourly_usd": "55.04",
        "price_basis": "bundled price table · us-east-1 · 2025-06-05",
        "tags": {"Name": "trainer", "owner": "maria"},
    }
    assert notebook["id"] == "i-1"
    assert notebook["lifecycle"] == "spot"
    assert notebook["spot_request_type"] == "persistent"
    assert notebook["gpus"] is None
    assert notebook["uptime_seconds"] is None
    # Stopped: it costs no compute now; what it would cost running is the list rate.
    assert notebook["hourly_usd"] == "0.00"
    assert notebook["list_hourly_usd"] == "1.006"
    assert report["totals"] == {
        "instances": 2,
        "running": 1,
        "hourly_usd": "55.04",
        "unpriced_running": 0,
        "prices_as_of": "2025-06-05",
    }


def test_json_report_money_is_exact_decimal_strings() -> None:
    fleet = FleetSnapshot(
        instances=tuple(make_instance(f"i-{n}", instance_type="t3.micro") for n in range(3)),
        statuses=(),
        taken_at=T0,
    )

    report: dict[str, Any] = json_report(fleet)

    assert all(i["hourly_usd"] == "0.0104" for i in report["instances"])
    # Three float 0.0104s would not sum to this exactly.
    assert report["totals"]["hourly_usd"] == "0.0312"
    assert Decimal(report["totals"]["hourly_usd"]) == Decimal("0.0312")


def test_json_report_failed_provider() -> None:
    failed = ProviderStatus(
        provider="aws", ok=False, error="no AWS credentials found", hint="run `aws configure`"
    )

    report = json_report(snapshot(failed))

    assert report["ok"] is False
    assert report["providers"][0]["ok"] is False
    assert report["providers"][0]["refreshed_at"] is None
    assert report["providers"][0]["error"] == "no AWS credentials found"
    assert report["providers"][0]["hint"] == "run `aws configure`"


def test_text_report() -> None:
    text = text_report(snapshot())
    lines = text.splitlines()

    assert lines[0].split() == [
        "PROVIDER", "REGION", "NAME", "ID", "WHERE", "TYPE", "GPUS", "MARKET", "STATE",
        "UPTIME", "ADDRESS", "$/H", "COST", "PROTECTED",
    ]  # fmt: skip
    # Running before stopped; columns line up under their headers.
    assert lines[1].split()[:4] == ["aws", "us-east-1", "trainer", "i-2"]
    assert lines[1].rstrip().endswith("yes")
    assert lines[2].split()[:4] == ["aws", "us-east-1", "notebook", "i-1"]
    assert lines[0].index(" ID ") + 1 == lines[1].index("i-2") == lines[2].index("i-1")
    assert "aws: 2 instances, refreshed 0s ago" in lines
    assert lines[-1] == "total: 1 running · $55.04/h"


def test_text_report_of_an_empty_failed_fleet() -> None:
    failed = ProviderStatus(provider="aws", ok=False, error="no AWS credentials found", hint="fix")
    empty = FleetSnapshot(
        instances=(), statuses=(failed,), taken_at=datetime(2026, 1, 1, tzinfo=UTC)
    )

    lines = text_report(empty).splitlines()

    assert lines[0].startswith("PROVIDER  REGION  NAME")
    assert "aws: no AWS credentials found (no data yet). Fix: fix" in lines


# Hostile text ------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "[/]",
    "[@click=app.quit]quit[/]",
    "[link=https://evil.example]ok[/link]",
    "two\nlines",
    "\x1b]0;pwned\x07title",
    "\x1b[2J\x1b[Hclear",
    "c1\x9bcsi",
    "evil\u202etxt",
    "zero\u200bwidth",
    "x" * 10_000,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_row_cells_are_one_visible_line(name: str) -> None:
    instance = make_instance("i-1", name=name, tags={"Name": name, name: name})

    for cell in row_cells(instance, T0):
        assert clean(cell) == cell
        assert len(cell) <= 200


def test_text_report_prints_each_instance_on_one_escaped_line() -> None:
    fleet = FleetSnapshot(
        instances=tuple(
            make_instance(f"i-{n}", name=name, provider="aws")
            for n, name in enumerate(HOSTILE_NAMES)
        ),
        statuses=(
            ProviderStatus(provider="aws", ok=False, error="boom\n\x1b[31mred", hint="[b]fix[/b]"),
        ),
        taken_at=T0,
    )

    report = text_report(fleet)

    lines = report.splitlines()
    # Header, one line per instance, a blank, the provider line and the total.
    assert len(lines) == 1 + len(HOSTILE_NAMES) + 3
    assert all(clean(line) == line for line in lines)
    assert "aws: boom␤␛[31mred" in report
    assert "[b]fix[/b]" in report
    assert "two␤lines" in report
    assert ("x" * 39 + "…") in report


def test_json_report_keeps_the_raw_values() -> None:
    name = "two\nlines \u202e [/]"
    fleet = FleetSnapshot(
        instances=(make_instance("i-1", name=name, provider="aws", tags={"k\x1b": "v\n"}),),
        statuses=(),
        taken_at=T0,
    )

    text = json.dumps(json_report(fleet))

    (instance,) = json.loads(text)["instances"]
    assert instance["name"] == name
    assert instance["tags"] == {"k\x1b": "v\n"}


def test_stopped_instances_cost_nothing_now_but_keep_their_list_rate() -> None:
    fleet = FleetSnapshot(
        instances=(
            make_instance("i-1", instance_type="p5.48xlarge", state=InstanceState.STOPPED),
            make_instance("i-2", instance_type="p5.48xlarge", state=InstanceState.TERMINATED),
        ),
        statuses=(),
        taken_at=T0,
    )

    report = json_report(fleet)

    assert [i["hourly_usd"] for i in report["instances"]] == ["0.00", "0.00"]
    assert [i["list_hourly_usd"] for i in report["instances"]] == ["55.04", "55.04"]
    assert report["totals"]["hourly_usd"] == "0.00"


def test_rate_cell_marks_estimates_and_spot_upper_bounds() -> None:
    assert cells(make_instance(instance_type="p5.48xlarge"))["$/H"] == "$55.04"
    elsewhere = make_instance(instance_type="p5.48xlarge", region="ap-south-1")
    assert cells(elsewhere)["$/H"] == "~$55.04"
    spot = make_instance(instance_type="p5.48xlarge", spot="persistent")
    assert cells(spot)["$/H"] == "≤$55.04"


def test_unknown_type_facts_show_as_unknown_not_none() -> None:
    unknown = make_instance(
        gpus=None, instance_store_gb=None, type_facts_missing="no permission to describe"
    )

    assert cells(unknown)["GPUS"] == "?"
    assert cells(make_instance(gpus=None))["GPUS"] == "-"


# The filter --------------------------------------------------------------------------------------


def shown(text: str, *instances: Instance) -> list[str]:
    query = parse_filter(text)
    return [i.id for i in instances if query.matches(i, row_cells(i, T0))]


FILTER_FLEET = (
    make_instance("i-a", name="dpo-sweep", instance_type="p4d.24xlarge", tags={"owner": "kenji"}),
    make_instance("i-b", name="eval", instance_type="g5.xlarge", region="eu-west-1"),
    make_instance(
        "i-c", name="notebook", instance_type="p4d.24xlarge", state=InstanceState.STOPPED
    ),
)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("", ["i-a", "i-b", "i-c"]),
        ("p4d", ["i-a", "i-c"]),
        ("running p4d", ["i-a"]),
        ("RUNNING P4D", ["i-a"]),
        ("!p4d", ["i-b"]),
        ("p4d !stopped", ["i-a"]),
        ("state=running", ["i-a", "i-b"]),
        ("state=stopped", ["i-c"]),
        ("region=eu-west-1", ["i-b"]),
        ("!region=eu-west-1", ["i-a", "i-c"]),
        ("owner=kenji", ["i-a"]),
        ("owner=maria", []),
        ("type=g5", ["i-b"]),
        ("name=note", ["i-c"]),
        ("nothing-matches", []),
        ("!", ["i-a", "i-b", "i-c"]),
    ],
)
def test_filter_terms(text: str, ids: list[str]) -> None:
    assert shown(text, *FILTER_FLEET) == ids


def test_colon_narrows_to_one_provider() -> None:
    aws = make_instance("i-a", provider="aws")
    pod = make_instance("pod-1", provider="runpod")

    assert shown(":aws", aws, pod) == ["i-a"]
    assert shown(":runpod", aws, pod) == ["pod-1"]
    assert shown("!:aws", aws, pod) == ["pod-1"]


def test_column_order_sorts_money_and_uptime_as_numbers() -> None:
    price = COLUMNS.index("$/H")
    uptime = COLUMNS.index("UPTIME")
    fleet = [
        make_instance("i-big", instance_type="p5.48xlarge", launched_at=T0 - timedelta(days=2)),
        make_instance("i-small", instance_type="g5.xlarge", launched_at=T0 - timedelta(hours=1)),
        make_instance("i-stopped", instance_type="p5.48xlarge", state=InstanceState.STOPPED),
        make_instance("i-odd", instance_type="x.unknown"),
        make_instance("i-est", instance_type="g5.xlarge", region="ap-south-1"),
    ]

    def order(column: int) -> list[str]:
        rows = [(i, row_cells(i, T0)) for i in fleet]
        return [i.id for i, c in sorted(rows, key=lambda r: column_order(column, *r))]

    assert order(price) == ["i-odd", "i-stopped", "i-est", "i-small", "i-big"]
    assert order(uptime)[0] == "i-stopped"
    assert order(uptime)[-1] == "i-big"
