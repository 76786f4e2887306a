"""The fleet pane: the table of every item, its details, the filter, and guarded actions."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input

from runctl_tui.actions import BY_ACTION, CATALOG, KEYED, Confirmation, spec_for
from runctl_tui.keys import BINDINGS as KEY_BINDINGS
from runctl_tui.models import Action, FleetSnapshot, Instance, Outcome
from runctl_tui.text import clean, one_line
from runctl_tui.threads import run_blocking
from runctl_tui.tui.messages import ActionsFinished, FleetPolled, JournalWritten
from runctl_tui.tui.panes import Pane, PaneContext
from runctl_tui.tui.screens.confirm import (
    CANCELLED,
    ConfirmAction,
    ConfirmScreen,
    ConfirmTerminate,
    Decision,
    refusal_notice,
    result_notices,
)
from runctl_tui.tui.widgets.details import DetailsPanel
from runctl_tui.tui.widgets.footer import textual_binding
from runctl_tui.tui.widgets.instance_table import InstanceTable
from runctl_tui.views import burn_summary, cost_flags_summary

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostLine, CostReport

FLEET_BINDING_IDS = frozenset(
    {
        "details",
        "filter",
        "mark",
        "sort",
        "sort-reverse",
        "clear",
        "open-log",
        "pick-log",
        "open-checkpoints",
        *(spec.binding_id for spec in CATALOG),
    }
)
"""The bindings of :data:`runctl_tui.keys.BINDINGS` that act on the fleet table."""

ACTIONS = {spec.screen_action: spec.action for spec in CATALOG}
"""The fleet actions by the action their bindings run (``act('stop')``)."""


class FleetPane(Pane):
    """Every item of every provider: table, details panel and filter box."""

    PANE_ID = "fleet"

    BINDINGS: ClassVar[list[BindingType]] = [
        textual_binding(binding) for binding in KEY_BINDINGS if binding.id in FLEET_BINDING_IDS
    ]

    class SummaryChanged(Message):
        """Marks or the filter changed: the provider bar's summary is out of date."""

    def __init__(self, context: PaneContext) -> None:
        super().__init__(context)
        self.snapshot: FleetSnapshot | None = None
        # Before the first poll the table is empty, so no action has a target.
        self._binding_state: tuple[bool, bool, frozenset[Action]] = (False, False, frozenset())
        self._spent_of: CostReport | None = None
        self._spent: dict[str, CostLine] = {}

    def compose(self) -> ComposeResult:
        """The table beside the details, the filter box below."""
        with Horizontal(id="body"):
            yield InstanceTable(id="instances")
            yield DetailsPanel(id="details")
        yield Input(
            placeholder="filter: words all match · !word excludes · state=running · tag=value",
            id="filter",
        )

    @property
    def table(self) -> InstanceTable:
        """The fleet table."""
        return self.query_one(InstanceTable)

    @property
    def details(self) -> DetailsPanel:
        """The details panel."""
        return self.query_one(DetailsPanel)

    @property
    def filter_box(self) -> Input:
        """The filter box."""
        return self.query_one("#filter", Input)

    def focus_target(self) -> Widget | None:
        """The filter while it is being typed in, else the table."""
        box = self.filter_box
        return box if box.display and box.has_focus else self.table

    # What the screen passes down -----------------------------------------------------------

    def fleet_polled(self, event: FleetPolled) -> None:
        """Show a new poll."""
        self.snapshot = event.snapshot
        stale = {s.provider for s in event.snapshot.statuses if not s.ok}
        self.table.empty_text = self.empty_text()
        self.table.show_data(event.table, stale)
        self.refresh_details()
        self.sync_bindings()

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

    def summary(self, instances: Sequence[Instance]) -> str:
        """Burn rate, marks and filter, for the provider bar."""
        text = burn_summary(instances)
        report = self.fleet.cost_report
        if report is not None:
            text += cost_flags_summary(report)
        if self.table.marked:
            text += f" · {len(self.table.marked)} marked"
        if self.table.filter_text:
            shown = f"{self.table.row_count} of {self.table.total_count} shown"
            text += f" · {shown} · filter: {clean(self.table.filter_text)}"
        return text

    def refresh_details(self) -> None:
        """Keep the details panel on the cursor row, when it is open."""
        if self.details.display:
            current = self.table.current
            self.details.show(current, self.context.clock(), self.spent(current))

    def spent(self, instance: Instance | None) -> CostLine | None:
        """What ``instance`` cost, as the last cost report says."""
        report = self.fleet.cost_report
        if instance is None or report is None:
            return None
        if self._spent_of is not report:
            self._spent_of = report
            self._spent = {line.key: line for line in report.lines}
        return self._spent.get(instance.key)

    def offered(self, targets: Sequence[Instance]) -> frozenset[Action]:
        """The keyed actions at least one of ``targets`` takes, as its key asks for them."""
        return frozenset(
            spec.action for spec in KEYED if any(self.fleet.takes(spec.action, t) for t in targets)
        )

    def sync_bindings(self) -> None:
        """Re-check the footer's keys only when what they depend on changed (it is costly)."""
        targets = self.table.targets()
        state = (bool(targets), bool(self.table.row_count), self.offered(targets))
        if state != self._binding_state:
            self._binding_state = state
            self.screen.refresh_bindings()

    # Table events --------------------------------------------------------------------------

    @on(InstanceTable.CursorMoved)
    def follow_cursor(self, event: InstanceTable.CursorMoved) -> None:
        """The details panel shows the item under the cursor."""
        if self.details.display:
            self.details.show(event.instance, self.context.clock(), self.spent(event.instance))
        self.sync_bindings()

    @on(InstanceTable.MarksChanged)
    def show_marks(self, event: InstanceTable.MarksChanged) -> None:
        """Update the summary and the action keys."""
        self.post_message(self.SummaryChanged())
        self.sync_bindings()

    # Keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out (``None``) actions with no target, and every action in read-only mode.

        The keys still answer: the main screen's key handler says why the action cannot run.
        """
        if action == "act":
            if self.fleet.readonly or not (self.is_mounted and self.table.targets()):
                return None
            # Greyed out where no target takes it (start on a run, stop on a host).
            asked = spec_for(str(parameters[0])) if parameters else None
            if asked is not None and asked.key_action not in self._binding_state[2]:
                return None
        elif action in {"mark", "pick_log"} and not (self.is_mounted and self.table.row_count):
            return None
        return True

    def action_mark(self) -> None:
        """Mark the cursor row and move down."""
        self.table.toggle_mark()
        self.table.action_cursor_down()

    def action_toggle_details(self) -> None:
        """Show or hide the details panel."""
        self.details.display = not self.details.display
        self.refresh_details()

    def action_filter(self) -> None:
        """Open the filter box and focus it at once, so the keys typed after ``/`` land in it."""
        box = self.filter_box
        if self.screen.focused is box:
            # The priority binding takes the slash before the box sees it; queued behind the
            # keys the box has yet to handle, it lands where it was typed.
            box.call_later(box.insert_text_at_cursor, "/")
            return
        box.display = True
        # Not focus(), which waits a turn: keys already on their way would reach the table.
        self.screen.set_focus(box)

    @on(Input.Changed, "#filter")
    def apply_filter(self, event: Input.Changed) -> None:
        """Filter as the user types."""
        self.table.set_filter(event.value)
        self.table.empty_text = self.empty_text()
        self.table.refresh()
        self.refresh_details()
        self.sync_bindings()
        self.post_message(self.SummaryChanged())

    @on(Input.Submitted, "#filter")
    def keep_filter(self, event: Input.Submitted) -> None:
        """Enter keeps the filter and returns to the table."""
        if not event.value.strip():
            self.filter_box.display = False
        self.table.focus()

    def action_clear(self) -> None:
        """Escape: close the filter box, then the details, then the marks, one at a time."""
        box = self.filter_box
        if box.display:
            box.value = ""
            box.display = False
            self.table.focus()
        elif self.details.display:
            self.details.display = False
        elif self.table.marked:
            self.table.clear_marks()

    def action_open_log(self) -> None:
        """Open the cursor row's likeliest training log in the logs pane."""
        row = self.table.current
        if row is None:
            self.notify("No row selected.", severity="warning")
            return
        self.find_log(row)

    def action_pick_log(self) -> None:
        """List every candidate log of the cursor row, to open one."""
        row = self.table.current
        if row is None:
            self.notify("No row selected.", severity="warning")
            return
        self.find_log(row, pick=True)

    @work(exclusive=True, group="open-log", exit_on_error=False)
    async def find_log(self, row: Instance, pick: bool = False) -> None:
        """Ask the row's provider where its logs are, then show the likeliest one, or with
        ``pick`` offer them all."""
        from runctl_tui.providers.base import ProviderError

        try:
            found = await self.fleet.log_locations(row)
        except ProviderError as exc:
            reason = one_line(f"{row.name or row.id}: cannot find its log: {exc.message}", 300)
            self.notify(reason, severity="error", timeout=10, markup=False)
            return
        except Exception as exc:
            reason = one_line(f"{row.name or row.id}: cannot find its log: {exc}", 300)
            self.notify(reason, severity="error", timeout=10, markup=False)
            return
        if not found:
            self.notify(no_log_notice(row), severity="warning", timeout=10, markup=False)
            return
        if pick:
            from runctl_tui.tui.screens.log_picker import LogPicker

            title = f"Logs of {row.name or row.id} ({len(found)})"
            self.app.push_screen(
                LogPicker(title, found), callback=lambda source: self.open_picked(source, row)
            )
            return
        location = found[0]
        self.open_picked(location.source, row)
        note = f"{location.source}: {location.found}" if location.found else location.source
        if len(found) > 1:
            note += f" · L to pick another ({len(found) - 1} more)"
        self.notify(one_line(note, 300), timeout=6, markup=False)

    def action_open_checkpoints(self) -> None:
        """Open the cursor row's likeliest checkpoint directory in the checkpoints pane."""
        row = self.table.current
        if row is None:
            self.notify("No row selected.", severity="warning")
            return
        self.find_checkpoints(row)

    @work(exclusive=True, group="open-checkpoints", exit_on_error=False)
    async def find_checkpoints(self, row: Instance) -> None:
        """Ask the row's provider where its checkpoints are, then show the likeliest place."""
        from runctl_tui.providers.base import ProviderError

        try:
            found = await self.fleet.checkpoint_locations(row)
        except ProviderError as exc:
            reason = f"{row.name or row.id}: cannot find its checkpoints: {exc.message}"
            self.notify(one_line(reason, 300), severity="error", timeout=10, markup=False)
            return
        except Exception as exc:
            reason = one_line(f"{row.name or row.id}: cannot find its checkpoints: {exc}", 300)
            self.notify(reason, severity="error", timeout=10, markup=False)
            return
        if not found:
            self.notify(no_checkpoints_notice(row), severity="warning", timeout=10, markup=False)
            return
        location = found[0]
        show_checkpoints = getattr(self.screen, "show_checkpoints", None)
        if show_checkpoints is None:
            self.notify(one_line(f"checkpoints: {location.source}", 300), markup=False)
            return
        show_checkpoints(location.source, origin=row)
        note = f"{location.source}: {location.found}" if location.found else location.source
        if len(found) > 1:
            note += f" ({len(found) - 1} more place{'s' if len(found) > 2 else ''})"
        self.notify(one_line(note, 300), timeout=6, markup=False)

    def open_picked(self, source: str | None, row: Instance | None = None) -> None:
        """Follow ``source`` (a log of ``row``) in the logs pane; ``None`` (the picker closed)
        opens nothing."""
        show_log = getattr(self.screen, "show_log", None)
        if source is not None and show_log is not None:
            show_log(source, origin=row)

    def action_sort_next(self) -> None:
        """Sort the table by its next column."""
        self.table.action_sort_next()

    def action_sort_reverse(self) -> None:
        """Reverse the table's order."""
        self.table.action_sort_reverse()

    # Actions -------------------------------------------------------------------------------

    def action_act(self, name: str) -> None:
        """A fleet action from the catalog (``act('stop')``): check, ask, then act."""
        spec = spec_for(name)
        if spec is not None:
            self.ask(spec.action)

    def ask(self, action: Action, targets: tuple[Instance, ...] | None = None) -> None:
        """Capture the targets now (the cursor row or marked rows, unless given) and confirm;
        the decision applies to exactly these.

        The key's action becomes what the targets take (``stop`` interrupts a training run).
        When no target can take it as shown, a notification says why, no dialog opens, and
        the journal records the refusal.
        """
        if targets is None:
            targets = self.table.targets()
        if not targets:
            self.notify("No instance selected.", severity="warning")
            return
        action = self.fleet.resolve(action, targets)
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
        modal = self.confirmation(action, targets, reasons)
        self.app.push_screen(modal, callback=partial(self.decided, action, targets, reasons))

    def confirmation(
        self, action: Action, targets: tuple[Instance, ...], reasons: dict[str, str]
    ) -> ConfirmScreen:
        """The dialog the catalog asks for: y/n, or the id typed out."""
        hidden = sum(1 for t in targets if self.table.instance(t.key) is None)
        typed = BY_ACTION[action].confirmation is Confirmation.TYPED
        modal_type = ConfirmTerminate if typed else ConfirmAction
        return modal_type(
            action,
            targets,
            refused=reasons,
            hidden=hidden,
            spot_lookup=self.fleet.spot_requests if action is Action.TERMINATE else None,
            losses_by_key=self.fleet.losses(action, targets),
            checkpoint_lookup=self.checkpoint_warning if action is Action.TERMINATE else None,
        )

    async def checkpoint_warning(self, instance: Instance) -> str | None:
        """Why terminating ``instance`` loses work: its newest checkpoint has no copy in
        ``[checkpoints] copies`` (S3 prefixes, directories here); ``None`` when it has none
        to lose or a copy was found."""
        from runctl_tui.checkpoints.copies import check_copies, default_lister
        from runctl_tui.remote.ssh import SshHub
        from runctl_tui.tui.screens.trust import hub_for_row

        settings = getattr(getattr(self.app, "settings", None), "checkpoints", None)
        copies = list(getattr(settings, "copies", ()) or ())
        provider = self.fleet.providers.get(instance.provider)
        ssh_target = getattr(provider, "ssh_target", None)
        target = ssh_target(instance) if ssh_target is not None else None
        own: list[SshHub] = []

        def make_hub() -> SshHub:
            own.append(SshHub())
            return own[-1]

        hub = hub_for_row(self.fleet.providers, target, instance, make_hub)
        try:
            found = await check_copies(
                self.fleet, instance, copies, default_lister(hub, self.s3_client)
            )
        finally:
            for extra in own:
                await extra.close()
        return found.warning if found is not None else None

    def s3_client(self) -> Any:
        """An S3 client built like the EC2 ones, for finding checkpoint copies (blocking)."""
        from runctl_tui.checkpoints.listing_s3 import s3_client
        from runctl_tui.providers.aws import Ec2Clients

        aws = getattr(getattr(self.app, "settings", None), "aws", None)
        return s3_client(Ec2Clients.from_settings(aws))

    def decided(
        self,
        action: Action,
        targets: tuple[Instance, ...],
        reasons: dict[str, str],
        decision: Decision | None,
    ) -> None:
        """The dialog closed: act on the targets that can take it, journal the rest."""
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
        """Act, or journal the cancellation and refusals, without blocking the event loop."""
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
            results = await self.fleet.act(
                action, targets, cancel_spot_requests=decision.cancel_spot_requests
            )
        except Exception as exc:
            reason = clean(f"{type(exc).__name__}: {exc}")
            self.notify(f"{action}: {reason}", severity="error", timeout=15, markup=False)
            return
        finally:
            self.post_message(JournalWritten())
        self.post_message(ActionsFinished(results))

    @on(ActionsFinished)
    def show_results(self, event: ActionsFinished) -> None:
        """Report every result and unmark what was done (the screen then polls)."""
        for line, level in result_notices(event.results):
            self.notify(line, severity=level, timeout=8, markup=False)
        done = {r.instance.key for r in event.results if r.outcome is Outcome.DONE}
        if done & self.table.marked:
            self.table.marked -= done
            self.table.post_message(InstanceTable.MarksChanged(len(self.table.marked)))


def no_log_notice(row: Instance) -> str:
    """One line: why ``row`` has no log to open, and what to configure or run instead."""
    details = row.details
    pid = getattr(details, "pid", None)
    if pid is not None:
        why = f"no log file open by pid {pid}, none matches [logs] paths, no recent *.log"
    else:
        why = f"no log known for {row.name or row.id} ({row.provider})"
        if row.kind in {"host", "ec2", "pod"}:
            why += ": none matches [logs] paths, no recent *.log"
    return one_line(
        f"{why}; set [logs] paths (e.g. ~/train/*.log) or run runctl-tui tail PATH", 300
    )


def no_checkpoints_notice(row: Instance) -> str:
    """One line: why ``row`` has no checkpoint directory to open, and what to configure."""
    pid = getattr(row.details, "pid", None)
    if pid is not None:
        why = f"no checkpoints/ in the working directory of pid {pid}, none of [checkpoints] dirs"
    else:
        why = f"no checkpoint directory known for {row.name or row.id} ({row.provider})"
    return one_line(
        f"{why} exists; set [checkpoints] dirs (e.g. ~/train/checkpoints) "
        "or run runctl-tui checkpoints LOCATION",
        300,
    )


PANE = FleetPane
