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
from pathlib import Path

from runctl_tui.checkpoints.listing import (
    DEFAULT_DEPTH,
    INSIDE_DEPTH,
    MAX_ENTRIES,
    TRAINER_STATE,
    TRAINER_STATE_MAX_BYTES,
    FileEntry,
    Listing,
    LocationKind,
    TrainerState,
    build_listing,
    failed_listing,
    is_checkpoint_dir,
    parse_trainer_state,
    pick_trainer_states,
    wanted_outside,
)
from runctl_tui.text import one_line
from runctl_tui.threads import run_blocking

WHERE = "this machine"
WATCH_SAFETY_SECONDS = 30.0
"""While watching, the directory is listed again this often anyway: a change made as the
watcher started, or on a file system that sends no events (NFS), is not reported by it."""
POLL_SECONDS = 10.0
"""How often an unwatchable (or not yet existing) directory is listed again."""


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class _Walk:
    """One walk of a directory tree: entries, trainer states found, and notes."""

    def __init__(self, root: Path, max_depth: int, max_entries: int) -> None:
        self.root = root
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.entries: list[FileEntry] = []
        self.states: list[FileEntry] = []
        self.notes: list[str] = []
        self.truncated = False
        self.complete = True

    def note(self, parts: tuple[str, ...], what: str) -> None:
        if len(self.notes) < 20:
            self.notes.append(one_line(f"{'/'.join(parts) or '.'}: {what}", 300))

    def walk(self, path: str, parts: tuple[str, ...], inside: bool) -> None:
        """Walk ``path`` (``parts`` below the root); ``inside`` a checkpoint directory."""
        depth = len(parts)
        try:
            scanner = os.scandir(path)
        except OSError as exc:
            self.note(parts, f"not listed: {_why(exc)}")
            self.complete = False
            return
        with scanner:
            for entry in scanner:
                if len(self.entries) >= self.max_entries:
                    self.truncated = True
                    return
                child = (*parts, entry.name)
                try:
                    # Directory links are not followed: a link back up would loop.
                    if entry.is_dir(follow_symlinks=False):
                        if inside:
                            if depth + 1 < INSIDE_DEPTH:
                                self.walk(entry.path, child, True)
                            else:
                                self.note(child, "too deep; its size is not counted")
                        elif is_checkpoint_dir(entry.name) and depth < self.max_depth:
                            mtime = entry.stat(follow_symlinks=False).st_mtime
                            self.entries.append(FileEntry(child, 0, mtime, True))
                            self.walk(entry.path, child, True)
                        elif depth < self.max_depth:
                            self.walk(entry.path, child, False)
                        continue
                    if not inside and not wanted_outside(entry.name):
                        continue
                    if not entry.is_file():
                        continue
                    info = entry.stat()
                except OSError as exc:
                    self.note(child, f"skipped: {_why(exc)}")
                    continue
                found = FileEntry(child, info.st_size, info.st_mtime)
                self.entries.append(found)
                if entry.name == TRAINER_STATE:
                    self.states.append(found)


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
    walk = _Walk(root, max_depth, max_entries)
    walk.walk(str(root), (), False)
    if walk.truncated:
        walk.notes.append(f"stopped after {max_entries} files; the listing is incomplete")
    states: dict[tuple[str, ...], TrainerState] = {}
    for entry in pick_trainer_states(walk.states):
        state = _read_state(root, entry)
        if isinstance(state, str):
            walk.notes.append(state)
        else:
            states[entry.parts[:-1]] = state
    base = str(root.absolute())
    prefix = base.rstrip(os.sep) + os.sep

    def join(parts: tuple[str, ...]) -> str:
        return prefix + os.sep.join(parts) if parts else base

    return build_listing(
        walk.entries,
        directory=shown,
        kind=LocationKind.LOCAL,
        where=WHERE,
        join=join,
        listed_at=listed_at,
        trainer_states=states,
        notes=walk.notes,
        max_depth=max_depth,
        complete=walk.complete and not walk.truncated,
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
