"""Local log tails on real files: appends, partial lines, rotation and truncation with no line
lost, a 10 MB line, invalid UTF-8, a 2 GB sparse file opened at its end, FIFOs refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runctl_tui.logs.decode import Line, LineDecoder
from runctl_tui.logs.index import LineIndex
from runctl_tui.logs.local import LocalFileSource
from runctl_tui.logs.source import Chunk, LogSource, Rotated, SourceEvent, SourceState, SourceStatus

pytestmark = pytest.mark.integration

WAIT_SECONDS = 10.0


@dataclass
class Tail:
    """A source's events consumed in the background, decoded into lines as they come."""

    source: LocalFileSource
    start: int | None = None
    events: list[SourceEvent] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    decoder: LineDecoder = field(default_factory=LineDecoder)
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Consume until the source ends."""
        async for event in self.source.events(self.start):
            self.events.append(event)
            if isinstance(event, Chunk):
                self.lines += self.decoder.feed(event)
            elif isinstance(event, Rotated):
                last = self.decoder.flush()
                if last is not None:
                    self.lines.append(last)
                self.decoder.reset(0, event.generation)
            self.changed.set()

    def texts(self) -> list[str]:
        """The text of every line so far."""
        return [line.styled.text for line in self.lines]

    def statuses(self) -> list[SourceState]:
        """Every state reported so far."""
        return [e.state for e in self.events if isinstance(e, SourceStatus)]

    async def until(self, check: Callable[[], bool], what: str) -> None:
        """Wait until ``check()`` holds."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.task is not None and self.task.done() and not check()):
                pytest.fail(f"timed out waiting for {what}: {self.texts()[-5:]} {self.events[-3:]}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.2))

    async def lines_until(self, count: int) -> list[str]:
        """The texts once ``count`` lines have come."""
        await self.until(lambda: len(self.lines) >= count, f"{count} lines")
        return self.texts()


@contextlib.asynccontextmanager
async def tailing(
    path: Path, start: int | None = 0, *, watch: bool = True, poll_seconds: float = 0.25
) -> AsyncIterator[Tail]:
    """A tail of ``path`` running for the block, closed after it."""
    source = LocalFileSource(path, watch=watch, poll_seconds=poll_seconds)
    tail = Tail(source, start)
    tail.task = asyncio.create_task(tail.run())
    try:
        yield tail
    finally:
        started = time.monotonic()
        await source.close()
        await asyncio.wait_for(tail.task, 2)
        assert time.monotonic() - started < 2


def append(path: Path, data: bytes) -> None:
    """Append and flush, as a training script's logger does."""
    with path.open("ab") as handle:
        handle.write(data)


async def test_it_is_a_log_source(tmp_path: Path) -> None:
    assert isinstance(LocalFileSource(tmp_path / "x.log"), LogSource)


@pytest.mark.parametrize("watch", [True, False], ids=["watched", "polled"])
async def test_follows_appends_and_holds_back_partial_lines(tmp_path: Path, watch: bool) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"step 1\n")
    async with tailing(path, watch=watch) as tail:
        assert await tail.lines_until(1) == ["step 1"]
        append(path, b"step 2 lo")
        await asyncio.sleep(0.4)
        assert tail.texts() == ["step 1"]
        partial = tail.decoder.partial()
        assert partial is not None
        assert partial.text == "step 2 lo"
        started = time.monotonic()
        append(path, b"ss=0.5\nstep 3\n")
        assert await tail.lines_until(3) == ["step 1", "step 2 loss=0.5", "step 3"]
        if watch:
            assert time.monotonic() - started < 0.4
        assert tail.statuses()[:2] == [SourceState.OPENING, SourceState.FOLLOWING]
    assert [(line.offset, line.end) for line in tail.lines] == [(0, 7), (7, 23), (23, 30)]


async def test_rotation_drains_the_old_file_then_starts_the_new(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"old 1\n")
    async with tailing(path) as tail:
        await tail.lines_until(1)
        # The writer appends to the old file after it was renamed, then a new file appears.
        with path.open("ab") as old:
            os.rename(path, tmp_path / "train.log.1")
            old.write(b"old 2\nold 3\n")
            old.flush()
            path.write_bytes(b"new 1\n")
        texts = await tail.lines_until(4)
        assert texts == ["old 1", "old 2", "old 3", "new 1"]
        rotations = [e for e in tail.events if isinstance(e, Rotated)]
        assert rotations == [Rotated(1, "rotated")]
        assert [line.generation for line in tail.lines] == [0, 0, 0, 1]
        assert tail.lines[-1].offset == 0
        assert await tail.source.read_range(0, 5) == b"new 1"
        append(path, b"new 2\n")
        assert (await tail.lines_until(5))[-1] == "new 2"


async def test_many_rotations_under_a_busy_writer_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"")
    written = 0
    async with tailing(path) as tail:
        for rotation in range(5):
            with path.open("ab") as handle:
                for _ in range(200):
                    handle.write(b"line %d\n" % written)
                    written += 1
                    if written % 50 == 0:
                        handle.flush()
                        await asyncio.sleep(0.005)
                os.rename(path, tmp_path / f"train.log.{rotation}")
                handle.write(b"line %d\n" % written)
                written += 1
            path.write_bytes(b"")
            await asyncio.sleep(0.05)
        await tail.until(lambda: f"line {written - 1}" in tail.texts(), "the last line")
        texts = tail.texts()
    assert texts == [f"line {n}" for n in range(written)]


async def test_truncation_starts_a_new_generation(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"a long first line\nsecond\n")
    async with tailing(path) as tail:
        await tail.lines_until(2)
        with path.open("r+b") as handle:
            handle.truncate(0)
        await tail.until(
            lambda: Rotated(1, "truncated") in tail.events, "the truncation to be seen"
        )
        append(path, b"after\n")
        assert (await tail.lines_until(3))[-1] == "after"
        assert (tail.lines[-1].offset, tail.lines[-1].generation) == (0, 1)


async def test_a_missing_file_waits_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later" / "train.log"
    async with tailing(path, start=None, poll_seconds=0.05) as tail:
        await tail.until(lambda: SourceState.WAITING in tail.statuses(), "waiting")
        waiting = [e for e in tail.events if isinstance(e, SourceStatus)][-1]
        assert "train.log" in waiting.detail
        assert "\n" not in waiting.detail
        path.parent.mkdir()
        path.write_bytes(b"hello\n")
        assert await tail.lines_until(1) == ["hello"]


async def test_a_removed_file_is_drained_then_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"one\n")
    async with tailing(path) as tail:
        await tail.lines_until(1)
        path.unlink()
        await tail.until(lambda: tail.statuses()[-1] is SourceState.WAITING, "waiting")
        path.write_bytes(b"two\n")
        assert await tail.lines_until(2) == ["one", "two"]
        assert tail.statuses()[-1] is SourceState.FOLLOWING


async def test_a_10_mb_line_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"")
    async with tailing(path) as tail:
        started = time.monotonic()
        append(path, b"x" * 10_000_000 + b"\nbad \xff\xfe byte\n")
        texts = await tail.lines_until(2)
        assert time.monotonic() - started < 3
        assert texts[1] == "bad \ufffd\ufffd byte"
        assert tail.lines[0].end == 10_000_001
        assert tail.lines[0].cut > 0
        assert max(len(e.data) for e in tail.events if isinstance(e, Chunk)) <= 1024 * 1024


async def test_a_2_gb_sparse_file_opens_at_its_end_at_once(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("wb") as handle:
        handle.truncate(2 * 1024**3)
        handle.seek(0, os.SEEK_END)
        handle.write(b"".join(b"step %d loss=%0.3f\n" % (n, 1 / (n + 1)) for n in range(500)))
    size = path.stat().st_size
    started = time.monotonic()
    async with tailing(path, start=None) as tail:
        await tail.until(lambda: any(t == "step 499 loss=0.002" for t in tail.texts()), "the end")
        first = next(e for e in tail.events if isinstance(e, Chunk))
        assert first.offset >= size - 64 * 1024
        index = LineIndex(tail.source.read_range)
        await index.open(await tail.source.size(), lines=100)
        last = await index.read_lines(len(index) - 3, len(index))
        assert [line.styled.text for line in last][-1] == "step 499 loss=0.002"
    assert time.monotonic() - started < 2


async def test_not_following_reads_to_the_end_and_ends(tmp_path: Path) -> None:
    path = tmp_path / "done.log"
    path.write_bytes(b"a\nb\nc")
    source = LocalFileSource(path, follow=False)
    events = [e async for e in source.events(0)]
    assert [e.data for e in events if isinstance(e, Chunk)] == [b"a\nb\nc"]
    assert isinstance(events[-1], SourceStatus)
    assert events[-1].state is SourceState.ENDED
    assert await source.read_range(2, 5) == b"b\nc"
    assert await source.size() == 5
    await source.close()


async def test_fifos_and_devices_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO"), (Path("/dev/null"), "device")):
        source = LocalFileSource(path)
        events = [e async for e in source.events()]
        await source.close()
        status = events[-1]
        assert isinstance(status, SourceStatus)
        assert status.state is SourceState.FAILED
        assert kind in status.detail
        assert str(path) in status.detail


async def test_close_ends_a_waiting_iterator_promptly(tmp_path: Path) -> None:
    source = LocalFileSource(tmp_path / "never.log")
    seen: list[SourceEvent] = []

    async def consume() -> None:
        async for event in source.events():
            seen.append(event)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await source.close()
    await asyncio.wait_for(task, 1)
    assert time.monotonic() - started < 1
    assert [e.state for e in seen if isinstance(e, SourceStatus)] == [
        SourceState.OPENING,
        SourceState.WAITING,
    ]
