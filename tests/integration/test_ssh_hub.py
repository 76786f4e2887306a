"""The SSH hub against asyncssh's server and a real OpenSSH sshd, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from runctl_tui.remote.ssh import (
    ChangedHostKey,
    HostKeyError,
    HostState,
    SshError,
    SshHub,
    SshTarget,
    UnknownHostKey,
    parse_target,
    trust_host_key,
)
from tests.integration.ssh_servers import (
    AsyncsshServer,
    Sshd,
    add_known_host,
    free_port,
    ssh_keygen_fingerprint,
    write_host_key,
)

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_ssh"]


def target_of(server: AsyncsshServer) -> SshTarget:
    """The asyncssh test server as a user would write it."""
    return parse_target(f"ml@127.0.0.1:{server.port}")


class StateLog:
    """Every state a hub reported, as its status line would show it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, target: SshTarget, state: HostState) -> None:
        self.seen.append(str(state))
        self._changed.set()

    async def reaches(self, prefix: str) -> None:
        """Wait until a state starting with ``prefix`` was reported; fail after 5 s."""
        async with asyncio.timeout(5):
            while not any(state.startswith(prefix) for state in self.seen):
                self._changed.clear()
                await self._changed.wait()


async def until_started(server: AsyncsshServer, command: str) -> None:
    """Wait until ``server`` has started ``command``."""
    async with asyncio.timeout(5):
        while command not in server.commands:  # noqa: ASYNC110 - the server has no hook to await
            await asyncio.sleep(0.01)


@pytest.fixture
def trusted(asyncssh_server: AsyncsshServer, isolated_environment: Path) -> AsyncsshServer:
    """The asyncssh server with its host key in the test user's known_hosts."""
    add_known_host(isolated_environment, asyncssh_server.port, asyncssh_server.host_key)
    return asyncssh_server


# -- commands and sharing ---------------------------------------------------------------------


async def test_run_returns_status_and_output(trusted: AsyncsshServer, ssh_hub: SshHub) -> None:
    target = target_of(trusted)
    result = await ssh_hub.run(target, "echo hello", timeout=5)
    assert (result.exit_status, result.stdout, result.stderr) == (0, "hello\n", "")
    failed = await ssh_hub.run(target, "fail", timeout=5)
    assert (failed.exit_status, failed.stdout, failed.stderr) == (3, "", "boom\n")
    assert str(ssh_hub.state(target)) == "connected"


async def test_concurrent_callers_share_one_connection(
    trusted: AsyncsshServer, ssh_hub: SshHub
) -> None:
    target = target_of(trusted)
    conns = await asyncio.gather(*(ssh_hub.connection(target) for _ in range(8)))
    results = await asyncio.gather(*(ssh_hub.run(target, f"echo {n}", timeout=5) for n in range(8)))
    assert len({id(conn) for conn in conns}) == 1
    assert [r.stdout for r in results] == [f"{n}\n" for n in range(8)]
    assert len(trusted.connections) == 1


async def test_a_slow_command_times_out_and_the_connection_stays(
    trusted: AsyncsshServer, ssh_hub: SshHub
) -> None:
    target = target_of(trusted)
    started = time.monotonic()
    with pytest.raises(SshError, match=r"'sleep 5' timed out after 0\.3 s") as caught:
        await ssh_hub.run(target, "sleep 5", timeout=0.3)
    assert time.monotonic() - started < 2
    assert str(caught.value).startswith(f"{target}: ")
    assert (await ssh_hub.run(target, "echo still here", timeout=5)).stdout == "still here\n"
    assert len(trusted.connections) == 1


# -- host keys ----------------------------------------------------------------------------------


async def test_unknown_host_key_shows_its_fingerprint(
    asyncssh_server: AsyncsshServer, ssh_hub: SshHub, tmp_path: Path
) -> None:
    target = target_of(asyncssh_server)
    with pytest.raises(UnknownHostKey) as caught:
        await ssh_hub.run(target, "echo hi", timeout=5)
    error = caught.value
    assert error.fingerprint == ssh_keygen_fingerprint(tmp_path / "host_key.pub")
    assert error.fingerprint.startswith("SHA256:")
    assert error.fingerprint in str(error)
    assert error.trust_command in str(error)
    assert "\n" not in str(error)
    assert str(ssh_hub.state(target)).startswith("failed: unknown host key SHA256:")
    assert asyncssh_server.authenticated == 0
    assert asyncssh_server.commands == []


async def test_trust_host_key_then_connects(
    asyncssh_server: AsyncsshServer, ssh_hub: SshHub
) -> None:
    target = target_of(asyncssh_server)
    with pytest.raises(UnknownHostKey) as caught:
        await ssh_hub.connection(target)
    assert caught.value.key is not None
    trust_host_key(target, caught.value.key)
    assert (await ssh_hub.run(target, "echo trusted", timeout=5)).stdout == "trusted\n"


async def test_the_trust_command_trusts_exactly_that_key(
    asyncssh_server: AsyncsshServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    target = target_of(asyncssh_server)
    with pytest.raises(UnknownHostKey) as caught:
        await ssh_hub.connection(target)
    # The command as the user would paste it into a shell (HOME is the test's).
    shell = await asyncio.create_subprocess_exec("sh", "-c", caught.value.trust_command)
    assert await asyncio.wait_for(shell.wait(), 10) == 0
    known = (isolated_environment / ".ssh" / "known_hosts").read_text()
    assert known.startswith(f"[127.0.0.1]:{asyncssh_server.port} ssh-ed25519 ")
    assert (await ssh_hub.run(target, "echo pasted", timeout=5)).stdout == "pasted\n"


async def test_changed_host_key_is_refused(
    asyncssh_server: AsyncsshServer, ssh_hub: SshHub, isolated_environment: Path, tmp_path: Path
) -> None:
    target = target_of(asyncssh_server)
    add_known_host(isolated_environment, asyncssh_server.port, write_host_key(tmp_path / "old_key"))
    with pytest.raises(ChangedHostKey) as caught:
        await ssh_hub.run(target, "echo hi", timeout=5)
    error = caught.value
    assert error.fingerprint == ssh_keygen_fingerprint(tmp_path / "host_key.pub")
    assert "WARNING: host key changed" in str(error)
    assert f"ssh-keygen -R '[127.0.0.1]:{asyncssh_server.port}'" in str(error)
    assert not isinstance(error, UnknownHostKey)
    assert asyncssh_server.authenticated == 0
    assert asyncssh_server.commands == []
    # Refused every time: no retry wears it down, and nothing is trusted behind the user's back.
    with pytest.raises(ChangedHostKey):
        await ssh_hub.connection(target)


async def test_revoked_host_key_is_refused_not_offered_for_trust(
    asyncssh_server: AsyncsshServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    target = target_of(asyncssh_server)
    public = asyncssh_server.host_key.export_public_key("openssh").decode().split()
    known_hosts = isolated_environment / ".ssh" / "known_hosts"
    known_hosts.write_text(f"@revoked [127.0.0.1]:{asyncssh_server.port} {public[0]} {public[1]}\n")
    with pytest.raises(HostKeyError, match="marked @revoked in known_hosts") as caught:
        await ssh_hub.connection(target)
    assert not isinstance(caught.value, UnknownHostKey)
    assert asyncssh_server.authenticated == 0


# -- failures -----------------------------------------------------------------------------------


async def test_permission_denied_names_host_and_methods(
    ssh_client_key: object, isolated_environment: Path, tmp_path: Path, ssh_hub: SshHub
) -> None:
    stranger = tmp_path / "stranger.pub"
    write_host_key(tmp_path / "stranger")  # a key pair that is not the test user's
    server = AsyncsshServer(write_host_key(tmp_path / "host_key"), stranger)
    await server.start()
    try:
        add_known_host(isolated_environment, server.port, server.host_key)
        target = target_of(server)
        with pytest.raises(SshError) as caught:
            await ssh_hub.run(target, "echo hi", timeout=5)
        assert str(caught.value) == (
            f"ml@127.0.0.1:{server.port}: permission denied (publickey); check your agent/keys"
        )
        assert str(ssh_hub.state(target)).startswith("failed: permission denied")
    finally:
        await server.stop()


async def test_connection_refused_gives_up_after_bounded_attempts(
    ssh_client_key: object, ssh_hub: SshHub
) -> None:
    states = StateLog()
    ssh_hub.on_state = states
    target = parse_target(f"ml@127.0.0.1:{free_port()}")
    with pytest.raises(SshError) as caught:
        await ssh_hub.run(target, "echo hi", timeout=10)
    assert str(caught.value).startswith(f"ml@127.0.0.1:{target.port}: connection refused")
    assert caught.value.transient
    assert [s for s in states.seen if s.startswith("connecting")] == [
        f"connecting (attempt {n})" for n in range(1, ssh_hub.attempts + 1)
    ]
    assert str(ssh_hub.state(target)).startswith("failed: connection refused")


# -- reconnection -------------------------------------------------------------------------------


async def test_dropped_connection_reconnects(trusted: AsyncsshServer, ssh_hub: SshHub) -> None:
    states = StateLog()
    ssh_hub.on_state = states
    target = target_of(trusted)
    assert (await ssh_hub.run(target, "echo before", timeout=5)).stdout == "before\n"
    trusted.drop_all()
    await states.reaches("reconnecting (attempt 1)")
    assert (await ssh_hub.run(target, "echo after", timeout=5)).stdout == "after\n"
    assert str(ssh_hub.state(target)) == "connected"
    assert len(trusted.connections) == 2


async def test_host_gone_for_good_ends_in_failed(trusted: AsyncsshServer, ssh_hub: SshHub) -> None:
    states = StateLog()
    ssh_hub.on_state = states
    target = target_of(trusted)
    await ssh_hub.run(target, "echo before", timeout=5)
    await trusted.stop()
    await states.reaches("failed")
    assert str(ssh_hub.state(target)).startswith("failed: connection refused")
    with pytest.raises(SshError, match="connection refused"):
        await ssh_hub.run(target, "echo after", timeout=5)


async def test_a_command_cut_off_by_a_drop_says_so(
    trusted: AsyncsshServer, ssh_hub: SshHub
) -> None:
    target = target_of(trusted)
    await ssh_hub.connection(target)
    call = asyncio.create_task(ssh_hub.run(target, "sleep 3", timeout=5))
    await until_started(trusted, "sleep 3")
    trusted.drop_all()
    with pytest.raises(SshError) as caught:
        await call
    assert str(caught.value) == f"{target}: connection lost while running 'sleep 3'"
    # Never run again behind the caller's back: it may not be safe to repeat.
    assert trusted.commands == ["sleep 3"]


# -- closing ------------------------------------------------------------------------------------


async def test_close_does_not_wait_for_a_hung_host(ssh_client_key: object) -> None:
    # A host that accepts the TCP connection and then never says a word.
    accepted: list[asyncio.StreamWriter] = []
    connected = asyncio.Event()

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        connected.set()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    ssh_hub = SshHub(connect_timeout=30, close_timeout=0.3)
    try:
        call = asyncio.create_task(
            ssh_hub.run(parse_target(f"127.0.0.1:{port}"), "true", timeout=30)
        )
        await asyncio.wait_for(connected.wait(), 5)
        started = time.monotonic()
        await ssh_hub.close()
        assert time.monotonic() - started < 1.0
        with pytest.raises(SshError, match="closed"):
            await call
        assert str(ssh_hub.state(parse_target(f"127.0.0.1:{port}"))) == "closed"
    finally:
        await ssh_hub.close()
        for writer in accepted:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def test_close_closes_open_connections(trusted: AsyncsshServer) -> None:
    ssh_hub = SshHub(close_timeout=1)
    target = target_of(trusted)
    conn = await ssh_hub.connection(target)
    started = time.monotonic()
    await ssh_hub.close()
    assert time.monotonic() - started < 1.5
    assert conn.is_closed()
    with pytest.raises(SshError, match="closed"):
        await ssh_hub.connection(target)


# -- a real OpenSSH sshd -----------------------------------------------------------------------


def sshd_target(real_sshd: Sshd) -> SshTarget:
    """The real sshd as a user would write it."""
    return parse_target(f"{real_sshd.user}@127.0.0.1:{real_sshd.port}")


async def test_real_sshd_unknown_key_then_trusted_then_runs(
    real_sshd: Sshd, ssh_hub: SshHub
) -> None:
    target = sshd_target(real_sshd)
    with pytest.raises(UnknownHostKey) as caught:
        await ssh_hub.run(target, "echo hi", timeout=10)
    assert caught.value.fingerprint == ssh_keygen_fingerprint(
        real_sshd.host_key_path.with_suffix(".pub")
    )
    assert caught.value.key is not None
    trust_host_key(target, caught.value.key)
    result = await ssh_hub.run(target, "echo hello; whoami; exit 7", timeout=10)
    assert (result.exit_status, result.stdout) == (7, f"hello\n{real_sshd.user}\n")


async def test_real_sshd_killed_and_restarted_reconnects(
    real_sshd: Sshd, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    states = StateLog()
    ssh_hub.on_state = states
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    target = sshd_target(real_sshd)
    first = await ssh_hub.connection(target)
    assert (await ssh_hub.run(target, "echo before", timeout=10)).stdout == "before\n"

    real_sshd.kill()
    await states.reaches("reconnecting (attempt 1)")
    assert first.is_closed()
    real_sshd.start()

    result = await ssh_hub.run(target, "echo after", timeout=10)
    assert result.stdout == "after\n"
    assert await ssh_hub.connection(target) is not first
    assert str(ssh_hub.state(target)) == "connected"


async def test_real_sshd_that_stops_answering_is_found_by_keepalive(
    real_sshd: Sshd, isolated_environment: Path
) -> None:
    states = StateLog()
    ssh_hub = SshHub(
        connect_timeout=1,
        keepalive_interval=0.2,
        keepalive_count_max=2,
        attempts=6,
        backoff=0.05,
        backoff_max=0.2,
        close_timeout=0.5,
        on_state=states,
    )
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    target = sshd_target(real_sshd)
    try:
        first = await ssh_hub.connection(target)
        # A host that hangs (frozen VM, dead link) closes nothing: only keepalive notices.
        real_sshd.pause()
        try:
            await states.reaches("reconnecting (attempt 1)")
            assert first.is_closed()
        finally:
            real_sshd.resume()
        assert (await ssh_hub.run(target, "echo back", timeout=10)).stdout == "back\n"
        assert str(ssh_hub.state(target)) == "connected"
    finally:
        await ssh_hub.close()
