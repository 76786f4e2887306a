"""A log file on an SSH host, followed over the hub's one connection per host.

Why a small remote shell loop rather than ``tail -c +OFFSET -F`` or SFTP alone:

- ``tail -F`` prints the rest of the old file and then the new one on one stream, and says
  "has been replaced" or "file truncated" on stderr, a separate stream with no ordering
  against stdout: where the old generation ends in the bytes received cannot be known, so
  offsets after a rotation or a truncation would be guesses.
- SFTP reads at exact offsets, but its attributes carry no inode: a file renamed away and a
  new one created under the name look like a file that changed size, so rotation could only
  be guessed from sizes and times.

The loop (:data:`FOLLOW_SCRIPT`, POSIX ``sh`` with ``stat``, ``tail``, ``head`` and ``find``)
holds the file open, asks ``stat`` for its inode and size, and sends each run of new bytes as a
frame that names its offset and length, followed by a check that the file still had those bytes
once they were read (``K``) or not (``X``, dropped: it was cut short meanwhile). Every byte that
arrives therefore has an exact offset. Holding the file open (read through ``/proc/$$/fd/3`` on
Linux) lets the loop drain a rotated file to its end before it moves to the new one. After a
reconnect the loop starts again with the inode and the offset already delivered: the same inode
resumes there; another file under the name means it rotated meanwhile, and the old file is
drained from where it was renamed to in the same directory (found by its inode) before the new
one starts, so nothing is lost and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, TypeVar

from runctl_tui.logs.source import Chunk, Rotated, SourceEvent, SourceState, SourceStatus
from runctl_tui.remote.ssh import SshError, SshHub, SshTarget, load_asyncssh, parse_target
from runctl_tui.text import clean, clip

if TYPE_CHECKING:
    import asyncssh

T = TypeVar("T")

TAIL_BYTES = 64 * 1024
"""How far before the end ``events(None)`` starts, so the newest lines show at once."""
MAX_FRAME = 1024 * 1024
"""The most bytes one frame carries: bounds what is held in memory per read."""

FOLLOW_SCRIPT = """\
p=$1 off=$2 ino=$3 follow=$4 nap=$5 max=$6
case $p in "~/"*) p=$HOME/${p#"~/"} ;; esac
d=$(dirname -- "$p")
src="" w=""
ident() { stat -L -c '%i %s' -- "$1" 2>/dev/null || stat -L -f '%i %z' -- "$1" 2>/dev/null; }
send() {
  while :; do
    set -- "$1" "$2" $(ident "$1")
    [ "${3-}" = "$2" ] || return 1
    [ "$4" -gt "$off" ] || return 0
    n=$(( $4 - off )); [ "$n" -gt "$max" ] && n=$max
    echo "D $off $n"
    { tail -c +$(( off + 1 )) -- "$1" | head -c "$n"; head -c "$n" /dev/zero; } | head -c "$n"
    set -- "$1" "$2" $(ident "$1")
    if [ "${3-}" = "$2" ] && [ "${4-0}" -ge $(( off + n )) ]; then
      echo K; off=$(( off + n ))
    else
      echo X; return 1
    fi
  done
}
drain_moved() {
  old=$(find "$d" -maxdepth 1 -inum "$ino" 2>/dev/null | head -n 1)
  [ -n "$old" ] && send "$old" "$ino"
  echo "R rotated"; off=0; ino=""
}
hold() {
  [ -r "$p" ] || return 1
  { command exec 3<"$p"; } 2>/dev/null || return 1
  src=/proc/$$/fd/3; [ -r "$src" ] || src=$p
  set -- $(ident "$src"); [ -n "${1-}" ] || { exec 3<&-; src=""; return 1; }
  hino=$1 hsize=$2
}
nap() { sleep "$nap" 2>/dev/null || sleep 1; }
while :; do
  if [ -z "$src" ]; then
    if hold; then
      if [ -n "$ino" ] && [ "$hino" != "$ino" ]; then
        drain_moved
      elif [ -n "$ino" ] && [ "$hsize" -lt "$off" ]; then
        echo "R truncated"; off=0
      fi
      ino=$hino
      if [ "$off" -lt 0 ]; then off=$(( hsize + off )); [ "$off" -lt 0 ] && off=0; fi
      echo "F $ino $off"; w=""
    else
      [ -n "$ino" ] && drain_moved
      if [ -z "$w" ]; then
        if [ -e "$p" ]; then echo "W denied"; else echo "W missing"; fi
        w=1
      fi
      [ "$follow" = 1 ] || { echo E; exit 0; }
      echo H; nap; continue
    fi
  fi
  send "$src" "$ino"
  set -- $(ident "$src")
  if [ "${1-}" != "$ino" ]; then exec 3<&-; src=""; continue; fi
  if [ "$2" -lt "$off" ]; then echo "R truncated"; off=0; continue; fi
  [ "$2" -gt "$off" ] && continue
  set -- $(ident "$p")
  if [ "${1-}" != "$ino" ]; then
    send "$src" "$ino"; exec 3<&-; src=""
    echo "R rotated"; off=0; ino=""; continue
  fi
  [ "$follow" = 1 ] || { echo E; exit 0; }
  echo H; nap
done
"""
"""Follows ``$1`` from byte ``$2`` of inode ``$3`` (empty: whatever file is there; a negative
offset counts from the end). Prints one line per event: ``F ino offset`` (following),
``D offset n`` then exactly n bytes then ``K`` (keep) or ``X`` (drop), ``R rotated`` or
``R truncated``, ``W missing`` or ``W denied``, ``H`` (idle: also ends the loop once the
channel is gone, as its next write fails), ``E`` (read to the end, not following)."""

RANGE_SCRIPT = """\
p=$1 ino=$2 start=$3 n=$4
case $p in "~/"*) p=$HOME/${p#"~/"} ;; esac
ident() { stat -L -c '%i %s' -- "$1" 2>/dev/null || stat -L -f '%i %z' -- "$1" 2>/dev/null; }
set -- "$p" "$ino" $(ident "$p")
f=$1
if [ -n "$2" ] && [ "${3-}" != "$2" ]; then
  f=$(find "$(dirname -- "$1")" -maxdepth 1 -inum "$2" 2>/dev/null | head -n 1)
fi
[ -n "$f" ] && [ -r "$f" ] || { echo -; exit 0; }
set -- $(ident "$f"); echo "${2:--}"
[ "$n" -gt 0 ] && tail -c +$(( start + 1 )) -- "$f" | head -c "$n"
exit 0
"""
"""Prints the size of the file of inode ``$2`` (``-`` if it is gone), then ``$4`` bytes of it
from ``$3``. The file is looked up by name, then by inode among its siblings."""


class _Closed(Exception):
    """The source was closed while a call was under way."""


class _Dropped(Exception):
    """The link or the remote loop went away: reconnect and resume."""


class _Failed(Exception):
    """The remote loop itself failed (no ``sh``, no ``stat``): retrying will not help."""


class RemoteFileSource:
    """A file on an SSH host, followed over the hub with exact byte offsets across reconnects."""

    def __init__(
        self,
        hub: SshHub,
        target: SshTarget,
        path: str,
        follow: bool = True,
        *,
        poll_seconds: float = 0.25,
        timeout: float = 15.0,
        connect_timeout: float = 60.0,
        stall_seconds: float = 20.0,
        backoff: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        self.hub = hub
        self.target = target
        self.path = path
        self.follow = follow
        self.poll_seconds = poll_seconds
        self.timeout = timeout
        """Bound on each short remote call (a channel opening, a size, a range read)."""
        self.connect_timeout = connect_timeout
        """Bound on one wait for the hub's connection (its own attempts included)."""
        self.stall_seconds = stall_seconds
        """Silence after which the stream counts as dead (the loop speaks every poll)."""
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._closed = asyncio.Event()
        self._processes: set[asyncssh.SSHClientProcess[bytes]] = set()
        self._inode = ""
        """The inode of the current generation, once the remote loop named it."""
        self._ending: str | None = None
        """Why the source is finishing (see :meth:`finish`), once it is."""
        self._finishing = asyncio.Event()
        """Set by :meth:`finish`: the following loop stops at once, wherever it waits."""

    @property
    def name(self) -> str:
        """``host:path``, safe to show."""
        return clean(f"{self.target}:{self.path}")

    # -- following ----------------------------------------------------------------------------

    async def events(self, start: int | None = None) -> AsyncIterator[SourceEvent]:
        """Chunks from ``start`` (``None``: the last :data:`TAIL_BYTES`), then as the file grows;
        reconnects through the hub and resumes at the byte already delivered."""
        offset = -TAIL_BYTES if start is None else max(0, start)
        inode = ""
        generation = 0
        attempt = 0
        waiting = ""
        yield SourceStatus(SourceState.OPENING, f"opening {self.name}")
        while not self._closed.is_set():
            process: asyncssh.SSHClientProcess[bytes] | None = None
            # Once finishing, the loop is started (again) not to follow: it sends the rest of
            # the file and says ``E``.
            live = self.follow and self._ending is None
            stop = self._finishing if live else None
            try:
                process = await self._start_follow(offset, inode, live)
                while True:
                    if live and self._ending is not None:
                        raise _Dropped("finishing")
                    line = await self._line(process, stop)
                    kind, _, rest = line.partition(" ")
                    if kind == "D":
                        at, n = (int(part) for part in rest.split())
                        try:
                            data = await self._guard(
                                process.stdout.readexactly(n), max(self.timeout, n / 65536), stop
                            )
                        except TimeoutError:
                            raise _Dropped(f"a {n}-byte frame stalled") from None
                        verdict = await self._line(process, stop)
                        if at != offset:
                            raise _Dropped(f"frame at byte {at}, expected {offset}")
                        if verdict == "K":
                            offset = at + n
                            yield Chunk(data, at, generation)
                    elif kind == "F":
                        found, at_text = rest.split()
                        if offset >= 0 and int(at_text) != offset:
                            raise _Dropped(f"resumed at byte {at_text}, expected {offset}")
                        inode, offset, waiting = found, int(at_text), ""
                        self._inode = inode
                        resumed = f"resumed at byte {offset}" if attempt else "following"
                        attempt = 0
                        yield SourceStatus(SourceState.FOLLOWING, f"{self.name}: {resumed}")
                    elif kind == "R":
                        generation += 1
                        offset, inode = 0, ""
                        self._inode = ""
                        yield Rotated(generation, "truncated" if rest == "truncated" else "rotated")
                    elif kind == "W":
                        if rest != waiting:
                            waiting = rest
                            why = "cannot be read" if rest == "denied" else "does not exist"
                            yield SourceStatus(
                                SourceState.WAITING, f"{self.name} {why} (yet); waiting for it"
                            )
                    elif kind == "E":
                        detail = self._ending or f"{self.name}: read to its end"
                        yield SourceStatus(SourceState.ENDED, detail)
                        return
                    elif kind != "H":
                        raise _Dropped(f"unexpected reply {clip(clean(line), 40)!r}")
            except _Closed:
                break
            except SshError as exc:
                if not exc.transient:
                    yield SourceStatus(SourceState.FAILED, str(exc))
                    return
                reason = exc.reason
            except _Failed as exc:
                yield SourceStatus(SourceState.FAILED, f"{self.name}: {exc}")
                return
            except _Dropped as exc:
                if self._closed.is_set():
                    break
                if live and self._ending is not None:
                    # Not a lost link: the follower was stopped to drain the file and end.
                    continue
                reason = str(exc)
            except TimeoutError:
                reason = f"no connection within {self.connect_timeout:g} s"
            except ValueError:
                # A garbled frame: never guess at offsets, start again from the last good one.
                reason = "garbled reply from the remote reader"
            finally:
                if process is not None:
                    self._processes.discard(process)
                    process.close()
            attempt += 1
            where = f"byte {offset}" if offset >= 0 else "the end"
            yield SourceStatus(
                SourceState.RECONNECTING,
                clean(f"{self.target}: {reason}; reconnecting (attempt {attempt}), from {where}"),
                attempt=attempt,
            )
            delay = min(self.backoff * 2.0 ** (attempt - 1), self.backoff_max)
            try:
                await self._guard(asyncio.sleep(delay), delay + 1)
            except _Closed:
                break
        yield SourceStatus(SourceState.ENDED, f"{self.name}: closed")

    async def _start_follow(
        self, offset: int, inode: str, follow: bool
    ) -> asyncssh.SSHClientProcess[bytes]:
        """The remote loop, started on the hub's connection from ``offset`` of ``inode``."""
        args = [self.path, str(offset), inode, "1" if follow else "0"]
        args += [f"{self.poll_seconds:g}", str(MAX_FRAME)]
        process = await self._exec(_command(FOLLOW_SCRIPT, args))
        self._processes.add(process)
        if self._closed.is_set():
            raise _Closed
        return process

    async def _line(
        self, process: asyncssh.SSHClientProcess[bytes], stop: asyncio.Event | None = None
    ) -> str:
        """One protocol line; a silent, ended or failed stream (or ``stop`` set) raises
        :class:`_Dropped`."""
        try:
            raw = await self._guard(process.stdout.readline(), self.stall_seconds, stop)
        except TimeoutError:
            raise _Dropped(f"no word from the host for {self.stall_seconds:g} s") from None
        if raw.endswith(b"\n"):
            return raw[:-1].decode("ascii", "replace")
        if self._closed.is_set():
            raise _Closed
        # The stream ended: a lost link leaves no exit status; a loop that failed on the
        # host (no sh, no stat) leaves one and its complaint on stderr, and retrying won't help.
        status = process.exit_status
        if status is not None and status > 0 and process.exit_signal is None:
            complaint = ""
            with contextlib.suppress(Exception):
                err = await self._guard(process.stderr.read(4096), 1.0)
                complaint = clip(clean(err.decode("utf-8", "replace").strip()), 160)
            raise _Failed(f"the remote reader failed ({status}): {complaint or 'no message'}")
        raise _Dropped("connection lost")

    # -- one-off reads ------------------------------------------------------------------------

    async def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of the current generation (fewer if it is shorter)."""
        if end <= start:
            return b""
        _, data = await self._range(max(0, start), end - max(0, start))
        return data

    async def size(self) -> int:
        """The current generation's size now (0 if it is gone)."""
        size, _ = await self._range(0, 0)
        return size

    async def _range(self, start: int, count: int) -> tuple[int, bytes]:
        args = [self.path, self._inode, str(start), str(count)]
        try:
            process = await self._exec(_command(RANGE_SCRIPT, args))
        except (_Closed, _Dropped) as exc:
            raise SshError(self.target, f"cannot read {self.path}: {exc}", transient=True) from None
        try:
            out = await self._guard(process.stdout.read(), self.timeout + count / 65536)
        except (_Closed, TimeoutError, OSError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else "interrupted"
            raise SshError(self.target, f"reading {self.path} {why}", transient=True) from None
        finally:
            process.close()
        head, newline, data = out.partition(b"\n")
        if not newline or not head.isdigit():
            return 0, b""
        return int(head), data[:count]

    async def _exec(self, command: str) -> asyncssh.SSHClientProcess[bytes]:
        """A remote command with binary stdout on the hub's connection, opened within bounds."""
        await load_asyncssh()
        import asyncssh

        conn = await self._guard(self.hub.connection(self.target), self.connect_timeout)
        try:
            return await self._guard(
                conn.create_process(command, stdin=asyncssh.DEVNULL, encoding=None),
                self.timeout,
            )
        except TimeoutError:
            raise _Dropped(f"no channel within {self.timeout:g} s") from None
        except asyncssh.ChannelOpenError as exc:
            raise _Dropped(f"cannot start the reader: {exc.reason}") from None
        except (OSError, asyncssh.Error):
            raise _Dropped("connection lost") from None

    async def _guard(
        self, awaitable: Awaitable[T], seconds: float, stop: asyncio.Event | None = None
    ) -> T:
        """Await ``awaitable`` for at most ``seconds``; :meth:`close` interrupts it, and so
        does ``stop`` (raising :class:`_Dropped`)."""
        import asyncssh

        task = asyncio.ensure_future(awaitable)
        waits = {task, asyncio.ensure_future(self._closed.wait())}
        if stop is not None:
            waits.add(asyncio.ensure_future(stop.wait()))
        try:
            done, _ = await asyncio.wait(
                waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waits - {task}:
                waiter.cancel()
        if task not in done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if self._closed.is_set():
                raise _Closed
            if stop is not None and stop.is_set():
                raise _Dropped("finishing")
            raise TimeoutError
        try:
            return task.result()
        except asyncio.IncompleteReadError:
            raise _Dropped("connection lost mid-frame") from None
        except (OSError, asyncssh.Error) as exc:
            if isinstance(exc, asyncssh.Error) and not isinstance(
                exc, asyncssh.ConnectionLost | asyncssh.DisconnectError
            ):
                raise _Dropped(f"connection lost: {exc.reason}") from None
            raise _Dropped("connection lost") from None

    async def finish(self, reason: str) -> None:
        """The writer is done: read the file to its end now (the follower is stopped at once,
        not at its next poll, and a loop that reads to the end and stops takes over from the
        byte reached), then end with :attr:`SourceState.ENDED` and ``reason``."""
        if self._ending is not None:
            return
        self._ending = reason or f"{self.name}: read to its end"
        self._finishing.set()

    async def close(self) -> None:
        """Stop following: the remote loops are hung up on and :meth:`events` ends."""
        self._closed.set()
        for process in list(self._processes):
            process.close()
        self._processes.clear()


def _command(script: str, args: list[str]) -> str:
    """``sh -c SCRIPT sh ARGS...``, every part quoted for the user's login shell."""
    return " ".join(["sh", "-c", shlex.quote(script), "sh", *map(shlex.quote, args)])


# ---------------------------------------------------------------------------------------------
# Where a log is, as a user writes it

_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


def parse_log_source(text: str) -> tuple[SshTarget | None, str]:
    """``(None, path)`` for a local path, ``(target, path)`` for ``[user@]host:path`` (scp
    style; a ``~/.ssh/config`` alias works) or ``ssh://user@host:port/path``."""
    if not text.strip():
        raise ValueError("no log file given (expected PATH, [user@]host:PATH or ssh://host/PATH)")
    if text[:6].lower() == "ssh://":
        rest = text[6:]
        host, slash, path = rest.partition("/")
        if not slash or not path:
            raise ValueError(f"no path after the host in {clip(clean(text), 80)!r}")
        # ssh://host/~/x names a path in the home directory; ssh://host/x the absolute /x.
        path = path if path.startswith("~") else "/" + path
        return parse_target("ssh://" + host), path
    if _WINDOWS_DRIVE.match(text):
        return None, text
    if text.startswith(("/", ".", "~")) or ":" not in text:
        return None, text
    host_part, path = _split_host(text)
    if host_part is None:
        return None, text
    if not path:
        raise ValueError(f"no path after the host in {clip(clean(text), 80)!r}")
    return parse_target(host_part), path


def _split_host(text: str) -> tuple[str | None, str]:
    """scp's rule: a colon before any slash ends the host (``[...]`` may hold colons)."""
    head = text.split(":", 1)[0]
    prefix = head.rpartition("@")[0] + "@" if "@" in head else ""
    rest = text[len(prefix) :]
    if rest.startswith("["):
        inside, closed, after = rest.partition("]")
        if not closed or not after.startswith(":"):
            return None, text
        return prefix + inside + closed, after[1:]
    host, colon, path = rest.partition(":")
    if not colon or "/" in host:
        return None, text
    return prefix + host, path
