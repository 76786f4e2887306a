"""What a user does to a listed checkpoint: copy a resume command, download, delete, keep-last-N.

Every step that touches storage is bounded by a seconds and returns a one-line result rather
than raising. A download writes ``NAME.part`` (a file, or a directory tree) and renames it only
once every byte is there and every size matches; a cancelled or failed one removes it. A
deletion first looks again at what is there now and refuses when it is not what the user saw
(size and modification time), when anything it would remove lies outside the listed directory
(links followed, ``..`` resolved), or, on this machine, when a process has it open for
writing; each one is journaled before and after. asyncssh and boto3 are never imported here:
the callers hand in the hub and the client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import posixpath
import shlex
import shutil
import stat
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runctl_tui.audit import ATTEMPTED, Journal, JournalError, current_user
from runctl_tui.checkpoints.listing import (
    INSIDE_DEPTH,
    Checkpoint,
    KeepPlan,
    Listing,
    LocationKind,
    failure_reason,
    size_text,
)
from runctl_tui.checkpoints.listing_remote import sftp_path
from runctl_tui.checkpoints.listing_s3 import parse_s3_url
from runctl_tui.checkpoints.remote_read import split_s3
from runctl_tui.models import Outcome
from runctl_tui.text import one_line
from runctl_tui.threads import run_blocking

if TYPE_CHECKING:
    import asyncssh

    from runctl_tui.remote.ssh import SshHub, SshTarget

T = TypeVar("T")

DEFAULT_RESUME_TEMPLATE = "python train.py --resume {path}"
RESUME_FIELDS = frozenset({"path", "step", "epoch", "name"})
OSC52_MAX_BYTES = 100_000
"""Terminals drop (or choke on) longer clipboard sequences; refused above this."""
CALL_TIMEOUT = 30.0
"""Seconds one storage call (open, one read, stat, remove) may take."""
CHUNK = 1024 * 1024
PART = ".part"
DELETE_ACTION = "delete-checkpoint"
"""The journal's ``action`` for a checkpoint deletion."""
MTIME_SLACK = 0.01
"""Seconds two modification times may differ by and still be the same (float rounding)."""

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) as a download goes on."""


# ---------------------------------------------------------------------------------------------
# Resume command and clipboard


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def resume_command(template: str, checkpoint: Checkpoint) -> str:
    """``template`` filled in for ``checkpoint``: ``{path}`` and ``{name}`` shell-quoted,
    ``{step}`` and ``{epoch}`` as numbers. ``ValueError`` (one line) for an unknown or
    malformed placeholder, or one the checkpoint has no value for."""
    values: dict[str, object] = {
        "path": shlex.quote(checkpoint.path),
        "name": shlex.quote(checkpoint.basename()),
        "step": checkpoint.step,
        "epoch": _number(checkpoint.epoch),
    }
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"resume template {one_line(template, 80)!r}: {exc}") from None
    for name in fields:
        if name not in RESUME_FIELDS:
            shown = "{" + one_line(name, 40) + "}" if name else "{}"
            known = ", ".join("{" + f + "}" for f in sorted(RESUME_FIELDS))
            raise ValueError(f"resume template: unknown placeholder {shown} (known: {known})")
        if values[name] is None:
            raise ValueError(
                f"resume template uses {{{name}}} but {one_line(checkpoint.basename(), 80)} "
                f"has no {name}"
            )
    try:
        return template.format_map(values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(
            f"resume template {one_line(template, 80)!r}: {one_line(exc, 120)}"
        ) from None


def osc52(text: str) -> str:
    """The OSC 52 sequence that puts ``text`` on the terminal's clipboard (over SSH too);
    ``ValueError`` when it is longer than terminals take."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    if len(payload) > OSC52_MAX_BYTES:
        raise ValueError(
            f"too long to copy to the clipboard ({len(payload)} bytes encoded, "
            f"at most {OSC52_MAX_BYTES})"
        )
    return f"\x1b]52;c;{payload}\x07"


# ---------------------------------------------------------------------------------------------
# Where a listing's checkpoints live


@dataclass(frozen=True)
class Store:
    """How to reach a listing's checkpoints: this machine, an SSH host (SFTP on the hub's
    shared connection), or S3 (a boto3 client, called on a thread)."""

    kind: LocationKind
    hub: SshHub | None = None
    target: SshTarget | None = None
    s3: Any = None

    @classmethod
    def local(cls) -> Store:
        """This machine."""
        return cls(LocationKind.LOCAL)

    @classmethod
    def sftp(cls, hub: SshHub, target: SshTarget) -> Store:
        """``target``, reached through ``hub``."""
        return cls(LocationKind.SSH, hub=hub, target=target)

    @classmethod
    def s3_client(cls, client: Any) -> Store:
        """S3, through ``client``."""
        return cls(LocationKind.S3, s3=client)


@dataclass(frozen=True)
class CheckpointResult:
    """How one download or deletion of one checkpoint ended."""

    checkpoint: Checkpoint
    outcome: Outcome
    message: str
    """One line for a notification."""
    path: str | None = None
    """Where a download was written."""
    bytes: int = 0
    """Bytes downloaded, or freed."""

    @property
    def ok(self) -> bool:
        """Whether it was done."""
        return self.outcome is Outcome.DONE


class _Refused(Exception):
    """Not done, on purpose; the message says why."""


class _Failed(Exception):
    """Storage failed; the message says how."""


async def _bounded(step: Awaitable[T], seconds: float) -> T:
    try:
        return await asyncio.wait_for(step, seconds)
    except TimeoutError:
        raise _Failed(f"no answer within {seconds:g} s") from None


def _text(name: str | bytes) -> str:
    return name if isinstance(name, str) else name.decode("utf-8", "surrogateescape")


def _safe_part(name: str) -> bool:
    """Whether a name from storage can be one part of a local path."""
    return bool(name) and name not in {".", ".."} and "/" not in name and "\0" not in name


def _label(checkpoint: Checkpoint) -> str:
    return one_line(checkpoint.basename(), 80)


# ---------------------------------------------------------------------------------------------
# Download


@dataclass
class _Source:
    """One file to fetch: where it is, where it goes below the download's top, its size."""

    remote: str
    relative: tuple[str, ...]
    size: int
    etag: str | None = None


@dataclass
class _Transfer:
    done: int = 0
    total: int = 0
    progress: Progress | None = None

    def add(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)


def _top_name(checkpoint: Checkpoint) -> str:
    """The name the download gets locally: the file's, the directory's, or the shards'."""
    name = posixpath.basename(checkpoint.path.rstrip("/"))
    if checkpoint.kind is LocationKind.S3 and checkpoint.shards is None and not name:
        name = checkpoint.basename()
    if not _safe_part(name):
        raise _Refused(f"cannot download {_label(checkpoint)}: unusable name {one_line(name, 60)}")
    return name


def _is_tree(checkpoint: Checkpoint) -> bool:
    return checkpoint.is_dir or checkpoint.shards is not None


def _local_sizes(top: Path) -> dict[tuple[str, ...], int] | None:
    """The files below ``top`` and their sizes (``top`` itself a file: one entry, ``()``)."""
    try:
        info = top.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISREG(info.st_mode):
        return {(): info.st_size}
    found: dict[tuple[str, ...], int] = {}
    if stat.S_ISDIR(info.st_mode):
        for folder, _, files in os.walk(top):
            rel = Path(folder).relative_to(top).parts
            for name in files:
                found[(*rel, name)] = (Path(folder) / name).lstat().st_size
    else:
        found[("?",)] = -1
    return found


async def _sftp_sources(
    sftp: asyncssh.SFTPClient, checkpoint: Checkpoint, seconds: float
) -> list[_Source]:
    if checkpoint.shards is not None:
        sources = []
        for member in checkpoint.members:
            attrs = await _bounded(sftp.stat(member), seconds)
            sources.append(_Source(member, (posixpath.basename(member),), int(attrs.size or 0)))
        return sources
    if not checkpoint.is_dir:
        attrs = await _bounded(sftp.stat(checkpoint.path), seconds)
        if attrs.type != 1:
            raise _Failed("not a regular file")
        return [_Source(checkpoint.path, (), int(attrs.size or 0))]
    found: list[_Source] = []

    async def walk(path: str, rel: tuple[str, ...]) -> None:
        names = await _bounded(sftp.readdir(path), seconds)
        for item in names:
            name = _text(item.filename)
            if name in {".", ".."}:
                continue
            if not _safe_part(name):
                raise _Failed(f"unusable file name {one_line(name, 60)!r}")
            child = posixpath.join(path, name)
            attrs = item.attrs
            if attrs.type == 3:
                attrs = await _bounded(sftp.stat(child), seconds)
            if attrs.type == 2 and item.attrs.type != 3:
                if len(rel) + 1 < INSIDE_DEPTH:
                    await walk(child, (*rel, name))
            elif attrs.type == 1:
                found.append(_Source(child, (*rel, name), int(attrs.size or 0)))

    await walk(checkpoint.path, ())
    return found


def _s3_sources(client: Any, checkpoint: Checkpoint) -> list[_Source]:
    if not _is_tree(checkpoint):
        bucket, key = split_s3(checkpoint.path)
        head = client.head_object(Bucket=bucket, Key=key)
        return [_Source(key, (), int(head["ContentLength"]), str(head.get("ETag", "")))]
    if checkpoint.shards is not None:
        sources = []
        for member in checkpoint.members:
            bucket, key = split_s3(member)
            head = client.head_object(Bucket=bucket, Key=key)
            sources.append(
                _Source(
                    key,
                    (posixpath.basename(key),),
                    int(head["ContentLength"]),
                    str(head.get("ETag", "")),
                )
            )
        return sources
    bucket, key = split_s3(checkpoint.path)
    prefix = key.rstrip("/") + "/"
    sources = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            relative = str(item["Key"])[len(prefix) :]
            if not relative or relative.endswith("/"):
                continue
            parts = tuple(relative.split("/"))
            if not all(_safe_part(p) for p in parts):
                raise _Failed(f"unusable object key {one_line(item['Key'], 80)!r}")
            sources.append(
                _Source(str(item["Key"]), parts, int(item.get("Size", 0)), str(item.get("ETag")))
            )
    return sources


def _etag_md5(etag: str | None) -> str | None:
    """The MD5 an ETag is, for objects uploaded in one part; ``None`` for multipart ones."""
    if not etag:
        return None
    value = etag.strip('"')
    return value.lower() if len(value) == 32 and "-" not in value else None


def _s3_fetch(
    client: Any,
    bucket: str,
    source: _Source,
    target: Path,
    transfer: _Transfer,
    cancelled: Callable[[], bool],
) -> None:
    """Copy one object to ``target`` (blocks), checking its length and single-part ETag."""
    answer = client.get_object(Bucket=bucket, Key=source.remote)
    length = int(answer.get("ContentLength", source.size))
    if length != source.size:
        raise _Failed(f"{source.remote}: {length} bytes now, {source.size} when looked at")
    digest = hashlib.md5(usedforsecurity=False)
    written = 0
    body = answer["Body"]
    try:
        with open(target, "xb") as out:
            while chunk := body.read(CHUNK):
                if cancelled():
                    raise asyncio.CancelledError
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                transfer.add(len(chunk))
    finally:
        body.close()
    if written != source.size:
        raise _Failed(f"{one_line(source.remote, 80)}: got {written} of {source.size} bytes")
    expected = _etag_md5(source.etag) or _etag_md5(str(answer.get("ETag", "")))
    if expected is not None and digest.hexdigest() != expected:
        raise _Failed(f"{one_line(source.remote, 80)}: content does not match its ETag")


async def _sftp_fetch(
    sftp: asyncssh.SFTPClient, source: _Source, target: Path, transfer: _Transfer, seconds: float
) -> None:
    written = 0
    remote = await _bounded(sftp.open(source.remote, "rb"), seconds)
    try:
        with open(target, "xb") as out:  # noqa: ASYNC230 - a local write, never a wait
            while True:
                data = await _bounded(remote.read(CHUNK, written), seconds)
                if not data:
                    break
                chunk = data if isinstance(data, bytes) else data.encode()
                out.write(chunk)
                written += len(chunk)
                transfer.add(len(chunk))
                if written > source.size:
                    break
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(remote.close(), seconds)
    if written != source.size:
        raise _Failed(
            f"{one_line(posixpath.basename(source.remote), 80)}: got {written} bytes, "
            f"expected {source.size} (changed while downloading?)"
        )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _prepare(part: Path, sources: list[_Source], tree: bool) -> list[Path]:
    """Make room for the download at ``part``; the local path of each source."""
    _remove(part)
    if not tree:
        return [part]
    part.mkdir()
    targets = []
    for source in sources:
        target = part.joinpath(*source.relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        targets.append(target)
    return targets


async def download(
    checkpoint: Checkpoint,
    destination: str | os.PathLike[str],
    store: Store,
    *,
    progress: Progress | None = None,
    timeout: float = CALL_TIMEOUT,  # noqa: ASYNC109 - each storage call has its own bound
) -> CheckpointResult:
    """Fetch a remote or S3 ``checkpoint`` into the local directory ``destination``.

    A file arrives as ``destination/NAME``, a directory or a shard set as a directory of that
    name; both are written as ``NAME.part`` and renamed once complete and verified (each
    file's size against what the storage reports, their sum against the listing; S3 objects
    also against their ETag). An existing ``NAME`` with the same files and sizes counts as
    already downloaded; a different one is never overwritten. Cancelling removes ``NAME.part``.
    """
    label = _label(checkpoint)
    part: Path | None = None
    try:
        if checkpoint.kind is LocationKind.LOCAL or store.kind is LocationKind.LOCAL:
            raise _Refused(f"{label} is already on this machine")
        if store.kind is not checkpoint.kind:
            raise _Refused(f"{label} is on {checkpoint.kind}, not {store.kind}")
        folder = Path(destination).expanduser()  # noqa: ASYNC240 - no I/O
        if not os.path.isdir(folder):  # noqa: ASYNC240 - one stat
            raise _Refused(f"cannot download {label}: {folder} is not a directory")
        name = _top_name(checkpoint)
        final = folder / name
        part = folder / (name + PART)
        tree = _is_tree(checkpoint)
        transfer = _Transfer(progress=progress)
        if store.kind is LocationKind.SSH:
            return await _download_sftp(checkpoint, store, final, part, tree, transfer, timeout)
        return await _download_s3(checkpoint, store, final, part, tree, transfer)
    except _Refused as exc:
        return CheckpointResult(checkpoint, Outcome.REFUSED, one_line(exc, 300))
    except asyncio.CancelledError:
        if part is not None:
            await asyncio.shield(run_blocking(lambda: _remove(part), name="runctl-cleanup"))
        raise
    except Exception as exc:  # noqa: BLE001 - every storage failure becomes one line
        if part is not None:
            _remove(part)
        return CheckpointResult(
            checkpoint,
            Outcome.FAILED,
            one_line(f"download of {label} failed: {failure_reason(exc)}", 300),
        )


def _check_existing(
    final: Path, sources: list[_Source], tree: bool, checkpoint: Checkpoint
) -> CheckpointResult | None:
    """``None`` when ``final`` is free; a result when it already holds this checkpoint;
    refused when it holds something else."""
    existing = _local_sizes(final)
    if existing is None:
        return None
    wanted = {s.relative: s.size for s in sources} if tree else {(): sources[0].size}
    if existing == wanted:
        return CheckpointResult(
            checkpoint,
            Outcome.DONE,
            one_line(f"{_label(checkpoint)} already downloaded to {final} (same sizes)", 300),
            path=str(final),
        )
    raise _Refused(f"not overwriting {one_line(final, 200)}: it exists and differs")


def _verify_total(checkpoint: Checkpoint, sources: list[_Source]) -> int:
    total = sum(s.size for s in sources)
    if total != checkpoint.size:
        raise _Failed(
            f"{total} bytes there now, {checkpoint.size} when listed: changed since listed"
        )
    return total


def _finish(checkpoint: Checkpoint, part: Path, final: Path, total: int) -> CheckpointResult:
    sizes = _local_sizes(part) or {}
    if sum(sizes.values()) != total:
        raise _Failed(f"{sum(sizes.values())} bytes written, {total} expected")
    if final.exists() or final.is_symlink():
        raise _Refused(f"not overwriting {one_line(final, 200)}: it appeared while downloading")
    part.rename(final)
    return CheckpointResult(
        checkpoint,
        Outcome.DONE,
        one_line(f"downloaded {_label(checkpoint)} ({size_text(total)}, size verified) to {final}"),
        path=str(final),
        bytes=total,
    )


async def _download_sftp(
    checkpoint: Checkpoint,
    store: Store,
    final: Path,
    part: Path,
    tree: bool,
    transfer: _Transfer,
    seconds: float,
) -> CheckpointResult:
    assert store.hub is not None
    assert store.target is not None
    conn = await _bounded(store.hub.connection(store.target), seconds)
    sftp = await _bounded(conn.start_sftp_client(), seconds)
    try:
        sources = await _sftp_sources(sftp, checkpoint, seconds)
        existing = _check_existing(final, sources, tree, checkpoint)
        if existing is not None:
            return existing
        transfer.total = _verify_total(checkpoint, sources)
        targets = _prepare(part, sources, tree)
        transfer.add(0)
        for source, target in zip(sources, targets, strict=True):
            await _sftp_fetch(sftp, source, target, transfer, seconds)
        return _finish(checkpoint, part, final, transfer.total)
    finally:
        sftp.exit()


async def _download_s3(
    checkpoint: Checkpoint,
    store: Store,
    final: Path,
    part: Path,
    tree: bool,
    transfer: _Transfer,
) -> CheckpointResult:
    client = store.s3
    bucket, _ = split_s3(checkpoint.path)
    sources = await run_blocking(lambda: _s3_sources(client, checkpoint), name="runctl-s3")
    existing = _check_existing(final, sources, tree, checkpoint)
    if existing is not None:
        return existing
    transfer.total = _verify_total(checkpoint, sources)
    targets = _prepare(part, sources, tree)
    loop = asyncio.get_running_loop()
    report = transfer.progress
    if report is not None:
        # Bytes arrive on the download's thread; the callback runs on the event loop.
        def on_loop(done: int, total: int) -> None:
            loop.call_soon_threadsafe(report, done, total)

        transfer.progress = on_loop
    transfer.add(0)
    stop = False

    def fetch_all() -> None:
        try:
            for source, target in zip(sources, targets, strict=True):
                if stop:
                    raise asyncio.CancelledError
                _s3_fetch(client, bucket, source, target, transfer, lambda: stop)
        finally:
            if stop:
                # Cancelled while a read was under way: nothing partial stays behind.
                _remove(part)

    try:
        # The client's own connect and read timeouts bound each call on the thread.
        await run_blocking(fetch_all, name="runctl-s3-download")
    except asyncio.CancelledError:
        stop = True
        raise
    return _finish(checkpoint, part, final, transfer.total)


# ---------------------------------------------------------------------------------------------
# Delete


@dataclass(frozen=True)
class Seen:
    """What a checkpoint is now: its bytes and newest modification time."""

    size: int
    mtime: float
    files: int = 0


def _inside(root: str, path: str) -> bool:
    """Whether ``path`` lies strictly below ``root`` (both normalised, POSIX separators)."""
    root = posixpath.normpath(root)
    path = posixpath.normpath(path)
    return path != root and path.startswith(root.rstrip("/") + "/")


def _same(checkpoint: Checkpoint, seen: Seen) -> bool:
    return (
        seen.size == checkpoint.size
        and abs(seen.mtime - checkpoint.modified.timestamp()) <= MTIME_SLACK
    )


def _changed(checkpoint: Checkpoint, seen: Seen) -> str:
    return (
        f"{_label(checkpoint)} changed since listed "
        f"({size_text(checkpoint.size)} then, {size_text(seen.size)} now); list again"
    )


# -- this machine


def _local_root(listing: Listing) -> str:
    root = Path(listing.directory).expanduser()
    if not root.is_dir():
        raise _Refused(f"{one_line(listing.directory, 120)}: no longer a directory")
    return os.path.realpath(root)


def _local_target(root: str, member: str) -> str:
    """``member`` with its directories' links resolved; refused unless it lies below ``root``
    and, if it is a link itself, its target does too."""
    parent = os.path.realpath(os.path.dirname(member))
    resolved = os.path.join(parent, os.path.basename(member))
    if not _inside(root, resolved):
        raise _Refused(f"{one_line(member, 160)} is outside the listed directory; not deleted")
    if os.path.islink(resolved) and not _inside(root, os.path.realpath(resolved)):
        raise _Refused(
            f"{one_line(member, 160)} is a link leading outside the listed directory; not deleted"
        )
    return resolved


def _local_seen(root: str, targets: list[str]) -> Seen:
    size = files = 0
    newest = 0.0
    dir_time = 0.0
    for target in targets:
        info = os.stat(target)
        if not stat.S_ISDIR(info.st_mode):
            size, newest, files = size + info.st_size, max(newest, info.st_mtime), files + 1
            continue
        dir_time = max(dir_time, info.st_mtime)
        for folder, dirs, names in os.walk(target):
            # As deep as a listing sums a checkpoint directory's files, and no deeper.
            if len(os.path.relpath(folder, root).split(os.sep)) + 1 >= INSIDE_DEPTH:
                dirs[:] = []
            for name in names:
                try:
                    found = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                if stat.S_ISREG(found.st_mode):
                    size, newest = size + found.st_size, max(newest, found.st_mtime)
                    files += 1
    return Seen(size, newest if files else dir_time, files)


def _open_for_writing(targets: list[str]) -> str | None:
    """Which process has a file below ``targets`` open for writing, in one line, if any."""
    import psutil

    prefixes = tuple(t.rstrip(os.sep) + os.sep for t in targets)
    for process in psutil.process_iter(["pid", "name"]):
        try:
            opened = process.open_files()
        except (psutil.Error, OSError):
            continue
        for item in opened:
            mode = getattr(item, "mode", "r")
            path = os.path.realpath(item.path)
            if any(ch in mode for ch in "wa+") and (path in targets or path.startswith(prefixes)):
                name = one_line(process.info.get("name") or "?", 40)
                return (
                    f"{one_line(item.path, 120)} is open for writing by {name} (pid {process.pid})"
                )
    return None


def open_for_writing_under(directory: str) -> set[str]:
    """The files below ``directory`` that some process on this machine has open for writing
    (real paths), for a keep-last-N preview that leaves them out. Blocks."""
    import psutil

    given = os.path.expanduser(directory)
    root = os.path.realpath(given)
    prefix = root.rstrip(os.sep) + os.sep
    found: set[str] = set()
    for process in psutil.process_iter():
        try:
            opened = process.open_files()
        except (psutil.Error, OSError):
            continue
        for item in opened:
            path = os.path.realpath(item.path)
            if any(ch in getattr(item, "mode", "r") for ch in "wa+") and path.startswith(prefix):
                # As listed too: the listing names files under the directory as given.
                found.update((path, os.path.join(given, os.path.relpath(path, root))))
    return found


def _local_check(listing: Listing, checkpoint: Checkpoint) -> list[str]:
    root = _local_root(listing)
    targets = [_local_target(root, member) for member in checkpoint.members]
    try:
        seen = _local_seen(root, targets)
    except FileNotFoundError:
        raise _Refused(f"{_label(checkpoint)} is gone since listed") from None
    if not _same(checkpoint, seen):
        raise _Refused(_changed(checkpoint, seen))
    writer = _open_for_writing(targets)
    if writer is not None:
        raise _Refused(f"{_label(checkpoint)} not deleted: {writer}")
    return targets


def _local_delete(targets: list[str]) -> None:
    for target in targets:
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)


# -- SFTP


async def _sftp_root(sftp: asyncssh.SFTPClient, listing: Listing, seconds: float) -> str:
    return _text(await _bounded(sftp.realpath(sftp_path(listing.directory)), seconds))


async def _sftp_target(
    sftp: asyncssh.SFTPClient, root: str, member: str, seconds: float
) -> tuple[str, bool]:
    """``member`` resolved as :func:`_local_target` does, and whether it is a real directory."""
    parent = _text(await _bounded(sftp.realpath(posixpath.dirname(member)), seconds))
    resolved = posixpath.join(parent, posixpath.basename(member))
    if not _inside(root, resolved):
        raise _Refused(f"{one_line(member, 160)} is outside the listed directory; not deleted")
    attrs = await _bounded(sftp.lstat(resolved), seconds)
    if attrs.type == 3:
        real = _text(await _bounded(sftp.realpath(resolved), seconds))
        if not _inside(root, real):
            raise _Refused(
                f"{one_line(member, 160)} is a link leading outside the listed directory; "
                "not deleted"
            )
    return resolved, attrs.type == 2


async def _sftp_tree(
    sftp: asyncssh.SFTPClient, top: str, seconds: float
) -> tuple[list[tuple[str, Any]], list[str]]:
    """Everything below ``top``, links not followed: (path, attrs) of non-directories, and
    the directories, deepest first."""
    files: list[tuple[str, Any]] = []
    dirs: list[str] = []

    async def walk(path: str, depth: int) -> None:
        for item in await _bounded(sftp.readdir(path), seconds):
            name = _text(item.filename)
            if name in {".", ".."}:
                continue
            if not _safe_part(name):
                raise _Failed(f"unusable file name {one_line(name, 60)!r}")
            child = posixpath.join(path, name)
            if item.attrs.type == 2:
                await walk(child, depth + 1)
            else:
                files.append((child, item.attrs))
        dirs.append(path)

    await walk(top, 0)
    return files, dirs


async def _sftp_check(
    sftp: asyncssh.SFTPClient, listing: Listing, checkpoint: Checkpoint, seconds: float
) -> list[tuple[str, bool]]:
    import asyncssh

    root = await _sftp_root(sftp, listing, seconds)
    try:
        targets = [await _sftp_target(sftp, root, m, seconds) for m in checkpoint.members]
        size = files = 0
        newest = dir_time = 0.0
        for path, is_dir in targets:
            if not is_dir:
                attrs = await _bounded(sftp.stat(path), seconds)
                size, newest = size + int(attrs.size or 0), max(newest, float(attrs.mtime or 0))
                files += 1
                continue
            attrs = await _bounded(sftp.stat(path), seconds)
            dir_time = max(dir_time, float(attrs.mtime or 0))
            found, _ = await _sftp_tree(sftp, path, seconds)
            for child, child_attrs in found:
                if child_attrs.type == 3:
                    try:
                        child_attrs = await _bounded(sftp.stat(child), seconds)
                    except (_Failed, asyncssh.SFTPError):
                        continue
                if child_attrs.type == 1:
                    size += int(child_attrs.size or 0)
                    newest = max(newest, float(child_attrs.mtime or 0))
                    files += 1
    except asyncssh.SFTPNoSuchFile:
        raise _Refused(f"{_label(checkpoint)} is gone since listed") from None
    seen = Seen(size, newest if files else dir_time, files)
    if not _same(checkpoint, seen):
        raise _Refused(_changed(checkpoint, seen))
    return targets


async def _sftp_delete(
    sftp: asyncssh.SFTPClient, targets: list[tuple[str, bool]], seconds: float
) -> None:
    for path, is_dir in targets:
        if not is_dir:
            await _bounded(sftp.remove(path), seconds)
            continue
        files, dirs = await _sftp_tree(sftp, path, seconds)
        for child, _ in files:
            await _bounded(sftp.remove(child), seconds)
        for folder in dirs:
            await _bounded(sftp.rmdir(folder), seconds)


# -- S3


def _s3_keys(client: Any, listing: Listing, checkpoint: Checkpoint) -> tuple[str, list[str]]:
    """The bucket and the keys deleting ``checkpoint`` removes, after checking they are all
    below the listed prefix and what was listed is still there. Blocks."""
    bucket, prefix = parse_s3_url(listing.directory)
    keys: list[tuple[str, int, float]] = []
    for member in checkpoint.members:
        member_bucket, key = split_s3(member)
        parts = key.split("/")
        if (
            member_bucket != bucket
            or not key.startswith(prefix)
            or key == prefix.rstrip("/")
            or any(p in {".", ".."} for p in parts)
        ):
            raise _Refused(f"{one_line(member, 160)} is outside the listed prefix; not deleted")
        if not _is_tree(checkpoint) or checkpoint.shards is not None:
            try:
                head = client.head_object(Bucket=bucket, Key=key)
            except Exception as exc:
                if failure_reason(exc).startswith(("404", "NoSuchKey", "Not Found")):
                    raise _Refused(f"{_label(checkpoint)} is gone since listed") from None
                raise
            modified = head.get("LastModified")
            mtime = modified.timestamp() if isinstance(modified, datetime) else 0.0
            keys.append((key, int(head["ContentLength"]), mtime))
            continue
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=key.rstrip("/") + "/"
        )
        for page in pages:
            for item in page.get("Contents", ()):
                modified = item.get("LastModified")
                mtime = modified.timestamp() if isinstance(modified, datetime) else 0.0
                keys.append((str(item["Key"]), int(item.get("Size", 0)), mtime))
    files = [k for k in keys if not k[0].endswith("/")]
    if not keys:
        raise _Refused(f"{_label(checkpoint)} is gone since listed")
    seen = Seen(sum(k[1] for k in files), max((k[2] for k in files), default=0.0), len(files))
    if seen.size != checkpoint.size or abs(seen.mtime - checkpoint.modified.timestamp()) > 1:
        raise _Refused(_changed(checkpoint, seen))
    return bucket, [k[0] for k in keys]


def _s3_delete(client: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        answer = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise _Failed(
                f"{len(errors)} object(s) not deleted, first {one_line(first.get('Key'), 80)}: "
                f"{one_line(first.get('Code', ''), 40)} {one_line(first.get('Message', ''), 80)}"
            )


# -- the journal


def _journal_entry(
    listing: Listing, checkpoint: Checkpoint, result: str, detail: str = ""
) -> dict[str, Any]:
    """A journal line shaped like the fleet's: who, what, on which checkpoint, how it ended."""
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": current_user(),
        "provider": f"checkpoints:{checkpoint.kind}",
        "region": checkpoint.where,
        "kind": "checkpoint",
        "id": checkpoint.path,
        "name": checkpoint.name,
        "action": DELETE_ACTION,
        "result": result,
        "detail": detail,
        "state_seen": (
            f"{checkpoint.size} bytes, modified {checkpoint.modified.isoformat()}, "
            f"listed from {listing.directory}"
        ),
        "state_after": "deleted" if result == Outcome.DONE else None,
    }


async def _journal(journal: Journal, entry: dict[str, Any]) -> None:
    # The same locked, fsynced append the fleet's lines go through.
    await run_blocking(lambda: journal.append(entry), name="runctl-journal")


def _listed(listing: Listing, checkpoint: Checkpoint) -> bool:
    return any(
        c.path == checkpoint.path and c.members == checkpoint.members for c in listing.checkpoints
    )


async def delete(
    checkpoint: Checkpoint,
    listing: Listing,
    store: Store,
    journal: Journal,
    *,
    timeout: float = CALL_TIMEOUT,  # noqa: ASYNC109 - each storage call has its own bound
) -> CheckpointResult:
    """Delete ``checkpoint`` (each of its :attr:`~Checkpoint.members`) from ``listing``.

    Refused, and journaled as refused, when it is not in the listing, when it changed since
    listed, when a member lies outside the listed directory or is a link leading out of it,
    or (on this machine) when a process has it open for writing; an SSH host's or S3's open
    files cannot be seen from here, and the result says so. Otherwise an ``attempted`` line
    is journaled before anything is removed and a ``done`` or ``failed`` line after.
    """
    label = _label(checkpoint)
    try:
        await run_blocking(journal.check, name="runctl-journal")
    except JournalError as exc:
        return CheckpointResult(checkpoint, Outcome.REFUSED, f"{label} not deleted: {exc}")
    sftp: list[asyncssh.SFTPClient] = []
    try:
        return await _delete(checkpoint, listing, store, journal, timeout, sftp)
    finally:
        for client in sftp:
            client.exit()


async def _delete(
    checkpoint: Checkpoint,
    listing: Listing,
    store: Store,
    journal: Journal,
    seconds: float,
    opened: list[asyncssh.SFTPClient],
) -> CheckpointResult:
    label = _label(checkpoint)
    note = ""
    remove: Callable[[], Awaitable[None]]
    try:
        if not _listed(listing, checkpoint):
            raise _Refused(f"{label} is not in the listing of {one_line(listing.directory, 120)}")
        if store.kind is not checkpoint.kind or listing.kind is not checkpoint.kind:
            raise _Refused(f"{label} is on {checkpoint.kind}, not {store.kind}")
        if checkpoint.kind is LocationKind.LOCAL:
            targets = await run_blocking(
                lambda: _local_check(listing, checkpoint), name="runctl-delete"
            )

            async def remove_local() -> None:
                await run_blocking(lambda: _local_delete(targets), name="runctl-delete")

            remove = remove_local
        elif checkpoint.kind is LocationKind.SSH:
            assert store.hub is not None
            assert store.target is not None
            conn = await _bounded(store.hub.connection(store.target), seconds)
            client = await _bounded(conn.start_sftp_client(), seconds)
            opened.append(client)
            remote = await _sftp_check(client, listing, checkpoint, seconds)
            note = " (open files on the host are not checked)"

            async def remove_remote() -> None:
                await _sftp_delete(client, remote, seconds)

            remove = remove_remote
        else:
            s3 = store.s3
            bucket, keys = await run_blocking(
                lambda: _s3_keys(s3, listing, checkpoint), name="runctl-delete"
            )
            note = " (open files cannot be checked on S3)"

            async def remove_s3() -> None:
                await run_blocking(lambda: _s3_delete(s3, bucket, keys), name="runctl-delete")

            remove = remove_s3
    except _Refused as exc:
        message = one_line(exc, 300)
        with contextlib.suppress(JournalError):
            await _journal(journal, _journal_entry(listing, checkpoint, Outcome.REFUSED, message))
        return CheckpointResult(checkpoint, Outcome.REFUSED, message)
    except Exception as exc:  # noqa: BLE001 - every storage failure becomes one line
        message = one_line(f"{label} not deleted: {failure_reason(exc)}", 300)
        return CheckpointResult(checkpoint, Outcome.FAILED, message)
    try:
        await _journal(journal, _journal_entry(listing, checkpoint, ATTEMPTED, note.strip()))
    except JournalError as exc:
        return CheckpointResult(checkpoint, Outcome.REFUSED, f"{label} not deleted: {exc}")
    try:
        await remove()
    except Exception as exc:  # noqa: BLE001 - every storage failure becomes one line
        message = one_line(f"deleting {label} failed: {failure_reason(exc)}", 300)
        with contextlib.suppress(JournalError):
            await _journal(journal, _journal_entry(listing, checkpoint, Outcome.FAILED, message))
        return CheckpointResult(checkpoint, Outcome.FAILED, message)
    message = one_line(f"deleted {label} ({size_text(checkpoint.size)} freed){note}", 300)
    try:
        await _journal(journal, _journal_entry(listing, checkpoint, Outcome.DONE, message))
    except JournalError as exc:
        message = one_line(f"{message}; but {exc}", 300)
    return CheckpointResult(checkpoint, Outcome.DONE, message, bytes=checkpoint.size)


# ---------------------------------------------------------------------------------------------
# Keep the last N


@dataclass(frozen=True)
class KeepResult:
    """How carrying out a keep-last-N plan went."""

    results: tuple[CheckpointResult, ...] = ()
    """One per checkpoint tried, in order; the last one failed if any did."""
    message: str = ""
    """One line: what was deleted, freed, and where it stopped."""
    bytes_freed: int = 0
    deleted: tuple[Checkpoint, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether every planned deletion was done."""
        return all(r.ok for r in self.results) and not self.message.startswith("nothing")


async def keep_last(
    plan: KeepPlan,
    listing: Listing,
    store: Store,
    journal: Journal,
    *,
    timeout: float = CALL_TIMEOUT,  # noqa: ASYNC109 - each storage call has its own bound
) -> KeepResult:
    """Delete ``plan``'s checkpoints one by one through :func:`delete` (each checked afresh
    and journaled), stopping at the first one not deleted."""
    if plan.refusal is not None:
        return KeepResult(message=one_line(f"nothing deleted: {plan.refusal}", 300))
    results: list[CheckpointResult] = []
    for checkpoint in plan.delete:
        result = await delete(checkpoint, listing, store, journal, timeout=timeout)
        results.append(result)
        if not result.ok:
            break
    done = [r for r in results if r.ok]
    freed = sum(r.bytes for r in done)
    text = f"kept the last {plan.n}: deleted {len(done)} of {len(plan.delete)}"
    text += f", {size_text(freed)} freed"
    if results and not results[-1].ok:
        text += f"; stopped: {results[-1].message}"
    return KeepResult(
        results=tuple(results),
        message=one_line(text, 400),
        bytes_freed=freed,
        deleted=tuple(r.checkpoint for r in done),
    )
