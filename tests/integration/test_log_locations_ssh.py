"""Where logs are on machines reached over SSH: an SSH host, an EC2 instance and a RunPod pod,
each pointed at a real SSH server on 127.0.0.1 whose commands run under ``sh`` on this machine
(so the "remote" home is the test's HOME)."""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runctl_tui.models import InstanceState, PodDetails
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.providers.base import LogSearch, ProviderError
from runctl_tui.providers.runpod import RunPodProvider
from runctl_tui.providers.ssh_hosts import SshHost, SshHostsProvider
from runctl_tui.remote.ssh import SshHub, parse_target
from tests.fakes import make_instance
from tests.integration.ssh_servers import ClientKey, ShellServer, add_known_host, write_host_key

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

HOSTILE_NAMES = (
    "run 1.log",
    'it\'s "quoted".log',
    "$(touch PWNED).log",
    "`touch PWNED2`.log",
    "new\nline.log",
    "[bold]markup[_].log",
)


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


def seed(home: Path) -> dict[str, Path]:
    """Logs in the home: configured ones (hostile names among them) and recent strays."""
    now = time.time()
    train = home / "train"
    train.mkdir()
    files: dict[str, Path] = {}
    for n, name in enumerate(HOSTILE_NAMES):
        path = train / name
        path.write_text("loss 1.0\n")
        os.utime(path, (now - 60 * (n + 1), now - 60 * (n + 1)))
        files[name] = path
    stray = home / "notes" / "eval.log"
    stray.parent.mkdir()
    stray.write_text("x" * 2500)
    os.utime(stray, (now - 30, now - 30))
    files["stray"] = stray
    stray_newline = home / "notes" / "odd\nname.log"
    stray_newline.write_text("")
    files["stray_newline"] = stray_newline
    stale = home / "notes" / "old.log"
    stale.write_text("")
    os.utime(stale, (now - 9 * 86400, now - 9 * 86400))
    files["stale"] = stale
    return files


SEARCH = LogSearch(("~/train/*.log", "/nowhere/*.log"), ("~",), recent_days=2, depth=3)


async def test_an_ssh_host_row_lists_configured_then_recent_logs_in_one_round_trip(
    server: ShellServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    files = seed(isolated_environment)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")
    provider = SshHostsProvider([SshHost(target, "lab")], ssh_hub, log_search=SEARCH)
    (row,) = [r for r in await provider.list_instances() if r.kind == "host"]
    before = len(server.commands)

    found = await provider.log_locations(row)

    assert len(server.commands) == before + 1
    paths = [f.path for f in found]
    # Each configured match newest first, names exactly as they are, none of them run.
    assert paths[: len(HOSTILE_NAMES)] == [str(files[name]) for name in HOSTILE_NAMES]
    assert not (isolated_environment / "PWNED").exists()
    assert not any(name.startswith("PWNED") for name in os.listdir(isolated_environment))
    assert found[0].found.startswith("matches ~/train/*.log · modified 1 min ago · 9 B")
    # Then the recent strays; a name with a newline is left out there, the stale one too.
    assert paths[len(HOSTILE_NAMES) :] == [str(files["stray"])]
    assert found[-1].found.startswith("recent *.log · modified ")
    assert found[-1].size == 2500
    assert all(f.target == str(target) for f in found)
    assert found[0].source == f"ssh://{target}{files[HOSTILE_NAMES[0]]}"


async def test_a_hosts_own_globs_replace_the_providers(
    server: ShellServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    files = seed(isolated_environment)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")
    host = SshHost(target, "lab", logs=("~/notes/*.log",))
    provider = SshHostsProvider([host], ssh_hub, log_search=SEARCH.with_globs(SEARCH.globs))
    (row,) = [r for r in await provider.list_instances() if r.kind == "host"]

    found = await provider.log_locations(row)

    configured = [f.path for f in found if f.found.startswith("matches ")]
    assert str(files["stray"]) in configured
    assert str(files["stale"]) in configured  # a glob match is offered whatever its age
    assert not any(str(files[name]) == f.path for name in HOSTILE_NAMES for f in found[:3])


async def test_a_pod_is_read_as_root_at_its_ssh_port(
    server: ShellServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    files = seed(isolated_environment)
    pod = make_instance(
        "pod1",
        provider="runpod",
        details=PodDetails(desired_status="RUNNING", ssh_endpoint=f"127.0.0.1:{server.port}"),
    )
    provider = RunPodProvider("key", hub=ssh_hub, log_search=SEARCH)

    found = await provider.log_locations(pod)

    assert found[0].path == str(files[HOSTILE_NAMES[0]])
    assert found[0].target == f"root@127.0.0.1:{server.port}"

    stopped = pod.model_copy(update={"state": InstanceState.STOPPED})
    with pytest.raises(ProviderError, match="is stopped: its logs are read over SSH"):
        await provider.log_locations(stopped)
    no_port = make_instance("pod2", provider="runpod", details=PodDetails())
    with pytest.raises(ProviderError, match="no public SSH port"):
        await provider.log_locations(no_port)


async def test_an_ec2_instance_is_read_as_its_ssh_user_at_its_ip(
    server: ShellServer, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    files = seed(isolated_environment)
    # The instance's port comes from ~/.ssh/config, as it would for a real one.
    ssh_dir = isolated_environment / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(f"Host 127.0.0.1\n  Port {server.port}\n")
    instance = make_instance(provider="aws", public_ip=None, private_ip="127.0.0.1")
    provider = AwsProvider(Ec2Clients(), ssh_user=getpass.getuser(), hub=ssh_hub, log_search=SEARCH)

    found = await provider.log_locations(instance)

    assert [f.path for f in found][:2] == [str(files[n]) for n in HOSTILE_NAMES[:2]]
    assert found[0].target == f"{getpass.getuser()}@127.0.0.1"
    stopped = instance.model_copy(update={"state": InstanceState.STOPPED})
    with pytest.raises(ProviderError, match="is stopped"):
        await provider.log_locations(stopped)
