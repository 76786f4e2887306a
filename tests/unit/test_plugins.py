"""Provider plugins: their tables are validated by their own models, their failures are lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from runctl_tui.audit import Journal
from runctl_tui.config import ConfigError, Settings, known_tables, load_settings
from runctl_tui.models import Action, InstanceState, OtherDetails
from runctl_tui.providers import plugins, registry
from runctl_tui.providers.base import NotConfiguredError, NotFoundError, Provider, ProviderError
from runctl_tui.providers.plugins import ProviderPlugin, UnavailableProvider
from runctl_tui.services.fleet import Fleet
from tests.plugin_example import BROKEN, INSTALLED, installed

BUILTIN = ["aws", "local", "runpod", "ssh"]


@pytest.fixture
def example_plugin() -> Iterator[None]:
    """The README's example plugin, installed for this test only."""
    with installed(INSTALLED):
        yield


@pytest.fixture
def broken_plugins() -> Iterator[None]:
    """The example plugin and the broken ones, installed for this test only."""
    with installed(INSTALLED, BROKEN):
        yield


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def built(settings: Settings) -> dict[str, Any]:
    providers, warnings = registry.load_providers(settings)
    assert warnings == []
    return {provider.name: provider for provider in providers}


def failure(provider: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.list_instances()
    return caught.value


# Config ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("example_plugin")
def test_a_plugin_table_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, 'poll_seconds = 30\n\n[example]\ngreeting = "hello"\ncount = 2\n')

    settings = load_settings(path)

    assert settings.poll_seconds == 30.0
    assert settings.plugin_table("example") == {"greeting": "hello", "count": 2}
    assert "example" in known_tables()


@pytest.mark.usefixtures("example_plugin")
def test_a_bad_value_in_a_plugin_table_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[example]\ngreeting = "hello"\n\ncount = "many"\n')

    message = config_error(path)

    assert message.startswith(f"{path}:4: key 'example.count': ")
    assert "integer" in message


@pytest.mark.usefixtures("example_plugin")
def test_a_missing_required_key_names_the_table(tmp_path: Path) -> None:
    path = write(tmp_path, "readonly = true\n[example]\ncount = 3\n")

    assert config_error(path) == f"{path}:2: key 'example.greeting': Field required"


@pytest.mark.usefixtures("example_plugin")
def test_a_bound_of_the_plugin_model_is_enforced(tmp_path: Path) -> None:
    path = write(tmp_path, '[example]\ngreeting = "hello"\ncount = 101\n')

    message = config_error(path)

    assert message.startswith(f"{path}:3: key 'example.count': ")
    assert "less than or equal to 100" in message


@pytest.mark.usefixtures("example_plugin")
def test_an_unknown_key_in_a_plugin_table_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[example]\ngreeting = "hello"\ncuont = 2\n')

    assert config_error(path) == f"{path}:3: unknown key 'example.cuont' (did you mean 'count'?)"


@pytest.mark.usefixtures("example_plugin")
def test_a_plugin_table_written_as_an_array_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'poll_seconds = 30\n[[example]]\ngreeting = "hello"\n')

    assert config_error(path) == (
        f"{path}:2: key 'example': is an array of tables ([[example]]); write [example] once"
    )


@pytest.mark.usefixtures("example_plugin")
def test_environment_overrides_a_plugin_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[example]\ngreeting = "hello"\ncount = 2\n')
    monkeypatch.setenv("RUNCTL_TUI_EXAMPLE__COUNT", "5")

    assert load_settings(path).plugin_table("example") == {"greeting": "hello", "count": "5"}
    assert built(load_settings(path))["example"].list_instances()[4].id == "greeting-4"


@pytest.mark.usefixtures("example_plugin")
def test_a_plugin_table_from_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNCTL_TUI_EXAMPLE__GREETING", "from the environment")

    settings = load_settings()

    assert settings.plugin_table("example") == {"greeting": "from the environment"}


@pytest.mark.usefixtures("example_plugin")
def test_a_bad_plugin_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[example]\ngreeting = "hello"\ncount = 2\n')
    monkeypatch.setenv("RUNCTL_TUI_EXAMPLE__COUNT", "lots")

    message = config_error(path)

    assert message.startswith("environment variable RUNCTL_TUI_EXAMPLE__COUNT: key 'example.count'")


def test_without_the_plugin_its_table_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, 'readonly = true\n\n[example]\ngreeting = "hello"\n')

    assert config_error(path) == (
        f"{path}:3: unknown table 'example'; "
        "the tables are: aws, checkpoints, costs, keymap, local, logs, runpod, ssh"
    )


@pytest.mark.usefixtures("example_plugin")
def test_an_unknown_table_lists_the_plugin_tables_too(tmp_path: Path) -> None:
    path = write(tmp_path, '[exmaple]\ngreeting = "hello"\n')

    assert config_error(path) == (
        f"{path}:1: unknown table 'exmaple' (did you mean 'example'?); "
        "the tables are: aws, checkpoints, costs, example, keymap, local, logs, runpod, ssh"
    )


@pytest.mark.usefixtures("example_plugin")
def test_a_config_without_plugin_tables_imports_no_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_metadata(*args: object) -> object:
        raise AssertionError("plugin metadata read for a config that needs none")

    monkeypatch.setattr("runctl_tui.config.plugin_tables", no_metadata)

    load_settings(write(tmp_path, "poll_seconds = 30\n[aws]\nregions = []\n"))

    assert "runctl_example" not in sys.modules


@pytest.mark.usefixtures("broken_plugins")
def test_the_table_of_a_plugin_that_cannot_be_imported_is_no_config_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[broken_import]\nanything = 1\n")

    settings = load_settings(path)

    assert settings.plugin_table("broken_import") == {"anything": 1}
    # Its status line says what is wrong instead.
    stand_in = built(settings)["broken_import"]
    assert failure(stand_in).message.startswith("plugin failed to load: cannot import ")


# Providers ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("example_plugin")
def test_the_plugin_provider_appears_after_the_bundled_ones(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[example]\ngreeting = "hello"\ncount = 2\n'))

    providers = built(settings)

    # The test environment turns local and runpod off, and lists no SSH host.
    assert list(providers) == ["aws", "example"]
    example = providers["example"]
    assert isinstance(example, Provider)
    items = example.list_instances()
    assert [(i.provider, i.id, i.name) for i in items] == [
        ("example", "greeting-0", "hello"),
        ("example", "greeting-1", "hello"),
    ]
    assert isinstance(items[0].details, OtherDetails)
    assert items[0].details.facts() == [("Greeting", "hello")]


@pytest.mark.usefixtures("example_plugin")
def test_the_example_provider_stops_and_starts() -> None:
    settings = Settings().with_plugin_tables({"example": {"greeting": "hi"}})
    example = built(settings)["example"]
    (item,) = example.list_instances()

    assert example.actions(item) == frozenset({Action.STOP, Action.START})
    assert example.refusal(Action.START, item) == "greeting-0 is running, not stopped"
    assert example.perform(Action.STOP, item) is InstanceState.STOPPED
    assert example.describe(item).state is InstanceState.STOPPED


@pytest.mark.usefixtures("example_plugin")
def test_the_plugin_shows_in_a_fleet_poll(tmp_path: Path) -> None:
    settings = Settings().with_plugin_tables({"example": {"greeting": "hi"}})
    providers, _ = registry.load_providers(settings)
    fleet = Fleet(providers, journal=Journal(tmp_path / "journal.jsonl"))

    snapshot = fleet.poll(deadline=30)

    assert [i.key for i in snapshot.instances if i.provider == "example"] == ["example:greeting-0"]
    (status,) = [s for s in snapshot.statuses if s.provider == "example"]
    assert status.ok


@pytest.mark.usefixtures("example_plugin")
def test_a_plugin_whose_required_table_is_missing_is_not_configured() -> None:
    stand_in = built(Settings())["example"]

    error = failure(stand_in)

    assert isinstance(error, NotConfiguredError)
    assert error.message == "not configured"
    assert error.hint == "add a [example] table to the config with greeting"


@pytest.mark.usefixtures("example_plugin")
def test_a_table_the_model_rejects_gives_a_failing_status_line() -> None:
    # Settings made in code are not checked by load_settings: building the provider checks.
    settings = Settings().with_plugin_tables({"example": {"greeting": "hi", "count": "x"}})

    error = failure(built(settings)["example"])

    assert not isinstance(error, NotConfiguredError)
    assert error.message.startswith(
        "plugin failed to load: its settings model rejects key 'example.count': "
    )
    assert error.hint == "fix the [example] table in the config"


@pytest.mark.usefixtures("broken_plugins")
def test_broken_plugins_become_failing_status_lines_and_the_rest_load() -> None:
    settings = Settings().with_plugin_tables({"example": {"greeting": "hi"}})

    providers = built(settings)

    assert {"example", "legacy"} <= set(providers)
    assert isinstance(providers["example"], Provider)
    assert providers["legacy"].list_instances()[0].name == "legacy"
    for name in ("broken_import", "broken_build", "broken_name", "broken_object"):
        assert isinstance(providers[name], UnavailableProvider), name
    messages = {name: failure(providers[name]) for name in providers if name.startswith("broken")}
    assert messages["broken_import"].message == (
        "plugin failed to load: cannot import runctl_broken_not_installed:plugin: "
        "ModuleNotFoundError: No module named 'runctl_broken_not_installed'"
    )
    assert "reinstall or remove" in (messages["broken_import"].hint or "")
    assert messages["broken_build"].message == (
        "plugin failed to load: RuntimeError: the [broken_build] service is down␤␛[31mfor good"
    )
    assert messages["broken_name"].message == (
        "plugin failed to load: its provider name 'aws' is already used by plugin 'aws'"
    )
    assert messages["broken_object"].message == (
        "plugin failed to load: runctl_broken:not_a_plugin is a int, not a ProviderPlugin or a "
        "factory"
    )


@pytest.mark.usefixtures("broken_plugins")
def test_a_broken_plugin_becomes_a_red_line_in_the_fleet(tmp_path: Path) -> None:
    providers, _ = registry.load_providers(Settings())
    fleet = Fleet(providers, journal=Journal(tmp_path / "journal.jsonl"))

    snapshot = fleet.poll(deadline=30)

    statuses = {status.provider: status for status in snapshot.statuses}
    broken = statuses["broken_build"]
    assert not broken.ok
    assert broken.configured
    assert broken.error == (
        "plugin failed to load: RuntimeError: the [broken_build] service is down␤␛[31mfor good"
    )
    assert broken.hint == "see runctl-tui.log for the traceback"
    assert not snapshot.all_ok


def test_a_stand_in_takes_no_action() -> None:
    stand_in = UnavailableProvider("gone", "plugin failed to load: boom", "reinstall it")
    settings = Settings().with_plugin_tables({"example": {"greeting": "hi"}})
    with installed(INSTALLED):
        (item,) = built(settings)["example"].list_instances()

    assert isinstance(stand_in, Provider)
    assert stand_in.actions(item) == frozenset()
    assert stand_in.refusal(Action.STOP, item) == "gone: plugin failed to load: boom"
    with pytest.raises(NotFoundError):
        stand_in.describe(item)
    with pytest.raises(ProviderError, match="boom"):
        stand_in.perform(Action.STOP, item)


# Laziness -------------------------------------------------------------------------------------


def test_bundled_plugin_objects_import_no_provider_module() -> None:
    code = (
        "import json, sys\n"
        "from runctl_tui.providers.plugins import load_plugin, plugin_entries\n"
        "plugins = {e.name: load_plugin(e) for e in plugin_entries()}\n"
        "heavy = ['boto3', 'botocore', 'asyncssh', 'runpod', 'psutil']\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "    or m in {'runctl_tui.providers.aws', 'runctl_tui.providers.runpod',\n"
        "             'runctl_tui.providers.ssh_hosts'})\n"
        "print(json.dumps([sorted(plugins), loaded]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    names, loaded = json.loads(done.stdout)
    assert set(BUILTIN) <= set(names)
    assert loaded == []


def test_bundled_plugins_come_first_in_name_order() -> None:
    names = [entry.name for entry in plugins.plugin_entries()]

    assert names[:4] == BUILTIN


def test_a_model_that_ignores_unknown_keys_still_has_them_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class LooseSettings(BaseModel):
        """A plugin model without ``extra="forbid"``."""

        colour: str = "blue"
        size: int = Field(default=1, alias="Size")

    entry = EntryPoint(name="loose", value="somewhere:plugin", group=plugins.GROUP)
    plugin = ProviderPlugin(LooseSettings, lambda settings, table: [])
    monkeypatch.setattr("runctl_tui.config.plugin_tables", lambda builtin: {"loose": entry})
    monkeypatch.setattr("runctl_tui.config.load_plugin", lambda found: plugin)
    path = write(tmp_path, "[loose]\ncolour = 'red'\nSize = 2\ncolor = 'green'\n")

    assert config_error(path) == f"{path}:4: unknown key 'loose.color' (did you mean 'colour'?)"
