"""SSH servers on 127.0.0.1 for tests: asyncssh's own server, and a real OpenSSH ``sshd``.

Both trust one client key, written into the test's HOME so the code under test finds it the way
it finds a user's key; known_hosts lines are written here by hand, independently of the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import psutil

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class ClientKey:
    """The test user's key pair in ``HOME/.ssh``, where asyncssh looks by default."""

    private_path: Path
    public_path: Path

    @property
    def public_line(self) -> str:
        """The ``authorized_keys`` line for this key."""
        return self.public_path.read_text().strip()


def write_client_key(home: Path) -> ClientKey:
    """Generate an ed25519 key pair as ``HOME/.ssh/id_ed25519``."""
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="runctl-test")
    private, public = ssh_dir / "id_ed25519", ssh_dir / "id_ed25519.pub"
    key.write_private_key(private)
    key.write_public_key(public)
    private.chmod(0o600)
    return ClientKey(private, public)


def write_host_key(path: Path) -> asyncssh.SSHKey:
    """Generate an ed25519 host key at ``path`` (and ``path.pub``) with ssh-keygen."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", str(path)],
        check=True,
        timeout=10,
    )
    return asyncssh.read_private_key(path)


def ssh_keygen_fingerprint(public_path: Path) -> str:
    """The ``SHA256:...`` fingerprint OpenSSH's own ``ssh-keygen -lf`` prints for a key file."""
    done = subprocess.run(
        ["ssh-keygen", "-lf", str(public_path)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()[1]


def add_known_host(home: Path, port: int, key: asyncssh.SSHKey) -> None:
    """Trust ``key`` for 127.0.0.1:``port`` in ``HOME/.ssh/known_hosts``."""
    public = key.export_public_key("openssh").decode().split()
    known_hosts = home / ".ssh" / "known_hosts"
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    with known_hosts.open("a") as file:
        file.write(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AsyncsshServer:
    """asyncssh's server on 127.0.0.1 running a few fake commands and counting connections.

    Commands: ``echo TEXT``, ``sleep SECONDS``, ``exit N``, ``fail`` (``boom`` on stderr, 3).
    """

    def __init__(self, host_key: asyncssh.SSHKey, authorized: Path) -> None:
        self.host_key = host_key
        self.authorized = authorized
        self.connections: list[asyncssh.SSHServerConnection] = []
        self.authenticated = 0
        self.commands: list[str] = []
        self._server: asyncssh.SSHAcceptor | None = None

    @property
    def port(self) -> int:
        """The port the OS gave the listener."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a port the OS picks."""
        outer = self

        class Counting(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                outer.connections.append(conn)

            def auth_completed(self) -> None:
                outer.authenticated += 1

        self._server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            authorized_client_keys=str(self.authorized),
            server_factory=Counting,
            process_factory=self._serve,
        )

    async def _serve(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        self.commands.append(command)
        verb, _, argument = command.partition(" ")
        status = 0
        if verb == "echo":
            process.stdout.write(argument + "\n")
        elif verb == "sleep":
            await asyncio.sleep(float(argument))
        elif verb == "exit":
            status = int(argument)
        elif verb == "fail":
            process.stderr.write("boom\n")
            status = 3
        else:
            process.stderr.write(f"{verb}: command not found\n")
            status = 127
        process.exit(status)

    def drop_all(self) -> None:
        """Close every open connection from the server's side."""
        for conn in self.connections:
            conn.close()

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.drop_all()


class ShellServer(AsyncsshServer):
    """asyncssh's test server, but each command really runs, under ``sh -c`` on this machine."""

    async def _serve(self, process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        self.commands.append(command)
        child = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await child.communicate()
        finally:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
        process.stdout.write(out.decode("utf-8", "replace"))
        process.stderr.write(err.decode("utf-8", "replace"))
        status = child.returncode or 0
        process.exit(status if status >= 0 else 128 - status)


class Sshd:
    """A real OpenSSH ``sshd`` on 127.0.0.1 with its own config, host key and authorized key."""

    def __init__(self, workdir: Path, authorized_line: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        self.host_key = write_host_key(self.host_key_path)
        self.port = free_port()
        self.user = getpass.getuser()
        authorized = workdir / "authorized_keys"
        authorized.write_text(authorized_line + "\n")
        authorized.chmod(0o600)
        self.log_path = workdir / "sshd.log"
        self.config_path = workdir / "sshd_config"
        self.config_path.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key_path}\n"
            f"AuthorizedKeysFile {authorized}\n"
            f"PidFile {workdir / 'sshd.pid'}\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start sshd in the foreground and wait until it accepts connections."""
        if os.geteuid() == 0:
            # Privilege separation needs this directory when sshd runs as root.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited at start: {self.log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"sshd did not listen within 10 s: {self.log_path.read_text()[-2000:]}")

    def _tree(self) -> list[psutil.Process]:
        """sshd and every session process it started."""
        if self._process is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self._process.pid)
            return [parent, *parent.children(recursive=True)]
        return []

    def pause(self) -> None:
        """Freeze sshd and its sessions: connections stay open but nothing answers."""
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Kill sshd and every session it serves at once, as a crash or a reboot would."""
        # Each session runs in a child that sshd moved to its own session: killing the listener
        # alone would leave established connections up.
        children = self._tree()[1:]
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        for child in children:
            # Not waited for: once orphaned they are reaped by init, which a container may not
            # do promptly; the kernel closes their sockets when they die, which is what counts.
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
        process.wait(timeout=5)


def sshd_missing_reason() -> str | None:
    """Why the real-sshd tests cannot run here, or ``None`` when they can."""
    if not SSHD.exists():
        return f"OpenSSH server not installed ({SSHD} is missing; apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not found (apt-get install openssh-client)"
    return None
