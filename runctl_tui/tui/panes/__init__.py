"""The panes of the main screen, one module each, switched by the keys of ``keys.PANES``.

A pane module defines a :class:`Pane` subclass and names it ``PANE``; its entry in
:data:`runctl_tui.keys.PANES` gives its id (the module's name), title and key. The main
screen builds every pane from that catalog and passes events down through the hooks below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

from textual.containers import Vertical
from textual.widget import Widget

from runctl_tui.keys import PANES, PaneEntry
from runctl_tui.services.fleet import Clock, Fleet
from runctl_tui.tui.messages import FleetPolled


@dataclass(frozen=True)
class PaneContext:
    """What every pane may use: the fleet service and the clock."""

    fleet: Fleet
    clock: Clock


class Pane(Vertical):
    """One view of the main screen; the screen shows one pane at a time."""

    DEFAULT_CSS = """
    Pane { height: 1fr; }
    """

    PANE_ID: ClassVar[str] = ""
    """The id of its entry in :data:`runctl_tui.keys.PANES`."""

    def __init__(self, context: PaneContext) -> None:
        super().__init__(id=self.PANE_ID)
        self.context = context

    @property
    def fleet(self) -> Fleet:
        """The fleet service."""
        return self.context.fleet

    def focus_target(self) -> Widget | None:
        """The widget that takes the focus when the pane is shown."""
        return None

    def pane_shown(self) -> None:
        """The pane was just switched to."""

    def fleet_polled(self, event: FleetPolled) -> None:
        """A poll ended: show what it found, if the pane shows the fleet."""

    def journal_written(self) -> None:
        """Lines were added to the audit journal."""

    def refresh_requested(self) -> None:
        """The user asked for fresh data (the refresh key), while this pane is shown."""


def pane_class(entry: PaneEntry) -> type[Pane]:
    """The :class:`Pane` subclass its module (``runctl_tui.tui.panes.<id>``) names ``PANE``."""
    module = importlib.import_module(f"{__name__}.{entry.id}")
    pane = getattr(module, "PANE", None)
    if not (isinstance(pane, type) and issubclass(pane, Pane)) or entry.id != pane.PANE_ID:
        raise TypeError(f"{module.__name__}.PANE is not the Pane subclass of {entry.id!r}")
    return pane


def build_panes(context: PaneContext) -> list[Pane]:
    """One pane of every catalog entry, in catalog order."""
    return [pane_class(entry)(context) for entry in PANES]
