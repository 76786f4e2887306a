"""The logs pane over real files being written: follow, search, error jumps, flags, hostile text,
opening a run's log from the fleet, and snapshots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from rich.style import Style
from textual.pilot import Pilot
from textual.widgets import Input, Static

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.logs.decode import TextStyle
from runctl_tui.logs.document import LogDocument
from runctl_tui.logs.local import LocalFileSource
from runctl_tui.logs.source import SourceState, SourceStatus
from runctl_tui.models import Instance, ProcessDetails
from runctl_tui.providers.local import LocalProvider
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes.log_tab import rich_style, state_text
from runctl_tui.tui.panes.logs import HOW_TO_OPEN, LogsPane, search_pattern
from runctl_tui.tui.screens.main import MainScreen
from runctl_tui.tui.widgets.instance_table import InstanceTable

from .conftest import AppFactory

SIZE = (120, 36)
SnapCompare = Callable[..., bool]


def pane(app: RunctlApp) -> LogsPane:
    """The logs pane."""
    return app.screen_stack[0].query_one(LogsPane)


def main(app: RunctlApp) -> MainScreen:
    """The main screen."""
    screen = app.screen_stack[0]
    assert isinstance(screen, MainScreen)
    return screen


def notices(app: RunctlApp) -> list[str]:
    """Every notification's text so far."""
    return [n.message for n in app._notifications]


def static_text(app: RunctlApp, selector: str) -> str:
    """A Static's text, plain: of the pane (``#id``), or of the log shown (``.class``)."""
    logs = pane(app)
    where = logs.tab if selector.startswith(".") else logs
    if where is None:
        return ""
    content = where.query_one(selector, Static).render()
    return str(content)


def flag_shown(app: RunctlApp) -> bool:
    """Whether the shown log's flag (an error, a stall) is on screen."""
    tab = pane(app).tab
    return tab is not None and tab.query_one(".log-flag").display


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Pause until ``check()`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


def append(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` as a training run does."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def lines_text(count: int, start: int = 0) -> str:
    """``count`` ordinary training lines."""
    return "".join(f"step {n} loss {1 / (n + 1):.4f}\n" for n in range(start, start + count))


async def open_log(pilot: Pilot[None], path: Path, lines: int) -> LogsPane:
    """Show the logs pane, open ``path`` and wait until ``lines`` lines are known."""
    await pilot.press("3")
    logs = pane(pilot.app)  # type: ignore[arg-type]
    logs.open_source(str(path))
    await until(pilot, lambda: logs.document is not None and len(logs.document) >= lines)
    await pilot.pause(0.1)
    return logs


async def test_without_a_log_the_pane_says_how_to_open_one(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert static_text(app, "#logs-empty") == HOW_TO_OPEN
        assert pane(app).tab is None
        assert not pane(app).query_one("#logs-switcher").display


async def test_follows_appends_until_scrolled_up_and_G_resumes(
    make_app: AppFactory, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_text(lines_text(200))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 200)
        view = logs.view
        assert view.follow
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0)
        assert "following" in static_text(app, ".log-header")

        append(log, lines_text(20, 200))
        await until(pilot, lambda: len(logs.document or ()) == 220)
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y == 220 - view.size.height)
        assert view.store.get(219) is not None

        await pilot.press("pageup")
        await pilot.pause()
        assert not view.follow
        held = view.scroll_y
        append(log, lines_text(30, 220))
        await until(pilot, lambda: len(logs.document or ()) == 250)
        await pilot.pause(0.1)
        assert view.scroll_y == held
        assert "follow off" in static_text(app, ".log-header")

        await pilot.press("G")
        await pilot.pause(0.1)
        assert view.follow
        assert view.scroll_y == view.max_scroll_y


async def test_search_highlights_and_n_N_move_between_matches(
    make_app: AppFactory, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    body = []
    for n in range(300):
        body.append(f"step {n} loss 0.5\n")
        if n in (40, 120, 250):
            body.append(f"saved checkpoint ckpt-{n}.pt\n")
    log.write_text("".join(body))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 303)
        document = logs.document
        assert document is not None
        await pilot.press("slash", *"checkpoint", "enter")
        await until(pilot, lambda: logs.at_line is not None)
        # The newest match first (the view is at the end).
        assert logs.at_line == 250 + 3
        line = document.get(253)
        assert line is not None
        assert "ckpt-250" in line.styled.text
        assert logs.view.pattern is not None
        assert logs.view.current_match == 253
        assert not logs.view.follow

        await pilot.press("N")
        await until(pilot, lambda: logs.at_line == 120 + 2)
        await pilot.press("N")
        await until(pilot, lambda: logs.at_line == 40 + 1)
        await pilot.press("n")
        await until(pilot, lambda: logs.at_line == 122)
        assert logs.view.current_match is not None
        rendered = logs.view.render_line(logs.view.current_match - int(logs.view.scroll_y))
        assert "checkpoint" in rendered.text


async def test_e_jumps_to_the_traceback_and_the_flag_notifies_once(
    make_app: AppFactory, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_text(lines_text(100))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 100)
        assert not flag_shown(app)
        bells: list[None] = []
        app.bell = lambda: bells.append(None)  # type: ignore[method-assign]
        append(
            log,
            "Traceback (most recent call last):\n"
            '  File "train.py", line 9, in <module>\n'
            "RuntimeError: boom\n" + lines_text(100, 100),
        )
        await until(pilot, lambda: flag_shown(app))
        flag = static_text(app, ".log-flag")
        assert flag.startswith("Traceback at line 101: Traceback (most recent call last)")
        assert len([n for n in notices(app) if "Traceback at line 101" in n]) == 1
        assert bells == [None]

        append(log, "Traceback (most recent call last):\n")
        await until(pilot, lambda: "line 204" in static_text(app, ".log-flag"))
        await pilot.pause(0.1)
        # Once per kind of error, not once per line.
        assert len([n for n in notices(app) if "Traceback" in n]) == 1

        await pilot.press("g", "e")
        await pilot.pause()
        assert logs.at_line == 100
        await pilot.press("e")
        await pilot.pause()
        assert logs.at_line == 203
        await pilot.press("E")
        await pilot.pause()
        assert logs.at_line == 100


async def test_hostile_text_is_shown_literally_and_ansi_as_colour(
    make_app: AppFactory, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(
        b"[/] [bold]not bold[/bold] [@click=app.quit]x[/]\n"
        b"\x1b[31mred loss\x1b[0m plain \x1b]0;title\x07 \x1b[2Jgone\n"
        b"bell\x07 back\x08 nul\x00 end\n"
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 3)
        first, second, third = (logs.view.store.get(n) for n in range(3))
        assert first is not None
        assert first.text == "[/] [bold]not bold[/bold] [@click=app.quit]x[/]"
        assert second is not None
        assert second.text.startswith("red loss plain")
        assert "\x1b" not in second.text
        assert "gone" in second.text
        assert any(
            style.color is not None and style.color.name == "red" for *_, style in second.spans
        )
        assert third is not None
        assert all(c.isprintable() for c in third.text)
        shown = logs.view.render_line(int(logs.view.max_scroll_y and 0))
        assert "[/]" in "".join(s.text for s in shown)
        await pilot.click("LogView")
        await pilot.pause()
        assert app.is_running


def test_search_pattern_is_a_regex_or_the_text_itself() -> None:
    assert search_pattern("") is None
    literal = search_pattern("loss[")
    assert literal is not None
    assert literal.search("eval loss[0]")
    smart = search_pattern("cuda")
    assert smart is not None
    assert smart.search("CUDA out of memory")
    exact = search_pattern("CUDA")
    assert exact is not None
    assert not exact.search("cuda")


async def test_l_on_a_row_without_a_log_says_why(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.press("l")
        await until(pilot, lambda: any("runctl-tui tail PATH" in n for n in notices(app)))
        assert any(n.startswith("no log known for") for n in notices(app))
        assert main(app).current_pane.id == "fleet"


# A real run on this machine with its log open ------------------------------------------------

SCRIPT = """\
import sys, time
from pathlib import Path

log = open(sys.argv[1], "a")
for step in range(1, 6):
    log.write(f"{{'loss': {2.0 / step:.3f}, 'learning_rate': 3e-05, 'epoch': 0.{step}}}\\n")
log.flush()
Path(sys.argv[1] + ".ready").write_text("")
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def training_run(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``train_pane.py`` with ``train.log`` open for writing: its pid and the log."""
    script = tmp_path / "train_pane.py"
    script.write_text(SCRIPT)
    log = tmp_path / "train.log"
    popen = subprocess.Popen(
        [sys.executable, str(script), str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while not Path(f"{log}.ready").exists():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    yield popen.pid, log
    os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)


@pytest.mark.integration
async def test_l_on_a_local_run_opens_its_log(
    training_run: tuple[int, Path], tmp_path: Path
) -> None:
    pid, log = training_run
    fleet = Fleet(
        [LocalProvider(patterns=("train_pane.py",))],
        journal=Journal(tmp_path / "journal.jsonl"),
    )
    app = RunctlApp(Settings(poll_seconds=3600), fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen_stack[0].query_one(InstanceTable)
        await until(
            pilot, lambda: any(i.key.endswith(f"{pid}") or _is_run(i, pid) for i in _rows(table))
        )
        (row,) = [i for i in _rows(table) if _is_run(i, pid)]
        table.move_to_key(row.key)
        await pilot.press("l")
        logs = pane(app)
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 5)
        assert main(app).current_pane.id == "logs"
        assert logs.document is not None
        assert logs.document.name == str(log)
        await until(pilot, lambda: "loss" in static_text(app, ".log-metrics"))
        assert "epoch" in static_text(app, ".log-metrics")


def _rows(table: InstanceTable) -> list[Instance]:
    return [r.instance for r in table._rows]


def _is_run(instance: Instance, pid: int) -> bool:
    details = instance.details
    return isinstance(details, ProcessDetails) and details.pid == pid


# Snapshots ---------------------------------------------------------------------------------

SNAPSHOT_LOG = (
    "".join(
        f"{{'loss': {2.2 * 0.93**n:.4f}, 'learning_rate': {3e-5 * (1 - n / 60):.3e}, "
        f"'grad_norm': {1.5 - n / 80:.3f}, 'epoch': {n / 20:.2f}}}\n"
        f"  step {n * 10}/600 | loss {2.2 * 0.93**n:.4f} | 41.7 samples/s\n"
        for n in range(1, 19)
    )
    + "\x1b[33mWARNING\x1b[0m loss scale reduced to 32768 [amp]\n"
    + "saving checkpoint to /ckpt/step-180.pt [/]\n"
    + "Traceback (most recent call last):\n"
    + '  File "train.py", line 88, in <module>\n'
    + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
)


def open_snapshot_log(path: str, *keys: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Wait for the first poll, open ``path`` with a frozen metrics clock, press ``keys``."""

    async def run_before(pilot: Pilot[None]) -> None:
        for _ in range(3):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.press("3")
        logs = pane(pilot.app)  # type: ignore[arg-type]
        logs.open_document(LogDocument(LocalFileSource(path), clock=lambda: 100.0))
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 41)
        app: RunctlApp = pilot.app  # type: ignore[assignment]
        await until(pilot, lambda: flag_shown(app))
        # The error's notification lands after the flag: wait for it, so that clearing
        # the notifications below takes it away.
        await until(pilot, lambda: any(n.title == "Error in the log" for n in app._notifications))
        view = logs.view
        await until(pilot, lambda: view.scroll_y == view.max_scroll_y > 0)
        await pilot.press(*keys)
        if keys:
            await until(pilot, lambda: logs.at_line is not None)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        pilot.app.clear_notifications()
        await pilot.pause(0.2)

    return run_before


def test_snapshot_log_pane_with_metrics_and_error(
    snap_compare: SnapCompare,
    make_app: AppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A relative path, so that the header names the same file on every machine.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.log").write_text(SNAPSHOT_LOG)
    log = "train.log"
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_snapshot_log(log))


def test_snapshot_log_pane_search_highlight(
    snap_compare: SnapCompare,
    make_app: AppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A relative path, so that the header names the same file on every machine.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.log").write_text(SNAPSHOT_LOG)
    log = "train.log"
    run_before = open_snapshot_log(log, "slash", *"step 1", "enter")
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


async def test_the_app_can_start_on_a_log(tmp_path: Path, journal_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(lines_text(5))
    fleet = Fleet([], journal=Journal(journal_path))
    app = RunctlApp(Settings(poll_seconds=3600), fleet, open_log=str(log))
    async with app.run_test(size=SIZE) as pilot:
        logs = pane(app)
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 5)
        assert main(app).current_pane.id == "logs"
        assert app.focused is logs.view


async def test_a_missing_file_is_waited_for(make_app: AppFactory, tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        logs = pane(app)
        logs.open_source(str(log))
        await until(pilot, lambda: "waiting for the file" in static_text(app, ".log-header"))
        log.write_text(lines_text(3))
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 3)


def test_states_as_the_header_says_them() -> None:
    assert state_text(SourceStatus(SourceState.FOLLOWING)) == "following"
    reconnecting = SourceStatus(SourceState.RECONNECTING, "link dropped", attempt=3)
    assert state_text(reconnecting) == "reconnecting (attempt 3)"
    assert state_text(SourceStatus(SourceState.WAITING)) == "waiting for the file"
    failed = SourceStatus(SourceState.FAILED, "host:/x: unknown host key\x1b[2J")
    assert state_text(failed) == "failed: host:/x: unknown host key␛[2J"


def test_rich_style_drops_what_it_cannot_draw() -> None:
    assert rich_style(TextStyle(fg="red", bold=True)) == Style(color="red", bold=True)
    assert rich_style(TextStyle(fg="not-a-colour", italic=True)) == Style(italic=True)


async def test_a_search_typed_in_one_burst_lands_in_the_box(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """``/`` and the keys after it arriving in one write (a paste, a laggy link) all go
    into the search box, a ``/`` inside the pattern included."""
    from tests.tui.test_key_bursts import burst

    log = tmp_path / "train.log"
    log.write_text(lines_text(50) + "saved ckpt/step-40.pt\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_log(pilot, log, 51)
        burst(app, "slash", *"ckpt/step", "enter")
        logs = pane(app)
        await until(pilot, lambda: logs.at_line is not None)
        assert logs.at_line == 50
        assert logs.view.pattern is not None
        assert logs.view.pattern.pattern == "ckpt/step"


async def test_a_log_that_stops_growing_is_flagged_once_until_it_grows(
    make_app: AppFactory, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_text(lines_text(20))
    app = make_app(logs={"stall_minutes": 0.01})
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 20)
        document = logs.document
        assert document is not None
        assert document.stall.timeout == pytest.approx(0.6)
        await pilot.pause(0.8)
        logs.check_stall()
        await pilot.pause()
        assert "no new line for" in static_text(app, ".log-flag")
        assert sum("stopped growing" in n or "no new line" in n for n in notices(app)) == 1
        logs.check_stall()
        assert sum("no new line" in n for n in notices(app)) == 1
        append(log, lines_text(1, 20))
        await until(pilot, lambda: len(document) == 21)
        logs.check_stall()
        await pilot.pause()
        assert logs.stalled is None
        assert not flag_shown(app)


# Several logs at once, the chart --------------------------------------------------------------


async def test_each_log_opens_in_a_tab_of_its_own_and_keys_move_between_them(
    make_app: AppFactory, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(lines_text(3))
    second.write_text(lines_text(5))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, first, 3)
        assert not logs.query_one("#logs-tabs").display
        logs.open_source(str(second))
        await until(pilot, lambda: len(logs.tabs) == 2 and logs.tab is logs.tabs[1])
        await until(pilot, lambda: len(logs.document or ()) == 5)
        assert logs.query_one("#logs-tabs").display
        assert app.focused is logs.view

        await pilot.press("left_square_bracket")
        assert logs.document is not None
        assert logs.document.name.endswith("a.log")
        assert app.focused is logs.view
        await pilot.press("right_square_bracket")
        assert logs.document.name.endswith("b.log")

        # The same file again: its tab is shown, no second tab.
        logs.open_source(str(first))
        await pilot.pause()
        assert len(logs.tabs) == 2
        assert logs.document.name.endswith("a.log")

        await pilot.press("x")
        await until(pilot, lambda: len(logs.tabs) == 1)
        assert logs.document.name.endswith("b.log")
        assert not logs.query_one("#logs-tabs").display
        await pilot.press("x")
        await until(pilot, lambda: not logs.tabs)
        assert logs.query_one("#logs-empty").display


async def test_p_shows_and_hides_the_loss_chart(make_app: AppFactory, tmp_path: Path) -> None:
    from runctl_tui.tui.widgets.metrics_chart import MetricsChart

    log = tmp_path / "train.log"
    log.write_text(lines_text(30))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 30)
        tab = logs.tab
        assert tab is not None
        chart = tab.query_one(MetricsChart)
        await until(pilot, lambda: chart.display)
        (curve,) = chart.series
        assert curve.name == "loss"
        assert curve.points[0] == (0.0, 1.0)
        assert "loss " not in static_text(app, ".log-metrics").splitlines()[-1][:5]
        await pilot.press("p")
        await until(pilot, lambda: not chart.display)
        # Without the chart, the strip draws the curve in one line.
        await until(pilot, lambda: static_text(app, ".log-metrics").splitlines()[-1][:5] == "loss ")
        await pilot.press("p")
        await until(pilot, lambda: chart.display)
        await pilot.press("P")
        assert chart.log_scale


async def test_a_filter_keeps_only_matching_lines_and_bang_inverts_it(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from tests.tui.test_key_bursts import burst

    log = tmp_path / "train.log"
    body = "".join(
        f"WARNING step {n} grad overflow\n" if n % 10 == 0 else f"step {n} loss {1 / (n + 1):.4f}\n"
        for n in range(300)
    )
    log.write_text(body)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 300)
        tab = logs.tab
        assert tab is not None
        # Typed in one burst, as a paste arrives: every key lands in the box.
        burst(app, "ampersand", *"warn", "enter")
        await until(pilot, lambda: tab.line_filter is not None and tab.line_filter.done)
        await pilot.pause(0.1)
        view = tab.view
        assert len(view.store) == 30
        shown = view.store.get(29)
        assert shown is not None
        assert shown.text == "WARNING step 290 grad overflow"
        assert "&warn: 30 kept" in static_text(app, ".log-header")

        # New lines are filtered as they come.
        append(log, "WARNING step 300 grad overflow\nstep 301 loss 0.1\n")
        await until(pilot, lambda: len(view.store) == 31)

        # A search lands only on lines the filter keeps.
        await pilot.press("slash", *"loss", "enter")
        await until(pilot, lambda: any("no match for loss" in n for n in notices(app)))
        assert tab.at_line is None

        await pilot.press("exclamation_mark")
        await until(pilot, lambda: tab.line_filter is not None and tab.line_filter.done)
        await until(pilot, lambda: len(view.store) == 271)
        assert "!warn: 271 kept" in static_text(app, ".log-header")
        await pilot.press("slash", *"step 295", "enter")
        await until(pilot, lambda: tab.at_line == 295)
        assert view.current_match == tab.view_of(295)

        await pilot.press("escape", "escape")
        await until(pilot, lambda: tab.line_filter is None)
        assert len(view.store) == 302
        assert "kept" not in static_text(app, ".log-header")


async def test_the_app_can_start_on_several_logs_as_tabs(
    tmp_path: Path, journal_path: Path
) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(lines_text(2))
    second.write_text(lines_text(4))
    fleet = Fleet([], journal=Journal(journal_path))
    app = RunctlApp(Settings(poll_seconds=3600), fleet, open_log=(str(first), str(second)))
    async with app.run_test(size=SIZE) as pilot:
        logs = pane(app)
        await until(pilot, lambda: len(logs.tabs) == 2 and logs.tab is logs.tabs[1])
        await until(pilot, lambda: len(logs.document or ()) == 4)
        assert [len(tab.document) for tab in logs.tabs] == [2, 4]


ENDING_SCRIPT = """\
import sys, time
from pathlib import Path

log = open(sys.argv[1], "a")
for step in range(1, 4):
    log.write(f"step {step} loss {2.0 / step:.3f}\\n")
log.flush()
Path(sys.argv[1] + ".ready").write_text("")
while not Path(sys.argv[1] + ".stop").exists():
    time.sleep(0.02)
log.write("saved final checkpoint\\ntraining done, last line without a newline")
log.flush()
"""


@pytest.fixture
def ending_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``train_ending.py`` writing ``train.log``; it ends when ``train.log.stop`` appears."""
    script = tmp_path / "train_ending.py"
    script.write_text(ENDING_SCRIPT)
    log = tmp_path / "train.log"
    popen = subprocess.Popen(
        [sys.executable, str(script), str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while not Path(f"{log}.ready").exists():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    yield popen, log
    if popen.poll() is None:
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)


def tell_to_stop(log: Path) -> None:
    """Make ``train_ending.py`` write its last lines and exit."""
    Path(f"{log}.stop").write_text("")


@pytest.mark.integration
async def test_a_runs_log_is_read_to_its_end_when_the_run_exits(
    ending_run: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    popen, log = ending_run
    fleet = Fleet(
        [LocalProvider(patterns=("train_ending.py",))],
        journal=Journal(tmp_path / "journal.jsonl"),
    )
    app = RunctlApp(Settings(poll_seconds=3600), fleet)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen_stack[0].query_one(InstanceTable)
        await until(pilot, lambda: any(_is_run(i, popen.pid) for i in _rows(table)))
        (row,) = [i for i in _rows(table) if _is_run(i, popen.pid)]
        table.move_to_key(row.key)
        await pilot.press("l")
        logs = pane(app)
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 3)
        tab = logs.tab
        assert tab is not None
        assert tab.origin is not None
        assert tab.origin.key == row.key

        tell_to_stop(log)
        await until(pilot, lambda: popen.poll() is not None)
        main(app).poll_now()
        await until(pilot, lambda: "ended:" in static_text(app, ".log-header"))
        document = tab.document
        assert document.status.state is SourceState.ENDED
        assert len(document) == 5
        await until(pilot, lambda: document.get(4) is not None)
        last = document.get(4)
        assert last is not None
        assert last.styled.text == "training done, last line without a newline"
        assert f"the run (pid {popen.pid}) exited" in static_text(app, ".log-header")


@pytest.mark.integration
async def test_the_chart_draws_tensorboard_scalars_written_beside_the_log(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from runctl_tui.tui.widgets.metrics_chart import MetricsChart
    from tests.unit.test_tfevents import event_file, frame, simple_scalar

    run = tmp_path / "run"
    (run / "runs" / "sft").mkdir(parents=True)
    log = run / "train.log"
    log.write_text(lines_text(5))
    records = [simple_scalar("train/loss", step, 4.0 / step) for step in range(1, 21)]
    records += [simple_scalar("eval/loss", step, 3.0 / step) for step in (5, 10, 15, 20)]
    (run / "runs" / "sft" / "events.out.tfevents.1700000000.gpu.1.0").write_bytes(
        event_file(*records)
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        logs = await open_log(pilot, log, 5)
        tab = logs.tab
        assert tab is not None
        chart = tab.query_one(MetricsChart)
        await until(pilot, lambda: [s.source for s in chart.series] == ["tensorboard"] * 2)
        loss, eval_loss = chart.series
        assert (loss.name, eval_loss.name) == ("loss", "eval loss")
        assert loss.points[0] == (1.0, 4.0)
        assert len(loss.points) == 20
        step, value = eval_loss.points[-1]
        assert step == 20.0
        assert value == pytest.approx(0.15)
        await until(pilot, lambda: "tensorboard: 1 event file" in static_text(app, ".log-metrics"))

        # A damaged record is skipped, and the pane says so.
        damaged = bytearray(frame(simple_scalar("train/loss", 21, 0.19)))
        damaged[-8] ^= 0x40
        good = frame(simple_scalar("train/loss", 22, 0.18))
        with (run / "runs" / "sft" / "events.out.tfevents.1700000000.gpu.1.0").open("ab") as f:
            f.write(bytes(damaged) + good)
        await until(pilot, lambda: "skipped" in static_text(app, ".log-metrics"), seconds=20)
        last_step, last_value = chart.series[0].points[-1]
        assert last_step == 22.0
        assert last_value == pytest.approx(0.18)
