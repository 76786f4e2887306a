"""Log lines out of bytes: offsets, breaks, redraws, invalid UTF-8, colours, hostile escapes."""

from __future__ import annotations

import time
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.logs.decode import (
    LINE_CAP,
    Line,
    LineDecoder,
    Span,
    StyledLine,
    TextStyle,
    decode_line,
    style_text,
)
from runctl_tui.logs.source import Chunk


def decode_all(data: bytes, cuts: list[int] | None = None, start: int = 0) -> list[Line]:
    """Every line of ``data`` (starting at byte ``start``), fed in pieces cut at ``cuts``."""
    decoder = LineDecoder(start)
    points = sorted({0, len(data), *(c for c in (cuts or []) if 0 <= c <= len(data))})
    lines: list[Line] = []
    for left, right in zip(points, points[1:], strict=False):
        lines += decoder.feed(Chunk(data[left:right], start + left))
    last = decoder.flush()
    if last is not None:
        lines.append(last)
    return lines


def texts(data: bytes) -> list[str]:
    """Just the text of each line."""
    return [line.styled.text for line in decode_all(data)]


def test_lines_carry_exact_offsets() -> None:
    lines = decode_all(b"one\ntwo\r\nthree\n")
    assert [(line.offset, line.end, line.styled.text) for line in lines] == [
        (0, 4, "one"),
        (4, 9, "two"),
        (9, 15, "three"),
    ]


def test_partial_last_line_is_held_back_until_its_newline() -> None:
    decoder = LineDecoder()
    assert decoder.feed(Chunk(b"step 1\nstep", 0))[0].styled.text == "step 1"
    assert decoder.feed(Chunk(b" 2 loss=0.5", 11)) == []
    partial = decoder.partial()
    assert partial is not None
    assert partial.text == "step 2 loss=0.5"
    [line] = decoder.feed(Chunk(b"\n", 22))
    assert (line.offset, line.end, line.styled.text) == (7, 23, "step 2 loss=0.5")
    assert decoder.flush() is None


def test_flush_gives_a_last_line_without_newline() -> None:
    decoder = LineDecoder()
    decoder.feed(Chunk(b"a\nend", 0))
    last = decoder.flush()
    assert last is not None
    assert (last.offset, last.end, last.styled.text) == (2, 5, "end")


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert texts(b"ok \xff\xfe caf\xc3\xa9 \xe2\x82\n") == ["ok \ufffd\ufffd café \ufffd"]


def test_progress_bar_redrawn_with_carriage_returns_shows_its_latest_state() -> None:
    bar = b"".join(b"\r%3d%%|" % n + b"#" * (n // 10) for n in range(101)) + b"\n"
    assert texts(b"epoch 1\n" + bar) == ["epoch 1", "100%|##########"]
    assert texts(b"a\r\n\r\n") == ["a", ""]
    assert texts(b"long text\rshort\n") == ["short"]


def test_long_redraw_without_newline_holds_only_the_latest_state() -> None:
    decoder = LineDecoder()
    for n in range(10_000):
        decoder.feed(Chunk(b"\r step %05d" % n, decoder.offset))
    assert len(decoder._head) < 20
    assert decoder.partial() == StyledLine(" step 09999")


def test_sgr_becomes_spans_and_other_sequences_are_dropped() -> None:
    line = style_text("\x1b[1;31mERROR\x1b[0m: \x1b[38;5;208mwarm\x1b[39m \x1b[38;2;1;2;3mrgb")
    assert line.text == "ERROR: warm rgb"
    assert line.spans == (
        Span(0, 5, TextStyle(fg="red", bold=True)),
        Span(7, 11, TextStyle(fg="color(208)")),
        Span(12, 15, TextStyle(fg="#010203")),
    )


def test_hostile_sequences_never_reach_the_text() -> None:
    hostile = (
        "a\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write the clipboard
        "b\x1b]0;pwned title\x1b\\"  # window title
        "c\x1b[2J\x1b[H\x1b[10A"  # clear screen, cursor moves
        "d\x07\x9b31m\x9d8;;http://x\x9c"  # bell, C1 CSI and OSC
        "e\x1bPq#0;2;0;0;0\x1b\\"  # DCS (sixel)
        "f\x1b7\x1b(0g\x00\x08\u202e[bold]"  # save cursor, charset, NUL, backspace, bidi override
    )
    line = style_text(hostile)
    assert line.text == "abcdefg\\u202e[bold]"
    assert "\x1b" not in line.text


def test_tabs_expand_to_stops() -> None:
    assert style_text("a\tbc\td").text == "a       bc      d"


def test_a_huge_line_is_cut_for_display_but_offsets_stay_exact() -> None:
    huge = b"x" * 10_000_000
    data = b"before\n" + huge + b"\nafter\n"
    started = time.perf_counter()
    lines = decode_all(data, cuts=list(range(0, len(data), 65_536)))
    assert time.perf_counter() - started < 2
    assert [(line.offset, line.end) for line in lines] == [
        (0, 7),
        (7, 7 + 10_000_001),
        (10_000_008, 10_000_014),
    ]
    big = lines[1]
    assert big.cut == 10_000_000 - LINE_CAP
    assert big.styled.text.startswith("x" * LINE_CAP + " … [")
    assert "more not shown" in big.styled.text


def test_a_chunk_that_does_not_follow_on_starts_at_the_next_line() -> None:
    decoder = LineDecoder()
    lines = decoder.feed(Chunk(b"tail of a line\nwhole\n", 5000))
    assert [(line.offset, line.styled.text) for line in lines] == [(5015, "whole")]
    lines = decoder.feed(Chunk(b"new\n", 0, generation=1))
    assert [(line.offset, line.generation) for line in lines] == [(0, 1)]


def test_decode_line_reads_back_the_same_line_as_the_stream() -> None:
    data = b"\x1b[32mok\x1b[0m\r\x1b[33mredrawn\x1b[0m\r\n" + b"y" * (LINE_CAP + 10) + b"\n"
    streamed = decode_all(data)
    for line in streamed:
        raw = data[line.offset : line.end].removesuffix(b"\n")
        assert decode_line(raw, line.offset, line.end) == line
    prefix = data[streamed[1].offset : streamed[1].offset + LINE_CAP + 1]
    again = decode_line(prefix, streamed[1].offset, streamed[1].end, length=LINE_CAP + 10)
    assert again == streamed[1]


BYTES = st.lists(
    st.sampled_from(
        [b"a", b"\n", b"\r", b"\r\n", b"\x1b[1m", b"\x1b]0;t\x07", b"\xff", b"\xc3\xa9"]
    )
    | st.binary(max_size=8),
    max_size=60,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=BYTES, cuts=st.lists(st.integers(0, 500), max_size=20))
def test_any_chunking_gives_the_same_lines_and_offsets(data: bytes, cuts: list[int]) -> None:
    whole = decode_all(data)
    assert decode_all(data, cuts) == whole
    assert decode_all(data, list(range(len(data)))) == whole
    # Lines tile the bytes: each starts where the last ended, and the last reaches the end.
    ends = [0] + [line.end for line in whole]
    assert [line.offset for line in whole] == ends[:-1]
    assert ends[-1] == len(data)
    for line in whole:
        raw = data[line.offset : line.end].removesuffix(b"\n")
        assert decode_line(raw, line.offset, line.end) == line
        # Printable, or a space of another width (no-break, em...): nothing a terminal obeys.
        assert all(c.isprintable() or unicodedata.category(c) == "Zs" for c in line.styled.text)


@settings(max_examples=100, deadline=None)
@given(data=BYTES, cuts=st.lists(st.integers(0, 500), max_size=10))
def test_small_cap_chunking_is_still_exact(data: bytes, cuts: list[int]) -> None:
    def run(points: list[int]) -> list[Line]:
        decoder = LineDecoder(cap=3)
        marks = sorted({0, len(data), *(c for c in points if c <= len(data))})
        out: list[Line] = []
        for left, right in zip(marks, marks[1:], strict=False):
            out += decoder.feed(Chunk(data[left:right], left))
        return out

    assert run(cuts) == run([])
