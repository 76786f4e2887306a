"""What every log source gives: raw bytes at exact offsets, and how the source is doing.

A source never decodes: it hands over bytes with the offset they start at, in the current
generation of the file (a new generation starts when the file is replaced by rotation or cut
short by truncation). Decoding, line splitting and the line index live elsewhere, so that a
local file and a remote one give the very same lines for the very same bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Chunk:
    """Bytes of the log as read, in order, never overlapping, never with a gap."""

    data: bytes
    offset: int
    """Byte offset of ``data[0]`` in the file of this :attr:`generation`."""
    generation: int = 0
    """0 for the file as first opened; one more each time it was rotated or truncated."""


class SourceState(StrEnum):
    """Where a source stands."""

    OPENING = "opening"
    FOLLOWING = "following"
    WAITING = "waiting"
    """The file does not exist (yet, or any more): the source waits for it to appear."""
    RECONNECTING = "reconnecting"
    """The link to a remote host dropped; reading resumes at the offset reached."""
    ENDED = "ended"
    """Read to its end and told to stop (``follow=False``, or the run is over and drained)."""
    FAILED = "failed"


@dataclass(frozen=True)
class SourceStatus:
    """A change of a source's state, for the pane's status line."""

    state: SourceState
    detail: str = ""
    """One line, already safe to show: why, and what to do about it."""
    attempt: int = 0
    """For :attr:`SourceState.RECONNECTING`: the attempt number, from 1."""


@dataclass(frozen=True)
class Rotated:
    """The file was replaced or truncated: what follows is generation ``generation``."""

    generation: int
    reason: str
    """``rotated`` (a new file under the name) or ``truncated`` (the same file, cut short)."""


SourceEvent = Chunk | SourceStatus | Rotated


@runtime_checkable
class LogSource(Protocol):
    """A log file somewhere: followed as it grows, and read back by range for scrollback."""

    @property
    def name(self) -> str:
        """How the pane names it: a path, or ``host:path``."""
        ...

    def events(self, start: int | None = None) -> AsyncIterator[SourceEvent]:
        """Chunks from byte ``start`` (``None``: from a little before the end, so the newest
        lines show at once) of the current file, then as it grows; statuses and rotations
        as they happen. Ends only when the source is closed or ``follow`` is off."""
        ...

    async def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of the current generation, for scrolling back."""
        ...

    async def size(self) -> int:
        """The current generation's size now."""
        ...

    async def close(self) -> None:
        """Stop following; the iterator of :meth:`events` ends."""
        ...
