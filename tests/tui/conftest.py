"""A sample fleet, a frozen clock and an app factory for Pilot and snapshot tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.models import GpuSpec, Instance, InstanceState, Lifecycle, Volume
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from tests.fakes import FakeProvider

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
        region=region,
        zone=f"{region}a",
        name=name,
        instance_type=instance_type,
        state=state,
        lifecycle=Lifecycle.SPOT if spot else Lifecycle.ON_DEMAND,
        spot_request_type=spot,
        gpus=gpus,
        instance_store_gb=store_gb,
        launched_at=NOW - age,
        public_ip="54.210.1.10" if state is InstanceState.RUNNING else None,
        private_ip="10.0.1.10",
        image_id="ami-0abc1234def567890",
        key_name="ml-team",
        tags=tags,
        volumes=(Volume(id=f"vol-{id[2:]}", device="/dev/sda1", delete_on_termination=True),),
        protected=protected,
    )


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
            protect_tag=config.protect_tag,
            clock=lambda: NOW,
        )
        return RunctlApp(config, fleet, demo=demo, clock=lambda: NOW)

    return build
