"""Snapshot tests at 160x45, 100x30 and 80x24 over the in-memory fleet with a frozen clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from runctl_tui.audit import Journal
from runctl_tui.providers.base import ProviderError, SpotRequest
from runctl_tui.tui.screens.confirm import ConfirmScreen
from runctl_tui.tui.widgets.instance_table import InstanceTable
from tests.fakes import FakeProvider

from .conftest import AppFactory

SIZE = (160, 45)
SnapCompare = Callable[..., bool]


def then(*keys: str, key: str | None = None) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Wait for the first poll, put the cursor on ``key``, press ``keys``."""

    async def run_before(pilot: Pilot[None]) -> None:
        for _ in range(3):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        if key:
            pilot.app.screen.query_one(InstanceTable).move_to_key(key)
        await pilot.press(*keys)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    return run_before


def test_main_screen(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=then("space", key="aws:i-0b22"))


def test_details_panel(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=then("enter", key="aws:i-0f66"))


@pytest.fixture(autouse=True)
def no_confirmation_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys typed into a confirmation count at once, so a snapshot never depends on speed."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)


def test_stop_modal(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    app = make_app()
    assert snap_compare(
        app, terminal_size=SIZE, run_before=then("space", "space", "s", key="aws:i-0b22")
    )


def test_terminate_modal(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    assert snap_compare(
        make_app(), terminal_size=SIZE, run_before=then("T", *"i-0d", key="aws:i-0d44")
    )


def test_terminate_persistent_spot_modal(
    snap_compare: SnapCompare, make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.spot_requests["i-0b22"] = SpotRequest("sir-4f2b8c1d", "persistent", "active")
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=then("T", key="aws:i-0b22"))


def test_provider_failure(
    snap_compare: SnapCompare, make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.list_error = ProviderError(
        "aws", "AWS SSO session expired or missing", hint="run `aws sso login --profile ml`"
    )
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=then())


def test_readonly_demo_header(snap_compare: SnapCompare, make_app: AppFactory) -> None:
    app: Any = make_app(readonly=True, demo=True)
    # The help screen shows the journal's path: keep it the same on every run.
    app.fleet.journal = Journal(Path("/home/ml/.local/state/runctl-tui/journal.jsonl"))
    assert snap_compare(app, terminal_size=SIZE, run_before=then("question_mark"))


NARROW = [(80, 24), (100, 30)]


@pytest.mark.parametrize("size", NARROW, ids=["80x24", "100x30"])
def test_main_screen_narrow(
    snap_compare: SnapCompare, make_app: AppFactory, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=then("space", key="aws:i-0b22"))


@pytest.mark.parametrize("size", NARROW, ids=["80x24", "100x30"])
def test_readonly_demo_header_narrow(
    snap_compare: SnapCompare, make_app: AppFactory, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(readonly=True, demo=True), terminal_size=size, run_before=then())


@pytest.mark.parametrize("size", NARROW, ids=["80x24", "100x30"])
def test_stop_modal_narrow(
    snap_compare: SnapCompare, make_app: AppFactory, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=then("s", key="aws:i-0f66"))


@pytest.mark.parametrize("size", NARROW, ids=["80x24", "100x30"])
def test_provider_failure_narrow(
    snap_compare: SnapCompare, make_app: AppFactory, provider: FakeProvider, size: tuple[int, int]
) -> None:
    provider.list_error = ProviderError(
        "aws",
        "UnauthorizedOperation: not authorized to perform ec2:DescribeInstances on the regions"
        " us-east-1, eu-west-1 [request id 1c2b]",
        hint="attach a policy granting ec2:Describe* to the role, or run `aws sso login`",
    )
    assert snap_compare(make_app(), terminal_size=size, run_before=then())
