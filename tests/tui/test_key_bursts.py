"""Keys that arrive together (a paste, a fast typist, a laggy link) never act on their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.widgets import Input, Static

from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.confirm import (
    ConfirmAction,
    ConfirmScreen,
    ConfirmTerminate,
    KeyGuard,
)
from runctl_tui.tui.screens.main import MainScreen
from tests.fakes import FakeProvider

from .conftest import AppFactory
from .test_dashboard import journal, settle, table

SIZE = (160, 45)
PAST_GUARD = ConfirmScreen.GUARD_SECONDS + 0.2


def key_event(key: str) -> events.Key:
    """The event a terminal driver makes for ``key`` (a character or a key name)."""
    if len(key) == 1:
        name = key if key.isalnum() else _character_to_key(key)
        return events.Key(name, key)
    return events.Key(key, "\r" if key == "enter" else None)


def burst(app: RunctlApp, *keys: str) -> None:
    """Queue ``keys`` at once, as a driver does with keys read in one write."""
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        app.post_message(event)


def filter_box(app: RunctlApp) -> Input:
    """The dashboard's filter input."""
    return app.screen_stack[0].query_one("#filter", Input)


async def open_on(pilot: Pilot[None], key: str) -> None:
    """Wait for the first poll and put the cursor on ``key``."""
    await settle(pilot)
    table(pilot.app).move_to_key(key)  # type: ignore[arg-type]


@pytest.fixture
def long_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard no test outlives, so that "during the guard" holds however slow the machine."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 60.0)


def end_guard(screen: ConfirmScreen) -> None:
    """Let the guard of ``screen`` pass now."""
    screen.guard.seconds = 0.0


async def shown(pilot: Pilot[None], screen: ConfirmScreen) -> None:
    """Wait until ``screen`` has been painted, its guard still running."""
    while screen.guard.shown_at is None:
        await pilot.pause()
    assert not screen.guard.armed(screen.guard.shown_at)


# The filter --------------------------------------------------------------------------------


async def test_slash_burst_goes_into_the_filter(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        burst(app, "/", *"syyyy")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert filter_box(app).value == "syyyy"
        assert app.focused is filter_box(app)
    assert provider.acted() == []


async def test_slash_pressed_without_pause_goes_into_the_filter(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        await pilot.press("slash", *"syyyy")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert filter_box(app).value == "syyyy"
    assert provider.acted() == []


async def test_slash_inside_the_filter_is_typed(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(app, "/", "a", "/", "b")
        await settle(pilot)
        assert filter_box(app).value == "a/b"


async def test_burst_after_filter_enter_acts_only_after_confirmation(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(app, "/", *"eval", "enter", "s", "y", "y")
        await settle(pilot)
        assert provider.acted() == []


# Confirmations -----------------------------------------------------------------------------


async def test_stop_burst_opens_the_dialog_but_never_confirms(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        burst(app, *"syyyy")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert provider.acted() == []
        # Once the guard has passed, a deliberate y is taken.
        await pilot.pause(PAST_GUARD)
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert provider.acted() == [("stop", "i-0d44")]
    assert [e["result"] for e in journal(journal_path)] == ["attempted", "done"]


async def test_keys_from_before_the_dialog_was_shown_are_dropped_without_a_guard(
    make_app: AppFactory, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        burst(app, "s", "y", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmAction)
    assert provider.acted() == []


@pytest.mark.usefixtures("long_guard")
async def test_y_right_after_s_is_ignored(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        await pilot.press("s", "y")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert provider.acted() == []
        assert "ignored 1 key pressed" in str(screen.query_one("#ignored", Static).content)
        end_guard(screen)
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == [("stop", "i-0d44")]


async def test_start_burst_never_confirms(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0e55")
        burst(app, "u", "y", "enter", "y")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmAction)
    assert provider.acted() == []


@pytest.mark.usefixtures("long_guard")
async def test_escape_during_the_guard_cancels(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        await shown(pilot, screen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert provider.acted() == []
    assert [e["result"] for e in journal(journal_path)] == ["cancelled"]


@pytest.mark.usefixtures("long_guard")
async def test_confirm_button_during_the_guard_does_nothing(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        await shown(pilot, screen)
        await pilot.click("#confirm")
        await settle(pilot)
        assert provider.acted() == []
        assert isinstance(app.screen, ConfirmAction)
        end_guard(app.screen)
        await pilot.pause(0.3)  # a button ignores clicks while it shows the last one
        await pilot.click("#confirm")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert provider.acted() == [("stop", "i-0d44")]


async def test_terminate_burst_with_the_id_never_confirms(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        burst(app, "T", *"i-0d44", "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConfirmTerminate)
        assert screen.query_one("#typed-input", Input).value == ""
        assert provider.acted() == []
        # Typed deliberately after the guard, the id counts.
        await pilot.pause(PAST_GUARD)
        await pilot.press(*"i-0d44", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert provider.acted() == [("terminate", "i-0d44")]


@pytest.mark.usefixtures("long_guard")
async def test_terminate_typed_ahead_during_the_guard_is_dropped(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        await pilot.press("T")
        screen = app.screen
        assert isinstance(screen, ConfirmTerminate)
        await shown(pilot, screen)
        burst(app, *"i-0d44", "enter")
        await settle(pilot)
        assert screen.query_one("#typed-input", Input).value == ""
        assert "ignored 7 keys" in str(screen.query_one("#ignored", Static).content)
        end_guard(screen)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is screen
    assert provider.acted() == []


@pytest.mark.usefixtures("long_guard")
async def test_paste_during_the_guard_is_dropped(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        await pilot.press("T")
        screen = app.screen
        assert isinstance(screen, ConfirmTerminate)
        box = screen.query_one("#typed-input", Input)
        paste = events.Paste("i-0d44")
        paste.set_sender(app)
        box.post_message(paste)
        await settle(pilot)
        assert box.value == ""
        end_guard(screen)
        box.post_message(events.Paste("i-0d44"))
        await settle(pilot)
        assert box.value == "i-0d44"
    assert provider.acted() == []


async def test_keys_for_the_table_are_dropped_once_a_dialog_is_up(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, "aws:i-0d44")
        burst(app, "s", "escape", "q", "y")
        await settle(pilot)
        assert app.is_running
        assert isinstance(app.screen, ConfirmAction)
    assert provider.acted() == []


# The guard itself, on a fake clock ---------------------------------------------------------


def test_guard_takes_nothing_before_the_dialog_is_shown() -> None:
    guard = KeyGuard(0.3)
    assert not guard.shown(100.0)
    assert not guard.armed(100.0)
    assert not guard.armed(1e9)


def test_guard_takes_only_cancels_during_its_first_moments() -> None:
    guard = KeyGuard(0.3)
    guard.show(10.0)
    assert not guard.shown(9.99)  # a key that arrived before the dialog was painted
    assert guard.shown(10.0)
    assert not guard.armed(10.0)
    assert not guard.armed(10.299)
    assert guard.armed(10.3)
    assert guard.armed(11.0)


def test_guard_keeps_its_first_showing() -> None:
    guard = KeyGuard(0.3)
    guard.show(10.0)
    guard.show(50.0)
    assert guard.armed(10.5)


def test_guard_is_a_class_attribute_near_300_ms() -> None:
    assert 0.2 <= ConfirmScreen.GUARD_SECONDS <= 0.5  # about 300 ms
    assert ConfirmAction.GUARD_SECONDS == ConfirmTerminate.GUARD_SECONDS
