"""The log pane: one followed training log, its state, its metrics and loss curve, its errors.

A :class:`~runctl_tui.logs.document.LogDocument` follows the file in an async worker and tells
the pane of every change; the pane gathers those and redraws at most every
:data:`REDRAW_SECONDS`, so that a flood of lines cannot starve the keys.
"""

from __future__ import annotations

import contextlib
import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from rich.color import ColorParseError
from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Input, Static

from runctl_tui.logs.chart import sparkline
from runctl_tui.logs.decode import StyledLine, TextStyle
from runctl_tui.logs.document import DEFAULT_STALL_SECONDS, Changed, LogDocument
from runctl_tui.logs.source import LogSource, SourceState, SourceStatus
from runctl_tui.text import clean, one_line
from runctl_tui.tui.panes import Pane, PaneContext
from runctl_tui.tui.widgets.log_view import LogView, ViewLine

if TYPE_CHECKING:
    from runctl_tui.remote.ssh import SshHub

REDRAW_SECONDS = 0.05
"""How often gathered changes are drawn: about 20 frames a second at most."""
STALL_CHECK_SECONDS = 5.0
"""How often a followed log is checked for having stopped growing."""

SPARK_WIDTH = 40
BAR_WIDTH = 24

HOW_TO_OPEN = (
    "No log open. Press l on a training run in the fleet (1), "
    "or start with: runctl-tui tail PATH  (or host:PATH, ssh://user@host:port/PATH)"
)

PARTIAL_STYLE = Style(dim=True)


@lru_cache(maxsize=512)
def rich_style(style: TextStyle) -> Style:
    """A decoded span's look as a Rich style (an unknown colour is dropped, never an error)."""
    flags: dict[str, Any] = {
        name: True
        for name in ("bold", "dim", "italic", "underline", "blink", "reverse", "strike")
        if getattr(style, name)
    }
    try:
        return Style(color=style.fg, bgcolor=style.bg, **flags)
    except (ColorParseError, StyleSyntaxError, ValueError):
        try:
            return Style(**flags)
        except (ColorParseError, StyleSyntaxError, ValueError):
            return Style()


def view_line(styled: StyledLine, *, error: bool = False, dim: bool = False) -> ViewLine:
    """A decoded line as the view shows it (its text is already safe: never markup)."""
    spans = tuple((s.start, s.end, rich_style(s.style)) for s in styled.spans)
    if dim:
        spans = ((0, len(styled.text), PARTIAL_STYLE), *spans)
    return ViewLine(styled.text, spans, error)


class DocumentLines:
    """The view's store over a document: its lines, then the open last line, dim."""

    def __init__(self, document: LogDocument) -> None:
        self.document = document

    def __len__(self) -> int:
        return len(self.document) + (1 if self.document.partial() is not None else 0)

    def get(self, index: int) -> ViewLine | None:
        """Line ``index``, or ``None`` while it is read back."""
        known = len(self.document)
        if index == known:
            partial = self.document.partial()
            return view_line(partial, dim=True) if partial is not None else None
        line = self.document.get(index)
        if line is None:
            return None
        return view_line(line.styled, error=line.error is not None)


class NoLines:
    """The view's store before a log is open."""

    def __len__(self) -> int:
        return 0

    def get(self, index: int) -> ViewLine | None:
        """Nothing."""
        return None


def state_text(status: SourceStatus) -> str:
    """The source's state, as the header says it."""
    state = status.state
    if state is SourceState.FOLLOWING:
        return "following"
    if state is SourceState.RECONNECTING:
        return f"reconnecting (attempt {status.attempt})"
    if state is SourceState.WAITING:
        return "waiting for the file"
    if state is SourceState.FAILED:
        return f"failed: {one_line(status.detail, 160) or 'no reason given'}"
    return state.value


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.2e}"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


METRIC_NAMES = (
    ("loss", "loss"),
    ("eval_loss", "eval"),
    ("lr", "lr"),
    ("grad_norm", "grad"),
    ("samples_per_s", "samples/s"),
    ("tokens_per_s", "tok/s"),
    ("it_per_s", "it/s"),
)


def metrics_text(document: LogDocument, width: int = SPARK_WIDTH) -> Text:
    """The metrics strip: latest values, progress and ETA, and the loss curve."""
    metrics = document.metrics
    if not metrics.samples:
        return Text("no training metrics in the log yet", style="dim")
    text = Text()
    parts: list[tuple[str, str]] = []
    if metrics.step is not None:
        total = f"/{metrics.total_steps}" if metrics.total_steps else ""
        parts.append(("step", f"{metrics.step}{total}"))
    if metrics.epoch is not None:
        parts.append(("epoch", _number(metrics.epoch)))
    latest = metrics.latest
    for key, label in METRIC_NAMES:
        if key in latest:
            parts.append((label, _number(latest[key])))
    for n, (label, value) in enumerate(parts):
        if n:
            text.append(" · ", style="dim")
        text.append(f"{label} ", style="dim")
        text.append(value, style="bold")
    progress = metrics.progress
    if progress is not None:
        filled = round(progress * BAR_WIDTH)
        text.append("\n")
        text.append("━" * filled, style="green")
        text.append("━" * (BAR_WIDTH - filled), style="dim")
        text.append(f" {progress:.0%}")
        eta = metrics.eta()
        if eta is not None:
            text.append(f" · ETA {_duration(eta)}", style="dim")
    losses = metrics.history("loss")
    if losses:
        text.append("\n")
        text.append("loss ", style="dim")
        text.append(sparkline(losses, width), style="cyan")
        finite = [v for v in losses if math.isfinite(v)]
        if finite:
            text.append(f" {_number(finite[0])} → {_number(finite[-1])}", style="dim")
    return text


class LogsPane(Pane):
    """One training log: followed, searchable, its errors flagged and its metrics drawn."""

    PANE_ID = "logs"

    BINDINGS: ClassVar[list[BindingType]] = [
        # The box opens as the key arrives, before the keys typed after it (a burst).
        Binding("slash", "search", "Search", id="logs-search", priority=True),
        Binding("n", "next_match", "Next", id="logs-next-match"),
        Binding("N", "previous_match", "Previous", id="logs-previous-match", show=False),
        Binding("e", "next_error", "Next error", id="logs-next-error"),
        Binding("E", "previous_error", "Previous error", id="logs-previous-error", show=False),
        Binding("escape", "close_search", "Close search", show=False),
    ]

    DEFAULT_CSS = """
    LogsPane #logs-header { height: 1; padding: 0 1; background: $boost; }
    LogsPane #logs-metrics { height: auto; max-height: 3; padding: 0 1; }
    LogsPane #logs-flag { height: auto; padding: 0 1; color: $text-error; text-style: bold; }
    LogsPane #logs-empty { height: 1fr; padding: 1 2; color: $text-muted; }
    LogsPane #logs-search { dock: bottom; }
    """

    def __init__(self, context: PaneContext) -> None:
        super().__init__(context)
        self.document: LogDocument | None = None
        self.failure: str | None = None
        """Why the log could not be opened or followed, one line."""
        self.pattern: re.Pattern[str] | None = None
        self.at_line: int | None = None
        """The line the last search or error jump went to."""
        self._own_hub: SshHub | None = None
        self._front = 0
        self._dirty = False
        self._new_error = False
        self._notified: set[str] = set()
        self.stalled: str | None = None
        """Why the log is flagged as stalled, while it is."""

    def compose(self) -> ComposeResult:
        """Header, metrics, error flag, the log (or how to open one), the search box."""
        yield Static(Text("Logs"), id="logs-header")
        yield Static(Text(""), id="logs-metrics")
        yield Static(Text(""), id="logs-flag")
        yield Static(Text(HOW_TO_OPEN), id="logs-empty")
        yield LogView(NoLines(), id="logs-view")
        yield Input(
            placeholder="search: text (a regex if it has one); enter finds", id="logs-search"
        )

    def on_mount(self) -> None:
        """Nothing open yet; changes are drawn in batches."""
        self.show_empty(True)
        self.search_box.display = False
        self.set_interval(REDRAW_SECONDS, self.draw_changes, name="logs-redraw")
        self.set_interval(STALL_CHECK_SECONDS, self.check_stall, name="logs-stall")

    async def on_unmount(self) -> None:
        """Stop following and close the connection the pane opened itself."""
        await self.close_document()
        if self._own_hub is not None:
            with contextlib.suppress(Exception):
                await self._own_hub.close()

    @property
    def view(self) -> LogView:
        """The log view."""
        return self.query_one("#logs-view", LogView)

    @property
    def search_box(self) -> Input:
        """The search box."""
        return self.query_one("#logs-search", Input)

    def focus_target(self) -> Widget | None:
        """The search box while it is typed in, else the log."""
        box = self.search_box
        return box if box.display and box.has_focus else self.view

    def show_empty(self, empty: bool) -> None:
        """Say how to open a log, or show the one open."""
        self.query_one("#logs-empty").display = empty
        self.query_one("#logs-metrics").display = not empty
        self.view.display = not empty
        if empty:
            self.query_one("#logs-flag").display = False
            self.query_one("#logs-header", Static).update(Text("Logs · no log open"))

    # Opening -------------------------------------------------------------------------------

    def open_source(self, text: str) -> None:
        """Open ``text`` (a path, ``host:path`` or ``ssh://...``) and follow it."""
        from runctl_tui.logs.remote import parse_log_source

        try:
            target, path = parse_log_source(text)
        except ValueError as exc:
            self.report_failure(f"cannot open {one_line(text, 120)}: {clean(exc)}")
            return
        source: LogSource
        if target is None:
            from runctl_tui.logs.local import LocalFileSource

            source = LocalFileSource(path)
        else:
            from runctl_tui.logs.remote import RemoteFileSource

            source = RemoteFileSource(self.ssh_hub(), target, path)
        self.open_document(LogDocument(source, stall_seconds=self.stall_seconds()))

    def stall_seconds(self) -> float:
        """How long a log may gain no line before it is flagged (``[logs] stall_minutes``)."""
        settings = getattr(self.app, "settings", None)
        logs = getattr(settings, "logs", None)
        minutes = getattr(logs, "stall_minutes", None)
        return float(minutes) * 60 if minutes else DEFAULT_STALL_SECONDS

    def check_stall(self) -> None:
        """Flag a followed log that stopped growing, and say so once per stall."""
        document = self.document
        if document is None or document.status.state is not SourceState.FOLLOWING:
            return
        if document.stall.check():
            minutes = document.stall.idle_for() / 60
            message = f"no new line for {minutes:.0f} min: is the run still making progress?"
            self.stalled = message
            self.draw_flag()
            self.notify(
                one_line(f"{document.name}: {message}", 300),
                title="The log stopped growing",
                severity="warning",
                timeout=10,
                markup=False,
            )
            self.app.bell()
        elif self.stalled is not None and not document.stall.stalled():
            self.stalled = None
            self.draw_flag()

    def ssh_hub(self) -> SshHub:
        """The fleet's SSH hub (one connection per host), or one of the pane's own."""
        from runctl_tui.remote.ssh import SshHub

        for provider in getattr(self.fleet, "providers", {}).values():
            hub = getattr(provider, "hub", None)
            if isinstance(hub, SshHub):
                return hub
        if self._own_hub is None:
            self._own_hub = SshHub()
        return self._own_hub

    def open_document(self, document: LogDocument) -> None:
        """Show and follow ``document``, closing the one open before."""
        old = self.document
        self.document = document
        self.failure = None
        self.pattern = None
        self.at_line = None
        self._front = 0
        self._notified.clear()
        self.stalled = None
        document.subscribe(self.document_changed)
        self.view.store = DocumentLines(document)
        self.view.highlight(None)
        self.view.follow = True
        self.show_empty(False)
        self._dirty = True
        self.follow_document(document, old)

    @work(exclusive=True, group="logs-follow", exit_on_error=False)
    async def follow_document(self, document: LogDocument, old: LogDocument | None) -> None:
        """Follow ``document`` until it ends or another log replaces it."""
        if old is not None:
            await old.close()
        try:
            await document.run()
        except Exception as exc:
            self.failure = one_line(f"{document.name}: {type(exc).__name__}: {exc}", 300)
            self._dirty = True

    async def close_document(self) -> None:
        """Stop following the open log, if any."""
        if self.document is not None:
            await self.document.close()

    def report_failure(self, message: str) -> None:
        """Say in one line why no log opened."""
        self.notify(message, severity="error", timeout=10, markup=False)
        if self.document is None:
            self.query_one("#logs-empty", Static).update(Text(f"{message}\n\n{HOW_TO_OPEN}"))

    # Changes -------------------------------------------------------------------------------

    def document_changed(self, changed: Changed) -> None:
        """Gather a change to draw with the next batch (indexes shift at once)."""
        if changed.reset:
            self._front = 0
            self.at_line = None
        if changed.front:
            self._front += changed.front
            if self.at_line is not None:
                self.at_line += changed.front
            if self.view.current_match is not None:
                self.view.current_match += changed.front
        if changed.error is not None:
            self._new_error = True
        self._dirty = True

    def draw_changes(self) -> None:
        """Draw what changed since the last batch: lines, header, metrics, the error flag."""
        if not self._dirty or self.document is None:
            return
        self._dirty = False
        view = self.view
        front, self._front = self._front, 0
        view.lines_changed()
        if front and not view.follow:
            # Older lines came in above: keep the same lines in view.
            view.scroll_to(y=view.scroll_y + front, animate=False, immediate=True)
        self.draw_header()
        self.query_one("#logs-metrics", Static).update(metrics_text(self.document))
        self.draw_flag()

    def draw_header(self) -> None:
        """Source, state, lines known, follow."""
        document = self.document
        if document is None:
            return
        header = Text()
        header.append(one_line(document.name, 120), style="bold")
        header.append(" · ", style="dim")
        failed = self.failure is not None or document.status.state is SourceState.FAILED
        state = f"failed: {self.failure}" if self.failure else state_text(document.status)
        header.append(state, style="bold red" if failed else "")
        header.append(" · ", style="dim")
        count = len(document)
        header.append(f"{count:,} line{'s' if count != 1 else ''}")
        header.append(" · ", style="dim")
        header.append("follow on" if self.view.follow else "follow off (G resumes)", style="dim")
        if self.pattern is not None:
            header.append(" · ", style="dim")
            header.append(f"/{one_line(self.pattern.pattern, 40)}", style="dim")
        self.query_one("#logs-header", Static).update(header)

    def draw_flag(self) -> None:
        """The newest error seen, in red; a notification and a bell the first time of a kind."""
        document = self.document
        flag = self.query_one("#logs-flag", Static)
        if document is None or (document.last_error is None and self.stalled is None):
            flag.display = False
            return
        if document.last_error is None:
            flag.update(Text(one_line(self.stalled or "", 300), style="yellow"))
            flag.display = True
            return
        kind, text = document.last_error
        lines = document.error_lines()
        where = f" at line {lines[-1] + 1}" if lines else ""
        message = f"{kind.label}{where}: {text}"
        flag.update(Text(one_line(message, 300)))
        flag.display = True
        if self._new_error:
            self._new_error = False
            if kind.value not in self._notified:
                self._notified.add(kind.value)
                self.notify(
                    one_line(f"{document.name}: {message}", 300),
                    title="Error in the log",
                    severity="error",
                    timeout=10,
                    markup=False,
                )
                self.app.bell()

    @on(LogView.FollowChanged)
    def show_follow(self, event: LogView.FollowChanged) -> None:
        """The header says whether the log is followed."""
        self.draw_header()

    # Search and jumps ----------------------------------------------------------------------

    def _top_line(self) -> int:
        return int(self.view.scroll_y)

    def _bottom_line(self) -> int:
        return int(self.view.scroll_y) + max(1, self.view.size.height) - 1

    def _from(self, backwards: bool) -> int:
        """Where a jump starts: the current line while it is in view, else the view's edge."""
        top, bottom = self._top_line(), self._bottom_line()
        if self.at_line is not None and top <= self.at_line <= bottom:
            return self.at_line
        return bottom + 1 if backwards else top - 1

    def go_to(self, line: int) -> None:
        """Bring ``line`` into view as the current one (follow stops)."""
        self.at_line = line
        self.view.highlight(self.pattern, line)
        self.draw_header()

    def action_search(self) -> None:
        """Open the search box and focus it at once, so the keys typed next land in it."""
        if self.document is None:
            self.notify(HOW_TO_OPEN, severity="warning", markup=False)
            return
        box = self.search_box
        if self.screen.focused is box:
            # The priority binding takes a slash typed into the box (a regex): put it back.
            box.call_later(box.insert_text_at_cursor, "/")
            return
        box.display = True
        # Not focus(), which waits a turn: keys already on their way would reach the view.
        self.screen.set_focus(box)

    def action_close_search(self) -> None:
        """Close the search box and clear the highlights."""
        box = self.search_box
        if box.display:
            box.display = False
            self.screen.set_focus(self.view)
        elif self.pattern is not None:
            self.pattern = None
            self.view.highlight(None)
            self.draw_header()

    @on(Input.Submitted, "#logs-search")
    def run_search(self, event: Input.Submitted) -> None:
        """Enter: highlight the matches and go to the newest one at or above the view's end."""
        event.stop()
        self.search_box.display = False
        self.screen.set_focus(self.view)
        pattern = search_pattern(event.value)
        self.pattern = pattern
        self.view.highlight(pattern)
        self.draw_header()
        if pattern is not None:
            bottom = min(self._bottom_line(), len(self.document or ()) - 1)
            self.find_match(pattern, bottom + 1, backwards=True)

    @on(Input.Changed, "#logs-search")
    def stop_input_change(self, event: Input.Changed) -> None:
        """The search runs on enter, not as the user types."""
        event.stop()

    def action_next_match(self) -> None:
        """The next match below the current line."""
        if self.pattern is not None:
            self.find_match(self.pattern, self._from(False), backwards=False)

    def action_previous_match(self) -> None:
        """The previous match above the current line."""
        if self.pattern is not None:
            self.find_match(self.pattern, self._from(True), backwards=True)

    @work(exclusive=True, group="logs-search", exit_on_error=False)
    async def find_match(self, pattern: re.Pattern[str], start: int, *, backwards: bool) -> None:
        """Search the whole file (read back as needed) and go to the match found."""
        document = self.document
        if document is None:
            return
        found = await document.find(pattern, start, backwards=backwards)
        if document is not self.document:
            return
        if found is None:
            where = "above" if backwards else "below"
            shown = one_line(pattern.pattern, 60)
            self.notify(f"no match for {shown} {where} this line", timeout=3, markup=False)
            return
        self.go_to(found)

    def _jump_error(self, backwards: bool) -> None:
        document = self.document
        if document is None:
            return
        lines = document.error_lines()
        start = self._from(backwards)
        if backwards:
            earlier = [n for n in lines if n < start]
            target = earlier[-1] if earlier else None
        else:
            later = [n for n in lines if n > start]
            target = later[0] if later else None
        if target is None:
            where = "above" if backwards else "below"
            self.notify(f"no error line {where} this one", timeout=3, markup=False)
            return
        self.go_to(target)

    def action_next_error(self) -> None:
        """The next error line (Traceback, CUDA OOM, NaN loss, NCCL, Killed...)."""
        self._jump_error(backwards=False)

    def action_previous_error(self) -> None:
        """The previous error line."""
        self._jump_error(backwards=True)


def search_pattern(text: str) -> re.Pattern[str] | None:
    """What a search box's text looks for: a regex if it is one, else the text literally;
    all lower case ignores case. ``None`` for nothing."""
    if not text:
        return None
    flags = 0 if any(c.isupper() for c in text) else re.IGNORECASE
    try:
        return re.compile(text, flags)
    except re.error:
        return re.compile(re.escape(text), flags)


PANE = LogsPane
