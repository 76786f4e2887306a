"""Where a row's checkpoints are: a run's own ``checkpoints/`` first, then the configured
directories that exist, newest-modified first; on this machine, and over SSH in one round trip
(an SSH host, an EC2 instance, a pod) against a real SSH server on 127.0.0.1 whose commands run
under ``sh`` here (so the "remote" home is the test's HOME)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.models import InstanceState, PodDetails, ProcessDetails
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.providers.base import NotFoundError, ProviderError
from runctl_tui.providers.local import LocalProvider, search_checkpoint_dirs
from runctl_tui.providers.runpod import RunPodProvider
from runctl_tui.providers.ssh_hosts import SshHost, SshHostsProvider
from runctl_tui.remote.ssh import SshHub, parse_target
from runctl_tui.services.fleet import Fleet
from tests.fakes import make_instance
from tests.integration.ssh_servers import ClientKey, ShellServer, add_known_host, write_host_key

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

DIRS = ("~/train/checkpoints", "~/*/checkpoints", "/nowhere/checkpoints", "~/weird*/checkpoints")


def age(path: Path, seconds: float) -> None:
    """Set ``path``'s modification time ``seconds`` ago."""
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def seed(home: Path) -> dict[str, Path]:
    """Checkpoint directories in the home, of several ages, one with a hostile name."""
    made: dict[str, Path] = {}
    for key, relative, seconds in (
        ("train", "train/checkpoints", 600),
        ("exp", "exp1/checkpoints", 60),
        ("hostile", "weird $(touch PWNED)\nname/checkpoints", 300),
    ):
        path = home / relative
        path.mkdir(parents=True)
        age(path, seconds)
        made[key] = path
    (home / "plain" / "checkpoints").parent.mkdir()
    (home / "plain" / "checkpoints").write_text("a file, not a directory")
    return made


SCRIPT = """\
import sys, time
from pathlib import Path
Path("ready").write_text("")
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``train_ckpt.py`` running in a directory of its own that holds ``checkpoints/``."""
    workdir = tmp_path / "run dir"
    (workdir / "checkpoints").mkdir(parents=True)
    script = workdir / "train_ckpt.py"
    script.write_text(SCRIPT)
    popen = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while not (workdir / "ready").exists():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    yield popen, workdir
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)


# -- this machine -----------------------------------------------------------------------------


def test_configured_dirs_that_exist_newest_first(isolated_environment: Path) -> None:
    made = seed(isolated_environment)

    found = search_checkpoint_dirs(DIRS)

    assert [f.path for f in found] == [str(made["exp"]), str(made["hostile"]), str(made["train"])]
    assert found[0].found.startswith("matches ~/*/checkpoints · modified 1 min ago")
    assert all(f.target is None and f.source == f.path for f in found)
    assert not (isolated_environment / "PWNED").exists()


def test_a_run_s_own_checkpoints_come_first(
    run: tuple[subprocess.Popen[bytes], Path], isolated_environment: Path
) -> None:
    popen, workdir = run
    made = seed(isolated_environment)
    provider = LocalProvider(patterns=("train_ckpt.py",), checkpoint_dirs=DIRS)
    (row,) = [
        r
        for r in provider.list_instances()
        if isinstance(r.details, ProcessDetails) and r.details.pid == popen.pid
    ]

    found = provider.checkpoint_locations(row)

    assert found[0].path == str(workdir / "checkpoints")
    assert found[0].found.startswith("the run's working directory")
    assert [f.path for f in found[1:]] == [
        str(made["exp"]),
        str(made["hostile"]),
        str(made["train"]),
    ]
    (host,) = [r for r in provider.list_instances() if r.kind == "host"]
    assert [f.path for f in provider.checkpoint_locations(host)] == [f.path for f in found[1:]]

    os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)
    with pytest.raises(NotFoundError):
        provider.checkpoint_locations(row)


def test_the_fleet_asks_the_provider(
    run: tuple[subprocess.Popen[bytes], Path], tmp_path: Path, isolated_environment: Path
) -> None:
    popen, workdir = run
    provider = LocalProvider(patterns=("train_ckpt.py",))
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"))
    snapshot = fleet.poll()
    (row,) = [
        i
        for i in snapshot.instances
        if isinstance(i.details, ProcessDetails) and i.details.pid == popen.pid
    ]

    found = asyncio.run(fleet.checkpoint_locations(row))

    assert [f.path for f in found] == [str(workdir / "checkpoints")]
    other = make_instance(provider="nobody")
    assert asyncio.run(fleet.checkpoint_locations(other)) == []


# -- over SSH ---------------------------------------------------------------------------------


@pytest.fixture
async def server(
    ssh_client_key: ClientKey, tmp_path: Path, isolated_environment: Path
) -> AsyncIterator[ShellServer]:
    """A :class:`ShellServer` on 127.0.0.1 whose host key the test user trusts."""
    shell = ShellServer(write_host_key(tmp_path / "shell_host_key"), ssh_client_key.public_path)
    await shell.start()
    add_known_host(isolated_environment, shell.port, shell.host_key)
    try:
        yield shell
    finally:
        await shell.stop()


async def test_an_ssh_host_and_its_run_in_one_round_trip_each(
    server: ShellServer,
    ssh_hub: SshHub,
    isolated_environment: Path,
    run: tuple[subprocess.Popen[bytes], Path],
) -> None:
    popen, workdir = run
    made = seed(isolated_environment)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")
    provider = SshHostsProvider(
        [SshHost(target, "lab")], ssh_hub, patterns=("train_ckpt.py",), checkpoint_dirs=DIRS
    )
    rows = await provider.list_instances()
    (host,) = [r for r in rows if r.kind == "host"]
    (process,) = [
        r for r in rows if isinstance(r.details, ProcessDetails) and r.details.pid == popen.pid
    ]

    before = len(server.commands)
    found = await provider.checkpoint_locations(host)
    assert len(server.commands) == before + 1
    expected = [str(made["exp"]), str(made["hostile"]), str(made["train"])]
    assert [f.path for f in found] == expected
    assert all(f.target == str(target) for f in found)
    assert found[0].source == f"ssh://{target}{made['exp']}"
    assert not (isolated_environment / "PWNED").exists()

    found = await provider.checkpoint_locations(process)
    assert [f.path for f in found] == [str(workdir / "checkpoints"), *expected]

    os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)
    with pytest.raises(NotFoundError, match="has exited"):
        await provider.checkpoint_locations(process)


async def test_a_hosts_own_dirs_replace_the_providers(
    server: ShellServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    made = seed(isolated_environment)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")
    host = SshHost(target, "lab", checkpoints=("~/train/checkpoints",))
    provider = SshHostsProvider([host], ssh_hub, checkpoint_dirs=DIRS)
    (row,) = [r for r in await provider.list_instances() if r.kind == "host"]

    found = await provider.checkpoint_locations(row)

    assert [f.path for f in found] == [str(made["train"])]


async def test_a_pod_and_an_ec2_instance(
    server: ShellServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    made = seed(isolated_environment)
    pod = make_instance(
        "pod1",
        provider="runpod",
        details=PodDetails(desired_status="RUNNING", ssh_endpoint=f"127.0.0.1:{server.port}"),
    )
    runpod = RunPodProvider("key", hub=ssh_hub, checkpoint_dirs=DIRS)
    found = await runpod.checkpoint_locations(pod)
    assert found[0].path == str(made["exp"])
    assert found[0].target == f"root@127.0.0.1:{server.port}"
    stopped = pod.model_copy(update={"state": InstanceState.STOPPED})
    with pytest.raises(ProviderError, match="is stopped: its checkpoints are looked for"):
        await runpod.checkpoint_locations(stopped)

    ssh_dir = isolated_environment / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(f"Host 127.0.0.1\n  Port {server.port}\n")
    instance = make_instance(provider="aws", public_ip=None, private_ip="127.0.0.1")
    aws = AwsProvider(
        Ec2Clients(), ssh_user=getpass.getuser(), hub=ssh_hub, checkpoint_dirs=("~/train/*",)
    )
    found = await aws.checkpoint_locations(instance)
    assert [f.path for f in found] == [str(made["train"])]
    assert found[0].target == f"{getpass.getuser()}@127.0.0.1"
