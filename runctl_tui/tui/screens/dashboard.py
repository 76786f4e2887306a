"""The main screen: provider status, the fleet table, details, filter; polling and actions."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from functools import partial
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Header, Input
from textual.worker import Worker, WorkerState, get_current_worker

from runctl_tui.costs.rates import PriceTable
from runctl_tui.models import Action, ActionResult, FleetSnapshot, Instance, Outcome
from runctl_tui.services.fleet import Clock, Fleet
from runctl_tui.tui.messages import ActionsFinished, FleetPolled
from runctl_tui.tui.screens.confirm import ConfirmAction, ConfirmTerminate
from runctl_tui.tui.screens.help import HelpScreen
from runctl_tui.tui.widgets.details import DetailsPanel
from runctl_tui.tui.widgets.instance_table import InstanceTable, prepare
from runctl_tui.tui.widgets.provider_bar import ProviderBar
from runctl_tui.views import burn_summary

HELP = {
    "details": "show or hide the details panel (tags, IPs, AMI, volumes)",
    "filter": "filter rows by any text, tags included",
    "refresh": "poll every provider now",
    "mark": "mark or unmark the row, then move down",
    "stop-instance": "stop the cursor row, or every marked row (asks y/n)",
    "start-instance": "start a stopped instance, or every marked one (asks y/n)",
    "terminate-instance": "terminate: type the id (or 'terminate' for several)",
    "clear": "close the filter, then the details, then clear the marks",
    "help": "this screen",
}

ACTIONS = {
    "stop_instance": Action.STOP,
    "start_instance": Action.START,
    "terminate_instance": Action.TERMINATE,
}


class DashboardScreen(Screen[None]):
    """Every instance of every provider, refreshed in the background."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "toggle_details", "Details", id="details"),
        Binding("slash", "filter", "Filter", id="filter", key_display="/"),
        Binding("r", "refresh", "Refresh", id="refresh"),
        Binding("space", "mark", "Mark", id="mark"),
        Binding("s", "stop_instance", "Stop", id="stop-instance"),
        Binding("u", "start_instance", "Start", id="start-instance"),
        Binding("T", "terminate_instance", "Terminate", id="terminate-instance"),
        Binding("escape", "clear", "Clear", id="clear", show=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
    ]

    def __init__(
        self,
        fleet: Fleet,
        *,
        prices: PriceTable,
        poll_seconds: float,
        clock: Clock,
        demo: bool = False,
    ) -> None:
        super().__init__()
        self.fleet = fleet
        self.prices = prices
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.demo = demo
        self.snapshot: FleetSnapshot | None = None
        self._polling = False
        self._poll_again = False
        # Before the first poll the table is empty, so no action has a target.
        self._binding_state = (False, False)

    def compose(self) -> ComposeResult:
        """Header, provider bar, table beside details, filter box, footer."""
        header_classes = {"-demo": self.demo, "-readonly": self.fleet.readonly}
        yield Header(icon="▣", classes=" ".join(c for c, on in header_classes.items() if on))
        yield ProviderBar(id="providers")
        with Horizontal(id="body"):
            yield InstanceTable(id="instances")
            yield DetailsPanel(self.prices, id="details")
        yield Input(
            placeholder="filter: any text in a row or tag (enter keeps it, esc clears)", id="filter"
        )
        yield Footer()

    @property
    def table(self) -> InstanceTable:
        """The fleet table."""
        return self.query_one(InstanceTable)

    def on_mount(self) -> None:
        """Start polling; age labels tick every second."""
        self.table.focus()
        # The first frame goes out before the poll worker starts importing SDKs beside it.
        self.call_after_refresh(self.poll_now)
        self.set_interval(self.poll_seconds, self.poll_now, name="poll")
        self.set_interval(1.0, self.tick, name="ages")

    # Polling -------------------------------------------------------------------------------

    def poll_now(self) -> None:
        """Poll unless a poll is in flight, in which case poll again right after it."""
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        self.poll_fleet()

    @work(thread=True, group="poll", exit_on_error=False)
    def poll_fleet(self) -> None:
        """Ask every provider for its instances and render the rows, off the event loop."""
        snapshot = self.fleet.poll()
        table = prepare(snapshot.instances, self.clock(), self.prices)
        if not get_current_worker().is_cancelled:
            self.post_message(FleetPolled(snapshot, table))

    @on(FleetPolled)
    def show_fleet(self, event: FleetPolled) -> None:
        """Put a new poll on screen."""
        self._polling = False
        first = self.snapshot is None
        self.snapshot = event.snapshot
        stale = {s.provider for s in event.snapshot.statuses if not s.ok}
        self.table.empty_text = self.empty_text()
        self.table.show_data(event.table, stale)
        self.render_status()
        if first:
            # What start-up and the first poll (boto3 included) built lives as long as the app:
            # keep it out of every later collection, whose pauses would stall the UI.
            gc.freeze()
            gc.enable()
        if self._poll_again:
            self._poll_again = False
            self.poll_now()

    def empty_text(self) -> str:
        """What the table says when it has no rows."""
        snapshot = self.snapshot
        failed = [s for s in snapshot.statuses if not s.ok and s.error] if snapshot else []
        if snapshot is None:
            return "Waiting for the first poll…"
        if failed and not snapshot.instances:
            first = failed[0]
            hint = f" → {first.hint}" if first.hint else ""
            return f"{first.provider}: {first.error}{hint}"
        if self.table.filter_text:
            return f"No instance matches {self.table.filter_text!r} (esc clears the filter)"
        return "No instances in the polled regions."

    def render_status(self) -> None:
        """Refresh the provider bar, the details panel and the action keys."""
        if self.snapshot is None:
            return
        now = self.clock()
        self.query_one(ProviderBar).update_statuses(
            self.snapshot.statuses, self.summary(self.snapshot.instances), now
        )
        details = self.query_one(DetailsPanel)
        if details.display:
            details.show(self.table.current, now)
        self.sync_bindings()

    def sync_bindings(self) -> None:
        """Re-check the footer's keys only when what they depend on changed (it is costly)."""
        state = (bool(self.table.targets()), bool(self.table.row_count))
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def summary(self, instances: Sequence[Instance]) -> str:
        """Burn rate and marks, for the provider bar."""
        text = burn_summary(instances, self.prices)
        if self.table.marked:
            text += f" · {len(self.table.marked)} marked"
        if self.table.filter_text:
            text += f" · filter: {self.table.filter_text}"
        return text

    def tick(self) -> None:
        """Keep the ages honest between polls."""
        self.query_one(ProviderBar).refresh_ages(self.clock())

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        """A worker crashed: say so, keep the app up."""
        if event.state is not WorkerState.ERROR:
            return
        if event.worker.group == "poll":
            self._polling = False
            gc.enable()
        self.notify(f"{event.worker.name} failed: {event.worker.error}", severity="error")

    # Table events --------------------------------------------------------------------------

    @on(InstanceTable.CursorMoved)
    def follow_cursor(self, event: InstanceTable.CursorMoved) -> None:
        """The details panel shows the instance under the cursor."""
        details = self.query_one(DetailsPanel)
        if details.display:
            details.show(event.instance, self.clock())
        self.sync_bindings()

    @on(InstanceTable.MarksChanged)
    def show_marks(self, event: InstanceTable.MarksChanged) -> None:
        """Update the summary and the action keys."""
        self.render_status()

    # Actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out (``None``) actions with no target, and every action in read-only mode."""
        if action in ACTIONS:
            if self.fleet.readonly or not (self.is_mounted and self.table.targets()):
                return None
        elif action == "mark" and not (self.is_mounted and self.table.row_count):
            return None
        return True

    def action_refresh(self) -> None:
        """Poll now."""
        self.poll_now()
        self.notify("Refreshing…", timeout=1.5)

    def action_mark(self) -> None:
        """Mark the cursor row and move down."""
        self.table.toggle_mark()
        self.table.action_cursor_down()

    def action_toggle_details(self) -> None:
        """Show or hide the details panel."""
        details = self.query_one(DetailsPanel)
        details.display = not details.display
        if details.display:
            details.show(self.table.current, self.clock())

    def action_filter(self) -> None:
        """Open the filter box."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def apply_filter(self, event: Input.Changed) -> None:
        """Filter as the user types."""
        self.table.set_filter(event.value)
        self.table.empty_text = self.empty_text()
        self.table.refresh()
        self.render_status()

    @on(Input.Submitted, "#filter")
    def keep_filter(self, event: Input.Submitted) -> None:
        """Enter keeps the filter and returns to the table."""
        if not event.value.strip():
            self.query_one("#filter", Input).display = False
        self.table.focus()

    def action_clear(self) -> None:
        """Escape: close the filter box, then the details, then the marks, one at a time."""
        box = self.query_one("#filter", Input)
        details = self.query_one(DetailsPanel)
        if box.display:
            box.value = ""
            box.display = False
            self.table.focus()
        elif details.display:
            details.display = False
        elif self.table.marked:
            self.table.clear_marks()

    def action_help(self) -> None:
        """Show the help screen, with the keys as currently mapped."""
        keys = [("↑ ↓  j k", "move the cursor (PgUp/PgDn, g/G for the ends)"), *self.help_keys()]
        keys += [("ctrl+p", "command palette"), ("q", "quit")]
        notes = [
            ("Marks", "space marks rows; s, u and T then act on every marked row"),
            (
                "Protected",
                f"P in the first column: tag {self.fleet.protect_tag}=true; never terminated",
            ),
            ("Safety", "each action re-checks the instance's state just before acting"),
            ("Journal", str(self.fleet.journal.path)),
            ("Read-only", "on" if self.fleet.readonly else "off (runctl-tui --readonly)"),
            ("Prices", f"on-demand list prices of {self.prices.as_of}; spot bills less"),
        ]
        self.app.push_screen(HelpScreen(keys, notes))

    def help_keys(self) -> list[tuple[str, str]]:
        """(keys, description) for each of this screen's bindings, honouring the keymap."""
        keys: dict[str, list[str]] = {}
        for active in self.active_bindings.values():
            binding = active.binding
            if binding.id in HELP:
                display = binding.key_display or self.app.get_key_display(binding)
                keys.setdefault(binding.id, []).append(display)
        return [(" ".join(keys[i]), text) for i, text in HELP.items() if i in keys]

    def action_stop_instance(self) -> None:
        """Ask, then stop the targets."""
        self.ask(Action.STOP)

    def action_start_instance(self) -> None:
        """Ask, then start the targets."""
        self.ask(Action.START)

    def action_terminate_instance(self) -> None:
        """Ask for the typed id, then terminate the targets."""
        self.ask(Action.TERMINATE)

    def ask(self, action: Action) -> None:
        """Capture the targets now and confirm; the decision applies to exactly these."""
        targets = self.table.targets()
        if not targets:
            self.notify("No instance selected.", severity="warning")
            return
        modal_type = ConfirmTerminate if action is Action.TERMINATE else ConfirmAction
        modal = modal_type(action, targets, self.prices, self.fleet.protect_tag)
        self.app.push_screen(modal, callback=partial(self.decided, action, targets))

    def decided(
        self, action: Action, targets: tuple[Instance, ...], confirmed: bool | None
    ) -> None:
        """The modal closed: act on the captured targets, or journal the cancellation."""
        self.perform_action(action, targets, bool(confirmed))

    @work(thread=True, group="act", exit_on_error=False)
    def perform_action(
        self, action: Action, targets: tuple[Instance, ...], confirmed: bool
    ) -> None:
        """Act (or record the cancellation) off the event loop."""
        if not confirmed:
            self.fleet.record_cancelled(action, targets)
            return
        results = self.fleet.act(action, targets)
        self.post_message(ActionsFinished(results))

    @on(ActionsFinished)
    def show_results(self, event: ActionsFinished) -> None:
        """Report every result; unmark what was done; poll to show the new states."""
        for result in event.results:
            self.notify(result.summary(), severity=severity(result), timeout=8)
        done = {r.instance.key for r in event.results if r.outcome is Outcome.DONE}
        if done & self.table.marked:
            self.table.marked -= done
            self.table.post_message(InstanceTable.MarksChanged(len(self.table.marked)))
        self.poll_now()


def severity(result: ActionResult) -> SeverityLevel:
    """Notification severity for a result."""
    if result.outcome is Outcome.DONE:
        return "information"
    return "warning" if result.outcome is Outcome.REFUSED else "error"
