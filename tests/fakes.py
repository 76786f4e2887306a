"""An in-memory provider and a settable clock, for tests that need a fleet without a cloud."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from runctl_tui.models import (
    Action,
    Ec2Details,
    GpuSpec,
    Instance,
    InstanceState,
    Lifecycle,
    ProcessDetails,
    Rate,
)
from runctl_tui.providers.base import LogLocation, NotFoundError, ProviderError, SpotRequest

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

EC2_FIELDS = frozenset(Ec2Details.model_fields) - {"kind"}
"""Keyword arguments of :func:`make_instance` that go into the EC2 details."""

EC2_ACTIONS = frozenset({Action.STOP, Action.START, Action.TERMINATE})
RUN_ACTIONS = frozenset({Action.INTERRUPT, Action.KILL})
LIVE = frozenset({InstanceState.RUNNING, InstanceState.PENDING})
GONE = frozenset({InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN})


def list_rate(instance_type: str, region: str, *, spot: bool = False) -> Rate | None:
    """What the AWS provider rates an instance at when the price list cannot be read: the
    bundled table's on-demand price, an upper bound for spot."""
    from runctl_tui.costs.pricing import bundled_table

    rate = bundled_table().rate(region, instance_type, note="test fleet")
    if rate is not None and spot:
        rate = rate.model_copy(update={"upper_bound": True})
    return rate


def make_instance(
    instance_id: str = "i-0001",
    *,
    provider: str = "fake",
    name: str = "",
    region: str = "us-east-1",
    state: InstanceState = InstanceState.RUNNING,
    instance_type: str = "g5.xlarge",
    spot: str | None = None,
    protected: bool = False,
    **extra: Any,
) -> Instance:
    """An EC2-like instance with sensible defaults; ``extra`` sets any other field, of the
    instance or of its EC2 details (``zone``, ``public_ip``, ``volumes``...)."""
    ec2: dict[str, Any] = {
        "instance_type": instance_type,
        "lifecycle": Lifecycle.SPOT if spot else Lifecycle.ON_DEMAND,
        "spot_request_type": spot,
    }
    ec2.update({k: extra.pop(k) for k in list(extra) if k in EC2_FIELDS})
    fields: dict[str, Any] = {
        "provider": provider,
        "id": instance_id,
        "location": region,
        "name": name,
        "state": state,
        "protected": protected,
        "protected_by": "tag runctl:protect=true" if protected else "",
        "gpus": GpuSpec(count=1, model="A10G", memory_mib=22888),
        "launched_at": T0 - timedelta(hours=1),
        "details": Ec2Details(**ec2),
        "rate": list_rate(instance_type, region, spot=bool(spot)),
    }
    fields.update(extra)
    return Instance(**fields)


def make_run(
    pid: int = 4242,
    *,
    provider: str = "fake",
    host: str = "box",
    name: str = "python train.py --lr 3e-4",
    state: InstanceState = InstanceState.RUNNING,
    own: bool = True,
    **extra: Any,
) -> Instance:
    """A training run on ``host``, with the details a process has."""
    details = ProcessDetails(
        pid=pid,
        start_time=1000.0 + pid,
        host=host,
        username="me" if own else "alice",
        own=own,
        cmdline=tuple(name.split()),
        program="train.py",
        pattern="train*.py",
        pgid=pid,
        group_size=1,
    )
    fields: dict[str, Any] = {
        "provider": provider,
        "id": f"{pid}@{1000 + pid}",
        "location": host,
        "name": name,
        "state": state,
        "gpus": None,
        "launched_at": T0 - timedelta(minutes=30),
        "rate": Rate(usd_per_hour=Decimal(0), source="counted on this machine's row"),
        "details": details,
    }
    fields.update(extra)
    return Instance(**fields)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self.now += delta


class FakeProvider:
    """Implements the Provider protocol over a dict of instances; records every call."""

    def __init__(
        self,
        instances: list[Instance] | None = None,
        *,
        name: str = "fake",
        actions: frozenset[Action] | None = None,
        logs: dict[str, list[LogLocation]] | None = None,
    ) -> None:
        self._name = name
        self.logs: dict[str, list[LogLocation]] = dict(logs or {})
        """What ``log_locations`` answers, by instance id."""
        self.logs_error: ProviderError | None = None
        self.allowed = actions
        """Actions every item takes; ``None``: what its kind takes (EC2's or a run's)."""
        self.instances: dict[str, Instance] = {i.id: i for i in instances or []}
        self.list_error: BaseException | None = None
        """Raised by the next ``list_instances`` calls while set."""
        self.describe_error: ProviderError | None = None
        self.action_error: ProviderError | None = None
        self.calls: list[tuple[str, str]] = []
        self.list_gate: threading.Event | None = None
        """While set to an unset event, ``list_instances`` blocks until it is set (a hung API)."""
        self.warnings: tuple[str, ...] = ()
        self.account: str | None = None
        """What ``identity`` answers."""
        self.spot_requests: dict[str, SpotRequest] = {}
        """Spot requests by instance id."""
        self.cancel_error: ProviderError | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Provider name."""
        return self._name

    def actions(self, instance: Instance) -> frozenset[Action]:
        """What the test allowed, else what the item's kind takes (a host: nothing)."""
        if self.allowed is not None:
            return self.allowed
        if instance.kind == "host":
            return frozenset()
        return RUN_ACTIONS if instance.kind == "process" else EC2_ACTIONS

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """EC2's and a run's rules, as the real providers word them."""
        details = instance.details
        if isinstance(details, ProcessDetails) and not details.own:
            return f"belongs to {details.username}; only your own processes are acted on"
        if action in {Action.STOP, Action.INTERRUPT}:
            if isinstance(details, Ec2Details) and details.one_time_spot:
                return "a one-time spot instance cannot be stopped; terminate it instead"
            if instance.state not in LIVE:
                return f"cannot stop an instance that is {instance.state}"
        elif action is Action.START and instance.state is not InstanceState.STOPPED:
            return f"only a stopped instance can be started; it is {instance.state}"
        elif action in {Action.TERMINATE, Action.KILL} and instance.state in GONE:
            return f"already {instance.state}"
        return None

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """What EC2 says an EC2 item loses; what a signal does to a run."""
        from runctl_tui.providers.aws import ec2_losses

        if isinstance(instance.details, ProcessDetails):
            group = f"process group {instance.details.pgid}"
            if action is Action.INTERRUPT:
                return [f"SIGINT to {group}: the run may save a checkpoint and exit"]
            if action is Action.KILL:
                return [f"SIGKILL to {group}: unsaved progress is lost", "this cannot be undone"]
            return []
        return ec2_losses(action, instance)

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Change the state as the action would."""
        state = {
            Action.STOP: InstanceState.STOPPING,
            Action.START: InstanceState.PENDING,
            Action.TERMINATE: InstanceState.SHUTTING_DOWN,
            Action.INTERRUPT: InstanceState.STOPPING,
            Action.KILL: InstanceState.TERMINATED,
        }[action]
        return self._change(action.value, instance, state)

    def list_instances(self) -> list[Instance]:
        """Every instance, or the configured failure."""
        gate = self.list_gate
        if gate is not None:
            gate.wait(timeout=120)
        with self._lock:
            self.calls.append(("list", ""))
            if self.list_error is not None:
                raise self.list_error
            return list(self.instances.values())

    def describe(self, instance: Instance) -> Instance:
        """The current instance, as the test last set it."""
        with self._lock:
            self.calls.append(("describe", instance.id))
            if self.describe_error is not None:
                raise self.describe_error
            try:
                return self.instances[instance.id]
            except KeyError:
                raise NotFoundError(self.name, f"{instance.id} no longer exists") from None

    def _change(self, operation: str, instance: Instance, state: InstanceState) -> InstanceState:
        with self._lock:
            self.calls.append((operation, instance.id))
            if self.action_error is not None:
                raise self.action_error
            self.instances[instance.id] = self.instances[instance.id].model_copy(
                update={"state": state}
            )
            return state

    def set_state(self, instance_id: str, state: InstanceState) -> None:
        """Change an instance's state behind the app's back."""
        with self._lock:
            current = self.instances[instance_id]
            self.instances[instance_id] = current.model_copy(update={"state": state})

    def set(self, instance: Instance) -> None:
        """Replace (or add) an instance, as if changed behind the app's back."""
        with self._lock:
            self.instances[instance.id] = instance

    def poll_warnings(self) -> tuple[str, ...]:
        """What the test set."""
        return self.warnings

    def log_locations(self, instance: Instance) -> list[LogLocation]:
        """The logs the test set for ``instance``, or the failure it set."""
        with self._lock:
            self.calls.append(("log_locations", instance.id))
            if self.logs_error is not None:
                raise self.logs_error
            return list(self.logs.get(instance.id, []))

    def identity(self) -> str | None:
        """What the test set."""
        return self.account

    def spot_request(self, instance: Instance) -> SpotRequest | None:
        """The request the test set for ``instance``."""
        with self._lock:
            self.calls.append(("spot_request", instance.id))
            return self.spot_requests.get(instance.id)

    def cancel_spot_request(self, instance: Instance, request_id: str) -> str:
        """Cancel the request the test set."""
        with self._lock:
            self.calls.append(("cancel_spot_request", request_id))
            if self.cancel_error is not None:
                raise self.cancel_error
            request = self.spot_requests[instance.id]
            self.spot_requests[instance.id] = SpotRequest(request.id, request.type, "cancelled")
            return "cancelled"

    def acted(self) -> list[tuple[str, str]]:
        """Only the state-changing calls."""
        changes = {"stop", "start", "terminate", "interrupt", "kill", "cancel_spot_request"}
        return [c for c in self.calls if c[0] in changes]
