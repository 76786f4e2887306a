"""Messages that carry worker results to the main screen and its panes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from runctl_tui.models import ActionResult, FleetSnapshot
from runctl_tui.tui.widgets.instance_table import TableData

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostReport


@dataclass
class FleetPolled(Message):
    """A poll of every provider finished."""

    snapshot: FleetSnapshot
    table: TableData
    """The snapshot's rows, sorted and rendered in the worker."""
    costs: CostReport | None = None
    """What the fleet costs, once the ledger has recorded this poll."""

    def can_replace(self, message: Message) -> bool:
        """A newer poll replaces one still queued."""
        return isinstance(message, FleetPolled)


@dataclass
class PollFailed(Message):
    """A poll broke before it could report on the providers; polling goes on."""

    reason: str
    """One line, control characters escaped: the exception's type and message."""


@dataclass
class ActionsFinished(Message):
    """An action ran on its targets; one result per target."""

    results: list[ActionResult]


@dataclass
class JournalWritten(Message):
    """Lines were added to the audit journal (refusals, a cancellation, or an action)."""
