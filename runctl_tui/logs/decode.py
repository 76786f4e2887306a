"""Bytes of a log made into lines: split at newlines, decoded, coloured, made safe to show.

Pure and incremental: a :class:`LineDecoder` is fed :class:`~runctl_tui.logs.source.Chunk`\\ s
and gives every complete line with the byte offsets it spans, whatever way the bytes were cut
into chunks. The rules, the same for a live tail and a line read back for scrollback:

- ``\\n`` ends a line; a ``\\r`` before it is part of the break (``\\r\\n``).
- A line redrawn with ``\\r`` (progress bars) is shown as its latest state: the last non-empty
  piece between carriage returns. Only that piece is kept while the line is still open, so a
  progress bar redrawn for hours without a newline holds no more than one state in memory.
- Invalid UTF-8 becomes U+FFFD.
- SGR sequences (colours, bold, ...) become :class:`Span`\\ s; every other escape or control
  sequence (cursor moves, OSC 52 clipboard writes, window titles, the bell, C1 controls) is
  dropped, and what is left is plain text: ``[...]`` is just text, never markup.
- A line longer than :data:`LINE_CAP` bytes is cut for display with a marker; its offsets stay
  exact, and feeding a line of any length costs time linear in its length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from runctl_tui.logs.source import Chunk
from runctl_tui.text import clean

LINE_CAP = 64 * 1024
"""The most bytes of one line shown; the rest is counted, not kept."""
TAB_SIZE = 8


@dataclass(frozen=True, slots=True)
class TextStyle:
    """How a span of a line looks, from SGR codes; colours use names Rich also understands."""

    fg: str | None = None
    """``red``, ``bright_red``, ``color(208)`` or ``#ff8800``; ``None`` for the default."""
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    blink: bool = False
    reverse: bool = False
    strike: bool = False

    @property
    def plain(self) -> bool:
        """Whether this is the terminal's default look (no span needed)."""
        return self == PLAIN


PLAIN = TextStyle()
MARKER_STYLE = TextStyle(dim=True, italic=True)


@dataclass(frozen=True, slots=True)
class Span:
    """``style`` over characters ``start`` to ``end`` of a line's text."""

    start: int
    end: int
    style: TextStyle


@dataclass(frozen=True, slots=True)
class StyledLine:
    """One line's text, plain and safe to show, with its colour spans."""

    text: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    """A complete line of the log and the bytes it spans (its newline included)."""

    offset: int
    """Byte offset of the line's first byte."""
    end: int
    """Byte offset just past the line's newline (past its last byte for a flushed line)."""
    styled: StyledLine
    generation: int = 0
    cut: int = 0
    """Bytes of the line not shown because it was longer than the cap (0: shown whole)."""


_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")

# One alternation, tried left to right at each escape or control character.
_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~])?"  # CSI
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: title, clipboard, links
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # other escapes (charset, save cursor, ...), or a lone ESC
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f]"  # every other C0 and C1 control (tabs are expanded)
)


def _colour(params: list[int], i: int) -> tuple[str | None, int]:
    """The extended colour (``38;5;n`` or ``38;2;r;g;b``) at ``params[i]``, and the next index."""
    if i < len(params) and params[i] == 5 and i + 1 < len(params):
        return f"color({min(params[i + 1], 255)})", i + 2
    if i < len(params) and params[i] == 2 and i + 3 < len(params):
        r, g, b = (min(v, 255) for v in params[i + 1 : i + 4])
        return f"#{r:02x}{g:02x}{b:02x}", i + 4
    return None, len(params)


def apply_sgr(style: TextStyle, raw: str) -> TextStyle:
    """``style`` after the SGR parameters ``raw`` (``"1;31"``, ``"38:5:208"``, ``""``)."""
    try:
        params = [int(p) if p else 0 for p in re.split("[;:]", raw)] if raw else [0]
    except ValueError:
        return style
    i = 0
    while i < len(params):
        code = params[i]
        i += 1
        if code == 0:
            style = PLAIN
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 2:
            style = replace(style, dim=True)
        elif code == 3:
            style = replace(style, italic=True)
        elif code in (4, 21):
            style = replace(style, underline=True)
        elif code in (5, 6):
            style = replace(style, blink=True)
        elif code == 7:
            style = replace(style, reverse=True)
        elif code == 9:
            style = replace(style, strike=True)
        elif code == 22:
            style = replace(style, bold=False, dim=False)
        elif code == 23:
            style = replace(style, italic=False)
        elif code == 24:
            style = replace(style, underline=False)
        elif code == 25:
            style = replace(style, blink=False)
        elif code == 27:
            style = replace(style, reverse=False)
        elif code == 29:
            style = replace(style, strike=False)
        elif 30 <= code <= 37:
            style = replace(style, fg=_COLOURS[code - 30])
        elif 90 <= code <= 97:
            style = replace(style, fg="bright_" + _COLOURS[code - 90])
        elif 40 <= code <= 47:
            style = replace(style, bg=_COLOURS[code - 40])
        elif 100 <= code <= 107:
            style = replace(style, bg="bright_" + _COLOURS[code - 100])
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48):
            colour, i = _colour(params, i)
            if colour is not None:
                style = replace(style, fg=colour) if code == 38 else replace(style, bg=colour)
    return style


def _expand_tabs(piece: str, column: int) -> str:
    """``piece`` with tabs as spaces to the next stop, starting at ``column``."""
    out: list[str] = []
    for n, part in enumerate(piece.split("\t")):
        if n:
            pad = TAB_SIZE - column % TAB_SIZE
            out.append(" " * pad)
            column += pad
        out.append(part)
        column += len(part)
    return "".join(out)


def style_text(text: str) -> StyledLine:
    """Decoded text of one line (no newline, no ``\\r``) as plain text with colour spans."""
    if text.isascii() and text.isprintable():
        return StyledLine(text)
    pieces: list[str] = []
    spans: list[Span] = []
    length = 0
    style = PLAIN

    def add(piece: str) -> None:
        nonlocal length
        if "\t" in piece:
            piece = _expand_tabs(piece, length)
        piece = clean(piece)
        if not piece:
            return
        end = length + len(piece)
        if not style.plain:
            last = spans[-1] if spans else None
            if last is not None and last.end == length and last.style == style:
                spans[-1] = Span(last.start, end, style)
            else:
                spans.append(Span(length, end, style))
        pieces.append(piece)
        length = end

    pos = 0
    for match in _CONTROL.finditer(text):
        if match.start() > pos:
            add(text[pos : match.start()])
        pos = match.end()
        if match.group("final") == "m" and not match.group("inter"):
            style = apply_sgr(style, match.group("params"))
    if pos < len(text):
        add(text[pos:])
    return StyledLine("".join(pieces), tuple(spans))


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover


def render(shown: bytes, cut: int = 0) -> StyledLine:
    """The bytes kept of a line's latest state as a styled line, with a marker if ``cut``."""
    if cut:
        # Cut at the cap: a character split there is dropped, not shown as U+FFFD.
        shown = shown[: _whole_utf8(shown)]
    text = shown.decode("utf-8", "replace")
    styled = style_text(text)
    if not cut:
        return styled
    marker = f" … [{_size_text(cut)} more not shown]"
    start = len(styled.text)
    return StyledLine(
        styled.text + marker, (*styled.spans, Span(start, start + len(marker), MARKER_STYLE))
    )


def _whole_utf8(data: bytes) -> int:
    """Length of ``data`` without a multi-byte character cut short at its end."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte < 0x80:
            return n
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n - back if back < need else n
    return n


def latest_state(raw: bytes) -> bytes:
    """The last non-empty piece of a line between carriage returns (the line if it has none)."""
    raw = raw.rstrip(b"\r")
    cut = raw.rfind(b"\r")
    return raw if cut < 0 else raw[cut + 1 :]


def decode_line(
    raw: bytes, offset: int, end: int, generation: int = 0, length: int | None = None
) -> Line:
    """A line read back (``raw``: its bytes without the newline), made as :class:`LineDecoder` does.

    ``raw`` may be only the first bytes of a long line: ``length`` then says how long it is.
    """
    state = latest_state(raw)
    unseen = 0 if length is None else max(0, length - len(raw))
    shown = state[:LINE_CAP]
    cut = len(state) + unseen - len(shown)
    return Line(offset, end, render(shown, cut), generation, cut)


class LineDecoder:
    """Complete lines out of chunks, with exact offsets; any chunking gives the same lines."""

    def __init__(
        self, offset: int = 0, generation: int = 0, *, align: bool = False, cap: int = LINE_CAP
    ) -> None:
        self.cap = cap
        self.reset(offset, generation, align=align)

    def reset(self, offset: int = 0, generation: int = 0, *, align: bool = False) -> None:
        """Start again at ``offset`` (a new generation after a rotation, or a jump).

        With ``align``, bytes up to the first newline are skipped: ``offset`` is then somewhere
        inside a line (a tail opened near the end), unless it is 0.
        """
        self.generation = generation
        self.offset = offset
        """Where the next chunk must start."""
        self.line_start = offset
        self._skipping = align and offset > 0
        self._head = bytearray()
        self._seg_len = 0
        self._trailing_cr = False

    def feed(self, chunk: Chunk) -> list[Line]:
        """The lines ``chunk`` completes; a chunk that does not follow on restarts the decoder."""
        if chunk.generation != self.generation or chunk.offset != self.offset:
            # A gap or a new generation: what was held of the open line is not a line.
            self.reset(chunk.offset, chunk.generation, align=chunk.offset != 0)
        data = chunk.data
        base = chunk.offset
        self.offset = base + len(data)
        lines: list[Line] = []
        pos = 0
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                self.line_start = self.offset
                return lines
            self._skipping = False
            pos = newline + 1
            self.line_start = base + pos
        bulk_tried = False
        while True:
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._append(data[pos:])
                return lines
            self._append(data[pos:newline])
            lines.append(self._emit(base + newline + 1))
            pos = newline + 1
            if not bulk_tried:
                bulk_tried = True
                pos = self._bulk(data, base, pos, lines)

    def _bulk(self, data: bytes, base: int, pos: int, lines: list[Line]) -> int:
        """Lines of ``data`` from ``pos`` (a line's start, nothing held) up to its last newline,
        all at once when no carriage return is among them: the common case, where each line is
        just its bytes. Where the next line starts."""
        last = data.rfind(b"\n")
        if last < pos or data.find(b"\r", pos, last) >= 0:
            return pos
        cap, generation = self.cap, self.generation
        start = base + pos
        for raw in data[pos:last].split(b"\n"):
            end = start + len(raw) + 1
            if len(raw) > cap:
                cut = len(raw) - cap
                lines.append(Line(start, end, render(raw[:cap], cut), generation, cut))
            else:
                lines.append(Line(start, end, render(raw), generation))
            start = end
        self.line_start = start
        return last + 1

    def flush(self) -> Line | None:
        """The open last line as complete (the log ended without a final newline)."""
        if self._skipping or self.line_start >= self.offset:
            return None
        return self._emit(self.offset)

    def partial(self) -> StyledLine | None:
        """How the open last line looks now (a progress bar being redrawn), if there is one."""
        if self._skipping or self.line_start >= self.offset:
            return None
        return render(bytes(self._head), max(0, self._seg_len - len(self._head)))

    def _append(self, part: bytes) -> None:
        if not part:
            return
        core = part.rstrip(b"\r")
        if core:
            cr = core.rfind(b"\r")
            if cr >= 0 or self._trailing_cr:
                # A carriage return followed by text: the line is redrawn from here.
                core = core[cr + 1 :]
                self._head.clear()
                self._seg_len = 0
            room = self.cap - len(self._head)
            if room > 0:
                self._head += core[:room]
            self._seg_len += len(core)
        self._trailing_cr = part.endswith(b"\r")

    def _emit(self, end: int) -> Line:
        cut = self._seg_len - len(self._head)
        line = Line(self.line_start, end, render(bytes(self._head), cut), self.generation, cut)
        self.line_start = end
        self._head.clear()
        self._seg_len = 0
        self._trailing_cr = False
        return line


def plain_text(text: str) -> str:
    """The text of a decoded line as shown, without its colours: what a filter tests.

    The same text as :func:`style_text` gives, without building spans.
    """
    if text.isascii() and text.isprintable():
        return text
    pieces: list[str] = []
    length = 0
    pos = 0
    for match in [*_CONTROL.finditer(text), None]:
        piece = text[pos : match.start() if match is not None else len(text)]
        if piece:
            if "\t" in piece:
                piece = _expand_tabs(piece, length)
            piece = clean(piece)
            pieces.append(piece)
            length += len(piece)
        if match is not None:
            pos = match.end()
    return "".join(pieces)
