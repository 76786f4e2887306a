"""One open log of the logs pane: its header, metrics and loss chart, error flag and view.

A :class:`~runctl_tui.logs.document.LogDocument` follows the file in an async worker and tells
the tab of every change; the pane draws every tab's gathered changes at most every 50 ms, so
that a flood of lines cannot starve the keys. Imported when the first log opens, not at start.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rich.color import ColorParseError
from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from runctl_tui.logs.chart import Series, sparkline
from runctl_tui.logs.decode import StyledLine, TextStyle
from runctl_tui.logs.document import Changed, LogDocument
from runctl_tui.logs.filter import LineFilter, MatchesChanged
from runctl_tui.logs.source import SourceState, SourceStatus
from runctl_tui.models import FleetSnapshot, Instance, InstanceState
from runctl_tui.text import one_line
from runctl_tui.tui.widgets.log_view import LogView, ViewLine
from runctl_tui.tui.widgets.metrics_chart import MetricsChart

if TYPE_CHECKING:
    from runctl_tui.logs.tensorboard import TensorBoardWatch
    from runctl_tui.remote.ssh import SshHub, SshTarget

SPARK_WIDTH = 40
BAR_WIDTH = 24

ESCAPE_CLEARS = "escape clears it"

CHART_MIN_HEIGHT = 30
"""Terminal rows from which the loss chart is shown without asking (``p`` toggles it)."""

PARTIAL_STYLE = Style(dim=True)

ENDED_STATES = frozenset({InstanceState.TERMINATED})
"""A run's states that mean it is over: its log is read to the end, then no longer followed."""


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


class FilteredLines:
    """The view's store while a filter is on: only the lines it keeps, read as the view asks."""

    def __init__(self, document: LogDocument, line_filter: LineFilter) -> None:
        self.document = document
        self.filter = line_filter

    def __len__(self) -> int:
        return len(self.filter)

    def get(self, index: int) -> ViewLine | None:
        """Kept line ``index``, or ``None`` while it is read back."""
        found = self.filter.line(index)
        line = self.document.get(found) if found is not None else None
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


def metrics_text(document: LogDocument, width: int = SPARK_WIDTH, *, spark: bool = True) -> Text:
    """The metrics strip: latest values, progress and ETA, and (``spark``) the loss curve in
    one line, for when the chart is not shown."""
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
    losses = metrics.history("loss") if spark else []
    if losses:
        text.append("\n")
        text.append("loss ", style="dim")
        text.append(sparkline(losses, width), style="cyan")
        finite = [v for v in losses if math.isfinite(v)]
        if finite:
            text.append(f" {_number(finite[0])} → {_number(finite[-1])}", style="dim")
    return text


class LogTab(Vertical):
    """One open log: its header, metrics, flag and view; followed while the tab exists."""

    DEFAULT_CSS = """
    LogTab { height: 1fr; }
    LogTab .log-header { height: 1; padding: 0 1; background: $boost; }
    LogTab .log-metrics { height: auto; max-height: 4; padding: 0 1; }
    LogTab .log-flag { height: auto; padding: 0 1; color: $text-error; text-style: bold; }
    LogTab .log-chart { height: 9; padding: 0 1; }
    """

    def __init__(
        self,
        document: LogDocument,
        *,
        id: str,
        key: str,
        origin: Instance | None = None,
        target: SshTarget | None = None,
        hub: SshHub | None = None,
    ) -> None:
        super().__init__(id=id)
        self.document = document
        self.key = key
        """What makes two opens the same log (its source's name)."""
        self.origin = origin
        """The fleet row the log was opened from, if any: its end ends the tail."""
        self.target = target
        self.hub = hub
        self.failure: str | None = None
        """Why the log could not be opened or followed, one line."""
        self.ended: str | None = None
        """Why following stopped for good (the run exited), once the file was read to its end."""
        self.pattern: re.Pattern[str] | None = None
        self.at_line: int | None = None
        """The line the last search or error jump went to."""
        self.stalled: str | None = None
        """Why the log is flagged as stalled, while it is."""
        self._front = 0
        self._dirty = True
        self._new_error = False
        self._notified: set[str] = set()
        # Built here, not in compose: the pane may draw a tab before its children are mounted.
        self._view = LogView(DocumentLines(document), id=f"{id}-view")
        self._header = Static(Text(""), classes="log-header")
        self._metrics = Static(Text(""), classes="log-metrics")
        self._chart = MetricsChart(classes="log-chart")
        self._flag = Static(Text(""), classes="log-flag")
        self.chart_wanted: bool | None = None
        """The chart shown (True), hidden (False), or left to the terminal's height (None)."""
        self.tensorboard: TensorBoardWatch | None = None
        """Event files of the run, read beside the log, once looked for."""
        self.line_filter: LineFilter | None = None
        """The filter on (``&`` keeps matching lines, ``!`` hides them), if any."""

    def compose(self) -> ComposeResult:
        """Header, metrics, the loss chart, error flag, the log."""
        yield self._header
        yield self._metrics
        yield self._chart
        yield self._flag
        yield self._view

    def on_mount(self) -> None:
        """Follow the log from now on."""
        self._flag.display = False
        self.document.subscribe(self.document_changed)
        self.follow_document()
        for ancestor in self.ancestors:
            tab_mounted = getattr(ancestor, "tab_mounted", None)
            if tab_mounted is not None:
                tab_mounted(self)
                break

    async def on_unmount(self) -> None:
        """Stop following."""
        if self.line_filter is not None:
            self.line_filter.close()
        await self.document.close()
        if self.tensorboard is not None:
            await self.tensorboard.close()

    def on_resize(self) -> None:
        """Shown or resized: a followed log keeps its last line in view."""
        self._view.call_after_refresh(self.keep_end)

    def keep_end(self) -> None:
        """Bring the last line into view, if the log is (still) followed."""
        view = self._view
        if view.follow:
            view.scroll_to(y=view.max_scroll_y, animate=False, immediate=True)

    @property
    def view(self) -> LogView:
        """The log view."""
        return self._view

    @property
    def label(self) -> Text:
        """The tab's title: the file's name, and its host when remote."""
        name = self.document.name
        if self.target is not None:
            base = name.rsplit("/", 1)[-1]
            return Text(one_line(f"{self.target.host}:{base}", 40))
        return Text(one_line(name.rsplit("/", 1)[-1] or name, 40))

    # Following -----------------------------------------------------------------------------

    @work(exclusive=True, group="log-follow", exit_on_error=False)
    async def follow_document(self) -> None:
        """Trust the host first if need be, then follow the log until it ends or is closed."""
        document = self.document
        target, hub = self.target, self.hub
        if target is not None and hub is not None and not await self.host_trusted(hub, target):
            return
        self.watch_tensorboard()
        try:
            await document.run()
        except Exception as exc:
            self.failure = one_line(f"{document.name}: {type(exc).__name__}: {exc}", 300)
        self._dirty = True

    async def host_trusted(self, hub: SshHub, target: SshTarget) -> bool:
        """Connect once before following: an unknown host key is shown and trusted only if the
        user says so; a changed key is refused. Other failures are left to the source, which
        reconnects."""
        from runctl_tui.tui.screens.trust import ensure_host_trusted

        refusal = await ensure_host_trusted(self.app, hub, target)
        if refusal is not None:
            self.fail(refusal)
            return False
        return True

    @work(exclusive=True, group="log-tensorboard", exit_on_error=False)
    async def watch_tensorboard(self) -> None:
        """Read the run's TensorBoard scalars beside the log (``events.out.tfevents.*`` in its
        directory, the usual run folders below it, and ``[logs] tensorboard_dirs``)."""
        path = getattr(self.document.source, "path", None)
        if path is None:
            return
        from runctl_tui.logs.tensorboard import TensorBoardWatch

        settings = getattr(getattr(self.app, "settings", None), "logs", None)
        dirs = tuple(getattr(settings, "tensorboard_dirs", ()) or ())
        watch = TensorBoardWatch(str(path), target=self.target, hub=self.hub, dirs=dirs)
        self.tensorboard = watch
        await watch.run(self.tensorboard_changed)

    def tensorboard_changed(self) -> None:
        """New scalars were read: redraw with the next batch."""
        self._dirty = True

    def fail(self, message: str) -> None:
        """Say in the header and once in a notification why the log cannot be followed."""
        self.failure = one_line(message, 300)
        self._dirty = True
        self.notify(self.failure, severity="error", timeout=15, markup=False)

    def run_ended(self, reason: str) -> None:
        """The run the log belongs to is over: read the file to its end, then stop."""
        if self.ended is not None:
            return
        self.ended = reason
        self._dirty = True
        self.finish_document(reason)

    @work(exclusive=True, group="log-finish", exit_on_error=False)
    async def finish_document(self, reason: str) -> None:
        """Drain the file to its end before the tail reports the run's end."""
        await self.document.finish(reason)
        self._dirty = True

    def check_stall(self) -> None:
        """Flag a followed log that stopped growing, and say so once per stall."""
        document = self.document
        if document.status.state is not SourceState.FOLLOWING or self.ended is not None:
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

    # Changes -------------------------------------------------------------------------------

    def document_changed(self, changed: Changed) -> None:
        """Gather a change to draw with the next batch (indexes shift at once)."""
        view = self.view
        if changed.reset:
            self._front = 0
            self.at_line = None
        if changed.front:
            if self.at_line is not None:
                self.at_line += changed.front
            if self.line_filter is None:
                # The view shows the document's lines: they moved down.
                self._front += changed.front
                if view.current_match is not None:
                    view.current_match += changed.front
        if changed.error is not None:
            self._new_error = True
        self._dirty = True

    def filter_changed(self, changed: MatchesChanged) -> None:
        """Lines kept by the filter were found (or all dropped): the view's lines moved."""
        if self.line_filter is None:
            return
        view = self.view
        if changed.reset:
            self._front = 0
        if changed.front:
            self._front += changed.front
            if view.current_match is not None:
                view.current_match += changed.front
        self._dirty = True

    # Filter ------------------------------------------------------------------------------

    def set_filter(self, pattern: re.Pattern[str] | None, *, invert: bool = False) -> None:
        """Show only the lines matching ``pattern`` (``invert``: only those not matching), or
        every line again (``None``), keeping the current line in view when there is one."""
        old = self.line_filter
        if old is not None:
            old.close()
        view = self.view
        self._front = 0
        view.current_match = None
        if pattern is None:
            self.line_filter = None
            view.store = DocumentLines(self.document)
        else:
            line_filter = LineFilter(self.document, pattern, invert=invert)
            line_filter.subscribe(self.filter_changed)
            self.line_filter = line_filter
            view.store = FilteredLines(self.document, line_filter)
            self.run_filter(line_filter)
        view.lines_changed()
        at = self.at_line
        shown = self.view_of(at) if at is not None else None
        if shown is not None and at is not None:
            self.go_to(at)
        else:
            view.action_bottom()
        self._dirty = True
        self.draw_header()

    @work(exclusive=True, group="log-filter", exit_on_error=False)
    async def run_filter(self, line_filter: LineFilter) -> None:
        """Find the kept lines of the whole file, newest first, then keep up with new ones."""
        await line_filter.run()

    def view_of(self, line: int) -> int | None:
        """Where the document's line ``line`` is in the view (``None``: the filter hides it)."""
        if self.line_filter is None:
            return line
        return self.line_filter.view_index(line)

    def line_of(self, row: int) -> int | None:
        """The document's line shown as the view's line ``row``."""
        if self.line_filter is None:
            return row
        return self.line_filter.line(row)

    def filter_text(self) -> str:
        """The header's words for the filter on: its pattern, lines kept, how far it got."""
        line_filter = self.line_filter
        if line_filter is None:
            return ""
        sign = "!" if line_filter.invert else "&"
        kept = len(line_filter)
        text = f"{sign}{one_line(line_filter.pattern.pattern, 40)}: {kept:,} kept"
        if not line_filter.done:
            text += f", scanning {line_filter.scanned:.0%}"
        return text

    def draw_changes(self) -> None:
        """Draw what changed since the last batch: lines, header, metrics, the error flag."""
        if not self._dirty:
            return
        self._dirty = False
        view = self.view
        front, self._front = self._front, 0
        view.lines_changed()
        if front and not view.follow:
            # Older lines came in above: keep the same lines in view.
            view.scroll_to(y=view.scroll_y + front, animate=False, immediate=True)
        self.draw_header()
        charted = self.draw_chart()
        if view.follow:
            # The chart or the flag may have changed the view's height.
            view.call_after_refresh(self.keep_end)
        metrics = metrics_text(self.document, spark=not charted)
        board = self.tensorboard
        if board is not None and (board.files or board.notes):
            count = len(board.files)
            metrics.append("\n")
            metrics.append(f"tensorboard: {count} event file{'s' if count != 1 else ''}", "dim")
            if board.notes:
                metrics.append(f" · {one_line(board.notes[-1], 160)}", "yellow")
        self._metrics.update(metrics)
        self.draw_flag()

    def curves(self) -> list[Series]:
        """The loss and eval loss: from TensorBoard when the run writes them, else the log."""
        board = self.tensorboard
        found: list[Series] = []
        if board is not None:
            for tag, name, style in (
                (board.loss_tag(), "loss", "cyan"),
                (board.eval_loss_tag(), "eval loss", "magenta"),
            ):
                if tag is not None:
                    found.append(Series(name, tuple(board.points(tag)), "tensorboard", style))
        if found:
            return found
        histories = self.document.metrics.histories
        for key, name, style in (("loss", "loss", "cyan"), ("eval_loss", "eval loss", "magenta")):
            history = histories.get(key)
            if history is not None:
                found.append(Series(name, tuple(history.points()), "log", style))
        return found

    def draw_chart(self) -> bool:
        """Draw the loss chart if it is wanted and has a curve; whether it is shown."""
        chart = self._chart
        curves = [c for c in self.curves() if len(c.points) >= 2]
        wanted = self.chart_wanted
        if wanted is None:
            wanted = self.app.size.height >= CHART_MIN_HEIGHT
        shown = bool(wanted and curves)
        chart.display = shown
        if shown:
            chart.set_series(curves)
        return shown

    def toggle_chart(self) -> None:
        """Show or hide the loss chart."""
        shown = self._chart.display
        self.chart_wanted = not shown
        self._dirty = True
        if self.chart_wanted and not [c for c in self.curves() if len(c.points) >= 2]:
            self.notify("no loss curve yet: it needs two values", timeout=3)

    def toggle_log_scale(self) -> None:
        """The chart's scale: linear or log."""
        self._chart.toggle_log_scale()

    def draw_header(self) -> None:
        """Source, state, lines known, follow."""
        document = self.document
        header = Text()
        header.append(one_line(document.name, 120), style="bold")
        header.append(" · ", style="dim")
        failed = self.failure is not None or document.status.state is SourceState.FAILED
        if self.failure:
            header.append(f"failed: {self.failure}", style="bold red")
        elif self.ended is not None and document.status.state is SourceState.ENDED:
            header.append(f"ended: {one_line(self.ended, 80)}", style="bold")
        else:
            header.append(state_text(document.status), style="bold red" if failed else "")
        header.append(" · ", style="dim")
        count = len(document)
        header.append(f"{count:,} line{'s' if count != 1 else ''}")
        header.append(" · ", style="dim")
        header.append("follow on" if self.view.follow else "follow off (G resumes)", style="dim")
        if self.pattern is not None:
            header.append(" · ", style="dim")
            header.append(f"/{one_line(self.pattern.pattern, 40)}", style="dim")
        if self.line_filter is not None:
            header.append(" · ", style="dim")
            header.append(self.filter_text(), style="bold yellow")
        self._header.update(header)

    def draw_flag(self) -> None:
        """The newest error seen, in red; a notification and a bell the first time of a kind."""
        document = self.document
        flag = self._flag
        if document.last_error is None and self.stalled is None:
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
        event.stop()
        self.draw_header()

    # Search and jumps ----------------------------------------------------------------------

    def _edges(self) -> tuple[int, int]:
        """The document's first and last lines in view (wrapped or filtered alike)."""
        rows = self.view.visible_lines()
        count = len(self.document)
        if not rows:
            return count, count - 1
        top = self.line_of(rows.start)
        bottom = self.line_of(rows[-1])
        return (
            top if top is not None else count,
            bottom if bottom is not None else count - 1,
        )

    def _from(self, backwards: bool) -> int:
        """Where a jump starts: the current line while it is in view, else the view's edge."""
        top, bottom = self._edges()
        if self.at_line is not None and top <= self.at_line <= bottom:
            return self.at_line
        return bottom + 1 if backwards else top - 1

    def go_to(self, line: int) -> None:
        """Bring the document's ``line`` into view as the current one (follow stops)."""
        row = self.view_of(line)
        if row is None:
            self.notify(
                f"line {line + 1:,} is hidden by the filter ({ESCAPE_CLEARS})",
                timeout=4,
                markup=False,
            )
            return
        self.at_line = line
        self.view.highlight(self.pattern, row)
        self.draw_header()

    def search(self, pattern: re.Pattern[str] | None) -> None:
        """Highlight ``pattern``'s matches and go to the newest at or above the view's end."""
        self.pattern = pattern
        self.view.highlight(pattern)
        self.draw_header()
        if pattern is not None:
            # Following: from the last line, wherever the view has got to.
            count = len(self.document)
            bottom = count - 1 if self.view.follow else min(self._edges()[1], count - 1)
            self.find_match(pattern, bottom + 1, backwards=True)

    def clear_search(self) -> bool:
        """Drop the highlights; whether there were any."""
        if self.pattern is None:
            return False
        self.pattern = None
        self.view.highlight(None)
        self.draw_header()
        return True

    def next_match(self, backwards: bool) -> None:
        """The next (or previous) match from the current line."""
        if self.pattern is not None:
            self.find_match(self.pattern, self._from(backwards), backwards=backwards)

    @work(exclusive=True, group="log-search", exit_on_error=False)
    async def find_match(self, pattern: re.Pattern[str], start: int, *, backwards: bool) -> None:
        """Search the whole file (read back as needed) and go to the match found (among the
        lines the filter keeps, when one is on)."""
        found = await self.document.find(pattern, start, backwards=backwards)
        while found is not None and self.view_of(found) is None:
            found = await self.document.find(pattern, found, backwards=backwards)
        if found is None:
            where = "above" if backwards else "below"
            shown = one_line(pattern.pattern, 60)
            self.notify(f"no match for {shown} {where} this line", timeout=3, markup=False)
            return
        self.go_to(found)

    def jump_error(self, backwards: bool) -> None:
        """The next (or previous) error line."""
        lines = [n for n in self.document.error_lines() if self.view_of(n) is not None]
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

    def fleet_polled(self, snapshot: FleetSnapshot) -> None:
        """The run the log was opened from is gone (its provider answered without it, or said
        it ended): the log is read to its end and the tab says the run ended."""
        origin = self.origin
        if origin is None or origin.kind != "process":
            return
        if not any(s.provider == origin.provider and s.ok for s in snapshot.statuses):
            return
        row = next((i for i in snapshot.instances if i.key == origin.key), None)
        pid = getattr(origin.details, "pid", None)
        who = f"the run (pid {pid})" if pid is not None else "the run"
        if row is None:
            self.run_ended(f"{who} exited")
        elif row.state in ENDED_STATES:
            self.run_ended(f"{who} {row.state.value}")
