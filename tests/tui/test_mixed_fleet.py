"""Four providers in one table: every kind of row, each provider's actions, the same safety."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from runctl_tui.models import Action, InstanceState
from runctl_tui.providers.base import ProviderError
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.confirm import ConfirmAction, ConfirmScreen, ConfirmTerminate
from runctl_tui.tui.widgets.instance_table import InstanceTable
from runctl_tui.tui.widgets.provider_bar import ProviderBar
from tests.fakes import FakeProvider

from .test_dashboard import journal, notices, settle, table

MixedApp = Callable[..., RunctlApp]
SnapCompare = Callable[..., bool]

OWN_SSH_RUN = "ssh:lab-a100:3310@23170"
THEIR_SSH_RUN = "ssh:lab-a100:3377@23639"
LOCAL_RUN = "local:48211@337477.5"
PROTECTED_POD = "runpod:p3n8v5c2z6t1y9"
STOPPED_POD = "runpod:e5r8t2y6u9i3o1"


@pytest.fixture(autouse=True)
def unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialogs take keys as soon as they are painted; test_key_bursts.py covers the guard."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)


def provider_of(app: RunctlApp, name: str) -> FakeProvider:
    """The fake behind provider ``name``."""
    provider = app.fleet.providers[name]
    assert isinstance(provider, FakeProvider)
    return provider


async def press_on(pilot: Pilot[None], key: str, *keys: str) -> None:
    """Wait for the first poll, put the cursor on ``key``, press ``keys``, let it land."""
    await settle(pilot)
    table(pilot.app).move_to_key(key)  # type: ignore[arg-type]
    await pilot.press(*keys)
    await settle(pilot)


def then(*keys: str, key: str | None = None) -> Callable[[Pilot[None]], Awaitable[None]]:
    """For snapshots: the first poll, the cursor on ``key``, then ``keys``."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        if key:
            pilot.app.screen.query_one(InstanceTable).move_to_key(key)
        await pilot.press(*keys)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    return run_before


# What is shown -----------------------------------------------------------------------------------


async def test_every_provider_and_kind_is_in_one_table(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        keys = table(app).keys
        assert {k.split(":")[0] for k in keys} == {"aws", "runpod", "local", "ssh"}
        # A host comes before its runs.
        assert keys.index("ssh:lab-a100") < keys.index(OWN_SSH_RUN)
        bar = app.screen_stack[0].query_one(ProviderBar).text.plain
        assert "4 providers: aws 4 · runpod 4 · local 2 · ssh 3" in bar


async def test_a_provider_filter_narrows_the_table(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *":ssh", "enter")
        await settle(pilot)
        assert table(app).keys == ["ssh:lab-a100", OWN_SSH_RUN, THEIR_SSH_RUN]


# Each provider's actions through the same keys ---------------------------------------------------


async def test_stop_on_a_run_interrupts_it(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, OWN_SSH_RUN, "s")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert screen.action is Action.INTERRUPT
        assert screen.title_text() == "Interrupt run?"
        await pilot.press("y")
        await settle(pilot)
        assert provider_of(app, "ssh").acted() == [("interrupt", "lab-a100:3310@23170")]
        assert [e["result"] for e in journal(app.fleet.journal.path)] == ["attempted", "done"]


async def test_terminate_on_a_run_kills_it_after_its_pid_is_typed(
    make_mixed_app: MixedApp,
) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, LOCAL_RUN, "T")
        screen = app.screen
        assert isinstance(screen, ConfirmTerminate)
        assert screen.action is Action.KILL
        assert screen.expected() == "48211"
        await pilot.press(*"48211", "enter")
        await settle(pilot)
        assert provider_of(app, "local").acted() == [("kill", "48211@337477.5")]


async def test_another_users_run_is_refused_without_a_dialog(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, THEIR_SSH_RUN, "T")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "belongs to kenji; only your own processes are acted on" in notices(app)[-1]
        assert provider_of(app, "ssh").acted() == []
        assert [e["result"] for e in journal(app.fleet.journal.path)] == ["refused"]


async def test_a_host_takes_no_action(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, "ssh:lab-a100", "s")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "stop does not apply to a whole host" in notices(app)[-1]


async def test_a_pod_named_with_the_marker_is_never_terminated(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, PROTECTED_POD, "T")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "protected by name contains [protect]" in notices(app)[-1]
        assert provider_of(app, "runpod").acted() == []


async def test_a_stopped_pod_is_resumed(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, STOPPED_POD, "u")
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert screen.title_text() == "Start pod?"
        await pilot.press("y")
        await settle(pilot)
        runpod = provider_of(app, "runpod")
        assert runpod.acted() == [("start", "e5r8t2y6u9i3o1")]
        assert runpod.instances["e5r8t2y6u9i3o1"].state is InstanceState.PENDING


async def test_marked_rows_of_two_kinds_act_on_the_kind_first_marked(
    make_mixed_app: MixedApp,
) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.move_to_key(OWN_SSH_RUN)
        await pilot.press("space")
        grid.move_to_key("aws:i-0d44")
        await pilot.press("space")
        await pilot.press("s")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ConfirmAction)
        assert screen.action is Action.STOP
        assert "takes interrupt, not stop" in screen.refused[OWN_SSH_RUN]


async def test_read_only_refuses_every_provider(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app(readonly=True)
    async with app.run_test(size=(160, 45)) as pilot:
        for key, press in ((LOCAL_RUN, "T"), (STOPPED_POD, "u"), ("aws:i-0d44", "s")):
            await press_on(pilot, key, press)
            assert not isinstance(app.screen, ConfirmScreen)
            assert "read-only mode" in notices(app)[-1]
        for name in ("aws", "runpod", "local", "ssh"):
            assert provider_of(app, name).acted() == []


async def test_a_running_pod_is_stopped_and_another_terminated(make_mixed_app: MixedApp) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await press_on(pilot, "runpod:x7k2m9q4w1e8r3", "s")
        assert isinstance(app.screen, ConfirmAction)
        assert app.screen.title_text() == "Stop pod?"
        await pilot.press("y")
        await settle(pilot)
        await press_on(pilot, "runpod:s4d7f1g8h2j5k0", "T")
        assert isinstance(app.screen, ConfirmTerminate)
        await pilot.press(*"s4d7f1g8h2j5k0", "enter")
        await settle(pilot)
        assert provider_of(app, "runpod").acted() == [
            ("stop", "x7k2m9q4w1e8r3"),
            ("terminate", "s4d7f1g8h2j5k0"),
        ]


# Snapshots ---------------------------------------------------------------------------------------


def test_mixed_fleet(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    # The cursor placed, not left where the provider that answered first put it.
    run_before = then(key="aws:i-0b22")
    assert snap_compare(make_mixed_app(), terminal_size=(160, 45), run_before=run_before)


def test_mixed_fleet_narrow(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    assert snap_compare(make_mixed_app(), terminal_size=(80, 24), run_before=then(key="aws:i-0b22"))


def test_interrupt_modal(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    assert snap_compare(
        make_mixed_app(), terminal_size=(160, 45), run_before=then("s", key=OWN_SSH_RUN)
    )


def test_kill_modal(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    assert snap_compare(
        make_mixed_app(), terminal_size=(160, 45), run_before=then("T", key=LOCAL_RUN)
    )


def test_pod_details(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    assert snap_compare(
        make_mixed_app(),
        terminal_size=(160, 45),
        run_before=then("enter", key="runpod:x7k2m9q4w1e8r3"),
    )


def test_host_details(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    assert snap_compare(
        make_mixed_app(), terminal_size=(160, 45), run_before=then("enter", key="ssh:lab-a100")
    )


def test_run_details(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    assert snap_compare(
        make_mixed_app(), terminal_size=(160, 45), run_before=then("enter", key=OWN_SSH_RUN)
    )


async def test_the_footer_greys_out_what_the_cursor_row_does_not_take(
    make_mixed_app: MixedApp,
) -> None:
    app = make_mixed_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        pane = app.screen_stack[0].query_one("FleetPane")
        table(app).move_to_key("ssh:lab-a100")
        await pilot.pause()
        assert [pane.check_action("act", (name,)) for name in ("stop", "start", "terminate")] == [
            None,
            None,
            None,
        ]
        table(app).move_to_key(OWN_SSH_RUN)
        await pilot.pause()
        assert [pane.check_action("act", (name,)) for name in ("stop", "start", "terminate")] == [
            True,
            None,
            True,
        ]
        table(app).move_to_key(STOPPED_POD)
        await pilot.pause()
        assert pane.check_action("act", ("start",)) is True


def test_three_providers_one_failing(snap_compare: SnapCompare, make_mixed_app: MixedApp) -> None:
    """Up to three providers, each has its own status line; a failing one says why and how."""
    app = make_mixed_app(only=("aws", "runpod", "ssh"))
    runpod = provider_of(app, "runpod")
    runpod.list_error = ProviderError(
        "runpod", "rate limited; retrying in 30 s", hint="wait, or poll less often"
    )
    assert snap_compare(app, terminal_size=(160, 45), run_before=then(key="aws:i-0b22"))
