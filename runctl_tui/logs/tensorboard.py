"""TensorBoard scalars of the run behind a followed log, on this machine or over SFTP.

:class:`TensorBoardWatch` looks for event files (``events.out.tfevents.*``) next to the log and
in the places trainers usually write them (``runs/*/``, ``tb/``, ``tensorboard/``, ``logs/``,
``lightning_logs/version_*/``), plus directories it is given. It follows the files of the
newest run: each poll reads on from where the last stopped (see :mod:`runctl_tui.logs.tfevents`),
and every tag keeps a bounded series. Looking for files is bounded too (depth, directories,
files), and is repeated now and then: a restarted run starts a new event file.

Nothing here raises for a bad or vanished file: damaged records and unreadable files become
one-line notes, the newest few kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import posixpath
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from runctl_tui.logs.metrics import History
from runctl_tui.logs.tfevents import (
    EVENT_FILE_PREFIX,
    AsyncTfEventsReader,
    ScalarPoint,
    TfEventsReader,
    local_reader,
)
from runctl_tui.text import one_line

if TYPE_CHECKING:
    import asyncssh

    from runctl_tui.remote.ssh import SshHub, SshTarget

MAX_POINTS = 2000
"""Points kept per tag: a longer run is averaged into this many, evenly."""
MAX_DEPTH = 3
"""How many directory levels below a searched directory are looked into."""
MAX_DIRECTORIES = 200
"""Directories listed in one search, at most: a home directory full of runs stays cheap."""
MAX_FILES = 32
"""Event files followed at once, at most (the newest)."""
MAX_NOTES = 20
"""Notes kept; older ones are dropped."""

USUAL_DIRECTORIES = ("runs/*", "tb", "tensorboard", "logs", "lightning_logs/version_*")
"""Where trainers put event files, relative to the log's directory: looked into (and below,
to :data:`MAX_DEPTH`) besides the log's directory itself."""

_SPLIT_DIRECTORIES = frozenset({"train", "training", "validation", "val", "eval", "test"})
"""Sub-directories that split one run's scalars by phase (Keras writes ``train/`` and
``validation/``, each with an ``epoch_loss``): their name is put before the tags."""

_EVAL_WORDS = frozenset({"eval", "evaluation", "val", "valid", "validation", "test", "dev"})
_TRAIN_WORDS = frozenset({"train", "training", "step", "epoch", "total", "avg", "mean", "iter"})
_WORDS = re.compile(r"[a-z0-9]+")

Kind = Literal["loss", "eval_loss", "lr"]
_T = TypeVar("_T")


def kind(tag: str) -> Kind | None:
    """What a tag measures, when it is one of the curves shown by default.

    ``train/loss``, ``loss``, ``Loss/train``, ``epoch_loss``, ``train/loss_step``: ``loss``;
    ``eval/loss``, ``val_loss``, ``Loss/val``, ``validation/epoch_loss``: ``eval_loss``;
    ``lr``, ``learning_rate``, ``lr-Adam``, ``lr/pg0``: ``lr``. A part of the loss (``kl_loss``,
    ``loss/aux``) is none of them.
    """
    words = _WORDS.findall(tag.lower())
    evaluated = any(word in _EVAL_WORDS for word in words)
    rest = [w for w in words if w not in _EVAL_WORDS and w not in _TRAIN_WORDS]
    if rest == ["loss"]:
        return "eval_loss" if evaluated else "loss"
    if evaluated:
        return None
    if rest[:1] == ["lr"] or rest[:2] == ["learning", "rate"]:
        # Optimizer or parameter-group suffixes: lr-Adam, lr/pg0, learning_rate_0.
        tail = rest[1:] if rest[:1] == ["lr"] else rest[2:]
        if len(tail) <= 1:
            return "lr"
    return None


@dataclass(frozen=True)
class _Entry:
    """A directory entry as both listings give it."""

    path: str
    is_dir: bool
    mtime: float


class _Tag:
    """One tag's bounded series; a step going back (a resumed run) drops the steps after it,
    as TensorBoard does."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.history = History(capacity)
        self.last_step: float | None = None

    def add(self, step: float, value: float) -> None:
        if self.last_step is not None and step <= self.last_step:
            kept = [(x, y) for x, y in self.history.points() if x < step]
            self.history = History(self.capacity)
            for x, y in kept:
                self.history.append(x, y)
        self.history.append(step, value)
        self.last_step = step


class TensorBoardWatch:
    """The scalars of the event files near one followed log, local or on an SSH host."""

    def __init__(
        self,
        log_path: str,
        *,
        target: SshTarget | None = None,
        hub: SshHub | None = None,
        dirs: Sequence[str] = (),
        poll_seconds: float = 2.0,
        rescan_seconds: float = 30.0,
        timeout: float = 20.0,  # noqa: ASYNC109 - a bound on each remote call, not on a method
        connect_timeout: float = 60.0,
        capacity: int = MAX_POINTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (target is None) != (hub is None):
            raise ValueError("a remote log needs both a target and a hub")
        self.log_path = log_path
        self.target = target
        self.hub = hub
        self.dirs = tuple(dirs)
        """More directories to search, absolute or relative to the log's directory."""
        self.poll_seconds = poll_seconds
        self.rescan_seconds = rescan_seconds
        self.timeout = timeout
        """Bound on each remote call (a listing, a size, a read)."""
        self.connect_timeout = connect_timeout
        self.capacity = capacity
        self._clock = clock
        self.files: list[str] = []
        """The event files followed, oldest first."""
        self.notes: list[str] = []
        """One-line, safe notes (damaged records, unreadable files), oldest first."""
        self.run_directory: str | None = None
        """The directory of the run followed: the one holding the newest event file."""
        self._readers: dict[str, TfEventsReader | AsyncTfEventsReader] = {}
        self._prefixes: dict[str, str] = {}
        self._reported: dict[str, str] = {}
        self._tags: dict[str, _Tag] = {}
        self._latest: dict[str, float] = {}
        self._sftp: asyncssh.SFTPClient | None = None
        self._closed = False
        self._wake = asyncio.Event()

    # -- what was read ------------------------------------------------------------------------

    def tags(self) -> list[str]:
        """Every tag read so far, in the order first seen (a sub-directory prefix included)."""
        return list(self._tags)

    def points(self, tag: str) -> list[tuple[float, float]]:
        """``(step, value)`` pairs of ``tag``, oldest first, at most :attr:`capacity`."""
        found = self._tags.get(tag)
        return found.history.points() if found is not None else []

    def latest(self, tag: str) -> float | None:
        """The newest value of ``tag`` read, not averaged."""
        return self._latest.get(tag)

    def _best(self, wanted: Kind) -> str | None:
        found = [(tag, series) for tag, series in self._tags.items() if kind(tag) == wanted]
        if not found:
            return None
        # Lightning logs loss_step and loss_epoch: the one with more points draws the curve.
        return max(found, key=lambda item: (item[1].history.count, -len(item[0])))[0]

    def loss_tag(self) -> str | None:
        """The tag of the training loss, when one was read."""
        return self._best("loss")

    def eval_loss_tag(self) -> str | None:
        """The tag of the eval (validation) loss, when one was read."""
        return self._best("eval_loss")

    def lr_tag(self) -> str | None:
        """The tag of the learning rate, when one was read."""
        return self._best("lr")

    # -- following ----------------------------------------------------------------------------

    async def run(self, on_change: Callable[[], None]) -> None:
        """Look for files, then poll every :attr:`poll_seconds` until :meth:`close`, calling
        ``on_change`` after a poll or a search that changed something."""
        next_scan = self._clock()
        while not self._closed:
            changed = False
            if self._clock() >= next_scan:
                changed = await self.scan()
                next_scan = self._clock() + self.rescan_seconds
            changed = await self.poll() or changed
            if changed and not self._closed:
                on_change()
            if self._closed:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def close(self) -> None:
        """Stop :meth:`run` and close the SFTP session (the hub's connection stays open)."""
        self._closed = True
        self._wake.set()
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            sftp.exit()
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(sftp.wait_closed(), self.timeout)

    async def scan(self) -> bool:
        """Look for event files again; whether the files followed changed."""
        try:
            found = await self._find()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - listings fail in every way a network can
            return self._note(f"cannot look for event files: {one_line(str(exc) or exc, 160)}")
        if not found:
            return False
        newest = max(found, key=lambda entry: (entry.mtime, entry.path))
        run = self._parent(newest.path)
        if self._base(run) in _SPLIT_DIRECTORIES:
            run = self._parent(run)
        self.run_directory = run
        wanted = [
            entry
            for entry in found
            if self._parent(entry.path) == run or self._in_split(entry, run)
        ]
        wanted.sort(key=lambda entry: (entry.mtime, entry.path))
        changed = False
        for entry in wanted[-MAX_FILES:]:
            if entry.path in self._readers:
                continue
            self._readers[entry.path] = self._reader(entry.path)
            parent = self._parent(entry.path)
            self._prefixes[entry.path] = f"{self._base(parent)}/" if parent != run else ""
            self.files.append(entry.path)
            changed = True
        return changed

    async def poll(self) -> bool:
        """Read what every followed file gained since the last poll; whether anything did."""
        changed = False
        for path, reader in list(self._readers.items()):
            if self._closed:
                break
            if isinstance(reader, TfEventsReader):
                points = await asyncio.to_thread(reader.poll)
            else:
                points = await reader.poll()
            prefix = self._prefixes[path]
            for point in points:
                self._add(prefix, point)
            changed = changed or bool(points)
            for note in reader.take_notes():
                changed = self._note(note) or changed
            problem = reader.stopped or reader.error
            if reader.error is not None and not await self._exists(path):
                self._drop(path)
                changed = True
                continue
            if problem is not None and self._reported.get(path) != problem:
                self._reported[path] = problem
                changed = self._note(problem) or changed
            elif problem is None:
                self._reported.pop(path, None)
        return changed

    def _add(self, prefix: str, point: ScalarPoint) -> None:
        tag = prefix + point.tag
        series = self._tags.get(tag)
        if series is None:
            series = self._tags[tag] = _Tag(self.capacity)
        series.add(float(point.step), point.value)
        self._latest[tag] = point.value

    def _drop(self, path: str) -> None:
        self._readers.pop(path, None)
        self._prefixes.pop(path, None)
        self._reported.pop(path, None)
        if path in self.files:
            self.files.remove(path)

    def _note(self, note: str) -> bool:
        note = one_line(note, 240)
        if self.notes and self.notes[-1] == note:
            return False
        self.notes.append(note)
        del self.notes[:-MAX_NOTES]
        return True

    # -- where the files are ------------------------------------------------------------------

    def _parent(self, path: str) -> str:
        return posixpath.dirname(path) if self.target is not None else os.path.dirname(path)

    def _base(self, path: str) -> str:
        return posixpath.basename(path) if self.target is not None else os.path.basename(path)

    def _in_split(self, entry: _Entry, run: str) -> bool:
        parent = self._parent(entry.path)
        return self._parent(parent) == run and self._base(parent) in _SPLIT_DIRECTORIES

    def _join(self, *parts: str) -> str:
        if self.target is not None:
            return posixpath.normpath(posixpath.join(*parts))
        return os.path.normpath(os.path.join(*parts))

    def _log_directory(self) -> str:
        if self.target is not None:
            path = self.log_path
            if path.startswith("~/"):
                # SFTP starts in the home directory: a path relative to it means the same.
                path = path[2:]
            return posixpath.dirname(path) or "."
        return str(Path(self.log_path).expanduser().absolute().parent)

    def _roots(self) -> list[tuple[str, bool]]:
        """Directories to search and whether any sub-directory of theirs may hold event files
        (else only the usual ones)."""
        base = self._log_directory()
        roots = [(base, False)]
        for extra in self.dirs:
            path = extra
            if self.target is None:
                path = os.path.expanduser(extra)
            elif path.startswith("~/"):
                path = path[2:]
            roots.append((self._join(base, path), True))
        return roots

    async def _find(self) -> list[_Entry]:
        listed = 0
        found: dict[str, _Entry] = {}
        for root, any_below in self._roots():
            queue: list[tuple[str, int]] = [(root, 0)]
            while queue and listed < MAX_DIRECTORIES:
                directory, depth = queue.pop(0)
                listed += 1
                for entry in await self._list(directory):
                    name = self._base(entry.path)
                    if entry.is_dir:
                        # Below a usual directory (or a given one) any directory may hold them.
                        if depth < MAX_DEPTH and (any_below or depth > 0 or _usual(name)):
                            queue.append((entry.path, depth + 1))
                    elif name.startswith(EVENT_FILE_PREFIX):
                        found.setdefault(entry.path, entry)
        newest = sorted(found.values(), key=lambda entry: entry.mtime, reverse=True)
        return newest[: MAX_FILES * 4]

    async def _list(self, directory: str) -> list[_Entry]:
        if self.target is None:
            return await asyncio.to_thread(_list_local, directory)
        from asyncssh import SFTPError

        async def listing(sftp: asyncssh.SFTPClient) -> list[_Entry]:
            out = []
            for item in await sftp.readdir(directory):
                name = item.filename if isinstance(item.filename, str) else item.filename.decode()
                if name in (".", ".."):
                    continue
                path = f"{directory.rstrip('/')}/{name}" if directory != "/" else f"/{name}"
                # 2: a directory; a symbolic link (7) to one is looked into like one.
                code = item.attrs.type
                if code == 7:
                    try:
                        code = (await sftp.stat(path)).type
                    except SFTPError:
                        continue
                out.append(_Entry(path, code == 2, float(item.attrs.mtime or 0)))
            return out

        try:
            return await self._remote(listing)
        except SFTPError:
            return []

    async def _exists(self, path: str) -> bool:
        if self.target is None:
            return await asyncio.to_thread(os.path.exists, path)

        async def exists(sftp: asyncssh.SFTPClient) -> bool:
            return bool(await sftp.exists(path))

        try:
            return await self._remote(exists)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - cannot tell: keep the file and its note
            return True

    # -- remote -------------------------------------------------------------------------------

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        """The SFTP session, opened (again, after a dropped connection) on first use."""
        if self._sftp is not None:
            return self._sftp
        assert self.hub is not None
        assert self.target is not None
        conn = await asyncio.wait_for(self.hub.connection(self.target), self.connect_timeout)
        sftp = await asyncio.wait_for(conn.start_sftp_client(), self.timeout)
        if self._closed:
            sftp.exit()
            raise ConnectionError("the TensorBoard watch is closed")
        self._sftp = sftp
        return sftp

    async def _remote(self, call: Callable[[asyncssh.SFTPClient], Awaitable[_T]]) -> _T:
        """``call`` on the SFTP session, bounded by :attr:`timeout`; a failure other than the
        file's own (a lost connection, a timeout) opens a new session at the next call."""
        from asyncssh import SFTPError

        sftp = await self._sftp_client()
        try:
            return await asyncio.wait_for(call(sftp), self.timeout)
        except SFTPError:
            raise
        except Exception:
            if self._sftp is sftp:
                self._sftp = None
                sftp.exit()
            raise

    def _reader(self, path: str) -> TfEventsReader | AsyncTfEventsReader:
        if self.target is None:
            return local_reader(path)

        async def read_range(start: int, end: int) -> bytes:
            async def read(sftp: asyncssh.SFTPClient) -> bytes:
                async with sftp.open(path, "rb") as file:
                    data = await file.read(end - start, start)
                return data if isinstance(data, bytes) else data.encode()

            return await self._remote(read)

        async def size() -> int:
            async def stat(sftp: asyncssh.SFTPClient) -> int:
                return int((await sftp.stat(path)).size or 0)

            return await self._remote(stat)

        return AsyncTfEventsReader(read_range, size, name=path)


def _usual(name: str) -> bool:
    """Whether the directory ``name``, in the log's directory, leads to a usual directory."""
    return any(fnmatch.fnmatchcase(name, p.split("/")[0]) for p in USUAL_DIRECTORIES)


def _list_local(directory: str) -> list[_Entry]:
    out = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                    mtime = entry.stat().st_mtime
                except OSError:
                    continue
                out.append(_Entry(entry.path, is_dir, mtime))
    except OSError:
        return []
    return out
