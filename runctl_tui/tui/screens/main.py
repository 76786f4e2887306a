"""The main screen: header, provider status and a shell of panes switched by their keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Header

from runctl_tui.actions import KEYED
from runctl_tui.keys import BINDINGS as KEY_BINDINGS
from runctl_tui.keys import QUIT_ID, KeymapError, resolve_keymap
from runctl_tui.models import Action, FleetSnapshot, Instance, Outcome
from runctl_tui.providers.base import ProviderError
from runctl_tui.services.fleet import Clock, Fleet
from runctl_tui.text import one_line
from runctl_tui.tui.messages import ActionsFinished, FleetPolled, JournalWritten, PollFailed
from runctl_tui.tui.panes import Pane, PaneContext, build_panes
from runctl_tui.tui.panes.fleet import ACTIONS, FLEET_BINDING_IDS, FleetPane
from runctl_tui.tui.poller import Poller
from runctl_tui.tui.screens.confirm import run_bindings_here
from runctl_tui.tui.screens.help import HelpScreen
from runctl_tui.tui.widgets.footer import FleetFooter, textual_binding
from runctl_tui.tui.widgets.instance_table import InstanceTable
from runctl_tui.tui.widgets.provider_bar import ProviderBar, header_sub_title

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostReport

HELP = {binding.id: binding.description for binding in KEY_BINDINGS}
"""What each rebindable binding does, in the order the help screen lists them."""

ROW_BINDING_IDS = frozenset({"open-checkpoints"})
"""Bindings that act on a fleet row, whether or not the fleet pane has taken them up yet."""

SCREEN_BINDING_IDS = frozenset(
    binding.id
    for binding in KEY_BINDINGS
    if binding.id not in FLEET_BINDING_IDS | ROW_BINDING_IDS and binding.id != QUIT_ID
)
"""Bindings that work on every pane: refresh, help and the pane keys."""


class MainScreen(Screen[None]):
    """Every pane of the app, one shown at a time, above the provider bar and the footer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        textual_binding(binding) for binding in KEY_BINDINGS if binding.id in SCREEN_BINDING_IDS
    ]

    def __init__(
        self,
        fleet: Fleet,
        *,
        poll_seconds: float,
        clock: Clock,
        demo: bool = False,
        keymap: Mapping[str, str] | None = None,
        open_log: Sequence[str] = (),
        open_checkpoints: str | None = None,
    ) -> None:
        super().__init__()
        self.open_log = tuple(open_log)
        """A log to open in the logs pane at start (``runctl-tui tail SOURCE``)."""
        self.open_checkpoints = open_checkpoints
        """A location to show in the checkpoints pane at start (``runctl-tui checkpoints``)."""
        self.fleet = fleet
        self.clock = clock
        self.demo = demo
        self.keymap = dict(keymap or {})
        """The user's keymap, for the help screen (the app applies it to the bindings)."""
        self.poller = Poller(fleet, clock=clock, poll_seconds=poll_seconds)
        self.snapshot: FleetSnapshot | None = None
        """The last poll shown; ``None`` before the first one ends."""
        self._poll_error = ""
        self._auto_stopped: set[str] = set()
        """Items an exceeded budget has stopped, or tried to: never tried twice."""
        self._panes = build_panes(PaneContext(fleet=fleet, clock=clock))

    def compose(self) -> ComposeResult:
        """Header, provider bar, the panes (the first one shown), footer."""
        header_classes = {"-demo": self.demo, "-readonly": self.fleet.readonly}
        yield Header(icon="▣", classes=" ".join(c for c, on in header_classes.items() if on))
        yield ProviderBar(id="providers")
        with ContentSwitcher(id="panes", initial=self._panes[0].id):
            yield from self._panes
        yield FleetFooter()

    @property
    def panes(self) -> list[Pane]:
        """Every pane, in catalog order."""
        return list(self._panes)

    def pane(self, pane_id: str) -> Pane:
        """The pane with this id; raises ``KeyError`` for an unknown id."""
        for pane in self._panes:
            if pane.id == pane_id:
                return pane
        raise KeyError(pane_id)

    @property
    def current_pane(self) -> Pane:
        """The pane on screen."""
        current = self.query_one(ContentSwitcher).current
        return self.pane(current) if current else self._panes[0]

    @property
    def fleet_pane(self) -> FleetPane:
        """The fleet pane."""
        return self.query_one(FleetPane)

    @property
    def table(self) -> InstanceTable:
        """The fleet table."""
        return self.fleet_pane.table

    def on_mount(self) -> None:
        """Show the providers, start polling; age labels tick every second."""
        self.focus_pane(self.current_pane)
        for source in self.open_log:
            self.show_log(source)
        if self.open_checkpoints is not None:
            self.show_checkpoints(self.open_checkpoints)
        self.render_status()
        self.poller.start(self)
        self.set_interval(1.0, self.tick, name="ages")

    # Panes ---------------------------------------------------------------------------------

    def action_show_pane(self, pane_id: str) -> None:
        """Switch to the pane ``pane_id``, focus it and let it refresh."""
        try:
            pane = self.pane(pane_id)
        except KeyError:
            return
        switcher = self.query_one(ContentSwitcher)
        if switcher.current != pane_id:
            switcher.current = pane_id
        self.focus_pane(pane)
        pane.pane_shown()
        self.refresh_bindings()

    def focus_pane(self, pane: Pane) -> None:
        """Focus the pane's main widget now, so that the next key of a burst goes there."""
        target = pane.focus_target()
        if target is not None:
            # Not focus(), which waits a turn: keys already on their way would go elsewhere.
            self.set_focus(target)

    def run_pane_action(self, pane_id: str, action: str) -> None:
        """Show ``pane_id`` and run one of its actions (for the command palette)."""
        self.action_show_pane(pane_id)
        pane = self.pane(pane_id)
        self.call_later(pane.run_action, action)

    def show_log(self, source: str, *, origin: Instance | None = None) -> None:
        """Switch to the logs pane and follow ``source`` (a path, ``host:path``, ``ssh://``)
        in a tab; ``origin`` is the fleet row it belongs to, whose end ends the tail."""
        from runctl_tui.tui.panes.logs import LogsPane

        self.action_show_pane(LogsPane.PANE_ID)
        self.query_one(LogsPane).open_source(source, origin=origin)

    def show_checkpoints(self, location: str, *, origin: Instance | None = None) -> None:
        """Switch to the checkpoints pane and show the checkpoints at ``location`` (a path,
        ``host:path``, ``ssh://`` or ``s3://``); ``origin`` is the fleet row it belongs to."""
        from runctl_tui.tui.panes.checkpoints import CheckpointsPane

        self.action_show_pane(CheckpointsPane.PANE_ID)
        self.query_one(CheckpointsPane).open_location(location, origin=origin)

    def ask(self, action: Action) -> None:
        """Show the fleet and ask for ``action`` on its cursor row or marked rows."""
        self.action_show_pane(FleetPane.PANE_ID)
        self.fleet_pane.ask(action)

    # Polling -------------------------------------------------------------------------------

    def poll_now(self) -> None:
        """Poll now, or right after the poll in flight."""
        self.poller.poll_now()

    @on(FleetPolled)
    def show_fleet(self, event: FleetPolled) -> None:
        """Put a new poll on screen, in every pane."""
        self._poll_error = ""
        self.snapshot = event.snapshot
        for pane in self._panes:
            pane.fleet_polled(event)
        self.render_status()
        if event.costs is not None:
            self.stop_idle(event.costs)
            self.probe_gpus(event.snapshot.instances)

    def probe_gpus(self, instances: Sequence[Instance]) -> None:
        """Read GPU utilisation over SSH from running GPU machines whose provider sends none
        (EC2), for the idle check; each at most once a minute."""
        costs = self.fleet.costs
        if costs is None:
            return
        for instance in costs.probes_due(instances):
            self.run_worker(self._probe(instance), group="gpu-probe", exit_on_error=False)

    async def _probe(self, instance: Instance) -> None:
        from runctl_tui.costs.gpu_probe import probe_instance

        costs = self.fleet.costs
        provider = self.fleet.providers.get(instance.provider)
        if costs is None:
            return
        if provider is None or not hasattr(provider, "ssh_target"):
            costs.probed(instance.key, None, "its provider cannot be reached over SSH")
            return
        try:
            gpus = await probe_instance(provider, instance)  # type: ignore[arg-type]
        except ProviderError as exc:
            costs.probed(instance.key, None, exc.message)
        except Exception as exc:
            costs.probed(instance.key, None, one_line(f"{type(exc).__name__}: {exc}", 200))
        else:
            costs.probed(instance.key, gpus)

    def stop_idle(self, report: CostReport) -> None:
        """With ``on_budget_exceeded = "stop-idle"`` and a budget exceeded, stop the idle GPU
        items through the fleet's checks and journal, each once."""
        costs = self.fleet.costs
        if costs is None or self.fleet.readonly:
            return
        targets, _ = costs.idle_stops(report)
        targets = [t for t in targets if t.key not in self._auto_stopped]
        if not targets:
            return
        self._auto_stopped.update(t.key for t in targets)
        names = ", ".join(one_line(t.name or t.id, 40) for t in targets)
        self.notify(
            f"Budget exceeded: stopping idle {names}", severity="error", timeout=10, markup=False
        )
        self.run_worker(self._stop_idle(tuple(targets)), group="auto-stop", exit_on_error=False)

    async def _stop_idle(self, targets: tuple[Instance, ...]) -> None:
        why = "budget exceeded; [costs] on_budget_exceeded = stop-idle; idle GPU"
        results = await self.fleet.act(Action.STOP, targets, why=why)
        for result in results:
            self.notify(
                result.summary(),
                severity="information" if result.outcome is Outcome.DONE else "error",
                markup=False,
            )
        self.post_message(JournalWritten())
        self.post_message(ActionsFinished(results))

    @on(PollFailed)
    def report_poll_failure(self, event: PollFailed) -> None:
        """Say once that polling broke; the timer goes on polling."""
        seconds = self.poller.poll_seconds
        message = f"polling failed: {event.reason}; polling continues every {seconds:g}s"
        if message != self._poll_error:
            self.notify(message, severity="error", markup=False)
        self._poll_error = message
        self.render_status()

    def render_status(self) -> None:
        """Refresh the header and the provider bar."""
        # Before the first poll ends, the fleet's statuses say which providers are being polled.
        snapshot = self.snapshot or self.fleet.snapshot()
        identities = [s.identity for s in snapshot.statuses if s.identity]
        self.app.sub_title = header_sub_title(
            demo=self.demo, readonly=self.fleet.readonly, identities=identities
        )
        self.query_one(ProviderBar).update_statuses(
            snapshot.statuses,
            self.fleet_pane.summary(snapshot.instances) if self.snapshot else "",
            self.clock(),
            polling_since=self.poller.polling_since,
            notice=self._poll_error,
        )

    @on(FleetPane.SummaryChanged)
    def show_summary(self, event: FleetPane.SummaryChanged) -> None:
        """Marks or the filter changed: the provider bar says so."""
        self.render_status()

    def tick(self) -> None:
        """Keep the ages, and the time a poll has been running, honest between polls."""
        self.query_one(ProviderBar).refresh_ages(self.clock(), self.poller.polling_since)

    def action_refresh(self) -> None:
        """Poll now; the pane on screen refreshes what it shows too."""
        self.poller.poll_now()
        self.current_pane.refresh_requested()
        self.notify("Refreshing…", timeout=1.5)

    # Actions -------------------------------------------------------------------------------

    @on(JournalWritten)
    def show_journal_lines(self, event: JournalWritten) -> None:
        """Every pane that shows the journal reads it again."""
        for pane in self._panes:
            pane.journal_written()

    @on(ActionsFinished)
    def poll_after_action(self, event: ActionsFinished) -> None:
        """Poll to show the new states."""
        self.poller.poll_now()

    async def on_key(self, event: events.Key) -> None:
        """Run the bindings of this screen and its focused pane as keys arrive; say why an
        action key is off."""
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
                if isinstance(namespace, FleetPane) and binding.action in ACTIONS:
                    namespace.ask(ACTIONS[binding.action])
                    return

    # Help ----------------------------------------------------------------------------------

    def action_help(self) -> None:
        """Show the help screen, with the keys as currently mapped."""
        keys = [("↑ ↓  j k", "move the cursor (PgUp/PgDn, g/G for the ends)"), *self.help_keys()]
        keys.append(("ctrl+p", "command palette"))
        mapped = self.mapped_keys()
        acting = [mapped.get(spec.binding_id, "-") for spec in KEYED]
        notes = [
            (
                "Marks",
                f"{mapped.get('mark', '-')} marks rows; {', '.join(acting)} then act on every one",
            ),
            (
                "Runs",
                "on a training run the stop key interrupts (SIGINT) and terminate kills",
            ),
            ("Protected", self.protection_note()),
            ("Safety", "each action re-checks the item's state just before acting"),
            ("Journal", str(self.fleet.journal.path)),
            ("Read-only", "on" if self.fleet.readonly else "off (runctl-tui --readonly)"),
            ("Prices", "each provider's own: enter on a row of the costs pane says whence"),
        ]
        self.app.push_screen(HelpScreen(keys, notes))

    def protection_note(self) -> str:
        """What marks an item protected (P in the first column): never terminated or killed."""
        settings = getattr(self.app, "settings", None)
        if settings is None:
            return "P in the first column: never terminated or killed"
        return (
            f"P in the first column: EC2 tag {settings.protect_tag}=true or a pod name "
            f"containing {settings.runpod.protect_marker}; never terminated or killed"
        )

    def mapped_keys(self) -> dict[str, str]:
        """Binding id to its keys as shown (``?``, ``⏎``), honouring the keymap, every pane's
        bindings included."""
        try:
            resolved = resolve_keymap(self.keymap)
        except KeymapError:
            # The app has already said so; the defaults are what is bound then.
            resolved = resolve_keymap({})
        return {
            binding_id: " ".join(self.app.get_key_display(Binding(key, "")) for key in keys)
            for binding_id, keys in resolved.items()
        }

    def help_keys(self) -> list[tuple[str, str]]:
        """(keys, description) for each binding of the catalog, honouring the keymap."""
        return [(keys, HELP[i]) for i, keys in self.mapped_keys().items()]
