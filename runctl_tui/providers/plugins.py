"""Provider plugins: what a package registers under the ``runctl.providers`` entry-point group.

The entry point's name is the plugin's config table: ``example = "runctl_example:plugin"``
claims ``[example]``. Finding the plugins reads installed metadata only; a plugin's module is
imported when its table is validated or its providers are built, never before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from runctl_tui.models import Action, Instance, InstanceState
from runctl_tui.providers.base import (
    AnyProvider,
    NotConfiguredError,
    NotFoundError,
    ProviderError,
)
from runctl_tui.text import one_line

if TYPE_CHECKING:
    from runctl_tui.config import Settings

log = logging.getLogger(__name__)

GROUP = "runctl.providers"
"""The entry-point group every provider plugin registers under."""

BUILTIN_PREFIX = "runctl_tui."
"""Entry points into this package are the bundled providers: they come first, in name order."""

TableT = TypeVar("TableT", bound=BaseModel)


class NoSettings(BaseModel):
    """The settings model of a plugin that takes no keys: its table, if written, stays empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True)
class ProviderPlugin(Generic[TableT]):
    """What a ``runctl.providers`` entry point names: a settings model and a provider builder."""

    settings_model: type[TableT]
    """Validates the plugin's config table (``[<entry-point name>]``); give it
    ``extra="forbid"`` so that nested tables name their unknown keys too."""
    build: Callable[[Settings, TableT], Sequence[AnyProvider]]
    """Makes the providers from the whole settings and the validated table; no I/O here."""
    description: str = ""
    """One line for humans, e.g. ``AWS EC2 instances``."""


ProviderFactory = Callable[["Settings"], Sequence[AnyProvider]]
"""The older form of an entry point: a plain function of the settings."""


def _legacy(factory: ProviderFactory) -> ProviderPlugin[NoSettings]:
    """A plain factory as a plugin without settings."""

    def build(settings: Settings, _table: NoSettings) -> Sequence[AnyProvider]:
        return factory(settings)

    doc = (getattr(factory, "__doc__", None) or "").strip()
    return ProviderPlugin(NoSettings, build, doc.splitlines()[0] if doc else "")


class PluginLoadError(Exception):
    """A plugin's entry point could not be turned into a :class:`ProviderPlugin`."""


def is_builtin(entry: EntryPoint) -> bool:
    """Whether ``entry`` is one of the providers bundled with runctl-tui."""
    return entry.value.startswith(BUILTIN_PREFIX)


def plugin_entries() -> list[EntryPoint]:
    """Every registered plugin, bundled ones first, then by name; reads metadata only."""
    found = entry_points(group=GROUP)
    return sorted(found, key=lambda entry: (not is_builtin(entry), entry.name))


def plugin_tables(builtin: Sequence[str] = ()) -> dict[str, EntryPoint]:
    """Table name -> the entry point claiming it; names in ``builtin`` and repeats skipped."""
    claimed: dict[str, EntryPoint] = {}
    for entry in plugin_entries():
        if entry.name not in builtin and entry.name not in claimed:
            claimed[entry.name] = entry
    return claimed


def load_plugin(entry: EntryPoint) -> ProviderPlugin[Any]:
    """Import the object ``entry`` names; raises :class:`PluginLoadError` with one line."""
    try:
        target = entry.load()
    except Exception as exc:
        raise PluginLoadError(
            f"cannot import {entry.value}: {type(exc).__name__}: {one_line(exc, 300)}"
        ) from exc
    if isinstance(target, ProviderPlugin):
        return target
    if callable(target):
        return _legacy(target)
    raise PluginLoadError(
        f"{entry.value} is a {type(target).__name__}, not a ProviderPlugin or a factory"
    )


@dataclass
class UnavailableProvider:
    """Stands in for a plugin that could not be loaded, so that its status line says why.

    Every poll fails with the same one-line error and hint; it has no items and takes no
    action.
    """

    provider_name: str
    problem: str
    """One line: what went wrong, e.g. ``plugin failed to load: cannot import ...``."""
    hint: str | None = None
    configured: bool = True
    """``False`` for a plugin that was never set up: shown as ``not configured``."""

    @property
    def name(self) -> str:
        """The plugin's name (its entry point and config table)."""
        return self.provider_name

    def _error(self) -> ProviderError:
        kind = ProviderError if self.configured else NotConfiguredError
        return kind(self.provider_name, self.problem, hint=self.hint)

    def list_instances(self) -> list[Instance]:
        """Never succeeds: raises the error that explains why the plugin is missing."""
        raise self._error()

    def describe(self, instance: Instance) -> Instance:
        """No item belongs to a plugin that did not load."""
        raise NotFoundError(self.provider_name, self.problem, hint=self.hint)

    def actions(self, instance: Instance) -> frozenset[Action]:
        """Nothing can be done through it."""
        return frozenset()

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Always refused: the plugin is not there to do it."""
        return f"{self.provider_name}: {self.problem}"

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Never acts."""
        raise self._error()
