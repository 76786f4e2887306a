"""Provider plugins come from entry points; a broken one warns and the rest carry on."""

from __future__ import annotations

from importlib.metadata import EntryPoint, EntryPoints, entry_points

import pytest

from runctl_tui.config import (
    AwsSettings,
    LocalSettings,
    RunPodSettings,
    Settings,
    SshHostSettings,
    SshSettings,
)
from runctl_tui.providers import registry
from runctl_tui.providers.aws import AwsProvider
from runctl_tui.providers.base import Provider


def test_aws_is_registered_and_built_from_settings() -> None:
    settings = Settings(
        protect_tag="team:keep",
        aws=AwsSettings(regions=["eu-west-1"], profile="ml"),
        local=LocalSettings(enabled=False),
        runpod=RunPodSettings(enabled=False),
    )

    providers, warnings = registry.load_providers(settings)

    assert warnings == []
    (aws,) = providers
    assert isinstance(aws, AwsProvider)
    assert isinstance(aws, Provider)
    assert aws.name == "aws"
    assert aws.protect_tag == "team:keep"
    # Pure configuration, no I/O: the regions are taken as given.
    assert aws.regions() == ["eu-west-1"]


def test_disabled_aws_gives_no_provider() -> None:
    providers, warnings = registry.load_providers(
        Settings(
            aws=AwsSettings(enabled=False),
            local=LocalSettings(enabled=False),
            runpod=RunPodSettings(enabled=False),
        )
    )

    assert (providers, warnings) == ([], [])


def test_every_bundled_provider_is_registered() -> None:
    settings = Settings(ssh=SshSettings(hosts=[SshHostSettings(host="ml@gpu-box")]))

    providers, warnings = registry.load_providers(settings)

    assert warnings == []
    assert [p.name for p in providers] == ["aws", "local", "runpod", "ssh"]


def test_a_broken_plugin_warns_and_the_others_load(monkeypatch: pytest.MonkeyPatch) -> None:
    real = list(entry_points(group=registry.GROUP))
    broken = EntryPoint(
        name="broken", value="runctl_tui_no_such_module:factory", group=registry.GROUP
    )
    monkeypatch.setattr(
        registry, "entry_points", lambda group: EntryPoints([broken, *real]) if group else None
    )

    providers, warnings = registry.load_providers(Settings())

    assert [p.name for p in providers] == ["aws", "local", "runpod"]
    (warning,) = warnings
    assert warning.startswith("provider plugin 'broken' failed to load: ")
    assert "runctl_tui_no_such_module" in warning
