"""The fleet as data: frozen pydantic models with no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class InstanceState(StrEnum):
    """Lifecycle state of a machine, in the provider-neutral vocabulary."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SHUTTING_DOWN = "shutting-down"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


class Lifecycle(StrEnum):
    """How the machine is bought."""

    ON_DEMAND = "on-demand"
    SPOT = "spot"


class Action(StrEnum):
    """What a user can do to an instance."""

    STOP = "stop"
    START = "start"
    TERMINATE = "terminate"
    CANCEL_SPOT_REQUEST = "cancel-spot-request"
    """Cancel the persistent spot request behind an instance, so it launches no replacement."""


class GpuSpec(BaseModel):
    """The accelerators of one instance type."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    count: int
    model: str
    """Marketing name as the provider reports it, e.g. ``A10G`` or ``H100``."""
    memory_mib: int | None = None
    """Memory of one GPU."""

    def label(self) -> str:
        """``8x H100 80G``: count, model and per-GPU memory."""
        text = f"{self.count}x {self.model}"
        if self.memory_mib:
            text += f" {round(self.memory_mib / 1024)}G"
        return text


class Volume(BaseModel):
    """A block device attached to an instance."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    device: str
    delete_on_termination: bool


class Instance(BaseModel):
    """One machine as a provider reported it at ``observed_at``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    provider: str
    """Name of the provider that owns it, e.g. ``aws``."""
    id: str
    region: str
    zone: str | None = None
    name: str = ""
    """The ``Name`` tag, or empty."""
    instance_type: str
    state: InstanceState
    lifecycle: Lifecycle | None = Lifecycle.ON_DEMAND
    """``None`` for machines not bought by the hour from a market (this machine, a lab box)."""
    spot_request_type: str | None = None
    """``one-time`` or ``persistent`` for spot instances, when the provider tells."""
    spot_request_id: str | None = None
    """The spot request that launched the instance, when the provider found it."""
    gpus: GpuSpec | None = None
    """``None``: no accelerators, or unknown when :attr:`type_facts_missing` says why."""
    instance_store_gb: int | None = 0
    """Local NVMe/SSD storage that is wiped when the instance stops; ``None`` when unknown."""
    type_facts_missing: str | None = None
    """Why the GPU and instance-store facts are unknown (e.g. no permission), else ``None``."""
    launched_at: datetime | None = None
    """Always UTC; providers convert before constructing."""
    public_ip: str | None = None
    private_ip: str | None = None
    image_id: str | None = None
    key_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    volumes: tuple[Volume, ...] = ()
    protected: bool = False
    """Carries the configured protection tag: never terminated from here."""
    hourly_usd: Decimal | None = None
    """The provider's own hourly price, when it has one (a pod's rate, a host's config)."""
    rate_source: str | None = None
    """Where :attr:`hourly_usd` comes from, e.g. ``[[ssh.hosts]] hourly_usd``."""

    @property
    def key(self) -> str:
        """Identity across providers, stable between polls."""
        return f"{self.provider}:{self.id}"

    @property
    def one_time_spot(self) -> bool:
        """A one-time spot instance can only be terminated, never stopped."""
        return self.lifecycle is Lifecycle.SPOT and self.spot_request_type == "one-time"

    @property
    def persistent_spot(self) -> bool:
        """A persistent spot request relaunches the instance after a plain terminate."""
        return self.lifecycle is Lifecycle.SPOT and self.spot_request_type == "persistent"

    def uptime(self, now: datetime) -> timedelta | None:
        """Time since launch while the instance is up, else ``None``."""
        if self.launched_at is None or self.state not in {
            InstanceState.RUNNING,
            InstanceState.PENDING,
            InstanceState.STOPPING,
        }:
            return None
        return max(now - self.launched_at, timedelta(0))


class ProviderStatus(BaseModel):
    """How fresh one provider's data is, and why it failed if it did."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    provider: str
    ok: bool
    refreshed_at: datetime | None = None
    """Last successful poll; ``None`` if none succeeded yet."""
    error: str | None = None
    """One line: what went wrong on the last poll."""
    hint: str | None = None
    """One line: how to fix it."""
    failed_at: datetime | None = None
    instance_count: int = 0
    configured: bool = True
    """``False`` when the provider was never set up: ``error`` then says so, ``hint`` how."""
    warnings: tuple[str, ...] = ()
    """Problems that did not fail the poll, e.g. a missing permission; one line each."""
    identity: str | None = None
    """What is shown, e.g. ``profile ml · account 123456789012 · us-east-1``."""

    def age(self, now: datetime) -> timedelta | None:
        """How old the data shown for this provider is."""
        return None if self.refreshed_at is None else max(now - self.refreshed_at, timedelta(0))


class FleetSnapshot(BaseModel):
    """Everything one poll of every provider produced."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    instances: tuple[Instance, ...]
    statuses: tuple[ProviderStatus, ...]
    taken_at: datetime

    @property
    def all_ok(self) -> bool:
        """Every configured provider answered on this poll."""
        return all(s.ok or not s.configured for s in self.statuses)


class Outcome(StrEnum):
    """How an attempted action ended."""

    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ActionResult(BaseModel):
    """The result of one action on one instance."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    action: Action
    instance: Instance
    """The instance as the user saw it when they asked."""
    outcome: Outcome
    detail: str = ""
    new_state: InstanceState | None = None

    def summary(self) -> str:
        """One line for a notification."""
        from runctl_tui.text import one_line

        name = one_line(self.instance.name, 40)
        who = f"{one_line(self.instance.id, 40)} ({name})" if name else one_line(self.instance.id)
        if self.outcome is Outcome.DONE:
            state = f": now {self.new_state}" if self.new_state else ""
            return f"{self.action}: {who}{state}"
        return f"{self.action} {self.outcome}: {who}: {one_line(self.detail, 300)}"


def format_duration(delta: timedelta | None) -> str:
    """Compact human duration: ``42s``, ``17m``, ``3h12m``, ``5d04h``."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_usd(amount: Decimal | None, per_hour: bool = False) -> str:
    """``$1.01`` style money, two decimals (three below a dollar); ``?`` when unknown."""
    if amount is None:
        return "?"
    places = 2 if abs(amount) >= 1 or amount == 0 else 3
    text = f"${amount:,.{places}f}"
    return f"{text}/h" if per_hour else text
