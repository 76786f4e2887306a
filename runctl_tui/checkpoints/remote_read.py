"""Inspect a listed checkpoint where it lives: this machine, an SSH host (SFTP) or S3.

Only the byte ranges the format needs are read (see :mod:`runctl_tui.checkpoints.inspect`):
over SFTP each file is opened once and read at offsets, every call bounded by a timeout; on
S3 each read is one ranged ``get_object`` (``Range: bytes=a-b``), bounded by the client's own
connect and read timeouts. A checkpoint directory is inspected from its top-level files; a
shard set (``model-*-of-00004.safetensors``) as a directory holding just its shards and index.

Nothing here raises for a storage problem: it becomes the inspection's one-line error.
asyncssh and boto3 are never imported here; the callers hand in their clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from runctl_tui.checkpoints.inspect import (
    MAX_LISTED,
    Inspection,
    NamedFile,
    Read,
    inspect_checkpoint,
    inspect_reader_async,
    plan_directory,
    plan_file,
    run_plan,
    run_plan_async,
)
from runctl_tui.checkpoints.listing import Checkpoint, failure_reason
from runctl_tui.text import one_line

if TYPE_CHECKING:
    import asyncssh

T = TypeVar("T")

CALL_TIMEOUT = 20.0
"""Seconds one SFTP call (open, read, directory read) may take."""
TOTAL_TIMEOUT = 120.0
"""Seconds one checkpoint's inspection over SFTP may take in all."""

_REGULAR = 1
_SYMLINK = 3


class NoAnswer(Exception):
    """A storage call got no answer in time; the message says how long it waited."""


def _label(name: str) -> str:
    base = posixpath.basename(name.rstrip("/")) or name
    return one_line(base, 120)


def _failed(name: str, why: str) -> Inspection:
    return Inspection(name=name, error=f"{_label(name)}: not inspected: {why}")


def _wanted(checkpoint: Checkpoint) -> frozenset[str] | None:
    """The file names to inspect in :attr:`Checkpoint.path` when it is a directory (``None``:
    all of its top-level files); for a single file, the empty set."""
    if checkpoint.is_dir:
        return None
    if checkpoint.shards is not None:
        return frozenset(posixpath.basename(member) for member in checkpoint.members)
    return frozenset()


def _pick(files: Mapping[str, int], wanted: frozenset[str] | None) -> dict[str, int]:
    if wanted is None:
        return dict(files)
    return {name: size for name, size in files.items() if name in wanted}


# ---------------------------------------------------------------------------------------------
# This machine


def inspect_local(checkpoint: Checkpoint) -> Inspection:
    """Inspect a checkpoint of a local listing: a file, a directory or a shard set."""
    wanted = _wanted(checkpoint)
    if wanted is None or not wanted:
        return inspect_checkpoint(checkpoint.path)
    name = checkpoint.path
    files: dict[str, int] = {}
    for member in checkpoint.members:
        try:
            files[os.path.basename(member)] = os.stat(member).st_size
        except OSError as exc:
            return _failed(name, f"{os.path.basename(member)}: {failure_reason(exc)}")
    handles: dict[str, Any] = {}

    def read(request: Read) -> bytes:
        file = handles.get(request.member)
        if file is None:
            file = handles[request.member] = open(  # noqa: SIM115 - closed below
                os.path.join(name, request.member), "rb"
            )
        file.seek(request.start)
        data: bytes = file.read(request.end - request.start)
        return data

    try:
        return run_plan(plan_directory(name, files), read)
    finally:
        for file in handles.values():
            file.close()


# ---------------------------------------------------------------------------------------------
# S3


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` as (``bucket``, ``a/b``); ``ValueError`` for anything else."""
    if url[:5].lower() != "s3://":
        raise ValueError(f"not an S3 URL: {one_line(url, 120)}")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {one_line(url, 120)}")
    return bucket, key


class S3RangeReader(NamedFile):
    """A :class:`~runctl_tui.checkpoints.inspect.RangeReader` over one S3 object: each read is
    a ranged ``get_object``. Blocks, like every boto3 call."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, name: str = "") -> None:
        super().__init__(name or f"s3://{bucket}/{key}", size)
        self._client = client
        self.bucket = bucket
        self.key = key
        self.requests = 0
        """``get_object`` calls made so far."""

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (fewer at the end of the object)."""
        return s3_range(self._client, self.bucket, self.key, start, end, self)


def s3_range(
    client: Any, bucket: str, key: str, start: int, end: int, counter: S3RangeReader | None = None
) -> bytes:
    """Bytes ``[start, end)`` of an S3 object, in one ranged ``get_object``."""
    if end <= start:
        return b""
    if counter is not None:
        counter.requests += 1
    answer = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
    body = answer["Body"]
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data


def s3_files(client: Any, bucket: str, prefix: str, limit: int = MAX_LISTED) -> dict[str, int]:
    """The objects directly below ``prefix`` (a "directory" ending in ``/``) and their sizes."""
    files: dict[str, int] = {}
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for item in page.get("Contents", ()):
            name = str(item["Key"])[len(prefix) :]
            if name and "/" not in name:
                files[name] = int(item.get("Size", 0))
            if len(files) >= limit:
                return files
    return files


def inspect_s3(client: Any, checkpoint: Checkpoint) -> Inspection:
    """Inspect a checkpoint of an S3 listing with ranged reads. Blocks."""
    name = checkpoint.path
    try:
        bucket, key = split_s3(checkpoint.path)
    except ValueError as exc:
        return _failed(name, str(exc))
    wanted = _wanted(checkpoint)
    if wanted is not None and not wanted:
        reader = S3RangeReader(client, bucket, key, checkpoint.size, name)
        return run_plan(
            plan_file(name, checkpoint.size), lambda r: reader.read_range(r.start, r.end)
        )
    prefix = key.rstrip("/") + "/" if key else ""
    try:
        files = _pick(s3_files(client, bucket, prefix), wanted)
    except Exception as exc:  # noqa: BLE001 - botocore's errors of every kind become one line
        return _failed(name, f"cannot list its files: {failure_reason(exc)}")

    def read(request: Read) -> bytes:
        return s3_range(client, bucket, prefix + request.member, request.start, request.end)

    return run_plan(plan_directory(name, files), read)


# ---------------------------------------------------------------------------------------------
# SFTP


async def _bounded(step: Awaitable[T], seconds: float) -> T:
    try:
        return await asyncio.wait_for(step, seconds)
    except TimeoutError:
        raise NoAnswer(f"no answer within {seconds:g} s") from None


class SftpRangeReader(NamedFile):
    """An :class:`~runctl_tui.checkpoints.inspect.AsyncRangeReader` over a file opened with
    asyncssh's SFTP client: ``seek`` then ``read``, each bounded by ``timeout``."""

    def __init__(
        self, file: asyncssh.SFTPClientFile, name: str, size: int, timeout: float = CALL_TIMEOUT
    ) -> None:
        super().__init__(name, size)
        self._file = file
        self.timeout = timeout

    async def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (fewer at the end of the file)."""
        if end <= start:
            return b""
        await _bounded(self._file.seek(start), self.timeout)
        data = await _bounded(self._file.read(end - start), self.timeout)
        return data if isinstance(data, bytes) else data.encode()

    async def close(self) -> None:
        """Close the file on the host, waiting at most ``timeout``."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._file.close(), self.timeout)


async def sftp_files(
    sftp: asyncssh.SFTPClient,
    directory: str,
    timeout: float = CALL_TIMEOUT,  # noqa: ASYNC109 - each SFTP call has its own bound
) -> dict[str, int]:
    """The regular files directly in ``directory`` on the host (links followed) and their sizes."""
    files: dict[str, int] = {}
    names = await _bounded(sftp.readdir(directory), timeout)
    for item in names[: MAX_LISTED + 2]:
        name = item.filename if isinstance(item.filename, str) else item.filename.decode()
        if name in {".", ".."}:
            continue
        attrs = item.attrs
        if attrs.type == _SYMLINK:
            try:
                attrs = await _bounded(sftp.stat(posixpath.join(directory, name)), timeout)
            except Exception:  # noqa: BLE001 - a dangling link is just not a file to inspect
                continue
        if attrs.type == _REGULAR:
            files[name] = int(attrs.size or 0)
    return files


async def inspect_sftp(
    sftp: asyncssh.SFTPClient,
    checkpoint: Checkpoint,
    *,
    name: str | None = None,
    timeout: float = CALL_TIMEOUT,  # noqa: ASYNC109 - each SFTP call has its own bound
    total_timeout: float = TOTAL_TIMEOUT,
) -> Inspection:
    """Inspect a checkpoint of an SFTP listing; ``name`` is how it is shown (``host:path``)."""
    shown = name or checkpoint.path
    handles: dict[str, SftpRangeReader] = {}

    async def reader(path: str, size: int) -> SftpRangeReader:
        found = handles.get(path)
        if found is None:
            file = await _bounded(sftp.open(path, "rb"), timeout)
            found = handles[path] = SftpRangeReader(file, shown, size, timeout)
        return found

    try:
        async with asyncio.timeout(total_timeout):
            wanted = _wanted(checkpoint)
            if wanted is not None and not wanted:
                try:
                    file = await _bounded(sftp.open(checkpoint.path, "rb"), timeout)
                    # The file may have grown since it was listed: its zip directory is at
                    # the end it has now.
                    attrs = await _bounded(file.stat(), timeout)
                except Exception as exc:  # noqa: BLE001 - any SFTP failure becomes one line
                    return _failed(shown, failure_reason(exc))
                size = int(attrs.size) if attrs.size is not None else checkpoint.size
                opened = handles[checkpoint.path] = SftpRangeReader(file, shown, size, timeout)
                return await inspect_reader_async(opened)
            directory = checkpoint.path
            try:
                files = _pick(await sftp_files(sftp, directory, timeout), wanted)
            except Exception as exc:  # noqa: BLE001 - any SFTP failure becomes one line
                return _failed(shown, f"cannot list its files: {failure_reason(exc)}")

            async def read_member(request: Read) -> bytes:
                opened = await reader(
                    posixpath.join(directory, request.member), files.get(request.member, 0)
                )
                return await opened.read_range(request.start, request.end)

            return await run_plan_async(plan_directory(shown, files), read_member)
    except TimeoutError:
        return _failed(shown, f"took longer than {total_timeout:g} s")
    finally:
        for opened in handles.values():
            await opened.close()
