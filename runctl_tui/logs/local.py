"""A log file on this machine, followed like ``tail -F``: appends, rotation, truncation.

The file is held open by descriptor, so a rotated file (renamed away, a new one created under
the name) is read to its end before the new one starts, and bytes are read with ``pread`` at
exact offsets. Appends are seen through ``watchfiles`` watching the file's directory (a rename
or a new file shows there too); where watching is impossible, the size is polled instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from runctl_tui.logs.source import Chunk, Rotated, SourceEvent, SourceState, SourceStatus
from runctl_tui.text import one_line

TAIL_BYTES = 64 * 1024
"""How far before the end ``events(None)`` starts, so the newest lines show at once."""
READ_BYTES = 1024 * 1024
"""The most bytes one chunk carries: bounds what is held in memory per read."""
POLL_SECONDS = 0.25
"""How often the size is checked when the directory cannot be watched."""
SAFETY_SECONDS = 0.5
"""How often it is checked anyway while watching: a change made as the watcher started is
not reported by it."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class LocalFileSource:
    """A local log file, followed as it grows and read back by range."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        follow: bool = True,
        *,
        tail_bytes: int = TAIL_BYTES,
        poll_seconds: float = POLL_SECONDS,
        watch: bool = True,
    ) -> None:
        self.path = Path(path).expanduser()
        self.follow = follow
        self.tail_bytes = tail_bytes
        self.poll_seconds = poll_seconds
        self.watch = watch
        """Use ``watchfiles``; without it (or when it fails) the size is polled."""
        self.watching = False
        """Whether a directory watch is running now."""
        self._fd: int | None = None
        self._closed = False
        self._ending: str | None = None
        """Why the source is finishing (see :meth:`finish`), once it is."""
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._io = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """The path, as typed."""
        return one_line(str(self.path))

    def _say(self, what: str) -> str:
        return one_line(f"{self.path}: {what}")

    async def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of the current generation (fewer at its end)."""
        if end <= start:
            return b""
        async with self._io:
            fd = self._fd
            if fd is None:
                return b""
            parts: list[bytes] = []
            while start < end:
                data = await asyncio.to_thread(os.pread, fd, min(end - start, READ_BYTES), start)
                if not data:
                    break
                parts.append(data)
                start += len(data)
            return b"".join(parts)

    async def size(self) -> int:
        """The current generation's size now (0 while there is no file)."""
        fd = self._fd
        if fd is None:
            return 0
        try:
            return os.fstat(fd).st_size
        except OSError:
            return 0

    async def close(self) -> None:
        """Stop following: the iterator of :meth:`events` ends, the file is let go."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        task, self._watch_task = self._watch_task, None
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1.0)
        async with self._io:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    async def finish(self, reason: str) -> None:
        """The writer is done: read the file to its end now, without waiting for the watcher
        or the next poll, then end with :attr:`SourceState.ENDED` and ``reason``."""
        if self._ending is None:
            self._ending = reason or self._say("read to its end")
        self._wake.set()

    @property
    def _following(self) -> bool:
        return self.follow and self._ending is None

    def _ended(self) -> SourceStatus:
        return SourceStatus(SourceState.ENDED, self._ending or self._say("read to its end"))

    def _open(self) -> tuple[int, os.stat_result] | SourceStatus:
        """The file opened, or why not: missing (wait) or not a regular file (fail)."""
        try:
            info = os.stat(self.path)
            if not stat.S_ISREG(info.st_mode):
                return SourceStatus(
                    SourceState.FAILED,
                    self._say(f"{_kind(info.st_mode)}, not a log file; only files can be followed"),
                )
            # Non-blocking: should it become a FIFO between the two calls, open must not hang.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return SourceStatus(
                SourceState.WAITING, self._say("no such file yet; waiting for it to appear")
            )
        except OSError as error:
            return SourceStatus(SourceState.FAILED, self._say(error.strerror or str(error)))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return SourceStatus(
                SourceState.FAILED,
                self._say(f"{_kind(info.st_mode)}, not a log file; only files can be followed"),
            )
        return fd, info

    def _start_watch(self) -> None:
        if self.watch and self._watch_task is None and not self._closed:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch_directory())

    async def _watch_directory(self) -> None:
        """Wake the reader on any change in the file's directory (writes, renames, creation)."""
        try:
            from watchfiles import awatch

            async for _ in awatch(
                self.path.parent,
                debounce=50,
                step=10,
                stop_event=self._stop,
                watch_filter=None,
                recursive=False,
            ):
                self.watching = True
                self._wake.set()
        except Exception:
            # No directory yet, no inotify watches left, ...: polling still finds every change.
            pass
        finally:
            self.watching = False

    async def _wait(self) -> None:
        """Until something may have changed (or the next poll is due)."""
        watched = self._watch_task is not None and not self._watch_task.done()
        timeout = SAFETY_SECONDS if watched else self.poll_seconds
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _pread(self, fd: int, offset: int) -> bytes:
        async with self._io:
            if self._closed:
                return b""
            return await asyncio.to_thread(os.pread, fd, READ_BYTES, offset)

    async def events(self, start: int | None = None) -> AsyncIterator[SourceEvent]:
        """Chunks from ``start`` (``None``: a little before the end) and as the file grows,
        with statuses, rotations and truncations as they happen."""
        if self._closed:
            return
        self._start_watch()
        yield SourceStatus(SourceState.OPENING, self._say("opening"))
        waited = False
        while True:
            if self._closed:
                return
            opened = self._open()
            if isinstance(opened, tuple):
                break
            if opened.state is SourceState.FAILED:
                yield opened
                return
            if self._ending is not None:
                yield self._ended()
                return
            if not self.follow:
                yield SourceStatus(SourceState.FAILED, self._say("no such file"))
                return
            if not waited:
                yield opened
                waited = True
            await self._wait()
        fd, info = opened
        self._fd = fd
        ident = (info.st_dev, info.st_ino)
        generation = 0
        if waited:
            # The file appeared while we waited: all of it is new.
            offset = 0
        elif start is None:
            offset = max(0, info.st_size - self.tail_bytes)
        elif start > info.st_size:
            generation += 1
            offset = 0
            yield Rotated(generation, "truncated")
        else:
            offset = start
        yield SourceStatus(SourceState.FOLLOWING, self._say("following"))

        gone = False
        while not self._closed:
            # Read everything there is now.
            while not self._closed:
                data = await self._pread(fd, offset)
                if not data:
                    break
                yield Chunk(data, offset, generation)
                offset += len(data)
            if self._closed:
                return
            if os.fstat(fd).st_size < offset:
                generation += 1
                offset = 0
                yield Rotated(generation, "truncated")
                continue
            try:
                now = os.stat(self.path)
                current: tuple[int, int] | None = (now.st_dev, now.st_ino)
            except OSError:
                current = None
            if current is not None and current != ident:
                opened = self._open()
                if isinstance(opened, SourceStatus):
                    if opened.state is SourceState.FAILED:
                        yield opened
                        return
                    current = None
                else:
                    # Bytes written to the old file before it was renamed away may have come
                    # after the read above: drain it again, then the new one from 0.
                    while not self._closed:
                        data = await self._pread(fd, offset)
                        if not data:
                            break
                        yield Chunk(data, offset, generation)
                        offset += len(data)
                    new_fd, info = opened
                    async with self._io:
                        os.close(fd)
                        self._fd = fd = new_fd
                    ident = (info.st_dev, info.st_ino)
                    generation += 1
                    offset = 0
                    gone = False
                    yield Rotated(generation, "rotated")
                    yield SourceStatus(SourceState.FOLLOWING, self._say("following"))
                    continue
            if current is None and not gone:
                if not self._following:
                    break
                gone = True
                yield SourceStatus(
                    SourceState.WAITING, self._say("the file is gone; waiting for a new one")
                )
            if not self._following:
                break
            await self._wait()
        if not self._closed:
            yield self._ended()
