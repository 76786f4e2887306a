"""The parts of a zip archive an inspection needs: its central directory and a member or two.

Only the end-of-central-directory record, the central directory and the members asked for are
read; tensor data is never touched. Every claim the archive makes (member count, directory
size, member sizes and offsets) is checked against the file and against caps before anything
is allocated for it, so a forged header costs a one-line refusal, not memory.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from runctl_tui.checkpoints.inspect_io import FormatError, Reads, read_exact
from runctl_tui.checkpoints.inspect_model import clip_name, human_bytes

MAX_MEMBERS = 1_000_000
"""More members than this is not a checkpoint (a model with 1M tensors is far beyond any seen)."""
MAX_DIRECTORY_BYTES = 256 * 1024 * 1024
"""Largest central directory read."""

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_EOCD_SIZE = 22
_CENTRAL_SIZE = 46
_LOCAL_SIZE = 30
_MAX_COMMENT = 0xFFFF
_STORED = 0
_DEFLATED = 8
_LOCAL_SLACK = 128
"""Extra bytes read past a member's local header guess, so one read usually gets header and data."""


@dataclass(frozen=True)
class ZipMember:
    """One entry of the central directory."""

    name: str
    offset: int
    """Offset of its local file header."""
    compressed_size: int
    size: int
    method: int
    name_length: int


def read_directory(size: int) -> Reads[list[ZipMember]]:
    """The archive's members, from its end records and central directory."""
    tail_length = min(size, _EOCD_SIZE + _MAX_COMMENT + 20)
    tail_start = size - tail_length
    tail = yield from read_exact(tail_start, size)
    position = _find_eocd(tail)
    if position < 0:
        raise FormatError("truncated or damaged zip: no end-of-central-directory record")
    (_, disk, _, _, count, directory_size, directory_offset, _) = struct.unpack_from(
        "<4sHHHHIIH", tail, position
    )
    directory_end = tail_start + position
    if disk == 0xFFFF or count == 0xFFFF or 0xFFFFFFFF in (directory_size, directory_offset):
        if position < 20 or tail[position - 20 : position - 16] != _EOCD64_LOCATOR:
            raise FormatError("damaged zip: zip64 end record missing")
        (record_offset,) = struct.unpack_from("<Q", tail, position - 20 + 8)
        if record_offset + 56 > directory_end - 20:
            raise FormatError("damaged zip: zip64 end record outside the file")
        record = yield from read_exact(record_offset, record_offset + 56)
        if record[:4] != _EOCD64:
            raise FormatError("damaged zip: bad zip64 end record")
        count, directory_size, directory_offset = struct.unpack_from("<QQQ", record, 32)
        directory_end = record_offset
    if count > MAX_MEMBERS:
        raise FormatError(f"zip directory claims {count:,} members (limit {MAX_MEMBERS:,})")
    if directory_size > MAX_DIRECTORY_BYTES:
        raise FormatError(
            f"zip directory claims {human_bytes(directory_size)}"
            f" (limit {human_bytes(MAX_DIRECTORY_BYTES)})"
        )
    if directory_size < count * _CENTRAL_SIZE:
        raise FormatError(
            f"damaged zip: {count:,} members cannot fit in a {directory_size:,}-byte directory"
        )
    if directory_offset + directory_size > directory_end:
        raise FormatError("truncated or damaged zip: central directory lies outside the file")
    if directory_offset >= tail_start:
        start = directory_offset - tail_start
        directory = tail[start : start + directory_size]
    else:
        directory = yield from read_exact(directory_offset, directory_offset + directory_size)
    return _parse_directory(directory, count, directory_offset)


def _find_eocd(tail: bytes) -> int:
    position = tail.rfind(_EOCD)
    while position >= 0:
        if position + _EOCD_SIZE <= len(tail):
            (comment,) = struct.unpack_from("<H", tail, position + 20)
            if position + _EOCD_SIZE + comment <= len(tail):
                return position
        position = tail.rfind(_EOCD, 0, position)
    return -1


def _parse_directory(directory: bytes, count: int, data_end: int) -> list[ZipMember]:
    members: list[ZipMember] = []
    position = 0
    for index in range(count):
        if directory[position : position + 4] != _CENTRAL or (
            position + _CENTRAL_SIZE > len(directory)
        ):
            raise FormatError(f"damaged zip directory at entry {index:,}")
        (flags, method) = struct.unpack_from("<HH", directory, position + 8)
        (compressed, size, name_length, extra_length, comment_length) = struct.unpack_from(
            "<IIHHH", directory, position + 20
        )
        (offset,) = struct.unpack_from("<I", directory, position + 42)
        name_start = position + _CENTRAL_SIZE
        raw_name = directory[name_start : name_start + name_length]
        extra = directory[name_start + name_length : name_start + name_length + extra_length]
        if len(raw_name) != name_length or len(extra) != extra_length:
            raise FormatError(f"damaged zip directory at entry {index:,}")
        size, compressed, offset = _zip64_fields(extra, size, compressed, offset)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        if offset + _LOCAL_SIZE + compressed > data_end:
            raise FormatError(
                f"damaged zip: member {clip_name(name, 80)!r} claims"
                f" {human_bytes(compressed)} beyond the end of the data"
            )
        members.append(ZipMember(clip_name(name), offset, compressed, size, method, name_length))
        position = name_start + name_length + extra_length + comment_length
    return members


def _zip64_fields(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        if tag == 0x0001:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        position += 4 + length
    return size, compressed, offset


def read_member(
    member: ZipMember, file_size: int, limit: int, prefix: int | None = None
) -> Reads[bytes]:
    """A member's bytes (at most ``limit`` once inflated), or only its first ``prefix`` stored or
    compressed bytes."""
    if member.method not in (_STORED, _DEFLATED):
        raise FormatError(
            f"{clip_name(member.name, 80)!r}: compression method {member.method} not supported"
        )
    largest = max(member.size, member.compressed_size)
    if prefix is None and largest > limit:
        raise FormatError(
            f"{clip_name(member.name, 80)!r} is {human_bytes(largest)},"
            f" over the {human_bytes(limit)} limit"
        )
    wanted = member.compressed_size if prefix is None else min(prefix, member.compressed_size)
    guess_end = member.offset + _LOCAL_SIZE + member.name_length + _LOCAL_SLACK + wanted
    first = yield from read_exact(member.offset, min(file_size, guess_end))
    if len(first) < _LOCAL_SIZE or first[:4] != _LOCAL:
        raise FormatError(f"damaged zip: no local header for {clip_name(member.name, 80)!r}")
    name_length, extra_length = struct.unpack_from("<HH", first, 26)
    start = _LOCAL_SIZE + name_length + extra_length
    if member.offset + start + wanted > file_size:
        raise FormatError(f"truncated zip: {clip_name(member.name, 80)!r} runs past the end")
    if start + wanted <= len(first):
        data = first[start : start + wanted]
    else:
        rest = yield from read_exact(member.offset + len(first), member.offset + start + wanted)
        data = (first + rest)[start:]
    if member.method == _STORED:
        return data
    try:
        inflater = zlib.decompressobj(-15)
        return inflater.decompress(data, limit)
    except zlib.error as exc:
        raise FormatError(f"damaged zip: {clip_name(member.name, 80)!r}: {exc}") from None
