"""The baseline app: bare Textual showing one stock DataTable with runctl-tui's column headers.

It imports nothing but Textual, so its start-up is the floor any Textual table app pays. The
start-up benchmark runs it as a script (``python bench/bare_app.py``); the UI-stall benchmark
fills it with 1,000 rows.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable

COLUMNS: tuple[str, ...] = (
    "",
    "NAME",
    "ID",
    "WHERE",
    "TYPE",
    "GPUS",
    "MARKET",
    "STATE",
    "UPTIME",
    "ADDRESS",
    "$/H",
)
"""Copied from ``runctl_tui.views.COLUMNS``: importing it would add pydantic to the baseline."""


class BareTableApp(App[None]):
    """A full-screen stock DataTable, focused, with a row cursor and no rows yet."""

    def compose(self) -> ComposeResult:
        """The table."""
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        """Add the column headers and focus the table."""
        table: DataTable[str] = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()


if __name__ == "__main__":
    BareTableApp().run()
