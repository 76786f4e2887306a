"""The main screen: provider status, the fleet table, details, filter; polling and actions."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Header, Input
from textual.worker import Worker, WorkerState

from runctl_tui.actions import BY_ACTION, CATALOG, Confirmation, spec_for
from runctl_tui.costs.rates import PriceTable
from runctl_tui.keys import BINDINGS as KEY_BINDINGS
from runctl_tui.keys import QUIT_ID
from runctl_tui.models import Action, FleetSnapshot, Instance, Outcome
from runctl_tui.services.fleet import Clock, Fleet
from runctl_tui.text import clean
from runctl_tui.threads import run_blocking
from runctl_tui.tui.messages import ActionsFinished, FleetPolled
from runctl_tui.tui.screens.confirm import (
    CANCELLED,
    ConfirmAction,
    ConfirmTerminate,
    Decision,
    refusal_notice,
    result_notices,
    run_bindings_here,
)
from runctl_tui.tui.screens.help import HelpScreen
from runctl_tui.tui.widgets.details import DetailsPanel
from runctl_tui.tui.widgets.footer import FleetFooter, textual_binding
from runctl_tui.tui.widgets.instance_table import InstanceTable, prepare
from runctl_tui.tui.widgets.provider_bar import ProviderBar, header_sub_title
from runctl_tui.views import burn_summary

HELP = {binding.id: binding.description for binding in KEY_BINDINGS}
"""What each rebindable binding does, in the order the help screen lists them."""

ACTIONS = {spec.screen_action: spec.action for spec in CATALOG}
"""The fleet actions by the screen action their bindings run (``act('stop')``)."""


class DashboardScreen(Screen[None]):
    """Every instance of every provider, refreshed in the background."""

    BINDINGS: ClassVar[list[BindingType]] = [
        textual_binding(binding) for binding in KEY_BINDINGS if binding.id != QUIT_ID
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
        self._poll_error = ""
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
            placeholder="filter: words all match · !word excludes · state=running · tag=value",
            id="filter",
        )
        yield FleetFooter()

    @property
    def table(self) -> InstanceTable:
        """The fleet table."""
        return self.query_one(InstanceTable)

    def on_mount(self) -> None:
        """Show the providers, start polling; age labels tick every second."""
        self.table.focus()
        self.render_status()
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

    @work(exclusive=False, group="poll", exit_on_error=False)
    async def poll_fleet(self) -> None:
        """Ask every provider for its instances and render the rows, off the event loop."""
        # Blocking providers run on daemon threads, not in a thread worker: the executor of
        # thread workers is joined on exit, so a poll stuck on a hung endpoint would hold up
        # quitting. Cancelling this worker abandons them.
        snapshot = await self.fleet.poll_async()
        rows = partial(prepare, snapshot.instances, self.clock(), self.prices)
        table = await run_blocking(rows, name="runctl-rows")
        self.post_message(FleetPolled(snapshot, table))

    @on(FleetPolled)
    def show_fleet(self, event: FleetPolled) -> None:
        """Put a new poll on screen."""
        self._polling = False
        self._poll_error = ""
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
        """What the table says when it has no rows (one line, provider text escaped)."""
        snapshot = self.snapshot
        failed = [s for s in snapshot.statuses if not s.ok and s.error] if snapshot else []
        if snapshot is None:
            return "Waiting for the first poll…"
        if failed and not snapshot.instances:
            first = failed[0]
            hint = f" → {first.hint}" if first.hint else ""
            return clean(f"{first.provider}: {first.error}{hint}")
        if self.table.filter_text:
            return clean(f"No instance matches {self.table.filter_text} (esc clears the filter)")
        return "No instances in the polled regions."

    def polling_since(self) -> datetime | None:
        """When the poll in flight started, if one is."""
        return self.fleet.polling_since if self._polling else None

    def render_status(self) -> None:
        """Refresh the header, the provider bar, the details panel and the action keys."""
        # Before the first poll ends, the fleet's statuses say which providers are being polled.
        snapshot = self.snapshot or self.fleet.snapshot()
        now = self.clock()
        identities = [s.identity for s in snapshot.statuses if s.identity]
        self.app.sub_title = header_sub_title(
            demo=self.demo, readonly=self.fleet.readonly, identities=identities
        )
        self.query_one(ProviderBar).update_statuses(
            snapshot.statuses,
            self.summary(snapshot.instances) if self.snapshot else "",
            now,
            polling_since=self.polling_since(),
            notice=self._poll_error,
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
            shown = f"{self.table.row_count} of {self.table.total_count} shown"
            text += f" · {shown} · filter: {clean(self.table.filter_text)}"
        return text

    def tick(self) -> None:
        """Keep the ages, and the time a poll has been running, honest between polls."""
        self.query_one(ProviderBar).refresh_ages(self.clock(), self.polling_since())

    @on(Worker.StateChanged)
    def report_failure(self, event: Worker.StateChanged) -> None:
        """A worker crashed: say so, keep the app up; a failed poll leaves polling running."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        reason = clean(f"{type(error).__name__}: {error}")
        if event.worker.group != "poll":
            self.notify(f"{event.worker.name} failed: {reason}", severity="error", markup=False)
            return
        self._polling = False
        gc.enable()
        message = f"polling failed: {reason}; polling continues every {self.poll_seconds:g}s"
        if message != self._poll_error:
            self.notify(message, severity="error", markup=False)
        self._poll_error = message
        self.render_status()
        if self._poll_again:
            self._poll_again = False
            self.poll_now()

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

    async def on_key(self, event: events.Key) -> None:
        """Run this screen's bindings as keys arrive; say why an action key is off."""
        if not self.is_active:
            # An earlier key of the same burst opened a dialog: this key was not meant for it.
            event.stop()
            event.prevent_default()
            return
        if await run_bindings_here(self, event):
            return
        # A greyed-out action key (no target, read-only) still answers, with the reason.
        for namespace, bindings in self._modal_binding_chain:
            for binding in bindings.key_to_bindings.get(event.key, ()):
                if namespace is self and binding.action in ACTIONS:
                    self.ask(ACTIONS[binding.action])
                    return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out (``None``) actions with no target, and every action in read-only mode.

        The keys still answer: :meth:`on_key` says why the action cannot run.
        """
        if action == "act":
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
        """Open the filter box and focus it at once, so the keys typed after ``/`` land in it."""
        box = self.query_one("#filter", Input)
        if self.focused is box:
            # The priority binding takes the slash before the box sees it; queued behind the
            # keys the box has yet to handle, it lands where it was typed.
            box.call_later(box.insert_text_at_cursor, "/")
            return
        box.display = True
        # Not focus(), which waits a turn: keys already on their way would reach the table.
        self.set_focus(box)

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
        keys.append(("ctrl+p", "command palette"))
        mapped = self.mapped_keys()
        acting = [
            mapped.get(i, "-") for i in ("stop-instance", "start-instance", "terminate-instance")
        ]
        notes = [
            (
                "Marks",
                f"{mapped.get('mark', '-')} marks rows; {', '.join(acting)} then act on every one",
            ),
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

    def mapped_keys(self) -> dict[str, str]:
        """Binding id to its keys as shown (``?``, ``⏎``), honouring the keymap."""
        keys: dict[str, list[str]] = {}
        for active in self.active_bindings.values():
            binding = active.binding
            if binding.id in HELP:
                display = binding.key_display or self.app.get_key_display(binding)
                keys.setdefault(binding.id, []).append(display)
        return {i: " ".join(keys[i]) for i in HELP if i in keys}

    def help_keys(self) -> list[tuple[str, str]]:
        """(keys, description) for each binding of the catalog, honouring the keymap."""
        return [(keys, HELP[i]) for i, keys in self.mapped_keys().items()]

    def action_sort_next(self) -> None:
        """Sort the table by its next column."""
        self.table.action_sort_next()

    def action_sort_reverse(self) -> None:
        """Reverse the table's order."""
        self.table.action_sort_reverse()

    def action_act(self, name: str) -> None:
        """A fleet action from the catalog (``act('stop')``): check, ask, then act."""
        spec = spec_for(name)
        if spec is not None:
            self.ask(spec.action)

    def ask(self, action: Action) -> None:
        """Capture the targets now and confirm; the decision applies to exactly these.

        When no target can take the action as shown, a notification says why, no dialog
        opens, and the journal records the refusal.
        """
        targets = self.table.targets()
        if not targets:
            self.notify("No instance selected.", severity="warning")
            return
        reasons = self.fleet.preflight(action, targets)
        if all(t.key in reasons for t in targets):
            self.notify(
                refusal_notice(action, targets, reasons),
                severity="warning",
                timeout=8,
                markup=False,
            )
            self.perform_action(action, (), targets, reasons, CANCELLED)
            return
        hidden = sum(1 for t in targets if self.table.instance(t.key) is None)
        typed = BY_ACTION[action].confirmation is Confirmation.TYPED
        modal_type = ConfirmTerminate if typed else ConfirmAction
        modal = modal_type(
            action,
            targets,
            self.prices,
            self.fleet.protect_tag,
            refused=reasons,
            hidden=hidden,
            spot_lookup=self.fleet.spot_requests if action is Action.TERMINATE else None,
            losses_by_key=self.fleet.losses(action, targets),
        )
        self.app.push_screen(modal, callback=partial(self.decided, action, targets, reasons))

    def decided(
        self,
        action: Action,
        targets: tuple[Instance, ...],
        reasons: dict[str, str],
        decision: Decision | None,
    ) -> None:
        """The modal closed: act on the targets that can take it, journal the rest."""
        actionable = tuple(t for t in targets if t.key not in reasons)
        refused = tuple(t for t in targets if t.key in reasons)
        self.perform_action(action, actionable, refused, reasons, decision or CANCELLED)

    @work(group="act", exit_on_error=False)
    async def perform_action(
        self,
        action: Action,
        targets: tuple[Instance, ...],
        refused: tuple[Instance, ...],
        reasons: dict[str, str],
        decision: Decision,
    ) -> None:
        """Act (or journal the cancellation and refusals) on daemon threads."""
        # Daemon threads, not a thread worker: quitting must not wait for a hung call.
        try:
            if refused:
                record = partial(self.fleet.record_refused, action, refused, reasons)
                await run_blocking(record, name="runctl-journal")
            if not targets:
                return
            if not decision.confirmed:
                cancel = partial(self.fleet.record_cancelled, action, targets)
                await run_blocking(cancel, name="runctl-journal")
                return
            act = partial(
                self.fleet.act,
                action,
                targets,
                cancel_spot_requests=decision.cancel_spot_requests,
            )
            results = await run_blocking(act, name="runctl-act")
        except Exception as exc:
            reason = clean(f"{type(exc).__name__}: {exc}")
            self.notify(f"{action}: {reason}", severity="error", timeout=15, markup=False)
            return
        self.post_message(ActionsFinished(results))

    @on(ActionsFinished)
    def show_results(self, event: ActionsFinished) -> None:
        """Report every result; unmark what was done; poll to show the new states."""
        for line, level in result_notices(event.results):
            self.notify(line, severity=level, timeout=8, markup=False)
        done = {r.instance.key for r in event.results if r.outcome is Outcome.DONE}
        if done & self.table.marked:
            self.table.marked -= done
            self.table.post_message(InstanceTable.MarksChanged(len(self.table.marked)))
        self.poll_now()
