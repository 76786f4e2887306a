"""The demo's lab box: asyncssh's server on 127.0.0.1, running each command as a local process.

The server gets a fresh ed25519 host key and trusts one fresh client key, both made in a private
temporary directory together with a known_hosts file naming the host key. The demo's hub
checks the host key against that file and logs in with that key only: no password, no agent,
nothing from the user's ``~/.ssh`` read or written.

The server runs on a daemon thread with its own event loop: the hub's connections belong to the
app's loop, and a server there would share its time with the UI (and end with the loop of each
``status`` poll). Constructing a :class:`DemoSshServer` only reserves the port; the thread,
asyncssh, the directory and the keys come on the hub's first connect, so the first frame never
waits for them (and a demo killed before its first poll leaves nothing behind).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import getpass
import os
import shutil
import signal
import socket
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl_tui.remote.ssh import SshError, SshHub, SshTarget
from runctl_tui.text import clean
from runctl_tui.threads import import_sdk, run_blocking

if TYPE_CHECKING:
    import asyncssh

DEMO_SSH_USER = "demo"
"""The login name the lab box accepts; commands run as the user running the demo."""
START_TIMEOUT = 30.0
"""Seconds the server may take to start: importing asyncssh and making keys, on a busy host."""
STOP_TIMEOUT = 5.0
CHUNK = 65536


class DemoSshServer:
    """An SSH server on 127.0.0.1 whose commands run as ``/bin/sh -c`` on this machine."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        """Private (0700), made on start: the client key, the known_hosts file."""
        # The port is taken now, so the target is known before the server starts.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.host_key: asyncssh.SSHKey | None = None
        """The server's key, once started."""
        self.commands: list[str] = []
        """Every command run, in order."""
        self._lock = threading.Lock()
        self._started: Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._groups: set[int] = set()
        """Process groups of the commands running now."""
        self._connections: set[asyncssh.SSHServerConnection] = set()
        user = getpass.getuser()
        home = os.path.expanduser("~")
        # What sshd would give a login: the user's home and PATH, none of the demo's variables.
        self._env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
        }
        self._cwd = home if os.path.isdir(home) else "/"
        self._closed = False
        atexit.register(self.close)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran: the server is gone for good."""
        return self._closed

    def _file(self, name: str) -> Path:
        if self.directory is None:
            raise OSError("the demo SSH server has not started")
        return self.directory / name

    @property
    def known_hosts(self) -> Path:
        """The known_hosts file naming the server's key; there once started."""
        return self._file("known_hosts")

    @property
    def client_key(self) -> Path:
        """The one private key the server accepts; there once started."""
        return self._file("id_ed25519")

    @property
    def target(self) -> SshTarget:
        """Where the hub connects: ``demo@127.0.0.1:PORT``."""
        return SshTarget("127.0.0.1", self.port, DEMO_SSH_USER)

    def hub(self, **options: Any) -> SshHub:
        """A hub that trusts only this server's known_hosts, logs in with its client key only,
        ignores ``~/.ssh/config``, and starts the server on its first connect."""
        return DemoSshHub(self, **options)

    # -- starting -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server unless it runs; blocks until it listens (or raises ``OSError``)."""
        with self._lock:
            if self._closed:
                raise OSError("the demo SSH server was shut down")
            if self._started is None:
                self.directory = Path(tempfile.mkdtemp(prefix="runctl-demo-ssh-"))
                self._started = Future()
                self._thread = threading.Thread(
                    target=self._run, args=(self._started,), name="demo-ssh", daemon=True
                )
                self._thread.start()
            started = self._started
        started.result(timeout=START_TIMEOUT)

    async def serving(self) -> None:
        """:meth:`start`, awaited from an event loop without blocking it."""
        started = self._started
        if started is not None and started.done() and started.exception() is None:
            return
        await run_blocking(self.start, name="demo-ssh-start")

    def _run(self, started: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        import_sdk("asyncssh")
        import asyncssh

        host_key = asyncssh.generate_private_key("ssh-ed25519", comment="runctl-demo-host")
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="runctl-demo-client")
        client_key.write_private_key(self.client_key)
        self.client_key.chmod(0o600)
        algorithm, data = host_key.export_public_key("openssh").decode("ascii").split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {algorithm} {data}\n")
        self.host_key = host_key
        allowed = client_key.convert_to_public().public_data
        connections = self._connections

        class LabBox(asyncssh.SSHServer):
            """Public-key login as the demo user with the demo's client key; nothing else."""

            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                self._conn = conn
                connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                connections.discard(self._conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return username == DEMO_SSH_USER and key.public_data == allowed

        self._sock.listen()
        self._acceptor = await asyncssh.listen(
            sock=self._sock,
            server_host_keys=[host_key],
            server_factory=LabBox,
            process_factory=self._serve,
            # The lab box's checkpoints and TensorBoard files are read over SFTP, as on a
            # real host (loopback only, its own keys; the demo user's own files).
            sftp_factory=True,
            encoding=None,
            password_auth=False,
            kbdint_auth=False,
            gss_host=None,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            keepalive_interval=15,
        )

    # -- commands -----------------------------------------------------------------------------

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Run an exec request with ``/bin/sh -c``, copying its streams both ways.

        The streams are copied here rather than with ``process.redirect()``, which dropped the
        whole connection when a client closed one channel; the child leads a process group of
        its own, killed when the channel closes so nothing it started outlives the request.
        """
        command = process.command
        if command is None:
            process.stderr.write(b"this demo host runs commands only (no shell)\n")
            process.exit(1)
            return
        self.commands.append(command)
        try:
            child = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                cwd=self._cwd,
                env=self._env,
            )
        except OSError as exc:
            process.stderr.write(f"cannot start /bin/sh: {clean(str(exc))}\n".encode())
            process.exit(127)
            return
        self._groups.add(child.pid)
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stderr is not None
        pumps = [
            asyncio.ensure_future(_copy_in(process.stdin, child.stdin)),
            asyncio.ensure_future(_copy_out(child.stdout, process.stdout)),
            asyncio.ensure_future(_copy_out(child.stderr, process.stderr)),
        ]

        async def finished() -> int:
            await asyncio.gather(pumps[1], pumps[2])
            return await child.wait()

        done = asyncio.ensure_future(finished())
        closed = asyncio.ensure_future(process.channel.wait_closed())
        try:
            await asyncio.wait([done, closed], return_when=asyncio.FIRST_COMPLETED)
            if done.done() and not done.cancelled() and done.exception() is None:
                _exit(process, done.result())
        finally:
            for task in (*pumps, done, closed):
                task.cancel()
            _kill_group(child.pid)
            self._groups.discard(child.pid)
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(child.wait(), STOP_TIMEOUT)

    # -- stopping -----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Stop listening, hang up on every client, end the commands still running."""
        if self._acceptor is not None:
            self._acceptor.close()
        # The listener's close leaves accepted connections open.
        conns = list(self._connections)
        for conn in conns:
            conn.close()
        waiters = [asyncio.ensure_future(conn.wait_closed()) for conn in conns]
        if self._acceptor is not None:
            waiters.append(asyncio.ensure_future(self._acceptor.wait_closed()))
        if waiters:
            _, pending = await asyncio.wait(waiters, timeout=STOP_TIMEOUT)
            for waiter in pending:
                waiter.cancel()
        current = asyncio.current_task()
        serving = [task for task in asyncio.all_tasks() if task is not current]
        for task in serving:
            task.cancel()
        if serving:
            # Each command's own cleanup kills its process group as it is cancelled.
            await asyncio.wait(serving, timeout=STOP_TIMEOUT)

    def close(self) -> None:
        """Stop the server, kill every command still running, remove the key directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(STOP_TIMEOUT)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT)
        for group in list(self._groups):
            _kill_group(group)
        self._groups.clear()
        self._sock.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.close)


class DemoSshHub(SshHub):
    """The hub of the demo's lab box: its own known_hosts and key, the server started lazily."""

    def __init__(self, server: DemoSshServer, **options: Any) -> None:
        options.setdefault("connect_timeout", 5.0)
        # The server's files exist once it starts, which every connect awaits first; until then
        # nothing is trusted and no key is offered.
        super().__init__(
            known_hosts=Path(os.devnull), client_keys=(), use_user_config=False, **options
        )
        self.server = server

    async def connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        """The connection to ``target``, starting the demo's server first if it is not up."""
        if target == self.server.target:
            if self.server.closed:
                raise SshError(target, "the demo SSH server was shut down")
            try:
                await self.server.serving()
            except Exception as exc:
                # Whatever stopped it (a port, asyncssh, the keys), the poll shows one line.
                reason = clean(str(exc)) or type(exc).__name__
                raise SshError(target, f"the demo SSH server did not start: {reason}") from None
            self.known_hosts = self.server.known_hosts
            self.client_keys = (self.server.client_key,)
        return await super().connection(target)


async def _copy_in(source: asyncssh.SSHReader[bytes], sink: asyncio.StreamWriter) -> None:
    """The channel's stdin into the child's, closing it at the channel's EOF."""
    import asyncssh

    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
    except (OSError, asyncssh.Error):
        pass  # the child stopped reading, or the channel went away: nothing more to copy
    finally:
        sink.close()


async def _copy_out(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    """The child's stdout or stderr into the channel, until the child closes it."""
    import asyncssh

    while data := await source.read(CHUNK):
        try:
            sink.write(data)
            await sink.drain()
        except (OSError, asyncssh.Error):
            return  # the client is gone: the channel's close ends the child


def _exit(process: asyncssh.SSHServerProcess[bytes], status: int) -> None:
    """Report the child's exit, as a signal's name when one ended it."""
    import asyncssh

    with contextlib.suppress(OSError, asyncssh.Error):
        if status >= 0:
            process.exit(status)
            return
        try:
            name = signal.Signals(-status).name.removeprefix("SIG")
        except ValueError:
            process.exit(128 - status)
            return
        process.exit_with_signal(name)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
