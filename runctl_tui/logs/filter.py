"""The lines of a followed log that match a pattern (or do not), found across the whole file.

A :class:`LineFilter` scans a :class:`~runctl_tui.logs.document.LogDocument` in the background:
first the newest lines, then backwards through the file to its top (extending the document's
line index as it goes), a batch at a time with the loop free between batches, and it keeps up
with lines as they are appended. A rotation or truncation starts it again.

Matches are kept as byte offsets, 8 bytes a match: offsets stay true when older lines are found
in front (which renumbers every line), so a match is mapped to the document's line number only
when it is shown.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from runctl_tui.logs.decode import LINE_CAP, latest_state, plain_text
from runctl_tui.logs.document import Changed, LogDocument
from runctl_tui.logs.index import LineIndex

log = logging.getLogger(__name__)

BATCH = 2000
"""Lines read and tested between two turns of the event loop."""
BATCH_BYTES = 4 * 1024 * 1024
"""The most bytes read at once for a batch; a batch over it is read line by line."""
_SIMPLE = re.compile(rb"[^\x20-\x7e\n]")
"""A byte that makes a line more than plain ASCII text (controls, escapes, UTF-8)."""


@dataclass(frozen=True, slots=True)
class _Tested:
    """A line read for testing: where it starts and ends, and its text as shown."""

    offset: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class MatchesChanged:
    """What changed in a filter's matches since its listeners last heard."""

    front: int = 0
    """Matches added before the first one (older lines): every match index shifted by this."""
    back: int = 0
    """Matches added at the end."""
    reset: bool = False
    """Every match was dropped (the file was rotated or truncated): the scan starts again."""


MatchesListener = Callable[[MatchesChanged], None]


class _Starts:
    """The start offsets of an index's lines as a sequence, for :mod:`bisect`."""

    def __init__(self, index: LineIndex) -> None:
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, line: int) -> int:
        return self.index.start(line)


class LineFilter:
    """Which lines of a document match ``pattern`` (``invert``: do not), oldest first."""

    def __init__(
        self,
        document: LogDocument,
        pattern: re.Pattern[str],
        *,
        invert: bool = False,
        batch: int = BATCH,
    ) -> None:
        self.document = document
        self.pattern = pattern
        self.invert = invert
        self.batch = max(1, batch)
        self._older = array("q")
        """Matches found scanning backwards, newest first."""
        self._newer = array("q")
        """Matches found among appended lines, oldest first (all after :attr:`_older`)."""
        self._low: int | None = None
        """Every complete line starting at or after this byte (and before :attr:`_high`) was
        tested; ``None`` until the scan has a starting point."""
        self._high: int | None = None
        """Just past the last line tested."""
        self._epoch = 0
        """One more at each reset: a batch read before it is dropped."""
        self._wake = asyncio.Event()
        self._listeners: list[MatchesListener] = []
        self._closed = False
        document.subscribe(self._document_changed)

    # Reading -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._older) + len(self._newer)

    def __getitem__(self, match: int) -> int:
        """Byte offset of match ``match`` (oldest first)."""
        older = len(self._older)
        if match < 0 or match >= older + len(self._newer):
            raise IndexError(match)
        return self._older[older - 1 - match] if match < older else self._newer[match - older]

    def line(self, match: int) -> int | None:
        """The document's line number of match ``match``, oldest first (``None``: no such)."""
        if match < 0 or match >= len(self):
            return None
        return self.document.index.line_at(self[match])

    def view_index(self, line: int) -> int | None:
        """Which match the document's line ``line`` is, if it is one."""
        offset = self._offset_of(line)
        if offset is None:
            return None
        match = bisect.bisect_left(self, offset)
        return match if match < len(self) and self[match] == offset else None

    def nearest(self, line: int) -> int | None:
        """The match at or before the document's line ``line`` (else the first one after):
        where to keep the view when the filter is turned on. ``None`` with no match."""
        if not len(self):
            return None
        offset = self._offset_of(line)
        if offset is None:
            return len(self) - 1 if line >= len(self.document.index) else 0
        return max(0, bisect.bisect_right(self, offset) - 1)

    def _offset_of(self, line: int) -> int | None:
        index = self.document.index
        return index.start(line) if 0 <= line < len(index) else None

    @property
    def scanned(self) -> float:
        """How much of the file known so far was tested, 0 to 1 (by bytes)."""
        end = self.document.index.hi
        if self._low is None or self._high is None or end is None:
            return 0.0
        if end == 0:
            return 1.0
        return min(1.0, (self._high - self._low) / end)

    @property
    def done(self) -> bool:
        """Whether every line of the file, from its top to the last complete one, was tested."""
        index = self.document.index
        return (
            self._low == 0 and index.complete and self._high is not None and self._high == index.hi
        )

    def subscribe(self, listener: MatchesListener) -> None:
        """Call ``listener`` when matches are found or dropped."""
        self._listeners.append(listener)

    def _tell(self, changed: MatchesChanged) -> None:
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:
                log.exception("filter listener failed")

    def _matches(self, line: _Tested) -> bool:
        return (self.pattern.search(line.text) is not None) != self.invert

    async def _read(self, first: int, last: int) -> list[_Tested]:
        """Lines ``first`` to ``last`` (exclusive) of the index as text, without colours."""
        index = self.document.index
        last = min(last, len(index))
        if first >= last:
            return []
        starts = [index.start(n) for n in range(first, last)]
        end = index.span(last - 1)[1]
        widest = max(b - a for a, b in zip(starts, [*starts[1:], end], strict=True))
        if end - starts[0] > BATCH_BYTES or widest > LINE_CAP + 1:
            # Long lines: read as the view would, only as far as is shown.
            return [
                _Tested(line.offset, line.end, line.styled.text)
                for line in await index.read_lines(first, last)
            ]
        base = starts[0]
        data = await index.read_range(base, end)
        if len(data) != end - base:
            return []
        bounds = zip(starts, [*starts[1:], end], strict=True)
        if _SIMPLE.search(data) is None:
            return [_Tested(a, b, data[a - base : b - base - 1].decode("ascii")) for a, b in bounds]
        lines = []
        for a, b in bounds:
            raw = data[a - base : b - base].removesuffix(b"\n")
            lines.append(_Tested(a, b, plain_text(latest_state(raw).decode("utf-8", "replace"))))
        return lines

    # Scanning ----------------------------------------------------------------------------------

    def _document_changed(self, changed: Changed) -> None:
        if changed.reset:
            self._restart()
            self._wake.set()
        elif changed.back:
            self._wake.set()

    def _restart(self) -> None:
        """Drop every match and start the scan again."""
        self._epoch += 1
        had = len(self)
        self._older = array("q")
        self._newer = array("q")
        self._low = self._high = None
        if had:
            self._tell(MatchesChanged(reset=True))

    def _aligned(self, offset: int) -> bool:
        """Whether ``offset`` is where a known line starts, or the end of the last one."""
        index = self.document.index
        if offset == index.hi:
            return True
        line = bisect.bisect_left(_Starts(index), offset)
        return line < len(index) and index.start(line) == offset

    async def run(self) -> None:
        """Scan until :meth:`close`: newest lines first, then back to the top, and every line
        appended meanwhile. Cancelling it leaves the matches found so far."""
        while not self._closed:
            try:
                progressed = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A read failed (the file went away under us): wait for the next change.
                log.warning("%s: filtering failed: %s", self.document.name, exc)
                progressed = False
            if self._closed:
                return
            if progressed:
                await asyncio.sleep(0)
            else:
                await self._wake.wait()
                self._wake.clear()

    def close(self) -> None:
        """Stop scanning; the matches found stay readable."""
        self._closed = True
        self._wake.set()
        # Else the document would keep the filter (and its matches) alive as long as it is open.
        self.document.unsubscribe(self._document_changed)

    async def _step(self) -> bool:
        """Test one batch: appended lines first, then older ones. Whether there was work."""
        index = self.document.index
        low, high = self._low, self._high
        if low is None or high is None or not (self._aligned(low) and self._aligned(high)):
            # Not started, or the index was opened afresh under us (the document's first
            # chunk): start from the newest complete line.
            if index.hi is None:
                return False
            self._restart()
            self._low = self._high = index.hi
        if await self._forward():
            return True
        return await self._backward()

    async def _forward(self) -> bool:
        index = self.document.index
        high = self._high
        assert high is not None
        first = bisect.bisect_left(_Starts(index), high)
        if first >= len(index):
            return False
        epoch = self._epoch
        lines = await self._read(first, first + self.batch)
        if epoch != self._epoch or not lines or lines[0].offset != self._high:
            # Reset, or renumbered while reading: the next step reads it again.
            return epoch == self._epoch
        found = [line.offset for line in lines if self._matches(line)]
        self._newer.extend(found)
        self._high = lines[-1].end
        if found:
            self._tell(MatchesChanged(back=len(found)))
        return True

    async def _backward(self) -> bool:
        index = self.document.index
        low = self._low
        assert low is not None
        last = bisect.bisect_left(_Starts(index), low)
        epoch = self._epoch
        if last == 0:
            if index.complete:
                return False
            # The document's lines are renumbered: its views hear of it.
            grown = await self.document.extend_back(self.batch)
            if epoch != self._epoch:
                return True
            # No line found but not at the top: a long run without newlines, read on.
            return bool(grown) or not index.complete
        first = max(0, last - self.batch)
        lines = await self._read(first, last)
        if epoch != self._epoch or not lines or lines[-1].end != self._low:
            return epoch == self._epoch
        found = [line.offset for line in reversed(lines) if self._matches(line)]
        self._older.extend(found)
        self._low = lines[0].offset
        if found:
            self._tell(MatchesChanged(front=len(found)))
        return True
