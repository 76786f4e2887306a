"""The SSH hub: one asyncssh connection per host, shared by every poll, tail and transfer.

asyncssh is imported inside the functions that use it: importing it costs about 375 ms, and this
module is reachable before the app's first frame. Connections belong to the event loop that
opened them, so one hub lives on the app's loop and everything remote goes through it.

Host-key checking is never turned off. An unknown key is reported with its fingerprint and the
command that trusts it; a key that differs from the one known_hosts holds is refused.

By default a hub connects as ``ssh`` would: ``~/.ssh/config``, the user's keys and agent, and
``~/.ssh/known_hosts`` plus the global file. A hub may instead be given its own known_hosts
file, its own client keys and no user config, for hosts that are not the user's to configure
(the demo's lab box).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import random
import re
import shlex
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runctl_tui.text import clean, clip
from runctl_tui.threads import import_sdk, run_blocking

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger(__name__)

DEFAULT_PORT = 22
GLOBAL_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")

# ---------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: a host or ``~/.ssh/config`` alias, with an optional port and user."""

    host: str
    port: int | None = None
    """``None`` lets ``~/.ssh/config`` decide (``Port``), else 22."""
    user: str | None = None
    """``None`` lets ``~/.ssh/config`` decide (``User``), else the local user name."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"


_USAGE = "expected alias, user@host[:port], [IPv6]:port or ssh://user@host:port"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
"""A host name, an IPv4 address or a config alias; a leading ``-`` would read as an option."""
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]*")


def _bad(text: str, why: str) -> ValueError:
    return ValueError(f"not an SSH target: {clip(repr(text), 80)}: {why} ({_USAGE})")


def _port(text: str, original: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad(original, f"port must be 1-65535, not {clip(repr(text), 20)}")
    return int(text)


def _ipv6(text: str, original: str) -> str:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        raise _bad(original, "not an IPv6 address inside [...]") from None
    return text


def parse_target(text: str) -> SshTarget:
    """Parse ``alias``, ``user@host[:port]``, ``[::1]:2222`` or ``ssh://user@host:port``."""
    rest = text.strip()
    if not rest:
        raise _bad(text, "empty")
    if rest[:6].lower() == "ssh://":
        rest = rest[6:].removesuffix("/")
        if "/" in rest:
            raise _bad(text, "a path does not belong in a host")
    user: str | None = None
    if "@" in rest:
        # rpartition: some bastions take "name@domain" as the user name.
        user, _, rest = rest.rpartition("@")
        if not _USER.fullmatch(user):
            raise _bad(text, "bad user name")
    if rest.startswith("["):
        inside, closed, after = rest[1:].partition("]")
        if not closed:
            raise _bad(text, "unclosed [")
        host = _ipv6(inside, text)
        if not after:
            return SshTarget(host, None, user)
        if not after.startswith(":"):
            raise _bad(text, "only :port may follow [...]")
        return SshTarget(host, _port(after[1:], text), user)
    if rest.count(":") > 1:
        # A bare IPv6 address leaves no room for a port: ports need the [...] form.
        return SshTarget(_ipv6(rest, text), None, user)
    host, has_port, port_text = rest.partition(":")
    if not _NAME.fullmatch(host):
        raise _bad(text, "bad host name")
    return SshTarget(host, _port(port_text, text) if has_port else None, user)


# ---------------------------------------------------------------------------------------------
# Errors


class SshError(Exception):
    """An SSH failure as one line that names the host."""

    def __init__(self, target: SshTarget, reason: str, *, transient: bool = False) -> None:
        self.target = target
        self.reason = clean(reason)
        self.transient = transient
        """Whether trying again later may succeed (refused, timed out, dropped)."""
        super().__init__(f"{target}: {self.reason}")


class HostKeyError(SshError):
    """The host's key cannot be verified: nothing is sent to the host until the user acts."""


class UnknownHostKey(HostKeyError):
    """known_hosts has no entry for the host: show the fingerprint and how to trust it."""

    def __init__(
        self,
        target: SshTarget,
        fingerprint: str,
        trust_command: str,
        key: asyncssh.SSHKey | None = None,
    ) -> None:
        self.fingerprint = fingerprint
        self.trust_command = trust_command
        self.key = key
        """The key itself, for :func:`trust_host_key` once the user says yes."""
        algorithm = f" ({key.get_algorithm()})" if key is not None else ""
        super().__init__(
            target,
            f"unknown host key {fingerprint}{algorithm}; if that is the host's key, "
            f"trust it with: {trust_command}",
        )


class ChangedHostKey(HostKeyError):
    """The host offers a key other than the one known_hosts holds: always refused."""

    def __init__(self, target: SshTarget, fingerprint: str | None, remove_command: str) -> None:
        self.fingerprint = fingerprint
        self.remove_command = remove_command
        offered = f" (now {fingerprint})" if fingerprint else ""
        super().__init__(
            target,
            f"WARNING: host key changed{offered}; someone may be intercepting the connection, "
            "or the host was reinstalled; not connecting. If you know why it changed, remove "
            f"the old key with: {remove_command}",
        )


def describe_failure(exc: BaseException, *, connect_timeout: float) -> tuple[str, bool]:
    """A connect failure as (reason, transient); host-key and auth failures are mapped apart."""
    import asyncssh

    if isinstance(exc, socket.gaierror):
        return "host name not found (DNS); check the name and ~/.ssh/config", False
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is sshd running on that port?)", True
    if isinstance(exc, TimeoutError):
        return f"no answer within {connect_timeout:g} s (connection timed out)", True
    if isinstance(exc, asyncssh.ConnectionLost):
        return "connection lost", True
    if isinstance(exc, asyncssh.DisconnectError):
        return f"disconnected by the host: {exc.reason}", True
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__, True
    return str(exc) or type(exc).__name__, False


# ---------------------------------------------------------------------------------------------
# Host keys and known_hosts


def _user_config(use_user_config: bool = True) -> list[str]:
    """The user's ``~/.ssh/config`` when it exists and is wanted: asyncssh reads it for aliases
    and options. An empty list makes asyncssh read no config file at all."""
    if not use_user_config:
        return []
    path = Path("~", ".ssh", "config").expanduser()
    return [str(path)] if os.access(path, os.R_OK) else []


@dataclass(frozen=True)
class _Resolved:
    """A target after ``~/.ssh/config``: where it connects and how known_hosts names it."""

    host: str
    port: int
    key_host: str
    """``HostKeyAlias`` if set, else the host name: what known_hosts lines are matched on."""
    user_files: tuple[Path, ...]
    global_files: tuple[Path, ...]

    @property
    def pattern(self) -> str:
        """The host field of a known_hosts line for this host and port."""
        if self.port == DEFAULT_PORT:
            return self.key_host
        return f"[{self.key_host}]:{self.port}"

    def readable_files(self) -> list[str]:
        """The known_hosts files that exist, user files first."""
        return [
            str(path)
            for path in (*self.user_files, *self.global_files)
            if path.is_file() and os.access(path, os.R_OK)
        ]


def _resolve(
    target: SshTarget, *, known_hosts: Path | None = None, use_user_config: bool = True
) -> _Resolved:
    """Where ``target`` connects and which known_hosts files vouch for it.

    With ``known_hosts``, that file alone is read and written (no global file), whatever a
    config says.
    """
    import asyncssh

    options = asyncssh.SSHClientConnectionOptions(
        config=_user_config(use_user_config),
        host=target.host,
        port=target.port if target.port is not None else (),
        username=target.user if target.user is not None else (),
        client_keys=None,  # only the config is wanted here, not the user's keys
    )
    configured = options.known_hosts
    if known_hosts is not None:
        user_files: tuple[Path, ...] = (known_hosts,)
        global_files: tuple[Path, ...] = ()
    elif isinstance(configured, list | tuple) and configured:
        files = [Path(str(name)).expanduser() for name in configured]
        user_files, global_files = tuple(files[:1]), tuple(files[1:])
    else:
        # A config that says "UserKnownHostsFile none" would turn checking off: keep the
        # defaults instead, as OpenSSH's own ssh reads them.
        user_files = (Path("~", ".ssh", "known_hosts").expanduser(),)
        global_files = (GLOBAL_KNOWN_HOSTS,)
    return _Resolved(
        host=options.host,
        port=options.port,
        key_host=options.host_key_alias or options.host,
        user_files=user_files,
        global_files=global_files,
    )


def _known_hosts(resolved: _Resolved) -> asyncssh.SSHKnownHosts:
    import asyncssh

    files = resolved.readable_files()
    # An empty set, never None: None would accept any key.
    return asyncssh.read_known_hosts(files) if files else asyncssh.import_known_hosts("")


def _revoked(resolved: _Resolved) -> asyncssh.SSHKnownHosts:
    """The ``@revoked`` lines of known_hosts, as plain entries.

    ``SSHKnownHosts.match`` drops the revoked keys it found for ``[host]:port`` when it falls
    back to the lookup without a port, so they are matched here on their own.
    """
    import asyncssh

    lines: list[str] = []
    for name in resolved.readable_files():
        with contextlib.suppress(OSError):
            for line in Path(name).read_text(errors="replace").splitlines():
                marker, _, entry = line.strip().partition(" ")
                if marker == "@revoked":
                    lines.append(entry.strip())
    try:
        return asyncssh.import_known_hosts("".join(f"{line}\n" for line in lines))
    except ValueError:
        # asyncssh has just read these files whole, so a bad line here is not expected.
        return asyncssh.import_known_hosts("")


def _shell_path(path: Path) -> str:
    """``path`` for a shell command line, as ``~/...`` when it is under the home directory."""
    with contextlib.suppress(ValueError):
        relative = path.relative_to(Path.home()).as_posix()
        if shlex.quote(relative) == relative:
            return f"~/{relative}"
    return shlex.quote(str(path))


def known_hosts_line(
    target: SshTarget, key: asyncssh.SSHKey, *, use_user_config: bool = True
) -> str:
    """The known_hosts line that trusts ``key`` for ``target`` (``[host]:port`` off port 22)."""
    algorithm, data = key.export_public_key("openssh").decode("ascii").split()[:2]
    return f"{_resolve(target, use_user_config=use_user_config).pattern} {algorithm} {data}"


def trust_command(
    target: SshTarget,
    key: asyncssh.SSHKey,
    *,
    known_hosts: Path | None = None,
    use_user_config: bool = True,
) -> str:
    """The shell command that trusts exactly ``key`` for ``target``, as :func:`trust_host_key`.

    ``known_hosts`` and ``use_user_config`` are the hub's own (:class:`SshHub`).
    """
    path = _resolve(target, known_hosts=known_hosts, use_user_config=use_user_config).user_files[0]
    line = shlex.quote(known_hosts_line(target, key, use_user_config=use_user_config))
    # The exact key rather than ssh-keyscan: a second scan could fetch a different key than
    # the fingerprint the user just checked.
    return f"mkdir -p {_shell_path(path.parent)} && echo {line} >> {_shell_path(path)}"


def trust_file(
    target: SshTarget, *, known_hosts: Path | None = None, use_user_config: bool = True
) -> Path:
    """The known_hosts file :func:`trust_host_key` would write ``target``'s key to."""
    return _resolve(target, known_hosts=known_hosts, use_user_config=use_user_config).user_files[0]


def trust_host_key(
    target: SshTarget,
    key: asyncssh.SSHKey,
    *,
    known_hosts: Path | None = None,
    use_user_config: bool = True,
) -> Path:
    """Append the line trusting ``key`` for ``target`` to the user's known_hosts (or to the
    hub's own ``known_hosts`` file); return the file's path."""
    path = _resolve(target, known_hosts=known_hosts, use_user_config=use_user_config).user_files[0]
    line = known_hosts_line(target, key, use_user_config=use_user_config)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("a+b") as file:
        file.seek(0, os.SEEK_END)
        if file.tell():
            file.seek(-1, os.SEEK_END)
            # A last line without its newline would swallow ours into it.
            needs_newline = file.read(1) != b"\n"
        else:
            needs_newline = False
        file.write(("\n" if needs_newline else "").encode() + line.encode("ascii") + b"\n")
        file.flush()
        os.fsync(file.fileno())
    return path


def _remove_command(resolved: _Resolved) -> str:
    path = resolved.user_files[0]
    default = Path("~", ".ssh", "known_hosts").expanduser()
    where = "" if path == default else f" -f {_shell_path(path)}"
    return f"ssh-keygen{where} -R {shlex.quote(resolved.pattern)}"


# ---------------------------------------------------------------------------------------------
# The hub

Status = Literal["idle", "connecting", "connected", "reconnecting", "failed", "closed"]


@dataclass(frozen=True)
class HostState:
    """Where one target's connection stands, worded for a status line."""

    status: Status
    attempt: int = 0
    reason: str = ""

    def __str__(self) -> str:
        if self.status in ("connecting", "reconnecting"):
            return f"{self.status} (attempt {self.attempt})"
        if self.status == "failed":
            return f"failed: {self.reason}"
        if self.status == "idle":
            return "not connected"
        return self.status


@dataclass(frozen=True)
class RunResult:
    """What a remote command left behind: its exit status and its output, decoded."""

    exit_status: int
    """The command's exit status; minus the signal number if a signal ended it."""
    stdout: str
    stderr: str


StateListener = Callable[[SshTarget, HostState], None]


class _Link:
    """The hub's record of one target: its connection, the connect under way, its state."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self.conn: asyncssh.SSHClientConnection | None = None
        self.task: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self.state = HostState("idle")
        self.was_connected = False


_OnLost = Callable[["asyncssh.SSHClientConnection", Exception | None], None]


@functools.cache
def _client_type() -> Callable[[_OnLost], asyncssh.SSHClient]:
    """The asyncssh client class, built on first use so that importing this module stays cheap."""
    import asyncssh

    class HubClient(asyncssh.SSHClient):
        """Reports a dropped connection and notes which auth methods the host offered."""

        def __init__(self, on_lost: _OnLost) -> None:
            self.offered: list[str] = []
            self._on_lost = on_lost
            self._conn: asyncssh.SSHClientConnection | None = None

        def _offer(self, method: str) -> None:
            if method not in self.offered:
                self.offered.append(method)

        def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
            self._conn = conn

        def connection_lost(self, exc: Exception | None) -> None:
            if self._conn is not None:
                self._on_lost(self._conn, exc)

        # asyncssh asks these only once its own keys, agent and password are used up, so
        # each call means the host offered that method and nothing we hold was accepted.
        def public_key_auth_requested(self) -> None:
            self._offer("publickey")

        def password_auth_requested(self) -> None:
            self._offer("password")

        def kbdint_auth_requested(self) -> None:
            self._offer("keyboard-interactive")

    return HubClient


async def load_asyncssh() -> None:
    """Import asyncssh on a daemon thread the first time: its import (~0.4 s of module code)
    would otherwise freeze the event loop, and the dashboard with it."""
    if "asyncssh" not in sys.modules:
        await run_blocking(lambda: import_sdk("asyncssh"), name="runctl-import-asyncssh")


class SshHub:
    """One asyncssh connection per target, shared by every caller on the app's event loop."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        keepalive_interval: float = 15.0,
        keepalive_count_max: int = 3,
        attempts: int = 4,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        close_timeout: float = 2.0,
        on_state: StateListener | None = None,
        known_hosts: Path | None = None,
        client_keys: Sequence[Path] | None = None,
        use_user_config: bool = True,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.close_timeout = close_timeout
        self.on_state = on_state
        self.known_hosts = known_hosts
        """The one known_hosts file to check (and to offer to trust keys in); ``None``: the
        user's files and the global one, as ``ssh`` reads them."""
        self.client_keys = tuple(client_keys) if client_keys is not None else None
        """The only private keys offered, agent not asked (``IdentitiesOnly``); ``None``: the
        user's agent and ``~/.ssh`` keys."""
        self.use_user_config = use_user_config
        """Whether ``~/.ssh/config`` applies (aliases, ports, users, options)."""
        self._links: dict[SshTarget, _Link] = {}
        self._closed = False

    def knows_host(self, target: SshTarget) -> bool:
        """Whether known_hosts already vouches for ``target`` (a key or a CA), read without
        connecting: background checks reach only hosts the user has trusted."""
        try:
            resolved = _resolve(
                target, known_hosts=self.known_hosts, use_user_config=self.use_user_config
            )
            known = _known_hosts(resolved)
        except (OSError, ValueError):
            return False
        found = known.match(resolved.key_host, "", resolved.port)
        trusted_keys, trusted_authorities = found[0], found[1]
        return bool(trusted_keys or trusted_authorities)

    # -- state --------------------------------------------------------------------------------

    def state(self, target: SshTarget) -> HostState:
        """Where ``target``'s connection stands: connected, reconnecting (attempt n), failed."""
        if self._closed:
            return HostState("closed")
        link = self._links.get(target)
        return link.state if link is not None else HostState("idle")

    def _set_state(self, link: _Link, state: HostState) -> None:
        if state == link.state:
            return
        link.state = state
        if self.on_state is None:
            return
        try:
            self.on_state(link.target, state)
        except Exception:
            # A listener's bug must not break connection bookkeeping inside asyncssh callbacks.
            log.exception("SSH state listener failed")

    # -- connections --------------------------------------------------------------------------

    async def connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        """The open connection to ``target``; concurrent callers await one shared connect."""
        await load_asyncssh()
        return await self._connection(target)

    async def _connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        if self._closed:
            raise SshError(target, "the SSH hub is closed")
        link = self._links.get(target)
        if link is None:
            link = self._links[target] = _Link(target)
        conn = link.conn
        if conn is not None:
            if not conn.is_closed():
                return conn
            # Closed before asyncssh reported it lost: treat it as dropped now.
            self._dropped(link, conn, None)
        task = link.task
        if task is None:
            task = self._start_connect(link)
        try:
            # shield: one caller giving up must not cancel the connect the others wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise SshError(target, "the SSH hub is closed") from None
            raise

    def _start_connect(
        self, link: _Link, reason: str = ""
    ) -> asyncio.Task[asyncssh.SSHClientConnection]:
        task = asyncio.create_task(self._connect(link, reason), name=f"ssh connect {link.target}")
        link.task = task

        def finished(done: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
            if link.task is done:
                link.task = None
            if not done.cancelled():
                # Retrieved here so a connect nobody waits for any more logs no warning.
                done.exception()

        task.add_done_callback(finished)
        return task

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so hosts dropped together do not retry together."""
        base = min(self.backoff * 2.0 ** (attempt - 1), self.backoff_max)
        return base * random.uniform(0.8, 1.2)

    async def _connect(self, link: _Link, reason: str) -> asyncssh.SSHClientConnection:
        status: Status = "reconnecting" if link.was_connected else "connecting"
        failure: SshError | None = None
        for attempt in range(1, self.attempts + 1):
            self._set_state(link, HostState(status, attempt, failure.reason if failure else reason))
            try:
                conn = await self._open(link)
            except SshError as exc:
                failure = exc
                if not exc.transient or attempt == self.attempts:
                    break
                await asyncio.sleep(self._delay(attempt))
                continue
            link.conn = conn
            link.was_connected = True
            self._set_state(link, HostState("connected"))
            return conn
        assert failure is not None
        self._set_state(link, HostState("failed", reason=failure.reason))
        raise failure

    async def _open(self, link: _Link) -> asyncssh.SSHClientConnection:
        """One connection attempt, every failure turned into an :class:`SshError`."""
        import asyncssh

        target = link.target
        try:
            # Read on every attempt: the user may have trusted the key since the last one.
            resolved = _resolve(
                target, known_hosts=self.known_hosts, use_user_config=self.use_user_config
            )
            known = _known_hosts(resolved)
        except (OSError, ValueError) as exc:
            files = ["~/.ssh/config"] if self.use_user_config else []
            files.append(str(self.known_hosts) if self.known_hosts else "known_hosts")
            where = " or ".join(files)
            raise SshError(target, f"cannot read {where}: {exc}") from None
        keys = self._client_keys(target)
        clients: list[asyncssh.SSHClient] = []

        def make_client() -> asyncssh.SSHClient:
            client = _client_type()(functools.partial(self._dropped, link))
            clients.append(client)
            return client

        try:
            return await asyncssh.connect(
                target.host,
                target.port if target.port is not None else (),
                username=target.user if target.user is not None else (),
                config=_user_config(self.use_user_config),
                known_hosts=known,
                **keys,
                connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=self.keepalive_count_max,
                client_factory=make_client,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise await self._host_key_error(target, resolved, known) from None
        except asyncssh.PermissionDenied:
            offered = getattr(clients[-1], "offered", []) if clients else []
            methods = f" ({','.join(offered)})" if offered else ""
            if self.client_keys is None:
                advice = "check your agent/keys"
            else:
                advice = "not accepted: " + ", ".join(str(path) for path in self.client_keys)
            raise SshError(target, f"permission denied{methods}; {advice}") from None
        except (OSError, asyncssh.Error, ValueError) as exc:
            reason, transient = describe_failure(exc, connect_timeout=self.connect_timeout)
            raise SshError(target, reason, transient=transient) from None

    def _client_keys(self, target: SshTarget) -> dict[str, Any]:
        """The key options for ``asyncssh.connect``: none (its defaults), or the hub's own keys,
        read now so that a missing or unreadable key is named."""
        import asyncssh

        if self.client_keys is None:
            return {}
        loaded: list[asyncssh.SSHKey] = []
        for path in self.client_keys:
            try:
                loaded.append(asyncssh.read_private_key(path))
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise SshError(target, f"cannot read client key {path}: {reason}") from None
        # agent_path None: the user's agent would offer keys other than these. None rather than
        # an empty list, which asyncssh reads as "the default keys".
        return {"client_keys": loaded or None, "agent_path": None}

    async def _host_key_error(
        self, target: SshTarget, resolved: _Resolved, known: asyncssh.SSHKnownHosts
    ) -> SshError:
        """Unknown or changed: changed if known_hosts holds any key for this host at all."""
        import asyncssh

        port = resolved.port if resolved.port != DEFAULT_PORT else None
        addresses = [""]
        with contextlib.suppress(OSError):
            found = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(
                    resolved.host, resolved.port, type=socket.SOCK_STREAM
                ),
                self.connect_timeout,
            )
            addresses += [str(info[4][0]) for info in found]
        trusted: list[asyncssh.SSHKey] = []
        revoked = _revoked(resolved)
        for address in addresses:
            host_keys, ca_keys, *_ = known.match(resolved.key_host, address, port)
            trusted += [*host_keys, *ca_keys]
        # Ask for the key type known_hosts expects, so a changed key is shown as the key that
        # replaced it rather than as another of the host's keys.
        algorithms = [alg.decode() for key in trusted for alg in key.sig_algorithms]
        key: asyncssh.SSHKey | None = None
        fetch_failure = ""
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    target.host,
                    target.port if target.port is not None else (),
                    config=_user_config(self.use_user_config),
                    server_host_key_algs=algorithms or (),
                ),
                self.connect_timeout,
            )
        except (OSError, asyncssh.Error, ValueError) as exc:
            fetch_failure = describe_failure(exc, connect_timeout=self.connect_timeout)[0]
        fingerprint = key.get_fingerprint() if key is not None else None
        if key is not None and any(
            key.public_data == bad.public_data
            for address in addresses
            for bad in revoked.match(resolved.key_host, address, port)[0]
        ):
            # Never offered for trust: someone marked exactly this key as not to be trusted.
            return HostKeyError(
                target, f"host key {fingerprint} is marked @revoked in known_hosts; not connecting"
            )
        if trusted:
            return ChangedHostKey(target, fingerprint, _remove_command(resolved))
        if key is None or fingerprint is None:
            return SshError(
                target,
                f"unknown host key, and fetching it again failed: {fetch_failure or 'no key'}",
                transient=True,
            )
        command = trust_command(
            target, key, known_hosts=self.known_hosts, use_user_config=self.use_user_config
        )
        return UnknownHostKey(target, fingerprint, command, key)

    def _dropped(
        self, link: _Link, conn: asyncssh.SSHClientConnection, exc: Exception | None
    ) -> None:
        """asyncssh says ``conn`` is gone: start reconnecting at once, unless we closed it."""
        if link.conn is not conn:
            return
        link.conn = None
        if self._closed:
            return
        reason = describe_failure(exc, connect_timeout=self.connect_timeout)[0] if exc else ""
        reason = reason or "connection closed"
        self._set_state(link, HostState("reconnecting", 1, reason))
        # Reconnect now rather than on the next call, so a tail's status line tells the truth
        # while it waits; the attempts are bounded, and the next call starts a fresh round.
        if link.task is None:
            self._start_connect(link, reason)

    # -- commands -----------------------------------------------------------------------------

    # The timeout is a required argument, not left to the caller's cancel scope, so no poll can
    # forget to bound a call to a host that stopped answering.
    async def run(self, target: SshTarget, command: str, *, timeout: float) -> RunResult:  # noqa: ASYNC109
        """Run a shell command on ``target``; the whole call, connect included, takes <= timeout."""
        await load_asyncssh()
        import asyncssh

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        shown = clip(clean(command), 60)
        process: asyncssh.SSHClientProcess[str] | None = None
        # The command is retried only when its channel never opened: it cannot have run.
        for last_try in (False, True):
            conn: asyncssh.SSHClientConnection | None = None
            try:
                async with asyncio.timeout_at(deadline):
                    conn = await self.connection(target)
                    process = await conn.create_process(
                        command, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace"
                    )
                break
            except TimeoutError:
                state = self.state(target)
                waiting = "no connection" if state.status != "connected" else "no channel"
                raise SshError(
                    target, f"{waiting} within {timeout:g} s ({state})", transient=True
                ) from None
            except asyncssh.ChannelOpenError as exc:
                if last_try or conn is None or not conn.is_closed():
                    raise SshError(target, f"cannot start {shown!r}: {exc.reason}") from None
            except (OSError, asyncssh.Error) as exc:
                reason = describe_failure(exc, connect_timeout=self.connect_timeout)[0]
                raise SshError(
                    target, f"cannot start {shown!r}: {reason}", transient=True
                ) from None
        assert process is not None
        try:
            async with asyncio.timeout_at(deadline):
                completed = await process.wait()
        except TimeoutError:
            raise SshError(
                target, f"{shown!r} timed out after {timeout:g} s", transient=True
            ) from None
        except (OSError, asyncssh.Error):
            raise SshError(
                target, f"connection lost while running {shown!r}", transient=True
            ) from None
        finally:
            # Closing the channel tells sshd to hang up on a command we stopped waiting for.
            process.close()
        status = completed.returncode
        if status is None:
            raise SshError(target, f"connection lost while running {shown!r}", transient=True)
        return RunResult(status, _text(completed.stdout), _text(completed.stderr))

    # -- shutdown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every connection, waiting at most ``close_timeout`` before abandoning them."""
        if self._closed:
            return
        self._closed = True
        tasks = [link.task for link in self._links.values() if link.task is not None]
        conns = [link.conn for link in self._links.values() if link.conn is not None]
        for link in self._links.values():
            link.conn = None
            self._set_state(link, HostState("closed"))
        for task in tasks:
            task.cancel()
        for conn in conns:
            conn.close()
        waiters: list[asyncio.Future[Any]] = [*tasks]
        waiters += [asyncio.ensure_future(conn.wait_closed()) for conn in conns]
        if waiters:
            # A hung host never answers the disconnect: quitting must not wait for it.
            _, pending = await asyncio.wait(waiters, timeout=self.close_timeout)
            for waiter in pending:
                waiter.cancel()
        for conn in conns:
            conn.abort()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""
