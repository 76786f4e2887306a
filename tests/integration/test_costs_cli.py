"""``runctl-tui costs`` against EC2 on moto: the report, its formats, the ledger and budgets."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from runctl_tui import cli
from runctl_tui.costs.output import COSTS_SCHEMA, CSV_COLUMNS
from runctl_tui.costs.pricing import BUNDLED_SOURCE, bundled_table
from runctl_tui.text import clean
from tests.integration.conftest import Ec2Admin, HostileFleet

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CLOSED_PORT = "http://127.0.0.1:9"


@pytest.fixture
def config(ec2: Ec2Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config for EC2 in :data:`REGION` on the moto server (prices: the bundled table)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", ec2.url)
    # moto has no Price List API: point it at a closed port here, so that prices come from the
    # bundled table and nothing reaches the network.
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", CLOSED_PORT)
    monkeypatch.setattr(cli, "setup_logging", lambda debug, to_stderr_on_failure: None)
    path = tmp_path / "config.toml"
    path.write_text(f'[aws]\nregions = ["{REGION}"]\n', encoding="utf-8")
    return path


def ledger_file() -> Path:
    """Where the ledger is by default: this test's data directory."""
    return platformdirs.user_data_path("runctl-tui") / "ledger.sqlite3"


def costs(
    capsys: pytest.CaptureFixture[str], config: Path, *args: str, code: int = 0
) -> tuple[str, str]:
    """``runctl-tui --config CONFIG costs ARGS`` in this process: its stdout and stderr."""
    assert cli.main(["--config", str(config), "costs", *args]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return out, err


def costs_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict[str, Any]:
    """The JSON report."""
    out, _ = costs(capsys, config, "--json", *args)
    data: dict[str, Any] = json.loads(out)
    assert data["schema"] == COSTS_SCHEMA
    return data


def by_id(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's resources by id."""
    return {r["id"]: r for r in data["resources"]}


def root_volumes(ec2: Ec2Admin, *instance_ids: str) -> set[str]:
    """The ids of the volumes moto attached to ``instance_ids``."""
    answer = ec2.client(REGION).describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": list(instance_ids)}]
    )
    return {v["VolumeId"] for v in answer["Volumes"]}


def test_costs_json_lists_instances_and_volumes_with_bundled_rates(
    ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = ec2.launch(REGION, "g5.xlarge", name="trainer")
    parked = ec2.launch(REGION, "p4d.24xlarge", name="parked", stopped=True)
    orphan = ec2.client(REGION).create_volume(
        AvailabilityZone=f"{REGION}a", Size=50, VolumeType="gp3"
    )["VolumeId"]

    data = costs_json(capsys, config)

    found = by_id(data)
    disks = root_volumes(ec2, trainer, parked)
    assert set(found) == {trainer, parked, orphan, *disks}
    assert found[trainer]["state"] == "running"
    assert found[trainer]["usd_per_hour"] == str(bundled_table().prices[REGION]["g5.xlarge"])
    assert found[trainer]["rate_source"] == BUNDLED_SOURCE
    assert found[trainer]["rate_region"] == REGION
    assert Decimal(found[trainer]["burn_usd_per_hour"]) == Decimal("1.006")
    assert found[parked]["state"] == "stopped"
    assert Decimal(found[parked]["burn_usd_per_hour"]) == 0
    volume = found[orphan]
    assert volume["state"] == "unattached"
    assert volume["monthly_usd"] == "4.00"
    assert volume["flags"] == [{"kind": "orphaned", "text": "orphaned volume, $4.00/month"}]
    assert volume["location"] == REGION
    parked_disk = next(found[d] for d in disks if found[d]["state"] == f"on {parked}")
    assert parked_disk["flags"][0]["kind"] == "parked"
    assert parked_disk["flags"][0]["text"].startswith(f"kept for stopped {parked}, $")
    totals = data["totals"]
    burn = sum((Decimal(r["burn_usd_per_hour"]) for r in data["resources"]), Decimal(0))
    assert Decimal(totals["burn_usd_per_hour"]) == burn
    # Equal up to the 28th significant digit: see
    # tests/unit/test_cost_report.py::test_totals_do_not_depend_on_the_order_of_the_lines.
    listed = sum((Decimal(r["period_usd"]) for r in data["resources"]), Decimal(0))
    assert abs(Decimal(totals["period_usd"]) - listed) < Decimal("1e-20")
    assert Decimal(totals["period_usd"]) > 0
    assert [p["provider"] for p in data["providers"]] == ["aws"]
    assert data["ledger"] == {"path": str(ledger_file()), "error": None}
    assert ledger_file().is_file()


def test_status_then_costs_accrue_to_the_same_ledger(
    ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = ec2.launch(REGION, "p4d.24xlarge", name="trainer")

    assert cli.main(["--config", str(config), "status", "--json"]) == 0
    capsys.readouterr()
    assert ledger_file().is_file()
    first = by_id(costs_json(capsys, config))[trainer]
    second = by_id(costs_json(capsys, config))[trainer]

    assert Decimal(first["today_usd"]) > 0
    assert Decimal(second["today_usd"]) > Decimal(first["today_usd"])
    assert Decimal(second["period_hours"]) > Decimal(first["period_hours"])
    assert Decimal(second["since_launch_usd"]) > 0


def test_costs_text(ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trainer = ec2.launch(REGION, "g5.xlarge", name="trainer")

    out, err = costs(capsys, config)

    lines = out.splitlines()
    assert lines[0].split()[:3] == ["PROVIDER", "ID", "NAME"]
    (row,) = [line for line in lines if f" {trainer} " in line]
    assert row.split()[:3] == ["aws", trainer, "trainer"]
    assert "$1.01/h" in row
    assert any(line.startswith("TOTAL") for line in lines)
    assert lines[-1] == f"ledger: {ledger_file()}"
    assert err == ""


def test_costs_csv(ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trainer = ec2.launch(REGION, "g5.xlarge", name="=cmd|' /C calc'!A0")

    out, _ = costs(capsys, config, "--csv")

    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    column = {name: n for n, name in enumerate(CSV_COLUMNS)}
    (row,) = [r for r in rows if r[column["id"]] == trainer]
    assert row[column["name"]] == "'=cmd|' /C calc'!A0"
    assert row[column["usd_per_hour"]] == "1.006"
    total = rows[-1]
    assert total[0] == "TOTAL"
    listed = sum((Decimal(r[column["period_usd"]]) for r in rows[1:-1]), Decimal(0))
    assert abs(Decimal(total[column["period_usd"]]) - listed) < Decimal("1e-20")


def test_costs_since_a_date(
    ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2.launch(REGION, "g5.xlarge", name="trainer")

    data = costs_json(capsys, config, "--since", "2026-01-01")
    text, _ = costs(capsys, config, "--since", "2026-01-01")

    assert data["period_start"] == datetime(2026, 1, 1).astimezone(UTC).isoformat()
    assert "SINCE 2026-01-01" in text.splitlines()[0]
    assert "THIS MONTH" not in text


def test_costs_since_something_that_is_no_date(config: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--config", str(config), "costs", "--since", "yesterday"])

    assert exited.value.code == 2


def test_reset_ledger_without_a_terminal_and_without_yes_refuses(
    ec2: Ec2Admin,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trainer = ec2.launch(REGION, "g5.xlarge", name="trainer")
    costs_json(capsys, config)
    monkeypatch.setattr(sys, "stdin", io.StringIO("reset\n"))

    out, err = costs(capsys, config, "--reset-ledger", code=2)

    assert out == ""
    assert err.strip() == "runctl-tui: --reset-ledger asks first; without a terminal add --yes"
    ec2.client(REGION).terminate_instances(InstanceIds=[trainer])
    kept = by_id(costs_json(capsys, config))[trainer]
    assert Decimal(kept["period_usd"]) > 0


def test_reset_ledger_with_yes_wipes_earlier_spend(
    ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = ec2.launch(REGION, "g5.xlarge", name="trainer")
    costs_json(capsys, config)
    ec2.client(REGION).terminate_instances(InstanceIds=[trainer])
    assert Decimal(by_id(costs_json(capsys, config))[trainer]["period_usd"]) > 0

    out, err = costs(capsys, config, "--reset-ledger", "--yes")

    assert out == ""
    assert err.strip() == f"runctl-tui: ledger wiped: {ledger_file()}"
    after = costs_json(capsys, config)
    gone = by_id(after).get(trainer)
    assert gone is None or Decimal(gone["period_usd"]) == 0
    assert Decimal(after["totals"]["today_usd"]) < Decimal("0.01")


def test_a_tiny_daily_budget_is_over(
    ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Four p5.48xlarge burn $220/h: a cent within a fifth of a second of their launch.
    ec2.client(REGION).run_instances(
        ImageId="ami-0a1b2c3d4e5f60718", InstanceType="p5.48xlarge", MinCount=4, MaxCount=4
    )
    config.write_text(
        config.read_text(encoding="utf-8") + "[costs]\ndaily_budget = 0.01\n", encoding="utf-8"
    )

    out, _ = costs(capsys, config)
    data = costs_json(capsys, config)

    (budget_line,) = [line for line in out.splitlines() if line.startswith("budget: ")]
    assert budget_line.startswith("budget: today $")
    assert budget_line.endswith("[over]")
    (budget,) = data["budgets"]
    assert budget["period"] == "today"
    assert budget["level"] == "over"
    assert budget["limit_usd"] == "0.01"
    assert Decimal(budget["spent_usd"]) >= Decimal("0.01")


def test_demo_costs_is_offline_and_keeps_no_ledger(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "runctl_tui", "costs", "--demo", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "TMPDIR": str(temp)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["schema"] == COSTS_SCHEMA
    assert {p["provider"] for p in data["providers"]} >= {"aws", "runpod"}
    assert Decimal(data["totals"]["burn_usd_per_hour"]) > 0
    (budget,) = data["budgets"]
    assert budget["limit_usd"] == "1000.00"
    assert data["ledger"]["error"] is None
    assert data["ledger"]["path"].startswith(str(temp))
    data_home = Path(os.environ["XDG_DATA_HOME"])
    assert list(data_home.rglob("*.sqlite3*")) == []
    # The demo's own ledger went with its temporary folder at exit.
    assert not list(temp.rglob("ledger.sqlite3*"))


def test_a_configured_ledger_that_is_a_directory_warns_and_still_reports(
    ec2: Ec2Admin, config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trainer = ec2.launch(REGION, "g5.xlarge", name="trainer")
    folder = tmp_path / "ledger-folder"
    folder.mkdir()
    config.write_text(
        config.read_text(encoding="utf-8") + f'[costs]\nledger = "{folder}"\n', encoding="utf-8"
    )

    out, err = costs(capsys, config, "--json")

    data = json.loads(out)
    assert trainer in by_id(data)
    assert data["ledger"]["path"] == str(folder)
    assert data["ledger"]["error"].startswith(f"ledger {folder}: ")
    (warning,) = err.splitlines()
    assert warning.startswith(f"runctl-tui: warning: ledger {folder}: ")
    assert not ledger_file().exists()


def test_reset_of_a_ledger_that_cannot_be_opened_is_one_line(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    path = blocker / "ledger.sqlite3"
    config.write_text(
        config.read_text(encoding="utf-8") + f'[costs]\nledger = "{path}"\n', encoding="utf-8"
    )

    out, err = costs(capsys, config, "--reset-ledger", "--yes", code=1)

    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"runctl-tui: ledger {path}: cannot create its directory")


def test_a_provider_that_fails_exits_1_and_still_reports(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED_PORT)
    monkeypatch.setenv("RUNCTL_TUI_AWS__MAX_ATTEMPTS", "1")

    out, err = costs(capsys, config, "--json", code=1)

    data = json.loads(out)
    assert data["resources"] == []
    assert data["totals"]["period_usd"] == "0.00"
    assert err.startswith("runctl-tui: aws: ")
    assert len(err.splitlines()) == 1


def test_costs_over_a_hostile_fleet_prints_names_as_data(
    hostile_fleet: HostileFleet, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, _ = costs(capsys, config)
    data = costs_json(capsys, config)
    table, _ = costs(capsys, config, "--csv")

    assert all(clean(line) == line for line in text.splitlines())
    found = by_id(data)
    for label, name in hostile_fleet.names.items():
        assert found[hostile_fleet.ids[label]]["name"] == name
    rows = list(csv.reader(io.StringIO(table)))
    assert all(clean(cell) == cell for row in rows for cell in row)
