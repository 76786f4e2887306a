"""Where each line of a log file starts, known lazily from the end, in about 4 bytes a line.

A multi-GB log opens at its end at once: :meth:`LineIndex.open` reads blocks backwards from
the end only until it knows enough lines to fill the view, :meth:`LineIndex.extend_back` goes
further as the user scrolls up, and :meth:`LineIndex.feed` (bytes a source just sent) or
:meth:`LineIndex.grow` (bytes read) adds lines as the file grows. The bytes of the lines in view
are read back through a ``read_range(start, end)`` coroutine, so a remote file works the same.

Lines are numbered from the first line known, not from the top of the file: a backward step
adds lines in front, and says how many, so a view can keep its place.
"""

from __future__ import annotations

from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runctl_tui.logs.decode import LINE_CAP, Line, decode_line
from runctl_tui.logs.source import Chunk

ReadRange = Callable[[int, int], Awaitable[bytes]]
"""``read_range(start, end)``: bytes ``start`` to ``end`` of the file (fewer at its end)."""

BLOCK_BYTES = 64 * 1024
"""How much one backward step reads."""
SCAN_BUDGET = 8 * 1024 * 1024
"""The most bytes one backward call reads, so a file with no newlines cannot stall it."""
_GROUP = 1024
"""Offsets per base value: a full 64-bit base for each group, 32-bit deltas within it."""
_FAR = 0xFFFFFFFF
"""A delta too large for 32 bits: the offset is then kept in a small side table."""


class Offsets:
    """A growing list of monotonic byte offsets in 4 bytes each (8 bytes per 1,024 more)."""

    def __init__(self, descending: bool = False) -> None:
        self.descending = descending
        self._bases = array("Q")
        self._deltas = array("I")
        self._far: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._deltas)

    def __getitem__(self, index: int) -> int:
        delta = self._deltas[index]
        if delta == _FAR:
            return self._far[index]
        base = self._bases[index // _GROUP]
        return base - delta if self.descending else base + delta

    def append(self, offset: int) -> None:
        """Add ``offset`` (larger than the last, or smaller if descending)."""
        n = len(self._deltas)
        if n % _GROUP == 0:
            self._bases.append(offset)
            self._deltas.append(0)
            return
        base = self._bases[-1]
        delta = base - offset if self.descending else offset - base
        if delta >= _FAR:
            self._far[n] = offset
            delta = _FAR
        self._deltas.append(delta)

    def extend(self, offsets: list[int]) -> None:
        """Add many offsets, in order."""
        pos = 0
        while pos < len(offsets):
            n = len(self._deltas)
            if n % _GROUP == 0:
                self._bases.append(offsets[pos])
            room = _GROUP - n % _GROUP
            part = offsets[pos : pos + room]
            base = self._bases[-1]
            deltas = [base - o for o in part] if self.descending else [o - base for o in part]
            if deltas[-1] >= _FAR:
                for offset, delta in zip(part, deltas, strict=True):
                    if delta >= _FAR:
                        self._far[len(self._deltas)] = offset
                    self._deltas.append(min(delta, _FAR))
            else:
                self._deltas.extend(deltas)
            pos += len(part)

    def nbytes(self) -> int:
        """Memory the offsets take (arrays, not counting the rare far table)."""
        return (
            self._bases.buffer_info()[1] * self._bases.itemsize
            + self._deltas.buffer_info()[1] * self._deltas.itemsize
        )


@dataclass(frozen=True)
class Grown:
    """What a step changed: lines added in front (renumbering) and at the end."""

    front: int = 0
    back: int = 0


class LineIndex:
    """Start offsets of the complete lines known of one generation of a file."""

    def __init__(
        self, read_range: ReadRange, generation: int = 0, *, block: int = BLOCK_BYTES
    ) -> None:
        self.read_range = read_range
        self.block = block
        """How much one backward step reads."""
        self.reset(generation)

    def reset(self, generation: int = 0) -> None:
        """Forget everything: the file was rotated or truncated (a new generation from 0)."""
        self.generation = generation
        self._back = Offsets(descending=True)
        """Line starts found going backwards, newest first."""
        self._fwd = Offsets()
        """Line starts found going forwards, oldest first."""
        self.size = 0
        """Bytes of the file seen (read backwards at open, or fed since)."""
        self.lo = 0
        """The first known line's start."""
        self.hi: int | None = 0
        """Just past the last complete line's newline (``None``: no newline found yet)."""
        self._scan = 0
        """Bytes ``_scan..lo`` were read backwards and hold no newline (but for ``lo - 1``)."""

    @property
    def complete(self) -> bool:
        """Whether the index reaches the top of the file."""
        return self._scan == 0

    @property
    def tail(self) -> int:
        """Where the open last line starts (the bytes after the last newline)."""
        return self.size if self.hi is None else self.hi

    def __len__(self) -> int:
        return len(self._back) + len(self._fwd)

    def start(self, index: int) -> int:
        """Byte offset where line ``index`` starts."""
        behind = len(self._back)
        if index < 0 or index >= behind + len(self._fwd):
            raise IndexError(index)
        return self._back[behind - 1 - index] if index < behind else self._fwd[index - behind]

    def span(self, index: int) -> tuple[int, int]:
        """Bytes ``(start, end)`` of line ``index``, its newline included."""
        end = self.start(index + 1) if index + 1 < len(self) else self.hi
        assert end is not None
        return self.start(index), end

    def line_at(self, offset: int) -> int | None:
        """The line holding byte ``offset``, if it is known and complete."""
        if not len(self) or offset < self.start(0) or self.hi is None or offset >= self.hi:
            return None
        low, high = 0, len(self) - 1
        while low < high:
            mid = (low + high + 1) // 2
            if self.start(mid) <= offset:
                low = mid
            else:
                high = mid - 1
        return low

    def nbytes(self) -> int:
        """Memory the offsets take."""
        return self._back.nbytes() + self._fwd.nbytes()

    async def open(self, size: int, lines: int = 200, generation: int | None = None) -> Grown:
        """Start at the end of a file of ``size`` bytes, knowing at least ``lines`` lines."""
        self.reset(self.generation if generation is None else generation)
        if size <= 0:
            return Grown()
        self.size = self._scan = self.lo = size
        self.hi = None
        return await self.extend_back(lines)

    async def extend_back(self, lines: int = 200, budget: int = SCAN_BUDGET) -> Grown:
        """Read backwards until ``lines`` more lines are known, the top is reached, or
        ``budget`` bytes were read; the lines are added in front."""
        added = 0
        spent = 0
        while self._scan > 0 and added < lines and spent < budget:
            start = max(0, self._scan - self.block)
            data = await self.read_range(start, self._scan)
            if len(data) != self._scan - start:
                # The file shrank under us: what is known stays true for the caller to reset.
                break
            spent += len(data)
            found: list[int] = []
            newline = data.rfind(b"\n")
            while newline >= 0:
                offset = start + newline + 1
                if self.hi is None:
                    self.hi = self.lo = offset
                elif offset < self.lo:
                    found.append(offset)
                newline = data.rfind(b"\n", 0, newline)
            if start == 0:
                if self.hi is None:
                    self.hi = self.lo = 0
                elif (found[-1] if found else self.lo) > 0:
                    found.append(0)
            if found:
                self._back.extend(found)
                self.lo = found[-1]
                added += len(found)
            self._scan = start
        return Grown(front=added)

    def feed(self, chunk: Chunk) -> Grown:
        """Add the lines completed by bytes a source sent; bytes already seen are skipped."""
        if chunk.generation != self.generation:
            raise ValueError(f"chunk of generation {chunk.generation}, index at {self.generation}")
        end = chunk.offset + len(chunk.data)
        if chunk.offset > self.size:
            raise ValueError(f"gap: chunk at byte {chunk.offset}, index at {self.size}")
        if end <= self.size:
            return Grown()
        data = chunk.data[self.size - chunk.offset :] if chunk.offset < self.size else chunk.data
        base = self.size
        self.size = end
        found: list[int] = []
        newline = data.find(b"\n")
        while newline >= 0:
            offset = base + newline + 1
            if self.hi is None:
                # The newline ending a line that began before what was scanned backwards.
                self.lo = offset
            else:
                found.append(self.hi)
            self.hi = offset
            newline = data.find(b"\n", newline + 1)
        self._fwd.extend(found)
        return Grown(back=len(found))

    def seal(self) -> Grown:
        """The file ended without a final newline: its open last line counts as a line (no
        more bytes are fed after this)."""
        if self.hi is None or self.size <= self.hi:
            return Grown()
        self._fwd.append(self.hi)
        self.hi = self.size
        return Grown(back=1)

    async def grow(self, size: int) -> Grown:
        """Read bytes from what was seen up to ``size`` and add their lines."""
        added = 0
        while self.size < size:
            data = await self.read_range(self.size, min(size, self.size + 1024 * 1024))
            if not data:
                break
            added += self.feed(Chunk(data, self.size, self.generation)).back
        return Grown(back=added)

    async def read_lines(self, first: int, last: int, cap: int = LINE_CAP) -> list[Line]:
        """Lines ``first`` to ``last`` (exclusive), read back and decoded.

        Consecutive short lines are read in one range; a line longer than ``cap`` is read only
        as far as is shown.
        """
        first = max(0, first)
        last = min(last, len(self))
        lines: list[Line] = []
        index = first
        while index < last:
            start, end = self.span(index)
            if end - start > cap + 1:
                raw = await self.read_range(start, start + cap + 1)
                length = end - start - 1
                lines.append(decode_line(raw[:length], start, end, self.generation, length))
                index += 1
                continue
            run_end = index + 1
            stop = end
            # Following short lines come in the same read, up to a bounded size.
            while run_end < last and stop - start < 1024 * 1024:
                next_end = self.span(run_end)[1]
                if next_end - stop > cap + 1:
                    break
                stop = next_end
                run_end += 1
            data = await self.read_range(start, stop)
            for n in range(index, run_end):
                line_start, line_end = self.span(n)
                raw = data[line_start - start : line_end - start].removesuffix(b"\n")
                lines.append(decode_line(raw, line_start, line_end, self.generation))
            index = run_end
        return lines
