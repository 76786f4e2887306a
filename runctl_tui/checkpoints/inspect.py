"""Inspect a checkpoint without running anything in it: what is inside, read from its headers.

The formats: PyTorch's zip format (``.pt``, ``.pth``, ``.bin``, Lightning ``.ckpt``: the zip
directory and the ``data.pkl`` member, walked opcode by opcode, never unpickled), plain pickles
(the same walk), safetensors (the JSON header), ``.npz``/``.npy`` (the array headers), and
Hugging Face checkpoint directories (``config.json``, the shard index, ``trainer_state.json``
and each weight file). The older non-zip PyTorch format is recognised and not inspected.

How it reads: every format is a generator of :class:`~runctl_tui.checkpoints.inspect_io.Read`
requests (:func:`plan_file`, :func:`plan_directory`), so one implementation serves every
storage. :func:`run_plan` drives a plan with a synchronous ``read`` (a local file, boto3's
ranged ``get_object`` in a worker thread), :func:`run_plan_async` with an awaitable one (an
asyncssh SFTP file). Only the zip directory, the pickle and headers are read, never the tensor
data: a 2 GB ``.pt`` costs its last 64 KB and its pickle. Each :class:`Inspection` records the
bytes and reads it took.

Nothing here raises on a bad file: damage, refused claims (a zip directory claiming millions of
members, a safetensors header of 2**60 bytes) and storage errors become ``Inspection.error``,
one line that names the file.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Generator, Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from runctl_tui.checkpoints.inspect_formats import (
    NPY_HEADER_CAP,
    NPY_MAGIC,
    npy_header_end,
    parse_config,
    parse_npy_header,
    parse_safetensors_header,
    parse_shard_index,
    parse_trainer_state,
    safetensors_header_length,
)
from runctl_tui.checkpoints.inspect_io import FormatError, Read, ReadFailed, Reads, read_exact
from runctl_tui.checkpoints.inspect_model import (
    CheckpointFormat,
    Inspection,
    ShardIndex,
    TensorInfo,
    TrainerState,
    clip_name,
    human_bytes,
)
from runctl_tui.checkpoints.inspect_pickle import collect, walk
from runctl_tui.checkpoints.inspect_zip import ZipMember, read_directory, read_member
from runctl_tui.text import one_line

__all__ = [
    "AsyncRangeReader",
    "CheckpointFormat",
    "FileRangeReader",
    "Inspection",
    "NamedFile",
    "RangeReader",
    "Read",
    "inspect_checkpoint",
    "inspect_reader",
    "inspect_reader_async",
    "plan_directory",
    "plan_file",
    "run_plan",
    "run_plan_async",
]

PICKLE_CAP = 256 * 1024 * 1024
"""Largest pickle (``data.pkl`` or a plain pickle file) read and walked."""
JSON_CAP = 64 * 1024 * 1024
"""Largest ``config.json``/``trainer_state.json``/index read."""
MAX_ARRAYS = 256
"""``.npz`` members whose headers are read; the rest are listed by name."""
MAX_DIRECTORY_FILES = 32
"""Weight files of a directory inspected one by one; the rest are only counted."""
MAX_LISTED = 10_000
"""Entries of a local directory looked at."""
NPY_FIRST_READ = 16 * 1024
REUSE_BYTES = 4 * 1024 * 1024
"""Bytes kept from earlier reads of one file to answer later reads that fall inside them."""
HEAD_BYTES = 64
SMALL_FILE = 128 * 1024
"""Files up to this size are read in one go."""

LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
"""``torch.save(_use_new_zipfile_serialization=False)`` starts with this number, pickled."""

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy", ".pkl")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_MODEL_PREFIXES = ("model", "pytorch_model", "adapter_model", "diffusion_pytorch_model")

Plan = Generator[Read, bytes, Inspection]


class RangeReader(Protocol):
    """Random access to one stored file: the synchronous form (local disk, boto3)."""

    @property
    def name(self) -> str:
        """How the file is shown (a path, ``host:path``, ``s3://...``)."""
        ...

    @property
    def size(self) -> int:
        """Its length in bytes."""
        ...

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``."""
        ...


class AsyncRangeReader(Protocol):
    """Random access to one stored file, awaited (an asyncssh SFTP file)."""

    @property
    def name(self) -> str:
        """How the file is shown."""
        ...

    @property
    def size(self) -> int:
        """Its length in bytes."""
        ...

    async def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``."""
        ...


class NamedFile:
    """What every range reader knows of its file: how it is shown, and its length."""

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size

    @property
    def name(self) -> str:
        """How the file is shown."""
        return self._name

    @property
    def size(self) -> int:
        """Its length in bytes."""
        return self._size


class FileRangeReader(NamedFile):
    """A :class:`RangeReader` over an open local file."""

    def __init__(self, file: BinaryIO, name: str, size: int) -> None:
        super().__init__(name, size)
        self._file = file

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (fewer at the end of the file)."""
        self._file.seek(start)
        return self._file.read(end - start)


# -- drivers


def run_plan(plan: Plan, read: Callable[[Read], bytes]) -> Inspection:
    """Drive ``plan`` with a synchronous ``read``; a failing read becomes the plan's error."""
    request = next(plan)
    while True:
        try:
            data = read(request)
        except Exception as exc:  # noqa: BLE001 - any storage failure is reported, not raised
            failure: BaseException = ReadFailed(f"read failed: {_reason(exc)}")
            try:
                request = plan.throw(failure)
            except StopIteration as stop:
                result: Inspection = stop.value
                return result
            continue
        try:
            request = plan.send(data)
        except StopIteration as stop:
            done: Inspection = stop.value
            return done


async def run_plan_async(plan: Plan, read: Callable[[Read], Awaitable[bytes]]) -> Inspection:
    """Drive ``plan`` with an awaitable ``read`` (SFTP on the event loop)."""
    request = next(plan)
    while True:
        try:
            data = await read(request)
        except Exception as exc:  # noqa: BLE001 - any storage failure is reported, not raised
            try:
                request = plan.throw(ReadFailed(f"read failed: {_reason(exc)}"))
            except StopIteration as stop:
                result: Inspection = stop.value
                return result
            continue
        try:
            request = plan.send(data)
        except StopIteration as stop:
            done: Inspection = stop.value
            return done


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return one_line(str(exc) or type(exc).__name__, 200)


def inspect_reader(reader: RangeReader) -> Inspection:
    """Inspect one file through ``reader``, reading only the ranges the format needs."""
    return run_plan(
        plan_file(reader.name, reader.size), lambda r: reader.read_range(r.start, r.end)
    )


async def inspect_reader_async(reader: AsyncRangeReader) -> Inspection:
    """:func:`inspect_reader` for a reader whose reads are awaited."""

    async def read(request: Read) -> bytes:
        return await reader.read_range(request.start, request.end)

    return await run_plan_async(plan_file(reader.name, reader.size), read)


def inspect_checkpoint(path: str | os.PathLike[str]) -> Inspection:
    """Inspect a local checkpoint file or directory; never raises, never unpickles."""
    target = Path(path)
    name = str(path)
    try:
        if target.is_dir():
            return _inspect_local_directory(target, name)
        with target.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            return inspect_reader(FileRangeReader(file, name, size))
    except OSError as exc:
        return Inspection(name=name, error=f"{_label(name)}: cannot read: {_reason(exc)}")
    except Exception as exc:  # noqa: BLE001 - the promise is one line, whatever the file holds
        return Inspection(name=name, error=f"{_label(name)}: not inspected: {_reason(exc)}")


def _inspect_local_directory(target: Path, name: str) -> Inspection:
    files: dict[str, int] = {}
    with os.scandir(target) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_LISTED:
                break
            if entry.is_file():
                files[entry.name] = entry.stat().st_size
    handles: dict[str, BinaryIO] = {}
    try:

        def read(request: Read) -> bytes:
            file = handles.get(request.member)
            if file is None:
                file = handles[request.member] = (target / request.member).open("rb")
            file.seek(request.start)
            return file.read(request.end - request.start)

        return run_plan(plan_directory(name, files), read)
    finally:
        for file in handles.values():
            file.close()


# -- plans


def _label(name: str) -> str:
    """The file's own name, safe to put in an error line."""
    base = PurePosixPath(name.replace("\\", "/").rstrip("/")).name or name
    return one_line(base, 120)


def plan_file(name: str, size: int) -> Plan:
    """The reads inspecting one file of ``size`` bytes takes; returns its :class:`Inspection`."""
    counter = _Counter()
    try:
        inspection = yield from counter.relay(_reuse_reads(_plan_file(name, size)))
    except FormatError as exc:
        inspection = Inspection(name=name, size=size, error=f"{_label(name)}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the promise is one line, whatever the file holds
        inspection = Inspection(
            name=name, size=size, error=f"{_label(name)}: not inspected: {_reason(exc)}"
        )
    return inspection.model_copy(update={"bytes_read": counter.bytes, "reads": counter.reads})


class _Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.reads = 0

    def relay(self, plan: Plan, member: str | None = None) -> Plan:
        """Pass ``plan``'s reads on (into ``member`` when given), counting what comes back."""
        try:
            request = next(plan)
            while True:
                if member is not None:
                    request = Read(request.start, request.end, member)
                try:
                    data = yield request
                except ReadFailed as exc:
                    request = plan.throw(exc)
                    continue
                self.bytes += len(data)
                self.reads += 1
                request = plan.send(data)
        except StopIteration as stop:
            result: Inspection = stop.value
            return result


def _reuse_reads(plan: Plan) -> Plan:
    """Serve a read from bytes already read when they hold it (the tail read for the zip
    directory often holds the whole pickle of a small file)."""
    blocks: list[tuple[int, bytes]] = []
    kept = 0
    try:
        request = next(plan)
        while True:
            for start, block in blocks:
                if start <= request.start and request.end <= start + len(block):
                    data = block[request.start - start : request.end - start]
                    break
            else:
                try:
                    data = yield request
                except ReadFailed as exc:
                    request = plan.throw(exc)
                    continue
                if kept + len(data) <= REUSE_BYTES:
                    blocks.append((request.start, data))
                    kept += len(data)
            request = plan.send(data)
    except StopIteration as stop:
        result: Inspection = stop.value
        return result


def _plan_file(name: str, size: int) -> Plan:
    if size == 0:
        raise FormatError("empty file")
    # a small file is read whole at once: later reads are served from it
    head = yield from read_exact(0, size if size <= SMALL_FILE else HEAD_BYTES)
    suffix = PurePosixPath(name).suffix.lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return (yield from _plan_zip(name, size))
    if head[:1] == b"\x80" and head[2:14] == LEGACY_MAGIC:
        return Inspection(
            name=name,
            format=CheckpointFormat.PYTORCH_LEGACY,
            size=size,
            notes=("legacy format (torch.save before 1.6), not inspected",),
        )
    if head.startswith(NPY_MAGIC):
        tensor = yield from _read_npy(0, size, name, lambda n: read_exact(0, n))
        return _arrays(name, CheckpointFormat.NPY, size, [tensor])
    if (head[:1] == b"\x80" and 2 <= head[1] <= 5) or suffix in (".pkl", ".pickle"):
        if size > PICKLE_CAP:
            raise FormatError(
                f"pickle of {human_bytes(size)} over the {human_bytes(PICKLE_CAP)} cap"
            )
        data = yield from read_exact(0, size)
        return _from_pickle(name, CheckpointFormat.PICKLE, size, data)
    if suffix == ".safetensors" or head[8:9] == b"{":
        return (yield from _plan_safetensors(name, size, head))
    raise FormatError(f"not a recognised checkpoint format (starts with {head[:8].hex()})")


def _from_pickle(name: str, format: CheckpointFormat, size: int, data: bytes) -> Inspection:
    walked = walk(data)
    found = collect(walked.root)
    return Inspection(
        name=name,
        format=format,
        size=size,
        unsafe=tuple(walked.unsafe),
        keys=tuple(found.keys),
        tensors=tuple(found.tensors),
        tensor_count=found.tensor_count,
        parameter_count=found.parameter_count,
        scalars=tuple(found.scalars),
        notes=tuple(found.notes),
    )


def _plan_zip(name: str, size: int) -> Plan:
    members = yield from read_directory(size)
    pickles = [m for m in members if m.name == "data.pkl" or m.name.endswith("/data.pkl")]
    if not pickles:
        arrays = [m for m in members if m.name.endswith(".npy")]
        if arrays or not members:
            return (yield from _plan_npz(name, size, arrays))
        raise FormatError(f"zip archive without data.pkl or .npy members ({len(members):,})")
    pickle = min(pickles, key=lambda m: m.name.count("/"))
    prefix = pickle.name.removesuffix("data.pkl")
    scripted = any(
        m.name.startswith(prefix + "code/") or m.name == prefix + "constants.pkl" for m in members
    )
    data = yield from read_member(pickle, size, PICKLE_CAP)
    storages = [m for m in members if m.name.startswith(prefix + "data/")]
    format = CheckpointFormat.TORCHSCRIPT if scripted else CheckpointFormat.PYTORCH
    inspection = _from_pickle(name, format, size, data)
    notes = list(inspection.notes)
    if storages:
        stored = sum(m.size for m in storages)
        notes.append(f"tensor data: {human_bytes(stored)} in {len(storages):,} storages")
    if scripted:
        notes.append("TorchScript archive: its code is not inspected")
    return inspection.model_copy(update={"notes": tuple(notes)})


def _plan_npz(name: str, size: int, arrays: list[ZipMember]) -> Plan:
    tensors: list[TensorInfo] = []
    for member in arrays[:MAX_ARRAYS]:
        label = member.name.removesuffix(".npy")

        def prefix(count: int, member: ZipMember = member) -> Reads[bytes]:
            return read_member(member, size, NPY_HEADER_CAP + 16, prefix=count)

        tensor = yield from _read_npy(0, member.compressed_size, label, prefix)
        tensors.append(tensor)
    for member in arrays[MAX_ARRAYS:]:
        tensors.append(
            TensorInfo(name=member.name.removesuffix(".npy"), dtype="unknown", note="not read")
        )
    return _arrays(name, CheckpointFormat.NPZ, size, tensors)


def _read_npy(
    start: int, available: int, label: str, read_prefix: Callable[[int], Reads[bytes]]
) -> Reads[TensorInfo]:
    """An ``.npy`` header, reading more of the array's start until the header is complete."""
    count = min(available, NPY_FIRST_READ)
    while True:
        data = yield from read_prefix(count)
        end = npy_header_end(data)
        if (end is None or end > len(data)) and count < min(available, NPY_HEADER_CAP + 16):
            count = min(available, NPY_HEADER_CAP + 16, count * 16)
            continue
        return parse_npy_header(data, label)


def _arrays(
    name: str, format: CheckpointFormat, size: int, tensors: list[TensorInfo]
) -> Inspection:
    return Inspection(
        name=name,
        format=format,
        size=size,
        tensors=tuple(tensors),
        tensor_count=len(tensors),
        parameter_count=sum(t.elements or 0 for t in tensors),
    )


def _plan_safetensors(name: str, size: int, head: bytes) -> Plan:
    length = safetensors_header_length(head, size)
    header = yield from read_exact(8, 8 + length)
    tensors, metadata = parse_safetensors_header(header, size - 8 - length)
    return Inspection(
        name=name,
        format=CheckpointFormat.SAFETENSORS,
        size=size,
        tensors=tuple(tensors),
        tensor_count=len(tensors),
        parameter_count=sum(t.elements or 0 for t in tensors),
        metadata=metadata,
    )


def plan_directory(name: str, files: Mapping[str, int]) -> Plan:
    """The reads inspecting a checkpoint directory takes, given its files and their sizes.

    ``files`` maps names relative to the directory (top level) to sizes; every
    :class:`Read` it yields names its file in ``member``.
    """
    counter = _Counter()
    try:
        inspection = yield from counter.relay(_plan_directory(name, files))
    except Exception as exc:  # noqa: BLE001 - the promise is one line, whatever the files hold
        inspection = Inspection(name=name, error=f"{_label(name)}: not inspected: {_reason(exc)}")
    return inspection.model_copy(update={"bytes_read": counter.bytes, "reads": counter.reads})


def _read_json(member: str, size: int) -> Reads[bytes]:
    if size > JSON_CAP:
        raise FormatError(f"{member} is {human_bytes(size)}, over the {human_bytes(JSON_CAP)} cap")
    data = yield Read(0, size, member)
    if len(data) != size:
        raise FormatError(f"{member}: truncated")
    return data


def _plan_directory(name: str, files: Mapping[str, int]) -> Plan:
    notes: list[str] = []
    config: dict[str, object] = {}
    index: ShardIndex | None = None
    state: TrainerState | None = None
    try:
        if "config.json" in files:
            config = dict(
                parse_config((yield from _read_json("config.json", files["config.json"])))
            )
    except FormatError as exc:
        notes.append(str(exc))
    for index_file in INDEX_FILES:
        if index_file in files and index is None:
            try:
                data = yield from _read_json(index_file, files[index_file])
                index = parse_shard_index(data, index_file)
            except FormatError as exc:
                notes.append(str(exc))
    if index is not None:
        notes.extend(
            f"shard {one_line(s, 120)} listed in the index is missing"
            for s in index.shards
            if s not in files
        )
    if "trainer_state.json" in files:
        try:
            state = parse_trainer_state(
                (yield from _read_json("trainer_state.json", files["trainer_state.json"]))
            )
        except FormatError as exc:
            notes.append(str(exc))
    weights = sorted(f for f in files if f.lower().endswith(WEIGHT_SUFFIXES))
    inspected: list[Inspection] = []
    for file in weights[:MAX_DIRECTORY_FILES]:
        counter = _Counter()
        inner = yield from counter.relay(plan_file(file, files[file]), member=file)
        inspected.append(inner)
    if len(weights) > MAX_DIRECTORY_FILES:
        notes.append(f"{len(weights) - MAX_DIRECTORY_FILES:,} more weight files not inspected")
    if not weights and not config and index is None and state is None:
        return Inspection(
            name=name,
            format=CheckpointFormat.DIRECTORY,
            size=sum(files.values()),
            error=f"{_label(name)}: no checkpoint files in this directory",
        )
    model_files = [i for i in inspected if i.name.startswith(_MODEL_PREFIXES)] or [
        i for i in inspected if i.format is CheckpointFormat.SAFETENSORS
    ]
    is_hf = bool(config) or index is not None or state is not None
    return Inspection(
        name=name,
        format=CheckpointFormat.HUGGINGFACE if is_hf else CheckpointFormat.DIRECTORY,
        size=sum(files.values()),
        unsafe=tuple(
            f"{clip_name(i.name, 120)}: {callable}" for i in inspected for callable in i.unsafe
        ),
        tensor_count=sum(i.tensor_count for i in model_files),
        parameter_count=sum(i.parameter_count for i in model_files),
        config={k: v for k, v in config.items() if isinstance(v, str | int | float | bool | None)},
        shard_index=index,
        trainer_state=state,
        files=tuple(inspected),
        notes=tuple(notes),
    )
