"""A complete runctl-tui provider plugin: greetings that can be stopped and started.

Registered in its package's ``pyproject.toml`` as::

    [project.entry-points."runctl.providers"]
    example = "runctl_example:plugin"

and configured by an ``[example]`` table (``greeting`` is required)::

    [example]
    greeting = "hello"
    count = 2
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from runctl_tui.config import Settings
from runctl_tui.models import Action, Instance, InstanceState, OtherDetails
from runctl_tui.providers.base import NotFoundError, ProviderError
from runctl_tui.providers.plugins import ProviderPlugin


class ExampleSettings(BaseModel):
    """The ``[example]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    greeting: str
    """What every item is called."""
    count: int = Field(default=1, ge=0, le=100)
    """How many items to list."""


class ExampleProvider:
    """Lists ``count`` greetings; each one can be stopped and started, in memory only."""

    name = "example"

    def __init__(self, greeting: str, count: int) -> None:
        self.greeting = greeting
        self.states = {f"greeting-{n}": InstanceState.RUNNING for n in range(count)}
        self.started = datetime.now(UTC)

    def _item(self, item_id: str) -> Instance:
        state = self.states.get(item_id)
        if state is None:
            raise NotFoundError(self.name, f"{item_id} is gone")
        return Instance(
            provider=self.name,
            id=item_id,
            name=self.greeting,
            location="here",
            state=state,
            launched_at=self.started if state is InstanceState.RUNNING else None,
            details=OtherDetails(type_label="greeting", rows=(("Greeting", self.greeting),)),
        )

    def list_instances(self) -> list[Instance]:
        """Every greeting, as it is now."""
        return [self._item(item_id) for item_id in sorted(self.states)]

    def describe(self, instance: Instance) -> Instance:
        """One greeting, as it is now."""
        return self._item(instance.id)

    def actions(self, instance: Instance) -> frozenset[Action]:
        """A greeting can be stopped and started (``s`` and ``u``)."""
        return frozenset({Action.STOP, Action.START})

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Stop only what runs, start only what is stopped."""
        if action is Action.STOP and instance.state is not InstanceState.RUNNING:
            return f"{instance.id} is {instance.state}, not running"
        if action is Action.START and instance.state is not InstanceState.STOPPED:
            return f"{instance.id} is {instance.state}, not stopped"
        return None

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Stop or start it; returns its state right after."""
        if instance.id not in self.states:
            raise NotFoundError(self.name, f"{instance.id} is gone")
        if action is Action.STOP:
            self.states[instance.id] = InstanceState.STOPPED
        elif action is Action.START:
            self.states[instance.id] = InstanceState.RUNNING
        else:
            raise ProviderError(self.name, f"{action} is not something a greeting does")
        return self.states[instance.id]


def build(settings: Settings, table: ExampleSettings) -> Sequence[ExampleProvider]:
    """The providers for the validated ``[example]`` table; no I/O here."""
    return [ExampleProvider(table.greeting, table.count)]


plugin = ProviderPlugin(ExampleSettings, build, "greetings, to show how a provider is written")
"""What the ``example`` entry point names."""
