"""Confirmation modals: y/n for stop and start, a typed id for terminate. Cancel is the default.

Keys that reach a modal before it was on screen are dropped, and nothing but a cancel is taken
during its first moments (``GUARD_SECONDS``): a burst of keys (a paste, a laggy link) that opened
the modal cannot also confirm it. Everything a provider supplies is shown as plain text pieces,
never markup, one line each, after the identity the provider reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual._time import get_time
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Static

from runctl_tui.actions import VERBS
from runctl_tui.costs.rates import billed, format_rate, hourly_cost
from runctl_tui.models import (
    Action,
    ActionResult,
    Instance,
    Outcome,
    ProcessDetails,
    format_usd,
)
from runctl_tui.providers.base import SpotRequest
from runctl_tui.services.fleet import persistent_spot, refusal
from runctl_tui.text import one_line
from runctl_tui.threads import run_blocking

VERB = VERBS

ENDED_SPOT_REQUEST_STATES = frozenset({"cancelled", "closed", "failed", "completed"})
"""A persistent spot request in any other state launches a replacement for its instance."""

SPOT_LOOKUP_SECONDS = 20.0
CHECKPOINT_LOOKUP_SECONDS = 20.0
"""How long a terminate confirmation looks for the target's checkpoints and their copies."""

CheckpointLookup = Callable[[Instance], Awaitable[str | None]]
"""The warning for an instance whose newest checkpoint exists only on its disk, if so."""
"""How long a confirmation waits for the spot-request lookup before saying it is unknown."""

NAME_WIDTH = 60

SpotLookup = Callable[[Sequence[Instance]], Mapping[str, SpotRequest]]
"""Looks up the spot requests behind instances, by instance key; blocks."""
event_clock: Callable[[], float] = get_time
"""The clock Textual stamps events with (``time.monotonic`` except on Windows)."""


async def run_bindings_here(screen: Screen[Any], event: events.Key) -> bool:
    """Run ``event``'s binding on ``screen`` now, and keep the key from going further.

    Textual looks bindings up once a key has bubbled to the app, against whatever screen is
    on top by then; an earlier key of the same burst may have pushed or dismissed one since.
    Looked up here, each key acts only on the screen it was delivered to. Returns whether a
    binding ran.
    """
    event.stop()
    for namespace, bindings in screen._modal_binding_chain:
        for binding in bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await screen.app.run_action(binding.action, namespace):
                return True
    return False


async def guarded_key(
    screen: Screen[Any], event: events.Key, guard: KeyGuard, cancel_keys: frozenset[str]
) -> bool:
    """Run ``event``'s binding on ``screen`` if ``guard`` lets it through (a cancel as soon as
    the dialog is shown, anything once the guard has passed); else drop the key. Whether it
    was taken."""
    if guard.armed(event.time) or (event.key in cancel_keys and guard.shown(event.time)):
        await run_bindings_here(screen, event)
        return True
    event.stop()
    event.prevent_default()
    return False


@dataclass(frozen=True)
class Decision:
    """How a confirmation closed: whether to act, and whether to cancel spot requests too."""

    confirmed: bool
    cancel_spot_requests: bool = False


CANCELLED = Decision(confirmed=False)


@dataclass
class KeyGuard:
    """Which keys a dialog takes: none from before it was shown, only cancels just after."""

    seconds: float
    shown_at: float | None = None
    """When the dialog was first painted, on :data:`event_clock`."""

    def show(self, at: float) -> None:
        """Note the moment the dialog was first on screen (later calls change nothing)."""
        if self.shown_at is None:
            self.shown_at = at

    def shown(self, at: float) -> bool:
        """Whether something happening ``at`` happened while the dialog was on screen."""
        return self.shown_at is not None and at >= self.shown_at

    def armed(self, at: float) -> bool:
        """Whether a confirmation made ``at`` counts: shown, and the guard has passed."""
        return self.shown_at is not None and at >= self.shown_at + self.seconds


NOUNS = {"ec2": "instance", "pod": "pod", "process": "run", "host": "host"}
"""What one target is called in a title, by kind; anything else is an ``item``."""


def noun(targets: Sequence[Instance]) -> str:
    """``instance``, ``3 runs``, or ``2 items`` when the kinds differ."""
    kinds = {t.kind for t in targets}
    word = NOUNS.get(next(iter(kinds)), "item") if len(kinds) == 1 else "item"
    return word if len(targets) == 1 else f"{len(targets)} {word}s"


def typed_token(instance: Instance) -> str:
    """What the user types to confirm a destroying action on ``instance``: a run's pid, else
    the provider's id."""
    details = instance.details
    return str(details.pid) if isinstance(details, ProcessDetails) else instance.id


def identity(instance: Instance) -> Text:
    """``id  type  zone  state`` as the provider reported them, then the name: one line."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(instance.id, 40), "bold")
    text.append("  ")
    text.append(one_line(instance.details.type_label, 30))
    text.append("  ")
    text.append(one_line(instance.details.sublocation or instance.location, 30))
    text.append("  ")
    text.append(one_line(instance.state, 20), "bold")
    text.append("   ")
    text.append(one_line(instance.name, NAME_WIDTH) if instance.name else "(no name)", "italic")
    return text


def cost_text(action: Action, instance: Instance) -> Text:
    """The instance's rate, saying when it is an estimate, a bound, or not billed now."""
    text = Text("   ")
    if action is not Action.START and not billed(instance):
        text.append(f"no compute billed while {one_line(instance.state, 20)}", "bold")
        return text
    text.append(format_rate(instance), "bold")
    rate = instance.rate
    if rate is not None and rate.upper_bound:
        text.append(" (on-demand list price; spot bills less)", "italic")
    elif rate is not None and not rate.estimate:
        text.append(f" ({one_line(rate.source, 60)})", "italic")
    return text


def spot_lines(instance: Instance, request: SpotRequest | None, lookup_error: str | None) -> Text:
    """What terminating does to the spot request behind ``instance``, if any."""
    text = Text()
    if request is not None and replaces(request):
        text.append("\n   ! its persistent spot request ", "bold red")
        text.append(one_line(request.id, 60), "bold red")
        text.append(f" ({one_line(request.state, 20)}) will launch a replacement", "bold red")
    elif persistent_spot(instance):
        why = f"lookup failed: {one_line(lookup_error, 120)}" if lookup_error else "not found"
        text.append(f"\n   ! persistent spot: may launch a replacement (request {why})", "bold red")
    return text


def replaces(request: SpotRequest) -> bool:
    """Whether ``request`` will launch a new instance when its instance is terminated."""
    return request.type == "persistent" and request.state not in ENDED_SPOT_REQUEST_STATES


def target_text(
    action: Action,
    instance: Instance,
    reason: str | None = None,
    said: Sequence[str] = (),
) -> Text:
    """One target: who it is, what it costs, what is lost, or why it will be refused."""
    text = identity(instance)
    text.append("\n")
    text.append_text(details_text(action, instance, reason, said))
    return text


def details_text(
    action: Action,
    instance: Instance,
    reason: str | None = None,
    said: Sequence[str] = (),
) -> Text:
    """The lines under a target's identity: cost, then losses or why it will be refused."""
    text = cost_text(action, instance)
    if reason:
        text.append("\n   ✖ will be refused: ", "bold red")
        text.append(one_line(reason, 200), "bold red")
        return text
    if instance.protected:
        text.append("\n   ! protected", "yellow")
        if instance.protected_by:
            text.append(f" ({one_line(instance.protected_by, 60)})", "yellow")
    # What the action does and loses is the provider's to say (volumes, signals, disks).
    for line in said:
        text.append(f"\n   • {one_line(line, 200)}", "yellow" if action is not Action.START else "")
    return text


def who(instance: Instance) -> str:
    """``i-0abc (name)``: the provider's id first, the name made safe and short."""
    name = one_line(instance.name, 40) if instance.name else "no name"
    return f"{one_line(instance.id, 40)} ({name})"


def refusal_notice(action: Action, targets: Sequence[Instance], reasons: Mapping[str, str]) -> str:
    """One line saying why none of ``targets`` can take ``action``."""
    first = targets[0]
    reason = one_line(reasons.get(first.key, "not possible"), 160)
    if len(targets) == 1:
        return f"Cannot {action} {who(first)}: {reason}"
    same = all(reasons.get(t.key) == reasons.get(first.key) for t in targets)
    if same:
        return f"Cannot {action} any of the {noun(targets)}: {reason}"
    return (
        f"Cannot {action} any of the {noun(targets)}: "
        f"{who(first)}: {reason} (and {len(targets) - 1} more)"
    )


def severity(outcome: Outcome) -> SeverityLevel:
    """Notification severity for an outcome."""
    if outcome is Outcome.DONE:
        return "information"
    return "warning" if outcome in {Outcome.REFUSED, Outcome.CANCELLED} else "error"


def result_notices(results: Sequence[ActionResult]) -> list[tuple[str, SeverityLevel]]:
    """One safe line per result; results failing the same way share one line."""
    groups: dict[tuple[str, Outcome, str], list[ActionResult]] = {}
    for result in results:
        # Each success is its own line; failures with the same reason are counted together.
        alike = result.instance.key if result.outcome is Outcome.DONE else result.detail
        groups.setdefault((result.action, result.outcome, alike), []).append(result)
    notices: list[tuple[str, SeverityLevel]] = []
    for (action, outcome, _), group in groups.items():
        first = group[0]
        if outcome is Outcome.DONE:
            if first.new_state:
                state = f": now {one_line(first.new_state, 20)}"
            else:
                state = f": {one_line(first.detail, 200)}" if first.detail else ""
            notices.append((f"{action}: {who(first.instance)}{state}", severity(outcome)))
            continue
        names = who(first.instance)
        if len(group) > 1:
            names += f" and {len(group) - 1} more"
        detail = one_line(first.detail, 200) if first.detail else str(outcome)
        notices.append((f"{action} {outcome}: {names}: {detail}", severity(outcome)))
    return notices


def hourly_total(action: Action, instances: Sequence[Instance]) -> tuple[Decimal, int]:
    """Dollars per hour the action saves (or, for start, bills) and how many have no price."""
    total = Decimal(0)
    unknown = 0
    for instance in instances:
        amount = instance.hourly_usd if action is Action.START else hourly_cost(instance)
        if amount is None:
            unknown += 1
        else:
            total += amount
    return total, unknown


class TypedInput(Input):
    """The terminate box: what is typed or pasted counts only once the dialog's guard passed."""

    async def _on_key(self, event: events.Key) -> None:
        screen = self.screen
        if isinstance(screen, ConfirmScreen) and not screen.guard.armed(event.time):
            # Input's own handler would insert the character; the screen drops it instead.
            event.prevent_default()

    def _on_paste(self, event: events.Paste) -> None:
        screen = self.screen
        if isinstance(screen, ConfirmScreen) and not screen.guard.armed(event.time):
            event.prevent_default()
            event.stop()
            screen.note_ignored()


class ConfirmScreen(ModalScreen[Decision]):
    """Shared layout, key guard and decision of the confirmation modals."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > #dialog {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: thick $error; background: $surface; padding: 1 2;
    }
    ConfirmScreen.-short > #dialog { padding: 0 1; }
    ConfirmScreen.-start > #dialog { border: thick $warning; }
    ConfirmScreen #title { text-style: bold; width: 100%; }
    ConfirmScreen #hidden { color: $text-warning; text-style: bold; }
    ConfirmScreen #targets { height: auto; margin-top: 1; }
    ConfirmScreen .target { height: auto; }
    ConfirmScreen .identity { text-wrap: nowrap; text-overflow: ellipsis; }
    ConfirmScreen #summary { margin-top: 1; }
    ConfirmScreen #checkpoint-warning { height: auto; }
    ConfirmScreen #cancel-spot { margin-top: 1; }
    ConfirmScreen #buttons { height: auto; align-horizontal: right; }
    ConfirmScreen #buttons Button { margin-left: 2; }
    ConfirmScreen #keys { color: $text-muted; }
    ConfirmScreen #ignored { color: $text-warning; height: auto; display: none; }
    ConfirmScreen #typed { margin-top: 1; }
    ConfirmScreen #mismatch { color: $text-error; height: auto; display: none; }
    ConfirmScreen.-short #targets, ConfirmScreen.-short #summary { margin-top: 0; }
    ConfirmScreen.-short #cancel-spot, ConfirmScreen.-short #typed { margin-top: 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    GUARD_SECONDS: ClassVar[float] = 0.3
    """After it is first painted, the dialog takes nothing but a cancel for this long."""

    CANCEL_KEYS: ClassVar[frozenset[str]] = frozenset({"escape"})
    """Keys taken during the guard: backing out is always safe."""

    SHORT_SCREEN: ClassVar[int] = 32
    """Below this many lines the controls take one line each."""

    def __init__(
        self,
        action: Action,
        targets: Sequence[Instance],
        *,
        refused: Mapping[str, str] | None = None,
        hidden: int = 0,
        spot_lookup: SpotLookup | None = None,
        losses_by_key: Mapping[str, Sequence[str]] | None = None,
        checkpoint_lookup: CheckpointLookup | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint_lookup = checkpoint_lookup
        """Says whether a target's newest checkpoint exists only on its own disk."""
        self.checkpoints_checked = False
        """Whether that lookup has ended (with a warning, none, or a failure)."""
        self.losses_by_key = dict(losses_by_key or {})
        """What the providers say each target's action does, by key."""
        self.action = action
        self.targets = tuple(targets)
        """The instances captured when the modal opened: the only ones it can act on."""
        if refused is None:
            refused = {
                t.key: reason for t in self.targets if (reason := refusal(action, t, t)) is not None
            }
        self.refused = dict(refused)
        """Why each target that cannot take the action as shown would be refused, by key."""
        self.hidden = hidden
        """How many targets the table's filter hides."""
        self.actionable = tuple(t for t in self.targets if t.key not in self.refused)
        self.spot_lookup = spot_lookup
        """Finds the spot requests behind instances, by key (blocking)."""
        self.spot_requests: dict[str, SpotRequest] = {}
        self.spot_error: str | None = None
        self.spot_pending = spot_lookup is not None and any(
            self.needs_spot_lookup(t) for t in self.targets
        )
        self.guard = KeyGuard(self.GUARD_SECONDS)
        self.ignored = 0
        """Keys dropped by the guard, shown so that the user knows to press again."""

    # Content -------------------------------------------------------------------------------

    def title_text(self) -> str:
        """``Stop 2 instances?``"""
        return f"{VERB[self.action]} {noun(self.targets)}?"

    def summary_text(self) -> Text:
        """The money line under the targets."""
        if not self.actionable:
            return Text("Nothing here can be acted on; see the reasons above.")
        total, unknown = hourly_total(self.action, self.actionable)
        rates = [t.rate for t in self.actionable]
        bound = any(r is not None and r.upper_bound for r in rates)
        estimate = any(r is not None and r.estimate for r in rates)
        figure = format_usd(total, per_hour=True)
        about = "at most" if bound else "about"
        if self.action is Action.START:
            line = f"Starting bills {about} {figure} from now (at the rates shown"
        elif total == 0 and not unknown:
            return Text("Saves nothing now: none of these is billed for compute.")
        else:
            line = f"Saves {about} {figure} (at the rates shown"
        if estimate:
            line += "; some estimated from another region's prices"
        line += ")"
        if unknown:
            line += f"; {unknown} without a known price"
        return Text(line + ".")

    def hidden_text(self) -> str:
        """``2 of these are hidden by the filter``."""
        verb = "is" if self.hidden == 1 else "are"
        return f"{self.hidden} of these {verb} hidden by the filter"

    def describe(self, target: Instance) -> Text:
        """The lines under one target's identity, its spot request included once known."""
        text = details_text(
            self.action,
            target,
            self.refused.get(target.key),
            self.losses_by_key.get(target.key, ()),
        )
        if not self.needs_spot_lookup(target):
            return text
        if self.spot_pending:
            text.append("\n   … checking its spot request", "italic")
        else:
            request = self.spot_requests.get(target.key)
            text.append_text(spot_lines(target, request, self.spot_error))
        return text

    def needs_spot_lookup(self, target: Instance) -> bool:
        """Whether ``target`` may belong to a spot request that outlives it."""
        return (
            self.action is Action.TERMINATE
            and target.key not in self.refused
            and persistent_spot(target)
        )

    def compose_body(self) -> ComposeResult:
        """Widgets between the target list and the buttons."""
        yield from ()

    def compose(self) -> ComposeResult:
        """Title, targets, summary, extra body, buttons."""
        with Vertical(id="dialog"):
            yield Label(self.title_text(), id="title")
            if self.hidden:
                yield Label(self.hidden_text(), id="hidden")
            with VerticalScroll(id="targets"):
                for n, target in enumerate(self.targets):
                    with Vertical(classes="target", id=f"target-{n}"):
                        # Its own line that never wraps: a long name cannot start a new line.
                        yield Static(identity(target), classes="identity")
                        yield Static(self.describe(target), classes="details")
            yield Static(self.summary_text(), id="summary")
            yield Static("", id="checkpoint-warning", markup=False)
            yield from self.compose_body()
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(
                    VERB[self.action],
                    id="confirm",
                    variant="error",
                    disabled=not self.actionable,
                )
            yield Static(self.keys_text(), id="keys", markup=False)
            yield Static("", id="ignored", markup=False)

    def keys_text(self) -> str:
        """The key hint at the bottom."""
        return "y confirm · n / esc cancel"

    def on_mount(self) -> None:
        """Cancel is preselected; the guard starts once the dialog has been painted."""
        self.set_class(self.action is Action.START, "-start")
        self.set_up()
        self.first_focus().focus()
        self.call_after_refresh(self._painted)
        if self.spot_pending and self.spot_lookup is not None:
            wanted = [t for t in self.targets if self.needs_spot_lookup(t)]
            self.look_up_spot_requests(partial(self.spot_lookup, wanted))
        warning = self.query_one("#checkpoint-warning", Static)
        warning.display = False
        machines = [t for t in self.actionable if t.kind in ("ec2", "pod")]
        if self.checkpoint_lookup is not None and len(machines) == 1:
            self.look_up_checkpoints(self.checkpoint_lookup, machines[0])

    @work(group="checkpoint-lookup", exclusive=True, exit_on_error=False)
    async def look_up_checkpoints(self, lookup: CheckpointLookup, target: Instance) -> None:
        """Warn when the target's newest checkpoint has no copy elsewhere; a lookup that fails
        or takes too long says so, and never holds the dialog."""
        line = self.query_one("#checkpoint-warning", Static)
        line.update(Text("looking for this machine's newest checkpoint and its copies…", "dim"))
        line.display = True
        try:
            warning = await asyncio.wait_for(lookup(target), CHECKPOINT_LOOKUP_SECONDS)
        except TimeoutError:
            line.update(Text("could not check its checkpoints in time", "dim"))
            return
        except Exception as exc:
            reason = one_line(f"could not check its checkpoints: {exc}", 200)
            line.update(Text(reason, "dim"))
            return
        finally:
            self.checkpoints_checked = True
        if warning is None:
            line.display = False
            return
        line.update(Text(one_line(f"⚠ {warning}", 300), "bold red"))

    def set_up(self) -> None:
        """Adjust the composed widgets before the first paint (for subclasses)."""

    def _painted(self) -> None:
        self.guard.show(event_clock())

    # Fit -----------------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        """Keep the controls on screen: compact on short terminals, the target list scrolls."""
        short = event.size.height < self.SHORT_SCREEN
        self.set_class(short, "-short")
        for widget in self.query(Button):
            widget.compact = short
        for box in self.query(Input):
            box.compact = short
        for check in self.query(Checkbox):
            check.compact = short
        self.call_after_refresh(self.fit_targets)

    def fit_targets(self) -> None:
        """Give the target list what the screen has left once everything else is shown."""
        dialog = self.query_one("#dialog", Vertical)
        targets = self.query_one("#targets", VerticalScroll)
        others = sum(
            child.outer_size.height + child.styles.margin.top + child.styles.margin.bottom
            for child in dialog.children
            if child is not targets and child.display
        )
        chrome = dialog.outer_size.height - dialog.size.height
        room = self.size.height - chrome - others - targets.styles.margin.top
        targets.styles.max_height = max(room, 3)

    def show_line(self, selector: str, text: str | Content) -> None:
        """Put ``text`` in an initially hidden line and make room for it."""
        line = self.query_one(selector, Static)
        line.update(text)
        if not line.display:
            line.display = True
            self.call_after_refresh(self.fit_targets)

    def first_focus(self) -> Widget:
        """The widget focused when the modal opens."""
        return self.query_one("#cancel", Button)

    # Key guard -----------------------------------------------------------------------------

    async def on_key(self, event: events.Key) -> None:
        """Drop keys from before the dialog was shown, and all but a cancel during the guard."""
        if not self.is_active:
            event.stop()
            event.prevent_default()
            return
        if not await guarded_key(self, event, self.guard, self.CANCEL_KEYS):
            self.note_ignored()

    def note_ignored(self) -> None:
        """Say, quietly, that keys pressed too early did nothing."""
        self.ignored += 1
        plural = "key" if self.ignored == 1 else "keys"
        self.show_line(
            "#ignored", f"ignored {self.ignored} {plural} pressed before this dialog was ready"
        )

    def armed_now(self) -> bool:
        """Whether a confirmation right now counts; if not, say so."""
        if self.guard.armed(event_clock()):
            return True
        self.note_ignored()
        return False

    # Spot requests -------------------------------------------------------------------------

    @work(group="spot-lookup", exclusive=True, exit_on_error=False)
    async def look_up_spot_requests(self, lookup: Callable[[], Mapping[str, SpotRequest]]) -> None:
        """Find the spot requests behind the targets on a daemon thread, then show them."""
        requests: Mapping[str, SpotRequest] = {}
        error: str | None = None
        try:
            requests = await asyncio.wait_for(
                run_blocking(lookup, name="runctl-spot-lookup"), SPOT_LOOKUP_SECONDS
            )
        except TimeoutError:
            error = f"no answer within {SPOT_LOOKUP_SECONDS:.0f} s"
        except Exception as exc:
            error = str(getattr(exc, "message", None) or exc) or type(exc).__name__
        self.show_spot_requests(requests, error)

    def show_spot_requests(self, requests: Mapping[str, SpotRequest], error: str | None) -> None:
        """Put the lookup's findings in the target list and offer to cancel the requests."""
        self.spot_requests = dict(requests)
        self.spot_error = error
        self.spot_pending = False
        for n, target in enumerate(self.targets):
            if self.needs_spot_lookup(target):
                self.query_one(f"#target-{n} .details", Static).update(self.describe(target))
        self.offer_spot_cancel()

    def replacing_requests(self) -> list[str]:
        """Ids of the persistent spot requests that would relaunch an actionable target."""
        ids = [
            r.id
            for t in self.actionable
            if (r := self.spot_requests.get(t.key)) is not None and replaces(r)
        ]
        return list(dict.fromkeys(ids))

    def offer_spot_cancel(self) -> None:
        """Show the (preselected) choice to cancel the spot requests as well."""
        box = self.query_one_optional("#cancel-spot", Checkbox)
        if box is None:
            return
        ids = self.replacing_requests()
        unknown = any(
            persistent_spot(t) and t.key not in self.spot_requests for t in self.actionable
        )
        if self.spot_pending or (not ids and not unknown):
            box.display = False
            return
        if ids:
            noun = "spot request " if len(ids) == 1 else "spot requests "
            label = Content.assemble("also cancel ", noun, one_line(", ".join(ids), 80))
        else:
            label = Content("also cancel its spot request (looked up again when acting)")
        box.label = label
        box.value = True
        box.display = True
        if self.is_mounted:
            self.call_after_refresh(self.fit_targets)

    # Decisions -----------------------------------------------------------------------------

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#confirm")
    def _confirm_pressed(self) -> None:
        self.confirm()

    def action_cancel(self) -> None:
        """Close without acting."""
        self.dismiss(CANCELLED)

    def decision(self) -> Decision:
        """The confirmation, with the spot-request choice as shown."""
        box = self.query_one_optional("#cancel-spot", Checkbox)
        cancel_spot = box is not None and box.display and box.value
        return Decision(confirmed=True, cancel_spot_requests=cancel_spot)

    def ready(self) -> bool:
        """Whether a confirmation may close the dialog now."""
        if not self.actionable:
            return False
        if self.spot_pending:
            self.show_line("#ignored", "still checking spot requests…")
            return False
        return self.armed_now()

    def confirm(self) -> None:
        """Close and act on the captured targets."""
        if self.ready():
            self.dismiss(self.decision())


class ConfirmAction(ConfirmScreen):
    """Stop or start: ``y`` confirms, ``n`` or ``escape`` cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Confirm", show=False),
        Binding("n", "cancel", "Cancel", show=False),
    ]

    CANCEL_KEYS: ClassVar[frozenset[str]] = frozenset({"escape", "n"})

    def action_confirm(self) -> None:
        """``y``."""
        self.confirm()


class ConfirmTerminate(ConfirmScreen):
    """Terminate or kill: the user types the id (a run's pid), or the verb for several."""

    def expected(self) -> str:
        """What must be typed."""
        if len(self.targets) == 1:
            return typed_token(self.targets[0])
        return VERB[self.action].lower()

    def keys_text(self) -> str:
        """The key hint at the bottom."""
        return "enter confirms once the text matches · esc cancels"

    def compose_body(self) -> ComposeResult:
        """The spot-request choice and the typed-confirmation input."""
        box = Checkbox("", value=True, id="cancel-spot")
        box.display = False
        yield box
        yield Label(
            Content.assemble("Type ", (one_line(self.expected(), 60), "bold"), " to confirm:"),
            id="typed",
        )
        yield TypedInput(
            placeholder=one_line(self.expected(), 60),
            id="typed-input",
            disabled=not self.actionable,
        )
        yield Static("", id="mismatch", markup=False)

    def set_up(self) -> None:
        """Terminate stays disabled until the text matches."""
        self.query_one("#confirm", Button).disabled = True
        self.offer_spot_cancel()

    def first_focus(self) -> Widget:
        """The text box, when there is anything to terminate."""
        if self.actionable:
            return self.query_one("#typed-input", Input)
        return super().first_focus()

    def matches(self, value: str) -> bool:
        """Whether ``value`` is exactly what must be typed."""
        return value.strip() == self.expected()

    @on(Input.Changed, "#typed-input")
    def check_typed(self, event: Input.Changed) -> None:
        """Enable Terminate only on an exact match."""
        matched = self.matches(event.value)
        self.query_one("#confirm", Button).disabled = not matched
        if matched:
            self.query_one("#mismatch", Static).display = False

    @on(Input.Submitted, "#typed-input")
    def submit_typed(self, event: Input.Submitted) -> None:
        """``enter`` confirms only when the text matches."""
        if self.matches(event.value):
            self.confirm()
        else:
            self.show_line(
                "#mismatch",
                Content.assemble(
                    "does not match: type ",
                    one_line(self.expected(), 60),
                    " exactly, or press esc",
                ),
            )

    def ready(self) -> bool:
        """The typed text must match too."""
        if not self.matches(self.query_one("#typed-input", Input).value):
            return False
        return super().ready()
