"""SSH targets, states, failure wording and known_hosts lines: pure parts of the SSH hub."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from runctl_tui.remote.ssh import (
    ChangedHostKey,
    HostState,
    SshError,
    SshTarget,
    UnknownHostKey,
    describe_failure,
    known_hosts_line,
    parse_target,
    trust_command,
    trust_host_key,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu-box", SshTarget("gpu-box")),
        ("ml@gpu-box", SshTarget("gpu-box", user="ml")),
        ("ml@10.0.0.7:2222", SshTarget("10.0.0.7", 2222, "ml")),
        ("gpu.example.com:2200", SshTarget("gpu.example.com", 2200)),
        ("[::1]:2222", SshTarget("::1", 2222)),
        ("[::1]", SshTarget("::1")),
        ("root@::1", SshTarget("::1", user="root")),
        ("ml@[fe80::1%eth0]:22", SshTarget("fe80::1%eth0", 22, "ml")),
        ("ssh://ml@gpu-box:2222", SshTarget("gpu-box", 2222, "ml")),
        ("ssh://ml@gpu-box:2222/", SshTarget("gpu-box", 2222, "ml")),
        ("SSH://gpu-box", SshTarget("gpu-box")),
        ("ssh://[::1]:2022", SshTarget("::1", 2022)),
        ("  ml@gpu-box  ", SshTarget("gpu-box", user="ml")),
        ("me@corp.example@bastion", SshTarget("bastion", user="me@corp.example")),
        ("gpu_box_01", SshTarget("gpu_box_01")),
    ],
)
def test_parse_target(text: str, expected: SshTarget) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ml@",
        "@gpu-box",
        "gpu-box:",
        "gpu-box:0",
        "gpu-box:65536",
        "gpu-box:22a",
        "gpu-box:２２",
        "-oProxyCommand=touch /tmp/x",
        "ml@-oProxyCommand=x",
        "-ml@gpu-box",
        "gpu box",
        "gpu-box\nother",
        "gpu-box;rm -rf /",
        "[::1",
        "[gpu-box]:22",
        "[::1]x",
        "1:2:3",
        "ssh://gpu-box/var/log",
        "ssh://",
        "ml@gpu-box:22:33",
        "\x1b[31mred",
    ],
)
def test_garbage_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="^not an SSH target: ") as caught:
        parse_target(text)
    message = str(caught.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert "user@host[:port]" in message


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (SshTarget("gpu-box"), "gpu-box"),
        (SshTarget("gpu-box", 2222, "ml"), "ml@gpu-box:2222"),
        (SshTarget("::1", 2222), "[::1]:2222"),
        (SshTarget("::1", user="root"), "root@[::1]"),
    ],
)
def test_targets_read_back_as_written(target: SshTarget, shown: str) -> None:
    assert str(target) == shown
    assert parse_target(shown) == target


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (HostState("connected"), "connected"),
        (HostState("reconnecting", 3, "connection lost"), "reconnecting (attempt 3)"),
        (HostState("connecting", 1), "connecting (attempt 1)"),
        (HostState("failed", reason="connection refused"), "failed: connection refused"),
        (HostState("idle"), "not connected"),
        (HostState("closed"), "closed"),
    ],
)
def test_states_read_as_a_status_line(state: HostState, shown: str) -> None:
    assert str(state) == shown


@pytest.mark.parametrize(
    ("exc", "start", "transient"),
    [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "host name not found",
            False,
        ),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused", True),
        (TimeoutError(), "no answer within 10 s", True),
        (OSError(113, "No route to host"), "No route to host", True),
        (asyncssh.ConnectionLost("Connection lost"), "connection lost", True),
    ],
)
def test_failures_are_worded_for_people(exc: BaseException, start: str, transient: bool) -> None:
    reason, is_transient = describe_failure(exc, connect_timeout=10)
    assert reason.startswith(start)
    assert is_transient is transient


def test_errors_are_one_line_naming_the_host() -> None:
    target = SshTarget("gpu-box", user="ml")
    error = SshError(target, "disconnected by the host: bye\n\x1b[2Jgotcha")
    assert str(error).startswith("ml@gpu-box: disconnected by the host: bye")
    assert "\n" not in str(error)
    assert "\x1b" not in str(error)
    key = asyncssh.generate_private_key("ssh-ed25519")
    unknown = UnknownHostKey(target, key.get_fingerprint(), "echo trust", key)
    assert str(unknown) == (
        f"ml@gpu-box: unknown host key {key.get_fingerprint()} (ssh-ed25519); "
        "if that is the host's key, trust it with: echo trust"
    )
    changed = ChangedHostKey(target, "SHA256:new", "ssh-keygen -R gpu-box")
    assert str(changed).startswith("ml@gpu-box: WARNING: host key changed (now SHA256:new)")
    assert "\n" not in str(changed)


# -- known_hosts lines --------------------------------------------------------------------------


@pytest.fixture
def host_key() -> asyncssh.SSHKey:
    """A fresh ed25519 host key."""
    return asyncssh.generate_private_key("ssh-ed25519", comment="not in the line")


def public_part(key: asyncssh.SSHKey) -> str:
    """``algorithm base64`` of ``key``, as known_hosts holds it."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def test_known_hosts_line_uses_brackets_off_port_22(host_key: asyncssh.SSHKey) -> None:
    assert known_hosts_line(SshTarget("10.0.0.7", 2222), host_key) == (
        f"[10.0.0.7]:2222 {public_part(host_key)}"
    )
    assert known_hosts_line(SshTarget("10.0.0.7", 22), host_key) == (
        f"10.0.0.7 {public_part(host_key)}"
    )
    assert (
        known_hosts_line(SshTarget("::1", 2222), host_key) == f"[::1]:2222 {public_part(host_key)}"
    )


def test_known_hosts_line_follows_ssh_config(
    host_key: asyncssh.SSHKey, isolated_environment: Path
) -> None:
    ssh_dir = isolated_environment / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(
        "Host gpu-box\n  HostName 10.1.2.3\n  Port 2200\n"
        "Host aliased\n  HostName 10.1.2.4\n  HostKeyAlias trainer\n"
    )
    assert known_hosts_line(SshTarget("gpu-box"), host_key).startswith("[10.1.2.3]:2200 ")
    assert known_hosts_line(SshTarget("aliased"), host_key).startswith("trainer ")


def test_trust_host_key_appends_a_line_asyncssh_matches(
    host_key: asyncssh.SSHKey, isolated_environment: Path
) -> None:
    known_hosts = isolated_environment / ".ssh" / "known_hosts"
    known_hosts.parent.mkdir(mode=0o700)
    known_hosts.write_text(
        "other.example ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    written = trust_host_key(SshTarget("127.0.0.1", 2222), host_key)
    assert written == known_hosts
    lines = known_hosts.read_text().splitlines()
    assert lines[1] == f"[127.0.0.1]:2222 {public_part(host_key)}"
    trusted = asyncssh.read_known_hosts(str(known_hosts)).match("127.0.0.1", "", 2222)[0]
    assert [public_part(key) for key in trusted] == [public_part(host_key)]


def test_trust_host_key_creates_the_ssh_directory(
    host_key: asyncssh.SSHKey, isolated_environment: Path
) -> None:
    trust_host_key(SshTarget("gpu.example.com"), host_key)
    ssh_dir = isolated_environment / ".ssh"
    assert ssh_dir.stat().st_mode & 0o777 == 0o700
    assert (ssh_dir / "known_hosts").read_text() == f"gpu.example.com {public_part(host_key)}\n"


def test_trust_command_writes_what_trust_host_key_writes(
    host_key: asyncssh.SSHKey, isolated_environment: Path
) -> None:
    target = SshTarget("127.0.0.1", 2222, "ml")
    command = trust_command(target, host_key)
    assert command == (
        f"mkdir -p ~/.ssh && echo '[127.0.0.1]:2222 {public_part(host_key)}' >> ~/.ssh/known_hosts"
    )
    subprocess.run(["sh", "-c", command], check=True, timeout=10)
    pasted = (isolated_environment / ".ssh" / "known_hosts").read_text()
    (isolated_environment / ".ssh" / "known_hosts").unlink()
    trust_host_key(target, host_key)
    assert (isolated_environment / ".ssh" / "known_hosts").read_text() == pasted


def test_importing_the_hub_does_not_import_asyncssh() -> None:
    code = (
        "import json, sys, runctl_tui.remote.ssh\n"
        "print(json.dumps(sorted({'asyncssh', 'textual'} & set(sys.modules))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
