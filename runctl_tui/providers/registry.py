"""Builds the providers of every plugin registered under the ``runctl.providers`` group.

A plugin that cannot be imported, whose settings model rejects its table, whose build
raises, or whose provider takes a name already in use is skipped: an
:class:`~runctl_tui.providers.plugins.UnavailableProvider` takes its place, so the fleet shows
a failing status line saying why, and the log has the traceback.

The bundled providers register the same way; their plugin objects below import nothing heavy:
each provider module (and its SDK, later still) is imported by ``build``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from typing import Any

from pydantic import BaseModel, ValidationError

from runctl_tui.config import (
    AwsSettings,
    LocalSettings,
    RunPodSettings,
    Settings,
    SshSettings,
)
from runctl_tui.providers.base import AnyProvider, AsyncProvider, Provider
from runctl_tui.providers.plugins import (
    GROUP,
    PluginLoadError,
    ProviderFactory,
    ProviderPlugin,
    UnavailableProvider,
    load_plugin,
    plugin_entries,
)
from runctl_tui.text import one_line

log = logging.getLogger(__name__)

__all__ = ["AWS", "GROUP", "LOCAL", "RUNPOD", "SSH", "ProviderFactory", "load_providers"]


def _build_aws(settings: Settings, _table: AwsSettings) -> Sequence[AnyProvider]:
    from runctl_tui.providers import aws

    return aws.from_settings(settings)


def _build_local(settings: Settings, _table: LocalSettings) -> Sequence[AnyProvider]:
    from runctl_tui.providers import local

    return local.from_settings(settings)


def _build_runpod(settings: Settings, _table: RunPodSettings) -> Sequence[AnyProvider]:
    from runctl_tui.providers import runpod

    return runpod.from_settings(settings)


def _build_ssh(settings: Settings, _table: SshSettings) -> Sequence[AnyProvider]:
    from runctl_tui.providers import ssh_hosts

    return ssh_hosts.from_settings(settings)


AWS = ProviderPlugin(AwsSettings, _build_aws, "AWS EC2 instances, on-demand and spot")
"""The ``[aws]`` table's provider."""
LOCAL = ProviderPlugin(LocalSettings, _build_local, "this machine and its training runs")
"""The ``[local]`` table's provider."""
RUNPOD = ProviderPlugin(RunPodSettings, _build_runpod, "RunPod pods")
"""The ``[runpod]`` table's provider."""
SSH = ProviderPlugin(SshSettings, _build_ssh, "machines reached over SSH")
"""The ``[ssh]`` table's provider."""


class _Skipped(Exception):
    """A plugin that cannot be built: ``str()`` is one line, ``hint`` how to fix it."""

    def __init__(self, problem: str, hint: str, configured: bool = True) -> None:
        super().__init__(problem)
        self.hint = hint
        self.configured = configured


def _table(settings: Settings, entry: EntryPoint, plugin: ProviderPlugin[Any]) -> BaseModel:
    """The plugin's validated table: a field of the settings, or a plugin table."""
    name = entry.name
    model: type[BaseModel] = plugin.settings_model
    if name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, model):
            return value
    raw = settings.plugin_table(name)
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        if raw is None and all(e["type"] == "missing" for e in exc.errors()):
            keys = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise _Skipped(
                "not configured",
                f"add a [{name}] table to the config with {keys}",
                configured=False,
            ) from None
        where = ".".join(str(p) for p in (name, *first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise _Skipped(
            f"plugin failed to load: its settings model rejects key {where!r}: {message}",
            f"fix the [{name}] table in the config",
        ) from None


def _build(settings: Settings, entry: EntryPoint) -> list[AnyProvider]:
    """The providers of one plugin; raises :class:`_Skipped` saying why there are none."""
    try:
        plugin = load_plugin(entry)
    except PluginLoadError as exc:
        log.warning("provider plugin %s failed to load", entry.name, exc_info=exc.__cause__)
        raise _Skipped(
            f"plugin failed to load: {exc}",
            f"reinstall or remove the package that registers {entry.name!r} under {GROUP}",
        ) from None
    table = _table(settings, entry, plugin)
    try:
        built = list(plugin.build(settings, table))
    except Exception as exc:
        log.exception("provider plugin %s failed to build its providers", entry.name)
        raise _Skipped(
            f"plugin failed to load: {type(exc).__name__}: {one_line(exc, 300)}",
            "see runctl-tui.log for the traceback",
        ) from None
    for provider in built:
        if not isinstance(provider, Provider | AsyncProvider) or not isinstance(
            getattr(provider, "name", None), str
        ):
            raise _Skipped(
                f"plugin failed to load: it built a {type(provider).__name__}, which is no "
                "provider (a name and list_instances, describe, actions, refusal, perform)",
                "see the README, Writing a provider",
            )
    return built


def _free(name: str, taken: set[str]) -> str:
    """``name``, or ``name#2``... if it is taken, so that a stand-in gets a status line."""
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}#{number}"
    return candidate


def load_providers(settings: Settings) -> tuple[list[AnyProvider], list[str]]:
    """Every configured provider, a stand-in for each plugin that could not be built.

    The second item holds problems no status line shows; a broken plugin has its own line,
    so it is not repeated there.
    """
    providers: list[AnyProvider] = []
    taken: set[str] = set()
    owner: dict[str, str] = {}
    for entry in plugin_entries():
        try:
            built = _build(settings, entry)
        except _Skipped as exc:
            log.warning("provider plugin %s skipped: %s", entry.name, exc)
            name = _free(entry.name, taken)
            providers.append(UnavailableProvider(name, str(exc), exc.hint, exc.configured))
            taken.add(name)
            owner[name] = entry.name
            continue
        for provider in built:
            if provider.name in taken:
                problem = (
                    f"plugin failed to load: its provider name {provider.name!r} is already "
                    f"used by plugin {owner[provider.name]!r}"
                )
                log.warning("provider plugin %s skipped: %s", entry.name, problem)
                name = _free(entry.name, taken)
                providers.append(
                    UnavailableProvider(
                        name, problem, "uninstall one of the two plugins or rename its provider"
                    )
                )
                taken.add(name)
                owner[name] = entry.name
                continue
            providers.append(provider)
            taken.add(provider.name)
            owner[provider.name] = entry.name
    return providers, []
