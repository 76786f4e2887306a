"""Checkpoints on an SSH host, listed over SFTP on the hub's shared connection.

``readdir`` returns each name with its attributes, so a directory costs one round trip however
many files it holds; only links are stat'ed, and only the chosen ``trainer_state.json`` files
are read. Every call is bounded by ``timeout``, and the whole listing by ``total_timeout``.
A path starting with ``~`` is taken relative to the SFTP server's start directory, the home.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from runctl_tui.checkpoints.listing import (
    DEFAULT_DEPTH,
    MAX_ENTRIES,
    TRAINER_STATE_MAX_BYTES,
    FileEntry,
    Listing,
    LocationKind,
    TrainerState,
    Walk,
    failed_listing,
    parse_trainer_state,
    pick_trainer_states,
    wanted_outside,
)
from runctl_tui.remote.ssh import SshError

if TYPE_CHECKING:
    import asyncssh

    from runctl_tui.remote.ssh import SshHub, SshTarget

T = TypeVar("T")

CALL_TIMEOUT = 20.0
TOTAL_TIMEOUT = 120.0
CONCURRENT_READDIRS = 8
"""Directories read at once: a far host's round trips overlap."""
POLL_SECONDS = 30.0
"""How often :func:`watch_sftp` lists the directory again."""

_DIRECTORY = 2
_SYMLINK = 3
_REGULAR = 1


def sftp_path(directory: str) -> str:
    """``directory`` as the SFTP server takes it: ``~`` and ``~/x`` relative to its home."""
    if directory == "~":
        return "."
    if directory.startswith("~/"):
        return directory[2:].lstrip("/") or "."
    return directory


class _Failed(Exception):
    """One SFTP step failed; the message is the listing's error line."""


def _text(name: str | bytes) -> str:
    return name if isinstance(name, str) else name.decode("utf-8", "surrogateescape")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Walk(Walk):
    """One walk over SFTP, with per-call timeouts and a cap on concurrent reads."""

    def __init__(
        self, sftp: asyncssh.SFTPClient, base: str, timeout: float, max_depth: int, limit: int
    ) -> None:
        super().__init__(max_depth, limit)
        self.sftp = sftp
        self.base = base
        self.timeout = timeout
        self._gate = asyncio.Semaphore(CONCURRENT_READDIRS)

    async def call(self, step: Awaitable[T]) -> T:
        return await asyncio.wait_for(step, self.timeout)

    def path(self, parts: tuple[str, ...]) -> str:
        return posixpath.join(self.base, *parts) if parts else self.base

    async def walk(self, parts: tuple[str, ...], inside: bool) -> None:
        import asyncssh

        try:
            async with self._gate:
                names = await self.call(self.sftp.readdir(self.path(parts)))
        except TimeoutError:
            self.not_listed(parts, f"no answer within {self.timeout:g} s")
            return
        except (asyncssh.SFTPError, OSError) as exc:
            self.not_listed(parts, _reason(exc))
            return
        below: list[Awaitable[None]] = []
        for item in names:
            name = _text(item.filename)
            if name in {".", ".."}:
                continue
            if self.full():
                break
            child = (*parts, name)
            attrs = item.attrs
            kind = attrs.type
            if kind == _DIRECTORY:
                into = self.directory(child, inside, partial(float, attrs.mtime or 0))
                if into is not None:
                    below.append(self.walk(child, into))
                continue
            if not inside and not wanted_outside(name):
                continue
            if kind == _SYMLINK:
                try:
                    attrs = await self.call(self.sftp.stat(self.path(child)))
                except (TimeoutError, asyncssh.SFTPError, OSError):
                    self.note(child, "a link that leads nowhere; skipped")
                    continue
                if attrs.type != _REGULAR:
                    continue
            elif kind != _REGULAR:
                continue
            self.file(child, int(attrs.size or 0), float(attrs.mtime or 0))
        if below:
            await asyncio.gather(*below)

    async def read_state(self, entry: FileEntry) -> TrainerState | str:
        import asyncssh

        shown = "/".join(entry.parts)

        async def read() -> bytes:
            async with self.sftp.open(self.path(entry.parts), "rb") as file:
                data = await file.read(TRAINER_STATE_MAX_BYTES + 1)
            return data if isinstance(data, bytes) else data.encode()

        try:
            data = await self.call(read())
        except TimeoutError:
            return f"{shown}: not read: no answer within {self.timeout:g} s"
        except (asyncssh.SFTPError, OSError) as exc:
            return f"{shown}: not read: {_reason(exc)}"
        if len(data) > TRAINER_STATE_MAX_BYTES:
            return f"{shown}: too big to read"
        try:
            return parse_trainer_state(data)
        except ValueError as exc:
            return f"{shown}: {exc}"


async def _base(sftp: asyncssh.SFTPClient, directory: str, seconds: float) -> str:
    """The absolute path of ``directory`` on the host, which must be a directory."""
    import asyncssh

    path = sftp_path(directory)
    try:
        resolved = _text(await asyncio.wait_for(sftp.realpath(path), seconds))
        attrs = await asyncio.wait_for(sftp.stat(resolved), seconds)
    except TimeoutError:
        raise _Failed(f"{directory}: no answer within {seconds:g} s") from None
    except asyncssh.SFTPNoSuchFile:
        raise _Failed(f"{directory}: no such directory") from None
    except (asyncssh.SFTPError, OSError) as exc:
        raise _Failed(f"{directory}: {_reason(exc)}") from None
    if attrs.type != _DIRECTORY:
        raise _Failed(f"{directory}: not a directory")
    return resolved


async def list_sftp(
    hub: SshHub,
    target: SshTarget,
    directory: str,
    *,
    timeout: float = CALL_TIMEOUT,  # noqa: ASYNC109 - each SFTP call has its own bound
    total_timeout: float = TOTAL_TIMEOUT,
    max_depth: int = DEFAULT_DEPTH,
    max_entries: int = MAX_ENTRIES,
    now: datetime | None = None,
) -> Listing:
    """The checkpoints in ``directory`` on ``target`` and up to ``max_depth`` levels below.

    Never raises for a host or path problem: the listing's ``error`` says what went wrong.
    """
    import asyncssh

    where = str(target)
    listed_at = now or datetime.now(UTC)

    def failed(why: str) -> Listing:
        return failed_listing(directory, LocationKind.SSH, where, why, now=listed_at)

    try:
        async with asyncio.timeout(total_timeout):
            try:
                conn = await asyncio.wait_for(hub.connection(target), timeout)
                sftp = await asyncio.wait_for(conn.start_sftp_client(), timeout)
            except SshError as exc:
                return failed(str(exc))
            except TimeoutError:
                return failed(f"{where}: no SFTP session within {timeout:g} s")
            except (asyncssh.Error, OSError) as exc:
                return failed(f"{where}: cannot start SFTP: {_reason(exc)}")
            try:
                base = await _base(sftp, directory, seconds=timeout)
                walk = _Walk(sftp, base, timeout, max_depth, max_entries)
                await walk.walk((), False)
                walk.finish()
                for entry in pick_trainer_states(walk.states):
                    walk.read(entry, await walk.read_state(entry))
            except _Failed as exc:
                return failed(str(exc))
            finally:
                sftp.exit()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sftp.wait_closed(), timeout)
    except TimeoutError:
        return failed(f"{where}: listing {directory} took longer than {total_timeout:g} s")

    def join(parts: tuple[str, ...]) -> str:
        return posixpath.join(base, *parts) if parts else base

    return walk.listing(
        directory=directory, kind=LocationKind.SSH, where=where, join=join, listed_at=listed_at
    )


async def watch_by_polling(
    list_once: Callable[[], Awaitable[Listing]], *, interval: float = POLL_SECONDS
) -> AsyncIterator[Listing]:
    """The listing now, then each later one that differs, listed every ``interval`` seconds."""
    last: Listing | None = None
    while True:
        current = await list_once()
        if not current.same_as(last):
            last = current
            yield current
        await asyncio.sleep(interval)


def watch_sftp(
    hub: SshHub,
    target: SshTarget,
    directory: str,
    *,
    interval: float = POLL_SECONDS,
    timeout: float = CALL_TIMEOUT,
    max_depth: int = DEFAULT_DEPTH,
) -> AsyncIterator[Listing]:
    """New checkpoints on an SSH host: :func:`list_sftp` every ``interval`` seconds."""
    return watch_by_polling(
        lambda: list_sftp(hub, target, directory, timeout=timeout, max_depth=max_depth),
        interval=interval,
    )
