"""Confirmation modals: y/n for stop and start, a typed id for terminate. Cancel is the default."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static

from runctl_tui.costs.rates import PriceTable
from runctl_tui.models import Action, Instance, Lifecycle, format_usd
from runctl_tui.services.fleet import refusal

VERB = {Action.STOP: "Stop", Action.START: "Start", Action.TERMINATE: "Terminate"}


def losses(action: Action, instance: Instance) -> list[str]:
    """What the user loses or keeps paying for, in plain words."""
    lost: list[str] = []
    if action is Action.STOP:
        if instance.instance_store_gb:
            lost.append(
                f"instance-store data ({instance.instance_store_gb} GB local NVMe) is wiped"
            )
        lost.append("EBS volumes are kept (and still billed); the public IP is released")
        if instance.lifecycle is Lifecycle.SPOT and not instance.spot_request_type:
            lost.append("spot: AWS refuses to stop it unless its request is persistent")
    elif action is Action.TERMINATE:
        deleted = [v.id for v in instance.volumes if v.delete_on_termination]
        kept = [v.id for v in instance.volumes if not v.delete_on_termination]
        if deleted:
            lost.append(f"EBS volumes deleted: {', '.join(deleted)}")
        if kept:
            lost.append(f"EBS volumes kept (still billed): {', '.join(kept)}")
        if instance.instance_store_gb:
            lost.append(f"instance-store data ({instance.instance_store_gb} GB) is gone")
        lost.append("this cannot be undone")
    return lost


def target_text(action: Action, instance: Instance, prices: PriceTable, protect_tag: str) -> Text:
    """One target: who it is, what it costs, what is lost, or why it will be refused."""
    rate = prices.rate(instance)
    cost = format_usd(rate.usd_per_hour, per_hour=True) if rate else "price unknown"
    text = Text()
    text.append(instance.name or "(no name)", "bold")
    text.append(f"  {instance.id}  {instance.instance_type}  {instance.zone or instance.region}")
    text.append(f"  [{instance.state}]")
    text.append(f"\n   {cost}", "bold")
    if rate and "spot" in rate.basis:
        text.append(" (on-demand list price; spot bills less)", "italic")
    reason = refusal(action, instance, instance, protect_tag)
    if reason:
        text.append(f"\n   ✖ will be refused: {reason}", "bold red")
        return text
    if instance.protected and action is not Action.TERMINATE:
        text.append(f"\n   ! protected ({protect_tag}=true)", "yellow")
    for line in losses(action, instance):
        text.append(f"\n   • {line}", "yellow" if action is not Action.START else "")
    return text


def hourly_total(instances: Sequence[Instance], prices: PriceTable) -> Decimal:
    """Sum of the known hourly rates of ``instances``."""
    return sum(
        (r.usd_per_hour for r in (prices.rate(i) for i in instances) if r is not None), Decimal(0)
    )


class ConfirmScreen(ModalScreen[bool]):
    """Shared layout of the confirmation modals."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > #dialog {
        width: 110; max-width: 95%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 1 2;
    }
    ConfirmScreen.-start > #dialog { border: thick $warning; }
    ConfirmScreen #title { text-style: bold; width: 100%; margin-bottom: 1; }
    ConfirmScreen #targets { height: auto; max-height: 24; }
    ConfirmScreen #summary { margin-top: 1; }
    ConfirmScreen #buttons { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmScreen #buttons Button { margin-left: 2; }
    ConfirmScreen #keys { color: $text-muted; margin-top: 1; }
    ConfirmScreen #typed { margin-top: 1; }
    ConfirmScreen #mismatch { color: $text-error; height: auto; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(
        self,
        action: Action,
        targets: Sequence[Instance],
        prices: PriceTable,
        protect_tag: str,
    ) -> None:
        super().__init__()
        self.action = action
        self.targets = tuple(targets)
        """The instances captured when the modal opened: the only ones it can act on."""
        self.prices = prices
        self.protect_tag = protect_tag
        self.actionable = tuple(
            t for t in self.targets if refusal(action, t, t, protect_tag) is None
        )

    def title_text(self) -> str:
        """``Stop 2 instances?``"""
        count = len(self.targets)
        noun = "instance" if count == 1 else f"{count} instances"
        return f"{VERB[self.action]} {noun}?"

    def summary_text(self) -> str:
        """The money line under the targets."""
        total = format_usd(hourly_total(self.actionable, self.prices), per_hour=True)
        if not self.actionable:
            return "Nothing here can be acted on; see the reasons above."
        if self.action is Action.START:
            return f"Starting bills about {total} from now (on-demand list prices)."
        return f"Saves about {total} (on-demand list prices)."

    def compose_body(self) -> ComposeResult:
        """Widgets between the target list and the buttons."""
        yield from ()

    def compose(self) -> ComposeResult:
        """Title, targets, summary, extra body, buttons."""
        with Vertical(id="dialog"):
            yield Label(self.title_text(), id="title")
            with VerticalScroll(id="targets"):
                for target in self.targets:
                    yield Static(
                        target_text(self.action, target, self.prices, self.protect_tag),
                        classes="target",
                    )
            yield Static(self.summary_text(), id="summary")
            yield from self.compose_body()
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(
                    VERB[self.action],
                    id="confirm",
                    variant="error",
                    disabled=not self.actionable,
                )
            yield Static(self.keys_text(), id="keys")

    def keys_text(self) -> str:
        """The key hint at the bottom."""
        return "y confirm · n / esc cancel"

    def on_mount(self) -> None:
        """Cancel is preselected."""
        self.set_class(self.action is Action.START, "-start")
        self.first_focus().focus()

    def first_focus(self) -> Widget:
        """The widget focused when the modal opens."""
        return self.query_one("#cancel", Button)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#confirm")
    def _confirm_pressed(self) -> None:
        self.confirm()

    def action_cancel(self) -> None:
        """Close without acting."""
        self.dismiss(False)

    def confirm(self) -> None:
        """Close and act on the captured targets."""
        if self.actionable:
            self.dismiss(True)


class ConfirmAction(ConfirmScreen):
    """Stop or start: ``y`` confirms, ``n`` or ``escape`` cancels."""

    BINDINGS = [
        Binding("y", "confirm", "Confirm", show=False),
        Binding("n", "cancel", "Cancel", show=False),
    ]

    def action_confirm(self) -> None:
        """``y``."""
        self.confirm()


class ConfirmTerminate(ConfirmScreen):
    """Terminate: the user types the instance id (or ``terminate`` for several)."""

    def expected(self) -> str:
        """What must be typed."""
        return self.targets[0].id if len(self.targets) == 1 else "terminate"

    def keys_text(self) -> str:
        """The key hint at the bottom."""
        return "enter confirms once the text matches · esc cancels"

    def compose_body(self) -> ComposeResult:
        """The typed-confirmation input."""
        yield Label(f"Type [b]{self.expected()}[/b] to confirm:", id="typed")
        yield Input(placeholder=self.expected(), id="typed-input", disabled=not self.actionable)
        yield Static("", id="mismatch")

    def on_mount(self) -> None:
        """Terminate stays disabled until the text matches."""
        super().on_mount()
        self.query_one("#confirm", Button).disabled = True

    def first_focus(self) -> Widget:
        """The text box, when there is anything to terminate."""
        if self.actionable:
            return self.query_one("#typed-input", Input)
        return super().first_focus()

    @on(Input.Changed, "#typed-input")
    def check_typed(self, event: Input.Changed) -> None:
        """Enable Terminate only on an exact match."""
        matched = event.value.strip() == self.expected()
        self.query_one("#confirm", Button).disabled = not matched
        if matched:
            self.query_one("#mismatch", Static).update("")

    @on(Input.Submitted, "#typed-input")
    def submit_typed(self, event: Input.Submitted) -> None:
        """``enter`` confirms only when the text matches."""
        if event.value.strip() == self.expected():
            self.dismiss(True)
        else:
            self.query_one("#mismatch", Static).update(
                f"does not match: type {self.expected()} exactly, or press esc"
            )

    def confirm(self) -> None:
        """The Terminate button, enabled only on a match."""
        if self.query_one("#typed-input", Input).value.strip() == self.expected():
            self.dismiss(True)
