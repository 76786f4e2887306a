"""The action catalog: every fleet action as data, from which keys, footer, help and palette follow.

Adding an action is one entry here (and the provider code that performs it): its binding,
default key, footer label, help line, palette entry and the kind of confirmation it needs all
come from the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runctl_tui.models import Action


class Confirmation(StrEnum):
    """How the user confirms an action."""

    YES_NO = "yes-no"
    """``y`` (or the button) after the dialog has been on screen for a moment."""
    TYPED = "typed"
    """The target's id (or the verb, for several) typed out in full."""


@dataclass(frozen=True)
class ActionSpec:
    """One fleet action and everything the interface needs to offer it."""

    action: Action
    binding_id: str
    """The id a keymap names, e.g. ``stop-instance``."""
    keys: tuple[str, ...]
    """Default keys, as Textual key names."""
    verb: str
    """Capitalised verb for titles and buttons: ``Stop``."""
    confirmation: Confirmation
    destroys: bool
    """Whether it loses something for good (the dialog is red and typed)."""
    description: str
    """One line for the help screen."""
    palette_title: str
    palette_help: str
    slot: Action | None = None
    """The key this action shares (``interrupt`` is what ``stop``'s key does to a training
    run); ``None`` when it has keys of its own."""

    @property
    def key_action(self) -> Action:
        """The action whose binding asks for this one."""
        return self.slot or self.action

    @property
    def screen_action(self) -> str:
        """The screen action its binding runs: ``act('stop')``."""
        return f"act('{self.action.value}')"


CATALOG: tuple[ActionSpec, ...] = (
    ActionSpec(
        Action.STOP,
        "stop-instance",
        ("s",),
        "Stop",
        Confirmation.YES_NO,
        destroys=False,
        description="stop the cursor row, or every marked row (asks y/n)",
        palette_title="Stop instance(s)",
        palette_help="Stop the cursor row or the marked rows",
    ),
    ActionSpec(
        Action.START,
        "start-instance",
        ("u",),
        "Start",
        Confirmation.YES_NO,
        destroys=False,
        description="start a stopped instance, or every marked one (asks y/n)",
        palette_title="Start instance(s)",
        palette_help="Start the cursor row or the marked rows",
    ),
    ActionSpec(
        Action.TERMINATE,
        "terminate-instance",
        ("T",),
        "Terminate",
        Confirmation.TYPED,
        destroys=True,
        description="terminate: type the id (or 'terminate' for several)",
        palette_title="Terminate instance(s)",
        palette_help="Terminate after typing the id",
    ),
    ActionSpec(
        Action.INTERRUPT,
        "stop-instance",
        (),
        "Interrupt",
        Confirmation.YES_NO,
        destroys=False,
        description="interrupt a training run: SIGINT, then SIGTERM after the grace period",
        palette_title="Interrupt run(s)",
        palette_help="SIGINT the training run, so it can save a checkpoint",
        slot=Action.STOP,
    ),
    ActionSpec(
        Action.KILL,
        "terminate-instance",
        (),
        "Kill",
        Confirmation.TYPED,
        destroys=True,
        description="kill a training run with SIGKILL: type its pid",
        palette_title="Kill run(s)",
        palette_help="SIGKILL the training run after typing its pid",
        slot=Action.TERMINATE,
    ),
)
"""Every action a key can ask for, in the order the footer and help list them."""

KEYED: tuple[ActionSpec, ...] = tuple(spec for spec in CATALOG if spec.slot is None)
"""The actions with bindings of their own; the others share one of these keys."""

SHARING: dict[Action, tuple[ActionSpec, ...]] = {
    keyed.action: tuple(spec for spec in CATALOG if spec.key_action is keyed.action)
    for keyed in KEYED
}
"""For each keyed action, every action its key can ask for, itself first."""

BY_ACTION: dict[Action, ActionSpec] = {spec.action: spec for spec in CATALOG}
"""The catalog entry of each action."""

VERBS: dict[Action, str] = {spec.action: spec.verb for spec in CATALOG} | {
    Action.CANCEL_SPOT_REQUEST: "Cancel spot request"
}
"""Capitalised verb of every action, those that no key asks for directly included."""


def spec_for(name: str) -> ActionSpec | None:
    """The entry whose action value is ``name`` (``stop``), if any."""
    try:
        return BY_ACTION.get(Action(name))
    except ValueError:
        return None
