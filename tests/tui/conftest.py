"""A sample fleet, a frozen clock and an app factory for Pilot and snapshot tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.models import (
    Ec2Details,
    GpuSpec,
    GpuUsage,
    HostDetails,
    Instance,
    InstanceState,
    Lifecycle,
    PodDetails,
    ProcessDetails,
    Rate,
    Volume,
)
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from tests.fakes import FakeProvider, list_rate

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

H100 = GpuSpec(count=8, model="H100", memory_mib=81920)
A100 = GpuSpec(count=8, model="A100", memory_mib=40960)
A10G = GpuSpec(count=1, model="A10G", memory_mib=22888)
L40S = GpuSpec(count=4, model="L40S", memory_mib=45776)


def machine(
    id: str,
    name: str,
    instance_type: str = "g5.xlarge",
    *,
    region: str = "us-east-1",
    state: InstanceState = InstanceState.RUNNING,
    gpus: GpuSpec | None = A10G,
    age: timedelta = timedelta(hours=3),
    spot: str | None = None,
    protected: bool = False,
    store_gb: int = 0,
) -> Instance:
    """A realistic instance with a fixed identity."""
    tags = {"Name": name, "project": "llm", "owner": "maria"}
    if protected:
        tags["runctl:protect"] = "true"
    return Instance(
        provider="aws",
        id=id,
        location=region,
        name=name,
        state=state,
        gpus=gpus,
        launched_at=NOW - age,
        rate=list_rate(instance_type, region, spot=bool(spot)),
        tags=tags,
        protected=protected,
        protected_by="tag runctl:protect=true" if protected else "",
        details=Ec2Details(
            instance_type=instance_type,
            zone=f"{region}a",
            lifecycle=Lifecycle.SPOT if spot else Lifecycle.ON_DEMAND,
            spot_request_type=spot,
            instance_store_gb=store_gb,
            public_ip="54.210.1.10" if state is InstanceState.RUNNING else None,
            private_ip="10.0.1.10",
            image_id="ami-0abc1234def567890",
            key_name="ml-team",
            volumes=(Volume(id=f"vol-{id[2:]}", device="/dev/sda1", delete_on_termination=True),),
        ),
    )


def with_details(instance: Instance, **updates: object) -> Instance:
    """``instance`` with some of its details changed (``volumes``, ``instance_store_gb``...)."""
    return instance.model_copy(update={"details": instance.details.model_copy(update=updates)})


def sample_fleet() -> list[Instance]:
    """Eight instances over two regions: spot and on-demand, running and stopped, one protected."""
    return [
        machine(
            "i-0a11",
            "llama3-70b-sft",
            "p5.48xlarge",
            gpus=H100,
            age=timedelta(days=2, hours=5),
            protected=True,
            store_gb=30400,
        ),
        machine(
            "i-0b22",
            "dpo-sweep-lr3e-6",
            "p4d.24xlarge",
            gpus=A100,
            spot="persistent",
            age=timedelta(hours=6, minutes=12),
            store_gb=8000,
        ),
        machine(
            "i-0c33",
            "whisper-distill",
            "g6e.12xlarge",
            gpus=L40S,
            spot="one-time",
            age=timedelta(hours=3, minutes=40),
            store_gb=3800,
        ),
        machine("i-0d44", "eval-harness", "g5.xlarge", age=timedelta(minutes=47), store_gb=250),
        machine("i-0e55", "notebook-ana", "g5.2xlarge", state=InstanceState.STOPPED),
        machine(
            "i-0f66",
            "reward-model-7b",
            "p4d.24xlarge",
            gpus=A100,
            region="eu-west-1",
            age=timedelta(days=1, hours=2),
            store_gb=8000,
        ),
        machine(
            "i-0a77",
            "tokenize-shards",
            "c6i.xlarge",
            gpus=None,
            region="eu-west-1",
            age=timedelta(hours=1, minutes=5),
        ),
        machine(
            "i-0b88",
            "vit-pretrain-2024",
            "g5.12xlarge",
            region="eu-west-1",
            state=InstanceState.STOPPED,
        ),
    ]


AppFactory = Callable[..., RunctlApp]


def pod(
    id: str,
    name: str,
    gpu: str,
    count: int,
    rate: str,
    *,
    state: InstanceState = InstanceState.RUNNING,
    spot: bool = False,
    util: tuple[int, ...] = (),
) -> Instance:
    """A RunPod pod as the provider reports it."""
    protected = "[protect]" in name
    return Instance(
        provider="runpod",
        id=id,
        location="EU-RO-1",
        name=name,
        state=state,
        gpus=GpuSpec(count=count, model=gpu),
        gpu_usage=tuple(
            GpuUsage(index=n, name=gpu, utilization_percent=u, memory_percent=60)
            for n, u in enumerate(util)
        ),
        launched_at=NOW - timedelta(hours=5, minutes=17),
        rate=Rate(usd_per_hour=Decimal(rate), source="the pod's costPerHr", region="EU-RO-1"),
        protected=protected,
        protected_by="name contains [protect]" if protected else "",
        details=PodDetails(
            desired_status="RUNNING" if state is InstanceState.RUNNING else "EXITED",
            status_reason=None if state is InstanceState.RUNNING else "Exited by user",
            gpu_count=count,
            gpu_display_name=gpu,
            ssh_endpoint="194.68.245.7:22042" if state is InstanceState.RUNNING else None,
            volume_gb=200,
            container_disk_gb=50,
            image="runpod/pytorch:2.4.0-py3.11-cuda12.4.1",
            interruptible=spot,
        ),
    )


def host(provider: str, label: str, hostname: str, *, target: str | None = None) -> Instance:
    """A whole machine: this one, or one reached over SSH."""
    return Instance(
        provider=provider,
        id=label if target else "host",
        location=label,
        name=hostname,
        state=InstanceState.RUNNING,
        gpus=GpuSpec(count=2, model="NVIDIA A100-SXM4-80GB", memory_mib=81920),
        gpu_usage=(
            GpuUsage(
                index=0,
                name="A100",
                utilization_percent=96,
                memory_used_mib=70211,
                memory_total_mib=81920,
            ),
            GpuUsage(
                index=1,
                name="A100",
                utilization_percent=2,
                memory_used_mib=3,
                memory_total_mib=81920,
            ),
        ),
        launched_at=NOW - timedelta(days=12),
        rate=Rate(
            usd_per_hour=Decimal(0),
            source="[local] hourly_usd unset" if target is None else "[[ssh.hosts]] hourly_usd",
        ),
        details=HostDetails(
            hostname=hostname,
            cpus=64,
            memory_total_bytes=512 * 1024**3,
            memory_used_bytes=187 * 1024**3,
            load_average=(12.4, 11.9, 10.2),
            ssh_target=target,
        ),
    )


def run(
    provider: str,
    label: str,
    pid: int,
    argv: str,
    *,
    own: bool = True,
    age: timedelta = timedelta(hours=2, minutes=3),
) -> Instance:
    """A training run on ``label``."""
    cmdline = tuple(argv.split())
    return Instance(
        provider=provider,
        id=f"{label}:{pid}@{pid * 7}" if provider == "ssh" else f"{pid}@{pid * 7}.5",
        location=label,
        name=argv,
        state=InstanceState.RUNNING,
        launched_at=NOW - age,
        rate=Rate(usd_per_hour=Decimal(0), source=f"counted on {label}'s row"),
        details=ProcessDetails(
            pid=pid,
            start_time=pid * 7,
            host=label,
            username="maria" if own else "kenji",
            own=own,
            cmdline=cmdline,
            program=next((a for a in cmdline if a.endswith(".py")), cmdline[0]),
            pattern="train*.py",
            cpu_percent=812.0,
            rss_bytes=23 * 1024**3,
            gpu_memory_mib=70211,
            pgid=pid,
            group_size=9,
        ),
    )


def mixed_providers() -> list[FakeProvider]:
    """EC2, RunPod, this machine and an SSH host: every kind of row, each provider's way."""
    ec2 = [i for i in sample_fleet() if i.id in {"i-0a11", "i-0b22", "i-0d44", "i-0e55"}]
    return [
        FakeProvider(ec2, name="aws"),
        FakeProvider(
            [
                pod("x7k2m9q4w1e8r3", "llama3-8b-sft", "RTX 4090", 2, "1.38", util=(94, 91)),
                pod("p3n8v5c2z6t1y9", "[protect] pretrain-1b", "H100 80GB HBM3", 8, "21.52"),
                pod("s4d7f1g8h2j5k0", "sdxl-lora-sweep", "RTX A6000", 1, "0.39", spot=True),
                pod(
                    "e5r8t2y6u9i3o1", "dataset-prep", "A40", 1, "0.35", state=InstanceState.STOPPED
                ),
            ],
            name="runpod",
        ),
        FakeProvider(
            [
                host("local", "ws-maria", "ws-maria"),
                run("local", "ws-maria", 48211, "torchrun --nproc_per_node=2 train_sft.py"),
            ],
            name="local",
        ),
        FakeProvider(
            [
                host("ssh", "lab-a100", "a100-01", target="maria@a100-01.lab:22"),
                run("ssh", "lab-a100", 3310, "python train.py --config dpo.yaml"),
                run("ssh", "lab-a100", 3377, "python train_rm.py --lr 1e-5", own=False),
            ],
            name="ssh",
        ),
    ]


@pytest.fixture
def make_mixed_app(journal_path: Path) -> Callable[..., RunctlApp]:
    """The app over a mixed fleet of four providers, frozen clock, no background polls."""

    def build(readonly: bool = False, only: tuple[str, ...] = ()) -> RunctlApp:
        config = Settings(poll_seconds=3600, readonly=readonly)
        providers = [p for p in mixed_providers() if not only or p.name in only]
        fleet = Fleet(
            providers, journal=Journal(journal_path), readonly=readonly, clock=lambda: NOW
        )
        return RunctlApp(config, fleet, clock=lambda: NOW)

    return build


@pytest.fixture
def provider() -> FakeProvider:
    """The in-memory fleet."""
    return FakeProvider(sample_fleet(), name="aws")


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """Where the test's audit journal goes."""
    return tmp_path / "journal.jsonl"


@pytest.fixture
def make_app(provider: FakeProvider, journal_path: Path) -> AppFactory:
    """Build the app over ``provider`` with a frozen clock and no background polls."""

    def build(readonly: bool = False, demo: bool = False, **settings: object) -> RunctlApp:
        config = Settings(poll_seconds=3600, readonly=readonly, **settings)
        fleet = Fleet(
            [provider],
            journal=Journal(journal_path),
            readonly=readonly,
            clock=lambda: NOW,
        )
        return RunctlApp(config, fleet, demo=demo, clock=lambda: NOW)

    return build
