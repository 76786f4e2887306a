"""One followed log: its source, the line index, a window of decoded lines, metrics and errors.

The file is the store: memory holds the line index (a few bytes a line) and a bounded window of
decoded lines; lines outside it are read back by range when asked for. Views ask with
:meth:`LogDocument.get` and never wait: a line not held yet is ``None`` and is loaded in the
background, after which the listeners hear of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from runctl_tui.logs.decode import Line, LineDecoder, StyledLine, decode_line
from runctl_tui.logs.errors import ErrorKind, StallDetector, classify
from runctl_tui.logs.index import LineIndex
from runctl_tui.logs.metrics import MetricsSeries
from runctl_tui.logs.source import Chunk, LogSource, Rotated, SourceState, SourceStatus
from runctl_tui.text import one_line

log = logging.getLogger(__name__)

WINDOW = 5000
"""Decoded lines kept in memory; the rest are read back from the file when shown."""
READ_AROUND = 200
"""Lines read back at once around a line asked for."""
SEARCH_BATCH = 2000
"""Lines read back per step of a search."""
DEFAULT_STALL_SECONDS = 300.0
SLICE_BYTES = 8 * 1024
"""Bytes decoded (and parsed for metrics and errors) between two turns of the event loop."""
FIRST_SCREEN = 120
"""Lines at the end of the opening chunk decoded and shown before anything else is done."""
MAX_ERRORS = 10_000
"""Error lines whose places are kept (the newest); :attr:`LogDocument.errors_seen` counts all."""


@dataclass(frozen=True, slots=True)
class DocLine:
    """A line of the log as the view shows it."""

    styled: StyledLine
    error: ErrorKind | None = None
    offset: int = 0
    """Byte offset of the line in its generation of the file."""


@dataclass(frozen=True, slots=True)
class Changed:
    """What changed since the listeners last heard."""

    front: int = 0
    """Lines added before the first one (older lines found): indexes shifted by this."""
    back: int = 0
    """Lines added at the end."""
    loaded: bool = False
    """Lines asked for were read back; redraw."""
    reset: bool = False
    """The file was rotated or truncated: every index is new."""
    status: bool = False
    """:attr:`LogDocument.status` changed."""
    error: ErrorKind | None = None
    """An error pattern appeared in a new line (the newest such line is :attr:`last_error`)."""


Listener = Callable[[Changed], None]


class LogDocument:
    """A log followed from its end, readable anywhere, bounded in memory however long it runs."""

    def __init__(
        self,
        source: LogSource,
        *,
        window: int = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
    ) -> None:
        self.source = source
        self.window = window
        self.index = LineIndex(source.read_range)
        self.decoder = LineDecoder()
        self.metrics = MetricsSeries(clock=clock)
        self.stall = StallDetector(stall_seconds, clock)
        self.status = SourceStatus(SourceState.OPENING)
        self.generation = 0
        self.errors_seen = 0
        self.last_error: tuple[ErrorKind, str] | None = None
        """The newest error line seen while following: its kind and its text (safe)."""
        self._errors: deque[int] = deque(maxlen=MAX_ERRORS)
        """Byte offsets (this generation) of the newest error lines seen while following."""
        self._cache: OrderedDict[int, DocLine] = OrderedDict()
        """Decoded lines by byte offset, oldest use first."""
        self._loading: set[int] = set()
        self._listeners: list[Listener] = []
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self._ran = asyncio.Event()
        self._ending: str | None = None

    @property
    def name(self) -> str:
        """The source's name."""
        return self.source.name

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` on every change (on the loop that runs :meth:`run`)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener`` (nothing happens if it was not subscribed)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def extend_back(self, lines: int) -> int:
        """Index up to ``lines`` more lines before the first one known, telling the listeners
        (every index shifts); how many were found."""
        grown = (await self.index.extend_back(lines)).front
        if grown:
            self._tell(Changed(front=grown))
        return grown

    def _tell(self, changed: Changed) -> None:
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:
                log.exception("log listener failed")

    # Reading -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index)

    def get(self, index: int) -> DocLine | None:
        """Line ``index`` if held; else ``None``, and it is read back in the background."""
        if index < 0 or index >= len(self.index):
            return None
        offset = self.index.start(index)
        line = self._cache.get(offset)
        if line is not None:
            self._cache.move_to_end(offset)
            return line
        self._load_around(index)
        return None

    def partial(self) -> StyledLine | None:
        """The open last line as it looks now (a progress bar being redrawn), if any."""
        return self.decoder.partial()

    def error_lines(self) -> list[int]:
        """Indexes of the error lines seen while following, oldest first."""
        found = []
        for offset in self._errors:
            line = self.index.line_at(offset)
            if line is not None:
                found.append(line)
        return found

    def _remember(self, line: Line) -> DocLine:
        kind = classify(line.styled.text)
        shown = DocLine(line.styled, kind, line.offset)
        self._cache[line.offset] = shown
        self._cache.move_to_end(line.offset)
        while len(self._cache) > self.window:
            self._cache.popitem(last=False)
        return shown

    def _load_around(self, index: int) -> None:
        first = max(0, index - READ_AROUND // 2)
        if first in self._loading or self._closed:
            return
        self._loading.add(first)
        task = asyncio.get_running_loop().create_task(self._load(first, first + READ_AROUND))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, first: int, last: int) -> None:
        generation = self.index.generation
        asked = first
        try:
            grown = 0
            if first < READ_AROUND and not self.index.complete:
                # Near the first line known: find older ones, and read them with the rest.
                grown = (await self.index.extend_back(READ_AROUND)).front
                last += grown
            lines = await self.index.read_lines(first, last)
        except Exception as exc:
            log.warning("%s: reading back lines failed: %s", self.name, exc)
            return
        finally:
            self._loading.discard(asked)
        if generation != self.index.generation:
            return
        for line in lines:
            if line.offset not in self._cache:
                self._remember(line)
        self._tell(Changed(front=grown, loaded=True))

    async def find(
        self, pattern: re.Pattern[str], start: int, *, backwards: bool = False
    ) -> int | None:
        """The next line from ``start`` (not included) matching ``pattern``, reading back
        through the file as far as needed; ``None`` when there is none."""
        step = -1 if backwards else 1
        index = start + step
        while True:
            if backwards and index < 0:
                if self.index.complete:
                    return None
                grown = (await self.index.extend_back(SEARCH_BATCH)).front
                if not grown:
                    return None
                self._tell(Changed(front=grown))
                index += grown
                continue
            if not backwards and index >= len(self.index):
                return None
            first, last = (
                (max(0, index - SEARCH_BATCH + 1), index + 1)
                if backwards
                else (index, index + SEARCH_BATCH)
            )
            lines = await self.index.read_lines(first, last)
            order = range(len(lines) - 1, -1, -1) if backwards else range(len(lines))
            for n in order:
                if pattern.search(lines[n].styled.text):
                    return first + n
            index = first - 1 if backwards else first + len(lines)
            if not lines:
                return None

    # Following ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the log until :meth:`close`: lines, rotations and the source's state.

        The source starts a little before the end; the index is opened backwards from where
        the first chunk starts, so the file is never read from the top to find its end.
        """
        self._running = True
        try:
            await self._follow()
        finally:
            self._running = False
            self._ran.set()

    async def _follow(self) -> None:
        opened = False
        ended: SourceStatus | None = None
        async for event in self.source.events(None):
            if self._closed:
                break
            if isinstance(event, Chunk):
                first = not opened
                if first:
                    opened = True
                    await self._open_at(event)
                await self._take(event, newest_first=first)
            elif isinstance(event, Rotated):
                self._rotated(event)
                opened = True
            elif event.state is SourceState.ENDED:
                # Said once the last line is in, below.
                ended = event
            else:
                self.status = event
                self._tell(Changed(status=True))
        tail = self.decoder.flush()
        if tail is not None:
            # The run ended without a final newline: its last line still counts.
            # Once the run is over (see :meth:`finish`), it is a line of the index too.
            sealed = self._ending is not None and tail.end == self.index.size
            grown = self.index.seal() if sealed else None
            self._account(self._remember(tail), tail.styled.text)
            self._tell(Changed(back=grown.back if grown else 0, loaded=True))
        if ended is not None:
            if self._ending is not None and not ended.detail:
                ended = SourceStatus(SourceState.ENDED, one_line(self._ending, 300))
            self.status = ended
            self._tell(Changed(status=True))

    async def finish(self, reason: str) -> None:
        """The run is over: read the file to its very end now (no waiting for the watcher or
        the next poll), deliver every line (a last one without a newline too), then end with
        :attr:`SourceState.ENDED` and ``reason`` as its detail. Returns once :meth:`run` has
        returned (at once if it is not running)."""
        self._ending = reason
        finish = getattr(self.source, "finish", None)
        if finish is not None:
            await finish(one_line(reason, 300))
        else:
            await self.source.close()
        if self._running:
            await self._ran.wait()

    async def _open_at(self, first: Chunk) -> None:
        """Start the index where ``first`` starts, and decode from it on. The lines before it
        are found (reading backwards) only once the last lines are shown: see :meth:`_take`."""
        self.generation = first.generation
        await self.index.open(first.offset, lines=0, generation=first.generation)
        # A chunk starting inside a line: that line is known to the index, not decoded live.
        self.decoder.reset(first.offset, first.generation, align=first.offset > 0)

    async def _index_back(self) -> None:
        """Index some lines before the opening chunk, reading backwards from it."""
        generation = self.index.generation
        try:
            grown = await self.index.extend_back(READ_AROUND)
        except Exception as exc:
            log.warning("%s: reading back from the end failed: %s", self.name, exc)
            return
        if grown.front and generation == self.index.generation:
            self._tell(Changed(front=grown.front, loaded=True))

    def _show_last(self, chunk: Chunk) -> None:
        """Decode the last lines the index knows straight from ``chunk``'s bytes, so that the
        newest screenful is there before the chunk is decoded (with metrics) from its start."""
        count = len(self.index)
        for index in range(max(0, count - FIRST_SCREEN), count):
            start, end = self.index.span(index)
            if start < chunk.offset or start in self._cache:
                continue
            raw = chunk.data[start - chunk.offset : end - chunk.offset].removesuffix(b"\n")
            self._remember(decode_line(raw, start, end, chunk.generation))

    async def _take(self, chunk: Chunk, *, newest_first: bool = False) -> None:
        """Index ``chunk`` at once (so its lines can be shown by reading them back), then
        decode it in slices, letting the loop run between them: a flood of output never
        holds the interface for longer than one slice. With ``newest_first`` (the chunk a
        log is opened with), its last lines are read back and shown before the rest."""
        if chunk.generation != self.index.generation:
            self._rotated(Rotated(chunk.generation, "rotated"))
        grown = self.index.feed(chunk)
        if newest_first:
            # Opening: the last lines are what is shown first; only then are older lines
            # looked for, and the whole chunk decoded (metrics and errors) from its start.
            self._show_last(chunk)
            self._tell(Changed(back=grown.back, loaded=True))
            await asyncio.sleep(0)
            if not self.index.complete:
                await self._index_back()
        elif grown.back:
            self._tell(Changed(back=grown.back))
        if chunk.data:
            self.stall.grew()
        newest: ErrorKind | None = None
        data, base = chunk.data, chunk.offset
        for start in range(0, max(1, len(data)), SLICE_BYTES):
            piece = Chunk(data[start : start + SLICE_BYTES], base + start, chunk.generation)
            for line in self.decoder.feed(piece):
                shown = self._remember(line)
                if self._account(shown, line.styled.text):
                    newest = shown.error
            if start + SLICE_BYTES < len(data):
                await asyncio.sleep(0)
                if self._closed or self.index.generation != chunk.generation:
                    return
        self._tell(Changed(loaded=True, error=newest))

    def _account(self, shown: DocLine, text: str) -> bool:
        """Feed a new line to the metrics and note it if it is an error; whether it is."""
        self.metrics.take(text)
        if shown.error is None:
            return False
        self.errors_seen += 1
        self._errors.append(shown.offset)
        self.last_error = (shown.error, one_line(text, 200))
        return True

    def _rotated(self, event: Rotated) -> None:
        self.generation = event.generation
        self.index.reset(event.generation)
        self.decoder.reset(0, event.generation)
        self._cache.clear()
        self._errors.clear()
        self._tell(Changed(reset=True))

    async def close(self) -> None:
        """Stop following; reads in flight are abandoned."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.source.close()
