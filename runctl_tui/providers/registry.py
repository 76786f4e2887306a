"""Finds provider factories registered under the ``runctl.providers`` entry-point group."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from runctl_tui.config import Settings
from runctl_tui.providers.base import AnyProvider

log = logging.getLogger(__name__)

GROUP = "runctl.providers"
ProviderFactory = Callable[[Settings], Sequence[AnyProvider]]


def load_providers(settings: Settings) -> tuple[list[AnyProvider], list[str]]:
    """Every configured provider, and one warning per plugin that failed to load."""
    providers: list[AnyProvider] = []
    warnings: list[str] = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            factory: ProviderFactory = entry.load()
            providers.extend(factory(settings))
        except Exception as exc:
            log.exception("provider plugin %s failed to load", entry.name)
            warnings.append(f"provider plugin {entry.name!r} failed to load: {exc}")
    return providers, warnings
