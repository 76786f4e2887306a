"""The terminate confirmation warns when the instance's newest checkpoint exists only on its
own disk, and says nothing when a copy is kept in ``[checkpoints] copies``."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.models import Instance
from runctl_tui.providers.base import CheckpointLocation
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.confirm import ConfirmTerminate
from tests.fakes import FakeProvider

from .conftest import NOW, sample_fleet
from .test_dashboard import settle, table

SIZE = (120, 36)
FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
KEY = "aws:i-0f66"


class WithCheckpoints(FakeProvider):
    """The sample fleet, each instance's checkpoints in one local directory."""

    def __init__(self, directory: Path) -> None:
        super().__init__(sample_fleet(), name="aws")
        self.directory = directory

    def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """The one directory, for every instance."""
        return [CheckpointLocation(str(self.directory), found="configured")]


def build(tmp_path: Path, copies: list[str]) -> RunctlApp:
    """The app over :class:`WithCheckpoints`, with ``copies`` configured."""
    directory = tmp_path / "on-the-instance"
    directory.mkdir()
    shutil.copy(FIXTURES / "epoch=3-step=1200.ckpt", directory)
    fleet = Fleet(
        [WithCheckpoints(directory)],
        journal=Journal(tmp_path / "journal.jsonl"),
        clock=lambda: NOW,
    )
    settings = Settings(poll_seconds=3600, checkpoints={"copies": copies})
    return RunctlApp(settings, fleet, clock=lambda: NOW)


def warning(app: RunctlApp) -> Static:
    """The dialog's checkpoint line."""
    return app.screen.query_one("#checkpoint-warning", Static)


def lookup_done(app: RunctlApp) -> bool:
    """Whether the dialog's checkpoint lookup ran and finished."""
    screen = app.screen
    return isinstance(screen, ConfirmTerminate) and screen.checkpoints_checked


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Pause until ``check()`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


@pytest.mark.integration
async def test_a_checkpoint_with_no_copy_is_warned_about(tmp_path: Path) -> None:
    app = build(tmp_path, copies=[str(tmp_path / "backups")])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key(KEY)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, ConfirmTerminate))
        await until(pilot, lambda: "only on this instance" in str(warning(app).render()))
        shown = str(warning(app).render())
        assert "epoch=3-step=1200.ckpt" in shown


@pytest.mark.integration
async def test_a_checkpoint_with_a_copy_gives_no_warning(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    shutil.copy(FIXTURES / "epoch=3-step=1200.ckpt", backups)
    app = build(tmp_path, copies=[str(backups)])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key(KEY)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, ConfirmTerminate))
        await until(pilot, lambda: lookup_done(app))
        assert not warning(app).display
