"""A followed log as the pane sees it: lines, read-back, metrics, errors, rotation, search."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from runctl_tui.logs.document import Changed, LogDocument
from runctl_tui.logs.errors import ErrorKind
from runctl_tui.logs.local import LocalFileSource
from runctl_tui.logs.source import SourceState

pytestmark = pytest.mark.integration
WAIT = 10.0
LINES = 50_000


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait on the loop for ``condition``; fail after :data:`WAIT` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


@pytest.fixture
async def followed(tmp_path: Path) -> AsyncIterator[tuple[LogDocument, Path, list[Changed]]]:
    """A document following ``train.log``, which holds 50,000 lines to start with."""
    path = tmp_path / "train.log"
    path.write_text("".join(f"step {n} loss {3 - n / 50000:.4f}\n" for n in range(LINES)))
    document = LogDocument(LocalFileSource(path), window=300)
    seen: list[Changed] = []
    document.subscribe(seen.append)
    task = asyncio.create_task(document.run())
    await until(lambda: len(document) > 0, "the first lines")
    try:
        yield document, path, seen
    finally:
        await document.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_opens_at_the_end_and_reads_older_lines_back(
    followed: tuple[LogDocument, Path, list[Changed]],
) -> None:
    document, _, _ = followed
    known = len(document)
    assert 0 < known < LINES, "the file was not read from the top"
    last = len(document) - 1
    await until(lambda: document.get(last) is not None, "the last line")
    line = document.get(last)
    assert line is not None
    assert line.styled.text == "step 49999 loss 2.0000"
    # The first line known is read back on demand, and asking near it finds older ones.
    assert document.get(0) is None
    await until(lambda: document.get(0) is not None, "line 0")
    await until(lambda: len(document) > known, "older lines found")


async def test_appended_lines_metrics_and_errors(
    followed: tuple[LogDocument, Path, list[Changed]],
) -> None:
    document, path, seen = followed
    before = len(document)
    append(path, "{'loss': 0.41, 'learning_rate': 2e-05, 'epoch': 1.5}\n")
    append(path, 'Traceback (most recent call last):\n  File "train.py", line 3\n')
    append(path, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    await until(lambda: len(document) == before + 4, "the new lines")
    assert dict(document.metrics)["loss"] == pytest.approx(0.41)
    assert document.errors_seen == 2
    assert document.last_error is not None
    assert document.last_error[0] is ErrorKind.CUDA_OOM
    assert [e for e in (c.error for c in seen) if e][-1] is ErrorKind.CUDA_OOM
    errors = document.error_lines()
    assert errors == [before + 1, before + 3]
    assert document.status.state is SourceState.FOLLOWING


async def test_a_rotated_log_starts_again(
    followed: tuple[LogDocument, Path, list[Changed]],
) -> None:
    document, path, seen = followed
    path.rename(path.with_suffix(".log.1"))
    path.write_text("fresh start\n")
    await until(lambda: any(c.reset for c in seen), "the rotation")
    await until(lambda: len(document) == 1, "the new file's line")
    await until(lambda: document.get(0) is not None, "line 0 of the new file")
    line = document.get(0)
    assert line is not None
    assert line.styled.text == "fresh start"


async def test_search_reads_the_whole_file(
    followed: tuple[LogDocument, Path, list[Changed]],
) -> None:
    document, _, _ = followed
    found = await document.find(re.compile(r"^step 12 "), len(document), backwards=True)
    assert found is not None
    # Searching backwards found the top of the file: every line is now known.
    assert len(document) == LINES
    assert found == 12
    again = await document.find(re.compile(r"^step 49990 "), found)
    assert again == 49990
    assert await document.find(re.compile("no such line"), 0) is None


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for n in range(int(sys.argv[2])):
    os.write(fd, b"step %d loss 1.0\\n" % n)
os.write(fd, sys.argv[3].encode())
"""


@pytest.mark.parametrize("last", ["the last line\n", "the last line, no newline"])
async def test_finish_after_the_writer_exits_loses_no_line(tmp_path: Path, last: str) -> None:
    import subprocess
    import sys

    path = tmp_path / "run.log"
    path.write_text("started\n")
    # Slow polling and no watcher: the last lines must come from draining, not from luck.
    source = LocalFileSource(path, watch=False, poll_seconds=30.0)
    document = LogDocument(source)
    seen: list[Changed] = []
    document.subscribe(seen.append)
    task = asyncio.create_task(document.run())
    await until(lambda: document.status.state is SourceState.FOLLOWING, "following")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), "20000", last, stdout=subprocess.DEVNULL
    )
    assert await child.wait() == 0
    async with asyncio.timeout(WAIT):
        await document.finish("the run exited (code 0)")
        await task
    total = 20_002
    assert len(document) == total
    line = document.get(total - 1)
    if line is None:
        await until(lambda: document.get(total - 1) is not None, "the last line read back")
        line = document.get(total - 1)
    assert line is not None
    assert line.styled.text == last.rstrip("\n")
    assert document.index.span(total - 1)[1] == path.stat().st_size
    assert document.metrics.step == 19999
    assert document.status.state is SourceState.ENDED
    assert document.status.detail == "the run exited (code 0)"
    assert seen[-1].status


async def test_finish_when_not_running_returns_at_once(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_text("x\n")
    document = LogDocument(LocalFileSource(path))
    async with asyncio.timeout(2):
        await document.finish("over")


async def test_errors_kept_are_bounded_and_counted(tmp_path: Path) -> None:
    from runctl_tui.logs import document as module

    path = tmp_path / "run.log"
    path.write_text("".join("Traceback (most recent call last):\n" for _ in range(300)))
    source = LocalFileSource(path, follow=False, tail_bytes=1 << 30)
    saved = module.MAX_ERRORS
    module.MAX_ERRORS = 100
    try:
        document = LogDocument(source)
    finally:
        module.MAX_ERRORS = saved
    async with asyncio.timeout(WAIT):
        await document.run()
    assert document.errors_seen == 300
    assert document.error_lines() == list(range(200, 300))
