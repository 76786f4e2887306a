"""The fleet as data: frozen pydantic models with no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

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
    """What a user can do to an item of the fleet."""

    STOP = "stop"
    START = "start"
    TERMINATE = "terminate"
    INTERRUPT = "interrupt"
    """A training run: SIGINT to its process group, SIGTERM after a grace period."""
    KILL = "kill"
    """A training run: SIGKILL to its process group."""
    CANCEL_SPOT_REQUEST = "cancel-spot-request"
    """Cancel the persistent spot request behind an instance, so it launches no replacement."""


class GpuSpec(BaseModel):
    """The accelerators of one machine."""

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


class GpuUsage(BaseModel):
    """One GPU's load right now, as ``nvidia-smi`` or the provider's telemetry reports it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    index: int
    name: str = ""
    utilization_percent: int | None = None
    """``None`` when the driver says ``[N/A]`` or the provider sent no figure."""
    memory_used_mib: int | None = None
    memory_total_mib: int | None = None
    memory_percent: int | None = None
    """Share of the GPU's memory in use, where only that is reported (RunPod's telemetry)."""


class Rate(BaseModel):
    """What something costs per hour while it bills, and where that figure came from."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    usd_per_hour: Decimal
    source: str
    """Where the figure comes from, e.g. ``AWS Price List API``, ``the pod's costPerHr``."""
    as_of: datetime | None = None
    """When the price was published or fetched (UTC); ``None`` for configured rates."""
    region: str | None = None
    """The region or zone the price is for."""
    estimate: bool = False
    """Taken from another region's price: the real one may differ."""
    upper_bound: bool = False
    """At most this (a spot instance counted at its on-demand price)."""
    note: str = ""
    """Why this source was used, e.g. why the live price list could not be read."""

    @property
    def marker(self) -> str:
        """``≤`` for an upper bound, ``~`` for an estimate, else nothing."""
        if self.upper_bound:
            return "≤"
        return "~" if self.estimate else ""

    def describe(self) -> str:
        """One line: ``AWS Price List API · us-east-1 · 2026-11-20``."""
        parts = [self.source]
        if self.region:
            parts.append(self.region)
        if self.as_of is not None:
            midnight = (self.as_of.hour, self.as_of.minute, self.as_of.second) == (0, 0, 0)
            parts.append(self.as_of.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M UTC"))
        if self.estimate:
            parts.append("estimate")
        if self.upper_bound:
            parts.append("upper bound")
        return " · ".join(parts)


class Volume(BaseModel):
    """A block device attached to an EC2 instance."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    device: str
    delete_on_termination: bool


def _size(count: int | None) -> str:
    if count is None:
        return "-"
    if count < 1024**3:
        return f"{count / 1024**2:.0f} MiB"
    return f"{count / 1024**3:.1f} GiB"


class Ec2Details(BaseModel):
    """What EC2 tells about an instance beyond what every provider has."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["ec2"] = "ec2"
    instance_type: str
    zone: str | None = None
    lifecycle: Lifecycle = Lifecycle.ON_DEMAND
    spot_request_type: str | None = None
    """``one-time`` or ``persistent`` for spot instances, when EC2 tells."""
    spot_request_id: str | None = None
    """The spot request that launched the instance, when it was found."""
    instance_store_gb: int | None = 0
    """Local NVMe/SSD storage that is wiped when the instance stops; ``None`` when unknown."""
    type_facts_missing: str | None = None
    """Why the GPU and instance-store facts are unknown (e.g. no permission), else ``None``."""
    public_ip: str | None = None
    private_ip: str | None = None
    image_id: str | None = None
    key_name: str | None = None
    volumes: tuple[Volume, ...] = ()

    @property
    def one_time_spot(self) -> bool:
        """A one-time spot instance can only be terminated, never stopped."""
        return self.lifecycle is Lifecycle.SPOT and self.spot_request_type == "one-time"

    @property
    def persistent_spot(self) -> bool:
        """A persistent spot request relaunches the instance after a plain terminate."""
        return self.lifecycle is Lifecycle.SPOT and self.spot_request_type == "persistent"

    @property
    def type_label(self) -> str:
        """The TYPE column: the instance type."""
        return self.instance_type

    @property
    def sublocation(self) -> str | None:
        """The availability zone, shown in place of the region when known."""
        return self.zone

    @property
    def market(self) -> str:
        """``on-demand``, ``spot``, ``spot one-time`` or ``spot persist``."""
        if self.lifecycle is Lifecycle.ON_DEMAND:
            return "on-demand"
        if self.spot_request_type == "one-time":
            return "spot one-time"
        if self.spot_request_type == "persistent":
            return "spot persist"
        return "spot"

    @property
    def address(self) -> str | None:
        """Where to reach it: the public IP, else the private one."""
        return self.public_ip or self.private_ip

    def store_fact(self) -> str:
        """The instance store's size, ``none``, or why it is unknown."""
        store = self.instance_store_gb
        if store is None:
            return f"unknown ({self.type_facts_missing})" if self.type_facts_missing else "unknown"
        return f"{store} GB" if store else "none"

    def facts(self) -> list[tuple[str, str]]:
        """Rows of the details panel, in order; values are raw (the panel escapes them)."""
        rows = [
            ("Type", self.instance_type),
            ("Zone", self.zone or "-"),
            ("Instance store", self.store_fact()),
            ("Market", self.market),
        ]
        if self.spot_request_id:
            rows.append(("Spot request", self.spot_request_id))
        rows += [
            ("Public IP", self.public_ip or "-"),
            ("Private IP", self.private_ip or "-"),
            ("AMI", self.image_id or "-"),
            ("Key name", self.key_name or "-"),
        ]
        for volume in self.volumes:
            fate = "deleted on terminate" if volume.delete_on_termination else "kept on terminate"
            rows.append(("Volume", f"{volume.device}  {volume.id}  {fate}"))
        return rows


class PodDetails(BaseModel):
    """What RunPod tells about a pod beyond what every provider has."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["pod"] = "pod"
    desired_status: str = ""
    """RunPod's own word: ``RUNNING``, ``EXITED``, ``CREATED``, ``TERMINATED``..."""
    status_reason: str | None = None
    """``lastStatusChange`` as sent, e.g. ``Exited by user: ...`` or an outbid notice."""
    gpu_count: int = 0
    gpu_display_name: str | None = None
    ssh_endpoint: str | None = None
    """``ip:port`` of the public mapping of the pod's port 22."""
    volume_gb: int | None = None
    """The pod volume (``/workspace``): kept when stopped, billed while it exists."""
    container_disk_gb: int | None = None
    """Wiped when the pod stops."""
    image: str | None = None
    interruptible: bool = False
    """A spot pod (``podType`` INTERRUPTABLE): it can be taken away when outbid."""
    memory_gb: int | None = None
    vcpu_count: int | None = None

    @property
    def type_label(self) -> str:
        """The TYPE column: the GPU model, or ``cpu``."""
        return self.gpu_display_name or ("cpu" if self.gpu_count == 0 else "?")

    @property
    def sublocation(self) -> str | None:
        """Pods have no finer place than their data centre."""
        return None

    @property
    def market(self) -> str:
        """``spot`` for an interruptible pod, else ``on-demand``."""
        return "spot" if self.interruptible else "on-demand"

    @property
    def address(self) -> str | None:
        """The public SSH endpoint, ``ip:port``."""
        return self.ssh_endpoint

    def facts(self) -> list[tuple[str, str]]:
        """Rows of the details panel, in order; values are raw (the panel escapes them)."""

        def gb(value: int | None) -> str:
            return "-" if value is None else f"{value} GB"

        return [
            ("Status", self.desired_status or "-"),
            ("Last change", self.status_reason or "-"),
            ("Market", "spot (interruptible)" if self.interruptible else "on-demand"),
            ("SSH", self.ssh_endpoint or "-"),
            ("Volume", f"{gb(self.volume_gb)} (kept when stopped, billed while it exists)"),
            ("Container disk", f"{gb(self.container_disk_gb)} (wiped when stopped)"),
            ("Image", self.image or "-"),
            ("vCPUs", "-" if self.vcpu_count is None else str(self.vcpu_count)),
            ("Memory", gb(self.memory_gb)),
        ]


class _OnAMachine(BaseModel):
    """What a machine someone already has (and what runs on it) says where a market would."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    @property
    def sublocation(self) -> str | None:
        """Nothing finer than its host."""
        return None

    @property
    def market(self) -> str:
        """Not bought from a market."""
        return "-"


class HostDetails(_OnAMachine):
    """A whole machine: this one, or a host reached over SSH."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["host"] = "host"
    hostname: str
    cpus: int | None = None
    """Logical CPUs."""
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    """Total minus available: what the kernel cannot hand out right now."""
    load_average: tuple[float, float, float] | None = None
    """1, 5 and 15 minute load; ``None`` where the platform has none."""
    ssh_target: str | None = None
    """``user@host:port`` for a host reached over SSH; ``None`` for this machine."""
    gpu_note: str | None = None
    """Why GPU figures are missing (no ``nvidia-smi``, it failed), when they are."""

    @property
    def type_label(self) -> str:
        """The TYPE column: CPUs and load."""
        cpus = "?" if self.cpus is None else str(self.cpus)
        if self.load_average is None:
            return f"host · {cpus} CPU"
        return f"host · {cpus} CPU · load {self.load_average[0]:.2f}"

    @property
    def address(self) -> str | None:
        """The SSH target, for a remote host."""
        return self.ssh_target

    def facts(self) -> list[tuple[str, str]]:
        """Rows of the details panel, in order; values are raw (the panel escapes them)."""
        load = (
            "-"
            if self.load_average is None
            else " ".join(f"{value:.2f}" for value in self.load_average)
        )
        used, total = self.memory_used_bytes, self.memory_total_bytes
        return [
            ("Hostname", self.hostname),
            ("SSH", self.ssh_target or "- (this machine)"),
            ("CPUs", "?" if self.cpus is None else str(self.cpus)),
            ("Load", load),
            ("Memory", f"{_size(used)} used of {_size(total)}"),
            *([("GPU figures", self.gpu_note)] if self.gpu_note else []),
        ]


class ProcessDetails(_OnAMachine):
    """A training run: one process whose command line matched a training pattern."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["process"] = "process"
    pid: int
    start_time: float
    """The process's start as the host counts it (seconds since the epoch locally, clock ticks
    since boot over SSH); with ``pid`` its identity: a reused pid has another start."""
    host: str
    """The machine it runs on: this hostname, or the SSH host's label."""
    username: str | None = None
    """``None`` when the owner could not be read."""
    own: bool = False
    """Belongs to the user running this program (locally, or the SSH login): only such
    processes are acted on."""
    cmdline: tuple[str, ...] = ()
    """Raw arguments, possibly hostile text: the display layer escapes them."""
    program: str = ""
    """The script, module or program that runs, e.g. ``train.py`` or ``torchrun``."""
    pattern: str = ""
    """The configured pattern that matched."""
    cpu_percent: float | None = None
    """May exceed 100 with several threads; ``None`` until measured."""
    rss_bytes: int | None = None
    gpu_memory_mib: int | None = None
    """Summed over GPUs, when ``nvidia-smi`` lists the pid; ``None`` when unknown."""
    ppid: int | None = None
    pgid: int | None = None
    group_size: int | None = None
    """Processes in its process group (what a signal to the group reaches), when known."""
    stopped: bool = False
    """Suspended (e.g. by Ctrl-Z), not running."""

    @property
    def type_label(self) -> str:
        """The TYPE column: the program."""
        return self.program or "process"

    @property
    def address(self) -> str | None:
        """Where it runs: ``pid N``."""
        return f"pid {self.pid}"

    def facts(self) -> list[tuple[str, str]]:
        """Rows of the details panel, in order; values are raw (the panel escapes them)."""
        cpu = "-" if self.cpu_percent is None else f"{self.cpu_percent:.0f}%"
        gpu = "-" if self.gpu_memory_mib is None else f"{self.gpu_memory_mib} MiB"
        group = "-" if self.pgid is None else str(self.pgid)
        if self.pgid is not None and self.group_size is not None:
            group += f" ({self.group_size} process{'es' * (self.group_size != 1)})"
        owner = self.username or "?"
        if not self.own:
            owner += " (not yours: shown, never acted on)"
        return [
            ("Host", self.host),
            ("PID", str(self.pid)),
            ("Process group", group),
            ("Parent", "-" if self.ppid is None else str(self.ppid)),
            ("User", owner),
            ("Program", self.program or "-"),
            ("Pattern", self.pattern or "-"),
            ("Command", " ".join(self.cmdline) or "-"),
            ("CPU", cpu),
            ("Memory", _size(self.rss_bytes)),
            ("GPU memory", gpu),
            *([("Suspended", "yes (e.g. Ctrl-Z)")] if self.stopped else []),
        ]


class OtherDetails(BaseModel):
    """Details of a plugin provider's item: its type label and its rows, as it words them."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["other"] = "other"
    type_label: str = ""
    rows: tuple[tuple[str, str], ...] = ()
    sublocation: str | None = None
    market: str = "-"
    address: str | None = None

    def facts(self) -> list[tuple[str, str]]:
        """Rows of the details panel, as the provider gave them."""
        return list(self.rows)


Details = Annotated[
    Ec2Details | PodDetails | HostDetails | ProcessDetails | OtherDetails,
    Field(discriminator="kind"),
]
"""What one kind of item has beyond the core: EC2 instance, RunPod pod, host, process."""


class Instance(BaseModel):
    """One item of the fleet (a VM, a pod, a host, a training run) as seen at a poll."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    provider: str
    """Name of the provider that owns it, e.g. ``aws``."""
    id: str
    """Unique within the provider and never reused for another item (a process's id carries
    its start time)."""
    name: str = ""
    location: str
    """Where it is, and the scope a failure is reported per: an EC2 region, a RunPod data
    centre, a hostname or SSH host label."""
    state: InstanceState
    gpus: GpuSpec | None = None
    """``None``: no accelerators, or unknown (the details say why)."""
    gpu_usage: tuple[GpuUsage, ...] = ()
    """Per-GPU load now, where the provider measures it."""
    launched_at: datetime | None = None
    """Start of the current running period; always UTC."""
    rate: Rate | None = None
    """What it costs per hour while it bills, from its provider's rate source; ``None`` when
    unknown."""
    protected: bool = False
    """Never terminated or killed from here (a protection tag or name marker)."""
    protected_by: str = ""
    """What protects it, for the refusal, e.g. ``tag runctl:protect=true``."""
    tags: dict[str, str] = Field(default_factory=dict)
    details: Details

    @property
    def kind(self) -> str:
        """``ec2``, ``pod``, ``host``, ``process`` or ``other``."""
        return self.details.kind

    @property
    def hourly_usd(self) -> Decimal | None:
        """Its hourly rate while it bills, when known."""
        return None if self.rate is None else self.rate.usd_per_hour

    @property
    def rate_source(self) -> str | None:
        """Where :attr:`hourly_usd` comes from, when known."""
        return None if self.rate is None else self.rate.source

    @property
    def key(self) -> str:
        """Identity across providers, stable between polls."""
        return f"{self.provider}:{self.id}"

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


class StorageItem(BaseModel):
    """A disk billed while it exists, whether or not anything runs on it (an EBS volume, a
    stopped pod's volume)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    provider: str
    id: str
    name: str = ""
    location: str
    """The region or data centre."""
    kind: str = "ebs"
    """``ebs`` or ``pod-volume``."""
    volume_type: str = ""
    """``gp3``, ``io2``...; ``runpod`` for a pod's volume."""
    size_gb: int = 0
    iops: int | None = None
    throughput_mibps: int | None = None
    attached_to: str | None = None
    """The id of the instance or pod it belongs to; ``None`` when unattached (orphaned)."""
    attached_state: InstanceState | None = None
    """The state of that instance or pod, when known."""
    created_at: datetime | None = None
    """Since when it has existed (and billed); UTC."""
    rate: Rate | None = None
    """Per hour (the monthly price over 730 hours); ``None`` when unknown."""
    monthly_usd: Decimal | None = None
    """Per month, as providers quote storage."""
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity across providers, stable between polls."""
        return f"{self.provider}:{self.id}"

    @property
    def orphaned(self) -> bool:
        """Attached to nothing: billed for data nobody uses, unless kept on purpose."""
        return self.attached_to is None


class FleetSnapshot(BaseModel):
    """Everything one poll of every provider produced."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    instances: tuple[Instance, ...]
    statuses: tuple[ProviderStatus, ...]
    taken_at: datetime
    storage: tuple[StorageItem, ...] = ()
    """Disks billed on their own (EBS volumes, stopped pods' volumes)."""

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
