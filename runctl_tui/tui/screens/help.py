"""The ``?`` help screen: every key, and where things are kept."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from runctl_tui.text import clean


class HelpScreen(ModalScreen[None]):
    """Keys and notes; any of escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 95%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    """

    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close", show=False)]

    def __init__(self, keys: Sequence[tuple[str, str]], notes: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys
        self.notes = notes

    def compose(self) -> ComposeResult:
        """A table of keys, then the notes."""
        table = Table.grid(padding=(0, 3))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column(overflow="fold")
        # Keys come from the keymap and notes from the config: data, never markup.
        for key, description in self.keys:
            table.add_row(Text(clean(key)), Text(clean(description)))
        notes = Table.grid(padding=(0, 3))
        notes.add_column(style="bold", no_wrap=True)
        notes.add_column(overflow="fold")
        for name, value in self.notes:
            notes.add_row(Text(clean(name)), Text(clean(value)))
        with VerticalScroll():
            yield Static(Text("runctl-tui keys", style="bold underline"))
            yield Static(table)
            yield Static()
            yield Static(notes)
            yield Static(Text("\nescape, q or ? closes this", style="italic"))

    def action_dismiss_help(self) -> None:
        """Close."""
        self.dismiss(None)
