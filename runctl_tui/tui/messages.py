"""Messages that carry worker results to the screen."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from runctl_tui.models import ActionResult, FleetSnapshot


@dataclass
class FleetPolled(Message):
    """A poll of every provider finished."""

    snapshot: FleetSnapshot

    def can_replace(self, message: Message) -> bool:
        """A newer poll replaces one still queued."""
        return isinstance(message, FleetPolled)


@dataclass
class ActionsFinished(Message):
    """An action ran on its targets; one result per target."""

    results: list[ActionResult]
