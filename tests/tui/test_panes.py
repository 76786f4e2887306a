"""The shell of panes: switching by key and palette, the journal pane, the pane catalog."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.text import Text
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable, Static

from runctl_tui.keys import PANES, PaneEntry
from runctl_tui.models import Action
from runctl_tui.text import clean
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes import Pane, pane_class
from runctl_tui.tui.panes.fleet import FleetPane
from runctl_tui.tui.panes.journal import JournalPane, entry_cells, read_journal
from runctl_tui.tui.screens.confirm import ConfirmAction, ConfirmScreen
from runctl_tui.tui.screens.main import MainScreen
from tests.fakes import FakeProvider, make_run

from .conftest import AppFactory, machine
from .test_dashboard import journal, notices, settle, table
from .test_key_bursts import burst

SIZE = (160, 45)

HOSTILE = "[bold red]pwned[/] \x1b[31mred\x1b[0m \u202eevil"
"""A name that is markup, an escape sequence and a bidi override at once."""


@pytest.fixture(autouse=True)
def unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialogs take keys as soon as they are painted; test_key_bursts.py covers the guard."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)


def main_screen(app: RunctlApp) -> MainScreen:
    """The main screen."""
    screen = app.screen_stack[0]
    assert isinstance(screen, MainScreen)
    return screen


def shown_pane(app: RunctlApp) -> str | None:
    """The id of the pane on screen."""
    return main_screen(app).query_one(ContentSwitcher).current


def journal_pane(app: RunctlApp) -> JournalPane:
    """The journal pane."""
    return main_screen(app).query_one(JournalPane)


def journal_rows(app: RunctlApp) -> list[list[str]]:
    """The journal pane's rows as plain text, top first."""
    entries: DataTable[Text] = journal_pane(app).entries
    return [[cell.plain for cell in entries.get_row_at(n)] for n in range(entries.row_count)]


def focused(app: RunctlApp) -> Widget | None:
    """The focused widget."""
    return app.focused


def where_line(app: RunctlApp) -> str:
    """The journal pane's first line."""
    content = journal_pane(app).query_one("#journal-where", Static).content
    return content.plain if isinstance(content, Text) else str(content)


# Switching ---------------------------------------------------------------------------------


async def test_pane_keys_switch_and_focus_the_pane(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert shown_pane(app) == "fleet"
        assert focused(app) is table(app)
        await pilot.press("2")
        await settle(pilot)
        assert shown_pane(app) == "journal"
        assert focused(app) is journal_pane(app).entries
        assert not main_screen(app).fleet_pane.display
        await pilot.press("1")
        await settle(pilot)
        assert shown_pane(app) == "fleet"
        assert focused(app) is table(app)


async def test_fleet_keys_do_nothing_on_the_journal(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        burst(app, "2", "s", "y", "T")
        await settle(pilot)
        assert app.screen is main_screen(app)
        assert shown_pane(app) == "journal"
    assert provider.acted() == []
    assert journal(journal_path) == []


async def test_pane_keys_are_in_the_footer(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        keys = {
            getattr(k, "key_display", ""): getattr(k, "description", "")
            for k in app.screen.query("FooterKey")
        }
        assert keys.get("1") == "Fleet"
        assert keys.get("2") == "Journal"
        # Still there on the journal, whose own keys are few.
        await pilot.press("2")
        await settle(pilot)
        shown = {getattr(k, "key_display", "") for k in app.screen.query("FooterKey")}
        assert {"1", "2", "?", "q"} <= shown


async def test_pane_keys_follow_the_keymap(make_app: AppFactory) -> None:
    app = make_app(keymap={"pane-journal": "f5", "pane-fleet": "f4"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert shown_pane(app) == "fleet"
        await pilot.press("f5")
        await settle(pilot)
        assert shown_pane(app) == "journal"
        await pilot.press("f4")
        await settle(pilot)
        assert shown_pane(app) == "fleet"


async def test_palette_switches_panes(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Show the journal")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is main_screen(app)
        assert shown_pane(app) == "journal"


async def test_palette_has_every_action_and_every_pane(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles))
        for title in ("Interrupt run(s)", "Kill run(s)", "Stop instance(s)", "Show the fleet"):
            assert title in titles
        assert "Show the journal" in titles


async def test_palette_action_from_the_journal_acts_on_the_fleet(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0d44")
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Stop instance")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmAction)
        assert shown_pane(app) == "fleet"
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == [("stop", "i-0d44")]


async def test_help_lists_the_pane_keys_from_any_pane(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2", "question_mark")
        await settle(pilot)
        keys = dict(getattr(app.screen, "keys", ()))
        assert {"1", "2", "s", "T", "/"} <= set(keys)


# Acting through the fleet pane -------------------------------------------------------------


async def test_stop_key_interrupts_a_training_run(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    run = make_run(4242, provider="aws")
    provider.instances[run.id] = run
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key(run.key)
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert screen.action is Action.INTERRUPT
        await pilot.press("y")
        await settle(pilot)
    assert provider.acted() == [("interrupt", run.id)]
    assert [(e["action"], e["result"]) for e in journal(journal_path)] == [
        ("interrupt", "attempted"),
        ("interrupt", "done"),
    ]


# The journal pane --------------------------------------------------------------------------


async def test_journal_pane_shows_what_the_fleet_wrote_newest_first(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    provider.instances["i-0bad"] = machine("i-0bad", HOSTILE)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert "no entries yet" in where_line(app)
        assert clean(journal_path) in where_line(app)
        await pilot.press("1")
        table(app).move_to_key("aws:i-0e55")
        await pilot.press("u", "escape")  # cancelled
        await settle(pilot)
        table(app).move_to_key("aws:i-0bad")
        await pilot.press("s", "y")
        await settle(pilot)
        # Read again as the action finished, before the pane is shown again.
        read = journal_pane(app).last_read
        assert read is not None
        assert read.total == 3
        await pilot.press("2")
        await settle(pilot)
        rows = journal_rows(app)
        assert [(row[1], row[2], row[4]) for row in rows] == [
            ("stop", "done", "i-0bad"),
            ("stop", "attempted", "i-0bad"),
            ("start", "cancelled", "i-0e55"),
        ]
        # The name exactly as written, escaped, never taken for markup.
        assert rows[0][5] == clean(HOSTILE)
        assert "[bold red]pwned[/]" in rows[0][5]
        assert "\x1b" not in rows[0][5]
        assert "\u202e" not in rows[0][5]
        assert rows[0][6].startswith("now stopping")
        assert where_line(app) == f"Audit journal {clean(journal_path)} · 3 entries"


@pytest.fixture
def journal_is_a_directory(journal_path: Path) -> None:
    """Something that cannot be read as the journal stands where it should be."""
    journal_path.mkdir()


@pytest.mark.usefixtures("journal_is_a_directory")
async def test_journal_pane_says_in_one_line_when_it_cannot_read(
    make_app: AppFactory, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        line = where_line(app)
        assert line == f"cannot read the audit journal {journal_path}: not a regular file"
        assert journal_rows(app) == []
        assert app.is_running
        assert not any("Traceback" in n for n in notices(app))


def test_read_journal_counts_skips_and_keeps_values_raw(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    lines = [
        json.dumps({"time": f"t{n}", "action": "stop", "result": "done", "name": HOSTILE})
        for n in range(5)
    ]
    lines[2:2] = ["not json", "[1, 2]", ""]
    path.write_text("\n".join(lines) + "\n")
    read = read_journal(path, limit=3)
    assert read.total == 5
    assert read.unreadable == 2
    assert [e["time"] for e in read.entries] == ["t4", "t3", "t2"]
    assert read.entries[0]["name"] == HOSTILE
    assert read.where() == (
        f"Audit journal {clean(path)} · 5 entries · the newest 3 shown · 2 unreadable lines skipped"
    )


def test_entry_cells_are_plain_text_with_controls_escaped() -> None:
    entry = {
        "time": "2026-11-23T12:00:00+00:00",
        "action": "terminate",
        "outcome": "failed",
        "provider": "aws\n",
        "id": "i-1",
        "name": HOSTILE,
        "detail": None,
        "state_after": None,
    }
    cells = entry_cells(entry)
    assert [cell.plain for cell in cells] == [
        "2026-11-23T12:00:00+00:00",
        "terminate",
        "failed",
        clean("aws\n"),
        "i-1",
        clean(HOSTILE),
        "",
    ]
    assert all(not cell.spans for cell in cells)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_in_place_of_the_journal_is_never_opened(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    os.mkfifo(path)
    read = read_journal(path)
    assert read.error == f"cannot read the audit journal {path}: not a regular file"


# The catalog -------------------------------------------------------------------------------


def test_every_pane_of_the_catalog_has_its_module() -> None:
    classes = [pane_class(entry) for entry in PANES]
    assert classes[:2] == [FleetPane, JournalPane]
    assert [cls.PANE_ID for cls in classes] == [entry.id for entry in PANES]


def test_a_catalog_entry_without_its_module_fails_loudly() -> None:
    with pytest.raises(ModuleNotFoundError):
        pane_class(PaneEntry("nowhere", "Nowhere", ("9",), "no such pane"))
    assert all(issubclass(pane_class(entry), Pane) for entry in PANES)
