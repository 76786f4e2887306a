"""The whole app against moto's EC2 server: keys pressed in the dashboard really change EC2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.pilot import Pilot

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.providers.aws import AwsProvider
from runctl_tui.services.fleet import Fleet
from runctl_tui.text import clean
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.confirm import ConfirmAction, ConfirmScreen, ConfirmTerminate
from runctl_tui.tui.widgets.instance_table import InstanceTable

from .conftest import Ec2Admin, HostileFleet

PAST_GUARD = ConfirmScreen.GUARD_SECONDS + 0.2
"""Confirmations ignore keys until they have been on screen this long."""

pytestmark = pytest.mark.integration


def build(provider: AwsProvider, journal: Path) -> RunctlApp:
    """The app over the moto-backed provider, with background polling out of the way."""
    fleet = Fleet([provider], journal=Journal(journal))
    return RunctlApp(Settings(poll_seconds=3600), fleet)


async def settle(pilot: Pilot[None]) -> None:
    """Let polls and actions finish and their messages land."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def test_stop_start_terminate_from_the_keyboard(
    ec2: Ec2Admin, provider: AwsProvider, tmp_path: Path
) -> None:
    trainer = ec2.launch("us-east-1", "p4d.24xlarge", name="trainer")
    spare = ec2.launch("eu-west-1", "g5.xlarge", name="spare")
    app = build(provider, tmp_path / "journal.jsonl")
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(InstanceTable)
        assert sorted(table.keys) == sorted([f"aws:{trainer}", f"aws:{spare}"])
        current = table.instance(f"aws:{trainer}")
        assert current is not None
        assert current.gpus is not None
        assert current.gpus.label() == "8x A100 40G"

        table.move_to_key(f"aws:{trainer}")
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmAction)
        await pilot.pause(PAST_GUARD)
        await pilot.press("y")
        await settle(pilot)
        assert ec2.state("us-east-1", trainer) == "stopped"

        table.move_to_key(f"aws:{trainer}")
        await pilot.press("u")
        await pilot.pause(PAST_GUARD)
        await pilot.press("y")
        await settle(pilot)
        assert ec2.state("us-east-1", trainer) in {"pending", "running"}

        table.move_to_key(f"aws:{spare}")
        await pilot.press("T")
        assert isinstance(app.screen, ConfirmTerminate)
        await pilot.pause(PAST_GUARD)
        await pilot.press(*spare, "enter")
        await settle(pilot)
        assert ec2.state("eu-west-1", spare) == "terminated"
        assert ec2.state("us-east-1", trainer) in {"pending", "running"}

    entries = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [(e["action"], e["id"], e["result"]) for e in entries] == [
        ("stop", trainer, "attempted"),
        ("stop", trainer, "done"),
        ("start", trainer, "attempted"),
        ("start", trainer, "done"),
        ("terminate", spare, "attempted"),
        ("terminate", spare, "done"),
    ]


async def test_protection_tag_added_in_ec2_refuses_terminate(
    ec2: Ec2Admin, provider: AwsProvider, tmp_path: Path
) -> None:
    victim = ec2.launch("us-east-1", "g5.xlarge", name="victim")
    app = build(provider, tmp_path / "journal.jsonl")
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        app.screen.query_one(InstanceTable).move_to_key(f"aws:{victim}")
        await pilot.press("T")
        await pilot.pause(PAST_GUARD)
        await pilot.press(*victim)
        # Someone protects it in the console while the modal is open.
        ec2.tag("us-east-1", victim, "runctl:protect", "true")
        await pilot.press("enter")
        await settle(pilot)
    assert ec2.state("us-east-1", victim) == "running"
    entry = json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[0])
    assert entry["result"] == "refused"
    assert "protected" in entry["detail"]


def screen_text(app: RunctlApp) -> list[str]:
    """Every line the app would paint now, as the terminal would receive it."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def test_hostile_fleet_through_boto3_is_shown_literally(
    hostile_fleet: HostileFleet, tmp_path: Path
) -> None:
    app = build(hostile_fleet.provider(), tmp_path / "journal.jsonl")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(InstanceTable)
        assert table.row_count == len(hostile_fleet.ids)
        await pilot.press("enter")
        for _ in range(table.row_count):
            await pilot.press("down")
            await pilot.pause()
            for line in screen_text(app):
                assert clean(line) == line, repr(line)
        await pilot.press("s")
        await pilot.pause()
        for line in screen_text(app):
            assert clean(line) == line, repr(line)
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
    assert not (tmp_path / "screenshot.svg").exists()
