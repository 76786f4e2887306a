"""The provider protocol every backend implements, and the one error type it raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from runctl_tui.models import Action, Instance, InstanceState, StorageItem


class ProviderError(Exception):
    """Every SDK failure is re-raised as this, naming the provider and how to fix it."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        hint: str | None = None,
        partial: Sequence[Instance] | None = None,
        failed_regions: Sequence[str] = (),
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.hint = hint
        self.partial = tuple(partial) if partial is not None else None
        """Instances from the regions that did answer, when only some failed."""
        self.failed_regions = tuple(failed_regions)


class NotConfiguredError(ProviderError):
    """The provider has nothing to show because it was never set up (no credentials at all).

    Not a failure: the status line says ``not configured`` and how to set it up, and
    ``status`` does not count it against its exit code.
    """


class NotFoundError(ProviderError):
    """The instance no longer exists at the provider."""


@dataclass(frozen=True)
class SpotRequest:
    """The spot request behind an instance."""

    id: str
    type: str
    """``one-time`` or ``persistent``."""
    state: str
    """``open``, ``active``, ``cancelled``, ``closed``, ``failed``."""


@runtime_checkable
class Provider(Protocol):
    """A source of machines. Calls block: the fleet runs them off the UI loop, in threads.

    What a provider offers is data: :meth:`actions` names, per item, the catalog actions
    it takes (``runctl_tui.actions``); the fleet refuses everything else, checks protection,
    read-only mode and a fresh state before :meth:`perform`, and journals each call.
    """

    @property
    def name(self) -> str:
        """Unique name shown in the UI, e.g. ``aws``."""
        ...

    def list_instances(self) -> list[Instance]:
        """Every item, freshly described. Raises :class:`ProviderError`."""
        ...

    def describe(self, instance: Instance) -> Instance:
        """The current state of one item. Raises :class:`NotFoundError` if gone."""
        ...

    def actions(self, instance: Instance) -> frozenset[Action]:
        """The actions this kind of item takes at all (e.g. interrupt and kill for a run)."""
        ...

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Why ``action`` cannot be done to ``instance`` as it is now, or ``None``; quick."""
        ...

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Do it; returns the state the provider reports right after."""
        ...


@runtime_checkable
class ReportsWarnings(Protocol):
    """A provider whose successful poll can still carry warnings (e.g. a missing permission)."""

    def poll_warnings(self) -> tuple[str, ...]:
        """One line per problem found by the last ``list_instances``; empty when none."""
        ...


@runtime_checkable
class ReportsStorage(Protocol):
    """A provider whose disks bill on their own (EBS volumes, stopped pods' volumes)."""

    def storage(self) -> tuple[StorageItem, ...]:
        """Every disk the last ``list_instances`` found, attached or not."""
        ...


@runtime_checkable
class NamesLosses(Protocol):
    """A provider that says, for a confirmation, what an action on an instance does and loses."""

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """Short lines such as ``SIGINT to process group 4242 (3 processes)``; quick, local."""
        ...


@dataclass(frozen=True)
class LogLocation:
    """Where an item's training log is, and how that was found out."""

    path: str
    """A path on the item's machine; raw, possibly hostile text: escape it to show it."""
    target: str | None = None
    """``user@host:port`` when the file is on another machine (reached over SSH)."""
    found: str = ""
    """One line, e.g. ``open for writing by pid 4242``."""
    size: int | None = None
    """Bytes, when known."""
    modified: float | None = None
    """Seconds since the epoch by the clock of the machine the file is on, when known."""

    @property
    def source(self) -> str:
        """What ``runctl-tui tail`` takes: the path, or ``ssh://user@host:port/path``."""
        if self.target is None:
            return self.path
        return f"ssh://{self.target}{self.path if self.path.startswith('/') else '/' + self.path}"


DEFAULT_LOG_GLOBS: tuple[str, ...] = (
    "~/train/*.log",
    "~/logs/*.log",
    "~/*.log",
    "~/*/logs/*.log",
    "/workspace/logs/*.log",
    "/workspace/*.log",
    "/workspace/*/logs/*.log",
)
"""Where training scripts on ML machines commonly write their logs."""
DEFAULT_RECENT_DIRS: tuple[str, ...] = ("~", "/workspace", "/tmp")
"""Where recent ``*.log`` files are looked for, to a bounded depth."""


@dataclass(frozen=True)
class LogSearch:
    """Where to look for an item's logs beyond the files a run has open.

    Globs and directories starting with ``~`` are expanded on the machine the log is on.
    """

    globs: tuple[str, ...] = DEFAULT_LOG_GLOBS
    """Configured globs; the newest matches of each come first."""
    recent_dirs: tuple[str, ...] = DEFAULT_RECENT_DIRS
    recent_days: float = 3.0
    """How old a "recent" ``*.log`` may be."""
    depth: int = 3
    """How deep below each recent directory to look."""
    limit: int = 20
    """At most this many recent logs, and this many matches per glob."""
    scan_limit: int = 2000
    """At most this many files are looked at per glob or directory: never a full-disk walk."""

    def with_globs(self, globs: Sequence[str] | None) -> LogSearch:
        """This search with ``globs`` instead of the configured ones, when given."""
        if globs is None:
            return self
        return LogSearch(
            tuple(globs),
            self.recent_dirs,
            self.recent_days,
            self.depth,
            self.limit,
            self.scan_limit,
        )


NO_LOG_SEARCH = LogSearch(globs=(), recent_dirs=())
"""Looks nowhere: only the files a run has open (a provider built without a search)."""


def describe_size(size: int) -> str:
    """``14.2 MB``: bytes in decimal units."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def describe_age(seconds: float) -> str:
    """``2 min ago``: how long ago, coarsely."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return "just now" if seconds < 5 else f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def found_log(
    path: str,
    how: str,
    *,
    target: str | None,
    size: int | None,
    modified: float | None,
    now: float,
) -> LogLocation:
    """A log found by a glob or by age: ``found`` is ``how · modified 2 min ago · 14.2 MB``."""
    parts = [how]
    if modified is not None:
        parts.append(f"modified {describe_age(now - modified)}")
    if size is not None:
        parts.append(describe_size(size))
    return LogLocation(path, target=target, found=" · ".join(parts), size=size, modified=modified)


@dataclass(frozen=True)
class FoundFile:
    """A file a :class:`LogSearch` came upon, before ranking."""

    path: str
    modified: float
    size: int
    glob: int | None = None
    """The index of the glob it matches; ``None`` for a recent log found by age."""


def rank_logs(
    files: Sequence[FoundFile],
    search: LogSearch,
    *,
    target: str | None,
    now: float,
    known: Sequence[LogLocation] = (),
) -> list[LogLocation]:
    """``known`` first, then each glob's newest matches in the globs' order, then the newest
    recent logs; each path once, ``search.limit`` per glob and for the recent ones."""
    shown = {location.path for location in known}
    ranked = list(known)
    newest = sorted(files, key=lambda f: (-f.modified, f.path))
    for index, glob in enumerate(search.globs):
        matches = [f for f in newest if f.glob == index and f.path not in shown]
        for found in matches[: search.limit]:
            shown.add(found.path)
            ranked.append(
                found_log(
                    found.path,
                    f"matches {glob}",
                    target=target,
                    size=found.size,
                    modified=found.modified,
                    now=now,
                )
            )
    oldest = now - search.recent_days * 86400
    count = 0
    for found in newest:
        if found.glob is not None or found.path in shown or found.modified < oldest:
            continue
        if count == search.limit:
            break
        count += 1
        shown.add(found.path)
        ranked.append(
            found_log(
                found.path,
                "recent *.log",
                target=target,
                size=found.size,
                modified=found.modified,
                now=now,
            )
        )
    return ranked


@runtime_checkable
class HasLogs(Protocol):
    """A provider that can say where an item's logs are (blocking, or a coroutine for
    providers whose calls are coroutines)."""

    def log_locations(self, instance: Instance) -> Any:
        """The item's log files, likeliest first: ``list[LogLocation]``, or a coroutine
        giving one. Raises :class:`ProviderError` (with :class:`NotFoundError` when the item
        is gone)."""
        ...


@runtime_checkable
class HasIdentity(Protocol):
    """A provider that can say which account, profile, regions and endpoint it shows."""

    def identity(self) -> str | None:
        """One line such as ``profile ml · account 123456789012 · us-east-1``; cached, blocks."""
        ...


@runtime_checkable
class HasSpotRequests(Protocol):
    """A provider whose instances may belong to spot requests."""

    def spot_request(self, instance: Instance) -> SpotRequest | None:
        """The request behind ``instance``, looked up now; ``None`` if it has none."""
        ...

    def cancel_spot_request(self, instance: Instance, request_id: str) -> str:
        """Cancel the request; returns its state right after (e.g. ``cancelled``)."""
        ...


@runtime_checkable
class AsyncProvider(Protocol):
    """A source of machines whose calls are coroutines, run on the app's loop (e.g. over SSH).

    :meth:`actions` and :meth:`refusal` are quick and synchronous, as in :class:`Provider`.
    """

    @property
    def name(self) -> str:
        """Unique name shown in the UI."""
        ...

    async def list_instances(self) -> list[Instance]:
        """Every item, freshly described. Raises :class:`ProviderError`."""
        ...

    async def describe(self, instance: Instance) -> Instance:
        """The current state of one item. Raises :class:`NotFoundError` if gone."""
        ...

    def actions(self, instance: Instance) -> frozenset[Action]:
        """The actions this kind of item takes at all."""
        ...

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Why ``action`` cannot be done to ``instance`` as it is now, or ``None``; quick."""
        ...

    async def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Do it; returns the state the provider reports right after."""
        ...


AnyProvider = Provider | AsyncProvider
"""What the fleet service accepts: blocking providers and coroutine ones alike."""


DEFAULT_CHECKPOINT_DIRS: tuple[str, ...] = (
    "~/train/checkpoints",
    "~/checkpoints",
    "/workspace/checkpoints",
    "/workspace/*/checkpoints",
    "~/*/checkpoints",
)
"""Where training scripts on ML machines commonly save their checkpoints."""
RUN_CHECKPOINTS = "checkpoints"
"""The folder, in a run's own working directory, looked at before the configured ones."""


@dataclass(frozen=True)
class CheckpointLocation:
    """A directory of checkpoints on an item's machine, and how it was found."""

    path: str
    """A path on the item's machine; raw, possibly hostile text: escape it to show it."""
    target: str | None = None
    """``user@host:port`` when the directory is on another machine (reached over SSH)."""
    found: str = ""
    """One line, e.g. ``the run's working directory · modified 2 min ago``."""
    modified: float | None = None
    """Seconds since the epoch by the clock of the machine it is on, when known."""

    @property
    def source(self) -> str:
        """What ``runctl-tui checkpoints`` takes: the path, or ``ssh://user@host:port/path``."""
        if self.target is None:
            return self.path
        return f"ssh://{self.target}{self.path if self.path.startswith('/') else '/' + self.path}"


@dataclass(frozen=True)
class FoundDir:
    """A directory a checkpoint search came upon, before ranking."""

    path: str
    modified: float
    glob: int | None = None
    """The index of the configured glob it matches; ``None`` for a run's own folder."""


def rank_checkpoint_dirs(
    found: Sequence[FoundDir],
    globs: Sequence[str],
    *,
    target: str | None,
    now: float,
    limit: int = 20,
) -> list[CheckpointLocation]:
    """A run's own folder first, then every configured directory newest-modified first; each
    path once, at most ``limit``."""
    own = [f for f in found if f.glob is None]
    rest = sorted((f for f in found if f.glob is not None), key=lambda f: (-f.modified, f.path))
    ranked: list[CheckpointLocation] = []
    shown: set[str] = set()
    for item in [*own, *rest]:
        if item.path in shown or len(ranked) == limit:
            continue
        shown.add(item.path)
        if item.glob is None:
            how = "the run's working directory"
        elif 0 <= item.glob < len(globs):
            how = f"matches {globs[item.glob]}"
        else:
            how = "configured"
        found_line = f"{how} · modified {describe_age(now - item.modified)}"
        ranked.append(CheckpointLocation(item.path, target, found_line, item.modified))
    return ranked


@runtime_checkable
class HasCheckpoints(Protocol):
    """A provider that can say where an item's checkpoints are (blocking, or a coroutine for
    providers whose calls are coroutines)."""

    def checkpoint_locations(self, instance: Instance) -> Any:
        """The item's checkpoint directories, likeliest first: ``list[CheckpointLocation]``,
        or a coroutine giving one. Raises :class:`ProviderError`."""
        ...
