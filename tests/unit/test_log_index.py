"""The line index: built backwards from the end, grown forwards, compact, read back by range."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.logs.decode import LINE_CAP, LineDecoder
from runctl_tui.logs.index import LineIndex, Offsets
from runctl_tui.logs.source import Chunk


class FakeFile:
    """Bytes in memory read by range, counting what was read."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.reads: list[tuple[int, int]] = []

    async def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end``."""
        self.reads.append((start, end))
        return bytes(self.data[start:end])


def true_starts(data: bytes) -> list[int]:
    """Starts of the complete lines of ``data``."""
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == 0x0A]
    return starts[:-1]


def all_starts(index: LineIndex) -> list[int]:
    """Every start the index knows, in order."""
    return [index.start(i) for i in range(len(index))]


def test_offsets_take_about_four_bytes_a_line_and_survive_huge_gaps() -> None:
    offsets = Offsets()
    offsets.extend(list(range(0, 10_000_000 * 100, 100)))
    assert len(offsets) == 10_000_000
    assert offsets.nbytes() < 45_000_000
    assert offsets[9_999_999] == 999_999_900
    far = Offsets()
    far.extend([0, 10, 5 * 2**32, 5 * 2**32 + 1])
    far.append(9 * 2**32)
    assert [far[i] for i in range(5)] == [0, 10, 5 * 2**32, 5 * 2**32 + 1, 9 * 2**32]
    back = Offsets(descending=True)
    back.extend([2**40, 2**40 - 3, 7, 0])
    assert [back[i] for i in range(4)] == [2**40, 2**40 - 3, 7, 0]


async def test_opening_reads_only_the_end() -> None:
    data = b"".join(b"line %08d\n" % n for n in range(1_000_000))  # 14 MB
    file = FakeFile(data)
    index = LineIndex(file.read_range)
    grown = await index.open(len(data), lines=100)
    assert grown.front >= 100
    assert sum(end - start for start, end in file.reads) <= 64 * 1024
    assert not index.complete
    last = len(index) - 1
    assert index.span(last) == (len(data) - 14, len(data))
    [line] = await index.read_lines(last, last + 1)
    assert line.styled.text == "line 00999999"


async def test_scrolling_up_adds_lines_in_front_until_the_top() -> None:
    data = b"".join(b"%d\n" % n for n in range(5000))
    index = LineIndex(FakeFile(data).read_range, block=1000)
    await index.open(len(data), lines=10)
    before = len(index)
    grown = await index.extend_back(lines=50)
    assert grown.front == len(index) - before >= 50
    while not index.complete:
        await index.extend_back(lines=1000)
    assert all_starts(index) == true_starts(data)
    assert index.line_at(0) == 0
    assert index.line_at(len(data) - 1) == 4999


async def test_feeding_chunks_extends_and_partial_lines_wait() -> None:
    file = FakeFile(b"a\nb")
    index = LineIndex(file.read_range)
    await index.open(3)
    assert all_starts(index) == [0]
    assert index.tail == 2
    # A chunk overlapping what was read is trimmed; the partial "b" completes.
    grown = index.feed(Chunk(b"b\nc\nd", 2))
    assert grown.back == 2
    assert all_starts(index) == [0, 2, 4]
    assert index.tail == 6
    file.data[2:] = b"b\nc\nde\nf"
    assert (await index.grow(len(file.data))).back == 1
    assert all_starts(index) == [0, 2, 4, 6]


async def test_no_newline_anywhere_yet() -> None:
    index = LineIndex(FakeFile(b"x" * 300).read_range, block=64)
    await index.open(300)
    assert len(index) == 0
    assert index.complete
    index.feed(Chunk(b"y\nz\n", 300))
    assert all_starts(index) == [0, 302]


async def test_reset_starts_a_new_generation() -> None:
    file = FakeFile(b"one\ntwo\n")
    index = LineIndex(file.read_range)
    await index.open(8)
    index.reset(generation=1)
    index.feed(Chunk(b"new\n", 0, generation=1))
    assert all_starts(index) == [0]
    assert index.generation == 1


async def test_read_lines_decodes_and_cuts_long_lines_without_reading_them_whole() -> None:
    data = b"short\n" + b"z" * 5_000_000 + b"\n\x1b[31mred\x1b[0m\n"
    file = FakeFile(data)
    index = LineIndex(file.read_range)
    await index.open(len(data))
    while not index.complete:
        await index.extend_back(lines=10)
    file.reads.clear()
    lines = await index.read_lines(0, 3)
    assert sum(end - start for start, end in file.reads) < 2 * LINE_CAP
    assert [line.styled.text[:5] for line in lines] == ["short", "zzzzz", "red"]
    assert lines[1].cut == 5_000_000 - LINE_CAP
    assert [(line.offset, line.end) for line in lines] == [
        (0, 6),
        (6, 5_000_007),
        (5_000_007, len(data)),
    ]


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"\n", b"ab", b"\r\n", b"xyz\n", b"q"]), max_size=80).map(
        b"".join
    ),
    split=st.integers(0, 400),
    block=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 400), max_size=10),
    lines=st.integers(0, 5),
)
def test_any_order_of_backward_and_forward_steps_finds_every_line(
    data: bytes, split: int, block: int, cuts: list[int], lines: int
) -> None:
    split = min(split, len(data))

    async def run() -> None:
        file = FakeFile(data)
        index = LineIndex(file.read_range, block=block)
        await index.open(split, lines=lines)
        points = sorted({split, len(data), *(c for c in cuts if split <= c <= len(data))})
        for left, right in zip(points, points[1:], strict=False):
            index.feed(Chunk(data[left:right], left))
            await index.extend_back(lines=1)
        while not index.complete:
            await index.extend_back(lines=3)
        assert all_starts(index) == true_starts(data)
        assert index.tail == (data.rfind(b"\n") + 1)
        decoder = LineDecoder()
        expected = decoder.feed(Chunk(data, 0))
        assert await index.read_lines(0, len(index)) == expected

    asyncio.run(run())


async def test_seal_makes_the_open_last_line_a_line() -> None:
    file = FakeFile(b"a\nbb\nlast")
    index = LineIndex(file.read_range)
    index.feed(Chunk(bytes(file.data), 0))
    assert len(index) == 2
    assert index.seal().back == 1
    assert index.span(2) == (5, 9)
    assert [line.styled.text for line in await index.read_lines(0, 3)] == ["a", "bb", "last"]
    assert index.seal().back == 0


async def test_open_without_lines_reads_nothing_until_asked() -> None:
    file = FakeFile(b"x\n" * 1000)
    index = LineIndex(file.read_range)
    await index.open(1500, lines=0)
    assert file.reads == []
    index.feed(Chunk(bytes(file.data[1500:]), 1500))
    # The line at 1500 is known only once the bytes before it are read.
    assert len(index) == 249
    assert (await index.extend_back(100)).front >= 100
    assert index.start(0) % 2 == 0
