"""An in-memory provider and a settable clock, for tests that need a fleet without a cloud."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from runctl_tui.models import GpuSpec, Instance, InstanceState, Lifecycle
from runctl_tui.providers.base import Capabilities, NotFoundError, ProviderError, SpotRequest

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


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
    """An instance with sensible defaults; ``extra`` sets any other field."""
    fields: dict[str, Any] = {
        "provider": provider,
        "id": instance_id,
        "region": region,
        "name": name,
        "instance_type": instance_type,
        "state": state,
        "lifecycle": Lifecycle.SPOT if spot else Lifecycle.ON_DEMAND,
        "spot_request_type": spot,
        "protected": protected,
        "gpus": GpuSpec(count=1, model="A10G", memory_mib=22888),
        "launched_at": T0 - timedelta(hours=1),
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
        capabilities: Capabilities | None = None,
    ) -> None:
        self._name = name
        self._capabilities = capabilities or Capabilities()
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

    @property
    def capabilities(self) -> Capabilities:
        """Supported actions."""
        return self._capabilities

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

    def stop(self, instance: Instance) -> InstanceState:
        """Stop."""
        return self._change("stop", instance, InstanceState.STOPPING)

    def start(self, instance: Instance) -> InstanceState:
        """Start."""
        return self._change("start", instance, InstanceState.PENDING)

    def terminate(self, instance: Instance) -> InstanceState:
        """Terminate."""
        return self._change("terminate", instance, InstanceState.SHUTTING_DOWN)

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
        changes = {"stop", "start", "terminate", "cancel_spot_request"}
        return [c for c in self.calls if c[0] in changes]
