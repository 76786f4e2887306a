"""The checkpoints pane: one location's checkpoints, newest first, kept current, inspected safely.

A location is a local directory (followed with watchfiles), a directory on an SSH host or an
S3 prefix (both listed again periodically). The table renders only the rows in view, so a
directory of ten thousand checkpoints scrolls as freely as ten. ``enter`` inspects the row
under the cursor in a worker, reading only the byte ranges the format needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from runctl_tui.checkpoints.inspect_model import Inspection, human_bytes
from runctl_tui.checkpoints.listing import Checkpoint, Listing, LocationKind, stale_warning
from runctl_tui.models import Instance, InstanceState
from runctl_tui.text import one_line
from runctl_tui.tui.panes import Pane, PaneContext
from runctl_tui.tui.widgets.row_table import (
    DIM_STYLE,
    NAVIGATION,
    Column,
    RowTable,
)

if TYPE_CHECKING:
    from runctl_tui.checkpoints.actions import Store
    from runctl_tui.checkpoints.listing import KeepPlan
    from runctl_tui.checkpoints.report import Location
    from runctl_tui.remote.ssh import SshHub, SshTarget

HOW_TO_OPEN = (
    "No checkpoint directory open. Press c on a fleet row (1), "
    "or start with: runctl-tui checkpoints PATH  "
    "(or host:PATH, ssh://user@host:port/PATH, s3://bucket/prefix)"
)

DEFAULT_STALE_MINUTES = 30
"""Minutes without a new checkpoint before the pane flags it (``[checkpoints] stale_minutes``)."""

NEWEST_STYLE = Style(color="green", bold=True)
BEST_STYLE = Style(color="yellow", bold=True)

FIX_HINTS = {
    LocationKind.LOCAL: "check the path, then r to list again",
    LocationKind.SSH: "check that the host is up and reachable with ssh, then r to list again",
    LocationKind.S3: "check the bucket, the AWS profile and credentials, then r to list again",
}
"""How to fix a failed listing, by where the location is."""

WHERE_LABELS = {LocationKind.LOCAL: "this machine", LocationKind.SSH: "host", LocationKind.S3: "S3"}


def human_age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``12 d``: how long ago, roughly."""
    from runctl_tui.checkpoints.report import human_age as report_age

    return report_age(seconds)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


COLUMNS = (
    Column("", 2),
    Column("NAME", 0),
    Column("SIZE", 9, right=True),
    Column("AGE", 7, right=True),
    Column("STEP", 8, right=True),
    Column("EPOCH", 6, right=True),
    Column("METRIC", 22),
    Column("WHERE", 16),
)
"""The columns; NAME (width 0) takes what the others leave."""


def row_cells(checkpoint: Checkpoint, now: datetime) -> tuple[str, ...]:
    """A checkpoint's cells as plain, safe text: markers, name, size, age, step, epoch,
    metric, where."""
    name = one_line(checkpoint.name, 400)
    if checkpoint.is_dir and not name.endswith("/"):
        name += "/"
    if not checkpoint.complete:
        name += f" ({checkpoint.shards_present}/{checkpoint.shards} shards)"
    metric = checkpoint.metric
    return (
        ("*" if checkpoint.newest else " ") + ("B" if checkpoint.best else " "),
        name,
        human_bytes(checkpoint.size),
        human_age((now - checkpoint.modified).total_seconds()),
        _number(checkpoint.step),
        _number(checkpoint.epoch),
        one_line(metric.label(), 60) if metric is not None else "",
        one_line(checkpoint.where, 60),
    )


def _widths(total: int) -> list[int]:
    fixed = sum(c.width for c in COLUMNS) + len(COLUMNS) - 1
    return [c.width if c.width else max(8, total - fixed) for c in COLUMNS]


class CheckpointTable(RowTable[Checkpoint]):
    """The checkpoints of a listing, one row each; only the rows in view are rendered."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *NAVIGATION,
        Binding("enter", "choose", "Inspect"),
    ]
    COLUMNS = COLUMNS

    DEFAULT_CSS = """
    CheckpointTable { height: 1fr; overflow-x: hidden; }
    """

    @dataclass
    class Chosen(Message):
        """``enter`` on a row: inspect this checkpoint."""

        checkpoint: Checkpoint

    def __init__(self, clock: Callable[[], datetime], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock

    def show(self, rows: Sequence[Checkpoint]) -> None:
        """Show ``rows``; the cursor stays on the checkpoint it was on, if still listed."""
        self.show_rows(rows, lambda checkpoint: checkpoint.path)

    def chosen(self, row: Checkpoint) -> Message:
        """``enter``: inspect it."""
        return self.Chosen(row)

    def column_widths(self, total: int) -> list[int]:
        """NAME takes what the others leave."""
        return _widths(total)

    def row_cells(self, index: int) -> tuple[str, ...]:
        """The checkpoint's cells, its age as of now."""
        return row_cells(self.rows[index], self.clock())

    def cell_style(self, row: Checkpoint, column: int, cell: str) -> Style | None:
        """The newest and best marks coloured, WHERE dimmed."""
        if column == 0 and cell.strip():
            return NEWEST_STYLE if row.newest else BEST_STYLE
        return DIM_STYLE if column == 7 else None


BAR_WIDTH = 30


def download_text(name: str, done: int, total: int) -> Text:
    """``downloading NAME ━━━━━━━━━━━━━━━━━━━━━━━ 45% · 1.2 GB of 2.7 GB``."""
    text = Text(f"downloading {name} ")
    share = min(1.0, done / total) if total else 0.0
    filled = round(share * BAR_WIDTH)
    text.append("━" * filled, style="green")
    text.append("━" * (BAR_WIDTH - filled), style="dim")
    text.append(f" {share:.0%} · {human_bytes(done)} of {human_bytes(total)}")
    return text


def inspection_text(inspection: Inspection) -> Text:
    """An inspection's summary, literally; the unsafe warning and errors in red."""
    text = Text()
    for n, line in enumerate(inspection.summary_lines()):
        if n:
            text.append("\n")
        if line.startswith("UNSAFE"):
            text.append(line, style="bold red")
        elif line.startswith("error:"):
            text.append(line, style="red")
        elif n == 0:
            text.append(line, style="bold")
        else:
            text.append(line)
    return text


class CheckpointsPane(Pane):
    """The checkpoints of one location: header, table, and an inspection below."""

    PANE_ID = "checkpoints"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close_inspection", "Close", show=False),
        Binding("y", "copy_resume", "Copy resume", id="checkpoints-copy-resume"),
        Binding("d", "download", "Download", id="checkpoints-download"),
        Binding("D", "delete", "Delete", id="checkpoints-delete"),
        Binding("K", "keep_last", "Keep last N", id="checkpoints-keep-last"),
    ]

    DEFAULT_CSS = """
    CheckpointsPane #ckpt-header { height: 1; padding: 0 1; background: $boost; }
    CheckpointsPane #ckpt-error { height: auto; padding: 0 1; color: $text-error; }
    CheckpointsPane #ckpt-flag { height: auto; padding: 0 1; color: $text-warning; }
    CheckpointsPane #ckpt-empty { height: 1fr; padding: 1 2; color: $text-muted; }
    CheckpointsPane #ckpt-inspection { height: 45%; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self, context: PaneContext) -> None:
        super().__init__(context)
        self.location: Location | None = None
        """The location shown, once one is opened."""
        self.origin: Instance | None = None
        """The fleet row the location belongs to, if any."""
        self.listing: Listing | None = None
        """The last listing that succeeded (kept on screen when a later one fails)."""
        self.failure: str | None = None
        """Why the last listing failed, one line; ``None`` once one succeeds."""
        self.listed_at: datetime | None = None
        """When the last listing arrived, by the pane's clock."""
        self.inspection: Inspection | None = None
        """The last inspection shown."""
        self._own_hub: SshHub | None = None
        self._s3: Any = None
        self._table = CheckpointTable(context.clock, id="ckpt-table")

    def compose(self) -> ComposeResult:
        """Header, error, stale flag, the table (or how to open one), the inspection."""
        yield Static(Text(""), id="ckpt-header")
        yield Static(Text(""), id="ckpt-error")
        yield Static(Text(""), id="ckpt-flag")
        yield Static(Text(HOW_TO_OPEN), id="ckpt-empty")
        yield self._table
        with VerticalScroll(id="ckpt-inspection"):
            yield Static(Text(""), id="ckpt-inspection-text")

    def on_mount(self) -> None:
        """Nothing open yet; the header's ages tick."""
        self.draw()
        self.query_one("#ckpt-inspection").display = False
        self.set_interval(1.0, self.tick, name="checkpoints-ages")

    async def on_unmount(self) -> None:
        """Close the connection the pane opened itself."""
        if self._own_hub is not None:
            with contextlib.suppress(Exception):
                await self._own_hub.close()

    @property
    def table(self) -> CheckpointTable:
        """The checkpoint table."""
        return self._table

    @property
    def selected(self) -> Checkpoint | None:
        """The checkpoint under the cursor."""
        return self._table.selected

    def focus_target(self) -> Widget | None:
        """The table."""
        return self._table

    def now(self) -> datetime:
        """The pane's clock."""
        return self.context.clock()

    # Opening -------------------------------------------------------------------------------

    def open_location(self, text: str, *, origin: Instance | None = None) -> None:
        """Show the checkpoints at ``text`` (a path, ``host:path``, ``ssh://...`` or
        ``s3://bucket/prefix``) and keep them current; replaces the location shown."""
        from runctl_tui.checkpoints.report import parse_location

        try:
            location = parse_location(text)
        except ValueError as exc:
            self.failure = one_line(f"cannot open {one_line(text, 120)}: {exc}", 300)
            self.notify(self.failure, severity="error", timeout=10, markup=False)
            self.draw()
            return
        self.location = location
        self.origin = origin
        self.listing = None
        self.failure = None
        self.listed_at = None
        self.close_inspection()
        self._table.show(())
        self.draw()
        self.watch_location(location)

    def stale_minutes(self) -> float:
        """``[checkpoints] stale_minutes``, else the default."""
        settings = getattr(getattr(self.app, "settings", None), "checkpoints", None)
        minutes = getattr(settings, "stale_minutes", None)
        if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0:
            return float(minutes)
        return DEFAULT_STALE_MINUTES

    def ssh_hub(self, target: SshTarget | None = None) -> SshHub:
        """The hub to reach ``target`` through: the origin's provider's, else the fleet's
        shared one, else one of the pane's own."""
        from runctl_tui.tui.screens.trust import hub_for_row

        return hub_for_row(getattr(self.fleet, "providers", {}), target, self.origin, self._hub)

    def _hub(self) -> SshHub:
        from runctl_tui.remote.ssh import SshHub

        if self._own_hub is None:
            self._own_hub = SshHub()
        return self._own_hub

    async def s3_client(self) -> Any:
        """An S3 client built like the EC2 ones (profile, endpoint, timeouts, retries)."""
        if self._s3 is None:
            from runctl_tui.threads import run_blocking

            settings = getattr(self.app, "settings", None)
            aws = getattr(settings, "aws", None)

            def build() -> Any:
                from runctl_tui.checkpoints.listing_s3 import s3_client
                from runctl_tui.providers.aws import Ec2Clients

                return s3_client(Ec2Clients.from_settings(aws))

            self._s3 = await run_blocking(build, name="runctl-s3-client")
        return self._s3

    def listings(self, location: Location) -> AsyncIterator[Listing]:
        """The location's listing now and each time it changes."""
        if location.kind is LocationKind.S3:
            return self._s3_listings(location.path)
        if location.target is not None:
            from runctl_tui.checkpoints.listing_remote import watch_sftp

            return watch_sftp(self.ssh_hub(location.target), location.target, location.path)
        from runctl_tui.checkpoints.listing_local import watch_local

        return watch_local(location.path)

    async def _s3_listings(self, url: str) -> AsyncIterator[Listing]:
        from runctl_tui.checkpoints.listing_s3 import watch_s3

        client = await self.s3_client()
        async for listing in watch_s3(client, url):
            yield listing

    @work(exclusive=True, group="checkpoints-watch", exit_on_error=False)
    async def watch_location(self, location: Location) -> None:
        """List the location, then again whenever it changes, until another one is opened."""
        if location.target is not None:
            hub = self.ssh_hub(location.target)
            if not await self.host_trusted(hub, location.target):
                return
        try:
            async for listing in self.listings(location):
                if self.location is not location:
                    return
                self.show_listing(listing)
        except Exception as exc:
            if self.location is location:
                self.failure = one_line(f"{location.text}: {type(exc).__name__}: {exc}", 300)
                self.draw()

    async def host_trusted(self, hub: SshHub, target: SshTarget) -> bool:
        """Connect once before listing: an unknown host key is shown and trusted only if the
        user says so; a changed key is refused. Other failures are left to the listing."""
        from runctl_tui.tui.screens.trust import ensure_host_trusted

        refusal = await ensure_host_trusted(self.app, hub, target)
        return True if refusal is None else self._refuse(refusal)

    def _refuse(self, message: str) -> bool:
        self.failure = one_line(message, 300)
        self.notify(self.failure, severity="error", timeout=15, markup=False)
        self.draw()
        return False

    def show_listing(self, listing: Listing) -> None:
        """Put a new listing on screen; a failed one keeps the last good one shown."""
        self.listed_at = self.now()
        if listing.error is not None:
            self.failure = listing.error
        else:
            self.failure = None
            self.listing = listing
            self._table.show(listing.checkpoints)
        self.draw()

    def refresh_requested(self) -> None:
        """``r``: list the location again now."""
        if self.location is not None:
            self.watch_location(self.location)

    # Actions -------------------------------------------------------------------------------

    def _settings(self) -> Any:
        return getattr(getattr(self.app, "settings", None), "checkpoints", None)

    def _chosen(self) -> Checkpoint | None:
        checkpoint = self.selected
        if checkpoint is None:
            self.notify("No checkpoint selected.", severity="warning")
        return checkpoint

    async def store(self) -> Store:
        """Where the shown checkpoints live, for downloading and deleting."""
        from runctl_tui.checkpoints.actions import Store

        location = self.location
        if location is not None and location.kind is LocationKind.S3:
            return Store.s3_client(await self.s3_client())
        if location is not None and location.target is not None:
            return Store.sftp(self.ssh_hub(location.target), location.target)
        return Store.local()

    def action_copy_resume(self) -> None:
        """``y``: copy the command that resumes from the checkpoint (OSC 52: works over SSH)."""
        from runctl_tui.checkpoints.actions import DEFAULT_RESUME_TEMPLATE, resume_command

        checkpoint = self._chosen()
        if checkpoint is None:
            return
        settings = self._settings()
        template = getattr(settings, "resume_command", None) or DEFAULT_RESUME_TEMPLATE
        try:
            command = resume_command(template, checkpoint)
        except ValueError as exc:
            self.notify(f"[checkpoints] resume_command: {exc}", severity="error", markup=False)
            return
        self.app.copy_to_clipboard(command)
        self.notify(one_line(f"copied: {command}", 300), timeout=6, markup=False)

    def action_download(self) -> None:
        """``d``: fetch a remote or S3 checkpoint into ``[checkpoints] download_dir``."""
        checkpoint = self._chosen()
        if checkpoint is None:
            return
        if checkpoint.kind is LocationKind.LOCAL:
            self.notify("That checkpoint is on this machine already.", severity="warning")
            return
        settings = self._settings()
        where = os.path.expanduser(getattr(settings, "download_dir", None) or "~/checkpoints")
        try:
            os.makedirs(where, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.notify(
                one_line(f"[checkpoints] download_dir {where}: {reason}", 300),
                severity="error",
                markup=False,
            )
            return
        self.download(checkpoint, where)

    @work(group="checkpoints-download", exit_on_error=False)
    async def download(self, checkpoint: Checkpoint, where: str) -> None:
        """Download into ``where`` with its progress in the flag line; the size is verified
        at the end."""
        from runctl_tui.checkpoints.actions import download

        flag = self.query_one("#ckpt-flag", Static)
        name = one_line(checkpoint.name, 60)

        def progress(done: int, total: int) -> None:
            flag.update(download_text(name, done, total))
            flag.display = True

        result = await download(checkpoint, where, await self.store(), progress=progress)
        flag.display = False
        self.draw()
        self.notify(
            one_line(result.message, 300),
            severity="information" if result.ok else "error",
            timeout=8,
            markup=False,
        )

    def action_delete(self) -> None:
        """``D``: delete the checkpoint after its name is typed; journaled before and after."""
        from runctl_tui.tui.screens.checkpoint_confirm import ConfirmDelete

        checkpoint = self._chosen()
        listing = self.listing
        if checkpoint is None or listing is None:
            return
        if self.fleet.readonly:
            self.notify("read-only mode: nothing is deleted", severity="warning")
            return

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.delete(checkpoint, listing)

        self.app.push_screen(ConfirmDelete(checkpoint, self.now()), callback=decided)

    @work(group="checkpoints-delete", exit_on_error=False)
    async def delete(self, checkpoint: Checkpoint, listing: Listing) -> None:
        """Delete, checked afresh against what was listed, then list again."""
        from runctl_tui.checkpoints.actions import delete

        result = await delete(checkpoint, listing, await self.store(), self.fleet.journal)
        self.finished(result.message, result.ok)

    def action_keep_last(self) -> None:
        """``K``: preview "keep the last N" (``[checkpoints] keep_last``), then do it."""
        listing = self.listing
        if listing is None:
            self.notify("No checkpoints listed yet.", severity="warning")
            return
        if self.fleet.readonly:
            self.notify("read-only mode: nothing is deleted", severity="warning")
            return
        keep = int(getattr(self._settings(), "keep_last", 3) or 3)
        self.preview_keep_last(listing, keep)

    @work(group="checkpoints-plan", exclusive=True, exit_on_error=False)
    async def preview_keep_last(self, listing: Listing, keep: int) -> None:
        """Plan what would go (leaving out files open for writing here), and ask."""
        from runctl_tui.checkpoints.listing import plan_keep_last
        from runctl_tui.tui.screens.checkpoint_confirm import ConfirmKeep

        open_paths: set[str] = set()
        if listing.kind is LocationKind.LOCAL:
            from runctl_tui.checkpoints.actions import open_for_writing_under
            from runctl_tui.threads import run_blocking

            directory = listing.directory
            open_paths = await run_blocking(
                lambda: open_for_writing_under(directory), name="runctl-open-files"
            )
        plan = plan_keep_last(listing, keep, open_for_writing=open_paths)

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.keep_last(plan, listing)

        self.app.push_screen(ConfirmKeep(plan), callback=decided)

    @work(group="checkpoints-delete", exit_on_error=False)
    async def keep_last(self, plan: KeepPlan, listing: Listing) -> None:
        """Delete what the plan lets go, one by one, each checked afresh and journaled."""
        from runctl_tui.checkpoints.actions import keep_last

        result = await keep_last(plan, listing, await self.store(), self.fleet.journal)
        self.finished(result.message, result.ok)

    def finished(self, message: str, ok: bool) -> None:
        """Say how a deletion went, show the journal's new lines, and list again."""
        from runctl_tui.tui.messages import JournalWritten

        self.notify(
            one_line(message, 300),
            severity="information" if ok else "error",
            timeout=8,
            markup=False,
        )
        self.post_message(JournalWritten())
        self.refresh_requested()

    # Drawing -------------------------------------------------------------------------------

    def tick(self) -> None:
        """Keep the ages honest."""
        if self.location is not None and self.display:
            self.draw()
            self._table.refresh()

    def header_text(self) -> Text:
        """Location · where · count · total · when listed."""
        location = self.location
        text = Text()
        if location is None:
            return text
        text.append(one_line(location.text, 120), style="bold")
        text.append(" · ", style="dim")
        label = WHERE_LABELS[location.kind]
        where = self.listing.where if self.listing is not None else ""
        if location.kind is LocationKind.SSH:
            shown = one_line(where or str(location.target), 60)
            text.append(f"{label} {shown}")
        else:
            text.append(label)
        listing = self.listing
        if listing is not None:
            count = len(listing.checkpoints)
            text.append(" · ", style="dim")
            text.append(f"{count:,} checkpoint{'s' if count != 1 else ''}")
            text.append(" · ", style="dim")
            text.append(human_bytes(listing.total_size))
            if not listing.complete:
                text.append(" · ", style="dim")
                text.append("incomplete", style="yellow")
        text.append(" · ", style="dim")
        if self.listed_at is None:
            text.append("listing…", style="dim")
        else:
            age = max(0.0, (self.now() - self.listed_at).total_seconds())
            text.append(f"listed {human_age(age)} ago", style="dim")
        return text

    def stale_text(self) -> str | None:
        """``no new checkpoint for N minutes`` while it is so (and the run, if known, runs)."""
        listing = self.listing
        if listing is None or self.failure is not None:
            return None
        if self.origin is not None and self.origin.state is not InstanceState.RUNNING:
            return None
        newest = listing.newest
        return stale_warning(
            newest.modified if newest is not None else None,
            self.now(),
            timedelta(minutes=self.stale_minutes()),
            name=newest.name if newest is not None else "",
        )

    def draw(self) -> None:
        """Header, failure, flag, and the table or how to open a location."""
        if not self.query("#ckpt-header"):
            return
        self.query_one("#ckpt-header", Static).update(self.header_text())
        self.query_one("#ckpt-header").display = self.location is not None
        error = self.query_one("#ckpt-error", Static)
        if self.failure is not None:
            kind = self.location.kind if self.location is not None else LocationKind.LOCAL
            kept = " (showing the last good listing)" if self.listing is not None else ""
            error.update(
                Text(f"{one_line(self.failure, 300)}{kept}: {FIX_HINTS[kind]}", style="bold red")
            )
        error.display = self.failure is not None
        flag = self.query_one("#ckpt-flag", Static)
        stale = self.stale_text()
        flag.update(Text(one_line(stale or "", 300), style="bold yellow"))
        flag.display = stale is not None
        empty = self.query_one("#ckpt-empty", Static)
        if self.location is None:
            empty.update(Text(HOW_TO_OPEN))
        elif self.listing is not None and not self.listing.checkpoints:
            empty.update(
                Text("No checkpoints found here yet; new ones appear as they are written.")
            )
        elif self.listing is None:
            empty.update(Text("" if self.failure else "Listing…"))
        shown = self.listing is not None and bool(self.listing.checkpoints)
        empty.display = not shown
        self._table.display = shown

    # Inspecting ----------------------------------------------------------------------------

    @on(CheckpointTable.Chosen)
    def start_inspection(self, event: CheckpointTable.Chosen) -> None:
        """``enter``: inspect the checkpoint in a worker."""
        event.stop()
        panel = self.query_one("#ckpt-inspection")
        panel.display = True
        self.query_one("#ckpt-inspection-text", Static).update(
            Text(f"inspecting {one_line(event.checkpoint.name, 120)}…", style="dim")
        )
        self.inspect(event.checkpoint)

    @work(exclusive=True, group="checkpoints-inspect", exit_on_error=False)
    async def inspect(self, checkpoint: Checkpoint) -> None:
        """Read the checkpoint's directory and pickle (never load it) and show what is in it."""
        location = self.location
        try:
            inspection = await self.read_inspection(checkpoint, location)
        except Exception as exc:
            inspection = Inspection(
                name=checkpoint.path, error=one_line(f"{type(exc).__name__}: {exc}", 300)
            )
        if self.location is not location:
            return
        self.inspection = inspection
        # Named as listed: the header above already says where.
        shown = inspection.model_copy(update={"name": checkpoint.name})
        self.query_one("#ckpt-inspection-text", Static).update(inspection_text(shown))
        self.query_one("#ckpt-inspection", VerticalScroll).scroll_home(animate=False)

    async def read_inspection(
        self, checkpoint: Checkpoint, location: Location | None
    ) -> Inspection:
        """Inspect ``checkpoint`` where it lives, by ranged reads."""
        from runctl_tui.threads import run_blocking

        if checkpoint.kind is LocationKind.S3:
            from runctl_tui.checkpoints.remote_read import inspect_s3

            client = await self.s3_client()
            return await run_blocking(
                lambda: inspect_s3(client, checkpoint), name="runctl-inspect-s3"
            )
        if checkpoint.kind is LocationKind.SSH and location is not None and location.target:
            import asyncio

            from runctl_tui.checkpoints.remote_read import CALL_TIMEOUT, inspect_sftp

            target = location.target
            hub = self.ssh_hub(target)
            conn = await asyncio.wait_for(hub.connection(target), CALL_TIMEOUT)
            sftp = await asyncio.wait_for(conn.start_sftp_client(), CALL_TIMEOUT)
            try:
                return await inspect_sftp(sftp, checkpoint, name=f"{target}:{checkpoint.path}")
            finally:
                sftp.exit()
        from runctl_tui.checkpoints.remote_read import inspect_local

        return await run_blocking(lambda: inspect_local(checkpoint), name="runctl-inspect")

    def close_inspection(self) -> None:
        """Hide the inspection panel."""
        for panel in self.query("#ckpt-inspection"):
            panel.display = False

    def action_close_inspection(self) -> None:
        """``escape``: close the inspection and give the table the focus back."""
        self.close_inspection()
        self.screen.set_focus(self._table)


PANE = CheckpointsPane
