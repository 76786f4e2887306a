"""This machine: a row for the host and one per training process found on it.

Processes are found with psutil by matching their command line against glob patterns, and
identified by pid *and* start time, because pids are reused: every signal is preceded by a check
that the pid still belongs to the process the user chose. psutil (about 25 ms to import) is
imported on first use, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import logging
import math
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from runctl_tui.models import (
    Action,
    GpuSpec,
    GpuUsage,
    HostDetails,
    Instance,
    InstanceState,
    ProcessDetails,
    Rate,
)
from runctl_tui.providers.base import (
    NO_LOG_SEARCH,
    RUN_CHECKPOINTS,
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
from runctl_tui.threads import submit

if TYPE_CHECKING:
    import psutil

    from runctl_tui.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "local"
HOST_ID = "host"
"""The id of the row that stands for this machine itself."""
DEFAULT_PATTERNS: tuple[str, ...] = (
    "train*.py",
    "torchrun",
    "accelerate launch",
    "deepspeed",
    "python -m *.train",
)
DEFAULT_GRACE_SECONDS = 30.0
NVIDIA_SMI_TIMEOUT = 3.0
NVIDIA_SMI_RETRY_SECONDS = 60.0
"""After a timeout, nvidia-smi is not asked again for this long: a wedged driver can hang it
for minutes, and every poll would otherwise wait the full timeout, twice."""
GPU_QUERY = (
    "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
)
APPS_QUERY = ("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
ESCALATION_POLL_SECONDS = 0.1
KILL_SETTLE_SECONDS = 0.2
"""How long ``kill`` watches for the killed process to vanish before it answers."""
PROCESS_ACTIONS = frozenset({Action.INTERRUPT, Action.KILL})
NO_NVIDIA_SMI = "no nvidia-smi on this machine"

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_PATTERNS",
    "HOST_ID",
    "Escalation",
    "GpuUsage",
    "LocalProvider",
    "SignalScope",
    "from_settings",
    "gpu_spec",
    "identity_key",
    "match_command",
    "parse_compute_apps",
    "parse_identity",
    "parse_nvidia_smi",
    "program_name",
]

_PYTHON = re.compile(r"python\d*(\.\d+)*[dmtw]*(-dbg)?")
"""``python``, ``python3``, ``python3.11``, ``python3.13t``, ``pythonw``."""
_PYTHON_FLAGS_WITH_VALUE = frozenset("XW")
_PYTHON_LONG_OPTIONS_WITH_VALUE = frozenset({"--check-hash-based-pycs"})


class Escalation(StrEnum):
    """How the SIGTERM follow-up of an interrupt ended."""

    EXITED = "exited"
    """The process ended within the grace period (or before it could be checked)."""
    TERMINATED = "terminated"
    """It was still alive after the grace period: SIGTERM was sent."""
    REPLACED = "replaced"
    """The pid belonged to another process by then: nothing was sent."""
    FAILED = "failed"
    """Sending SIGTERM failed; the reason is logged."""


class SignalScope(BaseModel):
    """What a signal aimed at one training process reaches."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    pid: int
    pgid: int | None
    """The process group signalled, or ``None`` when the process alone is."""
    members: tuple[int, ...]
    """The pids the signal reaches, as they were when this was computed."""


def identity_key(pid: int, create_time: float) -> str:
    """``pid@create_time``: the id of a process, which a reused pid does not repeat."""
    return f"{pid}@{create_time}"


def parse_identity(instance_id: str) -> tuple[int, float]:
    """The pid and create time in an identity key; ``ValueError`` if it is not one."""
    pid_text, _, time_text = instance_id.partition("@")
    try:
        pid, create_time = int(pid_text), float(time_text)
    except ValueError:
        pid, create_time = 0, math.nan
    # Only the exact spelling identity_key produces: no second id for the same process.
    if pid <= 0 or not math.isfinite(create_time) or identity_key(pid, create_time) != instance_id:
        raise ValueError(f"not a local process id: {instance_id!r}")
    return pid, create_time


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` rejects."""
    return text.isascii() and text.isdigit()


def _number(field: str) -> int | None:
    """A non-negative whole number, or ``None`` for ``[N/A]``, ``[Not Supported]`` and the like."""
    try:
        value = float(field)
    except ValueError:
        return None
    return round(value) if math.isfinite(value) and value >= 0 else None


def parse_nvidia_smi(text: str) -> list[GpuUsage]:
    """GPUs from ``nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total``.

    Expects ``--format=csv,noheader,nounits``; lines that do not parse are skipped.
    """
    gpus: list[GpuUsage] = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 5 or not _is_number(fields[0]):
            continue
        # A comma inside the product name would shift the columns: the numbers are the last three.
        name = ", ".join(fields[1:-3])
        if not name:
            continue
        gpus.append(
            GpuUsage(
                index=int(fields[0]),
                name=name,
                utilization_percent=_number(fields[-3]),
                memory_used_mib=_number(fields[-2]),
                memory_total_mib=_number(fields[-1]),
            )
        )
    return gpus


def parse_compute_apps(text: str) -> dict[int, int]:
    """GPU memory in MiB per pid from ``nvidia-smi --query-compute-apps=pid,used_memory``.

    A process on several GPUs is listed once per GPU: its lines are summed.
    """
    usage: Counter[int] = Counter()
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not _is_number(fields[0]):
            continue
        memory = _number(fields[1])
        if memory is not None:
            usage[int(fields[0])] += memory
    return dict(usage)


def gpu_spec(gpus: Sequence[GpuUsage]) -> GpuSpec | None:
    """The host's GPUs as one spec: ``None`` without GPUs, models joined when they differ."""
    if not gpus:
        return None
    names = list(dict.fromkeys(gpu.name for gpu in gpus))
    totals = {gpu.memory_total_mib for gpu in gpus}
    memory = totals.pop() if len(totals) == 1 else None
    return GpuSpec(count=len(gpus), model=" + ".join(names), memory_mib=memory)


def _basename(token: str) -> str:
    return token.rstrip("/").rsplit("/", 1)[-1] or token


def _launch_forms(cmdline: Sequence[str]) -> list[tuple[tuple[str, str], ...]]:
    """How a command line can be read as ``program args...``: (short, full) token pairs.

    The short form of the program or script token is its basename, and every Python
    interpreter reads as ``python``. ``python [options] script args`` reads both as
    ``python script args`` and as ``script args``, so ``torchrun`` matches a console script
    that runs as ``/venv/bin/python /venv/bin/torchrun``. ``python -m pkg.train`` reads as
    ``python -m pkg.train``.
    """
    if not cmdline:
        return []
    head = _basename(cmdline[0])
    if not _PYTHON.fullmatch(head):
        return [((head, cmdline[0]), *((arg, arg) for arg in cmdline[1:]))]
    interpreter = ("python", cmdline[0])
    index = 1
    while index < len(cmdline):
        arg = cmdline[index]
        if arg == "-" or not arg.startswith("-"):
            break
        if arg == "--":
            index += 1
            break
        if arg.startswith("--"):
            index += 2 if arg in _PYTHON_LONG_OPTIONS_WITH_VALUE else 1
            continue
        flags = arg[1:]
        for position, flag in enumerate(flags):
            attached = flags[position + 1 :]
            if flag in "mc":
                value = attached or (cmdline[index + 1] if index + 1 < len(cmdline) else "")
                after = cmdline[index + 1 :] if attached else cmdline[index + 2 :]
                return [(interpreter, (f"-{flag}", f"-{flag}"), (value, value), *_pairs(after))]
            if flag in _PYTHON_FLAGS_WITH_VALUE:
                index += 0 if attached else 1
                break
        index += 1
    if index >= len(cmdline):
        return [(interpreter,)]
    script = (_basename(cmdline[index]), cmdline[index])
    rest = _pairs(cmdline[index + 1 :])
    return [(interpreter, script, *rest), (script, *rest)]


def _pairs(args: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((arg, arg) for arg in args)


def _matches(form: Sequence[tuple[str, str]], pattern: Sequence[str]) -> bool:
    if len(form) < len(pattern):
        return False
    # A pattern token with a slash is meant for the whole path, one without for the basename.
    return all(
        fnmatchcase(full if "/" in glob else short, glob)
        for (short, full), glob in zip(form, pattern, strict=False)
    )


def match_command(cmdline: Sequence[str], patterns: Sequence[str]) -> str | None:
    """The first pattern that ``cmdline`` matches, or ``None``.

    A pattern is glob-style tokens (``accelerate launch``, ``python -m *.train``) matched
    against the leading tokens of the program or script that runs, never a substring of the
    whole line: ``vim train.py`` and ``python -c ... train.py`` do not match ``train*.py``.
    """
    forms = _launch_forms(cmdline)
    for pattern in patterns:
        tokens = pattern.split()
        if tokens and any(_matches(form, tokens) for form in forms):
            return pattern
    return None


LOG_SUFFIXES = (".log", ".txt", ".out", ".err", ".jsonl")
"""Files with these endings, open in a run, are taken for its log."""


def log_rank(path: str, fd: int) -> int | None:
    """How likely ``path``, open as ``fd`` in a run, is its log (lower first); ``None``: not."""
    if path.startswith(("/dev/", "/proc/", "/sys/")):
        return None
    if path.endswith(".log"):
        return 0
    if fd in (1, 2):
        return 1
    if path.endswith(LOG_SUFFIXES):
        return 2
    return None


def likely_logs(
    opened: Iterable[tuple[int, int, str]], target: str | None = None
) -> list[LogLocation]:
    """The log files among ``(fd, pid, path)`` files a run has open, likeliest first (see
    :func:`log_rank`), each path once; ``target`` is the SSH host they are on, if remote."""
    found: dict[str, tuple[int, LogLocation]] = {}
    for fd, pid, path in opened:
        rank = log_rank(path, fd)
        if rank is None or path in found:
            continue
        how = "stdout" if fd == 1 else "stderr" if fd == 2 else "open"
        found[path] = (rank, LogLocation(path, target=target, found=f"{how} of pid {pid}"))
    return [where for _, where in sorted(found.values(), key=lambda item: item[0])]


def _stat_file(path: str) -> tuple[float, int] | None:
    """Modification time and size of a regular file; ``None`` for anything else."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return found.st_mtime, found.st_size


def _glob_matches(pattern: str, scan_limit: int) -> Iterator[str]:
    """The paths ``pattern`` matches (``~`` is this user's home), at most ``scan_limit``."""
    expanded = os.path.expanduser(pattern)
    if not os.path.isabs(expanded):
        return
    yield from itertools.islice(glob.iglob(expanded), scan_limit)


def _recent_files(directory: str, depth: int, scan_limit: int) -> Iterator[str]:
    """``*.log`` files below ``directory``, at most ``depth`` levels down and ``scan_limit``
    entries looked at; symbolic links to directories are not followed."""
    root = os.path.expanduser(directory)
    if not os.path.isabs(root):
        return
    seen = 0
    pending: list[tuple[str, int]] = [(root, 1)]
    while pending:
        folder, level = pending.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > scan_limit:
                    return
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if level < depth:
                            pending.append((entry.path, level + 1))
                    elif entry.name.endswith(".log") and entry.is_file():
                        yield entry.path
                except OSError:
                    continue


def search_logs(
    search: LogSearch, *, now: float | None = None, known: Sequence[LogLocation] = ()
) -> list[LogLocation]:
    """Logs on this machine: ``known`` first, then the newest matches of each configured
    glob, then the newest recent ``*.log`` files (see :class:`LogSearch`)."""
    files: list[FoundFile] = []
    for index, pattern in enumerate(search.globs):
        for path in _glob_matches(pattern, search.scan_limit):
            facts = _stat_file(path)
            if facts is not None:
                files.append(FoundFile(path, facts[0], facts[1], index))
    for directory in search.recent_dirs:
        for path in _recent_files(directory, search.depth, search.scan_limit):
            facts = _stat_file(path)
            if facts is not None:
                files.append(FoundFile(path, facts[0], facts[1]))
    moment = time.time() if now is None else now
    return rank_logs(files, search, target=None, now=moment, known=known)


def search_checkpoint_dirs(
    dirs: Sequence[str],
    *,
    own: str | None = None,
    now: float | None = None,
    scan_limit: int = 2000,
) -> list[CheckpointLocation]:
    """Checkpoint directories on this machine: ``own`` (a run's folder) first when it exists,
    then every existing directory ``dirs`` (globs allowed, ``~`` is this user's home) match,
    newest-modified first."""
    found: list[FoundDir] = []
    if own is not None:
        modified = _dir_modified(own)
        if modified is not None:
            found.append(FoundDir(own, modified))
    for index, pattern in enumerate(dirs):
        for path in _glob_matches(pattern, scan_limit):
            modified = _dir_modified(path)
            if modified is not None:
                found.append(FoundDir(path, modified, index))
    moment = time.time() if now is None else now
    return rank_checkpoint_dirs(found, dirs, target=None, now=moment)


def _dir_modified(path: str) -> float | None:
    """A directory's modification time; ``None`` when it is not one (or cannot be read)."""
    try:
        facts = os.stat(path)
    except (OSError, ValueError):
        return None
    return facts.st_mtime if stat.S_ISDIR(facts.st_mode) else None


def run_name(cmdline: Sequence[str]) -> str:
    """A run's name: its command line with the interpreter and script paths cut to their
    basenames (``python train.py --lr 3e-4``); the arguments say which run it is."""
    if not cmdline:
        return ""
    head = os.path.basename(cmdline[0]) or cmdline[0]
    rest = [
        os.path.basename(arg) if "/" in arg and arg.endswith(".py") else arg for arg in cmdline[1:]
    ]
    return " ".join([head, *rest])


def program_name(cmdline: Sequence[str]) -> str:
    """What runs: the script or module for Python, else the program's basename."""
    forms = _launch_forms(cmdline)
    if not forms:
        return ""
    first = forms[0]
    if first[0][0] == "python" and len(first) >= 3 and first[1][0] == "-m":
        return first[2][0]
    if first[0][0] == "python" and len(first) >= 2 and first[1][0] == "-c":
        return "python -c"
    return forms[-1][0][0]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def run_command(argv: Sequence[str], timeout: float) -> str:
    """The stdout of ``argv``; raises ``OSError`` or ``subprocess.SubprocessError`` on failure.

    The command runs in a session of its own, so a timeout kills everything it started:
    otherwise a grandchild holding the pipe open would keep ``communicate`` waiting.
    """
    with subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            # Bounded again: a grandchild that left the session may still hold the pipes.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.communicate(timeout=1.0)
            raise
        if child.returncode != 0:
            first = (err.strip() or out.strip()).splitlines()[:1]
            raise subprocess.CalledProcessError(
                child.returncode, list(argv), out, first[0] if first else ""
            )
        return out


class NvidiaSmi:
    """Queries ``nvidia-smi`` with a bounded timeout; a missing binary is no GPUs, not an error."""

    def __init__(
        self, binary: str | None = "nvidia-smi", timeout: float = NVIDIA_SMI_TIMEOUT
    ) -> None:
        self.binary = binary
        self.timeout = timeout
        self._hung_at: float | None = None

    def found(self) -> bool:
        """Whether the binary is there at all."""
        return bool(self.binary) and shutil.which(self.binary or "") is not None

    def _query(self, args: Sequence[str]) -> tuple[str | None, str | None]:
        """The output, or ``None`` and one line saying why (``None`` when simply absent)."""
        path = shutil.which(self.binary) if self.binary else None
        if path is None:
            return None, None
        hung = f"nvidia-smi did not answer within {self.timeout:g} s"
        if self._hung_at is not None:
            if time.monotonic() - self._hung_at < NVIDIA_SMI_RETRY_SECONDS:
                return None, hung
            self._hung_at = None
        try:
            return run_command([path, *args], self.timeout), None
        except subprocess.TimeoutExpired:
            self._hung_at = time.monotonic()
            return None, hung
        except subprocess.CalledProcessError as exc:
            return None, f"nvidia-smi failed (exit {exc.returncode}): {exc.stderr}"[:240]
        except OSError as exc:
            return None, f"nvidia-smi could not run: {exc}"[:240]

    def gpus(self) -> tuple[list[GpuUsage], str | None]:
        """The GPUs and a warning if ``nvidia-smi`` is there but did not answer."""
        text, problem = self._query(GPU_QUERY)
        return (parse_nvidia_smi(text) if text else []), problem

    def process_memory(self) -> tuple[dict[int, int], str | None]:
        """GPU memory in MiB per pid, and a warning if ``nvidia-smi`` did not answer."""
        text, problem = self._query(APPS_QUERY)
        return (parse_compute_apps(text) if text else {}), problem


def read_host(gpu_note: str | None = None) -> tuple[HostDetails, datetime | None]:
    """This machine's hostname, CPUs, memory and load, and when it booted (UTC)."""
    import psutil

    memory = psutil.virtual_memory()
    try:
        load: tuple[float, float, float] | None = os.getloadavg()
    except (AttributeError, OSError):
        load = None
    try:
        booted: datetime | None = _utc(psutil.boot_time())
    except (OSError, RuntimeError):
        booted = None
    details = HostDetails(
        hostname=socket.gethostname(),
        cpus=psutil.cpu_count(logical=True) or os.cpu_count(),
        memory_total_bytes=memory.total,
        memory_used_bytes=max(memory.total - memory.available, 0),
        load_average=load,
        gpu_note=gpu_note,
    )
    return details, booted


def _owner(proc: psutil.Process) -> tuple[str | None, bool]:
    """The process's user name and whether it is ours (its real uid is our real uid)."""
    import psutil

    try:
        uid = proc.uids().real
    except psutil.AccessDenied:
        return None, False
    try:
        name: str | None = proc.username()
    except psutil.AccessDenied:
        name = str(uid)
    return name, uid == os.getuid()


class LocalProvider:
    """This machine and the training processes on it. Calls block: run them off the UI thread.

    The host row takes no action. A training run takes interrupt (SIGINT to its process group,
    SIGTERM after the grace period) and kill (SIGKILL), and only when it is the user's own.
    """

    def __init__(
        self,
        *,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        nvidia_smi: str | None = "nvidia-smi",
        nvidia_smi_timeout: float = NVIDIA_SMI_TIMEOUT,
        log_search: LogSearch | None = None,
        checkpoint_dirs: Sequence[str] = (),
        hourly_usd: Decimal | None = None,
    ) -> None:
        """``patterns``: launch patterns of training runs (see :func:`match_command`);
        ``log_search``: where logs are looked for beyond the files a run has open (nowhere
        when not given); ``checkpoint_dirs``: where checkpoints are looked for beyond a run's
        own ``checkpoints/`` folder; ``hourly_usd``: what this machine costs per hour
        (``[local] hourly_usd``; unset counts it as free)."""
        if not patterns or any(not pattern.split() for pattern in patterns):
            raise ValueError("patterns must be non-empty glob patterns")
        if grace_seconds < 0:
            raise ValueError("grace_seconds must not be negative")
        self.patterns = tuple(patterns)
        self.grace_seconds = grace_seconds
        self.log_search = log_search or NO_LOG_SEARCH
        self.checkpoint_dirs = tuple(checkpoint_dirs)
        self.rate = Rate(
            usd_per_hour=hourly_usd or Decimal(0),
            source="[local] hourly_usd" if hourly_usd is not None else "[local] hourly_usd unset",
        )
        """This machine's hourly rate, as configured."""
        self._smi = NvidiaSmi(nvidia_smi, nvidia_smi_timeout)
        self._lock = threading.Lock()
        self._interrupting = threading.Lock()
        """Makes "is an interrupt pending? if not, send SIGINT" one step for concurrent callers."""
        self._warnings: tuple[str, ...] = ()
        self._samplers: dict[str, psutil.Process] = {}
        """psutil objects kept between polls: ``cpu_percent`` measures since the last call."""
        self._escalations: dict[str, Future[Escalation]] = {}

    @property
    def name(self) -> str:
        """Always ``local``."""
        return NAME

    def poll_warnings(self) -> tuple[str, ...]:
        """Problems of the last poll that did not fail it, e.g. ``nvidia-smi`` timing out."""
        with self._lock:
            return self._warnings

    def escalation(self, instance_id: str) -> Future[Escalation] | None:
        """The SIGTERM follow-up scheduled by the last interrupt of this process, if any."""
        with self._lock:
            return self._escalations.get(instance_id)

    # -- reading ---------------------------------------------------------------------------

    def host(self, warnings: list[str] | None = None) -> Instance:
        """The row of this machine right now, GPUs included; ``nvidia-smi`` trouble goes to
        ``warnings`` (and to the row's GPU note)."""
        gpus, problem = self._smi.gpus()
        if problem and warnings is not None:
            warnings.append(problem)
        note = problem or (None if gpus or self._smi.found() else NO_NVIDIA_SMI)
        details, booted = read_host(note)
        return Instance(
            provider=self.name,
            id=HOST_ID,
            name=details.hostname,
            location=details.hostname,
            state=InstanceState.RUNNING,
            gpus=gpu_spec(gpus),
            gpu_usage=tuple(gpus),
            launched_at=booted,
            rate=self.rate,
            details=details,
        )

    def training_processes(self, warnings: list[str] | None = None) -> list[Instance]:
        """A row for every process whose command line matches a pattern, this one excluded."""
        import psutil

        found: list[tuple[psutil.Process, str, list[str]]] = []
        try:
            for proc in psutil.process_iter(["cmdline"]):
                cmdline = proc.info.get("cmdline")
                if proc.pid == os.getpid() or not cmdline:
                    continue
                pattern = match_command(cmdline, self.patterns)
                if pattern is not None:
                    found.append((proc, pattern, list(cmdline)))
        except OSError as exc:
            raise ProviderError(self.name, f"cannot list processes: {exc}") from exc
        gpu_memory = self._gpu_memory(warnings) if found else {}
        hostname = socket.gethostname()
        read: list[tuple[ProcessDetails, psutil.Process]] = []
        for proc, pattern, cmdline in found:
            one = self._read(proc, pattern, cmdline, gpu_memory, hostname)
            if one is not None:
                read.append(one)
        sizes = _group_sizes({d.pgid for d, _ in read if d.pgid is not None})
        with self._lock:
            # Replaced, not merged: processes that ended are forgotten.
            self._samplers = {identity_key(d.pid, d.start_time): sampler for d, sampler in read}
        return [
            self._process_instance(
                d.model_copy(update={"group_size": sizes.get(d.pgid) if d.pgid else None})
            )
            for d, _ in read
        ]

    def _gpu_memory(self, warnings: list[str] | None) -> dict[int, int]:
        usage, problem = self._smi.process_memory()
        if problem and warnings is not None:
            warnings.append(problem)
        return usage

    def _read(
        self,
        proc: psutil.Process,
        pattern: str,
        cmdline: list[str],
        gpu_memory: dict[int, int],
        hostname: str,
    ) -> tuple[ProcessDetails, psutil.Process] | None:
        """One matched process as details, or ``None`` if it vanished meanwhile."""
        import psutil

        try:
            with proc.oneshot():
                create_time = proc.create_time()
                status = proc.status()
                if status == psutil.STATUS_ZOMBIE:
                    return None
                key = identity_key(proc.pid, create_time)
                with self._lock:
                    known = self._samplers.get(key)
                # cpu_percent compares with the previous call on the same object: on first
                # sight there is nothing to compare with, so the figure is unknown, not 0.
                sampler = known if known is not None else proc
                cpu = _or_none(sampler.cpu_percent)
                username, own = _owner(proc)
                memory = _or_none(proc.memory_info)
                ppid = _or_none(proc.ppid)
        except psutil.NoSuchProcess:
            return None
        try:
            pgid: int | None = os.getpgid(proc.pid)
        except OSError:
            pgid = None
        details = ProcessDetails(
            pid=proc.pid,
            start_time=create_time,
            host=hostname,
            username=username,
            own=own,
            cmdline=tuple(cmdline),
            program=program_name(cmdline),
            pattern=pattern,
            cpu_percent=cpu if known is not None else None,
            rss_bytes=memory.rss if memory is not None else None,
            gpu_memory_mib=gpu_memory.get(proc.pid),
            ppid=ppid,
            pgid=pgid,
            stopped=status == psutil.STATUS_STOPPED,
        )
        return details, sampler

    def list_instances(self) -> list[Instance]:
        """The host row, then one row per training process."""
        warnings: list[str] = []
        host = self.host(warnings)
        processes = self.training_processes(warnings)
        keys = {process.id for process in processes}
        with self._lock:
            self._warnings = tuple(dict.fromkeys(warnings))
            self._escalations = {
                key: future
                for key, future in self._escalations.items()
                if key in keys or not future.done()
            }
        return [host, *processes]

    def describe(self, instance: Instance) -> Instance:
        """The row read again now; :class:`NotFoundError` if the process is gone or replaced."""
        import psutil

        if instance.id == HOST_ID:
            return self.host()
        pid, create_time = self._identity(instance)
        proc = self._verified(pid, create_time)
        try:
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess as exc:
            raise NotFoundError(self.name, f"pid {pid} has exited") from exc
        except psutil.AccessDenied as exc:
            raise ProviderError(self.name, f"not permitted to read pid {pid}") from exc
        pattern = match_command(cmdline, self.patterns)
        if pattern is None:
            # Same process, but it exec'd into something that is no training run.
            raise NotFoundError(self.name, f"pid {pid} no longer runs a training command")
        read = self._read(proc, pattern, cmdline, self._gpu_memory(None), socket.gethostname())
        if read is None:
            raise NotFoundError(self.name, f"pid {pid} has exited")
        details = read[0]
        if details.pgid is not None:
            details = details.model_copy(
                update={"group_size": _group_sizes({details.pgid}).get(details.pgid)}
            )
        return self._process_instance(details)

    def _process_instance(self, process: ProcessDetails) -> Instance:
        key = identity_key(process.pid, process.start_time)
        state = InstanceState.STOPPED if process.stopped else InstanceState.RUNNING
        if self._escalating(key):
            state = InstanceState.STOPPING
        return Instance(
            provider=self.name,
            id=key,
            # The interpreter's path says nothing about the run: its name and the arguments do.
            name=run_name(process.cmdline) if process.cmdline else process.program,
            location=process.host,
            state=state,
            launched_at=_utc(process.start_time),
            # A run costs nothing beyond the machine it runs on, which has its own row.
            rate=Rate(usd_per_hour=Decimal(0), source="counted on this machine's row"),
            details=process,
        )

    def _escalating(self, key: str) -> bool:
        with self._lock:
            future = self._escalations.get(key)
        return future is not None and not future.done()

    # -- the protocol: what a row takes ----------------------------------------------------

    def actions(self, instance: Instance) -> frozenset[Action]:
        """Interrupt and kill for a training run; nothing for the host row."""
        return PROCESS_ACTIONS if isinstance(instance.details, ProcessDetails) else frozenset()

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Why ``action`` cannot be done to the run as shown (another user's, suspended...)."""
        details = instance.details
        if not isinstance(details, ProcessDetails) or action not in PROCESS_ACTIONS:
            return f"{action} is not something {self.name} does to this item"
        if not details.own:
            return (
                f"belongs to {details.username or 'another user'}; "
                "only your own processes are acted on"
            )
        if instance.state in {InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN}:
            return f"already {instance.state}"
        if action is Action.INTERRUPT and details.stopped:
            # A suspended process runs no signal handler: SIGINT would wait for a SIGCONT.
            return "suspended (e.g. Ctrl-Z): resume it first (fg, or kill -CONT), or kill it"
        return None

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Interrupt or kill; returns the state right after."""
        if action is Action.INTERRUPT:
            return self.interrupt(instance)
        if action is Action.KILL:
            return self.kill(instance)
        raise ProviderError(self.name, f"{action} is not something {self.name} does")

    # -- acting ----------------------------------------------------------------------------

    def interrupt(self, instance: Instance) -> InstanceState:
        """SIGINT now, SIGTERM after the grace period if it is still alive.

        Returns at once; the follow-up runs on a daemon thread (see :meth:`escalation`).
        A second interrupt while one is pending sends nothing: a second SIGINT often aborts
        the very checkpoint the first one asked for.
        """
        pid, create_time = self._identity(instance)
        key = identity_key(pid, create_time)
        with self._interrupting:
            if self._escalating(key):
                self._verified(pid, create_time)
                return InstanceState.STOPPING
            self._signal(pid, create_time, signal.SIGINT)
            grace = self.grace_seconds
            future = submit(
                lambda: self._escalate(pid, create_time, grace), name=f"runctl-interrupt-{pid}"
            )
            with self._lock:
                self._escalations[key] = future
        return InstanceState.STOPPING

    def kill(self, instance: Instance) -> InstanceState:
        """SIGKILL (same reach as an interrupt): the process gets no chance to save."""
        pid, create_time = self._identity(instance)
        self._signal(pid, create_time, signal.SIGKILL)
        deadline = time.monotonic() + KILL_SETTLE_SECONDS
        while self._state_of(pid, create_time) == "alive":
            if time.monotonic() >= deadline:
                # Still in the kernel's hands, e.g. blocked in a driver call.
                return InstanceState.SHUTTING_DOWN
            time.sleep(0.01)
        return InstanceState.TERMINATED

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """What interrupt and kill would do to ``instance``, for the confirmation dialog."""
        if action not in PROCESS_ACTIONS:
            return []
        try:
            scope = self.signal_scope(instance)
        except ProviderError as exc:
            return [exc.message]
        if scope.pgid is None:
            reach = f"process {scope.pid} alone"
        else:
            count = len(scope.members)
            reach = f"process group {scope.pgid} ({count} process{'es' * (count != 1)})"
        if action is Action.INTERRUPT:
            return [
                f"SIGINT to {reach}: the run may save a checkpoint and exit",
                f"SIGTERM after {self.grace_seconds:g} s if it is still running",
            ]
        return [
            f"SIGKILL to {reach}: the run ends at once, unsaved progress is lost",
            "this cannot be undone",
        ]

    def signal_scope(self, instance: Instance) -> SignalScope:
        """What an interrupt or a kill of ``instance`` would signal right now."""
        import psutil

        pid, create_time = self._identity(instance)
        proc = self._verified(pid, create_time)
        group = self._group_to_signal(proc)
        if group is None:
            return SignalScope(pid=pid, pgid=None, members=(pid,))
        members: list[int] = []
        for other in psutil.pids():
            with contextlib.suppress(OSError):
                if os.getpgid(other) == group:
                    members.append(other)
        return SignalScope(pid=pid, pgid=group, members=tuple(members))

    def log_locations(self, instance: Instance) -> list[LogLocation]:
        """Where an item's logs are, likeliest first. For a run, the files it (or any process
        of its group) has open that look like its log: ``*.log`` files first, then what its
        stdout and stderr go to, then other text files. Then, for a run and for this machine,
        the newest matches of the configured globs and the newest recent ``*.log`` files."""
        if instance.kind != "process":
            return search_logs(self.log_search)
        return search_logs(self.log_search, known=self._open_logs(instance))

    def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """Where an item's checkpoints are: for a run, its working directory's
        ``checkpoints/`` first; then, for a run and for this machine, the configured
        directories that exist, newest-modified first."""
        own: str | None = None
        if instance.kind == "process":
            import psutil

            pid, create_time = self._identity(instance)
            proc = self._verified(pid, create_time)
            try:
                own = os.path.join(proc.cwd(), RUN_CHECKPOINTS)
            except psutil.NoSuchProcess as exc:
                raise NotFoundError(self.name, f"pid {pid} has exited") from exc
            except psutil.AccessDenied:
                own = None
        return search_checkpoint_dirs(self.checkpoint_dirs, own=own)

    def _open_logs(self, instance: Instance) -> list[LogLocation]:
        import psutil

        pid, create_time = self._identity(instance)
        proc = self._verified(pid, create_time)
        members = [proc]
        with contextlib.suppress(psutil.Error):
            members += proc.children(recursive=True)
        opened: list[tuple[int, int, str]] = []
        for member in members:
            try:
                files = member.open_files()
            except (psutil.AccessDenied, psutil.NoSuchProcess):
                continue
            opened += [(file.fd, member.pid, file.path) for file in files]
        return likely_logs(opened)

    def _identity(self, instance: Instance) -> tuple[int, float]:
        if instance.id == HOST_ID:
            raise ProviderError(self.name, "this machine itself is not acted on from here")
        try:
            return parse_identity(instance.id)
        except ValueError as exc:
            raise ProviderError(self.name, str(exc)) from exc

    def _state_of(self, pid: int, create_time: float) -> Literal["alive", "gone", "replaced"]:
        """Whether the process ``pid@create_time`` still runs; a zombie counts as gone.

        The start time must be equal, not close: psutil adds the boot time (whole seconds) to
        the ticks since boot, so it repeats exactly. If the clock is stepped, the boot time and
        with it every id shifts; actions on ids from before the step are refused, which is the
        safe way to be wrong, until the next poll shows the new ids.
        """
        import psutil

        try:
            proc = psutil.Process(pid)
            if proc.create_time() != create_time:
                return "replaced"
            return "gone" if proc.status() == psutil.STATUS_ZOMBIE else "alive"
        except psutil.NoSuchProcess:
            return "gone"
        except psutil.AccessDenied as exc:
            raise ProviderError(self.name, f"not permitted to read pid {pid}") from exc

    def _verified(self, pid: int, create_time: float) -> psutil.Process:
        """The live process ``pid@create_time``, or :class:`NotFoundError`."""
        import psutil

        state = self._state_of(pid, create_time)
        if state == "replaced":
            raise NotFoundError(self.name, f"pid {pid} now belongs to another process; refusing")
        if state == "gone":
            raise NotFoundError(self.name, f"pid {pid} has exited")
        try:
            return psutil.Process(pid)
        except psutil.NoSuchProcess as exc:
            raise NotFoundError(self.name, f"pid {pid} has exited") from exc

    def _group_to_signal(self, proc: psutil.Process) -> int | None:
        """The process group to signal for ``proc``, or ``None`` to signal it alone.

        The group is what Ctrl-C in the run's terminal reaches: the launcher and its workers
        (torchrun and its ranks, ``python train.py | tee``), which must stop together or the
        ranks left behind hang in collectives. So the group is signalled when ``proc`` leads
        it, or when its leader is one of our training processes. When the leader is something
        else (a wrapper shell script, ``make``, a scheduler, or a container's init that leads
        every process), the group holds processes the user never chose, so ``proc`` is
        signalled alone. Our own group is never signalled.
        """
        import psutil

        try:
            group = os.getpgid(proc.pid)
        except ProcessLookupError as exc:
            raise NotFoundError(self.name, f"pid {proc.pid} has exited") from exc
        if group <= 1 or group == os.getpgrp():
            return None
        if group == proc.pid:
            return group
        try:
            leader = psutil.Process(group)
            if leader.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = leader.cmdline()
            _, own = _owner(leader)
        except psutil.Error:
            return None
        if own and match_command(cmdline, self.patterns) is not None:
            return group
        return None

    def _signal(self, pid: int, create_time: float, sig: signal.Signals) -> int | None:
        """Send ``sig`` after checking identity and ownership; returns the group signalled."""
        import psutil

        with _pidfd(pid) as handle:
            # The pidfd, taken before the check, keeps naming this very process even if it
            # exits and its pid is reused between the check and the signal.
            proc = self._verified(pid, create_time)
            try:
                username, own = _owner(proc)
                group = self._group_to_signal(proc)
            except psutil.NoSuchProcess as exc:
                raise NotFoundError(self.name, f"pid {pid} has exited") from exc
            if not own:
                raise ProviderError(
                    self.name,
                    f"pid {pid} belongs to {username or 'another user'}; "
                    "only your own processes are acted on",
                )
            try:
                if group is not None:
                    os.killpg(group, sig)
                elif handle is not None:
                    signal.pidfd_send_signal(handle, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError as exc:
                raise NotFoundError(self.name, f"pid {pid} has exited") from exc
            except PermissionError as exc:
                raise ProviderError(self.name, f"not permitted to signal pid {pid}") from exc
        log.info("sent %s to %s", sig.name, f"group {group}" if group else f"pid {pid}")
        return group

    def _escalate(self, pid: int, create_time: float, grace: float) -> Escalation:
        """Wait up to ``grace`` seconds for the process to end, then SIGTERM it."""
        try:
            deadline = time.monotonic() + grace
            while (state := self._state_of(pid, create_time)) == "alive":
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(ESCALATION_POLL_SECONDS, remaining))
            if state == "gone":
                return Escalation.EXITED
            if state == "replaced":
                return Escalation.REPLACED
            self._signal(pid, create_time, signal.SIGTERM)
        except NotFoundError as exc:
            return Escalation.REPLACED if "another process" in exc.message else Escalation.EXITED
        except ProviderError as exc:
            log.warning("SIGTERM to pid %d after the grace period failed: %s", pid, exc)
            return Escalation.FAILED
        return Escalation.TERMINATED


def _or_none(read: Callable[[], T]) -> T | None:
    """``read()``, or ``None`` when the process hides it from us."""
    import psutil

    try:
        return read()
    except psutil.AccessDenied:
        return None


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A pidfd for ``pid`` where the kernel offers one, else ``None`` (plain ``kill`` then)."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        # Gone, or no pidfd support (old kernel, seccomp): the identity check says which.
        yield None
        return
    try:
        yield handle
    finally:
        os.close(handle)


def from_settings(settings: Settings) -> list[LocalProvider]:
    """The ``local`` provider as the ``[local]`` table configures it."""
    if not settings.local.enabled:
        return []
    return [
        LocalProvider(
            patterns=tuple(settings.local.patterns),
            grace_seconds=settings.local.grace_seconds,
            log_search=settings.logs.search(settings.local.logs),
            checkpoint_dirs=settings.checkpoints.dirs_for(settings.local.checkpoints),
            hourly_usd=settings.local.hourly_usd,
        )
    ]


def _group_sizes(groups: set[int]) -> dict[int, int]:
    """How many processes are in each of ``groups`` now (what a signal to the group reaches)."""
    if not groups:
        return {}
    import psutil

    sizes: Counter[int] = Counter()
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group in groups:
                sizes[group] += 1
    return dict(sizes)
