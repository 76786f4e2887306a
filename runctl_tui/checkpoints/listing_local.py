"""Checkpoints in a directory on this machine, listed with ``os.scandir`` and watched with
``watchfiles``.

Only files whose names matter are stat'ed outside checkpoint directories, and no file is opened
except the few ``trainer_state.json`` files :func:`pick_trainer_states` chooses, so a directory
of 10,000 checkpoint files lists in a few stat calls per file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from runctl_tui.checkpoints.listing import (
    DEFAULT_DEPTH,
    MAX_ENTRIES,
    TRAINER_STATE_MAX_BYTES,
    FileEntry,
    Listing,
    LocationKind,
    TrainerState,
    Walk,
    failed_listing,
    parse_trainer_state,
    pick_trainer_states,
    wanted_outside,
)
from runctl_tui.threads import run_blocking

WHERE = "this machine"
WATCH_SAFETY_SECONDS = 30.0
"""While watching, the directory is listed again this often anyway: a change made as the
watcher started, or on a file system that sends no events (NFS), is not reported by it."""
POLL_SECONDS = 10.0
"""How often an unwatchable (or not yet existing) directory is listed again."""


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _own_mtime(entry: os.DirEntry[str]) -> float:
    """A directory's own modification time (a link is not followed)."""
    return entry.stat(follow_symlinks=False).st_mtime


class _Walk(Walk):
    """One walk of a directory tree on this machine."""

    def walk(self, path: str, parts: tuple[str, ...], inside: bool) -> None:
        """Walk ``path`` (``parts`` below the root); ``inside`` a checkpoint directory."""
        try:
            scanner = os.scandir(path)
        except OSError as exc:
            self.not_listed(parts, _why(exc))
            return
        with scanner:
            for entry in scanner:
                if self.full():
                    return
                child = (*parts, entry.name)
                try:
                    # Directory links are not followed: a link back up would loop.
                    if entry.is_dir(follow_symlinks=False):
                        below = self.directory(child, inside, partial(_own_mtime, entry))
                        if below is not None:
                            self.walk(entry.path, child, below)
                        continue
                    if not inside and not wanted_outside(entry.name):
                        continue
                    if not entry.is_file():
                        continue
                    info = entry.stat()
                except OSError as exc:
                    self.note(child, f"skipped: {_why(exc)}")
                    continue
                self.file(child, info.st_size, info.st_mtime)


def _read_state(root: Path, entry: FileEntry) -> TrainerState | str:
    path = root.joinpath(*entry.parts)
    try:
        with path.open("rb") as file:
            data = file.read(TRAINER_STATE_MAX_BYTES + 1)
    except OSError as exc:
        return f"{'/'.join(entry.parts)}: not read: {_why(exc)}"
    if len(data) > TRAINER_STATE_MAX_BYTES:
        return f"{'/'.join(entry.parts)}: too big to read"
    try:
        return parse_trainer_state(data)
    except ValueError as exc:
        return f"{'/'.join(entry.parts)}: {exc}"


def _expanded(directory: str | os.PathLike[str]) -> Path:
    return Path(directory).expanduser()


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def list_local(
    directory: str | os.PathLike[str],
    *,
    max_depth: int = DEFAULT_DEPTH,
    max_entries: int = MAX_ENTRIES,
    now: datetime | None = None,
) -> Listing:
    """The checkpoints in ``directory`` (``~`` expanded) and up to ``max_depth`` levels below.

    Blocks (it stats files): call it from a thread, as :func:`watch_local` does.
    """
    shown = str(directory)
    root = Path(directory).expanduser()
    listed_at = now or datetime.now(UTC)
    try:
        info = os.stat(root)
    except FileNotFoundError:
        return failed_listing(shown, LocationKind.LOCAL, WHERE, f"{shown}: no such directory")
    except OSError as exc:
        return failed_listing(shown, LocationKind.LOCAL, WHERE, f"{shown}: {_why(exc)}")
    if not stat.S_ISDIR(info.st_mode):
        return failed_listing(shown, LocationKind.LOCAL, WHERE, f"{shown}: not a directory")
    walk = _Walk(max_depth, max_entries)
    walk.walk(str(root), (), False)
    walk.finish()
    for entry in pick_trainer_states(walk.states):
        walk.read(entry, _read_state(root, entry))
    base = str(root.absolute())
    prefix = base.rstrip(os.sep) + os.sep

    def join(parts: tuple[str, ...]) -> str:
        return prefix + os.sep.join(parts) if parts else base

    return walk.listing(
        directory=shown, kind=LocationKind.LOCAL, where=WHERE, join=join, listed_at=listed_at
    )


async def _signal_changes(
    root: Path, changed: asyncio.Event, debounce_ms: int, poll_seconds: float
) -> None:
    """Set ``changed`` whenever something under ``root`` changes (watchfiles), or every
    ``poll_seconds`` while ``root`` is not a directory that can be watched."""
    import watchfiles

    while True:
        if _is_dir(root):
            try:
                async for _changes in watchfiles.awatch(
                    root,
                    debounce=debounce_ms,
                    step=50,
                    rust_timeout=int(poll_seconds * 1000),
                    yield_on_timeout=True,
                    recursive=True,
                ):
                    if _changes:
                        changed.set()
                    if not _is_dir(root):
                        break
            except (OSError, RuntimeError):
                pass  # gone, or cannot be watched: poll instead
        await asyncio.sleep(poll_seconds)
        changed.set()


async def watch_local(
    directory: str | os.PathLike[str],
    *,
    max_depth: int = DEFAULT_DEPTH,
    debounce_ms: int = 200,
    safety_seconds: float = WATCH_SAFETY_SECONDS,
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[Listing]:
    """The listing now, then again whenever it changes: ``watchfiles`` events on the directory,
    a listing every ``safety_seconds`` anyway, and polling every ``poll_seconds`` while the
    directory cannot be watched (it does not exist yet). Listing runs on a daemon thread.

    The watcher runs from the start, whether or not the consumer is waiting, so a change made
    while the consumer handles a listing is not lost.
    """
    root = _expanded(directory)
    changed = asyncio.Event()
    watcher = asyncio.create_task(_signal_changes(root, changed, debounce_ms, poll_seconds))
    last: Listing | None = None
    try:
        while True:
            changed.clear()
            current = await run_blocking(
                lambda: list_local(directory, max_depth=max_depth), name="runctl-checkpoints"
            )
            if not current.same_as(last):
                last = current
                yield current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), safety_seconds)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
