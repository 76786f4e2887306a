"""The log picker: every place a row's training log may be, to open one in the logs pane."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from runctl_tui.providers.base import LogLocation
from runctl_tui.text import clean, one_line


def option_text(location: LogLocation) -> Text:
    """Two lines: the path as it is (escaped, never markup), then how it was found."""
    text = Text(clean(location.path), style="bold")
    if location.target is not None:
        text.append(Text(f"  on {clean(location.target)}", style="dim"))
    text.append("\n")
    text.append(Text(f"  {clean(location.found) or 'found'}", style="italic"))
    return text


class LogPicker(ModalScreen[str | None]):
    """The candidates, likeliest first; enter opens one (the screen's result is its source),
    escape closes without opening anything."""

    DEFAULT_CSS = """
    LogPicker { align: center middle; }
    LogPicker > Vertical {
        width: 110; max-width: 95%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    LogPicker #log-picker-title { padding: 0 1 1 1; }
    LogPicker OptionList { height: auto; max-height: 30; }
    """

    BINDINGS = [Binding("escape", "close", "Close", show=False)]

    def __init__(self, title: str, locations: Sequence[LogLocation]) -> None:
        super().__init__()
        self.title_text = title
        self.locations = tuple(locations)

    def compose(self) -> ComposeResult:
        """A title line, then one option per candidate."""
        with Vertical():
            yield Static(Text(one_line(self.title_text, 100), style="bold"), id="log-picker-title")
            yield OptionList(
                *(
                    Option(option_text(location), id=str(index))
                    for index, location in enumerate(self.locations)
                ),
                id="log-picker-options",
            )
            yield Static(Text("enter opens it in the logs pane · escape closes", style="dim"))

    def on_mount(self) -> None:
        """Focus the list on the likeliest candidate."""
        options = self.query_one(OptionList)
        options.highlighted = 0 if self.locations else None
        options.focus()

    @on(OptionList.OptionSelected)
    def choose(self, event: OptionList.OptionSelected) -> None:
        """Enter (or a click): open the chosen candidate."""
        event.stop()
        self.dismiss(self.locations[event.option_index].source)

    def action_close(self) -> None:
        """Escape: open nothing."""
        self.dismiss(None)
