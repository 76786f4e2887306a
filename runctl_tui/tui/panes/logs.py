"""The logs pane: training logs, one tab each, followed, searched, filtered and charted.

Each tab (:mod:`runctl_tui.tui.panes.log_tab`, imported when the first log opens) follows its
log in a worker; the pane draws every tab's gathered changes at most every
:data:`REDRAW_SECONDS`, so that a flood of lines cannot starve the keys.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Static, Tab, Tabs

from runctl_tui.models import Instance
from runctl_tui.text import clean, one_line
from runctl_tui.tui.messages import FleetPolled
from runctl_tui.tui.panes import Pane, PaneContext

if TYPE_CHECKING:
    from runctl_tui.logs.document import LogDocument
    from runctl_tui.logs.source import LogSource
    from runctl_tui.remote.ssh import SshHub, SshTarget
    from runctl_tui.tui.panes.log_tab import LogTab
    from runctl_tui.tui.widgets.log_view import LogView

REDRAW_SECONDS = 0.05
"""How often gathered changes are drawn: about 20 frames a second at most."""
STALL_CHECK_SECONDS = 5.0
"""How often a followed log is checked for having stopped growing."""

HOW_TO_OPEN = (
    "No log open. Press l on a training run in the fleet (1), "
    "or start with: runctl-tui tail PATH  (or host:PATH, ssh://user@host:port/PATH)"
)

BOX_PLACEHOLDERS = {
    "search": "search: text (a regex if it has one); enter finds",
    "filter": "filter: show only lines matching (a regex if it has one); empty shows all",
    "hide": "hide: show only lines NOT matching (a regex if it has one); empty shows all",
}

MAX_TABS = 12
"""Logs open at once; opening one more asks to close one first."""


class LogsPane(Pane):
    """Training logs, one tab each: followed, searchable, errors flagged and metrics drawn."""

    PANE_ID = "logs"

    BINDINGS: ClassVar[list[BindingType]] = [
        # The box opens as the key arrives, before the keys typed after it (a burst).
        Binding("slash", "search", "Search", id="logs-search", priority=True),
        Binding("ampersand", "filter", "Filter", id="logs-filter", priority=True),
        Binding(
            "exclamation_mark", "hide", "Hide matching", id="logs-hide", priority=True, show=False
        ),
        Binding("n", "next_match", "Next", id="logs-next-match"),
        Binding("N", "previous_match", "Previous", id="logs-previous-match", show=False),
        Binding("e", "next_error", "Next error", id="logs-next-error"),
        Binding("E", "previous_error", "Previous error", id="logs-previous-error", show=False),
        Binding("right_square_bracket", "next_tab", "Next tab", id="logs-next-tab", show=False),
        Binding(
            "left_square_bracket", "previous_tab", "Previous tab", id="logs-prev-tab", show=False
        ),
        Binding("x", "close_tab", "Close tab", id="logs-close-tab"),
        Binding("p", "toggle_chart", "Chart", id="logs-chart"),
        Binding("P", "log_scale", "Log scale", id="logs-log-scale", show=False),
        Binding("escape", "close_search", "Close search", show=False),
    ]

    DEFAULT_CSS = """
    LogsPane #logs-tabs { height: 2; }
    LogsPane #logs-empty { height: 1fr; padding: 1 2; color: $text-muted; }
    LogsPane #logs-switcher { height: 1fr; }
    LogsPane #logs-search { dock: bottom; }
    """

    def __init__(self, context: PaneContext) -> None:
        super().__init__(context)
        self._own_hub: SshHub | None = None
        self._serial = 0
        self._pending: LogTab | None = None
        """The tab opened last, shown once it is mounted."""
        self.box_mode = "search"
        """What the box at the bottom does on enter: ``search``, ``filter`` or ``hide``."""

    def compose(self) -> ComposeResult:
        """The tabs, the open log (or how to open one), the search box."""
        yield Tabs(id="logs-tabs")
        yield Static(Text(HOW_TO_OPEN), id="logs-empty")
        yield ContentSwitcher(id="logs-switcher")
        yield Input(placeholder=BOX_PLACEHOLDERS["search"], id="logs-search")

    def on_mount(self) -> None:
        """Nothing open yet; changes are drawn in batches."""
        self.show_empty(True)
        self.search_box.display = False
        self.set_interval(REDRAW_SECONDS, self.draw_changes, name="logs-redraw")
        self.set_interval(STALL_CHECK_SECONDS, self.check_stall, name="logs-stall")

    async def on_unmount(self) -> None:
        """Close the connection the pane opened itself (each tab stops following its log)."""
        if self._own_hub is not None:
            with contextlib.suppress(Exception):
                await self._own_hub.close()

    # The open tabs -------------------------------------------------------------------------

    @property
    def tabs(self) -> list[LogTab]:
        """Every open log, in tab order."""
        # By the class's name: the tab's module is imported only once a log is opened.
        return cast("list[LogTab]", list(self.query("LogTab")))

    @property
    def tab(self) -> LogTab | None:
        """The log shown, if any."""
        switchers = self.query("#logs-switcher").results(ContentSwitcher)
        current = next(switchers, None)
        if current is None or current.current is None:
            return None
        for tab in self.tabs:
            if tab.id == current.current:
                return tab
        return None

    @property
    def document(self) -> LogDocument | None:
        """The shown log's document."""
        tab = self.tab
        return tab.document if tab is not None else None

    @property
    def view(self) -> LogView:
        """The shown log's view."""
        tab = self.tab
        if tab is None:
            raise LookupError("no log open")
        return tab.view

    @property
    def at_line(self) -> int | None:
        """The line the shown log's last search or error jump went to."""
        tab = self.tab
        return tab.at_line if tab is not None else None

    @property
    def stalled(self) -> str | None:
        """Why the shown log is flagged as stalled, while it is."""
        tab = self.tab
        return tab.stalled if tab is not None else None

    @property
    def search_box(self) -> Input:
        """The search box."""
        return self.query_one("#logs-search", Input)

    def focus_target(self) -> Widget | None:
        """The search box while it is typed in, else the shown log."""
        box = self.search_box
        if box.display and box.has_focus:
            return box
        tab = self.tab
        return tab.view if tab is not None else None

    def show_empty(self, empty: bool) -> None:
        """Say how to open a log, or show the ones open."""
        self.query_one("#logs-empty").display = empty
        self.query_one("#logs-switcher").display = not empty
        # One log needs no tab bar: its header names it.
        self.query_one("#logs-tabs").display = len(self.tabs) > 1

    # Opening -------------------------------------------------------------------------------

    def open_source(self, text: str, *, origin: Instance | None = None) -> None:
        """Open ``text`` (a path, ``host:path`` or ``ssh://...``) in a tab and follow it; a
        log already open is shown again."""
        from runctl_tui.logs.remote import parse_log_source

        try:
            target, path = parse_log_source(text)
        except ValueError as exc:
            self.report_failure(f"cannot open {one_line(text, 120)}: {clean(exc)}")
            return
        source: LogSource
        hub: SshHub | None = None
        if target is None:
            from runctl_tui.logs.local import LocalFileSource

            source = LocalFileSource(path)
        else:
            from runctl_tui.logs.remote import RemoteFileSource

            hub = self.ssh_hub(target, origin)
            source = RemoteFileSource(hub, target, path)
        from runctl_tui.logs.document import LogDocument

        document = LogDocument(source, stall_seconds=self.stall_seconds())
        self.open_document(document, origin=origin, target=target, hub=hub)

    def open_document(
        self,
        document: LogDocument,
        *,
        origin: Instance | None = None,
        target: SshTarget | None = None,
        hub: SshHub | None = None,
    ) -> LogTab | None:
        """Show and follow ``document`` in a tab of its own (or the tab it already has)."""
        key = document.name
        for tab in self.tabs:
            if tab.key == key:
                if origin is not None:
                    tab.origin = origin
                self.activate(tab)
                return tab
        if len(self.tabs) >= MAX_TABS:
            self.notify(f"{MAX_TABS} logs are open: close one with x first", severity="warning")
            return None
        from runctl_tui.tui.panes.log_tab import LogTab

        self._serial += 1
        tab = LogTab(
            document, id=f"log-{self._serial}", key=key, origin=origin, target=target, hub=hub
        )
        self.query_one("#logs-switcher", ContentSwitcher).mount(tab)
        self.query_one("#logs-tabs", Tabs).add_tab(Tab(tab.label, id=f"tab-{tab.id}"))
        self.show_empty(False)
        self._pending = tab
        return tab

    def tab_mounted(self, tab: LogTab) -> None:
        """A tab is ready: show it if it is the one opened last."""
        self.show_empty(False)
        if self._pending is tab:
            self._pending = None
            self.activate(tab)

    def activate(self, tab: LogTab) -> None:
        """Show ``tab`` and give its view the focus."""
        self.query_one("#logs-switcher", ContentSwitcher).current = tab.id
        tabs = self.query_one("#logs-tabs", Tabs)
        tab_id = f"tab-{tab.id}"
        if tabs.active != tab_id:
            tabs.active = tab_id
        tab._dirty = True
        view = tab.view
        # Laid out only now that it is shown: go to the end once it has its size.
        view.call_after_refresh(tab.keep_end)
        if self.screen.focused is not self.search_box:
            self.screen.set_focus(tab.view)
        self.refresh_bindings()

    @on(Tabs.TabActivated, "#logs-tabs")
    def tab_clicked(self, event: Tabs.TabActivated) -> None:
        """A tab was chosen on the tab bar."""
        event.stop()
        tab_id = event.tab.id or ""
        for tab in self.tabs:
            if f"tab-{tab.id}" == tab_id:
                if self.query_one("#logs-switcher", ContentSwitcher).current != tab.id:
                    self.activate(tab)
                return

    def _step_tab(self, step: int) -> None:
        tabs = self.tabs
        current = self.tab
        if not tabs or current is None:
            return
        self.activate(tabs[(tabs.index(current) + step) % len(tabs)])

    def action_next_tab(self) -> None:
        """The next log's tab."""
        self._step_tab(1)

    def action_previous_tab(self) -> None:
        """The previous log's tab."""
        self._step_tab(-1)

    async def action_close_tab(self) -> None:
        """Stop following the shown log and close its tab."""
        tab = self.tab
        if tab is None:
            return
        tabs = self.tabs
        index = tabs.index(tab)
        rest = [t for t in tabs if t is not tab]
        await self.query_one("#logs-tabs", Tabs).remove_tab(f"tab-{tab.id}")
        await tab.remove()
        if rest:
            self.show_empty(False)
            self.activate(rest[min(index, len(rest) - 1)])
        else:
            self.query_one("#logs-switcher", ContentSwitcher).current = None
            self.show_empty(True)
            self.screen.set_focus(None)
        self.refresh_bindings()

    def stall_seconds(self) -> float:
        """How long a log may gain no line before it is flagged (``[logs] stall_minutes``)."""
        settings = getattr(self.app, "settings", None)
        logs = getattr(settings, "logs", None)
        minutes = getattr(logs, "stall_minutes", None)
        if minutes:
            return float(minutes) * 60
        from runctl_tui.logs.document import DEFAULT_STALL_SECONDS

        return DEFAULT_STALL_SECONDS

    def check_stall(self) -> None:
        """Flag every followed log that stopped growing."""
        for tab in self.tabs:
            tab.check_stall()

    def ssh_hub(self, target: SshTarget | None = None, origin: Instance | None = None) -> SshHub:
        """The hub to reach ``target`` through: the one of the provider of the row the log
        belongs to (its keys, its open connection), else the fleet's shared one, else one of
        the pane's own."""
        from runctl_tui.tui.screens.trust import hub_for_row

        return hub_for_row(getattr(self.fleet, "providers", {}), target, origin, self._hub)

    def _hub(self) -> SshHub:
        from runctl_tui.remote.ssh import SshHub

        if self._own_hub is None:
            self._own_hub = SshHub()
        return self._own_hub

    def report_failure(self, message: str) -> None:
        """Say in one line why no log opened."""
        self.notify(message, severity="error", timeout=10, markup=False)
        if not self.tabs:
            self.query_one("#logs-empty", Static).update(Text(f"{message}\n\n{HOW_TO_OPEN}"))

    def draw_changes(self) -> None:
        """Draw what changed in every open log since the last batch."""
        for tab in self.tabs:
            tab.draw_changes()

    def fleet_polled(self, event: FleetPolled) -> None:
        """A poll ended: a tab whose run is over reads its log to the end and says so."""
        for tab in self.tabs:
            tab.fleet_polled(event.snapshot)

    # Search and jumps ----------------------------------------------------------------------

    def _needs_log(self) -> LogTab | None:
        tab = self.tab
        if tab is None:
            self.notify(HOW_TO_OPEN, severity="warning", markup=False)
        return tab

    def open_box(self, mode: str, key: str) -> None:
        """Open the box for ``mode`` and focus it at once, so the keys typed next land in it;
        ``key`` typed while the box has the focus is part of what is typed."""
        if self._needs_log() is None:
            return
        box = self.search_box
        if self.screen.focused is box:
            # The priority binding takes the key typed into the box (a regex): put it back.
            box.call_later(box.insert_text_at_cursor, key)
            return
        self.box_mode = mode
        box.placeholder = BOX_PLACEHOLDERS[mode]
        box.value = ""
        box.display = True
        # Not focus(), which waits a turn: keys already on their way would reach the view.
        self.screen.set_focus(box)

    def action_search(self) -> None:
        """Open the search box."""
        self.open_box("search", "/")

    def action_filter(self) -> None:
        """Open the filter box: only lines matching what is typed are shown."""
        self.open_box("filter", "&")

    def action_hide(self) -> None:
        """Invert the filter on; with none, open the box for lines to hide."""
        tab = self.tab
        box = self.search_box
        if tab is not None and tab.line_filter is not None and self.screen.focused is not box:
            line_filter = tab.line_filter
            tab.set_filter(line_filter.pattern, invert=not line_filter.invert)
            return
        self.open_box("hide", "!")

    def action_close_search(self) -> None:
        """Close the box, else clear the search's highlights, else turn the filter off."""
        box = self.search_box
        tab = self.tab
        if box.display:
            box.display = False
            if tab is not None:
                self.screen.set_focus(tab.view)
        elif tab is not None and not tab.clear_search() and tab.line_filter is not None:
            tab.set_filter(None)

    @on(Input.Submitted, "#logs-search")
    def run_search(self, event: Input.Submitted) -> None:
        """Enter: search the shown log, or filter it."""
        event.stop()
        self.search_box.display = False
        tab = self.tab
        if tab is None:
            return
        self.screen.set_focus(tab.view)
        pattern = search_pattern(event.value)
        if self.box_mode == "search":
            tab.search(pattern)
        else:
            tab.set_filter(pattern, invert=self.box_mode == "hide")

    @on(Input.Changed, "#logs-search")
    def stop_input_change(self, event: Input.Changed) -> None:
        """The search runs on enter, not as the user types."""
        event.stop()

    def action_next_match(self) -> None:
        """The next match below the current line."""
        tab = self.tab
        if tab is not None:
            tab.next_match(backwards=False)

    def action_previous_match(self) -> None:
        """The previous match above the current line."""
        tab = self.tab
        if tab is not None:
            tab.next_match(backwards=True)

    def action_toggle_chart(self) -> None:
        """Show or hide the shown log's loss chart."""
        tab = self._needs_log()
        if tab is not None:
            tab.toggle_chart()

    def action_log_scale(self) -> None:
        """The chart's scale: linear or log."""
        tab = self._needs_log()
        if tab is not None:
            tab.toggle_log_scale()

    def action_next_error(self) -> None:
        """The next error line (Traceback, CUDA OOM, NaN loss, NCCL, Killed...)."""
        tab = self._needs_log()
        if tab is not None:
            tab.jump_error(backwards=False)

    def action_previous_error(self) -> None:
        """The previous error line."""
        tab = self._needs_log()
        if tab is not None:
            tab.jump_error(backwards=True)


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
