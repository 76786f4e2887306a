"""Fixtures for the SSH hub tests: a client key in the test's HOME, and SSH servers on loopback.

Loaded by the SSH test modules through ``pytest_plugins``, so the shared integration conftest
stays as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runctl_tui.remote.ssh import SshHub
from tests.integration.ssh_servers import (
    AsyncsshServer,
    ClientKey,
    Sshd,
    sshd_missing_reason,
    write_client_key,
    write_host_key,
)


@pytest.fixture
def ssh_client_key(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> ClientKey:
    """The test user's key in the isolated HOME; the developer's agent is kept out."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return write_client_key(isolated_environment)


@pytest.fixture
async def asyncssh_server(
    ssh_client_key: ClientKey, tmp_path: Path
) -> AsyncIterator[AsyncsshServer]:
    """asyncssh's server on 127.0.0.1, trusting the test user's key."""
    server = AsyncsshServer(write_host_key(tmp_path / "host_key"), ssh_client_key.public_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def real_sshd(ssh_client_key: ClientKey, tmp_path: Path) -> Iterator[Sshd]:
    """A real OpenSSH sshd on 127.0.0.1 with its own config, trusting the test user's key."""
    reason = sshd_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = Sshd(tmp_path / "sshd", ssh_client_key.public_line)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def ssh_hub() -> AsyncIterator[SshHub]:
    """A hub with short timeouts and backoff, closed after the test."""
    ssh_hub = SshHub(connect_timeout=5, attempts=4, backoff=0.05, backoff_max=0.4, close_timeout=1)
    try:
        yield ssh_hub
    finally:
        await ssh_hub.close()
