"""One line per provider: how fresh its data is, or why it failed and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from textual import events
from textual.content import Content
from textual.widget import Widget

from runctl_tui import __version__
from runctl_tui.models import ProviderStatus, format_duration
from runctl_tui.text import clean

DEMO_WARNING = "DEMO · simulated clouds, not your accounts"
READONLY_WARNING = "READ-ONLY"
NO_PROVIDERS = "no providers configured: enable [aws] in the config, or try --demo"

SLOW_POLL_SECONDS = 3
"""A poll running this long is mentioned beside providers that already have data."""

HEADER_CHROME = 18
"""Cells of the header taken by its icon and the space on its right."""


def header_warning(*, demo: bool, readonly: bool) -> str:
    """What the header must never cut: DEMO and READ-ONLY, shortest first."""
    parts = [DEMO_WARNING] if demo else []
    if readonly:
        parts.append(READONLY_WARNING)
    return " · ".join(parts)


def header_sub_title(*, demo: bool, readonly: bool, identities: Sequence[str] = ()) -> str:
    """The header's sub-title: the warning first, then what is shown, then the version."""
    parts = [header_warning(demo=demo, readonly=readonly), *map(clean, identities)]
    parts.append(f"v{__version__}")
    return " · ".join(p for p in parts if p)


def polling_note(polling_since: datetime | None, now: datetime) -> str:
    """``polling… 12s`` while a poll is in flight, else empty."""
    if polling_since is None:
        return ""
    return f"polling… {format_duration(max(now - polling_since, timedelta(0)))}"


def status_text(
    status: ProviderStatus,
    now: datetime,
    *,
    polling_since: datetime | None = None,
    show_identity: bool = False,
) -> Content:
    """The styled line for one provider; every provider-supplied string shown as plain text."""
    age = status.age(now)
    polling = polling_note(polling_since, now)
    slow = polling_since is not None and (now - polling_since).total_seconds() >= SLOW_POLL_SECONDS
    name = (clean(status.provider), "bold")
    identity = f"  {clean(status.identity)}" if show_identity and status.identity else ""
    parts: list[str | tuple[str, str]]
    if status.ok:
        parts = [("● ", "bold $text-success"), name, identity]
        parts.append(f"  {status.instance_count} instances · refreshed {format_duration(age)} ago")
        if slow:
            parts.append(f" · {polling}")
    elif not status.configured:
        # Never set up: nothing is wrong, so it reads as a note, not as an error.
        parts = [("○ ", "bold $text-muted"), name]
        parts.append((f"  {clean(status.error or 'not configured')}", "$text-muted"))
        if status.hint:
            parts.append((f"  → {clean(status.hint)}", "$text-muted"))
    elif status.failed_at is None:
        # Never polled to an end yet: say that it is under way, not that something is wrong.
        parts = [("◌ ", "bold $text-warning"), name, identity]
        parts.append(f"  {polling}" if polling else f"  {clean(status.error or 'not polled yet')}")
    else:
        parts = [("✖ ", "bold $text-error"), name, identity]
        parts.append((f"  {clean(status.error or 'failed')}", "$text-error"))
        if status.hint:
            parts.append((f"  → {clean(status.hint)}", "$text-warning"))
        stale = "no data yet" if age is None else f"showing data {format_duration(age)} old"
        parts.append((f"  ({stale})", "italic"))
        if slow:
            parts.append(f" · {polling}")
    for warning in status.warnings:
        parts.append((f"  ⚠ {clean(warning)}", "$text-warning"))
    return Content.assemble(*parts)


MAX_STATUS_LINES = 3
"""More providers than this share one summary line; those in trouble keep a line each."""


def summary_text(statuses: Sequence[ProviderStatus]) -> Content:
    """``● 4 providers: aws 11 · runpod 3 · local 2 · ✖ ssh`` for a bar with many providers."""
    healthy = all(s.ok or not s.configured for s in statuses)
    parts: list[str | tuple[str, str]] = [
        ("● " if healthy else "✖ ", "bold $text-success" if healthy else "bold $text-error"),
        (f"{len(statuses)} providers:", "bold"),
    ]
    for n, status in enumerate(statuses):
        parts.append(" ·" if n else "")
        name = clean(status.provider)
        if status.ok:
            parts.append(f" {name} {status.instance_count}")
        elif not status.configured:
            parts.append((f" {name} not configured", "$text-muted"))
        elif status.failed_at is None:
            parts.append((f" {name} …", "$text-warning"))
        else:
            parts.append((f" ✖ {name}", "$text-error"))
    return Content.assemble(*parts)


class ProviderBar(Widget):
    """Freshness and failures of every provider, with the fleet's burn rate."""

    DEFAULT_CSS = """
    ProviderBar { height: auto; padding: 0 1; background: $panel; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._statuses: Sequence[ProviderStatus] = ()
        self._summary = ""
        self._notice = ""
        self._polling_since: datetime | None = None
        self._now: datetime | None = None
        self._text = Content()
        self._height = 1

    @property
    def text(self) -> Content:
        """What the bar shows."""
        return self._text

    def update_statuses(
        self,
        statuses: Sequence[ProviderStatus],
        summary: str,
        now: datetime,
        *,
        polling_since: datetime | None = None,
        notice: str = "",
    ) -> None:
        """Show new statuses, the fleet summary, a poll in flight and a problem with polling."""
        self._statuses = statuses
        self._summary = summary
        self._notice = notice
        self.refresh_ages(now, polling_since)

    def refresh_ages(self, now: datetime, polling_since: datetime | None = None) -> None:
        """Re-render the ages (and a poll's) against ``now``; lay out only if the height changes."""
        self._now = now
        self._polling_since = polling_since
        text = self._build(now)
        if text == self._text:
            return
        self._text = text
        self._fit()

    def identity_in_header(self) -> bool:
        """Whether the header is wide enough to name what is shown, so this bar need not."""
        app = self.app
        title = app.format_title(app.title, app.sub_title)
        return title.cell_length <= max(app.size.width - HEADER_CHROME, 0)

    def _build(self, now: datetime) -> Content:
        inline = self.is_mounted and not self.identity_in_header()
        statuses = self._statuses
        lines: list[Content] = []
        if len(statuses) > MAX_STATUS_LINES:
            # Many providers: one line for all, and a line of its own for each one in trouble.
            lines.append(summary_text(statuses))
            statuses = [s for s in statuses if s.configured and (not s.ok or s.warnings)]
        lines += [
            status_text(s, now, polling_since=self._polling_since, show_identity=inline)
            for s in statuses
        ]
        if not lines:
            lines = [Content.styled(NO_PROVIDERS, "$text-warning")]
        if self._summary:
            # Beside the first provider that is set up, not after a "not configured" note.
            # Lines above the statuses' own: the many-providers summary, if shown.
            above = len(lines) - len(statuses)
            first = next((n for n, s in enumerate(statuses) if s.configured), 0)
            first = above + first if statuses else 0
            lines[first] = Content.assemble(lines[first], "   ", (clean(self._summary), "bold"))
        if self._notice:
            lines.insert(0, Content.styled(f"✖ {clean(self._notice)}", "bold $text-error"))
        return Content("\n").join(lines)

    def _fit(self) -> None:
        # Wrapped lines change the height as much as new lines do: measure at the real width.
        width = self.content_region.width
        height = len(self._text.wrap(width)) if width else self._height
        self.refresh(layout=height != self._height)
        self._height = height

    def on_resize(self, event: events.Resize) -> None:
        """The header may now fit the identity, or no longer; the wrapping changes too."""
        if self._now is not None:
            self._text = self._build(self._now)
        self._fit()

    def render(self) -> Content:
        """The status lines."""
        return self._text
