"""The filter core: the matching lines of a whole file, found backwards from its end."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runctl_tui.logs.decode import decode_line
from runctl_tui.logs.document import Changed, LogDocument
from runctl_tui.logs.filter import LineFilter, MatchesChanged
from runctl_tui.logs.local import LocalFileSource

WAIT = 10.0


def brute_force(data: bytes, pattern: re.Pattern[str], invert: bool) -> list[int]:
    """Numbers of the complete lines of ``data`` the filter should keep."""
    lines = data.split(b"\n")[:-1]
    return [
        n
        for n, raw in enumerate(lines)
        if (pattern.search(decode_line(raw, 0, 0).styled.text) is not None) != invert
    ]


async def read_to_end(path: Path, *, block: int = 256) -> LogDocument:
    """A document over ``path`` read to its end (not followed), opened near the end."""
    document = LogDocument(LocalFileSource(path, follow=False, watch=False, tail_bytes=100))
    document.index.block = block
    await document.run()
    return document


async def finish(line_filter: LineFilter) -> list[int]:
    """Run ``line_filter`` until it has tested the whole file; its matches' line numbers."""
    task = asyncio.create_task(line_filter.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not line_filter.done:
            assert loop.time() < deadline, "the filter did not finish"
            await asyncio.sleep(0)
    finally:
        line_filter.close()
        await asyncio.wait_for(task, WAIT)
    return [line for line in map(line_filter.line, range(len(line_filter))) if line is not None]


LINE = st.builds(
    lambda text, junk: text.replace("\x1b", "\x1b[31m").encode() + junk,
    st.text(alphabet="ab1 [\x1b\r\t\u200b\xe9\u4e2d", max_size=12),
    st.sampled_from([b"", b"", b"\xff", b"\xe4\xb8"]),
)
PATTERNS = st.sampled_from(
    ["a", "^b", "1$", r"\[", "a+b", "^$", "31m", "x", "  ", r"\\u200b", "\u4e2d", "\ufffd"]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(LINE, max_size=400),
    tail=st.sampled_from([b"", b"open a", b"\n"]),
    pattern=PATTERNS,
    invert=st.booleans(),
    batch=st.integers(1, 50),
)
def test_matches_equal_a_brute_force_filter(
    lines: list[bytes], tail: bytes, pattern: str, invert: bool, batch: int
) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail
    compiled = re.compile(pattern)

    async def scenario(path: Path) -> None:
        document = await read_to_end(path)
        line_filter = LineFilter(document, compiled, invert=invert, batch=batch)
        assert await finish(line_filter) == brute_force(data, compiled, invert)
        assert line_filter.scanned == 1.0
        await document.close()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.log"
        path.write_bytes(data)
        asyncio.run(scenario(path))


async def test_older_matches_are_told_as_added_in_front(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("".join(f"step {n}{' nan' if n % 10 == 0 else ''}\n" for n in range(3000)))
    document = await read_to_end(path)
    known = len(document)
    assert known < 3000
    renumbered: list[Changed] = []
    document.subscribe(renumbered.append)
    heard: list[MatchesChanged] = []
    line_filter = LineFilter(document, re.compile("nan"), batch=100)
    line_filter.subscribe(heard.append)
    assert await finish(line_filter) == list(range(0, 3000, 10))
    # The newest are found first, then older ones, each batch in front of the last.
    assert heard
    assert all(change.front and not change.back for change in heard)
    assert sum(change.front for change in heard) == 300
    # Lines found by reading back were told to the document's other listeners.
    assert sum(change.front for change in renumbered) == 3000 - known
    assert line_filter.view_index(20) == 2
    assert line_filter.view_index(21) is None
    assert line_filter.nearest(25) == 2
    assert line_filter.nearest(2999) == 299
    assert line_filter.line(300) is None
    await document.close()


async def test_an_empty_file_is_done_at_once(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"")
    document = await read_to_end(path)
    line_filter = LineFilter(document, re.compile("x"))
    assert await finish(line_filter) == []
    assert len(line_filter) == 0
    assert line_filter.nearest(0) is None
    await document.close()


@pytest.mark.parametrize("invert", [False, True])
async def test_a_long_line_without_newlines_is_read_through(tmp_path: Path, invert: bool) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"first nan\n" + b"x" * 300_000 + b"\nlast\n")
    document = await read_to_end(path, block=4096)
    line_filter = LineFilter(document, re.compile("nan"), invert=invert)
    assert await finish(line_filter) == ([1, 2] if invert else [0])
    await document.close()
