"""Provider text is data: shown literally, never as markup or terminal control."""

from __future__ import annotations

import contextlib
import io
import unicodedata
from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console, RenderableType
from textual.content import Content
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import WorkerFailed

from runctl_tui.models import Instance, ProviderStatus
from runctl_tui.providers.base import ProviderError
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.help import HelpScreen
from runctl_tui.tui.screens.main import MainScreen
from runctl_tui.tui.widgets.details import DetailsPanel, details_renderable
from runctl_tui.tui.widgets.instance_table import InstanceTable, prepare
from runctl_tui.tui.widgets.provider_bar import ProviderBar, header_sub_title, status_text
from tests.fakes import FakeProvider

from .conftest import NOW, AppFactory, machine

HOSTILE = [
    "[/]",
    "[@click=app.quit]see runbook[/]",
    "[@click=app.screenshot('/tmp/x.svg')]runbook[/]",
    "[link=https://example.invalid]docs[/link]",
    "[bold red]loud",
    "line one\nline two\r\ttabbed",
    "\x1b]0;pwned\x07title\x1b[2J\x1b[31mred",
    "\x9b31m C1 CSI \x85 NEL",
    "\u202eevil\u202c \u2066isolate\u2069 zero\u200bwidth \ufeffbom",
    "x" * 10_000,
]
"""Names and tags that were once markup, actions, links or terminal control."""


def is_control(char: str) -> bool:
    """Whether ``char`` would control a terminal or reorder text rather than show itself."""
    code = ord(char)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}
    )


def controls(texts: Iterable[str]) -> list[str]:
    """Every control character in ``texts``."""
    return [repr(c) for text in texts for c in text if is_control(c)]


def rendered(renderable: RenderableType, width: int = 80) -> list[str]:
    """Segment texts of ``renderable`` laid out by Rich, line breaks excluded."""
    console = Console(width=width, file=io.StringIO(), color_system="truecolor")
    lines = console.render_lines(renderable, console.options.update_width(width), pad=False)
    return [segment.text for line in lines for segment in line if not segment.control]


def drawn(widget: Widget) -> list[str]:
    """Segment texts a widget draws."""
    strips = widget.render_lines(Region(0, 0, *widget.size))
    return [segment.text for strip in strips for segment in strip]


def hostile_instance(name: str, key: str, value: str, *, n: int = 0) -> Instance:
    """The sample machine carrying provider text chosen by an attacker."""
    base = machine(f"i-{n:04x}", "x")
    details = base.details.model_copy(
        update={
            "zone": value,
            "key_name": key,
            "image_id": name,
            "instance_type": name[:30] or "t",
        }
    )
    return base.model_copy(
        update={"name": name, "tags": {key: value, "Name": name}, "details": details}
    )


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=text, key=text, value=text)
def test_details_show_any_text_literally(name: str, key: str, value: str) -> None:
    instance = hostile_instance(name, key, value)
    segments = rendered(details_renderable(instance, NOW))
    assert not controls(segments)


@settings(max_examples=150, deadline=None)
@given(provider=text, error=text, hint=text, warning=text, identity=text)
def test_provider_line_shows_any_text_literally(
    provider: str, error: str, hint: str, warning: str, identity: str
) -> None:
    for ok in (True, False):
        status = ProviderStatus(
            provider=provider,
            ok=ok,
            error=error,
            hint=hint,
            failed_at=None if ok else NOW,
            warnings=(warning,),
            identity=identity,
        )
        line = status_text(status, NOW, polling_since=NOW, show_identity=True)
        assert not controls([line.plain])
        assert "\n" not in line.plain
    assert not controls([header_sub_title(demo=True, readonly=True, identities=[identity])])


async def test_table_rows_show_any_text_literally(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        grid = app.screen.query_one(InstanceTable)

        @settings(max_examples=150, deadline=None)
        @given(names=st.lists(text, min_size=1, max_size=4), key=text, value=text)
        def check(names: list[str], key: str, value: str) -> None:
            instances = [hostile_instance(n, key, value, n=i) for i, n in enumerate(names)]
            grid.show_data(prepare(instances, NOW))
            lines = [grid.render_line(y) for y in range(len(names) + 1)]
            texts = [segment.text for strip in lines for segment in strip]
            assert not controls(texts)
            # One row per instance: nothing a name holds can start another line.
            assert all(strip.cell_length == grid.scrollable_content_region.width for strip in lines)

        check()


async def settle(pilot: Pilot[None]) -> None:
    """Let workers finish (failed ones included) and their messages land."""
    for _ in range(3):
        with contextlib.suppress(WorkerFailed):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def dashboard(app: RunctlApp) -> MainScreen:
    """The dashboard screen."""
    screen = app.screen_stack[0]
    assert isinstance(screen, MainScreen)
    return screen


async def test_hostile_fleet_is_shown_literally_and_acts_on_nothing(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    provider.instances = {
        f"i-{n:04x}": hostile_instance(name, name, name, n=n) for n, name in enumerate(HOSTILE)
    }
    provider.account = "[/] profile \x1b[2J[@click=app.quit]x[/]"
    provider.warnings = ("[bold]no permission\n\x1b[31m",)
    app = make_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        assert app.is_running
        grid = dashboard(app).table
        texts = [grid.render_line(y).text for y in range(len(HOSTILE) + 1)]
        assert not controls(texts)
        assert any("[/]" in line for line in texts)
        assert any("[@click=app.quit]see runbo" in line for line in texts)
        for key in grid.keys:
            grid.move_to_key(key)
            await pilot.press("enter")
            await pilot.pause()
            details = app.screen.query_one(DetailsPanel)
            assert not controls(drawn(details))
            await pilot.press("enter")
        grid.move_to_key("aws:i-0001")
        await pilot.press("enter")
        await pilot.pause()
        details = app.screen.query_one(DetailsPanel)
        assert "[@click=app.quit]see runbook[/]" in "".join(drawn(details))
        # Clicking where an action would have been does nothing.
        await pilot.click(DetailsPanel, offset=(20, 1))
        await pilot.pause()
        assert app.is_running
        bar = app.screen.query_one(ProviderBar)
        assert "[bold]no permission" in bar.text.plain
        assert not controls([bar.text.plain, app.sub_title])
        assert "[/] profile ␛[2J[@click=app.quit]x[/]" in app.sub_title


async def test_filter_text_is_shown_literally(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"[/]")
        await pilot.pause()
        grid = dashboard(app).table
        assert grid.row_count == 0
        assert "[/]" in grid.render_line(2).text
        assert "filter: [/]" in app.screen.query_one(ProviderBar).text.plain


async def test_help_shows_a_markup_like_protect_tag(make_app: AppFactory) -> None:
    app = make_app(protect_tag="[/]keep[@click=app.quit]")
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        texts = [segment for static in app.screen.query(Static) for segment in drawn(static)]
        assert "[/]keep[@click=app.quit]" in "".join(texts)


async def test_poll_crash_with_markup_in_its_message(
    make_app: AppFactory, provider: FakeProvider
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 45)) as pilot:
        await settle(pilot)
        screen = dashboard(app)

        async def explode(**options: object) -> None:
            raise RuntimeError("[/] [@click=app.quit]boom\x1b[2J")

        screen.fleet.poll_async = explode  # type: ignore[assignment,method-assign]
        screen.poll_now()
        await settle(pilot)
        assert app.is_running
        plain = screen.query_one(ProviderBar).text.plain
        assert "RuntimeError: [/] [@click=app.quit]boom␛[2J" in plain


def test_border_title_is_literal() -> None:
    title = Content.assemble("Details · ", "[/]")
    assert title.plain == "Details · [/]"


def test_error_from_a_provider_is_one_line() -> None:
    error = ProviderError("aws", "denied\n\x1b[31m[/]", hint="[@click=app.quit]")
    status = ProviderStatus(
        provider="aws", ok=False, error=error.message, hint=error.hint, failed_at=NOW
    )
    line = status_text(status, NOW)
    assert "\n" not in line.plain
    assert "[/]" in line.plain
    assert not controls([line.plain])
