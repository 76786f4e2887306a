"""Machines reached over SSH: reachable or not and why, load, memory and per-GPU usage.

Every host is asked through the one :class:`~runctl_tui.remote.ssh.SshHub`, so a poll reuses
the connection a log tail or a file transfer opened. The provider's calls are coroutines: the
fleet service awaits them on the app's loop, where the hub's connections live. One host that
cannot be reached never hides the others: it keeps its last row, marked stale, and the
provider line says which host failed and why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from runctl_tui.models import Instance, InstanceState
from runctl_tui.providers.base import Capabilities, NotFoundError, ProviderError
from runctl_tui.providers.local import GpuUsage, gpu_spec, parse_nvidia_smi
from runctl_tui.remote.ssh import (
    ChangedHostKey,
    SshError,
    SshHub,
    SshTarget,
    UnknownHostKey,
    parse_target,
)
from runctl_tui.text import one_line

if TYPE_CHECKING:
    from runctl_tui.config import Settings

log = logging.getLogger(__name__)

GPU_MARK = "--runctl-gpus--"
FACTS_COMMAND = (
    "hostname; getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 0; "
    "cat /proc/loadavg 2>/dev/null || echo 0; "
    "awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print t*1024, (t-a)*1024}' "
    "/proc/meminfo 2>/dev/null || echo '0 0'; "
    "cat /proc/uptime 2>/dev/null || echo 0; "
    f"echo {GPU_MARK}; "
    "nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total "
    "--format=csv,noheader,nounits 2>/dev/null || true"
)
"""One round trip for every fact, in POSIX sh with Linux's /proc; nothing is installed."""
COMMAND_TIMEOUT = 15.0


class RemoteHostFacts(BaseModel):
    """What one SSH host reported about itself."""

    model_config = ConfigDict(frozen=True)

    hostname: str
    cpus: int
    load_1m: float
    memory_total: int
    """Bytes."""
    memory_used: int
    """Bytes, page cache not counted."""
    up_seconds: float
    gpus: tuple[GpuUsage, ...] = ()


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(float(text))
    except ValueError:
        return kind(0)


def parse_facts(text: str) -> RemoteHostFacts:
    """The output of :data:`FACTS_COMMAND`; missing or garbled lines read as zero."""
    head, _, gpu_text = text.partition(GPU_MARK)
    lines = [line.strip() for line in head.strip().splitlines()] + [""] * 5
    memory = (lines[3].split() + ["0", "0"])[:2]
    return RemoteHostFacts(
        hostname=lines[0] or "?",
        cpus=int(_number(lines[1], int)),
        load_1m=float(_number((lines[2].split() or ["0"])[0], float)),
        memory_total=int(_number(memory[0], int)),
        memory_used=int(_number(memory[1], int)),
        up_seconds=float(_number((lines[4].split() or ["0"])[0], float)),
        gpus=tuple(parse_nvidia_smi(gpu_text)),
    )


@dataclass(frozen=True)
class SshHost:
    """One configured host: how to reach it, what to call it, what it costs."""

    target: SshTarget
    label: str
    hourly_usd: Decimal | None = None


class SshHostsProvider:
    """The ``[[ssh.hosts]]`` machines, each asked over the shared SSH hub."""

    capabilities = Capabilities(stop=False, start=False, terminate=False)

    def __init__(
        self,
        hosts: Sequence[SshHost],
        hub: SshHub | None = None,
        *,
        name: str = "ssh",
        clock: type[datetime] = datetime,
    ) -> None:
        self._name = name
        self.hosts = list(hosts)
        self.hub = hub or SshHub()
        self._clock = clock
        self._facts: dict[str, RemoteHostFacts] = {}

    @property
    def name(self) -> str:
        """Name shown in the UI."""
        return self._name

    def facts(self, label: str) -> RemoteHostFacts | None:
        """What ``label`` reported on the last poll that reached it."""
        return self._facts.get(label)

    async def _ask(self, host: SshHost) -> Instance:
        try:
            result = await self.hub.run(host.target, FACTS_COMMAND, timeout=COMMAND_TIMEOUT)
        except UnknownHostKey as exc:
            # The command that trusts the key is long: it goes in the hint, whole.
            raise ProviderError(
                self.name,
                f"{host.target}: unknown host key {exc.fingerprint}; not connected",
                hint=f"if that fingerprint is right, trust it: {exc.trust_command}",
            ) from exc
        except ChangedHostKey as exc:
            raise ProviderError(
                self.name,
                f"{host.target}: HOST KEY CHANGED ({exc.fingerprint}); refusing to connect",
                hint=f"only if the host was really reinstalled: {exc.remove_command}",
            ) from exc
        except SshError as exc:
            raise ProviderError(self.name, str(exc)) from exc
        facts = parse_facts(result.stdout)
        self._facts[host.label] = facts
        return self._instance(host, facts)

    def _instance(self, host: SshHost, facts: RemoteHostFacts) -> Instance:
        now = self._clock.now(UTC)
        return Instance(
            provider=self.name,
            id=host.label,
            region=host.label,
            zone=None,
            name=facts.hostname,
            instance_type=f"{facts.cpus} CPU · load {facts.load_1m:.2f}",
            state=InstanceState.RUNNING,
            lifecycle=None,
            gpus=gpu_spec(facts.gpus),
            launched_at=now - timedelta(seconds=facts.up_seconds) if facts.up_seconds else None,
            public_ip=host.target.host,
            tags={"ssh": str(host.target)},
            hourly_usd=host.hourly_usd,
            rate_source="[[ssh.hosts]] hourly_usd" if host.hourly_usd is not None else None,
        )

    async def list_instances(self) -> list[Instance]:
        """Every host at once; unreachable ones named in the error, the rest still listed."""
        answers = await asyncio.gather(
            *(self._ask(host) for host in self.hosts), return_exceptions=True
        )
        found: list[Instance] = []
        failed: dict[str, str] = {}
        hints: dict[str, str] = {}
        for host, answer in zip(self.hosts, answers, strict=True):
            if isinstance(answer, Instance):
                found.append(answer)
            elif isinstance(answer, ProviderError):
                failed[host.label] = answer.message
                if answer.hint:
                    hints[host.label] = answer.hint
            elif isinstance(answer, BaseException):
                log.error("ssh: %s failed unexpectedly", host.label, exc_info=answer)
                failed[host.label] = one_line(f"{type(answer).__name__}: {answer}", 200)
        if failed:
            first, reason = next(iter(failed.items()))
            more = len(failed) - 1
            message = reason if reason.startswith(first) else f"{first}: {reason}"
            if more:
                message += f" (+{more} more host{'s' * (more > 1)})"
            raise ProviderError(
                self.name,
                one_line(message, 300),
                hint=hints.get(first)
                or "check that the host is up and `ssh HOST true` works from this shell",
                partial=found,
                failed_regions=list(failed),
            )
        return found

    async def describe(self, instance: Instance) -> Instance:
        """Ask the host again, right now."""
        host = next((h for h in self.hosts if h.label == instance.id), None)
        if host is None:
            raise NotFoundError(self.name, f"{instance.id} is no longer configured")
        return await self._ask(host)

    async def close(self) -> None:
        """Close every connection, without waiting on a host that does not answer."""
        await self.hub.close()


def from_settings(settings: Settings) -> list[SshHostsProvider]:
    """The ``ssh`` provider for the ``[[ssh.hosts]]`` tables; none when no host is listed."""
    if not settings.ssh.hosts:
        return []
    hosts = [
        SshHost(parse_target(h.host), h.label or h.host, h.hourly_usd) for h in settings.ssh.hosts
    ]
    hub = SshHub(connect_timeout=settings.ssh.connect_timeout)
    return [SshHostsProvider(hosts, hub)]
