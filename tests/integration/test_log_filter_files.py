"""Filtering a followed log file: appends, rotation, and a large file with the loop kept free."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runctl_tui.logs.decode import decode_line
from runctl_tui.logs.document import LogDocument
from runctl_tui.logs.filter import LineFilter, MatchesChanged
from runctl_tui.logs.local import LocalFileSource
from tests.integration.test_log_document import append, until

pytestmark = pytest.mark.integration


def replace(path: Path, text: str) -> None:
    """Rotate ``path`` away and write a new file under its name."""
    path.rename(path.with_suffix(".log.1"))
    path.write_text(text)


def truncate(path: Path) -> None:
    path.write_text("")


def expected(path: Path, pattern: re.Pattern[str], invert: bool = False) -> list[int]:
    """Numbers of the complete lines of the file that should be kept."""
    lines = path.read_bytes().split(b"\n")[:-1]
    return [
        n
        for n, raw in enumerate(lines)
        if (pattern.search(decode_line(raw, 0, 0).styled.text) is not None) != invert
    ]


def shown(line_filter: LineFilter) -> list[int | None]:
    return [line_filter.line(n) for n in range(len(line_filter))]


@contextlib.asynccontextmanager
async def running(
    document: LogDocument, line_filter: LineFilter | None = None
) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(document.run())]
    if line_filter is not None:
        tasks.append(asyncio.create_task(line_filter.run()))
    try:
        yield
    finally:
        if line_filter is not None:
            line_filter.close()
        await document.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.log"
    path.write_text(
        "".join(f"step {n} loss {'nan' if n % 7 == 0 else n / 1000}\n" for n in range(20_000))
    )
    return path


@pytest.mark.parametrize("invert", [False, True])
async def test_appended_lines_are_filtered_and_the_open_line_waits(
    log_file: Path, invert: bool
) -> None:
    pattern = re.compile("nan")
    document = LogDocument(LocalFileSource(log_file))
    line_filter = LineFilter(document, pattern, invert=invert)
    heard: list[MatchesChanged] = []
    line_filter.subscribe(heard.append)
    async with running(document, line_filter):
        await until(lambda: line_filter.done, "the whole file filtered")
        assert shown(line_filter) == expected(log_file, pattern, invert)
        before = len(line_filter)
        append(log_file, "step a loss nan\nstep b loss 0.1\nstep c partial nan")
        await until(lambda: len(document) == 20_002, "the appended lines")
        await until(lambda: len(line_filter) == before + 1, "the appended match")
        assert shown(line_filter) == expected(log_file, pattern, invert)
        assert heard[-1] == MatchesChanged(back=1)
        # The open last line counts once its newline arrives.
        append(log_file, " done\n")
        await until(lambda: len(document) == 20_003, "the completed line")
        await until(lambda: line_filter.done, "the completed line filtered")
        assert shown(line_filter) == expected(log_file, pattern, invert)
        assert len(line_filter) == before + (1 if invert else 2)


async def test_rotation_starts_the_scan_again(log_file: Path) -> None:
    pattern = re.compile("nan")
    document = LogDocument(LocalFileSource(log_file))
    line_filter = LineFilter(document, pattern)
    heard: list[MatchesChanged] = []
    line_filter.subscribe(heard.append)
    async with running(document, line_filter):
        await until(lambda: line_filter.done, "the whole file filtered")
        replace(log_file, "fresh start\nloss nan again\nok\n")
        await until(lambda: any(change.reset for change in heard), "the rotation")
        await until(lambda: line_filter.done and len(document) == 3, "the new file filtered")
        assert shown(line_filter) == [1]
        # Truncation, the same way.
        truncate(log_file)
        await until(lambda: len(line_filter) == 0, "the truncation")
        append(log_file, "nan at the top\n")
        await until(lambda: shown(line_filter) == [0], "the new line")


async def test_a_large_file_is_filtered_without_holding_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("w", encoding="utf-8") as handle:
        for n in range(200_000):
            handle.write(
                f"\x1b[32mstep {n}\x1b[0m loss {1 / (n + 1):.6f} {'nan' if n % 97 else ''}\n"
            )
    pattern = re.compile(r"step 1\d*5 .*nan")
    document = LogDocument(LocalFileSource(path))
    line_filter = LineFilter(document, pattern)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def tick() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        async with running(document, line_filter):
            await until(lambda: len(document) > 0, "the first lines")
            await until(lambda: line_filter.done, "the whole file filtered")
            ticker.cancel()
            assert len(document) == 200_000
            assert shown(line_filter) == expected(path, pattern)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    # A generous sanity bound, not a speed target: no single step held the loop for long.
    assert max(gaps) < 1.0
