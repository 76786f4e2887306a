"""The checkpoints pane on a directory of a real OpenSSH sshd on 127.0.0.1: listed over SFTP on
the hub's connection, inspected by ranged reads, and the host key asked for first."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes.checkpoints import CheckpointsPane
from runctl_tui.tui.screens.trust import TrustHostKeyScreen
from tests.integration.ssh_servers import Sshd

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

SIZE = (120, 36)
FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 20.0) -> None:
    """Pause until ``check()`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


def pane(app: RunctlApp) -> CheckpointsPane:
    """The checkpoints pane."""
    return app.screen_stack[0].query_one(CheckpointsPane)


async def test_a_remote_directory_is_listed_and_inspected_over_sftp(
    real_sshd: Sshd, isolated_environment: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "remote-ckpts"
    shutil.copytree(FIXTURES, directory)
    source = f"ssh://{real_sshd.user}@127.0.0.1:{real_sshd.port}{directory}"
    fleet = Fleet([], journal=Journal(tmp_path / "journal.jsonl"))
    app = RunctlApp(Settings(poll_seconds=3600), fleet, open_checkpoints=source)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrustHostKeyScreen))
        await pilot.pause(0.7)
        await pilot.press("y")
        checkpoints = pane(app)
        await until(
            pilot,
            lambda: checkpoints.listing is not None and len(checkpoints.listing.checkpoints) == 8,
        )
        header = str(checkpoints.query_one("#ckpt-header").render())
        assert f"127.0.0.1:{real_sshd.port}" in header
        names = [c.name for c in checkpoints.table.rows]
        target = names.index("epoch=3-step=1200.ckpt")
        checkpoints.table.move_to(target)
        await pilot.press("enter")
        await until(pilot, lambda: checkpoints.inspection is not None)
        inspection = checkpoints.inspection
        assert inspection is not None
        assert inspection.error is None
        assert inspection.parameter_count > 0
        assert any(s.name == "global_step" for s in inspection.scalars)
