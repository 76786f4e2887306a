"""TensorBoard event files: framing, checksums, both scalar forms, incremental reads, damage."""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.logs.tfevents import (
    ScalarPoint,
    TfEventsReader,
    crc32c,
    decode_scalars,
    masked_crc32c,
)

# -- a writer producing the bytes TensorBoard's (and PyTorch's) event writers produce


def reference_crc32c(data: bytes) -> int:
    """CRC32C bit by bit, independent of the table-driven one under test."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    """A protobuf varint (negative numbers as 10-byte two's complement, as int64 is)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def frame(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", _mask(crc32c(length)))
        + data
        + struct.pack("<I", _mask(crc32c(data)))
    )


def event(wall_time: float, step: int = 0, *, rest: bytes = b"") -> bytes:
    """An ``Event`` with its fields in field order; proto3 leaves a zero step out."""
    out = b"\x09" + struct.pack("<d", wall_time)
    if step:
        out += b"\x10" + varint(step)
    return out + rest


def version_event(wall_time: float = 1_700_000_000.0) -> bytes:
    """The first event of every file: ``file_version: "brain.Event:2"``."""
    return event(wall_time, rest=field(3, b"brain.Event:2"))


def simple_scalar(tag: str, step: int, value: float, wall_time: float = 1.0e9) -> bytes:
    """``add_scalar`` as PyTorch writes it by default: ``Summary.Value.simple_value``."""
    value_msg = field(1, tag.encode()) + b"\x15" + struct.pack("<f", value)
    return event(wall_time, step, rest=field(5, field(1, value_msg)))


def tensor_scalar(
    tag: str,
    step: int,
    value: float,
    wall_time: float = 1.0e9,
    *,
    double: bool = False,
    metadata: bool = True,
    content: bool = False,
) -> bytes:
    """A scalar as a one-element tensor under the ``scalars`` plugin: PyTorch's
    ``new_style=True`` (``float_val``, or ``double_val``), or TensorFlow 2's ``tensor_content``
    with the metadata only on a tag's first value."""
    if content:
        tensor = b"\x08\x01" + field(2, b"") + field(4, struct.pack("<f", value))
    elif double:
        tensor = b"\x08\x02" + field(6, struct.pack("<d", value))
    else:
        tensor = b"\x08\x01" + field(5, struct.pack("<f", value))
    value_msg = field(1, tag.encode()) + field(8, tensor)
    if metadata:
        value_msg += field(9, field(1, field(1, b"scalars")))
    return event(wall_time, step, rest=field(5, field(1, value_msg)))


def image_event(tag: str, step: int, size: int) -> bytes:
    """An image summary of ``size`` encoded bytes, which the reader steps over."""
    image = b"\x08\x20\x10\x20\x18\x03" + field(4, bytes(range(256)) * (size // 256))
    return event(1.0e9, step, rest=field(5, field(1, field(1, tag.encode()) + field(4, image))))


def event_file(*events: bytes) -> bytes:
    """A whole file: the version record, then ``events``."""
    return b"".join(frame(e) for e in (version_event(), *events))


class Growing:
    """An event file in memory that grows between polls, read by range like a real one."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.reads: list[tuple[int, int]] = []

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end``."""
        self.reads.append((start, end))
        return bytes(self.data[start:end])

    def size(self) -> int:
        """The size now."""
        return len(self.data)

    def reader(self, **options: int) -> TfEventsReader:
        """A reader of this file."""
        return TfEventsReader(
            self.read_range, self.size, name="run/events.out.tfevents.1", **options
        )


def values(points: list[ScalarPoint]) -> list[tuple[str, int, float]]:
    """Tag, step and value of each point."""
    return [(p.tag, p.step, p.value) for p in points]


# -- checksums


def test_crc32c_matches_the_standard_check_value_and_a_bitwise_reference() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    for size in (1, 7, 8, 9, 15, 16, 100, 1000):
        data = bytes((i * 37 + size) & 0xFF for i in range(size))
        assert crc32c(data) == reference_crc32c(data)
        assert crc32c(data[size // 2 :], crc32c(data[: size // 2])) == crc32c(data)


def test_masked_crc_is_the_tfrecord_mask() -> None:
    assert masked_crc32c(b"") == 0xA282EAD8
    assert masked_crc32c(b"abc") == _mask(reference_crc32c(b"abc"))


@given(st.binary(max_size=200))
def test_crc32c_agrees_with_the_reference_on_any_bytes(data: bytes) -> None:
    assert crc32c(data) == reference_crc32c(data)


# -- decoding events


def test_simple_value_scalars_as_pytorch_writes_them_by_default() -> None:
    points = decode_scalars(simple_scalar("train/loss", 42, 0.5, wall_time=1700000123.25))
    assert points == [ScalarPoint("train/loss", 42, 1700000123.25, 0.5)]


def test_tensor_scalars_in_float_double_and_tensor_content_forms() -> None:
    assert values(decode_scalars(tensor_scalar("a", 1, 0.25))) == [("a", 1, 0.25)]
    assert values(decode_scalars(tensor_scalar("b", 2, 0.1, double=True))) == [("b", 2, 0.1)]
    assert values(decode_scalars(tensor_scalar("c", 3, 2.0, content=True))) == [("c", 3, 2.0)]


def test_a_tensor_without_the_scalars_plugin_is_not_a_scalar() -> None:
    assert decode_scalars(tensor_scalar("h", 1, 1.0, metadata=False)) == []
    other = field(1, b"t") + field(8, b"\x08\x01" + field(5, struct.pack("<f", 1.0)))
    other += field(9, field(1, field(1, b"histograms")))
    assert decode_scalars(event(1.0, 1, rest=field(5, field(1, other)))) == []


def test_negative_and_huge_steps_and_non_finite_values() -> None:
    assert decode_scalars(simple_scalar("x", -3, 1.0))[0].step == -3
    assert decode_scalars(simple_scalar("x", 2**40, 1.0))[0].step == 2**40
    assert math.isnan(decode_scalars(simple_scalar("loss", 7, float("nan")))[0].value)
    assert decode_scalars(simple_scalar("loss", 7, float("inf")))[0].value == math.inf


def test_tags_are_made_safe_to_show() -> None:
    (point,) = decode_scalars(simple_scalar("loss\x1b[31m\n[red]", 1, 1.0))
    assert "\x1b" not in point.tag
    assert "\n" not in point.tag
    assert "[red]" in point.tag


def test_several_values_in_one_summary() -> None:
    one = field(1, field(1, b"a") + b"\x15" + struct.pack("<f", 1.0))
    two = field(1, field(1, b"b") + b"\x15" + struct.pack("<f", 2.0))
    image = field(1, field(1, b"img") + field(4, b"\x08\x01"))
    points = decode_scalars(event(5.0, 9, rest=field(5, one + image + two)))
    assert values(points) == [("a", 9, 1.0), ("b", 9, 2.0)]


# -- reading files incrementally


def test_reads_a_file_and_then_only_what_was_appended() -> None:
    file = Growing(event_file(simple_scalar("loss", 1, 1.0), tensor_scalar("lr", 1, 0.01)))
    reader = file.reader()
    assert [(t, s) for t, s, _ in values(reader.poll())] == [("loss", 1), ("lr", 1)]
    assert reader.file_version == "brain.Event:2"
    assert reader.offset == len(file.data)
    assert reader.poll() == []

    file.data += frame(simple_scalar("loss", 2, 0.5))
    file.reads.clear()
    assert values(reader.poll()) == [("loss", 2, 0.5)]
    assert min(start for start, _ in file.reads) == reader.offset - len(
        frame(simple_scalar("loss", 2, 0.5))
    )
    assert reader.take_notes() == []
    assert reader.stopped is None


def test_tensorflow2_names_the_plugin_only_on_a_tags_first_value() -> None:
    file = Growing(
        event_file(
            tensor_scalar("loss", 1, 3.0, content=True),
            tensor_scalar("loss", 2, 2.0, content=True, metadata=False),
        )
    )
    assert values(file.reader().poll()) == [("loss", 1, 3.0), ("loss", 2, 2.0)]


def test_a_record_being_written_waits_for_the_next_poll() -> None:
    whole = frame(simple_scalar("loss", 2, 0.5))
    file = Growing(event_file(simple_scalar("loss", 1, 1.0)))
    reader = file.reader()
    assert len(reader.poll()) == 1
    for cut in (1, 11, 12, 13, len(whole) - 1):
        file.data += whole[:cut]
        assert reader.poll() == []
        del file.data[-cut:]
    file.data += whole[:5]
    assert reader.poll() == []
    file.data += whole[5:]
    assert values(reader.poll()) == [("loss", 2, 0.5)]
    assert reader.take_notes() == []


def test_every_split_of_a_file_gives_the_same_points() -> None:
    data = event_file(*(simple_scalar("loss", step, 1.0 / step) for step in range(1, 20)))
    expected = values(Growing(data).reader().poll())
    assert len(expected) == 19
    for split in range(0, len(data), 7):
        file = Growing(data[:split])
        reader = file.reader(block_bytes=64)
        got = reader.poll()
        file.data += data[split:]
        got += reader.poll()
        assert values(got) == expected


def test_small_blocks_and_a_poll_budget_still_read_everything_in_order() -> None:
    data = event_file(*(simple_scalar("loss", step, float(step)) for step in range(1, 200)))
    reader = Growing(data).reader(block_bytes=100, poll_bytes=1000)
    got: list[ScalarPoint] = []
    for _ in range(100):
        got += reader.poll()
    assert [p.step for p in got] == list(range(1, 200))


def test_a_record_larger_than_a_block_is_read_whole() -> None:
    data = event_file(image_event("img", 1, 5000), simple_scalar("loss", 1, 1.0))
    assert values(Growing(data).reader(block_bytes=256).poll()) == [("loss", 1, 1.0)]


def test_a_flipped_byte_in_a_scalar_record_skips_that_record_with_a_note() -> None:
    records = [frame(simple_scalar("loss", step, float(step))) for step in range(1, 4)]
    damaged = bytearray(records[1])
    damaged[-8] ^= 0x40  # inside the value
    file = Growing(frame(version_event()) + records[0] + bytes(damaged) + records[2])
    reader = file.reader()
    assert [p.step for p in reader.poll()] == [1, 3]
    (note,) = reader.take_notes()
    assert "checksum" in note
    assert "events.out.tfevents.1" in note
    assert "\n" not in note
    assert reader.skipped == 1
    assert reader.stopped is None


def test_a_damaged_header_is_skipped_by_finding_the_next_record() -> None:
    records = [frame(simple_scalar("loss", step, float(step))) for step in range(1, 5)]
    damaged = bytearray(records[1])
    damaged[2] ^= 0x01  # the length: the framing is lost until the next valid header
    file = Growing(frame(version_event()) + records[0] + bytes(damaged) + b"".join(records[2:]))
    reader = file.reader()
    assert [p.step for p in reader.poll()] == [1, 3, 4]
    (note,) = reader.take_notes()
    assert "damaged bytes" in note
    assert reader.stopped is None


def test_garbage_between_records_is_skipped() -> None:
    garbage = b"\x00" * 10 + b"not a record at all" * 50 + b"\xff" * 7
    data = frame(version_event()) + frame(simple_scalar("a", 1, 1.0)) + garbage
    data += frame(simple_scalar("a", 2, 2.0))
    reader = Growing(data).reader(block_bytes=64)
    got: list[ScalarPoint] = []
    for _ in range(50):
        got += reader.poll()
    assert [p.step for p in got] == [1, 2]
    assert len(reader.take_notes()) == 1


def test_a_file_that_is_not_an_event_file_stops_with_a_reason() -> None:
    reader = Growing(b"epoch 1 loss=0.3\nepoch 2 loss=0.2\n" * 100).reader()
    assert reader.poll() == []
    assert reader.stopped is not None
    assert "not a TensorBoard event file" in reader.stopped
    assert reader.poll() == []


def test_a_damaged_first_record_is_skipped_when_its_header_holds() -> None:
    data = bytearray(event_file(simple_scalar("a", 1, 1.0)))
    data[14] ^= 0xFF
    reader = Growing(bytes(data)).reader()
    assert values(reader.poll()) == [("a", 1, 1.0)]
    assert reader.file_version is None
    assert len(reader.take_notes()) == 1
    assert reader.stopped is None


def test_no_valid_record_long_after_damage_stops_the_reader() -> None:
    from runctl_tui.logs import tfevents

    data = event_file(simple_scalar("a", 1, 1.0)) + b"\xab" * (tfevents.RESYNC_LIMIT + 100)
    reader = Growing(data).reader()
    got: list[ScalarPoint] = []
    for _ in range(10):
        got += reader.poll()
    assert [p.step for p in got] == [1]
    assert reader.stopped is not None
    assert "no valid record" in reader.stopped


def test_a_file_that_shrank_stops_the_reader() -> None:
    file = Growing(event_file(simple_scalar("a", 1, 1.0)))
    reader = file.reader()
    reader.poll()
    del file.data[20:]
    assert reader.poll() == []
    assert reader.stopped is not None
    assert "shrank" in reader.stopped


def test_a_failed_read_is_reported_and_retried() -> None:
    file = Growing(event_file(simple_scalar("a", 1, 1.0)))
    healthy = file.read_range
    failing = {"on": True}

    def read_range(start: int, end: int) -> bytes:
        if failing["on"]:
            raise OSError("Input/output error")
        return healthy(start, end)

    reader = TfEventsReader(read_range, file.size, name="x")
    assert reader.poll() == []
    assert reader.error is not None
    assert "Input/output error" in reader.error
    failing["on"] = False
    assert len(reader.poll()) == 1
    assert reader.error is None


# -- nothing raises on arbitrary bytes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    reader = Growing(data).reader(block_bytes=64)
    for _ in range(5):
        reader.poll()
    reader.take_notes()
    decode_scalars(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_files_never_raise_and_keep_good_records_in_order(data: st.DataObject) -> None:
    steps = data.draw(st.integers(min_value=1, max_value=30))
    clean_file = event_file(*(simple_scalar("loss", s, float(s)) for s in range(1, steps + 1)))
    damaged = bytearray(clean_file)
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1))
        damaged[index] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(damaged)))
    chunk = data.draw(st.integers(min_value=16, max_value=512))
    file = Growing(bytes(damaged[:cut]))
    reader = file.reader(block_bytes=chunk)
    got = reader.poll()
    file.data += damaged[cut:]
    for _ in range(10):
        got += reader.poll()
    got_steps = [p.step for p in got]
    assert got_steps == sorted(set(got_steps))
    assert all(p.value == float(p.step) for p in got)
