"""Provider plugins come from entry points; a broken one gets a failing line, the rest load."""

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
from runctl_tui.providers import plugins, registry
from runctl_tui.providers.aws import AwsProvider
from runctl_tui.providers.base import Provider, ProviderError
from runctl_tui.providers.plugins import GROUP, UnavailableProvider


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
    assert not any(isinstance(p, UnavailableProvider) for p in providers)


def test_a_broken_plugin_gets_a_failing_line_and_the_others_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = list(entry_points(group=GROUP))
    broken = EntryPoint(name="broken", value="runctl_tui_no_such_module:factory", group=GROUP)
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: EntryPoints([broken, *real]) if group else None
    )

    providers, warnings = registry.load_providers(Settings())

    assert warnings == []
    assert [p.name for p in providers] == ["aws", "local", "runpod", "broken"]
    stand_in = providers[-1]
    assert isinstance(stand_in, UnavailableProvider)
    with pytest.raises(ProviderError) as caught:
        stand_in.list_instances()
    assert caught.value.message == (
        "plugin failed to load: cannot import runctl_tui_no_such_module:factory: "
        "ModuleNotFoundError: No module named 'runctl_tui_no_such_module'"
    )


def test_a_plain_factory_still_works_as_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = EntryPoint(name="aws", value="runctl_tui.providers.aws:from_settings", group=GROUP)
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: EntryPoints([legacy]) if group else None
    )

    providers, warnings = registry.load_providers(Settings(aws=AwsSettings(regions=["us-east-1"])))

    assert warnings == []
    (aws,) = providers
    assert isinstance(aws, AwsProvider)


def test_the_bundled_entry_points_name_plugin_objects() -> None:
    found = {entry.name: entry.load() for entry in entry_points(group=GROUP)}

    assert found["aws"] is registry.AWS
    assert found["local"] is registry.LOCAL
    assert found["runpod"] is registry.RUNPOD
    assert found["ssh"] is registry.SSH
    assert registry.AWS.settings_model is AwsSettings
