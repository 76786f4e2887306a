"""Remote log tails over the hub, against asyncssh's server running real commands and a real
OpenSSH sshd, both on 127.0.0.1: appends, partial lines, rotation, truncation, and no byte lost
or repeated when the server is killed and restarted mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from runctl_tui.logs.remote import RemoteFileSource
from runctl_tui.logs.source import Chunk, Rotated, SourceEvent, SourceState, SourceStatus
from runctl_tui.remote.ssh import SshHub, SshTarget, parse_target
from tests.integration.ssh_servers import (
    AsyncsshServer,
    ClientKey,
    Sshd,
    add_known_host,
    write_host_key,
)

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

WAIT_SECONDS = 20.0


class StreamingShellServer(AsyncsshServer):
    """asyncssh's test server running each command under ``sh -c``, its output streamed as bytes
    while it runs; it can be stopped and started again on the same port."""

    def __init__(self, host_key: asyncssh.SSHKey, authorized: Path) -> None:
        super().__init__(host_key, authorized)
        self._fixed_port = 0

    async def start(self) -> None:
        """Listen on 127.0.0.1 (the same port as before after a :meth:`stop`)."""
        outer = self

        class Counting(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                outer.connections.append(conn)

        self._server = await asyncssh.listen(
            "127.0.0.1",
            self._fixed_port,
            server_host_keys=[self.host_key],
            authorized_client_keys=str(self.authorized),
            server_factory=Counting,
            process_factory=self._stream,
            encoding=None,
        )
        self._fixed_port = self.port

    async def _stream(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
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
        assert child.stdout is not None
        assert child.stderr is not None
        try:
            while data := await child.stdout.read(65536):
                process.stdout.write(data)
                await process.stdout.drain()
            process.stderr.write(await child.stderr.read())
            status = await child.wait()
            process.exit(status if status >= 0 else 128 - status)
        except (OSError, asyncssh.Error):
            pass
        finally:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                await child.wait()

    async def stop(self) -> None:
        """Stop listening and drop every connection (their commands are killed)."""
        await super().stop()
        self._server = None
        self.connections.clear()


@pytest.fixture
async def stream_server(
    ssh_client_key: ClientKey, tmp_path: Path
) -> AsyncIterator[StreamingShellServer]:
    """A :class:`StreamingShellServer` on 127.0.0.1, trusting the test user's key."""
    server = StreamingShellServer(
        write_host_key(tmp_path / "stream_host_key"), ssh_client_key.public_path
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Host:
    """A server to tail through, and how to make it go away and come back."""

    kind: str
    target: SshTarget
    server: StreamingShellServer | Sshd

    async def restart(self, down_seconds: float) -> None:
        """Kill the server and every session it serves, then start it on the same port."""
        if isinstance(self.server, Sshd):
            self.server.kill()
            await asyncio.sleep(down_seconds)
            self.server.start()
        else:
            await self.server.stop()
            await asyncio.sleep(down_seconds)
            await self.server.start()


@pytest.fixture(params=["asyncssh", "sshd"])
def host(request: pytest.FixtureRequest, isolated_environment: Path) -> Host:
    """This machine as an SSH host with a trusted key, served by asyncssh or by a real sshd."""
    server: StreamingShellServer | Sshd = request.getfixturevalue(
        "stream_server" if request.param == "asyncssh" else "real_sshd"
    )
    add_known_host(isolated_environment, server.port, server.host_key)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")
    return Host(request.param, target, server)


@dataclass
class Tail:
    """Every event a source gave, and the bytes of each generation put together."""

    source: RemoteFileSource
    events: list[SourceEvent] = field(default_factory=list)
    generations: dict[int, bytearray] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    async def _run(self, start: int | None) -> None:
        async for event in self.source.events(start):
            self.events.append(event)
            if isinstance(event, Chunk):
                got = self.generations.setdefault(event.generation, bytearray())
                assert event.offset == len(got) or (not got and event.generation == 0), (
                    f"chunk at {event.offset}, {len(got)} bytes received"
                )
                if not got and event.generation == 0:
                    got.extend(b"\0" * event.offset)
                got.extend(event.data)

    def start(self, start: int | None = 0) -> Tail:
        """Begin following from ``start``."""
        self.task = asyncio.create_task(self._run(start))
        return self

    def data(self, generation: int = 0) -> bytes:
        """What generation ``generation`` has received so far."""
        return bytes(self.generations.get(generation, b""))

    def states(self) -> list[SourceState]:
        """The states reported, in order."""
        return [e.state for e in self.events if isinstance(e, SourceStatus)]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait until ``condition`` holds; fail after :data:`WAIT_SECONDS`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while not condition():
            if self.task is not None and self.task.done():
                self.task.result()
                pytest.fail(f"events ended before {what}: {self.events[-5:]}")
            if loop.time() > deadline:
                pytest.fail(f"timed out waiting for {what}; last events {self.events[-5:]}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Close the source and wait for its iterator to end (promptly)."""
        await self.source.close()
        if self.task is not None:
            async with asyncio.timeout(3):
                await self.task


@pytest.fixture
async def tails(ssh_hub: SshHub) -> AsyncIterator[Callable[..., Tail]]:
    """Make tails on the test's hub; all are closed afterwards."""
    made: list[Tail] = []

    def make(target: SshTarget, path: Path, **kwargs: object) -> Tail:
        source = RemoteFileSource(ssh_hub, target, str(path), poll_seconds=0.05, **kwargs)  # type: ignore[arg-type]
        tail = Tail(source)
        made.append(tail)
        return tail

    yield make
    for tail in made:
        await tail.stop()


def append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` as a writer process would."""
    with path.open("ab") as file:
        file.write(data)


async def test_appends_arrive_with_the_partial_last_line(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"step 1 loss 2.0\nstep 2 loss 1.5\nstep 3 lo")
    tail = tails(host.target, log).start(0)
    await tail.until(lambda: tail.data() == log.read_bytes(), "the first bytes")
    append(log, b"ss 1.2\n\xff[bold]\x1b[31m\n")
    await tail.until(lambda: tail.data() == log.read_bytes(), "the appended bytes")
    assert tail.states()[:2] == [SourceState.OPENING, SourceState.FOLLOWING]
    assert await tail.source.size() == log.stat().st_size
    assert await tail.source.read_range(5, 20) == log.read_bytes()[5:20]
    assert await tail.source.read_range(40, 10_000) == log.read_bytes()[40:]


async def test_starts_near_the_end_when_no_start_is_given(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "big.log"
    body = b"".join(b"line %06d\n" % i for i in range(20_000))
    log.write_bytes(body)
    tail = tails(host.target, log).start(None)
    await tail.until(lambda: len(tail.data()) == len(body), "the end of the file")
    first = next(e for e in tail.events if isinstance(e, Chunk))
    assert 0 < first.offset < len(body)
    assert tail.data()[first.offset :] == body[first.offset :]


async def test_rotation_drains_the_old_file_then_starts_the_new_one(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"old 1\n")
    tail = tails(host.target, log).start(0)
    await tail.until(lambda: tail.data() == b"old 1\n", "the old file")
    with log.open("ab") as writer:
        log.rename(tmp_path / "train.log.1")
        # The writer still holds the renamed file: these bytes belong to the old generation.
        writer.write(b"old 2 after the rename\n")
    log.write_bytes(b"new 1\n")
    await tail.until(lambda: tail.data(1) == b"new 1\n", "the new file")
    assert tail.data(0) == b"old 1\nold 2 after the rename\n"
    assert Rotated(1, "rotated") in tail.events


async def test_truncation_starts_a_new_generation(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"epoch 1\nepoch 2\n")
    tail = tails(host.target, log).start(0)
    await tail.until(lambda: len(tail.data()) == 16, "the first bytes")
    with log.open("r+b") as file:
        file.truncate(0)
    await tail.until(lambda: Rotated(1, "truncated") in tail.events, "the truncation")
    append(log, b"again 1\n")
    await tail.until(lambda: tail.data(1) == b"again 1\n", "the bytes after it")
    assert tail.data(0) == b"epoch 1\nepoch 2\n"


async def test_a_missing_file_is_waited_for(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "later.log"
    tail = tails(host.target, log).start(0)
    await tail.until(lambda: SourceState.WAITING in tail.states(), "waiting")
    log.write_bytes(b"here now\n")
    await tail.until(lambda: tail.data() == b"here now\n", "the file")


async def test_not_following_reads_to_the_end_and_ends(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "done.log"
    log.write_bytes(b"a\nb\nlast")
    tail = tails(host.target, log, follow=False).start(0)
    assert tail.task is not None
    async with asyncio.timeout(WAIT_SECONDS):
        await tail.task
    assert tail.data() == b"a\nb\nlast"
    assert tail.states()[-1] is SourceState.ENDED


async def test_close_ends_the_tail_promptly(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"x\n")
    tail = tails(host.target, log).start(0)
    await tail.until(lambda: tail.data() == b"x\n", "the bytes")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await tail.stop()
    assert loop.time() - began < 1.0


async def test_no_byte_lost_or_repeated_when_the_server_restarts_mid_stream(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"")
    tail = tails(host.target, log).start(0)
    await tail.until(lambda: SourceState.FOLLOWING in tail.states(), "following")
    stop = asyncio.Event()

    async def writer() -> None:
        step = 0
        while not stop.is_set():
            append(log, b"step %d loss %.4f\n" % (step, 1 / (step + 1)))
            step += 1
            await asyncio.sleep(0.003)

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0.7)
    await host.restart(down_seconds=0.8)
    await asyncio.sleep(0.7)
    # A second, shorter outage: each resumes where the last chunk ended.
    await host.restart(down_seconds=0.3)
    await asyncio.sleep(0.7)
    stop.set()
    await writing
    await tail.until(lambda: len(tail.data()) == log.stat().st_size, "every byte")
    await asyncio.sleep(0.3)
    assert tail.data() == log.read_bytes()
    reconnecting = [
        e
        for e in tail.events
        if isinstance(e, SourceStatus) and e.state is SourceState.RECONNECTING
    ]
    assert reconnecting, tail.states()
    assert reconnecting[0].attempt == 1
    assert "reconnecting (attempt 1)" in reconnecting[0].detail
    assert not any(isinstance(e, Rotated) for e in tail.events)


async def test_rotation_while_disconnected_drains_the_renamed_file(
    real_sshd: Sshd,
    isolated_environment: Path,
    tails: Callable[..., Tail],
    tmp_path: Path,
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{real_sshd.port}")
    log = tmp_path / "train.log"
    log.write_bytes(b"before\n")
    tail = tails(target, log).start(0)
    await tail.until(lambda: tail.data() == b"before\n", "the first bytes")
    real_sshd.kill()
    append(log, b"while down\n")
    log.rename(tmp_path / "train.log.1")
    log.write_bytes(b"fresh\n")
    real_sshd.start()
    await tail.until(lambda: tail.data(1) == b"fresh\n", "the new file")
    assert tail.data(0) == b"before\nwhile down\n"


async def test_an_unknown_host_key_fails_with_its_fingerprint(
    stream_server: StreamingShellServer, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    target = parse_target(f"ml@127.0.0.1:{stream_server.port}")
    tail = tails(target, tmp_path / "x.log").start(0)
    await tail.until(lambda: SourceState.FAILED in tail.states(), "the failure")
    failed = [e for e in tail.events if isinstance(e, SourceStatus)][-1]
    assert stream_server.host_key.get_fingerprint() in failed.detail
    assert "trust it with: " in failed.detail
    assert "\n" not in failed.detail
    assert stream_server.commands == []


async def test_a_changed_host_key_is_refused(
    stream_server: StreamingShellServer,
    tails: Callable[..., Tail],
    isolated_environment: Path,
    tmp_path: Path,
) -> None:
    add_known_host(isolated_environment, stream_server.port, write_host_key(tmp_path / "other"))
    target = parse_target(f"ml@127.0.0.1:{stream_server.port}")
    tail = tails(target, tmp_path / "x.log").start(0)
    await tail.until(lambda: SourceState.FAILED in tail.states(), "the failure")
    failed = [e for e in tail.events if isinstance(e, SourceStatus)][-1]
    assert "WARNING: host key changed" in failed.detail
    assert stream_server.commands == []


async def test_a_hostile_path_is_passed_as_one_argument(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "a b;$(touch pwned)'\".log"
    log.write_bytes(b"ok\n")
    tail = tails(host.target, log, follow=False).start(0)
    assert tail.task is not None
    async with asyncio.timeout(WAIT_SECONDS):
        await tail.task
    assert tail.data() == b"ok\n"
    assert not (tmp_path / "pwned").exists()


async def test_finish_drains_to_the_end_then_ends_with_the_reason(
    host: Host, tails: Callable[..., Tail], tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"a\n")
    # A slow poll: the bytes written just before finishing must not wait for it.
    tail = tails(host.target, log)
    tail.source.poll_seconds = 5.0
    tail.start(0)
    await tail.until(lambda: tail.data() == b"a\n", "the first bytes")
    append(log, b"b\n" * 1000 + b"last without newline")
    loop = asyncio.get_running_loop()
    began = loop.time()
    await tail.source.finish("the run exited")
    assert tail.task is not None
    async with asyncio.timeout(WAIT_SECONDS):
        await tail.task
    assert loop.time() - began < 4.0
    assert tail.data() == log.read_bytes()
    last = tail.events[-1]
    assert isinstance(last, SourceStatus)
    assert (last.state, last.detail) == (SourceState.ENDED, "the run exited")
    assert SourceState.RECONNECTING not in tail.states()
