"""Synthetic fleets and an in-memory provider, for benchmarks that need no network at all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from runctl_tui.models import Action, Ec2Details, GpuSpec, Instance, InstanceState, Lifecycle
from runctl_tui.providers.base import NotFoundError

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1")
TYPES: dict[str, GpuSpec | None] = {
    "g5.xlarge": GpuSpec(count=1, model="A10G", memory_mib=22888),
    "p4d.24xlarge": GpuSpec(count=8, model="A100", memory_mib=40960),
    "g6e.12xlarge": GpuSpec(count=4, model="L40S", memory_mib=45776),
    "p5.48xlarge": GpuSpec(count=8, model="H100", memory_mib=81920),
    "c6i.xlarge": None,
}
PROJECTS = ("llm-sft", "dpo-sweep", "diffusion", "evals", "speech", "rlhf", "data", "vision")


def synthetic_fleet(count: int, now: datetime, generation: int = 0) -> list[Instance]:
    """``count`` instances over four regions; every row differs between consecutive generations.

    An instance is stopped when ``(n + generation) % 7 == 0``, so one generation later it is
    either running instead, or still running with a new public IP and launch time.
    """
    types = list(TYPES)
    fleet = []
    for n in range(count):
        region = REGIONS[n % len(REGIONS)]
        instance_type = types[n % len(types)]
        project = PROJECTS[n % len(PROJECTS)]
        stopped = (n + generation) % 7 == 0
        spot = n % 11 == 0
        tags = {"Name": f"{project}-{n:04d}", "project": project, "owner": "bench"}
        if n % 97 == 0:
            tags["runctl:protect"] = "true"
        fleet.append(
            Instance(
                provider="aws",
                id=f"i-{n:017x}",
                name=tags["Name"],
                location=region,
                state=InstanceState.STOPPED if stopped else InstanceState.RUNNING,
                gpus=TYPES[instance_type],
                launched_at=now - timedelta(minutes=7 * n + 1, hours=generation),
                tags=tags,
                protected="runctl:protect" in tags,
                protected_by="tag runctl:protect=true" if "runctl:protect" in tags else "",
                details=Ec2Details(
                    instance_type=instance_type,
                    zone=f"{region}{'abc'[n % 3]}",
                    lifecycle=Lifecycle.SPOT if spot else Lifecycle.ON_DEMAND,
                    spot_request_type="persistent" if spot else None,
                    public_ip=None if stopped else f"3.{generation % 250}.{n // 250}.{n % 250}",
                    private_ip=f"10.0.{n // 250}.{n % 250}",
                    image_id="ami-0b1e2c3d4e5f60718",
                ),
            )
        )
    return fleet


def with_changes(fleet: Sequence[Instance], changed: int) -> list[Instance]:
    """``fleet`` with ``changed`` instances, spread evenly, flipped between running and stopping."""
    step = max(len(fleet) // max(changed, 1), 1)
    result = list(fleet)
    for n in range(0, min(changed * step, len(result)), step):
        instance = result[n]
        running = instance.state is InstanceState.RUNNING
        state = InstanceState.STOPPING if running else InstanceState.PENDING
        result[n] = instance.model_copy(update={"state": state})
    return result


RESULTS = {
    Action.STOP: InstanceState.STOPPING,
    Action.START: InstanceState.PENDING,
    Action.TERMINATE: InstanceState.SHUTTING_DOWN,
}
"""The state each pretended action reports, as EC2 would right after the call."""


class MemoryProvider:
    """A Provider that serves whatever instances it was last given, instantly."""

    def __init__(self, instances: Sequence[Instance] = ()) -> None:
        self.instances = list(instances)

    @property
    def name(self) -> str:
        """The provider name the rows carry."""
        return "aws"

    def list_instances(self) -> list[Instance]:
        """The current instances."""
        return list(self.instances)

    def describe(self, instance: Instance) -> Instance:
        """The current version of ``instance``."""
        for candidate in self.instances:
            if candidate.id == instance.id:
                return candidate
        raise NotFoundError(self.name, f"{instance.id} no longer exists")

    def actions(self, instance: Instance) -> frozenset[Action]:
        """What an EC2 instance takes."""
        return frozenset(RESULTS)

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Nothing is refused: the benchmarks measure the interface, not the rules."""
        return None

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Pretend to act."""
        return RESULTS[action]
