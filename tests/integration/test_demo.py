"""The demo: moto in-process seeded with a GPU fleet, RunPod's stand-in, this machine, and a lab
box behind asyncssh's server on 127.0.0.1, all through the real code paths."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncssh
import psutil
import pytest

from runctl_tui.audit import Journal
from runctl_tui.demo import (
    DEMO_FLEET,
    DEMO_LAB_BOX,
    DEMO_REGIONS,
    DemoBackend,
    DemoLabBox,
    DemoLocal,
    demo_lab_box,
    demo_providers,
)
from runctl_tui.demo_ssh import DEMO_SSH_USER, DemoSshServer
from runctl_tui.models import (
    Ec2Details,
    HostDetails,
    Instance,
    InstanceState,
    Lifecycle,
    ProcessDetails,
)
from runctl_tui.providers.aws import AwsProvider
from runctl_tui.providers.base import AnyProvider, ProviderError
from runctl_tui.providers.runpod import RunPodProvider
from runctl_tui.remote.ssh import ChangedHostKey, SshError, SshHub, UnknownHostKey
from runctl_tui.services.fleet import Fleet

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(moto_url: str) -> Iterator[DemoBackend]:
    """A demo backend; ``moto_url`` first empties moto's in-process state it shares."""
    demo = DemoBackend()
    yield demo
    demo.stop()


@pytest.fixture
def lab_box() -> Iterator[DemoSshServer]:
    """The demo's SSH server, not started until a hub first connects; shut down afterwards."""
    server = DemoSshServer()
    yield server
    server.close()


def ec2(instance: Instance) -> Ec2Details:
    """The EC2 details of a demo instance."""
    assert isinstance(instance.details, Ec2Details)
    return instance.details


async def close(provider: AnyProvider) -> None:
    """Close a provider's connections, if it holds any."""
    closing = getattr(provider, "close", None)
    if closing is not None:
        await closing()


def test_demo_starts_and_seeds_the_fleet(backend: DemoBackend, lab_box: DemoSshServer) -> None:
    provider = demo_providers(backend, ssh_server=lab_box)[0]
    assert isinstance(provider, AwsProvider)
    now = datetime.now(UTC)

    instances = provider.list_instances()

    assert backend.endpoint().startswith("http://127.0.0.1:")
    assert len(instances) == len(DEMO_FLEET) == 11
    assert {i.location for i in instances} == set(DEMO_REGIONS) == {"us-east-1", "eu-west-1"}
    by_name = {i.name: i for i in instances}
    assert set(by_name) == {m.name for m in DEMO_FLEET}
    assert [i.name for i in instances if i.protected] == ["llama3-70b-sft"]
    spot = Counter(
        ec2(i).spot_request_type for i in instances if ec2(i).lifecycle is Lifecycle.SPOT
    )
    assert spot == {"one-time": 2, "persistent": 2}
    assert Counter(i.state for i in instances) == {
        InstanceState.RUNNING: 9,
        InstanceState.STOPPED: 2,
    }
    assert {ec2(i).instance_type for i in instances} >= {
        "g5.xlarge",
        "g6e.12xlarge",
        "p4d.24xlarge",
        "p5.48xlarge",
    }
    assert all(i.gpus is not None for i in instances if ec2(i).instance_type != "c6i.xlarge")
    # Launch times are backdated, so uptimes look like a real fleet's.
    uptime = by_name["llama3-70b-sft"].uptime(now)
    assert uptime is not None
    assert timedelta(days=2) < uptime < timedelta(days=2, hours=6)
    assert by_name["llama3-70b-sft"].tags["project"] == "llm-sft"


def test_demo_shows_ec2_runpod_this_machine_and_a_lab_box(
    backend: DemoBackend, lab_box: DemoSshServer
) -> None:
    providers = demo_providers(backend, ssh_server=lab_box)
    assert [p.name for p in providers] == ["aws", "runpod", "local", "ssh"]
    # Nothing starts before the first poll: the first frame never waits for a server, and a
    # demo killed before then leaves no directory behind.
    assert lab_box.directory is None


def test_endpoint_is_started_once(backend: DemoBackend) -> None:
    assert backend.endpoint() == backend.endpoint()


def test_demo_uses_fake_credentials_only(
    backend: DemoBackend, lab_box: DemoSshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's own credentials are never needed (nor sent) in demo mode."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")

    provider = demo_providers(backend, ssh_server=lab_box)[0]
    assert isinstance(provider, AwsProvider)

    assert len(provider.list_instances()) == 11


def test_demo_without_moto_says_how_to_install_it() -> None:
    # moto is an optional extra: a plain `pip install .` has the command but not the demo.
    script = (
        "import sys\n"
        "sys.modules['moto'] = None\n"
        "sys.modules['moto.server'] = None\n"
        "from runctl_tui.cli import main\n"
        "sys.exit(main(['status', '--demo']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "the demo backend needs moto" in done.stdout
    assert "pip install 'runctl-tui[demo]'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# -- the lab box over SSH ---------------------------------------------------------------------


async def test_demo_fleet_reaches_the_lab_box_over_ssh(
    backend: DemoBackend, lab_box: DemoSshServer, isolated_environment: Path, tmp_path: Path
) -> None:
    providers = demo_providers(backend, ssh_server=lab_box)
    fleet = Fleet(providers, journal=Journal(tmp_path / "journal.jsonl"))
    try:
        snapshot = await fleet.poll_async()
    finally:
        for provider in providers:
            if isinstance(provider, DemoLocal | DemoLabBox):
                provider.run.stop()
        await close(providers[-1])

    ssh = {s.provider: s for s in snapshot.statuses}["ssh"]
    assert (ssh.ok, ssh.error) == (True, None)
    hosts = [i for i in snapshot.instances if i.provider == "ssh" and i.kind == "host"]
    assert [i.location for i in hosts] == [DEMO_LAB_BOX]
    box = hosts[0]
    assert box.state is InstanceState.RUNNING
    assert box.hourly_usd == Decimal("0.00")
    assert isinstance(box.details, HostDetails)
    assert box.details.ssh_target == f"{DEMO_SSH_USER}@127.0.0.1:{lab_box.port}"
    assert lab_box.commands, "the poll ran its commands on the demo's server"
    assert not (isolated_environment / ".ssh").exists()
    # Each machine shows its own run: the lab box's is not also listed as this machine's.
    runs = {
        i.provider: i.details.pid
        for i in snapshot.instances
        if isinstance(i.details, ProcessDetails)
    }
    assert set(runs) == {"local", "ssh"}
    assert runs["local"] != runs["ssh"]


async def test_lab_box_host_key_is_checked_against_the_demos_known_hosts(
    lab_box: DemoSshServer, isolated_environment: Path
) -> None:
    provider = demo_lab_box(lab_box)
    try:
        assert any(i.location == DEMO_LAB_BOX for i in await provider.list_instances())
    finally:
        await close(provider)
    assert lab_box.host_key is not None
    algorithm, data = lab_box.host_key.export_public_key("openssh").decode().split()[:2]
    assert lab_box.known_hosts.read_text() == f"[127.0.0.1]:{lab_box.port} {algorithm} {data}\n"

    # Checking is on: the user's (empty) known_hosts does not know the key...
    stranger = SshHub(connect_timeout=5, attempts=1, close_timeout=1)
    try:
        with pytest.raises(UnknownHostKey):
            await stranger.connection(lab_box.target)
    finally:
        await stranger.close()

    # ...and a key other than the one the demo wrote down is refused.
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    lab_box.known_hosts.write_text(f"[127.0.0.1]:{lab_box.port} {other}")
    changed = demo_lab_box(lab_box)
    try:
        with pytest.raises(ProviderError, match="(?i)host key changed"):
            await changed.list_instances()
    finally:
        await close(changed)
    hub = lab_box.hub(attempts=1, close_timeout=1)
    try:
        with pytest.raises(ChangedHostKey):
            await hub.connection(lab_box.target)
    finally:
        await hub.close()
    assert not (isolated_environment / ".ssh").exists()


async def test_lab_box_takes_only_the_demos_client_key(
    lab_box: DemoSshServer, isolated_environment: Path, tmp_path: Path
) -> None:
    await asyncio.to_thread(lab_box.start)
    stranger = tmp_path / "stranger"
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(stranger)
    hub = SshHub(
        known_hosts=lab_box.known_hosts,
        client_keys=[stranger],
        use_user_config=False,
        connect_timeout=5,
        attempts=1,
        close_timeout=1,
    )
    try:
        with pytest.raises(SshError, match=r"permission denied \(publickey\)"):
            await hub.run(lab_box.target, "true", timeout=5)
    finally:
        await hub.close()
    assert lab_box.commands == []


async def test_lab_box_runs_commands_and_reports_exit_status(lab_box: DemoSshServer) -> None:
    hub = lab_box.hub(close_timeout=1)
    try:
        done = await hub.run(lab_box.target, "echo out; echo err >&2; exit 3", timeout=20)
        assert (done.exit_status, done.stdout, done.stderr) == (3, "out\n", "err\n")
        killed = await hub.run(lab_box.target, "kill -TERM $$", timeout=5)
        assert killed.exit_status == -signal.SIGTERM
    finally:
        await hub.close()


async def test_a_command_whose_channel_closes_is_killed_with_its_group(
    lab_box: DemoSshServer, tmp_path: Path
) -> None:
    marker = tmp_path / "child.pid"
    hub = lab_box.hub(close_timeout=1)
    try:
        with pytest.raises(SshError, match="timed out"):
            await hub.run(lab_box.target, f"sleep 60 & echo $! > {marker}; sleep 60", timeout=2)
    finally:
        await hub.close()
    child = int(marker.read_text())
    assert await gone(child)


async def test_closing_the_demo_ends_everything(lab_box: DemoSshServer, tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    hub = lab_box.hub(close_timeout=1, attempts=1)
    try:
        call = asyncio.create_task(
            hub.run(lab_box.target, f"echo $$ > {marker}; exec sleep 60", timeout=30)
        )
        async with asyncio.timeout(20):
            while not marker.exists() or not marker.read_text().strip():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        child = int(marker.read_text())

        await asyncio.to_thread(lab_box.close)

        with pytest.raises(SshError):
            await call
        assert await gone(child)
        assert lab_box.directory is not None
        assert not lab_box.directory.exists()
        with pytest.raises(SshError, match="the demo SSH server was shut down"):
            await hub.run(lab_box.target, "true", timeout=5)
    finally:
        await hub.close()


async def gone(pid: int, within: float = 5.0) -> bool:
    """Whether ``pid`` has died (a zombie awaiting its reaper counts as dead) within seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() in {psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


def test_status_demo_lists_the_lab_box_and_leaves_nothing_behind(
    isolated_environment: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    done = subprocess.run(
        [sys.executable, "-m", "runctl_tui", "status", "--demo", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    statuses = {p["name"]: p for p in report["providers"]}
    assert statuses["ssh"]["ok"] is True
    assert statuses["ssh"]["error"] is None
    rows = [i for i in report["instances"] if i["provider"] == "ssh"]
    assert any(i["id"] == DEMO_LAB_BOX for i in rows)
    assert not (isolated_environment / ".ssh").exists()
    assert not list(scratch.glob("runctl-demo-*"))


async def test_c_on_a_demo_run_finds_its_checkpoints_here_and_on_the_lab_box(
    backend: DemoBackend, lab_box: DemoSshServer, isolated_environment: Path, tmp_path: Path
) -> None:
    providers = demo_providers(backend, ssh_server=lab_box)
    fleet = Fleet(providers, journal=Journal(tmp_path / "journal.jsonl"))
    runs: dict[str, Path] = {}
    try:
        snapshot = await fleet.poll_async()
        for provider in providers:
            if isinstance(provider, DemoLocal | DemoLabBox):
                assert provider.run.directory is not None
                runs[provider.name] = provider.run.directory
        rows = {i.provider: i for i in snapshot.instances if isinstance(i.details, ProcessDetails)}
        found = {name: await fleet.checkpoint_locations(row) for name, row in rows.items()}
    finally:
        for provider in providers:
            if isinstance(provider, DemoLocal | DemoLabBox):
                provider.run.stop()
        await close(providers[-1])

    assert found["local"][0].path == str(runs["local"] / "checkpoints")
    assert found["local"][0].source == str(runs["local"] / "checkpoints")
    assert found["ssh"][0].path == str(runs["ssh"] / "checkpoints")
    assert found["ssh"][0].source.startswith(f"ssh://{DEMO_SSH_USER}@127.0.0.1:{lab_box.port}/")


async def test_the_simulated_instances_and_pods_are_never_reached_over_ssh(
    backend: DemoBackend, lab_box: DemoSshServer
) -> None:
    """Their addresses are made up: logs and checkpoints are refused in one line, and no
    connection is tried to a host that is not the demo's own."""
    from runctl_tui.providers.base import ProviderError

    aws, pods = demo_providers(backend, ssh_server=lab_box)[:2]
    assert isinstance(aws, AwsProvider)
    assert isinstance(pods, RunPodProvider)
    instance = (await asyncio.to_thread(aws.list_instances))[0]
    pod = (await asyncio.to_thread(pods.list_instances))[0]
    for provider, row in ((aws, instance), (pods, pod)):
        for ask in ("log_locations", "checkpoint_locations"):
            with pytest.raises(ProviderError, match="simulated machine of the demo"):
                await getattr(provider, ask)(row)
