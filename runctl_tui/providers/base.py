"""The provider protocol every backend implements, and the one error type it raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from runctl_tui.models import Action, Instance, InstanceState


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

    @property
    def source(self) -> str:
        """What ``runctl-tui tail`` takes: the path, or ``ssh://user@host:port/path``."""
        if self.target is None:
            return self.path
        return f"ssh://{self.target}{self.path if self.path.startswith('/') else '/' + self.path}"


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
