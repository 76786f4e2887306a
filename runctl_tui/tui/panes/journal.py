"""The journal pane: the audit journal of actions, newest first, every value shown literally."""

from __future__ import annotations

import json
import stat
from collections import deque
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable, Static

from runctl_tui.text import clean, one_line
from runctl_tui.threads import run_blocking
from runctl_tui.tui.panes import Pane, PaneContext

SHOWN_ENTRIES = 2000
"""The newest entries the pane lists; the line above says how many the file holds."""

COLUMNS = ("TIME", "ACTION", "OUTCOME", "PROVIDER", "ID", "NAME", "DETAIL")
"""What each row shows, from the entry's keys (see :func:`entry_cells`)."""

DETAIL_WIDTH = 300
"""Cells a detail may take; the journal file keeps it whole."""

OUTCOME_STYLES = {
    "done": "green",
    "failed": "bold red",
    "refused": "yellow",
    "cancelled": "dim",
    "attempted": "cyan",
}


@dataclass(frozen=True)
class JournalRead:
    """What one read of the journal file found."""

    path: Path
    entries: tuple[dict[str, Any], ...] = ()
    """The newest entries, newest first, at most :data:`SHOWN_ENTRIES`."""
    total: int = 0
    """Entries in the file, unreadable lines left out."""
    unreadable: int = 0
    """Lines that are not a JSON object."""
    missing: bool = False
    """The file does not exist yet: nothing was ever asked for."""
    error: str | None = None
    """One line: why the file cannot be read; ``None`` when it could."""

    def where(self) -> str:
        """The pane's first line: where the journal is and how many entries it holds."""
        if self.error is not None:
            return self.error
        place = f"Audit journal {clean(self.path)}"
        if self.missing or not (self.total or self.unreadable):
            return f"{place} · no entries yet (a line is written for every action asked for)"
        noun = "entry" if self.total == 1 else "entries"
        text = f"{place} · {self.total} {noun}"
        if self.total > len(self.entries):
            text += f" · the newest {len(self.entries)} shown"
        if self.unreadable:
            lines = "line" if self.unreadable == 1 else "lines"
            text += f" · {self.unreadable} unreadable {lines} skipped"
        return text


def read_journal(path: Path, limit: int = SHOWN_ENTRIES) -> JournalRead:
    """Read the journal at ``path`` (blocking): its newest ``limit`` entries and its count.

    Never raises for a problem with the file: :attr:`JournalRead.error` says it in one line.
    Only a regular file is opened, so that a named pipe put in its place cannot hang the read.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return JournalRead(path, missing=True)
    except OSError as exc:
        return JournalRead(path, error=_unreadable(path, exc.strerror or type(exc).__name__))
    if not stat.S_ISREG(info.st_mode):
        return JournalRead(path, error=_unreadable(path, "not a regular file"))
    newest: deque[dict[str, Any]] = deque(maxlen=max(limit, 0))
    total = unreadable = 0
    try:
        with path.open("rb") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    entry = None
                if not isinstance(entry, dict):
                    unreadable += 1
                    continue
                total += 1
                newest.append(entry)
    except OSError as exc:
        return JournalRead(path, error=_unreadable(path, exc.strerror or type(exc).__name__))
    return JournalRead(path, entries=tuple(reversed(newest)), total=total, unreadable=unreadable)


def _unreadable(path: Path, reason: str) -> str:
    return one_line(f"cannot read the audit journal {path}: {reason}", 400)


def _value(entry: dict[str, Any], *keys: str) -> str:
    """The first of ``keys`` the entry has, as text; empty when none (JSON null included)."""
    for key in keys:
        value = entry.get(key)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return ""


def entry_cells(entry: dict[str, Any]) -> tuple[Text, ...]:
    """One row: every value as plain text, controls escaped, never markup."""
    outcome = _value(entry, "outcome", "result")
    detail = _value(entry, "detail")
    state_after = _value(entry, "state_after")
    if state_after and outcome == "done":
        detail = f"now {state_after}" + (f"; {detail}" if detail else "")
    return (
        Text(clean(_value(entry, "time"))),
        Text(clean(_value(entry, "action"))),
        Text(clean(outcome), style=OUTCOME_STYLES.get(outcome, "")),
        Text(clean(_value(entry, "provider"))),
        Text(clean(_value(entry, "id"))),
        Text(clean(_value(entry, "name"))),
        Text(one_line(detail, DETAIL_WIDTH)),
    )


class JournalPane(Pane):
    """Every action asked for, refused, cancelled, attempted and done, newest first."""

    PANE_ID = "journal"

    DEFAULT_CSS = """
    JournalPane #journal-where { height: auto; padding: 0 1; color: $text-muted; }
    JournalPane #journal-entries { height: 1fr; }
    """

    def __init__(self, context: PaneContext) -> None:
        super().__init__(context)
        self.last_read: JournalRead | None = None
        """What the pane shows now; ``None`` until the first read ends."""

    def compose(self) -> ComposeResult:
        """Where the journal is, then its entries."""
        yield Static(Text("Reading the audit journal…"), id="journal-where")
        entries: DataTable[Text] = DataTable(
            id="journal-entries", cursor_type="row", zebra_stripes=True
        )
        yield entries

    def on_mount(self) -> None:
        """Set up the columns; the entries are read when the pane is first shown."""
        self.entries.add_columns(*COLUMNS)

    @property
    def entries(self) -> DataTable[Text]:
        """The table of entries."""
        return self.query_one("#journal-entries", DataTable)

    @property
    def path(self) -> Path:
        """The journal file the fleet writes."""
        return self.fleet.journal.path

    def focus_target(self) -> Widget | None:
        """The entries."""
        return self.entries

    def pane_shown(self) -> None:
        """Read the journal afresh."""
        self.reload()

    def journal_written(self) -> None:
        """Read the journal afresh."""
        self.reload()

    def refresh_requested(self) -> None:
        """Read the journal afresh."""
        self.reload()

    def reload(self) -> None:
        """Read the journal off the event loop and show it."""
        self.load_journal()

    @work(exclusive=True, group="journal", exit_on_error=False)
    async def load_journal(self) -> None:
        """Read the file on a daemon thread (quitting never waits for it), then show it."""
        read = await run_blocking(partial(read_journal, self.path), name="runctl-journal-read")
        self.show_journal(read)

    def show_journal(self, read: JournalRead) -> None:
        """Put ``read`` on screen, keeping the cursor on the newest row."""
        self.last_read = read
        self.query_one("#journal-where", Static).update(Text(read.where()))
        table = self.entries
        table.clear()
        table.add_rows(entry_cells(entry) for entry in read.entries)


PANE = JournalPane
