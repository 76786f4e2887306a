"""The poller: one poll at a time, "poll now" coalesced, failures reported, quitting never waits."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from runctl_tui.audit import Journal
from runctl_tui.models import FleetSnapshot
from runctl_tui.providers.base import ProviderError
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.messages import FleetPolled, PollFailed
from runctl_tui.tui.poller import Poller
from tests.fakes import FakeProvider

from .conftest import NOW, AppFactory, sample_fleet
from .test_dashboard import list_calls, settle
from .test_layout import dashboard

SIZE = (120, 30)


class PollingScreen(Screen[None]):
    """A bare screen that only starts a poller and keeps what it hears."""

    def __init__(self, poller: Poller) -> None:
        super().__init__()
        self.poller = poller
        self.heard: list[Message] = []

    def compose(self) -> ComposeResult:
        """Something to paint."""
        yield Static("polling")

    def on_mount(self) -> None:
        """Start polling."""
        self.poller.start(self)

    def on_fleet_polled(self, event: FleetPolled) -> None:
        """Keep it."""
        self.heard.append(event)

    def on_poll_failed(self, event: PollFailed) -> None:
        """Keep it."""
        self.heard.append(event)


class PollingApp(App[None]):
    """An app with nothing but the poller's screen."""

    def __init__(self, poller: Poller) -> None:
        super().__init__()
        self.poller = poller

    def get_default_screen(self) -> Screen[None]:
        """The polling screen."""
        return PollingScreen(self.poller)


@pytest.fixture
def provider() -> FakeProvider:
    """The in-memory fleet."""
    return FakeProvider(sample_fleet(), name="aws")


@pytest.fixture
def gate(provider: FakeProvider) -> Iterator[threading.Event]:
    """Holds every ``list_instances`` call until set (a hung endpoint); set at the end."""
    event = threading.Event()
    provider.list_gate = event
    yield event
    event.set()


@pytest.fixture
def collection_held_off() -> Iterator[None]:
    """Collection off, as the entry point leaves it for start-up; restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def poller_over(provider: FakeProvider, tmp_path: Path, seconds: float = 3600) -> Poller:
    """A poller of a fleet of ``provider``, on a frozen clock."""
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), clock=lambda: NOW)
    return Poller(fleet, clock=lambda: NOW, poll_seconds=seconds)


def heard(app: PollingApp) -> list[Message]:
    """What the polling screen was told."""
    screen = app.screen_stack[0]
    assert isinstance(screen, PollingScreen)
    return screen.heard


async def test_a_poller_posts_each_poll_to_its_node(provider: FakeProvider, tmp_path: Path) -> None:
    poller = poller_over(provider, tmp_path)
    app = PollingApp(poller)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        messages = heard(app)
        assert len(messages) == 1
        polled = messages[0]
        assert isinstance(polled, FleetPolled)
        assert len(polled.snapshot.instances) == 8
        assert len(polled.table.rows) == 8
        assert not poller.polling
        assert poller.polling_since is None


async def test_poll_now_during_a_poll_polls_once_more_after_it(
    provider: FakeProvider, gate: threading.Event, tmp_path: Path
) -> None:
    poller = poller_over(provider, tmp_path)
    app = PollingApp(poller)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(40):
            await pilot.pause(0.05)
            if poller.polling_since is not None:
                break
        assert poller.polling
        for _ in range(5):
            poller.poll_now()
        provider.list_gate = None
        gate.set()
        for _ in range(40):
            await pilot.pause(0.05)
            if poller.polls_finished >= 2 and not poller.polling:
                break
        await settle(pilot)
        assert list_calls(provider) == 2
        assert poller.polls_finished == 2
        assert [type(m) for m in heard(app)] == [FleetPolled, FleetPolled]


async def test_a_slow_provider_does_not_hold_up_quitting(
    provider: FakeProvider, gate: threading.Event, tmp_path: Path
) -> None:
    poller = poller_over(provider, tmp_path)
    app = PollingApp(poller)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(40):
            await pilot.pause(0.05)
            if poller.polling_since is not None:
                break
        assert poller.polling_since is not None
        started = time.monotonic()
        app.exit()
        await pilot.pause()
    elapsed = time.monotonic() - started
    assert not app.is_running
    assert not poller.polling
    # About 0.1 s here; the bound is loose so that a busy machine does not fail it.
    assert elapsed < 5


async def test_quitting_the_app_while_a_poll_hangs(
    make_app: AppFactory, provider: FakeProvider, gate: threading.Event
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(40):
            await pilot.pause(0.05)
            if dashboard(app).poller.polling_since is not None:
                break
        assert dashboard(app).poller.polling_since is not None
        started = time.monotonic()
        await pilot.press("q")
    assert not app.is_running
    assert time.monotonic() - started < 5


async def test_a_broken_poll_is_posted_and_the_timer_goes_on(
    provider: FakeProvider, tmp_path: Path
) -> None:
    poller = poller_over(provider, tmp_path, seconds=0.2)
    poll = poller.fleet.poll_async
    failures = 1

    async def flaky(deadline: float | None = None, **options: Any) -> FleetSnapshot:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("the poll broke\x1b[2J")
        return await poll(deadline, **options)

    poller.fleet.poll_async = flaky  # type: ignore[method-assign]
    app = PollingApp(poller)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(40):
            await pilot.pause(0.05)
            if any(isinstance(m, FleetPolled) for m in heard(app)):
                break
        messages = heard(app)
        assert isinstance(messages[0], PollFailed)
        assert messages[0].reason == "RuntimeError: the poll broke␛[2J"
        assert any(isinstance(m, FleetPolled) for m in messages[1:])


async def test_a_provider_failure_is_a_poll_not_a_broken_one(
    provider: FakeProvider, tmp_path: Path
) -> None:
    provider.list_error = ProviderError("aws", "expired", hint="log in")
    poller = poller_over(provider, tmp_path)
    app = PollingApp(poller)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (polled,) = heard(app)
        assert isinstance(polled, FleetPolled)
        assert polled.snapshot.statuses[0].error == "expired"


@pytest.mark.usefixtures("collection_held_off")
async def test_collection_comes_back_after_the_first_poll(
    provider: FakeProvider, gate: threading.Event, tmp_path: Path
) -> None:
    poller = poller_over(provider, tmp_path)
    app = PollingApp(poller)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert not gc.isenabled()
        gate.set()
        await settle(pilot)
        assert heard(app)
        assert gc.isenabled()
        # What start-up and the first poll built is kept out of later collections.
        assert gc.get_freeze_count() > 0
