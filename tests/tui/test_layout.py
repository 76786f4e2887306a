"""Layout at 80x24 and 100x30: what gives way when the terminal is narrow, and what never does."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.models import InstanceState, ProviderStatus
from runctl_tui.providers.base import ProviderError
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.main import MainScreen
from runctl_tui.tui.widgets.instance_table import (
    ADDRESS,
    ID,
    PRICE,
    PROVIDER,
    WHERE,
    InstanceTable,
    layout,
    short_id,
)
from runctl_tui.tui.widgets.provider_bar import (
    DEMO_WARNING,
    READONLY_WARNING,
    ProviderBar,
    status_text,
)
from runctl_tui.views import COLUMNS, STATE_COLUMN
from tests.fakes import FakeClock, FakeProvider

from .conftest import NOW, AppFactory, machine, sample_fleet

SIZES = [(80, 24), (100, 30)]

REAL_ID = "i-0123456789abcdef0"


async def settle(pilot: Pilot[None]) -> None:
    """Let workers finish and their messages land."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def shown(widget: Widget) -> list[str]:
    """The lines a widget draws, as plain text."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.size))]


def table(app: RunctlApp) -> InstanceTable:
    """The fleet table of the dashboard."""
    return app.screen_stack[0].query_one(InstanceTable)


def dashboard(app: RunctlApp) -> MainScreen:
    """The dashboard screen."""
    screen = app.screen_stack[0]
    assert isinstance(screen, MainScreen)
    return screen


def bar(app: RunctlApp) -> ProviderBar:
    """The provider bar of the dashboard."""
    return app.screen_stack[0].query_one(ProviderBar)


def test_narrow_widths_keep_state_and_price() -> None:
    widths = [2, 8, 28, len(REAL_ID), 10, 12, 16, 13, 13, 6, 15, 8, 9]
    for available in (60, 78, 98, 118):
        fitted = layout(widths, available)
        assert STATE_COLUMN in fitted.columns
        assert PRICE in fitted.columns
        assert fitted.total <= available or available < 70
    # PROVIDER only when rows come from several providers.
    wide = layout(widths, 200)
    assert wide.columns == tuple(n for n in range(len(COLUMNS)) if n != PROVIDER)
    assert layout(widths, 200, providers=3).columns == tuple(range(len(COLUMNS)))
    assert PROVIDER not in layout(widths, 98, providers=3).columns
    # The address and place go before anything else; the full ID before UPTIME and MARKET.
    assert not wide.short_ids
    medium = layout(widths, 118)
    assert ADDRESS not in medium.columns
    assert WHERE not in medium.columns
    assert medium.short_ids
    assert medium.widths[medium.columns.index(ID)] == 9


def test_short_id_keeps_the_tail() -> None:
    assert short_id(REAL_ID) == "…9abcdef0"
    assert short_id("i-0f66") == "i-0f66"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["normal", "demo-readonly"])
async def test_table_footer_and_header_fit(
    make_app: AppFactory, provider: FakeProvider, size: tuple[int, int], mode: str
) -> None:
    # Real EC2 ids are 19 characters long.
    renamed = [
        i.model_copy(update={"id": f"{REAL_ID[:-1]}{n}"}) for n, i in enumerate(sample_fleet())
    ]
    provider.instances = {i.id: i for i in renamed}
    demo = mode == "demo-readonly"
    app = make_app(readonly=demo, demo=demo)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        grid = table(app)
        header_line = grid.render_line(0).text
        assert "STATE" in header_line
        assert "$/H" in header_line
        assert grid.column_layout.total <= grid.scrollable_content_region.width
        # Every row shows its state and price, not only the header.
        first_row = grid.render_line(1).text
        assert "running" in first_row
        assert "$" in first_row
        keys = {getattr(k, "key_display", ""): k for k in app.screen.query("FooterKey")}
        for key in ("?", "q"):
            assert key in keys
            assert keys[key].region.right <= size[0]
        title = "".join(shown(app.screen.query_one("HeaderTitle")))
        if demo:
            assert f"{DEMO_WARNING} · {READONLY_WARNING}" in title
        else:
            assert "runctl-tui" in title


async def test_column_widths_hold_when_a_state_gets_longer(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        grid = table(app)
        before = grid.column_layout
        header = grid.render_line(0).text
        provider.set_state("i-0d44", InstanceState.SHUTTING_DOWN)
        dashboard(app).poll_now()
        await settle(pilot)
        assert grid.column_layout == before
        assert grid.render_line(0).text == header


async def test_provider_line_wraps_and_shrinks_back(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    error = "the endpoint refused the call: " + "explanation " * 20 + "END-OF-ERROR"
    provider.list_error = ProviderError("aws", error, hint="check the endpoint")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        providers = bar(app)
        assert providers.size.height > 2
        text = " ".join(shown(providers))
        assert "END-OF-ERROR" in text
        assert "check the endpoint" in text
        provider.list_error = None
        dashboard(app).poll_now()
        await settle(pilot)
        assert providers.size.height == 1


async def test_first_poll_says_polling_with_time_elapsed(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    provider = FakeProvider([machine("i-0a11", "slow")], name="aws")
    gate = threading.Event()
    provider.list_gate = gate
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), clock=clock)
    app = RunctlApp(Settings(poll_seconds=3600), fleet, clock=clock)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert "no providers configured" not in bar(app).text.plain
            await pilot.pause(0.2)
            assert fleet.polling_since is not None
            clock.advance(timedelta(seconds=12))
            dashboard(app).tick()
            await pilot.pause()
            assert "aws  polling… 12s" in bar(app).text.plain
            gate.set()
            await settle(pilot)
            assert "polling" not in bar(app).text.plain
            assert "1 instances" in bar(app).text.plain
    finally:
        gate.set()


async def test_no_providers_is_said_only_without_providers(tmp_path: Path) -> None:
    fleet = Fleet([], journal=Journal(tmp_path / "journal.jsonl"))
    app = RunctlApp(Settings(poll_seconds=3600), fleet, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "no providers configured" in bar(app).text.plain


async def test_header_names_the_account(make_app: AppFactory, provider: FakeProvider) -> None:
    identity = "profile ml · account 123456789012 · us-east-1, eu-west-1"
    provider.account = identity
    app = make_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        assert identity in app.sub_title
        assert identity in "".join(shown(app.screen.query_one("HeaderTitle")))
        # The header has room: the provider line does not repeat it.
        assert identity not in bar(app).text.plain


async def test_identity_moves_to_the_provider_line_when_the_header_is_narrow(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    identity = "profile ml · account 123456789012 · us-east-1, eu-west-1 · endpoint http://x"
    provider.account = identity
    app = make_app(readonly=True, demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        title = "".join(shown(app.screen.query_one("HeaderTitle")))
        assert title.startswith(f"{DEMO_WARNING} · {READONLY_WARNING}")
        assert identity in bar(app).text.plain


@pytest.mark.parametrize("size", SIZES)
async def test_details_panel_leaves_state_and_price_in_view(
    make_app: AppFactory, size: tuple[int, int]
) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await pilot.pause()
        grid = table(app)
        header_line = grid.render_line(0).text
        assert "NAME" in header_line
        assert "STATE" in header_line
        assert "$/H" in header_line
        assert grid.column_layout.total <= grid.scrollable_content_region.width


def test_a_slow_poll_is_mentioned_beside_data_already_shown() -> None:
    fresh = ProviderStatus(provider="aws", ok=True, refreshed_at=NOW, instance_count=3)
    waiting = ProviderStatus(provider="runpod", ok=False, error="waiting for the first poll")
    quick = NOW - timedelta(seconds=1)
    slow = NOW - timedelta(seconds=7)
    assert "polling" not in status_text(fresh, NOW, polling_since=quick).plain
    assert "3 instances · refreshed 0s ago · polling… 7s" in (
        status_text(fresh, NOW, polling_since=slow).plain
    )
    assert status_text(waiting, NOW, polling_since=quick).plain == "◌ runpod  polling… 1s"
    assert status_text(waiting, NOW).plain == "◌ runpod  waiting for the first poll"


def test_a_provider_never_set_up_reads_as_a_note_not_an_error() -> None:
    from runctl_tui.models import ProviderStatus
    from runctl_tui.tui.widgets.provider_bar import status_text

    status = ProviderStatus(
        provider="aws",
        ok=False,
        configured=False,
        error="not configured: no AWS credentials found",
        hint="set AWS_PROFILE or run `aws configure`",
        failed_at=NOW,
    )

    line = status_text(status, NOW).plain

    assert line.startswith("○ aws  not configured: no AWS credentials found")
    assert "no data yet" not in line
    assert "✖" not in line


async def test_sort_keys_and_header_clicks(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 45)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        grid = app.screen.query_one(InstanceTable)
        default = list(grid.keys)
        grid.sort_by(COLUMNS.index("$/H"))
        ordered = [grid.instance(k) for k in grid.keys]
        # Stopped rows cost nothing now: they sort first, the p5 last.
        assert ordered[-1] is not None
        assert ordered[-1].details.type_label == "p5.48xlarge"
        assert "$/H ▲" in grid.render_line(0).text
        await pilot.press("O")
        assert [grid.instance(k) for k in grid.keys][0] == ordered[-1]
        assert "$/H ▼" in grid.render_line(0).text
        grid.sort_by(None)
        assert list(grid.keys) == default
        await pilot.press("o")
        assert grid.sort_column == COLUMNS.index("NAME")
        names = [i.name for i in (grid.instance(k) for k in grid.keys) if i is not None]
        assert names == sorted(names, key=str.lower)
        # A click on a title sorts by it; a second click reverses.
        x = grid.render_line(0).text.index("STATE")
        await pilot.click(InstanceTable, offset=(x + 1, 0))
        assert (grid.sort_column, grid.sort_reverse) == (STATE_COLUMN, False)
        await pilot.click(InstanceTable, offset=(x + 1, 0))
        assert (grid.sort_column, grid.sort_reverse) == (STATE_COLUMN, True)


def test_more_than_three_providers_share_one_summary_line() -> None:
    from runctl_tui.models import ProviderStatus
    from runctl_tui.tui.widgets.provider_bar import summary_text

    statuses = [
        ProviderStatus(provider="aws", ok=True, refreshed_at=NOW, instance_count=11),
        ProviderStatus(provider="runpod", ok=True, refreshed_at=NOW, instance_count=3),
        ProviderStatus(
            provider="local", ok=False, configured=False, error="not configured", failed_at=NOW
        ),
        ProviderStatus(
            provider="ssh", ok=False, error="gpu-box: connection refused", failed_at=NOW
        ),
    ]

    line = summary_text(statuses).plain

    assert line == "✖ 4 providers: aws 11 · runpod 3 · local not configured · ✖ ssh"


async def test_many_providers_in_the_bar_and_the_table(tmp_path: Path) -> None:
    providers = [
        FakeProvider(
            [machine(f"{name}-1", f"{name}-job").model_copy(update={"provider": name})], name=name
        )
        for name in ("aws", "runpod", "local", "ssh")
    ]
    providers[3].list_error = ProviderError("ssh", "gpu-box: connection refused", hint="is it up?")
    fleet = Fleet(providers, journal=Journal(tmp_path / "journal.jsonl"), clock=lambda: NOW)
    app = RunctlApp(Settings(poll_seconds=3600), fleet, clock=lambda: NOW)
    async with app.run_test(size=(160, 45)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        lines = app.screen.query_one(ProviderBar).text.plain.splitlines()
        assert lines[0].startswith("✖ 4 providers: aws 1 · runpod 1 · local 1 · ✖ ssh")
        assert lines[1].startswith("✖ ssh  gpu-box: connection refused")
        assert len(lines) == 2
        grid = app.screen.query_one(InstanceTable)
        assert "PROVIDER" in grid.render_line(0).text
        await pilot.press("slash", *":runpod", "enter")
        assert [k.split(":")[0] for k in grid.keys] == ["runpod"]
