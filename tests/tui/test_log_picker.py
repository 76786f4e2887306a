"""``l`` opens a row's likeliest log at once; ``L`` lists every candidate to pick one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import OptionList

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.providers.base import LogLocation, ProviderError
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes.logs import LogsPane
from runctl_tui.tui.screens.log_picker import LogPicker, option_text
from tests.fakes import FakeProvider

from .conftest import NOW, host
from .test_dashboard import notices, settle
from .test_panes import shown_pane

HOSTILE = "[bold red]pwned[/] \x1b[31m\nrun.log"


def make_app(provider: FakeProvider, tmp_path: Path) -> RunctlApp:
    """The dashboard over ``provider`` alone, frozen clock, no background polls."""
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), clock=lambda: NOW)
    return RunctlApp(Settings(poll_seconds=3600), fleet, clock=lambda: NOW)


def candidates(tmp_path: Path) -> list[LogLocation]:
    """Three real files: the likeliest, one with a hostile name, a recent one."""
    first = tmp_path / "train.log"
    hostile = tmp_path / HOSTILE.replace("/", "_")
    recent = tmp_path / "old.log"
    for path in (first, hostile, recent):
        path.write_text("step 1 loss 2.5\n")
    return [
        LogLocation(str(first), found="matches ~/train/*.log · modified just now · 16 B"),
        LogLocation(str(hostile), found="[link=x]matches[/link] ~/*.log", size=16),
        LogLocation(str(recent), found="recent *.log · modified 2 h ago · 16 B"),
    ]


async def until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    """Let the app run until ``condition`` holds (a tail never completes: no waiting on it)."""
    for _ in range(1000):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("the condition never held")


def opened(app: RunctlApp) -> list[str]:
    """The keys of the log tabs open in the logs pane."""
    return [tab.key for tab in app.screen_stack[0].query_one(LogsPane).tabs]


async def test_l_opens_the_likeliest_and_says_L_picks_another(tmp_path: Path) -> None:
    logs = candidates(tmp_path)
    provider = FakeProvider([host("local", "ws", "ws")], name="local", logs={"host": logs})
    app = make_app(provider, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await until(pilot, lambda: bool(opened(app)) and bool(notices(app)))

        assert shown_pane(app) == "logs"
        assert len(opened(app)) == 1
        assert logs[0].path in opened(app)[0]
        last = notices(app)[-1]
        assert "matches ~/train/*.log" in last
        assert "L to pick another" in last


async def test_L_lists_every_candidate_and_enter_opens_the_chosen(tmp_path: Path) -> None:
    logs = candidates(tmp_path)
    provider = FakeProvider([host("local", "ws", "ws")], name="local", logs={"host": logs})
    app = make_app(provider, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LogPicker) or bool(notices(app)))

        picker = app.screen
        assert isinstance(picker, LogPicker)
        options = picker.query_one(OptionList)
        assert options.option_count == 3
        assert options.highlighted == 0
        shown = [options.get_option_at_index(n).prompt for n in range(3)]
        # The hostile name is shown literally, escaped: no markup applied, no raw controls.
        second = str(shown[1])
        assert "[bold red]pwned[_] ␛[31m␤run.log" in second
        assert "[link=x]matches[/link]" in second
        assert "\x1b" not in second
        assert "\n" in second  # the path line, then how it was found: two lines only
        assert second.count("\n") == 1

        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: bool(opened(app)))

        assert not isinstance(app.screen, LogPicker)
        assert shown_pane(app) == "logs"
        assert len(opened(app)) == 1
        assert logs[2].path in opened(app)[0]


async def test_escape_closes_the_picker_and_opens_nothing(tmp_path: Path) -> None:
    logs = candidates(tmp_path)
    provider = FakeProvider([host("local", "ws", "ws")], name="local", logs={"host": logs})
    app = make_app(provider, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LogPicker) or bool(notices(app)))
        assert isinstance(app.screen, LogPicker)

        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogPicker))

        assert not isinstance(app.screen, LogPicker)
        assert shown_pane(app) == "fleet"
        assert opened(app) == []


async def test_no_candidate_says_what_to_configure(tmp_path: Path) -> None:
    provider = FakeProvider([host("local", "ws", "ws")], name="local")
    app = make_app(provider, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LogPicker) or bool(notices(app)))

        assert not isinstance(app.screen, LogPicker)
        last = notices(app)[-1]
        assert "\n" not in last
        assert "[logs] paths" in last
        assert "runctl-tui tail PATH" in last


async def test_a_failure_is_one_line(tmp_path: Path) -> None:
    provider = FakeProvider([host("local", "ws", "ws")], name="local")
    provider.logs_error = ProviderError("local", "i-1 is stopped: its logs are read over SSH")
    app = make_app(provider, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await until(pilot, lambda: bool(notices(app)))

        last = notices(app)[-1]
        assert last == "ws: cannot find its log: i-1 is stopped: its logs are read over SSH"


def test_option_text_names_the_remote_host() -> None:
    text = option_text(LogLocation("/w/a.log", target="root@10.0.0.1:2222", found="x"))

    assert text.plain == "/w/a.log  on root@10.0.0.1:2222\n  x"
