"""Config: defaults, the TOML file, environment overrides and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runctl_tui.config import (
    CONFIG_ENV,
    AwsSettings,
    ConfigError,
    Settings,
    config_path,
    default_config_path,
    default_config_text,
    load_settings,
)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_without_any_file() -> None:
    settings = load_settings()

    assert settings.poll_seconds == 10.0
    assert settings.readonly is False
    assert settings.protect_tag == "runctl:protect"
    assert settings.aws == AwsSettings(enabled=True, regions=[], profile=None)
    assert settings.keymap == {}


def test_default_path_is_under_the_user_config_dir(isolated_environment: Path) -> None:
    path = default_config_path()

    assert path.name == "config.toml"
    assert path.parent.name == "runctl-tui"
    assert path.is_relative_to(isolated_environment)
    assert config_path() == path


def test_valid_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
poll_seconds = 30
readonly = true
protect_tag = "team:keep"

[aws]
regions = ["us-east-1", "eu-west-1"]
profile = "ml"

[keymap]
stop-instance = "x"
""",
    )

    settings = load_settings(path)

    assert settings.poll_seconds == 30.0
    assert settings.readonly is True
    assert settings.protect_tag == "team:keep"
    assert settings.aws.regions == ["us-east-1", "eu-west-1"]
    assert settings.aws.profile == "ml"
    assert settings.keymap == {"stop-instance": "x"}


def test_the_default_file_is_read_when_present(isolated_environment: Path) -> None:
    default_config_path().parent.mkdir(parents=True)
    default_config_path().write_text("poll_seconds = 42\n", encoding="utf-8")

    assert load_settings().poll_seconds == 42.0


def test_shipped_default_file_validates_to_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, default_config_text())

    assert load_settings(path) == Settings()
    # It documents every top-level key it configures.
    for key in ("poll_seconds", "readonly", "protect_tag", "[aws]", "[keymap]"):
        assert key in default_config_text()


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "poll_seconds = 10\n[aws\nregions = []\n")

    message = config_error(path)

    assert message.startswith(f"{path}:2: invalid TOML: ")
    assert "column" in message


def test_malformed_value_on_a_later_line(tmp_path: Path) -> None:
    path = write(tmp_path, "poll_seconds = 10\n\nreadonly = flase\n")

    assert config_error(path).startswith(f"{path}:3: invalid TOML: ")


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, "readonly = false\npoll_secnds = 3\n")

    message = config_error(path)

    assert message.startswith(f"{path}:2: ")
    assert "'poll_secnds'" in message
    assert "did you mean 'poll_seconds'?" in message


def test_unknown_key_in_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'poll_seconds = 10\n\n[aws]\nprofile = "ml"\nregion = ["us-east-1"]\n')

    message = config_error(path)

    assert message.startswith(f"{path}:5: ")
    assert "'aws.region'" in message
    assert "did you mean 'regions'?" in message


def test_unknown_key_far_from_any_known_one_has_no_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "colour_scheme = 'dark'\n")

    message = config_error(path)

    assert message.startswith(f"{path}:1: ")
    assert "'colour_scheme'" in message
    assert "did you mean" not in message


def test_invalid_value_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'readonly = false\npoll_seconds = "fast"\n')

    message = config_error(path)

    assert message.startswith(f"{path}:2: ")
    assert "'poll_seconds'" in message
    assert "number" in message


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path, "poll_seconds = 0.5\n")

    message = config_error(path)

    assert message.startswith(f"{path}:1: ")
    assert "greater than or equal to 2" in message


@pytest.mark.parametrize("region", ["useast1", "US-EAST-1", "us-east", "eu_west_1"])
def test_invalid_region_names_key_and_line(tmp_path: Path, region: str) -> None:
    path = write(tmp_path, f'[aws]\nenabled = true\nregions = ["us-east-1", "{region}"]\n')

    message = config_error(path)

    assert message.startswith(f"{path}:3: ")
    assert "'aws.regions'" in message
    assert repr(region) in message


def test_region_list_over_several_lines_points_at_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[aws]\nregions = [\n  "us-east-1",\n  "useast1",\n]\n')

    assert config_error(path).startswith(f"{path}:2: ")


def test_all_cannot_be_combined_with_named_regions(tmp_path: Path) -> None:
    path = write(tmp_path, '[aws]\nregions = ["all", "us-east-1"]\n')

    message = config_error(path)

    assert message.startswith(f"{path}:2: ")
    assert '"all" cannot be combined' in message


@pytest.mark.parametrize(
    "regions", [["all"], ["us-east-1"], ["eu-west-1", "ap-southeast-2", "us-gov-west-1"], []]
)
def test_valid_region_lists(regions: list[str]) -> None:
    assert AwsSettings(regions=regions).regions == regions


def test_several_errors_are_counted_on_the_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'poll_seconds = "fast"\nreadonly = "maybe"\n')

    message = config_error(path)

    assert message.startswith(f"{path}:1: ")
    assert message.endswith("(+1 more)")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'poll_seconds = 20\n[aws]\nregions = ["us-east-1"]\nprofile = "file"\n')
    monkeypatch.setenv("RUNCTL_TUI_POLL_SECONDS", "45")
    monkeypatch.setenv("RUNCTL_TUI_AWS__PROFILE", "ml")

    settings = load_settings(path)

    assert settings.poll_seconds == 45.0
    assert settings.aws.profile == "ml"
    # A nested variable overrides one key and keeps the rest of the table.
    assert settings.aws.regions == ["us-east-1"]


def test_invalid_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNCTL_TUI_POLL_SECONDS", "fast")

    with pytest.raises(ConfigError, match=r"^environment variable RUNCTL_TUI_POLL_SECONDS: "):
        load_settings()


def test_invalid_environment_value_is_blamed_even_if_the_file_sets_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "poll_seconds = 20\n")
    monkeypatch.setenv("RUNCTL_TUI_POLL_SECONDS", "fast")

    message = config_error(path)

    assert message.startswith("environment variable RUNCTL_TUI_POLL_SECONDS: ")
    assert f"{path}:1" not in message


def test_invalid_nested_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNCTL_TUI_AWS__REGIONS", '["useast1"]')

    with pytest.raises(ConfigError, match=r"^environment variable RUNCTL_TUI_AWS__REGIONS: "):
        load_settings()


def test_a_bad_list_item_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNCTL_TUI_AWS__REGIONS", "[1]")

    with pytest.raises(ConfigError, match=r"^environment variable RUNCTL_TUI_AWS__REGIONS: "):
        load_settings()


def test_a_variable_for_another_key_does_not_hide_the_file_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[aws]\nregions = ["useast1"]\n')
    monkeypatch.setenv("RUNCTL_TUI_AWS__PROFILE", "ml")

    assert config_error(path).startswith(f"{path}:2: key 'aws.regions'")


def test_flags_override_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "readonly = false\n")
    monkeypatch.setenv("RUNCTL_TUI_READONLY", "false")

    assert load_settings(path, readonly=True).readonly is True


def test_config_variable_chooses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "poll_seconds = 33\n", name="elsewhere.toml")
    monkeypatch.setenv(CONFIG_ENV, str(path))

    assert config_path() == path
    assert load_settings().poll_seconds == 33.0


def test_explicit_path_wins_over_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = write(tmp_path, "poll_seconds = 11\n", name="explicit.toml")
    monkeypatch.setenv(CONFIG_ENV, str(write(tmp_path, "poll_seconds = 99\n", name="env.toml")))

    assert config_path(explicit) == explicit
    assert load_settings(explicit).poll_seconds == 11.0


@pytest.mark.parametrize("via_env", [False, True])
def test_missing_explicit_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_env: bool
) -> None:
    missing = tmp_path / "nope.toml"
    if via_env:
        monkeypatch.setenv(CONFIG_ENV, str(missing))

    with pytest.raises(ConfigError, match=re.escape(f"{missing}: no such config file")):
        load_settings(None if via_env else missing)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"protect_tag = '\xe9'\n")

    message = config_error(path)

    assert message.startswith(f"{path}: cannot read")


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.poll_seconds = 3  # type: ignore[misc]
