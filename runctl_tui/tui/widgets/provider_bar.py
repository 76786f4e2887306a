"""One line per provider: how fresh its data is, or why it failed and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.widget import Widget

from runctl_tui.models import ProviderStatus, format_duration


def status_text(status: ProviderStatus, now: datetime) -> Text:
    """The styled line for one provider."""
    age = status.age(now)
    text = Text()
    if status.ok:
        text.append("● ", "bold green")
        text.append(status.provider, "bold")
        text.append(f"  {status.instance_count} instances · refreshed {format_duration(age)} ago")
        return text
    # Not failed yet, just not polled yet.
    waiting = status.failed_at is None
    text.append("◌ " if waiting else "✖ ", "bold yellow" if waiting else "bold red")
    text.append(status.provider, "bold")
    text.append(f"  {status.error}", "" if waiting else "red")
    if status.hint:
        text.append(f"  → {status.hint}", "yellow")
    if not waiting:
        stale = "no data yet" if age is None else f"showing data {format_duration(age)} old"
        text.append(f"  ({stale})", "italic")
    return text


class ProviderBar(Widget):
    """Freshness and failures of every provider, with the fleet's burn rate."""

    DEFAULT_CSS = """
    ProviderBar { height: auto; padding: 0 1; background: $panel; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._statuses: Sequence[ProviderStatus] = ()
        self._summary = ""
        self._text = Text()

    @property
    def text(self) -> Text:
        """What the bar shows."""
        return self._text

    def update_statuses(
        self, statuses: Sequence[ProviderStatus], summary: str, now: datetime
    ) -> None:
        """Show new statuses and the fleet summary."""
        self._statuses = statuses
        self._summary = summary
        self.refresh_ages(now)

    def refresh_ages(self, now: datetime) -> None:
        """Re-render the ages against ``now``; lay out again only if the height changes."""
        lines = [status_text(s, now) for s in self._statuses] or [
            Text("no providers configured: enable [aws] in the config, or try --demo", "yellow")
        ]
        if self._summary:
            lines[0] = Text.assemble(lines[0], "   ", (self._summary, "bold"))
        text = Text("\n").join(lines)
        if text == self._text:
            return
        relayout = text.plain.count("\n") != self._text.plain.count("\n")
        self._text = text
        self.refresh(layout=relayout)

    def render(self) -> Text:
        """The status lines."""
        return self._text
