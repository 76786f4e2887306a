"""The confirmation modals: hostile text, losses and money as they stand, spot requests, fit."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Static

from runctl_tui.audit import Journal
from runctl_tui.costs.rates import hourly_cost
from runctl_tui.models import (
    Action,
    ActionResult,
    Instance,
    InstanceState,
    Outcome,
    Volume,
)
from runctl_tui.providers.aws import ec2_losses
from runctl_tui.providers.base import ProviderError, SpotRequest
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.confirm import (
    CANCELLED,
    ConfirmAction,
    ConfirmScreen,
    ConfirmTerminate,
    Decision,
    result_notices,
    target_text,
)
from runctl_tui.tui.screens.main import MainScreen
from tests.fakes import FakeProvider

from .conftest import AppFactory, machine, sample_fleet, with_details
from .test_dashboard import journal, settle, table

SIZE = (160, 45)
HOSTILE_NAMES = [
    "[/]",
    "[@click=app.quit]x[/]",
    "[link=https://evil.example]runbook[/link]",
    "i-0b22 p4d.24xlarge us-east-1a running",
    "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[31mred",
    "a\nb",
    "\u202eevil",
    "zero\u200bwidth",
    "\x9bC1",
    "x" * 10_000,
]


@pytest.fixture(autouse=True)
def unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dialogs take keys as soon as they are painted; test_key_bursts.py covers the guard."""
    monkeypatch.setattr(ConfirmScreen, "GUARD_SECONDS", 0.0)


def rendered(widget: Widget) -> list[str]:
    """The lines ``widget`` paints, as plain text."""
    width, height = widget.size
    return [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


def target_lines(screen: ConfirmScreen, n: int) -> list[str]:
    """The lines the ``n``-th target paints: its identity line, then the details."""
    lines: list[str] = []
    for widget in screen.query_one(f"#target-{n}").query(Static):
        lines.extend(rendered(widget))
    return lines


def modal_lines(screen: ConfirmScreen) -> list[str]:
    """Every line the modal's text widgets paint."""
    lines: list[str] = []
    for widget in screen.query(Static):
        lines.extend(rendered(widget))
    return lines


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character a terminal would act on or hide."""
    return any(unicodedata.category(c) in {"Cc", "Cf"} for c in text)


def notices(app: RunctlApp) -> list[str]:
    """The text of every notification shown so far."""
    return [n.message for n in app._notifications]


async def ask(pilot: Pilot[None], key: str, *keys: str) -> ConfirmScreen:
    """Wait for the first poll, put the cursor on ``key``, press ``keys``; the modal opened."""
    await settle(pilot)
    table(pilot.app).move_to_key(key)  # type: ignore[arg-type]
    await pilot.press(*keys)
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ConfirmScreen)
    return screen


# Hostile text ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_name_is_shown_after_the_real_identity(
    make_app: AppFactory, provider: FakeProvider, name: str
) -> None:
    provider.set(machine("i-0d44", name, store_gb=250))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "s")
        first = target_lines(screen, 0)[0]
        assert first.startswith("i-0d44  g5.xlarge  us-east-1a  running")
        assert not has_control("".join(modal_lines(screen)))
        await pilot.press("y")
        await settle(pilot)
        assert app.is_running
        assert isinstance(app.screen, MainScreen)
        assert not has_control("".join(notices(app)))
        assert notices(app)[-1].startswith("stop: i-0d44 (")
    assert provider.acted() == [("stop", "i-0d44")]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_name_in_the_terminate_modal(
    make_app: AppFactory, provider: FakeProvider, name: str
) -> None:
    provider.set(machine("i-0d44", name))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "T")
        assert target_lines(screen, 0)[0].startswith("i-0d44  ")
        assert "Type i-0d44 to confirm:" in rendered(screen.query_one("#typed", Static))[0]
        await pilot.press(*"i-0d44", "enter")
        await settle(pilot)
        assert app.is_running
    assert provider.acted() == [("terminate", "i-0d44")]


async def test_a_name_cannot_impersonate_another_instance(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.set(machine("i-0d44", "i-0b22 p4d.24xlarge us-east-1a running\nrenamed"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "s")
        lines = target_lines(screen, 0)
        assert lines[0].startswith("i-0d44  g5.xlarge  us-east-1a  running   i-0b22 p4d")
        assert "␤renamed" in lines[0]
        # The impersonating text never starts a line of its own.
        assert not any(line.lstrip().startswith("i-0b22") for line in modal_lines(screen))


async def test_a_long_name_cannot_wrap_into_a_line_of_its_own(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.set(machine("i-0d44", "x" * 40 + " i-0b22 p4d.24xlarge us-east-1a running"))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "s")
        lines = target_lines(screen, 0)
        assert lines[0].startswith("i-0d44  g5.xlarge  us-east-1a  running   xxxx")
        assert lines[0].rstrip().endswith("…")
        assert lines[1].strip().startswith("$1.01/h")
        assert not any("i-0b22" in line for line in lines[1:])


async def test_long_name_is_cut_to_one_line(make_app: AppFactory, provider: FakeProvider) -> None:
    provider.set(machine("i-0d44", "n" * 10_000))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "s")
        lines = target_lines(screen, 0)
        assert lines[0].rstrip().endswith("…")
        assert lines[1].strip().startswith("$")


async def test_hostile_volume_ids_and_protect_tag_are_plain_text(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    volumes = (
        Volume(id="[/]vol-1\x1b[31m", device="/dev/sda1", delete_on_termination=True),
        Volume(id="[@click=app.quit]vol-2", device="/dev/sdb", delete_on_termination=False),
    )
    base = machine("i-0d44", "eval")
    details = base.details.model_copy(update={"volumes": volumes})
    provider.set(base.model_copy(update={"details": details}))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "T")
        text = "\n".join(target_lines(screen, 0))
        assert "EBS volumes deleted: [/]vol-1␛[31m" in text
        assert "EBS volumes kept (still billed): [@click=app.quit]vol-2" in text
        assert app.is_running


async def test_hostile_protect_tag_is_plain_text(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    protected = machine("i-0d44", "eval", protected=True)
    provider.set(protected.model_copy(update={"protected_by": "tag [b]keep[/b]=true"}))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "s")
        assert "! protected (tag [b]keep[/b]=true)" in "\n".join(modal_lines(screen))


async def test_hostile_error_text_is_shown_literally(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.action_error = ProviderError("aws", "[/] denied [@click=app.quit]x[/] \x1b[31m")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, "aws:i-0d44", "s")
        await pilot.press("y")
        await settle(pilot)
        await pilot.pause(0.2)
        assert app.is_running
        last = notices(app)[-1]
        assert last.startswith("stop failed: i-0d44 (eval-harness): [/] denied [@click=app.quit]")
        assert "␛[31m" in last
        assert not has_control(last)


@given(name=st.text(), volume=st.text(min_size=1), tag=st.text(min_size=1))
def test_any_text_renders_as_plain_lines_after_the_identity(
    name: str, volume: str, tag: str
) -> None:
    instance = with_details(
        machine("i-0d44", name, protected=True),
        volumes=(Volume(id=volume, device="/dev/sda1", delete_on_termination=True),),
    ).model_copy(update={"protected_by": tag})
    console = Console(width=120, color_system=None, legacy_windows=False)
    for action in (Action.STOP, Action.TERMINATE):
        text = target_text(action, instance, said=ec2_losses(action, instance))
        segments = list(console.render(text))
        lines = "".join(s.text for s in segments if not s.control).split("\n")
        assert not any(has_control(line) for line in lines)
        assert not any(s.control for s in segments)
        assert text.plain.startswith("i-0d44  g5.xlarge  us-east-1a  running   ")
        assert text.plain.splitlines()[1].startswith("   $1.01/h")


# Losses and money as they stand ------------------------------------------------------------


def test_target_text_labels_an_estimate() -> None:
    elsewhere = machine("i-1", "a", "g5.xlarge", region="eu-west-1")
    text = target_text(Action.STOP, elsewhere).plain
    assert "~$1.01/h (estimate: us-east-1 price)" in text


def test_target_text_of_a_stopped_instance_costs_nothing_now() -> None:
    stopped = machine("i-1", "a", state=InstanceState.STOPPED)
    text = target_text(Action.TERMINATE, stopped).plain
    assert "no compute billed while stopped" in text
    assert "$1.21/h" not in text


async def test_unknown_store_in_the_modal(make_app: AppFactory, provider: FakeProvider) -> None:
    provider.set(
        with_details(
            machine("i-0d44", "eval"),
            instance_store_gb=None,
            type_facts_missing="no permission to describe instance types",
        )
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "s")
        text = "\n".join(modal_lines(screen))
        assert "instance-store data: unknown (no permission to describe instance types)" in text


async def test_saves_counts_only_what_costs_something_now(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.marked = {"aws:i-0d44", "aws:i-0e55"}  # running g5.xlarge, stopped g5.2xlarge
        screen = await ask(pilot, "aws:i-0d44", "T")
        summary = "".join(rendered(screen.query_one("#summary", Static)))
        running = hourly_cost(provider.instances["i-0d44"])
        assert running == Decimal("1.006")
        assert "Saves about $1.01/h" in summary


async def test_starting_bills_the_list_rate(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0e55", "u")
        summary = "".join(rendered(screen.query_one("#summary", Static)))
        assert "Starting bills about $1.21/h" in summary


async def test_estimate_in_the_modal(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0f66", "s")
        text = "\n".join(modal_lines(screen))
        assert "~$21.96/h (estimate: us-east-1 price)" in text
        assert "estimated from another region's prices" in text


async def test_spot_rate_is_an_upper_bound(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0b22", "s")
        text = "\n".join(modal_lines(screen))
        assert "≤$21.96/h (on-demand list price; spot bills less)" in text
        assert "Saves at most $21.96/h" in text


# Spot requests -----------------------------------------------------------------------------


class SpotProvider(FakeProvider):
    """The sample fleet, with a persistent spot request behind i-0b22."""

    def __init__(self, instances: list[Instance]) -> None:
        super().__init__(instances, name="aws")
        self.requests = {"i-0b22": SpotRequest(id="sir-0b22", type="persistent", state="active")}
        self.lookup_error: ProviderError | None = None

    def spot_request(self, instance: Instance) -> SpotRequest | None:
        """The request behind ``instance``."""
        self.calls.append(("spot-request", instance.id))
        if self.lookup_error is not None:
            raise self.lookup_error
        return self.requests.get(instance.id)

    def cancel_spot_request(self, instance: Instance, request_id: str) -> str:
        """Cancel it."""
        self.calls.append(("cancel-spot-request", request_id))
        self.requests.pop(instance.id, None)
        return "cancelled"


@pytest.fixture
def provider() -> FakeProvider:
    """The sample fleet, with spot requests."""
    return SpotProvider(sample_fleet())


async def test_terminate_offers_to_cancel_the_persistent_spot_request(
    make_app: AppFactory, provider: FakeProvider, journal_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0b22", "T")
        await settle(pilot)
        text = "\n".join(modal_lines(screen))
        assert "its persistent spot request sir-0b22 (active) will launch a replacement" in text
        box = screen.query_one("#cancel-spot", Checkbox)
        assert box.display
        assert box.value
        assert "also cancel spot request sir-0b22" in str(box.label)
        await pilot.press(*"i-0b22", "enter")
        await settle(pilot)
    assert ("cancel-spot-request", "sir-0b22") in provider.calls
    assert provider.acted() == [("terminate", "i-0b22")]
    actions = [(e["action"], e["result"]) for e in journal(journal_path)]
    assert ("cancel-spot-request", "done") in actions
    assert ("terminate", "done") in actions


async def test_the_spot_choice_is_passed_to_the_fleet(
    make_app: AppFactory, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    asked: list[bool] = []
    act = app.fleet.act

    async def spy(
        action: Action, targets: Sequence[Instance], **options: Any
    ) -> list[ActionResult]:
        asked.append(options["cancel_spot_requests"])
        return await act(action, targets, **options)

    monkeypatch.setattr(app.fleet, "act", spy)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0b22", "T")
        await settle(pilot)
        screen.query_one("#cancel-spot", Checkbox).value = False
        await pilot.press(*"i-0b22", "enter")
        await settle(pilot)
        screen = await ask(pilot, "aws:i-0d44", "T")
        await pilot.press(*"i-0d44", "enter")
        await settle(pilot)
    assert asked == [False, False]


async def test_spot_decision_reaches_the_fleet(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0b22", "T")
        await settle(pilot)
        screen.query_one("#cancel-spot", Checkbox).value = False
        await pilot.press(*"i-0b22", "enter")
        await settle(pilot)
    assert not any(call[0] == "cancel-spot-request" for call in provider.calls)
    assert provider.acted() == [("terminate", "i-0b22")]


async def test_terminate_waits_for_the_spot_lookup(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).move_to_key("aws:i-0b22")
        await pilot.press("T")
        screen = app.screen
        assert isinstance(screen, ConfirmTerminate)
        screen.spot_pending = True  # as if the lookup were still running
        screen.query_one("#typed-input", Input).value = "i-0b22"
        screen.confirm()
        await pilot.pause()
        assert app.screen is screen
        assert "still checking spot requests" in str(screen.query_one("#ignored", Static).content)


async def test_failed_spot_lookup_still_warns(make_app: AppFactory, provider: FakeProvider) -> None:
    assert isinstance(provider, SpotProvider)
    provider.lookup_error = ProviderError("aws", "UnauthorizedOperation")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0b22", "T")
        await settle(pilot)
        text = "\n".join(modal_lines(screen))
        assert "persistent spot: may launch a replacement (request not found)" in text
        box = screen.query_one("#cancel-spot", Checkbox)
        assert box.display
        assert box.value


async def test_stopping_a_persistent_spot_instance_says_nothing_of_replacements(
    make_app: AppFactory,
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0b22", "s")
        assert "replacement" not in "\n".join(modal_lines(screen))
        assert not screen.spot_pending


async def test_no_spot_choice_for_an_on_demand_instance(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await ask(pilot, "aws:i-0d44", "T")
        assert not screen.query_one("#cancel-spot", Checkbox).display
        assert not screen.spot_pending


# The journal -------------------------------------------------------------------------------


async def test_unwritable_journal_refuses_with_the_path(
    make_app: AppFactory, provider: FakeProvider, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = make_app()
    app.fleet.journal = Journal(blocker / "journal.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.marked = {"aws:i-0d44", "aws:i-0a77"}
        await ask(pilot, "aws:i-0d44", "s")
        await pilot.press("y")
        await settle(pilot)
        last = notices(app)[-1]
        assert last.startswith("stop refused: ")
        assert "and 1 more" in last
        assert str(blocker / "journal.jsonl") in last
    assert provider.acted() == []


# Fit at 80x24 ------------------------------------------------------------------------------


def inside(widget: Widget, screen: Region) -> bool:
    """Whether ``widget`` is on screen, whole."""
    region = widget.region
    return region.area > 0 and screen.contains_region(region)


async def test_terminate_of_every_row_fits_80x24(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.marked = set(grid.keys)
        screen = await ask(pilot, grid.keys[0], "T")
        full = Region(0, 0, 80, 24)
        for selector in ("#typed-input", "#confirm", "#cancel"):
            assert inside(screen.query_one(selector, Widget), full), selector
        targets = screen.query_one("#targets", Widget)
        assert targets.max_scroll_y > 0
        await pilot.press(*"terminate")
        await pilot.pause()
        assert not screen.query_one("#confirm", Button).disabled


async def test_stop_of_every_row_fits_80x24(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        grid = table(app)
        grid.marked = set(grid.keys)
        screen = await ask(pilot, grid.keys[0], "s")
        assert isinstance(screen, ConfirmAction)
        full = Region(0, 0, 80, 24)
        for selector in ("#confirm", "#cancel", "#summary"):
            assert inside(screen.query_one(selector, Widget), full), selector


# Decisions and notices ---------------------------------------------------------------------


def test_decision_is_frozen_and_cancels_nothing_by_default() -> None:
    assert Decision(confirmed=True).cancel_spot_requests is False
    assert Decision(confirmed=False) == CANCELLED
    with pytest.raises(AttributeError):
        CANCELLED.confirmed = True  # type: ignore[misc]


def test_results_failing_alike_share_one_line() -> None:
    fleet = sample_fleet()
    refused = [
        ActionResult(action=Action.STOP, instance=i, outcome=Outcome.REFUSED, detail="no journal")
        for i in fleet[:3]
    ]
    done = ActionResult(
        action=Action.STOP,
        instance=fleet[3],
        outcome=Outcome.DONE,
        new_state=InstanceState.STOPPING,
    )
    assert result_notices([*refused, done]) == [
        ("stop refused: i-0a11 (llama3-70b-sft) and 2 more: no journal", "warning"),
        ("stop: i-0d44 (eval-harness): now stopping", "information"),
    ]
