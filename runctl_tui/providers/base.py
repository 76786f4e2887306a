"""The provider protocol every backend implements, and the one error type it raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
class Capabilities:
    """Which actions a provider supports at all."""

    stop: bool = True
    start: bool = True
    terminate: bool = True

    def allows(self, action: Action) -> bool:
        """Whether ``action`` is supported."""
        return bool(getattr(self, action.value))


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
    """A source of machines. Calls block: run them off the UI thread."""

    @property
    def name(self) -> str:
        """Unique name shown in the UI, e.g. ``aws``."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """Actions this provider can perform."""
        ...

    def list_instances(self) -> list[Instance]:
        """Every instance, freshly described. Raises :class:`ProviderError`."""
        ...

    def describe(self, instance: Instance) -> Instance:
        """The current state of one instance. Raises :class:`NotFoundError` if gone."""
        ...

    def stop(self, instance: Instance) -> InstanceState:
        """Stop; returns the state the provider reports right after."""
        ...

    def start(self, instance: Instance) -> InstanceState:
        """Start a stopped instance; returns the state reported right after."""
        ...

    def terminate(self, instance: Instance) -> InstanceState:
        """Terminate; returns the state reported right after."""
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
    """A source of machines whose calls are coroutines, run on the app's loop (e.g. over SSH)."""

    @property
    def name(self) -> str:
        """Unique name shown in the UI."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """Actions this provider can perform."""
        ...

    async def list_instances(self) -> list[Instance]:
        """Every instance, freshly described. Raises :class:`ProviderError`."""
        ...

    async def describe(self, instance: Instance) -> Instance:
        """The current state of one instance. Raises :class:`NotFoundError` if gone."""
        ...


AnyProvider = Provider | AsyncProvider
"""What the fleet service accepts: blocking providers and coroutine ones alike."""
