"""Confirmations before checkpoints are deleted: one typed by name, and keep-last-N with y.

Like every confirmation here, keys that reached a dialog before it was on screen do nothing
and only a cancel counts during its first moments, so a burst typed ahead cannot delete
anything. Cancel is the default. Names come from storage and are shown as plain text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static

from runctl_tui.checkpoints.listing import Checkpoint, KeepPlan, size_text
from runctl_tui.models import format_duration
from runctl_tui.text import one_line
from runctl_tui.tui.screens.confirm import KeyGuard, event_clock, guarded_key

GUARD_SECONDS = 0.5
SHOWN = 40
"""Checkpoints listed by name in the keep-last dialog; the rest are counted."""


def checkpoint_text(checkpoint: Checkpoint, now: datetime | None = None) -> Text:
    """Name, where, size, age and step of a checkpoint, one field a line, all plain text."""
    age = format_duration((now or datetime.now(UTC)) - checkpoint.modified)
    text = Text()
    for label, value in (
        ("name   ", one_line(checkpoint.name, 80)),
        ("where  ", one_line(f"{checkpoint.where}: {checkpoint.path}", 80)),
        ("size   ", f"{size_text(checkpoint.size)} in {checkpoint.files} file(s)"),
        ("age    ", age),
        ("step   ", "-" if checkpoint.step is None else str(checkpoint.step)),
    ):
        if text:
            text.append("\n")
        text.append(label, style="dim")
        text.append(value, style="bold" if label.startswith("name") else "")
    return text


class _Guarded(ModalScreen[bool]):
    """Shared guard, ignored-key note and cancel of the two dialogs."""

    CANCEL_KEYS: ClassVar[frozenset[str]] = frozenset({"escape", "n"})

    def __init__(self) -> None:
        super().__init__()
        self.guard = KeyGuard(GUARD_SECONDS)
        self.ignored = 0

    def on_mount(self) -> None:
        """The first control has the focus; the guard starts once the dialog is painted."""
        self.first_focus().focus()
        self.call_after_refresh(lambda: self.guard.show(event_clock()))

    def first_focus(self) -> Widget:
        """What has the focus when the dialog opens: Cancel."""
        return self.query_one("#cancel", Button)

    async def on_key(self, event: events.Key) -> None:
        """Drop keys from before the dialog was shown, and all but a cancel during the guard."""
        if await guarded_key(self, event, self.guard, self.CANCEL_KEYS):
            return
        self.note_ignored()

    def note_ignored(self) -> None:
        """Say that keys pressed too early did nothing."""
        self.ignored += 1
        plural = "key" if self.ignored == 1 else "keys"
        self.query_one("#ignored", Static).update(
            Text(f"ignored {self.ignored} {plural} pressed before this dialog was ready")
        )

    def action_cancel(self) -> None:
        """Close without deleting."""
        self.dismiss(False)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()


class NameInput(Input):
    """The typed name: what is typed or pasted counts only once the dialog's guard passed."""

    async def _on_key(self, event: events.Key) -> None:
        screen = self.screen
        if isinstance(screen, _Guarded) and not screen.guard.armed(event.time):
            event.prevent_default()

    def _on_paste(self, event: events.Paste) -> None:
        screen = self.screen
        if isinstance(screen, _Guarded) and not screen.guard.armed(event.time):
            event.prevent_default()
            event.stop()
            screen.note_ignored()


class ConfirmDelete(_Guarded):
    """Delete one checkpoint: enabled only once its name (or its last path part) is typed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]
    CANCEL_KEYS: ClassVar[frozenset[str]] = frozenset({"escape"})

    DEFAULT_CSS = """
    ConfirmDelete, ConfirmKeep { align: center middle; }
    ConfirmDelete > Vertical, ConfirmKeep > Vertical {
        width: 100; max-width: 100%; height: auto; max-height: 100%; padding: 1 2;
        border: thick $error; background: $surface;
    }
    ConfirmDelete .title, ConfirmKeep .title { text-style: bold; margin-bottom: 1; }
    ConfirmDelete #ignored, ConfirmKeep #ignored { color: $text-muted; height: auto; }
    ConfirmDelete #typed-label { margin-top: 1; }
    ConfirmKeep #plan { height: auto; max-height: 24; }
    ConfirmDelete Horizontal, ConfirmKeep Horizontal { height: auto; margin-top: 1; }
    ConfirmDelete Button, ConfirmKeep Button { margin-right: 2; }
    """

    def __init__(self, checkpoint: Checkpoint, now: datetime | None = None) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.now = now

    def accepted(self) -> set[str]:
        """What may be typed: the name as listed, or its last path part."""
        return {self.checkpoint.name, self.checkpoint.basename()}

    def compose(self) -> ComposeResult:
        """What goes, the typed name, and the two buttons."""
        with Vertical():
            yield Label(Text("Delete this checkpoint?"), classes="title")
            yield Static(checkpoint_text(self.checkpoint, self.now), id="details")
            label = Text("Type ")
            label.append(one_line(self.checkpoint.basename(), 80), style="bold")
            label.append(" to enable Delete:")
            yield Label(label, id="typed-label")
            yield NameInput(placeholder=one_line(self.checkpoint.basename(), 60), id="typed")
            yield Static(Text(""), id="ignored")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel", variant="primary")
                yield Button("Delete", id="delete", variant="error", disabled=True)

    def first_focus(self) -> Widget:
        """The name box: the only way on is typing the name."""
        return self.query_one("#typed", Input)

    def matches(self, value: str) -> bool:
        """Whether ``value`` is the name exactly."""
        return value in self.accepted()

    @on(Input.Changed, "#typed")
    def check_typed(self, event: Input.Changed) -> None:
        """Enable Delete only on an exact match."""
        self.query_one("#delete", Button).disabled = not self.matches(event.value)

    @on(Input.Submitted, "#typed")
    def submit_typed(self, event: Input.Submitted) -> None:
        """``enter`` deletes when the name matches."""
        self.confirm()

    @on(Button.Pressed, "#delete")
    def _delete_pressed(self) -> None:
        self.confirm()

    def confirm(self) -> None:
        """Close and delete, if the name matches and the guard has passed."""
        if not self.matches(self.query_one("#typed", Input).value):
            return
        if self.guard.armed(event_clock()):
            self.dismiss(True)
        else:
            self.note_ignored()


class ConfirmKeep(_Guarded):
    """Keep the last N: what goes, what stays and why, the bytes freed; ``y`` confirms."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Delete", show=False),
        Binding("n,escape", "cancel", "Cancel", show=False),
    ]
    DEFAULT_CSS = ConfirmDelete.DEFAULT_CSS

    def __init__(self, plan: KeepPlan) -> None:
        super().__init__()
        self.plan = plan

    def plan_text(self) -> Text:
        """The checkpoints deleted, then those kept with their reasons."""
        plan = self.plan
        text = Text()
        if plan.refusal:
            text.append(one_line(plan.refusal, 200), style="bold red")
            text.append("\n")
        text.append(f"Would delete ({len(plan.delete)}):", style="bold")
        for checkpoint in plan.delete[:SHOWN]:
            text.append("\n  ✖ ")
            text.append(one_line(checkpoint.name, 70))
            text.append(f"  {size_text(checkpoint.size)}", style="dim")
        if len(plan.delete) > SHOWN:
            text.append(f"\n  … and {len(plan.delete) - SHOWN} more")
        text.append(f"\nKept ({len(plan.keep)}):", style="bold")
        for kept in plan.keep[:SHOWN]:
            text.append("\n  ✔ ")
            text.append(one_line(kept.checkpoint.name, 60))
            text.append("  ")
            text.append(one_line(", ".join(kept.reasons), 60), style="green")
        if len(plan.keep) > SHOWN:
            text.append(f"\n  … and {len(plan.keep) - SHOWN} more")
        return text

    def compose(self) -> ComposeResult:
        """The plan, the bytes freed, and the two buttons."""
        plan = self.plan
        with Vertical():
            yield Label(Text(f"Keep the last {plan.n} checkpoints?"), classes="title")
            with VerticalScroll(id="plan"):
                yield Static(self.plan_text(), id="plan-text")
            freed = Text("Frees ")
            freed.append(size_text(plan.bytes_freed), style="bold")
            yield Static(freed, id="freed")
            yield Static(Text(""), id="ignored")
            with Horizontal():
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button(
                    f"Delete {len(plan.delete)} (y)",
                    id="delete",
                    variant="error",
                    disabled=not plan.delete or plan.refusal is not None,
                )

    def action_confirm(self) -> None:
        """``y``: delete, once the guard has passed and there is anything to delete."""
        if not self.plan.delete or self.plan.refusal is not None:
            return
        if self.guard.armed(event_clock()):
            self.dismiss(True)
        else:
            self.note_ignored()

    @on(Button.Pressed, "#delete")
    def _delete_pressed(self) -> None:
        self.action_confirm()
