"""Pilot tests of every dashboard flow: polling, cursor, filter, details, and guarded actions."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static
from textual.worker import WorkerFailed

from runctl_tui.models import FleetSnapshot, InstanceState
from runctl_tui.providers.base import ProviderError
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.messages import ActionsFinished, FleetPolled
from runctl_tui.tui.screens.confirm import ConfirmAction, ConfirmScreen, ConfirmTerminate
from runctl_tui.tui.screens.help import HelpScreen
from runctl_tui.tui.screens.main import HELP, MainScreen
from runctl_tui.tui.widgets.details import DetailsPanel
from runctl_tui.tui.widgets.instance_table import InstanceTable
from runctl_tui.tui.widgets.provider_bar import ProviderBar
from tests.fakes import FakeProvider

from .conftest import AppFactory, machine

SIZE = (160, 45)


@pytest.fixture(autouse=True)
def unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialogs take keys as soon as they are painted; test_key_bursts.py covers the guard."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)


async def settle(pilot: Pilot[None]) -> None:
    """Let workers finish and their messages land."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def table(app: RunctlApp) -> InstanceTable:
    """The fleet table of the dashboard."""
    return app.screen_stack[0].query_one(InstanceTable)


def dashboard(app: RunctlApp) -> MainScreen:
    """The main screen."""
    screen = app.screen_stack[0]
    assert isinstance(screen, MainScreen)
    return screen


def journal(path: Path) -> list[dict[str, object]]:
    """Entries of the audit journal."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def plain(widget: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def notices(app: RunctlApp) -> list[str]:
    """The text of every notification shown so far."""
    return [n.message for n in app._notifications]


def bar_text(app: RunctlApp) -> str:
    """The provider bar as plain text."""
    return app.screen_stack[0].query_one(ProviderBar).text.plain


async def test_poll_fills_table_in_stable_order(make_app: AppFactory) -> None:
    seen: list[Message] = []
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await settle(pilot)
        assert table(app).keys == [
            "aws:i-0f66",  # eu-west-1, live, by name
            "aws:i-0a77",
            "aws:i-0b88",  # eu-west-1, stopped
            "aws:i-0b22",  # us-east-1, live, by name
            "aws:i-0d44",
            "aws:i-0a11",
            "aws:i-0c33",
            "aws:i-0e55",  # us-east-1, stopped
        ]
        assert any(isinstance(m, FleetPolled) for m in seen)
        assert "8 instances" in bar_text(app)
        assert "6 running" in bar_text(app)


async def test_cursor_and_scroll_survive_refresh(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    for n in range(60):
        provider.instances[f"i-1{n:03d}"] = machine(f"i-1{n:03d}", f"worker-{n:03d}")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_to_key("aws:i-1055")  # scrolls down: i-1055 is the last row in view
        grid.move_to_key("aws:i-1050")  # five rows up, still in view
        offset = grid.scroll_offset.y
        assert offset > 0
        # A new instance sorts first; the rows under the cursor shift down by one.
        provider.instances["i-0000"] = machine("i-0000", "aaa-new", region="ap-south-1")
        dashboard(app).poll_now()
        await settle(pilot)
        assert grid.keys[0] == "aws:i-0000"
        assert grid.current is not None
        assert grid.current.id == "i-1050"
        assert grid.scroll_offset.y == offset


async def test_cursor_pushed_out_of_view_is_followed(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    for n in range(60):
        provider.instances[f"i-1{n:03d}"] = machine(f"i-1{n:03d}", f"worker-{n:03d}")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        body = grid.scrollable_content_region.height - 1
        grid.move_cursor(body - 1)  # the last row in view
        key = grid.keys[body - 1]
        assert grid.scroll_offset.y == 0
        for n in range(3):
            provider.instances[f"i-000{n}"] = machine(f"i-000{n}", f"aaa-{n}", region="ap-south-1")
        dashboard(app).poll_now()
        await settle(pilot)
        assert grid.current is not None
        assert grid.current.key == key
        top = grid.scroll_offset.y
        assert top <= grid.cursor_row < top + body


async def test_stop_confirmed_with_y(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    seen: list[Message] = []
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmAction)
        assert app.focused is not None
        assert app.focused.id == "cancel"
        await pilot.press("y")
        await settle(pilot)
        assert provider.acted() == [("stop", "i-0d44")]
        assert any(isinstance(m, ActionsFinished) for m in seen)
        assert table(app).instance("aws:i-0d44").state is InstanceState.STOPPING  # type: ignore[union-attr]
    entries = journal(journal_path)
    assert [(e["id"], e["action"], e["result"]) for e in entries] == [
        ("i-0d44", "stop", "attempted"),
        ("i-0d44", "stop", "done"),
    ]
    assert entries[0]["region"] == "us-east-1"
    assert entries[0]["provider"] == "aws"


async def test_stop_cancel_is_preselected(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        for cancel_key in ("n", "escape", "enter"):
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmAction)
            await pilot.press(cancel_key)
            await settle(pilot)
            assert isinstance(app.screen, MainScreen)
        assert provider.acted() == []
    assert [e["result"] for e in journal(journal_path)] == ["cancelled"] * 3


async def test_stop_modal_names_instance_cost_and_loss(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0f66")
        await pilot.press("s")
        text = " ".join(plain(s) for s in app.screen.query(".target Static").results(Static))
        assert "reward-model-7b" in text
        assert "i-0f66" in text
        assert "p4d.24xlarge" in text
        assert "eu-west-1a" in text
        assert "$21.96/h" in text
        assert "instance-store data (8000 GB" in text


async def test_one_time_spot_cannot_be_stopped(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0c33")
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "one-time spot instance cannot be stopped" in notices(app)[-1]
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == []
    entries = journal(journal_path)
    assert [(e["id"], e["result"]) for e in entries] == [("i-0c33", "refused")]
    assert "one-time spot" in str(entries[0]["detail"])


async def test_start_a_stopped_instance(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0e55")
        await pilot.press("u", "y")
        await settle(pilot)
    assert provider.acted() == [("start", "i-0e55")]


async def test_terminate_needs_the_typed_id(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("T")
        screen = app.screen
        assert isinstance(screen, ConfirmTerminate)
        confirm = screen.query_one("#confirm", Button)
        assert confirm.disabled
        # y does not confirm a terminate; it is typed into the box.
        await pilot.press("y", "enter")
        await settle(pilot)
        assert app.screen is screen
        assert "does not match" in plain(screen.query_one("#mismatch", Static))
        assert provider.acted() == []
        screen.query_one(Input).value = ""
        await pilot.press(*"i-0d44")
        assert not confirm.disabled
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert provider.acted() == [("terminate", "i-0d44")]
    assert [(e["action"], e["result"]) for e in journal(journal_path)] == [
        ("terminate", "attempted"),
        ("terminate", "done"),
    ]


async def test_terminate_mismatch_then_escape(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("T", *"i-0d4", "enter")
        assert isinstance(app.screen, ConfirmTerminate)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
    assert provider.acted() == []


async def test_marked_rows_stop_together(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_to_key("aws:i-0b22")
        await pilot.press("space", "space")  # marks i-0b22 and i-0d44
        assert grid.marked == {"aws:i-0b22", "aws:i-0d44"}
        assert grid.current is not None
        assert grid.current.id == "i-0a11"
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert [t.id for t in screen.targets] == ["i-0b22", "i-0d44"]
        await pilot.press("y")
        await settle(pilot)
        assert grid.marked == set()
    assert sorted(provider.acted()) == [("stop", "i-0b22"), ("stop", "i-0d44")]


async def test_marked_rows_terminate_with_the_word(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0b22")
        await pilot.press("space", "space", "T")
        await pilot.press(*"i-0b22", "enter")
        assert isinstance(app.screen, ConfirmTerminate)
        app.screen.query_one(Input).value = ""
        await pilot.press(*"terminate", "enter")
        await settle(pilot)
    assert sorted(provider.acted()) == [("terminate", "i-0b22"), ("terminate", "i-0d44")]


async def test_readonly_disables_every_action(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "READ-ONLY" in app.sub_title
        table(app).move_to_key("aws:i-0d44")
        for key in ("s", "u", "T"):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, MainScreen)
            assert "read-only mode" in notices(app)[-1]
        pane = dashboard(app).fleet_pane
        # Greyed out in the footer, yet each key said why it did nothing.
        for name in ("stop", "start", "terminate"):
            assert pane.check_action("act", (name,)) is None
    assert provider.acted() == []
    assert [(e["action"], e["result"]) for e in journal(journal_path)] == [
        ("stop", "refused"),
        ("start", "refused"),
        ("terminate", "refused"),
    ]


async def test_remapped_action_key_in_readonly_mode_says_why(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app(readonly=True, keymap={"stop-instance": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "read-only mode" in notices(app)[-1]
    assert [(e["action"], e["result"]) for e in journal(journal_path)] == [("stop", "refused")]


async def test_action_key_with_no_row_says_so(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    provider.instances.clear()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert notices(app)[-1] == "No instance selected."
    assert journal(journal_path) == []


async def test_start_on_a_running_instance_is_refused_without_a_dialog(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert notices(app)[-1].startswith("Cannot start i-0d44 (eval-harness): only a stopped")
        table(app).move_to_key("aws:i-0e55")
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "cannot stop an instance that is stopped" in notices(app)[-1]
    assert provider.acted() == []
    assert [(e["id"], e["result"]) for e in journal(journal_path)] == [
        ("i-0d44", "refused"),
        ("i-0e55", "refused"),
    ]


async def test_some_marked_rows_refused_are_listed_in_the_dialog(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_to_key("aws:i-0a11")
        await pilot.press("space", "space")  # i-0a11 and i-0c33 (one-time spot)
        assert grid.marked == {"aws:i-0a11", "aws:i-0c33"}
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        texts = [" ".join(plain(s) for s in t.query(Static)) for t in screen.query(".target")]
        assert "will be refused: a one-time spot instance cannot be stopped" in texts[1]
        assert "will be refused" not in texts[0]
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == [("stop", "i-0a11")]
    results = {(e["id"], e["result"]) for e in journal(journal_path)}
    assert results == {("i-0a11", "attempted"), ("i-0a11", "done"), ("i-0c33", "refused")}


async def test_marked_rows_hidden_by_the_filter_are_counted(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_to_key("aws:i-0f66")
        await pilot.press("space", "space", "space")  # i-0f66, i-0a77, i-0b88
        await pilot.press("slash", *"reward", "enter")
        assert grid.keys == ["aws:i-0f66"]
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert [t.id for t in screen.targets] == ["i-0f66", "i-0a77", "i-0b88"]
        assert "2 of these are hidden by the filter" in plain(screen.query_one("#hidden", Static))


async def test_protected_instance_cannot_be_terminated(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0a11")
        await pilot.press("T")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert "protected by tag runctl:protect=true" in notices(app)[-1]
        await pilot.press(*"i-0a11", "enter")
        await settle(pilot)
    assert provider.acted() == []
    assert [e["result"] for e in journal(journal_path)] == ["refused"]


async def test_protection_added_after_the_modal_opened_is_honoured(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("T", *"i-0d44")
        provider.instances["i-0d44"] = provider.instances["i-0d44"].model_copy(
            update={"protected": True}
        )
        await pilot.press("enter")
        await settle(pilot)
    assert provider.acted() == []
    entries = journal(journal_path)
    assert entries[0]["result"] == "refused"
    assert "protected" in str(entries[0]["detail"])


async def test_action_bound_to_ids_seen_when_modal_opened(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_to_key("aws:i-0d44")
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmAction)
        # While the modal is open a refresh reorders rows and the cursor lands elsewhere.
        provider.instances["i-0000"] = machine("i-0000", "aaa-new", region="ap-south-1")
        dashboard(app).poll_now()
        await settle(pilot)
        grid.move_cursor(0)
        assert grid.current is not None
        assert grid.current.id == "i-0000"
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == [("stop", "i-0d44")]


async def test_state_changed_since_shown_is_refused(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    seen: list[Message] = []
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("s")
        provider.set_state("i-0d44", InstanceState.STOPPING)
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == []
    finished = [m for m in seen if isinstance(m, ActionsFinished)]
    assert "state changed from running to stopping" in finished[0].results[0].summary()
    assert journal(journal_path)[0]["result"] == "refused"


async def test_credentials_failing_keeps_app_up_and_says_how_to_fix(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.list_error = ProviderError(
        "aws", "AWS SSO session expired or missing", hint="run `aws sso login --profile ml`"
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        assert grid.row_count == 0
        assert "aws sso login --profile ml" in grid.empty_text
        assert "aws sso login --profile ml" in bar_text(app)
        assert "no data yet" in bar_text(app)
        # Credentials fixed: data arrives; then they fail again and the rows stay, marked stale.
        provider.list_error = None
        dashboard(app).poll_now()
        await settle(pilot)
        assert grid.row_count == 8
        provider.list_error = ProviderError(
            "aws", "AWS credentials expired (ExpiredToken)", hint="refresh"
        )
        dashboard(app).poll_now()
        await settle(pilot)
        assert grid.row_count == 8
        assert grid._stale == {"aws"}
        assert "showing data 0s old" in bar_text(app)
        assert app.is_running


async def test_filter_by_any_text(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        await pilot.press("slash", *"sweep")
        assert grid.keys == ["aws:i-0b22"]
        await pilot.press("enter")
        assert app.focused is grid
        assert grid.keys == ["aws:i-0b22"]
        await pilot.press("slash")
        app.screen.query_one("#filter", Input).value = "eu-west"
        await pilot.pause()
        assert len(grid.keys) == 3
        app.screen.query_one("#filter", Input).value = "owner=maria"  # tags match too
        await pilot.pause()
        assert len(grid.keys) == 8
        await pilot.press("escape")
        assert grid.filter_text == ""
        assert len(grid.keys) == 8


async def test_details_panel_follows_cursor(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        details = app.screen.query_one(DetailsPanel)
        assert not details.display
        table(app).move_to_key("aws:i-0f66")
        await pilot.press("enter")
        assert details.display
        text = plain(details.query_one("#details-body", Static))
        for expected in (
            "i-0f66",
            "eu-west-1a",
            "ami-0abc1234def567890",
            "ml-team",
            "vol-0f66",
            "owner",
        ):
            assert expected in text
        await pilot.press("j")
        await pilot.pause()
        moved = plain(details.query_one("#details-body", Static))
        assert "i-0a77" in moved
        assert "i-0f66" not in moved
        await pilot.press("escape")
        assert not details.display


async def test_help_screen_lists_keys(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        keys = dict(screen.keys)
        assert {"s", "u", "T", "r", "/", "space"} <= set(keys)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_keymap_from_config(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app(keymap={"stop-instance": "x"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("s")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmAction)


async def test_refresh_key_polls(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        provider.instances["i-0999"] = machine("i-0999", "late-arrival")
        await pilot.press("r")
        await settle(pilot)
        assert "aws:i-0999" in table(app).keys


async def test_demo_header_says_demo(make_app: AppFactory) -> None:
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "DEMO" in app.sub_title
        assert app.has_class("-demo")


async def test_quit(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_palette_runs_fleet_commands(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Show keys")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)


# Filter, palette, polling and quitting ------------------------------------------------------


async def test_filter_terms_all_match_exclude_and_name_fields(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        box = app.screen.query_one("#filter", Input)
        await pilot.press("slash")
        cases = {
            "running p4d": {"aws:i-0b22", "aws:i-0f66"},
            "!running": {"aws:i-0b88", "aws:i-0e55"},
            "state=stopped region=eu-west-1": {"aws:i-0b88"},
            "REGION=EU-WEST-1 !tokenize": {"aws:i-0f66", "aws:i-0b88"},
            "owner=maria type=g5": {"aws:i-0d44", "aws:i-0e55", "aws:i-0b88"},
            "owner=nobody": set(),
        }
        for text, expected in cases.items():
            box.value = text
            await pilot.pause()
            assert set(grid.keys) == expected, text
        box.value = "running p4d"
        await pilot.pause()
        assert "2 of 8 shown" in bar_text(app)
        assert "filter: running p4d" in bar_text(app)
        await pilot.press("escape")
        assert "shown" not in bar_text(app)


async def test_palette_lists_our_commands_once(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles))
        assert "Show keys" in titles
        assert "Keys" not in titles
        assert "Quit" in titles


def fast_polls(app: RunctlApp, seconds: float = 0.2) -> None:
    """Poll every ``seconds``: shorter than the config allows, for tests only."""
    app.settings = app.settings.model_copy(update={"poll_seconds": seconds})


async def settle_failed(pilot: Pilot[None]) -> None:
    """Like :func:`settle`, when a worker may have failed."""
    for _ in range(3):
        with contextlib.suppress(WorkerFailed):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def list_calls(provider: FakeProvider) -> int:
    """How many times the fleet asked the provider for its instances."""
    return sum(1 for call in provider.calls if call[0] == "list")


async def test_the_timer_polls(make_app: AppFactory, provider: FakeProvider) -> None:
    app = make_app()
    fast_polls(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        provider.instances["i-0999"] = machine("i-0999", "late-arrival")
        await pilot.pause(1.0)
        assert list_calls(provider) >= 3
        await settle(pilot)
        assert "aws:i-0999" in table(app).keys


async def test_refresh_during_a_poll_runs_once_after_it(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    gate = threading.Event()
    provider.list_gate = gate
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.1)
            assert dashboard(app).fleet.polling_since is not None
            await pilot.press("r", "r", "r")
            provider.list_gate = None
            gate.set()
            await settle(pilot)
            await settle(pilot)
            assert list_calls(provider) == 2
            assert table(app).row_count == 8
    finally:
        gate.set()


async def test_a_failing_poll_is_reported_and_polling_goes_on(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    fast_polls(app)
    # Polls fail until the failure has been seen on screen, however slow the machine.
    failures = 1_000
    async with app.run_test(size=SIZE) as pilot:
        screen = dashboard(app)
        poll = screen.fleet.poll_async

        async def flaky(deadline: float | None = None, **options: Any) -> FleetSnapshot:
            nonlocal failures
            if failures:
                failures -= 1
                raise RuntimeError("the poll broke")
            return await poll(deadline, **options)

        screen.fleet.poll_async = flaky  # type: ignore[method-assign]
        for _ in range(200):
            await pilot.pause(0.05)
            if "the poll broke" in bar_text(app):
                break
        assert "polling failed: RuntimeError: the poll broke" in bar_text(app)
        assert app.is_running
        failures = min(failures, 1)
        for _ in range(40):
            await pilot.pause(0.05)
            if table(app).row_count:
                break
        await settle_failed(pilot)
        assert failures == 0
        assert table(app).row_count == 8
        assert "polling failed" not in bar_text(app)


async def test_quit_does_not_wait_for_a_hung_endpoint(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    gate = threading.Event()
    provider.list_gate = gate
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(20):
                await pilot.pause(0.05)
                if dashboard(app).fleet.polling_since is not None:
                    break
            assert dashboard(app).fleet.polling_since is not None
            started = time.monotonic()
            await pilot.press("q")
        elapsed = time.monotonic() - started
        assert not app.is_running
        # About 0.1 s here; the bound is loose so that a busy machine does not fail it.
        assert elapsed < 5
    finally:
        gate.set()


async def test_help_follows_the_keymap(make_app: AppFactory) -> None:
    app = make_app(keymap={"help": "f1", "quit": "Q", "filter": "?"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        keys = {description: key for key, description in screen.keys}
        assert keys[HELP["help"]] == "f1"
        assert keys[HELP["quit"]] == "Q"
        assert keys[HELP["filter"]] == "?"
        notes = dict(screen.notes)
        assert notes["Marks"].startswith("space marks rows; s, u, T")


async def test_palette_action_that_cannot_run_says_why(
    make_app: AppFactory, journal_path: Path
) -> None:
    app = make_app(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Stop instance")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        messages = [str(n.message) for n in app._notifications]
        assert any("read-only" in m for m in messages), messages
    assert [(e["action"], e["result"]) for e in journal(journal_path)] == [("stop", "refused")]
