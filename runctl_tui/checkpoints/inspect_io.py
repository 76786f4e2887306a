"""The reads an inspection asks for, and the one error type every format reports damage with.

Inspection is written as generators that *yield* the byte ranges they need and are *sent* the
bytes back (a "sans-I/O" design): the same code runs over a local file, an SFTP handle or an S3
object, synchronously or on an event loop, and reads only the ranges it asks for.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Read:
    """Bytes ``[start, end)`` of a file; ``member`` names a file inside a checkpoint directory."""

    start: int
    end: int
    member: str = ""
    """Path relative to the directory being inspected; empty for the inspected file itself."""


Reads = Generator[Read, bytes, T]
"""A step of an inspection: yields :class:`Read` requests, is sent their bytes, returns ``T``."""


class FormatError(Exception):
    """Damage or a refused claim in a checkpoint; the message is one line, without the file name."""


class ReadFailed(FormatError):
    """The storage failed to return the bytes asked for (I/O error, lost connection)."""


def read_exact(start: int, end: int) -> Reads[bytes]:
    """Bytes ``[start, end)``, or :class:`FormatError` when fewer come back (file shrank)."""
    if end <= start:
        return b""
    data = yield Read(start, end)
    if len(data) != end - start:
        raise FormatError(
            f"truncated: expected {end - start:,} bytes at offset {start:,}, got {len(data):,}"
        )
    return data
