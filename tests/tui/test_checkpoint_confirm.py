"""The checkpoint confirmations: typed name for one, y for keep-last-N, type-ahead ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from textual import events
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from runctl_tui.checkpoints.listing import Checkpoint, KeepPlan, Kept, LocationKind
from runctl_tui.tui.screens import checkpoint_confirm
from runctl_tui.tui.screens.checkpoint_confirm import ConfirmDelete, ConfirmKeep, _Guarded

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOSTILE = "run/[bold red]x[/]\x1b[2J\u202eckpt-7.pt"


def checkpoint(name: str, size: int = 1536, step: int | None = 7) -> Checkpoint:
    return Checkpoint(
        name=name,
        path=f"/data/{name}",
        kind=LocationKind.LOCAL,
        where="this machine",
        size=size,
        modified=NOW - timedelta(minutes=42),
        step=step,
        members=(f"/data/{name}",),
    )


class Host(App[None]):
    """An empty app that records how a dialog closed."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions: list[bool | None] = []

    def open(self, screen: _Guarded) -> None:
        self.push_screen(screen, callback=self.decisions.append)


async def painted(pilot: Pilot[None], screen: _Guarded) -> None:
    while screen.guard.shown_at is None:
        await pilot.pause()


def burst(app: App[None], *keys: str) -> None:
    """Queue ``keys`` at once, as a driver does with keys read in one write."""
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        app.post_message(event)


def plain(screen: _Guarded, selector: str) -> str:
    rendered = screen.query_one(selector, Static).render()
    return str(rendered)


@pytest.fixture
def no_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_confirm, "GUARD_SECONDS", 0.0)


@pytest.mark.usefixtures("no_guard")
async def test_typing_the_name_enables_delete() -> None:
    app = Host()
    async with app.run_test() as pilot:
        screen = ConfirmDelete(checkpoint("run1/checkpoint-500"), now=NOW)
        app.open(screen)
        await painted(pilot, screen)
        delete = screen.query_one("#delete", Button)
        assert delete.disabled
        await pilot.press(*"checkpoint-50")
        assert delete.disabled
        await pilot.press("enter")
        assert app.decisions == []
        await pilot.press("0")
        assert not delete.disabled
        await pilot.press("enter")
        await pilot.pause()
    assert app.decisions == [True]


@pytest.mark.usefixtures("no_guard")
async def test_escape_cancels_and_details_are_plain_text() -> None:
    app = Host()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = ConfirmDelete(checkpoint(HOSTILE), now=NOW)
        app.open(screen)
        await painted(pilot, screen)
        details = plain(screen, "#details")
        assert "[bold red]x[/]" in details
        assert "\x1b" not in details
        assert "\u202e" not in details
        assert "1.5 KiB" in details
        assert "42m" in details
        assert "step   7" in details
        await pilot.press("escape")
        await pilot.pause()
    assert app.decisions == [False]


async def test_a_burst_typed_ahead_cannot_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_confirm, "GUARD_SECONDS", 60.0)
    app = Host()
    async with app.run_test() as pilot:
        screen = ConfirmDelete(checkpoint("step_1.pt"), now=NOW)
        app.open(screen)
        burst(app, *"step_1.pt", "enter")
        await painted(pilot, screen)
        await pilot.pause()
        assert screen.query_one("#typed", Input).value == ""
        assert screen.query_one("#delete", Button).disabled
        await pilot.press(*"step_1.pt", "enter")
        await pilot.pause()
        assert screen.query_one("#typed", Input).value == ""
        assert "ignored" in plain(screen, "#ignored")
        assert app.decisions == []
        screen.guard.seconds = 0.0
        await pilot.press(*"step_1.pt", "enter")
        await pilot.pause()
    assert app.decisions == [True]


def keep_plan() -> KeepPlan:
    gone = (checkpoint("step_1.pt", 1024), checkpoint(HOSTILE, 2048))
    kept = (
        Kept(checkpoint=checkpoint("step_9.pt"), reasons=("among the newest 1", "newest")),
        Kept(checkpoint=checkpoint("best.pt"), reasons=("best (lowest val_loss=0.1)",)),
    )
    return KeepPlan(n=1, delete=gone, keep=kept, bytes_freed=3072)


@pytest.mark.usefixtures("no_guard")
async def test_keep_shows_what_goes_and_stays_and_y_confirms() -> None:
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = ConfirmKeep(keep_plan())
        app.open(screen)
        await painted(pilot, screen)
        text = plain(screen, "#plan-text")
        assert "step_1.pt" in text
        assert "[bold red]x[/]" in text
        assert "\x1b" not in text
        assert "step_9.pt  among the newest 1, newest" in text
        assert "best (lowest val_loss=0.1)" in text
        assert "3.0 KiB" in plain(screen, "#freed")
        await pilot.press("y")
        await pilot.pause()
    assert app.decisions == [True]


async def test_keep_ignores_type_ahead_and_n_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_confirm, "GUARD_SECONDS", 60.0)
    app = Host()
    async with app.run_test() as pilot:
        screen = ConfirmKeep(keep_plan())
        app.open(screen)
        burst(app, "y", "y")
        await painted(pilot, screen)
        await pilot.press("y")
        await pilot.pause()
        assert app.decisions == []
        await pilot.press("n")
        await pilot.pause()
    assert app.decisions == [False]


@pytest.mark.usefixtures("no_guard")
async def test_a_refused_plan_cannot_be_confirmed() -> None:
    app = Host()
    async with app.run_test() as pilot:
        plan = KeepPlan(n=0, refusal="keep-last needs N of at least 1, not 0; nothing deleted")
        screen = ConfirmKeep(plan)
        app.open(screen)
        await painted(pilot, screen)
        assert screen.query_one("#delete", Button).disabled
        await pilot.press("y")
        await pilot.pause()
        assert app.decisions == []
        assert "nothing deleted" in plain(screen, "#plan-text")
