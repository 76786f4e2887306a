"""Bindings from the key catalog, and the footer that shows them with help and quit first."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Footer

from runctl_tui.keys import KeyBinding

PINNED_ACTIONS = ("help", "quit")
"""Actions whose keys come first: the way out and the way to learn every other key."""

COMPACT_BELOW = 180
"""Narrower than this, keys lose their padding."""

PALETTE_KEY_FROM = 100
"""Narrower than this, the palette key (also listed under ``?``) leaves the footer."""


def textual_binding(binding: KeyBinding) -> Binding:
    """The Textual binding for one entry of :data:`runctl_tui.keys.BINDINGS`."""
    return Binding(
        ",".join(binding.keys),
        binding.action,
        binding.label,
        show=binding.show,
        priority=binding.priority,
        id=binding.id,
    )


def pinned_rank(widget: Widget) -> int:
    """Sort key: pinned keys first, in :data:`PINNED_ACTIONS` order; the rest keep theirs."""
    action = getattr(widget, "action", None)
    return PINNED_ACTIONS.index(action) if action in PINNED_ACTIONS else len(PINNED_ACTIONS)


class FleetFooter(Footer):
    """Textual's footer, reordered and compacted to fit 80 columns."""

    def compose(self) -> ComposeResult:
        """The footer's keys, help and quit first."""
        yield from sorted(super().compose(), key=pinned_rank)

    def on_resize(self, event: events.Resize) -> None:
        """Fit more keys into a narrow terminal."""
        width = event.size.width
        self.compact = width < COMPACT_BELOW
        palette = width >= PALETTE_KEY_FROM
        if palette != self.show_command_palette:
            self.show_command_palette = palette
            self.refresh(recompose=True)
