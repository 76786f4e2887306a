"""Config: defaults, the TOML file, environment overrides and one-line errors."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from runctl_tui.config import (
    CONFIG_ENV,
    MAX_CONFIG_BYTES,
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


def test_shipped_default_file_validates_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNCTL_TUI_LOCAL__ENABLED")
    monkeypatch.delenv("RUNCTL_TUI_RUNPOD__ENABLED")
    path = write(tmp_path, default_config_text())

    assert load_settings(path) == Settings()
    # It documents every top-level key it configures.
    for key in ("poll_seconds", "protect_tag", "[aws]", "[runpod]", "[local]", "[[ssh.hosts]]"):
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


# New keys -------------------------------------------------------------------------------------


def test_deadline_and_aws_timeout_defaults() -> None:
    settings = load_settings()

    assert settings.poll_deadline_seconds == 20.0
    assert settings.aws.connect_timeout == 5.0
    assert settings.aws.read_timeout == 10.0
    assert settings.aws.max_attempts == 3


def test_deadline_and_aws_timeouts_from_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "poll_deadline_seconds = 45\n[aws]\nconnect_timeout = 2\nread_timeout = 30.5\n"
        "max_attempts = 1\n",
    )

    settings = load_settings(path)

    assert settings.poll_deadline_seconds == 45.0
    assert (settings.aws.connect_timeout, settings.aws.read_timeout) == (2.0, 30.5)
    assert settings.aws.max_attempts == 1


@pytest.mark.parametrize(
    ("text", "line", "key", "bound"),
    [
        ("poll_deadline_seconds = 1\n", 1, "'poll_deadline_seconds'", "greater than or equal to 2"),
        (
            "poll_deadline_seconds = 601\n",
            1,
            "'poll_deadline_seconds'",
            "less than or equal to 600",
        ),
        (
            "[aws]\nconnect_timeout = 0.5\n",
            2,
            "'aws.connect_timeout'",
            "greater than or equal to 1",
        ),
        ("[aws]\nconnect_timeout = 61\n", 2, "'aws.connect_timeout'", "less than or equal to 60"),
        ("[aws]\nread_timeout = 121\n", 2, "'aws.read_timeout'", "less than or equal to 120"),
        ("[aws]\nmax_attempts = 0\n", 2, "'aws.max_attempts'", "greater than or equal to 1"),
        ("[aws]\nmax_attempts = 11\n", 2, "'aws.max_attempts'", "less than or equal to 10"),
        ("[aws]\nmax_attempts = 2.5\n", 2, "'aws.max_attempts'", "integer"),
    ],
)
def test_deadline_and_aws_timeouts_are_bounded(
    tmp_path: Path, text: str, line: int, key: str, bound: str
) -> None:
    path = write(tmp_path, text)

    message = config_error(path)

    assert message.startswith(f"{path}:{line}: key {key}: ")
    assert bound in message


def test_aws_timeouts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNCTL_TUI_POLL_DEADLINE_SECONDS", "12")
    monkeypatch.setenv("RUNCTL_TUI_AWS__READ_TIMEOUT", "3")

    settings = load_settings()

    assert (settings.poll_deadline_seconds, settings.aws.read_timeout) == (12.0, 3.0)


def test_shipped_default_file_sets_the_new_keys_to_their_defaults() -> None:
    text = default_config_text()

    for key in ("poll_deadline_seconds", "connect_timeout", "read_timeout", "max_attempts"):
        assert re.search(rf"^{key} = ", text, re.MULTILINE), key


# The keymap -----------------------------------------------------------------------------------


def test_keymap_is_stored_as_textual_key_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[keymap]\nhelp = "?"\nfilter = "f, /"\nrefresh = "shift+r"\n')

    assert load_settings(path).keymap == {
        "help": "question_mark",
        "filter": "f,slash",
        "refresh": "R",
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[keymap]\nstop-instance = "x"\nrefresh = "x"\n', 3, ["'x' is already the key of"]),
        ('[keymap]\n\nrefresh = "q"\n', 3, ["'q' is already the key of quit"]),
        ('[keymap]\nquit = ""\n', 2, ["quit needs at least one key"]),
        ('[keymap]\nrefresh = "s"\n', 2, ["'s' is already the key of stop-instance"]),
        ('[keymap]\nstop-instance = "j"\n', 2, ["'j' is reserved"]),
        ('[keymap]\nstop-instance = "ctrl+shift+alt+f13"\n', 2, ["not a key"]),
        ('[keymap]\nstop-instance = "foo"\n', 2, ["'foo' is not a key name"]),
        ('[keymap]\nstop-instance = "ctrl+é"\n', 2, ["'ctrl+é'"]),
        ("[keymap]\nstop-instance = 'ctrl x'\n", 2, ["has a space"]),
        ('[keymap]\nstop-instanse = "x"\n', 2, ["did you mean 'stop-instance'?"]),
        ('[keymap]\n"[b]stop[/b]" = "x"\n', 2, ["unknown binding id '[b]stop[/b]'"]),
        ("[keymap]\n'[@click=app.quit]' = 'x'\n", 2, ["unknown binding id '[@click=app.quit]'"]),
        ('keymap.refresh = "q"\n', 1, ["'q' is already the key of quit"]),
        ('keymap = { refresh = "q" }\n', 1, ["'q' is already the key of quit"]),
        ('[ "keymap" ]\n"refresh" = "q"\n', 2, ["'q' is already the key of quit"]),
        ('[keymap]\nrefresh = ["r"]\n', 2, ["valid string"]),
    ],
)
def test_keymap_errors_name_the_line_and_the_entry(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    path = write(tmp_path, text)

    message = config_error(path)

    assert message.startswith(f"{path}:{line}: key 'keymap.")
    for word in words:
        assert word in message


def test_keymap_error_with_control_characters_is_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, '[keymap]\n"stop\\u001b[31m\\u009b" = "x"\nrefresh = "a\\u0007"\n')

    message = config_error(path)

    assert message.startswith(f"{path}:2: key 'keymap.stop\\x1b[31m\\x9b': unknown binding id ")
    assert "\x1b" not in message
    assert "\x9b" not in message


def test_keymap_value_with_control_characters_is_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, '[keymap]\nrefresh = "a\\u001b[2J"\n')

    message = config_error(path)

    assert message == (
        f"{path}:2: key 'keymap.refresh': 'a\\x1b[2J' has a control or invisible character"
    )


def test_keymap_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNCTL_TUI_KEYMAP__STOP_INSTANCE", "x")
    monkeypatch.setenv("RUNCTL_TUI_KEYMAP__HELP", "?")

    assert load_settings().keymap == {"stop-instance": "x", "help": "question_mark"}


def test_keymap_variable_overrides_the_file_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[keymap]\nstop-instance = "x"\nrefresh = "ctrl+r"\n')
    monkeypatch.setenv("RUNCTL_TUI_KEYMAP__STOP_INSTANCE", "ctrl+s")

    assert load_settings(path).keymap == {"stop-instance": "ctrl+s", "refresh": "ctrl+r"}


def test_whole_keymap_as_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNCTL_TUI_KEYMAP", '{"terminate-instance": "ctrl+t"}')

    assert load_settings().keymap == {"terminate-instance": "ctrl+t"}


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("RUNCTL_TUI_KEYMAP__STOP_INSTANCE", "foo", ["key 'keymap.stop-instance'", "'foo'"]),
        ("RUNCTL_TUI_KEYMAP__STOP_INSTANCE", "q", ["'q' is already the key of quit"]),
        ("RUNCTL_TUI_KEYMAP__STOPP", "x", ["unknown binding id 'stopp'"]),
        ("RUNCTL_TUI_KEYMAP__QUIT", "", ["quit needs at least one key"]),
        ("RUNCTL_TUI_KEYMAP__REFRESH", "a\x1bb", ["'a\\x1bb'"]),
    ],
)
def test_bad_keymap_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: list[str]
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)

    assert message.startswith(f"environment variable {variable}: ")
    for word in words:
        assert word in message
    assert "\x1b" not in message


def test_variable_for_a_table_that_does_not_exist_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNCTL_TUI_KEYMAPS__STOP_INSTANCE", "x")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert str(caught.value) == (
        "environment variable RUNCTL_TUI_KEYMAPS__STOP_INSTANCE: unknown table 'keymaps' "
        "(did you mean 'keymap'?); the tables are: "
        "aws, checkpoints, costs, keymap, local, logs, runpod, ssh"
    )


def test_keymap_in_settings_built_in_code_is_checked() -> None:
    with pytest.raises(ValueError, match="'s' is already the key of stop-instance"):
        Settings(keymap={"refresh": "s"})


# Files that are no config file ----------------------------------------------------------------


def load_in_a_thread(path: Path) -> str:
    """``load_settings(path)``'s error, failing the test (not hanging it) if it blocks."""
    outcome: list[BaseException | Settings] = []

    def load() -> None:
        try:
            outcome.append(load_settings(path))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"load_settings({path}) blocked"
    assert time.monotonic() - started < 5
    (result,) = outcome
    assert isinstance(result, ConfigError), result
    message = str(result)
    assert "\n" not in message
    return message


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)

    assert load_in_a_thread(fifo) == f"{fifo}: is a named pipe (FIFO), not a config file"


def test_a_fifo_named_by_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    monkeypatch.setenv(CONFIG_ENV, str(fifo))

    with pytest.raises(ConfigError, match="named pipe"):
        load_settings()


def test_a_fifo_at_the_default_path_is_refused_too(isolated_environment: Path) -> None:
    default_config_path().parent.mkdir(parents=True)
    os.mkfifo(default_config_path())

    with pytest.raises(ConfigError, match="named pipe"):
        load_settings()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_a_device_is_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")

    assert load_in_a_thread(Path(device)) == f"{device}: is a character device, not a config file"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert load_in_a_thread(tmp_path) == f"{tmp_path}: is a directory, not a config file"


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "config.toml"
    link.symlink_to("/dev/zero")

    assert "character device" in load_in_a_thread(link)


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"# " + b"x" * 2_000_000 + b"\n")

    message = load_in_a_thread(path)

    assert message.startswith(f"{path}: is too large (2,000,003 bytes; ")
    assert "at most 1 MB" in message


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    body = b"poll_seconds = 12\n"
    path.write_bytes(body + b"#" * (MAX_CONFIG_BYTES - len(body) - 1) + b"\n")

    assert load_settings(path).poll_seconds == 12.0


def test_a_file_that_grows_after_the_check_is_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"# " + b"x" * 3_000_000 + b"\n")
    real_stat = os.stat

    def stat_before_it_grew(target: object, *args: object, **kwargs: object) -> os.stat_result:
        found = real_stat(target, *args, **kwargs)  # type: ignore[arg-type]
        if Path(str(target)) != path:
            return found
        fields = list(found)
        fields[6] = 100  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat_before_it_grew)
    read: list[int] = []
    real_read = os.read

    def counting_read(fd: int, size: int) -> bytes:
        chunk = real_read(fd, size)
        read.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", counting_read)

    message = config_error(path)

    assert message == f"{path}: is too large (over 1 MB; a config file is at most 1 MB)"
    assert sum(read) == MAX_CONFIG_BYTES + 1


def test_path_with_control_characters_is_shown_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, "colour = 1\n", name="bad\x1b[31m\nname.toml")

    message = config_error(path)

    assert "\x1b" not in message
    assert message.startswith(str(tmp_path / "bad␛[31m␤name.toml:1: unknown key 'colour'"))


def test_markup_in_a_value_is_shown_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, '[aws]\nregions = ["[b]us-east-1[/b]"]\n')

    message = config_error(path)

    assert message.startswith(f"{path}:2: key 'aws.regions': '[b]us-east-1[/b]' is not")


def test_not_utf8_says_where(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"protect_tag = '\xe9'\n")

    assert config_error(path) == f"{path}: cannot read: not UTF-8 (byte 0xe9 at offset 15)"


def test_key_line_finds_the_entry_of_an_array_of_tables() -> None:
    from runctl_tui.config import _key_line

    text = "\n".join(
        [
            "[[ssh.hosts]]",  # 1
            'host = "a"',  # 2
            'label = "first"',  # 3
            "",  # 4
            "[[ssh.hosts]]",  # 5
            'host = "b"',  # 6
            'label = "second"',  # 7
            "[aws]",  # 8
            "regions = []",  # 9
        ]
    )

    assert _key_line(text, ["ssh", "hosts", 1, "label"]) == 7
    assert _key_line(text, ["ssh", "hosts", 0, "label"]) == 3
    assert _key_line(text, ["ssh", "hosts", 1]) == 5
    assert _key_line(text, ["aws", "regions"]) == 9


def test_known_keys_come_from_the_settings_models() -> None:
    from runctl_tui.config import AwsSettings, Settings, _known_keys

    assert _known_keys(["aws", "regoins"]) == list(AwsSettings.model_fields)
    assert _known_keys(["pol_seconds"]) == list(Settings.model_fields)


# Tables ---------------------------------------------------------------------------------------


def test_the_tables_come_from_the_settings_model() -> None:
    from runctl_tui.config import builtin_tables, known_tables

    assert builtin_tables() == [
        "aws",
        "runpod",
        "local",
        "ssh",
        "logs",
        "checkpoints",
        "costs",
        "keymap",
    ]
    assert set(builtin_tables()) <= set(known_tables())


def test_an_unknown_table_lists_the_tables_there_are(tmp_path: Path) -> None:
    path = write(tmp_path, "readonly = true\n\n[colours]\nbackground = 'dark'\n")

    assert config_error(path) == (
        f"{path}:3: unknown table 'colours'; the tables are: "
        "aws, checkpoints, costs, keymap, local, logs, runpod, ssh"
    )


def test_an_unknown_array_of_tables_is_an_unknown_table_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "readonly = true\n[[gpus]]\nmodel = 'H100'\n[[gpus]]\nmodel = 'A10G'\n")

    assert config_error(path).startswith(f"{path}:2: unknown table 'gpus'; the tables are: ")


def test_an_unknown_top_level_value_is_still_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, "readonly = true\nkeymaps = 3\n")

    assert config_error(path) == f"{path}:2: unknown key 'keymaps' (did you mean 'keymap'?)"


@pytest.mark.parametrize(
    "table", ["aws", "runpod", "local", "ssh", "logs", "checkpoints", "keymap"]
)
def test_a_table_written_as_an_array_of_tables_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    monkeypatch.delenv("RUNCTL_TUI_LOCAL__ENABLED")
    monkeypatch.delenv("RUNCTL_TUI_RUNPOD__ENABLED")
    path = write(tmp_path, f"readonly = true\n\n[[{table}]]\nenabled = true\n")

    assert config_error(path) == (
        f"{path}:3: key '{table}': is an array of tables ([[{table}]]); write [{table}] once"
    )


def test_an_array_of_tables_written_as_one_table_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, '[ssh]\nconnect_timeout = 5\n[ssh.hosts]\nhost = "ml@gpu-box"\n')

    assert config_error(path) == (
        f"{path}:3: key 'ssh.hosts': is a single table ([ssh.hosts]); "
        "write [[ssh.hosts]] for each entry"
    )


def test_a_table_where_a_list_of_values_is_wanted_keeps_the_plain_message(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[aws]\nregions = { a = 1 }\n")

    assert config_error(path) == f"{path}:2: key 'aws.regions': Input should be a valid list"


def test_a_missing_key_points_at_its_entry(tmp_path: Path) -> None:
    path = write(tmp_path, '[[ssh.hosts]]\nhost = "a"\n\n[[ssh.hosts]]\nlabel = "no host"\n')

    assert config_error(path) == f"{path}:4: key 'ssh.hosts.1.host': Field required"


def test_plugin_tables_are_kept_apart_from_the_settings() -> None:
    settings = Settings().with_plugin_tables({"example": {"greeting": "hi"}})

    assert settings.plugin_table("example") == {"greeting": "hi"}
    assert settings.plugin_table("other") is None
    assert Settings().plugin_table("example") is None
    assert settings != Settings()
    # Flags applied after loading keep them.
    assert settings.model_copy(update={"readonly": True}).plugin_table("example") is not None


def test_log_places_default_to_common_ml_globs() -> None:
    settings = Settings()

    assert "~/train/*.log" in settings.logs.paths
    assert "/workspace/logs/*.log" in settings.logs.paths
    assert settings.logs.recent_days == 3
    search = settings.logs.search()
    assert search.globs == tuple(settings.logs.paths)
    assert search.depth == settings.logs.recent_depth
    assert search.limit == settings.logs.recent_limit
    assert settings.aws.ssh_user == "ubuntu"
    assert settings.aws.ssh_key is None
    assert settings.aws.logs is None
    assert settings.runpod.logs is None
    assert settings.local.logs is None


def test_a_places_own_log_globs_replace_the_shared_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[logs]\n"
        'paths = ["~/runs/*.log"]\n'
        "recent_days = 1.5\n"
        'recent_dirs = ["~", "/data"]\n'
        "[aws]\n"
        'logs = ["/opt/train/*.log"]\n'
        'ssh_user = "ec2-user"\n'
        'ssh_key = "~/.ssh/ml.pem"\n'
        "[runpod]\n"
        'logs = ["/workspace/out/*.log"]\n'
        "[local]\n"
        "logs = []\n"
        "[[ssh.hosts]]\n"
        'host = "ml@gpu-box"\n'
        'logs = ["~/exp/*/train.log"]\n',
    )

    settings = load_settings(path)

    assert settings.logs.search().globs == ("~/runs/*.log",)
    assert settings.logs.search(settings.aws.logs).globs == ("/opt/train/*.log",)
    assert settings.logs.search(settings.runpod.logs).globs == ("/workspace/out/*.log",)
    assert settings.logs.search(settings.local.logs).globs == ()
    assert settings.ssh.hosts[0].logs == ["~/exp/*/train.log"]
    assert settings.logs.search().recent_dirs == ("~", "/data")
    assert settings.logs.search().recent_days == 1.5
    assert settings.aws.ssh_user == "ec2-user"
    assert settings.aws.ssh_key == "~/.ssh/ml.pem"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('[logs]\nstall_minutes = 5\npaths = ["train/*.log"]\n', 3, "logs.paths"),
        ('[logs]\nrecent_dirs = ["~", ""]\n', 2, "logs.recent_dirs"),
        ("[logs]\nrecent_days = 0\n", 2, "logs.recent_days"),
        ("[logs]\nrecent_depth = 50\n", 2, "logs.recent_depth"),
        ('[aws]\nregions = []\nlogs = ["$(reboot)"]\n', 3, "aws.logs"),
        ('[aws]\nssh_user = "-oProxyCommand=x"\n', 2, "aws.ssh_user"),
        ('[runpod]\nlogs = "/workspace/*.log"\n', 2, "runpod.logs"),
        ('[[ssh.hosts]]\nhost = "a"\n[[ssh.hosts]]\nhost = "b"\nlogs = ["x\\ny"]\n', 5, "ssh"),
    ],
)
def test_bad_log_places_name_the_line(tmp_path: Path, text: str, line: int, key: str) -> None:
    path = write(tmp_path, text)

    message = config_error(path)

    assert message.startswith(f"{path}:{line}: key '{key}"), message


def test_the_default_file_documents_the_log_keys() -> None:
    text = default_config_text()

    for key in ("paths", "recent_days", "recent_dirs", "recent_depth", "ssh_user", "ssh_key"):
        assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), key
    assert load_settings is not None


def test_checkpoints_defaults() -> None:
    checkpoints = Settings().checkpoints

    assert checkpoints.dirs[:2] == ["~/train/checkpoints", "~/checkpoints"]
    assert "/workspace/*/checkpoints" in checkpoints.dirs
    assert checkpoints.keep_last == 3
    assert checkpoints.resume_command == "python train.py --resume {path}"
    assert checkpoints.stale_minutes == 30
    assert checkpoints.copies == []
    assert checkpoints.download_dir == "~/checkpoints"
    assert checkpoints.dirs_for() == tuple(checkpoints.dirs)
    assert checkpoints.dirs_for(["/data/ckpt"]) == ("/data/ckpt",)
    assert checkpoints.resume_for("/a b/c.pt") == "python train.py --resume '/a b/c.pt'"
    assert "[checkpoints]" in default_config_text()


def test_checkpoints_from_the_file_and_per_place(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[checkpoints]\n"
        'dirs = ["/data/*/ckpt"]\n'
        "keep_last = 5\n"
        'copies = ["s3://my-bucket/runs", "~/backup"]\n'
        'resume_command = "torchrun train.py --ckpt {path}"\n'
        "[local]\n"
        'checkpoints = ["~/mine"]\n'
        "[aws]\n"
        'checkpoints = ["/home/ubuntu/ckpt"]\n'
        "[runpod]\n"
        'checkpoints = ["/workspace/ckpt"]\n'
        "[[ssh.hosts]]\n"
        'host = "me@box"\n'
        'checkpoints = ["~/exp/*/checkpoints"]\n',
    )

    settings = load_settings(path)

    assert settings.checkpoints.dirs == ["/data/*/ckpt"]
    assert settings.checkpoints.keep_last == 5
    assert settings.checkpoints.copies == ["s3://my-bucket/runs", "~/backup"]
    assert settings.local.checkpoints == ["~/mine"]
    assert settings.aws.checkpoints == ["/home/ubuntu/ckpt"]
    assert settings.runpod.checkpoints == ["/workspace/ckpt"]
    assert settings.ssh.hosts[0].checkpoints == ["~/exp/*/checkpoints"]
    from runctl_tui.providers.local import from_settings as local_providers
    from runctl_tui.providers.ssh_hosts import from_settings as ssh_providers

    # The test environment turns [local] off; turned back on, it takes its own dirs.
    local_on = settings.model_copy(
        update={"local": settings.local.model_copy(update={"enabled": True})}
    )
    assert local_providers(local_on)[0].checkpoint_dirs == ("~/mine",)
    (ssh,) = ssh_providers(settings)
    assert ssh.checkpoint_dirs == ("/data/*/ckpt",)
    assert ssh.hosts[0].checkpoints == ("~/exp/*/checkpoints",)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('dirs = ["relative/ckpt"]', "checkpoints.dirs"),
        ('dirs = [""]', "checkpoints.dirs"),
        ("keep_last = 0", "checkpoints.keep_last"),
        ('resume_command = "python train.py"', "checkpoints.resume_command"),
        ('resume_command = "python {script} {path}"', "checkpoints.resume_command"),
        ('resume_command = "python {path"', "checkpoints.resume_command"),
        ("stale_minutes = 0", "checkpoints.stale_minutes"),
        ('copies = ["s3://"]', "checkpoints.copies"),
        ('copies = ["backup"]', "checkpoints.copies"),
        ('download_dir = "here"', "checkpoints.download_dir"),
    ],
)
def test_bad_checkpoints_values_name_key_and_line(tmp_path: Path, line: str, key: str) -> None:
    path = write(tmp_path, f"poll_seconds = 10\n[checkpoints]\n{line}\n")

    message = config_error(path)

    assert message.startswith(f"{path}:3: ")
    assert f"'{key}'" in message


def test_a_places_checkpoint_dirs_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, '[local]\ncheckpoints = ["ckpt"]\n')

    message = config_error(path)

    assert message.startswith(f"{path}:2: ")
    assert "'local.checkpoints" in message
