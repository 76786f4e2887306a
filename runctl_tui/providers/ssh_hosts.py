"""Machines reached over SSH, and the training runs on them.

Each host shows as one row (reachable or not and why, load, memory, per-GPU use) followed by
one row per process whose command line matches the training patterns, the same patterns and
the same interrupt/kill semantics as this machine (``runctl_tui.providers.local``). One shell
command per host and poll brings every fact and the whole process table back.

Every host is asked through the one :class:`~runctl_tui.remote.ssh.SshHub`, so a poll reuses
the connection a log tail or a file transfer opened. The provider's calls are coroutines: the
fleet service awaits them on the app's loop, where the hub's connections live. One host that
cannot be reached never hides the others: the provider line says which host failed and why,
and the hosts that answered are still listed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from runctl_tui.models import (
    Action,
    GpuUsage,
    HostDetails,
    Instance,
    InstanceState,
    ProcessDetails,
    Rate,
)
from runctl_tui.providers.base import (
    NO_LOG_SEARCH,
    CheckpointLocation,
    FoundDir,
    FoundFile,
    LogLocation,
    LogSearch,
    NotFoundError,
    ProviderError,
    rank_checkpoint_dirs,
    rank_logs,
)
from runctl_tui.providers.local import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_PATTERNS,
    gpu_spec,
    likely_logs,
    match_command,
    parse_compute_apps,
    parse_nvidia_smi,
    program_name,
    run_name,
)
from runctl_tui.remote.procs import (
    PROCS_MARK,
    ProcRow,
    ProcTable,
    SignalStatus,
    checkpoint_dirs_command,
    group_to_signal,
    list_script,
    log_search_command,
    open_files_script,
    parse_checkpoint_dirs,
    parse_log_search,
    parse_open_files,
    parse_processes,
    parse_signal_answer,
    signal_command,
    training_rows,
    wrap,
)
from runctl_tui.remote.ssh import (
    ChangedHostKey,
    RunResult,
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
APPS_MARK = "--runctl-apps--"
NVIDIA_SMI_TIMEOUT = 5
"""Seconds ``nvidia-smi`` may take on the host: a wedged driver can hang it for minutes."""
FACTS_SCRIPT = "\n".join(
    [
        "rc_h=; IFS= read -r rc_h < /proc/sys/kernel/hostname || rc_h=$(hostname)",
        'printf "%s\\n" "$rc_h"',
        "getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 0",
        "cat /proc/loadavg 2>/dev/null || echo 0",
        "awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print t*1024, (t-a)*1024}' "
        "/proc/meminfo 2>/dev/null || echo '0 0'",
        "cat /proc/uptime 2>/dev/null || echo 0",
        f"echo {GPU_MARK}",
        "if command -v nvidia-smi >/dev/null 2>&1; then",
        f"  rc_to=; command -v timeout >/dev/null 2>&1 && rc_to='timeout {NVIDIA_SMI_TIMEOUT}'",
        "  $rc_to nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total "
        '--format=csv,noheader,nounits 2>/dev/null || echo "!failed $?"',
        f"  echo {APPS_MARK}",
        "  $rc_to nvidia-smi --query-compute-apps=pid,used_memory "
        "--format=csv,noheader,nounits 2>/dev/null",
        "else",
        "  echo '!missing'",
        f"  echo {APPS_MARK}",
        "fi",
    ]
)
"""Hostname, CPUs, load, memory, uptime and GPUs, in POSIX sh with Linux's /proc."""
POLL_COMMAND = wrap(FACTS_SCRIPT + "\n" + list_script())
"""One round trip per host and poll: the facts, then the process table."""
COMMAND_TIMEOUT = 15.0
ACTION_TIMEOUT = 10.0
ACTIONS = frozenset({Action.INTERRUPT, Action.KILL})


def host_rate(hourly_usd: Decimal | None) -> Rate:
    """A host's rate as ``[[ssh.hosts]] hourly_usd`` sets it; unset counts it as free."""
    if hourly_usd is None:
        return Rate(usd_per_hour=Decimal(0), source="[[ssh.hosts]] hourly_usd unset")
    return Rate(usd_per_hour=hourly_usd, source="[[ssh.hosts]] hourly_usd")


class RemoteHostFacts(BaseModel):
    """What one SSH host reported about itself."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    hostname: str
    cpus: int
    load_1m: float
    load_average: tuple[float, float, float] | None = None
    memory_total: int
    """Bytes."""
    memory_used: int
    """Bytes, page cache not counted."""
    up_seconds: float
    gpus: tuple[GpuUsage, ...] = ()
    gpu_note: str | None = None
    """Why GPU figures are missing, when they are."""
    gpu_memory: dict[int, int] = {}
    """GPU memory in MiB by pid, from ``nvidia-smi --query-compute-apps``."""


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = float(text)
    except ValueError:
        return kind(0)
    return kind(value) if math.isfinite(value) else kind(0)


def _gpu_note(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("!missing"):
            return "no nvidia-smi on the host"
        if line.startswith("!failed"):
            status = line.removeprefix("!failed").strip()
            if status == "124":
                return f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT} s"
            return one_line(f"nvidia-smi failed (exit {status or '?'})", 80)
    return None


def parse_facts(text: str) -> RemoteHostFacts:
    """The facts part of :data:`POLL_COMMAND`'s output; missing or garbled lines read as zero."""
    text = text.partition(PROCS_MARK)[0]
    head, _, gpu_part = text.partition(GPU_MARK)
    gpu_text, _, apps_text = gpu_part.partition(APPS_MARK)
    lines = [line.strip() for line in head.strip().splitlines()] + [""] * 5
    memory = (lines[3].split() + ["0", "0"])[:2]
    loads = [float(_number(value, float)) for value in lines[2].split()[:3]]
    gpus = tuple(parse_nvidia_smi(gpu_text))
    return RemoteHostFacts(
        hostname=lines[0] or "?",
        cpus=int(_number(lines[1], int)),
        load_1m=loads[0] if loads else 0.0,
        load_average=(loads[0], loads[1], loads[2]) if len(loads) == 3 else None,
        memory_total=int(_number(memory[0], int)),
        memory_used=int(_number(memory[1], int)),
        up_seconds=float(_number((lines[4].split() or ["0"])[0], float)),
        gpus=gpus,
        gpu_note=_gpu_note(gpu_text),
        gpu_memory=parse_compute_apps(apps_text) if gpus else {},
    )


@dataclass(frozen=True)
class SshHost:
    """One configured host: how to reach it, what to call it, what it costs."""

    target: SshTarget
    label: str
    hourly_usd: Decimal | None = None
    logs: tuple[str, ...] | None = None
    """Its own log globs, replacing the provider's; ``None``: the provider's."""
    checkpoints: tuple[str, ...] | None = None
    """Its own checkpoint directories, replacing the provider's; ``None``: the provider's."""


async def run_over_ssh(
    provider: str,
    hub: SshHub,
    target: SshTarget,
    command: str,
    timeout: float,  # noqa: ASYNC109
) -> RunResult:
    """``command`` on ``target``, every SSH failure as one :class:`ProviderError` line."""
    try:
        return await hub.run(target, command, timeout=timeout)
    except UnknownHostKey as exc:
        # The command that trusts the key is long: it goes in the hint, whole.
        raise ProviderError(
            provider,
            f"{target}: unknown host key {exc.fingerprint}; not connected",
            hint=f"if that fingerprint is right, trust it: {exc.trust_command}",
        ) from exc
    except ChangedHostKey as exc:
        raise ProviderError(
            provider,
            f"{target}: HOST KEY CHANGED ({exc.fingerprint}); refusing to connect",
            hint=f"only if the host was really reinstalled: {exc.remove_command}",
        ) from exc
    except SshError as exc:
        raise ProviderError(provider, str(exc)) from exc


async def remote_logs(
    provider: str,
    hub: SshHub,
    target: SshTarget,
    search: LogSearch,
    *,
    timeout: float = COMMAND_TIMEOUT,  # noqa: ASYNC109
) -> list[LogLocation]:
    """The newest matches of ``search``'s globs on ``target``, then its recent ``*.log``
    files, in one round trip; ``~`` is the login's home there."""
    result = await run_over_ssh(provider, hub, target, _search_command(search), timeout)
    return _ranked(result.stdout, search, str(target))


def _search_command(search: LogSearch, before: str = "") -> str:
    return log_search_command(
        search.globs,
        search.recent_dirs,
        recent_days=search.recent_days,
        depth=search.depth,
        scan_limit=search.scan_limit,
        before=before,
    )


def _ranked(
    stdout: str, search: LogSearch, target: str, known: Sequence[LogLocation] = ()
) -> list[LogLocation]:
    answer = parse_log_search(stdout)
    files = [FoundFile(path, mtime, size, glob) for glob, mtime, size, path in answer.files]
    # Ages by the host's own clock: this machine's may be set differently.
    now = answer.now if answer.now is not None else time.time()
    return rank_logs(files, search, target=target, now=now, known=known)


async def remote_checkpoint_dirs(
    provider: str,
    hub: SshHub,
    target: SshTarget,
    dirs: Sequence[str],
    *,
    run: tuple[int, int] | None = None,
    timeout: float = COMMAND_TIMEOUT,  # noqa: ASYNC109
) -> list[CheckpointLocation]:
    """The existing directories ``dirs`` match on ``target``, newest-modified first, after
    the working directory's ``checkpoints/`` of ``run`` (``(pid, start ticks)``), in one round
    trip; ``~`` is the login's home there. :class:`NotFoundError` when ``run`` is gone."""
    command = checkpoint_dirs_command(dirs, run=run)
    result = await run_over_ssh(provider, hub, target, command, timeout)
    return _ranked_dirs(provider, result.stdout, dirs, str(target), run)


def _ranked_dirs(
    provider: str, stdout: str, dirs: Sequence[str], target: str, run: tuple[int, int] | None
) -> list[CheckpointLocation]:
    answer = parse_checkpoint_dirs(stdout)
    if run is not None and answer.gone:
        raise NotFoundError(provider, f"pid {run[0]} has exited")
    found = [FoundDir(path, mtime, glob) for glob, mtime, path in answer.dirs]
    now = answer.now if answer.now is not None else time.time()
    return rank_checkpoint_dirs(found, dirs, target=target, now=now)


class CloudLogs:
    """Reads the logs and finds the checkpoints of cloud machines (EC2 instances, pods) over
    SSH, for their provider."""

    def __init__(
        self,
        provider: str,
        hub: SshHub | None,
        search: LogSearch,
        checkpoint_dirs: Sequence[str] = (),
    ) -> None:
        self.provider = provider
        self.search = search
        self.checkpoint_dirs = tuple(checkpoint_dirs)
        self._hub = hub
        self._used = False

    @property
    def hub(self) -> SshHub:
        """The hub given, or one made on first use."""
        if self._hub is None:
            self._hub = SshHub()
        return self._hub

    async def locations(
        self, instance: Instance, target_of: Callable[[Instance], SshTarget]
    ) -> list[LogLocation]:
        """The logs on ``instance``, reached as ``target_of(instance)``; only while it runs."""
        if instance.state is not InstanceState.RUNNING:
            raise ProviderError(
                self.provider,
                f"{instance.name or instance.id} is {instance.state}: "
                "its logs are read over SSH while it runs",
            )
        target = target_of(instance)
        self._used = True
        return await remote_logs(self.provider, self.hub, target, self.search)

    async def checkpoint_locations(
        self, instance: Instance, target_of: Callable[[Instance], SshTarget]
    ) -> list[CheckpointLocation]:
        """The configured checkpoint directories that exist on ``instance``, newest-modified
        first, in one round trip; only while it runs."""
        if instance.state is not InstanceState.RUNNING:
            raise ProviderError(
                self.provider,
                f"{instance.name or instance.id} is {instance.state}: "
                "its checkpoints are looked for over SSH while it runs",
            )
        target = target_of(instance)
        self._used = True
        return await remote_checkpoint_dirs(self.provider, self.hub, target, self.checkpoint_dirs)

    async def close(self) -> None:
        """Close the hub's connections, if logs were ever read through it."""
        if self._used and self._hub is not None:
            await self._hub.close()


_SHARED_HUBS: dict[tuple[int, tuple[str, ...]], SshHub] = {}


def shared_hub(settings: Settings, client_keys: Sequence[str] = ()) -> SshHub:
    """The one hub every provider built from ``settings`` uses (one connection per host); a
    hub of its own for ``client_keys``, which offers those keys only."""
    import weakref

    key = (id(settings), tuple(client_keys))
    hub = _SHARED_HUBS.get(key)
    if hub is None:
        keys = [Path(path).expanduser() for path in client_keys] if client_keys else None
        hub = SshHub(connect_timeout=settings.ssh.connect_timeout, client_keys=keys)
        _SHARED_HUBS[key] = hub
        # Settings are rebuilt per run of the app, and ids are reused once one is gone.
        weakref.finalize(settings, _SHARED_HUBS.pop, key, None)
    return hub


def process_id(label: str, pid: int, start_ticks: int) -> str:
    """``label:pid@ticks``: a process's id, which a reused pid does not repeat."""
    return f"{label}:{pid}@{start_ticks}"


def parse_process_id(instance_id: str) -> tuple[str, int, int] | None:
    """The label, pid and start ticks in a process id; ``None`` for a host's id."""
    label, colon, rest = instance_id.rpartition(":")
    pid_text, at, ticks_text = rest.partition("@")
    if not (colon and at and pid_text.isdigit() and ticks_text.isdigit()):
        return None
    if not (pid_text.isascii() and ticks_text.isascii()):
        return None
    pid, ticks = int(pid_text), int(ticks_text)
    # Only the exact spelling process_id produces: no second id for the same process.
    if pid <= 0 or process_id(label, pid, ticks) != instance_id:
        return None
    return label, pid, ticks


@dataclass
class _Seen:
    """What the last look at one process left for the next: the CPU sample and the group."""

    cpu_ticks: int
    uptime: float | None
    group: int | None
    group_size: int | None
    gpu_memory_mib: int | None


class SshHostsProvider:
    """The ``[[ssh.hosts]]`` machines and their training runs, over the shared SSH hub."""

    def __init__(
        self,
        hosts: Sequence[SshHost],
        hub: SshHub | None = None,
        *,
        name: str = "ssh",
        clock: type[datetime] = datetime,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        log_search: LogSearch | None = None,
        checkpoint_dirs: Sequence[str] = (),
    ) -> None:
        if not patterns or any(not pattern.split() for pattern in patterns):
            raise ValueError("patterns must be non-empty glob patterns")
        if not math.isfinite(grace_seconds) or grace_seconds < 0:
            raise ValueError("grace_seconds must not be negative")
        self._name = name
        self.hosts = list(hosts)
        self.hub = hub or SshHub()
        self._clock = clock
        self.patterns = tuple(patterns)
        self.grace_seconds = grace_seconds
        self.log_search = log_search or NO_LOG_SEARCH
        self.checkpoint_dirs = tuple(checkpoint_dirs)
        self._facts: dict[str, RemoteHostFacts] = {}
        self._tables: dict[str, ProcTable] = {}
        self._seen: dict[str, _Seen] = {}
        self._interrupted: dict[str, float] = {}
        """Process id to the monotonic time its SIGTERM follow-up is due."""
        self._warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Name shown in the UI."""
        return self._name

    def facts(self, label: str) -> RemoteHostFacts | None:
        """What ``label`` reported on the last poll that reached it."""
        return self._facts.get(label)

    def processes(self, label: str) -> ProcTable | None:
        """The process table ``label`` reported on the last poll that reached it."""
        return self._tables.get(label)

    def poll_warnings(self) -> tuple[str, ...]:
        """Problems of the last poll that did not fail it, e.g. ``nvidia-smi`` failing."""
        return self._warnings

    # -- talking to hosts ------------------------------------------------------------------

    async def _run(self, host: SshHost, command: str, timeout: float) -> RunResult:  # noqa: ASYNC109
        """``command`` on ``host``, every SSH failure as one :class:`ProviderError` line."""
        return await run_over_ssh(self.name, self.hub, host.target, command, timeout)

    def _host(self, label: str) -> SshHost:
        host = next((h for h in self.hosts if h.label == label), None)
        if host is None:
            raise NotFoundError(self.name, f"{label} is no longer configured")
        return host

    async def _ask(self, host: SshHost) -> list[Instance]:
        result = await self._run(host, POLL_COMMAND, COMMAND_TIMEOUT)
        facts = parse_facts(result.stdout)
        table = parse_processes(result.stdout)
        self._facts[host.label] = facts
        self._tables[host.label] = table
        seen: dict[str, _Seen] = {}
        rows = [
            self._process_instance(host, table, row, pattern, facts.gpu_memory, seen)
            for row, pattern in training_rows(table, self._match)
        ]
        # Replaced, not merged: processes that ended are forgotten.
        for key in [k for k in self._seen if (parse_process_id(k) or ("",))[0] == host.label]:
            del self._seen[key]
        self._seen.update(seen)
        return [self._host_instance(host, facts), *rows]

    def _match(self, cmdline: tuple[str, ...]) -> str | None:
        return match_command(cmdline, self.patterns)

    def _is_training(self, row: ProcRow) -> bool:
        return row.cmdline is not None and self._match(row.cmdline) is not None

    # -- rows ------------------------------------------------------------------------------

    def _host_instance(self, host: SshHost, facts: RemoteHostFacts) -> Instance:
        now = self._clock.now(UTC)
        return Instance(
            provider=self.name,
            id=host.label,
            location=host.label,
            name=facts.hostname,
            state=InstanceState.RUNNING,
            gpus=gpu_spec(facts.gpus),
            gpu_usage=facts.gpus,
            launched_at=now - timedelta(seconds=facts.up_seconds) if facts.up_seconds else None,
            rate=host_rate(host.hourly_usd),
            details=HostDetails(
                hostname=facts.hostname,
                cpus=facts.cpus or None,
                memory_total_bytes=facts.memory_total or None,
                memory_used_bytes=facts.memory_used if facts.memory_total else None,
                load_average=facts.load_average,
                ssh_target=str(host.target),
                gpu_note=facts.gpu_note,
            ),
        )

    def _process_instance(
        self,
        host: SshHost,
        table: ProcTable,
        row: ProcRow,
        pattern: str,
        gpu_memory: dict[int, int] | None,
        seen: dict[str, _Seen],
    ) -> Instance:
        key = process_id(host.label, row.pid, row.start_ticks)
        before = self._seen.get(key)
        cpu: float | None = None
        if before is not None and before.uptime is not None and table.uptime is not None:
            elapsed = table.uptime - before.uptime
            used = table.seconds(row.cpu_ticks - before.cpu_ticks)
            # First sight has nothing to compare with: unknown, not 0.
            if elapsed > 0 and used is not None and used >= 0:
                cpu = round(used / elapsed * 100, 1)
        group = group_to_signal(table, row, self._is_training)
        group_size = table.group_size(group) if group is not None else None
        if gpu_memory is None:
            gpu_mib = before.gpu_memory_mib if before is not None else None
        else:
            gpu_mib = gpu_memory.get(row.pid)
        seen[key] = _Seen(row.cpu_ticks, table.uptime, group, group_size, gpu_mib)
        cmdline = row.cmdline or ()
        state = InstanceState.STOPPED if row.state in {"T", "t"} else InstanceState.RUNNING
        if self._interrupted.get(key, -math.inf) > time.monotonic():
            state = InstanceState.STOPPING
        run = table.run_seconds(row)
        launched = self._clock.now(UTC) - timedelta(seconds=run) if run is not None else None
        return Instance(
            provider=self.name,
            id=key,
            # The interpreter's path says nothing about the run: its name and the arguments do.
            name=run_name(cmdline),
            location=host.label,
            state=state,
            launched_at=launched,
            # A run costs nothing beyond the machine it runs on, which has its own row.
            rate=Rate(usd_per_hour=Decimal(0), source=f"counted on {host.label}'s row"),
            details=ProcessDetails(
                pid=row.pid,
                start_time=row.start_ticks,
                host=host.label,
                username=table.username(row.uid),
                own=row.uid is not None and row.uid == table.login_uid,
                cmdline=cmdline,
                program=program_name(cmdline),
                pattern=pattern,
                cpu_percent=cpu,
                rss_bytes=table.rss_bytes(row),
                gpu_memory_mib=gpu_mib,
                ppid=row.ppid,
                pgid=row.pgid,
                group_size=table.group_size(row.pgid),
                stopped=row.state in {"T", "t"},
            ),
        )

    # -- the provider protocol -------------------------------------------------------------

    async def list_instances(self) -> list[Instance]:
        """Every host at once, each followed by its runs; unreachable hosts named in the error,
        the rest still listed."""
        answers = await asyncio.gather(
            *(self._ask(host) for host in self.hosts), return_exceptions=True
        )
        found: list[Instance] = []
        failed: dict[str, str] = {}
        hints: dict[str, str] = {}
        warnings: list[str] = []
        for host, answer in zip(self.hosts, answers, strict=True):
            if isinstance(answer, list):
                found.extend(answer)
                facts = self._facts.get(host.label)
                if facts is not None and facts.gpu_note and "no nvidia-smi" not in facts.gpu_note:
                    warnings.append(f"{host.label}: {facts.gpu_note}")
            elif isinstance(answer, ProviderError):
                failed[host.label] = answer.message
                if answer.hint:
                    hints[host.label] = answer.hint
            elif isinstance(answer, BaseException):
                log.error("ssh: %s failed unexpectedly", host.label, exc_info=answer)
                failed[host.label] = one_line(f"{type(answer).__name__}: {answer}", 200)
        self._warnings = tuple(warnings)
        now = time.monotonic()
        self._interrupted = {k: due for k, due in self._interrupted.items() if due > now}
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

    def _identity(self, instance: Instance) -> tuple[SshHost, int, int]:
        parsed = parse_process_id(instance.id)
        if parsed is None:
            raise ProviderError(self.name, f"not a process on an SSH host: {instance.id!r}")
        label, pid, ticks = parsed
        return self._host(label), pid, ticks

    async def describe(self, instance: Instance) -> Instance:
        """Ask the host again, right now; for a run, :class:`NotFoundError` if it has exited
        or its pid now belongs to another process."""
        if instance.kind == "host":
            host = self._host(instance.id)
            facts_only = wrap(FACTS_SCRIPT)
            result = await self._run(host, facts_only, COMMAND_TIMEOUT)
            facts = parse_facts(result.stdout)
            self._facts[host.label] = facts
            return self._host_instance(host, facts)
        host, pid, ticks = self._identity(instance)
        # The group's leader too: whether the group is signalled depends on what it runs.
        wanted = {pid}
        if isinstance(instance.details, ProcessDetails) and instance.details.pgid:
            wanted.add(instance.details.pgid)
        command = wrap(list_script(only_pids=sorted(wanted)))
        result = await self._run(host, command, COMMAND_TIMEOUT)
        table = parse_processes(result.stdout)
        row = table.rows.get(pid)
        where = f"{host.label}: pid {pid}"
        if row is None or row.state in {"Z", "X"}:
            raise NotFoundError(self.name, f"{where} has exited")
        if row.start_ticks != ticks:
            raise NotFoundError(self.name, f"{where} now belongs to another process")
        pattern = self._match(row.cmdline) if row.cmdline else None
        if pattern is None:
            # Same process, but it exec'd into something that is no training run.
            raise NotFoundError(self.name, f"{where} no longer runs a training command")
        seen: dict[str, _Seen] = {}
        fresh = self._process_instance(host, table, row, pattern, None, seen)
        self._seen.update(seen)
        return fresh

    def hub_for(self, target: SshTarget) -> SshHub:
        """The hub that reaches ``target``."""
        return self.hub

    async def log_locations(self, instance: Instance) -> list[LogLocation]:
        """Where an item's logs are on its host, likeliest first, in one round trip.

        For a run, the files it (or a child of it) has open that look like its log, checked
        against the start time seen, so a reused pid shows none. Then, for a run and for its
        host, the newest matches of the host's log globs and its recent ``*.log`` files.
        """
        if instance.kind == "host":
            host = self._host(instance.id)
            search = self.log_search.with_globs(host.logs)
            result = await self._run(host, _search_command(search), COMMAND_TIMEOUT)
            return _ranked(result.stdout, search, str(host.target))
        host, pid, ticks = self._identity(instance)
        search = self.log_search.with_globs(host.logs)
        command = _search_command(search, before=open_files_script(pid, ticks))
        result = await self._run(host, command, COMMAND_TIMEOUT)
        opened = parse_open_files(result.stdout)
        if opened is None:
            raise NotFoundError(self.name, f"{host.label}: pid {pid} has exited")
        target = str(host.target)
        return _ranked(result.stdout, search, target, likely_logs(opened, target))

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """Where an item's checkpoints are on its host, in one round trip: for a run, its
        working directory's ``checkpoints/`` first (checked against the start time seen, so
        a reused pid shows none); then the host's checkpoint directories that exist,
        newest-modified first."""
        if instance.kind == "host":
            host = self._host(instance.id)
            run: tuple[int, int] | None = None
        else:
            host, pid, ticks = self._identity(instance)
            run = (pid, ticks)
        dirs = self.checkpoint_dirs if host.checkpoints is None else host.checkpoints
        command = checkpoint_dirs_command(dirs, run=run)
        result = await self._run(host, command, COMMAND_TIMEOUT)
        return _ranked_dirs(self.name, result.stdout, dirs, str(host.target), run)

    def actions(self, instance: Instance) -> frozenset[Action]:
        """A run takes interrupt and kill; a host itself takes nothing from here."""
        return ACTIONS if instance.kind == "process" else frozenset()

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Other users' runs are shown, never acted on."""
        details = instance.details
        if action in ACTIONS and isinstance(details, ProcessDetails) and not details.own:
            user = details.username or "another user"
            return f"belongs to {user}; only your own processes are acted on"
        return None

    async def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Interrupt (SIGINT now, SIGTERM after the grace period, scheduled on the host) or
        kill (SIGKILL), after the host checks the pid still has the start time seen."""
        if action not in ACTIONS:
            raise ProviderError(self.name, f"{action} is not something a process on a host takes")
        host, pid, ticks = self._identity(instance)
        key = instance.id
        if action is Action.INTERRUPT and self._interrupted.get(key, -math.inf) > time.monotonic():
            # A second SIGINT often aborts the very checkpoint the first one asked for.
            return InstanceState.STOPPING
        seen = self._seen.get(key)
        group = seen.group if seen is not None else None
        if action is Action.INTERRUPT:
            command = signal_command(
                pid, ticks, "INT", group=group, grace_seconds=self.grace_seconds
            )
        else:
            command = signal_command(pid, ticks, "KILL", group=group)
        result = await self._run(host, command, ACTION_TIMEOUT)
        answer = parse_signal_answer(result.stdout)
        where = f"{host.label}: pid {pid}"
        if answer is None:
            said = one_line(result.stderr.strip().splitlines()[0], 200) if result.stderr else ""
            raise ProviderError(
                self.name,
                f"{where}: the host gave no answer (exit {result.exit_status})"
                + (f": {said}" if said else ""),
            )
        if answer.status is SignalStatus.GONE:
            raise NotFoundError(self.name, f"{where} has exited; nothing sent")
        if answer.status is SignalStatus.REPLACED:
            raise NotFoundError(self.name, f"{where} now belongs to another process; nothing sent")
        if answer.status is SignalStatus.DENIED:
            raise ProviderError(
                self.name, f"{where}: not permitted to signal it (not the login's process?)"
            )
        log.info("ssh %s: %s sent to %s", host.label, action, answer.target)
        if action is Action.INTERRUPT:
            self._interrupted[key] = time.monotonic() + self.grace_seconds
            return InstanceState.STOPPING
        return InstanceState.TERMINATED if answer.exited else InstanceState.SHUTTING_DOWN

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """What interrupt and kill would do to a run, from the last poll."""
        if action not in ACTIONS or not isinstance(instance.details, ProcessDetails):
            return []
        seen = self._seen.get(instance.id)
        pid = instance.details.pid
        if seen is not None and seen.group is not None:
            count = seen.group_size or 1
            reach = f"process group {seen.group} ({count} process{'es' * (count != 1)})"
        else:
            reach = f"process {pid} alone"
        where = f"on {instance.location}"
        if action is Action.INTERRUPT:
            return [
                f"SIGINT to {reach} {where}: the run may save a checkpoint and exit",
                f"SIGTERM after {self.grace_seconds:g} s if it is still running "
                "(scheduled on the host: it happens even if this program quits)",
            ]
        return [
            f"SIGKILL to {reach} {where}: the run ends at once, unsaved progress is lost",
            "this cannot be undone",
        ]

    async def close(self) -> None:
        """Close every connection, without waiting on a host that does not answer."""
        await self.hub.close()


def from_settings(settings: Settings) -> list[SshHostsProvider]:
    """The ``ssh`` provider for the ``[[ssh.hosts]]`` tables; none when no host is listed."""
    if not settings.ssh.hosts:
        return []
    hosts = [
        SshHost(
            parse_target(h.host),
            h.label or h.host,
            h.hourly_usd,
            tuple(h.logs) if h.logs is not None else None,
            tuple(h.checkpoints) if h.checkpoints is not None else None,
        )
        for h in settings.ssh.hosts
    ]
    return [
        SshHostsProvider(
            hosts,
            shared_hub(settings),
            patterns=tuple(settings.local.patterns),
            grace_seconds=settings.local.grace_seconds,
            log_search=settings.logs.search(),
            checkpoint_dirs=settings.checkpoints.dirs_for(),
        )
    ]
