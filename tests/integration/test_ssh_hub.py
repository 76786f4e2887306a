"""The SSH hub against asyncssh's server and a real OpenSSH sshd, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
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
    write_client_key,
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


# -- a hub with its own known_hosts, keys and no user config -------------------------------------


@dataclass(frozen=True)
class OwnFiles:
    """A server that trusts a key kept outside HOME, and the files a hub of its own uses."""

    server: AsyncsshServer
    known_hosts: Path
    client_key: Path


def generate_key(path: Path) -> asyncssh.SSHKey:
    """An ed25519 key pair at ``path`` and ``path.pub``, private part 0600."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment="runctl-own")
    key.write_private_key(path)
    key.write_public_key(path.with_name(path.name + ".pub"))
    path.chmod(0o600)
    return key


def known_line(port: int, key: asyncssh.SSHKey) -> str:
    """A known_hosts line trusting ``key`` for 127.0.0.1:``port``."""
    algorithm, data = key.export_public_key("openssh").decode().split()[:2]
    return f"[127.0.0.1]:{port} {algorithm} {data}\n"


@pytest.fixture
async def own(
    tmp_path: Path, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OwnFiles]:
    """asyncssh's server trusting a key outside HOME; HOME has no ``.ssh`` and no agent."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    directory = tmp_path / "own"
    directory.mkdir(mode=0o700)
    client_key = directory / "id_ed25519"
    generate_key(client_key)
    server = AsyncsshServer(
        write_host_key(tmp_path / "host_key"), client_key.with_name("id_ed25519.pub")
    )
    await server.start()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(known_line(server.port, server.host_key))
    try:
        yield OwnFiles(server, known_hosts, client_key)
    finally:
        await server.stop()


HubMaker = Callable[..., SshHub]


@pytest.fixture
async def make_hub() -> AsyncIterator[HubMaker]:
    """Hubs with short timeouts, each closed after the test."""
    hubs: list[SshHub] = []

    def make(**options: Any) -> SshHub:
        hub = SshHub(
            **{
                "connect_timeout": 5,
                "attempts": 2,
                "backoff": 0.05,
                "backoff_max": 0.1,
                "close_timeout": 1,
                **options,
            }
        )
        hubs.append(hub)
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            await hub.close()


def own_hub(make_hub: HubMaker, files: OwnFiles) -> SshHub:
    """A hub that reads only ``files``: their known_hosts, their key, no ~/.ssh/config."""
    return make_hub(
        known_hosts=files.known_hosts, client_keys=[files.client_key], use_user_config=False
    )


async def test_own_files_connect_and_leave_home_alone(
    own: OwnFiles, make_hub: HubMaker, isolated_environment: Path
) -> None:
    hub = own_hub(make_hub, own)
    target = target_of(own.server)
    result = await hub.run(target, "echo own", timeout=5)
    assert (result.exit_status, result.stdout) == (0, "own\n")
    assert str(hub.state(target)) == "connected"
    assert not (isolated_environment / ".ssh").exists()


async def test_own_known_hosts_refuses_a_changed_key_whatever_home_says(
    own: OwnFiles, make_hub: HubMaker, isolated_environment: Path, tmp_path: Path
) -> None:
    port = own.server.port
    own.known_hosts.write_text(known_line(port, write_host_key(tmp_path / "old_key")))
    # The user's own known_hosts trusting the real key must not vouch for it: it is not read.
    add_known_host(isolated_environment, port, own.server.host_key)
    hub = own_hub(make_hub, own)
    with pytest.raises(ChangedHostKey) as caught:
        await hub.run(target_of(own.server), "echo hi", timeout=5)
    assert caught.value.fingerprint == ssh_keygen_fingerprint(tmp_path / "host_key.pub")
    assert caught.value.remove_command == f"ssh-keygen -f {own.known_hosts} -R '[127.0.0.1]:{port}'"
    assert own.server.authenticated == 0
    assert own.server.commands == []


async def test_own_known_hosts_without_the_key_offers_to_trust_it_there(
    own: OwnFiles, make_hub: HubMaker, isolated_environment: Path
) -> None:
    own.known_hosts.write_text("")
    add_known_host(isolated_environment, own.server.port, own.server.host_key)
    home_known_hosts = (isolated_environment / ".ssh" / "known_hosts").read_text()
    hub = own_hub(make_hub, own)
    target = target_of(own.server)
    with pytest.raises(UnknownHostKey) as caught:
        await hub.connection(target)
    assert f">> {own.known_hosts}" in caught.value.trust_command
    assert "~/.ssh" not in caught.value.trust_command
    shell = await asyncio.create_subprocess_exec("sh", "-c", caught.value.trust_command)
    assert await asyncio.wait_for(shell.wait(), 10) == 0
    assert own.known_hosts.read_text() == known_line(own.server.port, own.server.host_key)
    assert (await hub.run(target, "echo trusted", timeout=5)).stdout == "trusted\n"
    assert (isolated_environment / ".ssh" / "known_hosts").read_text() == home_known_hosts


async def test_trust_host_key_writes_the_hubs_own_file(
    own: OwnFiles, make_hub: HubMaker, isolated_environment: Path
) -> None:
    own.known_hosts.write_text("")
    hub = own_hub(make_hub, own)
    target = target_of(own.server)
    with pytest.raises(UnknownHostKey) as caught:
        await hub.connection(target)
    assert caught.value.key is not None
    written = trust_host_key(
        target, caught.value.key, known_hosts=own.known_hosts, use_user_config=False
    )
    assert written == own.known_hosts
    assert (await hub.run(target, "echo trusted", timeout=5)).stdout == "trusted\n"
    assert not (isolated_environment / ".ssh").exists()


async def test_only_the_hubs_own_keys_are_offered(
    own: OwnFiles, make_hub: HubMaker, isolated_environment: Path, tmp_path: Path
) -> None:
    # The server trusts the key in HOME; the hub holds another one and must not fall back.
    home_key = write_client_key(isolated_environment)
    server = AsyncsshServer(write_host_key(tmp_path / "second_host_key"), home_key.public_path)
    await server.start()
    try:
        add_known_host(isolated_environment, server.port, server.host_key)
        stranger = tmp_path / "stranger"
        generate_key(stranger)
        hub = make_hub(
            known_hosts=isolated_environment / ".ssh" / "known_hosts",
            client_keys=[stranger],
            use_user_config=False,
        )
        target = target_of(server)
        with pytest.raises(SshError) as caught:
            await hub.run(target, "echo hi", timeout=5)
        assert str(caught.value) == (
            f"{target}: permission denied (publickey); not accepted: {stranger}"
        )
        # No keys at all means none: never the defaults from HOME.
        keyless = make_hub(
            known_hosts=isolated_environment / ".ssh" / "known_hosts",
            client_keys=[],
            use_user_config=False,
        )
        with pytest.raises(SshError, match=r"permission denied \(publickey\)"):
            await keyless.run(target, "echo hi", timeout=5)
        # The same host with the defaults logs in with the key from HOME.
        assert (await make_hub().run(target, "echo home", timeout=5)).stdout == "home\n"
    finally:
        await server.stop()


async def test_a_missing_client_key_is_named_and_nothing_is_sent(
    own: OwnFiles, make_hub: HubMaker, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-key"
    hub = make_hub(known_hosts=own.known_hosts, client_keys=[missing], use_user_config=False)
    target = target_of(own.server)
    with pytest.raises(SshError) as caught:
        await hub.run(target, "echo hi", timeout=5)
    assert str(caught.value) == (
        f"{target}: cannot read client key {missing}: No such file or directory"
    )
    assert not caught.value.transient
    assert own.server.connections == []


async def test_user_config_is_ignored_when_the_hub_says_so(
    own: OwnFiles, make_hub: HubMaker, isolated_environment: Path
) -> None:
    ssh_dir = isolated_environment / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    # Sends 127.0.0.1 elsewhere: nothing listens on 127.0.0.2.
    (ssh_dir / "config").write_text("Host 127.0.0.1\n    HostName 127.0.0.2\n")
    target = target_of(own.server)
    with_config = make_hub(known_hosts=own.known_hosts, client_keys=[own.client_key])
    with pytest.raises(SshError, match="connection refused"):
        await with_config.run(target, "echo hi", timeout=5)
    without = own_hub(make_hub, own)
    assert (await without.run(target, "echo direct", timeout=5)).stdout == "direct\n"
