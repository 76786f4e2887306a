"""GPU figures of a cloud machine over SSH, against an SSH server on 127.0.0.1 whose commands
run under ``sh`` here, with a script standing in for ``nvidia-smi`` on its PATH; and the cache
that says which machines are due for a probe."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from runctl_tui.costs.gpu_probe import (
    GpuProbeCache,
    probe_command,
    probe_gpus,
    probe_instance,
    wants_probe,
)
from runctl_tui.models import GpuSpec, GpuUsage, Instance, InstanceState, PodDetails
from runctl_tui.providers.base import ProviderError
from runctl_tui.providers.runpod import RunPodProvider
from runctl_tui.remote.ssh import SshHub, SshTarget, parse_target
from tests.fakes import T0, make_instance, make_run
from tests.integration.ssh_servers import (
    ClientKey,
    ShellServer,
    add_known_host,
    free_port,
    write_host_key,
)

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

QUERY = (
    "--query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits"
)


@pytest.fixture
def smi_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH, for the server's commands to find ``nvidia-smi`` in."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def fake_nvidia_smi(directory: Path, body: str) -> None:
    """An executable ``nvidia-smi`` in ``directory`` running ``body``."""
    path = directory / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
async def server(
    ssh_client_key: ClientKey, tmp_path: Path, isolated_environment: Path, smi_dir: Path
) -> AsyncIterator[ShellServer]:
    """A :class:`ShellServer` on 127.0.0.1 whose host key the test user trusts."""
    shell = ShellServer(write_host_key(tmp_path / "shell_host_key"), ssh_client_key.public_path)
    await shell.start()
    add_known_host(isolated_environment, shell.port, shell.host_key)
    try:
        yield shell
    finally:
        await shell.stop()


def target_of(server: ShellServer) -> SshTarget:
    """The server as a target, logged in as this user."""
    return parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")


async def test_every_gpu_and_its_utilisation_in_one_round_trip(
    server: ShellServer, ssh_hub: SshHub, smi_dir: Path
) -> None:
    fake_nvidia_smi(
        smi_dir,
        f"""case "$*" in
"{QUERY}")
  echo "0, NVIDIA H100 80GB HBM3, 3, 1200, 81559"
  echo "1, NVIDIA H100 80GB HBM3, 0, 4, 81559" ;;
*) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac""",
    )

    gpus = await probe_gpus(ssh_hub, target_of(server), provider="aws")

    assert gpus == (
        GpuUsage(
            index=0,
            name="NVIDIA H100 80GB HBM3",
            utilization_percent=3,
            memory_used_mib=1200,
            memory_total_mib=81559,
        ),
        GpuUsage(
            index=1,
            name="NVIDIA H100 80GB HBM3",
            utilization_percent=0,
            memory_used_mib=4,
            memory_total_mib=81559,
        ),
    )
    assert server.commands == [probe_command()]


async def test_a_driver_without_gpus_lists_none(
    server: ShellServer, ssh_hub: SshHub, smi_dir: Path
) -> None:
    fake_nvidia_smi(smi_dir, "exit 0")

    assert await probe_gpus(ssh_hub, target_of(server)) == ()


async def test_a_host_without_nvidia_smi_says_so(server: ShellServer, ssh_hub: SshHub) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a real nvidia-smi")

    with pytest.raises(ProviderError, match=r"^aws: .*: no nvidia-smi on the host$"):
        await probe_gpus(ssh_hub, target_of(server), provider="aws")


async def test_a_failing_nvidia_smi_is_one_clean_line(
    server: ShellServer, ssh_hub: SshHub, smi_dir: Path
) -> None:
    fake_nvidia_smi(
        smi_dir,
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the driver."
        '\x1b[2J" >&2\necho second line >&2\nexit 9',
    )

    with pytest.raises(ProviderError) as caught:
        await probe_gpus(ssh_hub, target_of(server), provider="aws")

    assert str(caught.value) == (
        f"aws: {target_of(server)}: nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it "
        "couldn't communicate with the driver.␛[2J"
    )


async def test_a_wedged_driver_is_cut_off_on_the_host(
    server: ShellServer, ssh_hub: SshHub, smi_dir: Path
) -> None:
    fake_nvidia_smi(smi_dir, "exec sleep 5")

    with pytest.raises(ProviderError, match=r"nvidia-smi did not answer within 0\.3 s$"):
        await probe_gpus(ssh_hub, target_of(server), smi_timeout=0.3)


async def test_a_probe_never_outlives_its_timeout(
    server: ShellServer, ssh_hub: SshHub, smi_dir: Path
) -> None:
    pid_file = smi_dir / "pid"
    fake_nvidia_smi(smi_dir, f"echo $$ > {pid_file}; exec sleep 5")

    with pytest.raises(ProviderError, match=r"timed out after 0\.3 s"):
        await probe_gpus(ssh_hub, target_of(server), timeout=0.3, smi_timeout=1)

    # The host still cuts nvidia-smi off itself; let that happen before the server goes.
    sleeper = int(pid_file.read_text())
    for _ in range(100):
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(sleeper).status() != psutil.STATUS_ZOMBIE:
                await asyncio.sleep(0.05)
                continue
        break
    await asyncio.sleep(0.1)


async def test_an_unreachable_machine_is_one_line(ssh_hub: SshHub) -> None:
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{free_port()}")

    with pytest.raises(ProviderError) as caught:
        await probe_gpus(ssh_hub, target, provider="runpod", timeout=3)

    assert str(caught.value).startswith(f"runpod: {target}")
    assert "\n" not in str(caught.value)


async def test_an_unknown_host_key_is_refused(
    ssh_client_key: ClientKey, tmp_path: Path, ssh_hub: SshHub
) -> None:
    shell = ShellServer(write_host_key(tmp_path / "stranger"), ssh_client_key.public_path)
    await shell.start()
    try:
        with pytest.raises(ProviderError, match="unknown host key SHA256:") as caught:
            await probe_gpus(ssh_hub, target_of(shell), provider="aws")
        assert caught.value.hint is not None
        assert shell.commands == []
    finally:
        await shell.stop()


def gpu_pod(port: int, **extra: object) -> Instance:
    """A running 1-GPU pod whose SSH endpoint is the test server."""
    fields: dict[str, object] = {
        "provider": "runpod",
        "id": "pod1",
        "location": "EU-RO-1",
        "state": InstanceState.RUNNING,
        "gpus": GpuSpec(count=1, model="RTX 4090"),
        "details": PodDetails(
            desired_status="RUNNING", gpu_count=1, ssh_endpoint=f"127.0.0.1:{port}"
        ),
    }
    fields.update(extra)
    return Instance.model_validate(fields)


async def test_a_pod_is_probed_through_its_provider(
    server: ShellServer, ssh_hub: SshHub, smi_dir: Path
) -> None:
    fake_nvidia_smi(smi_dir, 'echo "0, NVIDIA GeForce RTX 4090, 1, 300, 24564"')
    runpod = RunPodProvider("key", hub=ssh_hub)

    (gpu,) = await probe_instance(runpod, gpu_pod(server.port))

    assert (gpu.index, gpu.utilization_percent) == (0, 1)


async def test_a_machine_whose_key_is_not_trusted_is_never_contacted(
    ssh_client_key: ClientKey, tmp_path: Path, ssh_hub: SshHub
) -> None:
    shell = ShellServer(write_host_key(tmp_path / "stranger"), ssh_client_key.public_path)
    await shell.start()
    try:
        runpod = RunPodProvider("key", hub=ssh_hub)
        with pytest.raises(ProviderError, match="host key is not trusted yet: open its log"):
            await probe_instance(runpod, gpu_pod(target_of(shell).port or 22))
        # Refused from known_hosts alone: the server saw no connection, let alone a command.
        assert shell.commands == []
        assert shell.connections == []
    finally:
        await shell.stop()


async def test_a_pod_without_an_ssh_port_is_one_line(ssh_hub: SshHub) -> None:
    runpod = RunPodProvider("key", hub=ssh_hub)
    closed = gpu_pod(22).model_copy(update={"details": PodDetails(gpu_count=1)})

    with pytest.raises(ProviderError, match="has no public SSH port"):
        await probe_instance(runpod, closed)


# -- the cache ----------------------------------------------------------------------------------

USAGE = (GpuUsage(index=0, name="A10G", utilization_percent=2),)


def test_only_running_rented_gpu_machines_without_figures_want_a_probe() -> None:
    assert wants_probe(make_instance("i-gpu"))
    assert not wants_probe(make_instance("i-cpu", gpus=None))
    assert not wants_probe(make_instance("i-off", state=InstanceState.STOPPED))
    assert not wants_probe(make_instance("i-told", gpu_usage=USAGE))
    assert not wants_probe(make_run(gpus=GpuSpec(count=1, model="A10G")))
    assert wants_probe(gpu_pod(22))


def test_a_machine_is_due_once_per_interval() -> None:
    cache = GpuProbeCache(interval_seconds=60)
    gpu = make_instance("i-gpu")
    key = gpu.key

    assert cache.due([gpu, make_instance("i-cpu", gpus=None)], T0) == [gpu]
    cache.begin(key, T0)
    assert cache.due([gpu], T0 + timedelta(seconds=10)) == []
    cache.record(key, USAGE, T0 + timedelta(seconds=2))
    assert cache.due([gpu], T0 + timedelta(seconds=61)) == []
    assert cache.due([gpu], T0 + timedelta(seconds=62)) == [gpu]


def test_a_probe_still_under_way_is_not_started_again() -> None:
    cache = GpuProbeCache(interval_seconds=10)
    gpu = make_instance("i-gpu")
    cache.record(gpu.key, USAGE, T0)
    cache.begin(gpu.key, T0 + timedelta(seconds=10))

    assert cache.due([gpu], T0 + timedelta(seconds=15)) == []


def test_figures_fill_in_rows_without_their_own_until_they_age() -> None:
    cache = GpuProbeCache(interval_seconds=60)
    gpu, told = make_instance("i-gpu"), make_instance("i-told", gpu_usage=USAGE[:0])
    own = make_instance("i-own", gpu_usage=(GpuUsage(index=0, utilization_percent=99),))
    cache.record(gpu.key, USAGE, T0)
    cache.record(own.key, USAGE, T0)

    fresh = cache.apply([gpu, told, own], T0 + timedelta(seconds=120))
    assert [i.gpu_usage for i in fresh] == [USAGE, (), own.gpu_usage]
    assert cache.figures(gpu.key, T0 + timedelta(seconds=121)) is None
    assert cache.apply([gpu], T0 + timedelta(seconds=121)) == [gpu]


def test_a_failure_is_remembered_waits_an_interval_and_keeps_earlier_figures() -> None:
    cache = GpuProbeCache(interval_seconds=60, max_age_seconds=300)
    gpu = make_instance("i-gpu")
    cache.record(gpu.key, USAGE, T0)
    cache.begin(gpu.key, T0 + timedelta(seconds=60))
    cache.record_failure(gpu.key, "aws: host unreachable\nsecond line", T0 + timedelta(seconds=61))

    assert cache.error(gpu.key) == "aws: host unreachable␤second line"
    assert cache.figures(gpu.key, T0 + timedelta(seconds=100)) == USAGE
    assert cache.due([gpu], T0 + timedelta(seconds=120)) == []
    assert cache.due([gpu], T0 + timedelta(seconds=121)) == [gpu]
    cache.record(gpu.key, USAGE, T0 + timedelta(seconds=122))
    assert cache.error(gpu.key) is None


def test_machines_gone_from_the_fleet_are_forgotten() -> None:
    cache = GpuProbeCache()
    gone, kept = make_instance("i-gone"), make_instance("i-kept")
    cache.record(gone.key, USAGE, T0)
    cache.begin(kept.key, T0)

    cache.prune([kept])

    assert cache.figures(gone.key, T0) is None
    assert cache.due([gone], T0) == [gone]
    assert cache.due([kept], T0) == []


def test_a_zero_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 0 seconds"):
        GpuProbeCache(interval_seconds=0)
