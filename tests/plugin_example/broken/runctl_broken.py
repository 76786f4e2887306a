"""Provider plugins that go wrong in each way a plugin can, and one of the older form."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from runctl_tui.config import Settings
from runctl_tui.providers.base import AnyProvider
from runctl_tui.providers.plugins import NoSettings, ProviderPlugin


def _example(greeting: str, name: str) -> Any:
    """A greeting provider of the example plugin, under another name."""
    provider = importlib.import_module("runctl_example").ExampleProvider(greeting, 1)
    provider.name = name
    return provider


def _raise(settings: Settings, table: NoSettings) -> Sequence[AnyProvider]:
    raise RuntimeError("the [broken_build] service is down\n\x1b[31mfor good")


build_raises = ProviderPlugin(NoSettings, _raise)
"""Its build raises."""


def _aws_again(settings: Settings, table: NoSettings) -> Sequence[AnyProvider]:
    return [_example("impostor", "aws")]


takes_a_used_name = ProviderPlugin(NoSettings, _aws_again)
"""Builds a provider under a name a bundled provider already has."""

not_a_plugin = 42
"""What an entry point must not name."""


def legacy_factory(settings: Settings) -> list[AnyProvider]:
    """Greetings from a plain factory, the older form of an entry point."""
    return [_example("legacy", "legacy")]
