"""GPU utilisation of a cloud machine, asked over SSH with ``nvidia-smi``, for the idle check.

EC2 reports no GPU load and a pod's runtime figures are not always there; both can be asked
directly with the same ``nvidia-smi`` query this machine and the SSH hosts use. A probe costs a
round trip, so :class:`GpuProbeCache` keeps the last figures per item and says which running
GPU machines are due for another one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from runctl_tui.models import GpuUsage, Instance, InstanceState
from runctl_tui.providers.base import ProviderError
from runctl_tui.providers.local import GPU_QUERY, parse_nvidia_smi
from runctl_tui.providers.ssh_hosts import NVIDIA_SMI_TIMEOUT, run_over_ssh
from runctl_tui.remote.procs import wrap
from runctl_tui.text import one_line
from runctl_tui.threads import run_blocking

if TYPE_CHECKING:
    from runctl_tui.remote.ssh import SshHub, SshTarget

PROBE_TIMEOUT = 15.0
"""Seconds one probe may take, connecting included."""
DEFAULT_INTERVAL_SECONDS = 60.0
PROBED_KINDS = frozenset({"ec2", "pod"})
"""Rented machines: hosts report their GPUs in their own poll, runs share their host's."""
MISSING = "!missing"
TIMED_OUT = 124
"""``timeout``'s exit status when the command overran."""


def probe_command(smi_timeout: float = NVIDIA_SMI_TIMEOUT) -> str:
    """The ``sh`` command that prints ``nvidia-smi``'s per-GPU query, cut off on the host after
    ``smi_timeout`` seconds where ``timeout`` exists; ``!missing`` without ``nvidia-smi``."""
    script = "\n".join(
        [
            "if command -v nvidia-smi >/dev/null 2>&1; then",
            f"  rc_to=; command -v timeout >/dev/null 2>&1 && rc_to='timeout {smi_timeout:g}'",
            f"  exec $rc_to nvidia-smi {' '.join(GPU_QUERY)}",
            "fi",
            f"echo '{MISSING}'",
        ]
    )
    return wrap(script)


async def probe_gpus(
    hub: SshHub,
    target: SshTarget,
    *,
    provider: str = "gpu",
    timeout: float = PROBE_TIMEOUT,  # noqa: ASYNC109
    smi_timeout: float = NVIDIA_SMI_TIMEOUT,
) -> tuple[GpuUsage, ...]:
    """Every GPU of ``target`` with its utilisation now; ``()`` when the driver lists none.

    Every failure (unreachable, host key, no ``nvidia-smi``, a wedged driver) raises one
    :class:`ProviderError` line naming ``provider`` and the target. ``timeout`` bounds the
    whole call, connecting included; ``smi_timeout`` bounds ``nvidia-smi`` on the host, so a
    wedged driver is reported as such rather than as a slow connection.
    """
    result = await run_over_ssh(provider, hub, target, probe_command(smi_timeout), timeout)
    if result.stdout.strip() == MISSING:
        raise ProviderError(provider, f"{target}: no nvidia-smi on the host")
    if result.exit_status == TIMED_OUT:
        raise ProviderError(
            provider, f"{target}: nvidia-smi did not answer within {smi_timeout:g} s"
        )
    if result.exit_status != 0:
        said = result.stderr.strip() or result.stdout.strip()
        line = one_line(said.splitlines()[0], 160) if said else ""
        reason = f"nvidia-smi failed (exit {result.exit_status})" + (f": {line}" if line else "")
        raise ProviderError(provider, f"{target}: {reason}")
    return tuple(parse_nvidia_smi(result.stdout))


class ReachesOverSsh(Protocol):
    """A provider whose machines have a shell: where it is, and the hub that reaches it."""

    @property
    def name(self) -> str:
        """The provider's name."""
        ...

    def ssh_target(self, instance: Instance) -> SshTarget:
        """Where ``instance``'s shell is; raises :class:`ProviderError` when it has none."""
        ...

    def hub_for(self, target: SshTarget) -> SshHub:
        """The hub that reaches ``target``."""
        ...


async def probe_instance(
    provider: ReachesOverSsh,
    instance: Instance,
    *,
    timeout: float = PROBE_TIMEOUT,  # noqa: ASYNC109
) -> tuple[GpuUsage, ...]:
    """:func:`probe_gpus` on ``instance``, through its provider's target and hub.

    A host whose key known_hosts does not hold yet is not contacted: the check runs unasked,
    so it reaches only machines the user has trusted (opening a log or checkpoints there asks).
    """
    target = provider.ssh_target(instance)
    hub = provider.hub_for(target)
    # Off the loop: the first look may import asyncssh.
    if not await run_blocking(lambda: hub.knows_host(target), name="runctl-known-hosts"):
        raise ProviderError(
            provider.name,
            f"{target.host}'s host key is not trusted yet: open its log (l) once to trust it",
        )
    return await probe_gpus(hub, target, provider=provider.name, timeout=timeout)


@dataclass(frozen=True)
class ProbeRecord:
    """The last probe of one item: its figures, or why it failed."""

    at: datetime
    gpus: tuple[GpuUsage, ...] = ()
    error: str | None = None


def wants_probe(instance: Instance) -> bool:
    """A running rented machine with GPUs whose provider sent no utilisation figures."""
    return (
        instance.state is InstanceState.RUNNING
        and instance.kind in PROBED_KINDS
        and instance.gpus is not None
        and instance.gpus.count > 0
        and not instance.gpu_usage
    )


class GpuProbeCache:
    """The last probe per item key, and which items are due for the next one.

    A probe started counts as an attempt, so an item is never asked twice at once and a host
    that fails is asked again only after the interval. Figures older than ``max_age_seconds``
    (twice the interval by default) are not handed out: a machine whose probes keep failing
    must not look idle on old readings.
    """

    def __init__(
        self,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        *,
        max_age_seconds: float | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("the GPU probe interval must be more than 0 seconds")
        self.interval = timedelta(seconds=interval_seconds)
        self.max_age = timedelta(
            seconds=2 * interval_seconds if max_age_seconds is None else max_age_seconds
        )
        self._records: dict[str, ProbeRecord] = {}
        self._started: dict[str, datetime] = {}

    def due(self, instances: Iterable[Instance], at: datetime) -> list[Instance]:
        """The items that want a probe and were not tried within the interval before ``at``."""
        due: list[Instance] = []
        for instance in instances:
            if not wants_probe(instance):
                continue
            tried = self._last_try(instance.key)
            if tried is None or at - tried >= self.interval:
                due.append(instance)
        return due

    def _last_try(self, key: str) -> datetime | None:
        record = self._records.get(key)
        times = [t for t in (self._started.get(key), record.at if record else None) if t]
        return max(times) if times else None

    def begin(self, key: str, at: datetime) -> None:
        """A probe of ``key`` started at ``at``."""
        self._started[key] = at

    def record(self, key: str, gpus: Sequence[GpuUsage], at: datetime) -> None:
        """A probe of ``key`` answered ``gpus`` at ``at``."""
        self._started.pop(key, None)
        self._records[key] = ProbeRecord(at, tuple(gpus))

    def record_failure(self, key: str, error: str, at: datetime) -> None:
        """A probe of ``key`` failed at ``at``; its earlier figures are kept until they age."""
        self._started.pop(key, None)
        earlier = self._records.get(key)
        gpus = earlier.gpus if earlier is not None else ()
        kept_at = earlier.at if earlier is not None else at
        self._records[key] = ProbeRecord(kept_at, gpus, one_line(error, 300))
        # The failure is the latest attempt: wait a full interval before the next.
        self._started[key] = at

    def error(self, key: str) -> str | None:
        """Why the last probe of ``key`` failed, if it did."""
        record = self._records.get(key)
        return record.error if record is not None else None

    def figures(self, key: str, at: datetime) -> tuple[GpuUsage, ...] | None:
        """The last figures of ``key`` if a probe brought some no longer than the maximum age
        before ``at``."""
        record = self._records.get(key)
        if record is None or not record.gpus or at - record.at > self.max_age:
            return None
        return record.gpus

    def apply(self, instances: Iterable[Instance], at: datetime) -> list[Instance]:
        """``instances``, each probed one without figures of its own given its latest ones."""
        out: list[Instance] = []
        for instance in instances:
            gpus = self.figures(instance.key, at) if wants_probe(instance) else None
            out.append(
                instance if gpus is None else instance.model_copy(update={"gpu_usage": gpus})
            )
        return out

    def prune(self, instances: Iterable[Instance]) -> None:
        """Forget every item not among ``instances`` (gone from the fleet)."""
        keep = {instance.key for instance in instances}
        for key in self._records.keys() - keep:
            del self._records[key]
        for key in self._started.keys() - keep:
            del self._started[key]
