"""Scalars from TensorBoard event files, read incrementally, without TensorBoard or protobuf.

An event file (``events.out.tfevents.*``) is a sequence of TFRecords: a little-endian uint64
length, the masked CRC32C of those 8 bytes, the data, and the masked CRC32C of the data. Each
record's data is a serialized ``Event`` protobuf; scalars sit in its ``Summary`` either as the
old ``simple_value`` (what PyTorch's ``SummaryWriter.add_scalar`` writes by default) or as a
one-element ``TensorProto`` under a value whose metadata names the ``scalars`` plugin (PyTorch
with ``new_style=True``, TensorFlow 2's ``tf.summary.scalar``, which names the plugin only on a
tag's first value in a file).

The reader keeps the offset where its last complete record ended and reads on from there, in
bounded blocks: a file is never loaded whole, and a poll costs what was appended since the last.
A record still being written waits for the next poll. A record that fails its checksum is
skipped with a note; a damaged header is skipped by scanning for the next valid one, and a file
with no valid record where one should be stops with a one-line reason. Nothing here raises on
bad bytes.

Checksums: the 8-byte length checksum is checked on every record (it is what keeps the framing
trustworthy). The data checksum, pure Python at about 10 MB/s, is checked on the records that
give scalars and on the first record, not on images, histograms or graphs whose bytes are only
skipped: that is what makes a 150 MB file of images (the case where TensorBoard's own Python
reader takes about 24 s) quick, while every value shown has been verified.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runctl_tui.text import clean, one_line

if TYPE_CHECKING:
    import asyncssh

EVENT_FILE_PREFIX = "events.out.tfevents."
"""How every event file name starts: ``events.out.tfevents.<time>.<host>...``."""
BLOCK_BYTES = 4 * 1024 * 1024
"""How much one read asks for: bounds memory per read, and reads per poll."""
POLL_BYTES = 64 * 1024 * 1024
"""The most bytes one :meth:`TfEventsReader.poll` goes through; the next poll carries on."""
MAX_READ_RECORD = 64 * 1024 * 1024
"""Records larger than this (graphs, embeddings) are stepped over without being read."""
MAX_RECORD = 2**31
"""Protobuf messages cannot be larger: a length beyond it is damage, whatever its checksum."""
RESYNC_LIMIT = 16 * 1024 * 1024
"""How far past damage the reader looks for the next valid record before it gives up."""
MAX_NOTES = 100
"""Notes kept until taken; older ones are dropped (the count of skipped records is kept)."""

_HEADER = 12
_FOOTER = 4
_MASK_DELTA = 0xA282EAD8
_SCALARS_PLUGIN = "scalars"
_DATA_CLASS_SCALAR = 1

_POLY = 0x82F63B78  # CRC32C (Castagnoli), reflected


def _tables() -> list[list[int]]:
    first = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        first.append(crc)
    tables = [first]
    for _ in range(7):
        previous = tables[-1]
        tables.append([(value >> 8) ^ first[value & 0xFF] for value in previous])
    return tables


_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _tables()


def crc32c(data: bytes, crc: int = 0) -> int:
    """The CRC32C (Castagnoli) of ``data``, continuing from ``crc``."""
    crc ^= 0xFFFFFFFF
    size = len(data)
    cut = size - (size & 7)
    t0, t1, t2, t3, t4, t5, t6, t7 = _T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7
    if cut:
        # Slicing-by-8: one 64-bit word per step instead of one byte.
        for (word,) in struct.iter_unpack("<Q", data[:cut]):
            word ^= crc
            crc = (
                t7[word & 0xFF]
                ^ t6[(word >> 8) & 0xFF]
                ^ t5[(word >> 16) & 0xFF]
                ^ t4[(word >> 24) & 0xFF]
                ^ t3[(word >> 32) & 0xFF]
                ^ t2[(word >> 40) & 0xFF]
                ^ t1[(word >> 48) & 0xFF]
                ^ t0[word >> 56]
            )
    for byte in data[cut:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The CRC32C of ``data`` masked as TFRecord framing stores it."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ScalarPoint:
    """One scalar value of one tag at one step."""

    tag: str
    """Already safe to show (control characters escaped)."""
    step: int
    wall_time: float
    """Seconds since the epoch, as the writer stamped the event."""
    value: float


class _Malformed(Exception):
    """The bytes are not the protobuf they should be."""


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise _Malformed
    byte = buf[pos]
    pos += 1
    if byte < 0x80:
        return byte, pos
    result = byte & 0x7F
    shift = 7
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, end: int, wire: int) -> int:
    """The position after a field of wire type ``wire`` whose value starts at ``pos``."""
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 2:
        size, pos = _varint(buf, pos, end)
        pos += size
    elif wire == 5:
        pos += 4
    else:
        raise _Malformed
    if pos > end:
        raise _Malformed
    return pos


def _delimited(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    size, pos = _varint(buf, pos, end)
    stop = pos + size
    if stop > end:
        raise _Malformed
    return pos, stop


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_UNPACK_F = struct.Struct("<f").unpack_from
_UNPACK_D = struct.Struct("<d").unpack_from

# TensorProto dtypes a scalar can have, with the struct format of their tensor_content.
_CONTENT_FORMATS = {
    1: "<f",  # DT_FLOAT
    2: "<d",  # DT_DOUBLE
    3: "<i",  # DT_INT32
    4: "<B",  # DT_UINT8
    5: "<h",  # DT_INT16
    6: "<b",  # DT_INT8
    9: "<q",  # DT_INT64
    10: "<?",  # DT_BOOL
    19: "<e",  # DT_HALF
    22: "<I",  # DT_UINT32
    23: "<Q",  # DT_UINT64
}
_DT_HALF = 19
_DT_BFLOAT16 = 14


def _packed(buf: bytes, pos: int, end: int, wire: int, width: int, fmt: str) -> list[float]:
    """Numbers of a repeated fixed-width field, packed (wire 2) or one by one."""
    if wire == 2:
        start, stop = _delimited(buf, pos, end)
        if (stop - start) % width:
            raise _Malformed
        return [float(v) for (v,) in struct.iter_unpack(fmt, buf[start:stop])]
    if wire != (5 if width == 4 else 1) or pos + width > end:
        raise _Malformed
    return [float(struct.unpack_from(fmt, buf, pos)[0])]


def _varints(buf: bytes, pos: int, end: int, wire: int) -> list[int]:
    """Numbers of a repeated varint field, packed or one by one."""
    if wire == 0:
        return [_varint(buf, pos, end)[0]]
    if wire != 2:
        raise _Malformed
    start, stop = _delimited(buf, pos, end)
    values = []
    while start < stop:
        value, start = _varint(buf, start, stop)
        values.append(value)
    return values


def _tensor_scalar(buf: bytes, pos: int, end: int) -> float | None:
    """The value of a one-element numeric ``TensorProto``, else ``None``."""
    dtype = 0
    elements = 1
    content: bytes | None = None
    values: list[float] = []
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(buf, pos, end)
        elif field == 2 and wire == 2:
            start, stop = _delimited(buf, pos, end)
            elements *= _shape_elements(buf, start, stop)
            pos = stop
        elif field == 4 and wire == 2:
            start, stop = _delimited(buf, pos, end)
            content = buf[start:stop]
            pos = stop
        elif field == 5:
            values += _packed(buf, pos, end, wire, 4, "<f")
            pos = _skip(buf, pos, end, wire)
        elif field == 6:
            values += _packed(buf, pos, end, wire, 8, "<d")
            pos = _skip(buf, pos, end, wire)
        elif field in (7, 11, 13):  # int_val, bool_val, half_val (its bits, as int32)
            raw = _varints(buf, pos, end, wire)
            if field == 13 or dtype in (_DT_HALF, _DT_BFLOAT16):
                values += [_half(v, dtype) for v in raw]
            else:
                values += [float(_int32(v)) for v in raw]
            pos = _skip(buf, pos, end, wire)
        elif field == 10:  # int64_val
            values += [float(_signed64(v)) for v in _varints(buf, pos, end, wire)]
            pos = _skip(buf, pos, end, wire)
        else:
            pos = _skip(buf, pos, end, wire)
    if elements != 1:
        return None
    if content is not None:
        fmt = _CONTENT_FORMATS.get(dtype)
        if dtype == _DT_BFLOAT16 and len(content) == 2:
            return _half(int.from_bytes(content, "little"), dtype)
        if fmt is None or len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, content)[0])
    return values[0] if len(values) == 1 else None


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _half(bits: int, dtype: int) -> float:
    if dtype == _DT_BFLOAT16:
        return float(struct.unpack("<f", ((bits & 0xFFFF) << 16).to_bytes(4, "little"))[0])
    return float(struct.unpack("<e", (bits & 0xFFFF).to_bytes(2, "little"))[0])


def _shape_elements(buf: bytes, pos: int, end: int) -> int:
    """How many elements a ``TensorShapeProto`` holds (1 for a scalar's empty shape)."""
    elements = 1
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 2 and wire == 2:
            start, stop = _delimited(buf, pos, end)
            size = 1
            while start < stop:
                dim_key, start = _varint(buf, start, stop)
                if dim_key == 0x08:
                    size, start = _varint(buf, start, stop)
                    size = _signed64(size)
                else:
                    start = _skip(buf, start, stop, dim_key & 7)
            elements *= size
            pos = stop
        elif field == 3 and wire == 0:
            unknown, pos = _varint(buf, pos, end)
            if unknown:
                return -1
        else:
            pos = _skip(buf, pos, end, wire)
    return elements


def _metadata(buf: bytes, pos: int, end: int) -> tuple[str | None, int]:
    """The plugin name and data class of a ``SummaryMetadata``."""
    plugin: str | None = None
    data_class = 0
    while pos < end:
        key, pos = _varint(buf, pos, end)
        if key == 0x0A:  # plugin_data
            start, stop = _delimited(buf, pos, end)
            while start < stop:
                inner, start = _varint(buf, start, stop)
                if inner == 0x0A:  # plugin_name
                    a, b = _delimited(buf, start, stop)
                    plugin = buf[a:b].decode("utf-8", "replace")
                    start = b
                else:
                    start = _skip(buf, start, stop, inner & 7)
            pos = stop
        elif key == 0x20:  # data_class
            data_class, pos = _varint(buf, pos, end)
        else:
            pos = _skip(buf, pos, end, key & 7)
    return plugin, data_class


@dataclass
class _Event:
    wall_time: float
    step: int
    file_version: str | None
    values: list[tuple[str, float]]


class _Decoder:
    """Event protobufs to scalars, remembering which plugin each tag belongs to."""

    def __init__(self) -> None:
        self._tags: dict[bytes, str] = {}
        self._plugins: dict[bytes, str] = {}

    def tag(self, raw: bytes) -> str:
        """The tag as safe text, decoded once per distinct tag."""
        text = self._tags.get(raw)
        if text is None:
            text = clean(raw.decode("utf-8", "replace"))
            if len(self._tags) < 100_000:
                self._tags[raw] = text
        return text

    def event(self, buf: bytes, pos: int, end: int) -> _Event:
        """The parts of the ``Event`` in ``buf[pos:end]`` that matter here."""
        wall_time = 0.0
        step = 0
        file_version: str | None = None
        values: list[tuple[str, float]] = []
        while pos < end:
            key = buf[pos]
            if key < 0x80:  # every key used here fits one byte: skip the call
                pos += 1
            else:
                key, pos = _varint(buf, pos, end)
            if key == 0x09:  # wall_time, double
                if pos + 8 > end:
                    raise _Malformed
                wall_time = _UNPACK_D(buf, pos)[0]
                pos += 8
            elif key == 0x10:  # step, int64
                raw, pos = _varint(buf, pos, end)
                step = _signed64(raw)
            elif key == 0x1A:  # file_version
                start, pos = _delimited(buf, pos, end)
                file_version = buf[start:pos].decode("utf-8", "replace")
            elif key == 0x2A:  # summary
                start, pos = _delimited(buf, pos, end)
                self._summary(buf, start, pos, values)
            else:
                pos = _skip(buf, pos, end, key & 7)
        return _Event(wall_time, step, file_version, values)

    def _summary(self, buf: bytes, pos: int, end: int, out: list[tuple[str, float]]) -> None:
        while pos < end:
            key = buf[pos]
            if key < 0x80:  # every key used here fits one byte: skip the call
                pos += 1
            else:
                key, pos = _varint(buf, pos, end)
            if key == 0x0A:  # value
                start, pos = _delimited(buf, pos, end)
                found = self._value(buf, start, pos)
                if found is not None:
                    out.append(found)
            else:
                pos = _skip(buf, pos, end, key & 7)

    def _value(self, buf: bytes, pos: int, end: int) -> tuple[str, float] | None:
        raw_tag = b""
        simple: float | None = None
        tensor: tuple[int, int] | None = None
        plugin: str | None = None
        data_class = 0
        while pos < end:
            key = buf[pos]
            if key < 0x80:  # every key used here fits one byte: skip the call
                pos += 1
            else:
                key, pos = _varint(buf, pos, end)
            if key == 0x0A:  # tag
                start, pos = _delimited(buf, pos, end)
                raw_tag = buf[start:pos]
            elif key == 0x15:  # simple_value, float
                if pos + 4 > end:
                    raise _Malformed
                simple = _UNPACK_F(buf, pos)[0]
                pos += 4
            elif key == 0x42:  # tensor
                start, pos = _delimited(buf, pos, end)
                tensor = (start, pos)
            elif key == 0x4A:  # metadata
                start, pos = _delimited(buf, pos, end)
                plugin, data_class = _metadata(buf, start, pos)
            else:
                pos = _skip(buf, pos, end, key & 7)
        if plugin is not None and len(self._plugins) < 100_000:
            self._plugins[raw_tag] = plugin
        if simple is not None:
            return self.tag(raw_tag), simple
        if tensor is None:
            return None
        # TensorFlow 2 names the plugin only with a tag's first value in a file.
        known = self._plugins.get(raw_tag)
        if known != _SCALARS_PLUGIN and data_class != _DATA_CLASS_SCALAR:
            return None
        value = _tensor_scalar(buf, tensor[0], tensor[1])
        return None if value is None else (self.tag(raw_tag), value)


def decode_scalars(data: bytes) -> list[ScalarPoint]:
    """The scalars in one serialized ``Event`` (no framing); ``[]`` if it is not one."""
    try:
        event = _Decoder().event(data, 0, len(data))
    except (_Malformed, struct.error, IndexError):
        return []
    return [ScalarPoint(tag, event.step, event.wall_time, v) for tag, v in event.values]


class _Stream:
    """The reading state of one event file, fed bytes from wherever the file is."""

    def __init__(self, name: str, block_bytes: int, poll_bytes: int) -> None:
        shown = one_line(name, 4096)
        # A long path keeps its end: the file's name says which one it is.
        self.name = shown if len(shown) <= 120 else "…" + shown[-119:]
        self.offset = 0
        self.file_version: str | None = None
        self.stopped: str | None = None
        self.error: str | None = None
        self.notes: list[str] = []
        self.skipped = 0
        self.records = 0
        self._block = block_bytes
        self._poll_bytes = poll_bytes
        self._need = 0
        self._corrupt_from: int | None = None
        self._decoder = _Decoder()
        self._headers: dict[bytes, bool] = {}
        self._budget = 0
        self._size = 0

    # -- the poll cycle: start(size), then read what want() names and feed() it until None

    def start(self, size: int) -> bool:
        """Begin a poll at file size ``size``; ``False`` when there is nothing to do."""
        if self.stopped is not None:
            return False
        if size < self.offset:
            self._stop(f"it shrank from {self.offset} to {size} bytes (replaced or truncated)")
            return False
        self._size = size
        self._budget = self._poll_bytes
        return True

    def want(self) -> tuple[int, int] | None:
        """The byte range to read next in this poll, or ``None`` when the poll is done."""
        if self.stopped is not None or self._budget <= 0:
            return None
        available = self._size - self.offset
        if available <= 0 or available < self._need:
            return None
        return self.offset, self.offset + min(available, max(self._block, self._need))

    def feed(self, data: bytes, points: list[ScalarPoint]) -> None:
        """Take the bytes of the range :meth:`want` named; complete records become points."""
        start = self.offset
        self._need = 0
        if not data:
            self._budget = 0
            return
        pos = self._records(data, start, points)
        self.offset = start + pos
        self._budget -= max(pos, 1)
        if pos == 0 and self._need == 0:
            self._budget = 0

    def _records(self, data: bytes, start: int, points: list[ScalarPoint]) -> int:
        """Parse the complete records in ``data`` (read at ``start``); the bytes consumed."""
        pos = 0
        size = len(data)
        headers = self._headers
        while size - pos >= _HEADER and self.stopped is None:
            header = data[pos : pos + _HEADER]
            valid = headers.get(header)
            if valid is None:
                valid = _header_valid(header)
                if len(headers) > 65_536:
                    headers.clear()
                headers[header] = valid
            length = int.from_bytes(header[:8], "little")
            if not valid or length >= MAX_RECORD:
                found = self._resync(data, start, pos)
                if found is None:
                    return max(pos, size - _HEADER + 1) if self.stopped is None else pos
                pos = found
                continue
            total = _HEADER + length + _FOOTER
            if self._corrupt_from is not None:
                self._resynced(start + pos)
            if length > MAX_READ_RECORD:
                if start + pos + total > self._size:
                    self._need = 0
                    self._budget = 0
                    return pos
                self._note(start + pos, f"stepped over a {length}-byte record, too large to read")
                return pos + total
            if size - pos < total:
                self._need = total
                return pos
            self._record(data, start + pos, pos + _HEADER, pos + _HEADER + length, points)
            pos += total
        return pos

    def _record(
        self, data: bytes, at: int, begin: int, end: int, points: list[ScalarPoint]
    ) -> None:
        first = at == 0
        try:
            event = self._decoder.event(data, begin, end)
        except (_Malformed, struct.error, IndexError):
            event = None
        if event is None or event.values or first:
            stored = int.from_bytes(data[end : end + _FOOTER], "little")
            if masked_crc32c(data[begin:end]) != stored:
                self.skipped += 1
                self._note(at, "skipped a corrupt record (data checksum mismatch)")
                return
        if event is None:
            self.skipped += 1
            self._note(at, "skipped a record that is not a readable event")
            return
        self.records += 1
        if event.file_version is not None and self.file_version is None:
            self.file_version = clean(event.file_version)
        for tag, value in event.values:
            points.append(ScalarPoint(tag, event.step, event.wall_time, value))

    def _resync(self, data: bytes, start: int, pos: int) -> int | None:
        """The position of the next valid record header after damage at ``pos``, if any."""
        if start + pos == 0:
            self._stop("not a TensorBoard event file (no valid record at its start)")
            return None
        if self._corrupt_from is None:
            self._corrupt_from = start + pos
        size = len(data)
        search = pos + 1
        while True:
            # Lengths under 4 GiB have four zero high bytes: a cheap filter before the checksum.
            index = data.find(b"\0\0\0\0", search + 4)
            if index < 0 or index - 4 + _HEADER > size:
                break
            candidate = index - 4
            search = candidate + 1
            header = data[candidate : candidate + _HEADER]
            length = int.from_bytes(header[:8], "little")
            if length >= MAX_RECORD or not _header_valid(header):
                continue
            end = candidate + _HEADER + length
            if end + _FOOTER <= size and masked_crc32c(data[candidate + _HEADER : end]) != (
                int.from_bytes(data[end : end + _FOOTER], "little")
            ):
                continue
            return candidate
        reached = start + max(pos, size - _HEADER + 1)
        if reached - self._corrupt_from > RESYNC_LIMIT:
            self._stop(
                f"damaged at offset {self._corrupt_from} and no valid record in the "
                f"{RESYNC_LIMIT // (1024 * 1024)} MiB after it"
            )
        return None

    def _resynced(self, at: int) -> None:
        assert self._corrupt_from is not None
        skipped = at - self._corrupt_from
        self.skipped += 1
        self._note(self._corrupt_from, f"skipped {skipped} damaged bytes (bad record header)")
        self._corrupt_from = None

    def _note(self, at: int, what: str) -> None:
        if len(self.notes) >= MAX_NOTES:
            del self.notes[0]
        self.notes.append(f"{self.name}: {what} at offset {at}")

    def _stop(self, why: str) -> None:
        self.stopped = f"{self.name}: stopped reading: {why}"

    def failed(self, exc: BaseException) -> None:
        """A read went wrong: keep the reason, try again at the next poll."""
        reason = one_line(str(exc) or type(exc).__name__, 160)
        self.error = f"{self.name}: cannot read: {reason}"
        self._budget = 0


def _header_valid(header: bytes) -> bool:
    return masked_crc32c(header[:8]) == int.from_bytes(header[8:12], "little")


class _ReaderBase:
    def __init__(self, name: str, block_bytes: int, poll_bytes: int) -> None:
        self._stream = _Stream(name, block_bytes, poll_bytes)

    @property
    def name(self) -> str:
        """The file's name as given, safe to show."""
        return self._stream.name

    @property
    def offset(self) -> int:
        """Where the last complete record ended: the next poll reads on from here."""
        return self._stream.offset

    @property
    def file_version(self) -> str | None:
        """The writer's ``file_version`` (``brain.Event:2``) once the first record was read."""
        return self._stream.file_version

    @property
    def stopped(self) -> str | None:
        """Why the reader gave this file up (one line), or ``None`` while it reads on."""
        return self._stream.stopped

    @property
    def error(self) -> str | None:
        """The last read failure (one line), cleared by the next successful poll."""
        return self._stream.error

    @property
    def skipped(self) -> int:
        """How many damaged records (or runs of damaged bytes) were skipped so far."""
        return self._stream.skipped

    def take_notes(self) -> list[str]:
        """The one-line notes about skipped records since the last call."""
        notes, self._stream.notes = self._stream.notes, []
        return notes


class TfEventsReader(_ReaderBase):
    """Scalars of one event file, each :meth:`poll` reading on from where the last stopped.

    ``read_range(start, end)`` returns the file's bytes ``start`` to ``end`` (fewer at its end)
    and ``size()`` its current size: a local file, or anything else that reads by offset.
    """

    def __init__(
        self,
        read_range: Callable[[int, int], bytes],
        size: Callable[[], int],
        *,
        name: str = "",
        block_bytes: int = BLOCK_BYTES,
        poll_bytes: int = POLL_BYTES,
    ) -> None:
        super().__init__(name, block_bytes, poll_bytes)
        self._read_range = read_range
        self._read_size = size

    def poll(self) -> list[ScalarPoint]:
        """The scalars of the records completed since the last poll; never raises on bad
        bytes or failed reads (see :attr:`notes <take_notes>`, :attr:`stopped`, :attr:`error`)."""
        stream = self._stream
        points: list[ScalarPoint] = []
        try:
            if not stream.start(self._read_size()):
                return points
            while (wanted := stream.want()) is not None:
                stream.feed(self._read_range(*wanted), points)
        except (OSError, ValueError) as exc:
            stream.failed(exc)
            return points
        stream.error = None
        return points


class AsyncTfEventsReader(_ReaderBase):
    """:class:`TfEventsReader` over async reads, for files on an SSH host (SFTP)."""

    def __init__(
        self,
        read_range: Callable[[int, int], Awaitable[bytes]],
        size: Callable[[], Awaitable[int]],
        *,
        name: str = "",
        block_bytes: int = BLOCK_BYTES,
        poll_bytes: int = POLL_BYTES,
    ) -> None:
        super().__init__(name, block_bytes, poll_bytes)
        self._read_range = read_range
        self._read_size = size

    async def poll(self) -> list[ScalarPoint]:
        """The scalars of the records completed since the last poll; never raises on bad
        bytes or failed reads (see :meth:`take_notes`, :attr:`stopped`, :attr:`error`)."""
        stream = self._stream
        points: list[ScalarPoint] = []
        try:
            if not stream.start(await self._read_size()):
                return points
            while (wanted := stream.want()) is not None:
                stream.feed(await self._read_range(*wanted), points)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - SFTP and network failures of every kind
            stream.failed(exc)
            return points
        stream.error = None
        return points


def local_reader(
    path: str | os.PathLike[str], *, block_bytes: int = BLOCK_BYTES, poll_bytes: int = POLL_BYTES
) -> TfEventsReader:
    """A reader of the event file at ``path`` on this machine."""
    where = Path(path)

    def read_range(start: int, end: int) -> bytes:
        with where.open("rb") as file:
            file.seek(start)
            return file.read(end - start)

    def size() -> int:
        return where.stat().st_size

    return TfEventsReader(
        read_range, size, name=str(where), block_bytes=block_bytes, poll_bytes=poll_bytes
    )


def sftp_reader(
    sftp: asyncssh.SFTPClient,
    path: str,
    *,
    timeout: float = 20.0,
    block_bytes: int = BLOCK_BYTES,
    poll_bytes: int = POLL_BYTES,
) -> AsyncTfEventsReader:
    """A reader of the event file at ``path`` through an open SFTP client, each call bounded
    by ``timeout`` seconds."""

    async def read_range(start: int, end: int) -> bytes:
        async def read() -> bytes:
            async with sftp.open(path, "rb") as file:
                data = await file.read(end - start, start)
            return data if isinstance(data, bytes) else data.encode()

        return await asyncio.wait_for(read(), timeout)

    async def size() -> int:
        attrs = await asyncio.wait_for(sftp.stat(path), timeout)
        return int(attrs.size or 0)

    return AsyncTfEventsReader(
        read_range, size, name=path, block_bytes=block_bytes, poll_bytes=poll_bytes
    )


def _is_event_name(name: str) -> bool:
    return name.startswith(EVENT_FILE_PREFIX)


def find_event_files(directory: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """The event files in ``directory`` (and below it with ``recursive``), newest first;
    ``[]`` when it does not exist or cannot be read."""
    root = Path(directory)
    found: list[tuple[float, str, Path]] = []
    try:
        paths = root.rglob(f"{EVENT_FILE_PREFIX}*") if recursive else root.iterdir()
        for path in paths:
            if not _is_event_name(path.name):
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.append((info.st_mtime, path.name, path))
    except OSError:
        return []
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [path for _, _, path in found]


async def find_event_files_sftp(
    sftp: asyncssh.SFTPClient,
    directory: str,
    *,
    timeout: float = 20.0,  # noqa: ASYNC109
) -> list[str]:
    """The event files directly in ``directory`` on an SSH host, newest first; ``[]`` when it
    does not exist or cannot be read."""
    from asyncssh import SFTPError

    try:
        entries = await asyncio.wait_for(sftp.readdir(directory), timeout)
    except (SFTPError, OSError):
        return []
    found: list[tuple[int, str]] = []
    for entry in entries:
        name = entry.filename if isinstance(entry.filename, str) else entry.filename.decode()
        if _is_event_name(name) and entry.attrs.type != 2:  # 2: a directory
            found.append((int(entry.attrs.mtime or 0), name))
    found.sort(reverse=True)
    base = directory.rstrip("/") or "/"
    return [f"{base}/{name}" if base != "/" else f"/{name}" for _, name in found]
