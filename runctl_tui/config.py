"""Settings: a TOML file validated by pydantic, overridable by ``RUNCTL_TUI_*`` variables."""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

APP_NAME = "runctl-tui"
CONFIG_ENV = "RUNCTL_TUI_CONFIG"


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is one line naming file, line and key."""


class AwsSettings(BaseModel):
    """The ``[aws]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Poll EC2 at all."""
    regions: list[str] = Field(default_factory=list)
    """Regions to poll; empty means the profile's region; ``["all"]`` every enabled region."""
    profile: str | None = None
    """Named profile from ~/.aws/config; unset uses the standard credential chain."""

    @field_validator("regions")
    @classmethod
    def _check_regions(cls, regions: list[str]) -> list[str]:
        for region in regions:
            if region != "all" and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
                raise ValueError(f"{region!r} is not an AWS region name like 'us-east-1'")
        if "all" in regions and len(regions) > 1:
            raise ValueError('"all" cannot be combined with named regions')
        return regions


class Settings(BaseModel):
    """Everything the user can configure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_seconds: float = Field(default=10.0, ge=2.0, le=3600.0)
    """Seconds between polls of every provider."""
    readonly: bool = False
    """Disable every action (stop, start, terminate)."""
    protect_tag: str = Field(default="runctl:protect", min_length=1)
    """Tag key that, set to ``true``, refuses terminate."""
    aws: AwsSettings = Field(default_factory=AwsSettings)
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id to keys, e.g. ``stop-instance = "x"``."""


ENV_PREFIX = "RUNCTL_TUI_"
TABLES: dict[str, type[BaseModel]] = {"aws": AwsSettings}


def _env_value(raw: str) -> Any:
    """A variable's text; JSON for lists and tables (``["us-east-1"]``), else as written."""
    text = raw.strip()
    if text and text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return raw
    return raw


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``RUNCTL_TUI_*`` variables as config data; ``__`` separates a table from its key."""
    data: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_ENV:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if len(path) == 1:
            data[path[0]] = _env_value(raw)
        elif len(path) == 2 and path[0] in TABLES:
            table = data.setdefault(path[0], {})
            if isinstance(table, dict):
                table[path[1]] = _env_value(raw)
    return data


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``; tables merge key by key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def default_config_path() -> Path:
    """Where the config is read from when neither ``--config`` nor the variable says."""
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config path in force: ``--config``, then ``RUNCTL_TUI_CONFIG``, then the default."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    return default_config_path()


def default_config_text() -> str:
    """The commented default file that ``config init`` writes."""
    return resources.files("runctl_tui").joinpath("config_default.toml").read_text("utf-8")


def _key_line(text: str, loc: Sequence[str | int]) -> int | None:
    """Best-effort line number of the key at ``loc`` in TOML ``text``."""
    names = [str(part) for part in loc if isinstance(part, str)]
    if not names:
        return None
    table: list[str] = []
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            table = [p.strip().strip('"') for p in match.group(1).split(".")]
            if table == names:
                return number
            continue
        key = re.match(r'^\s*"?([A-Za-z0-9_:.\-]+)"?\s*=', line)
        if key and table + [key.group(1)] == names[: len(table) + 1]:
            return number
    return None


def _describe(error: Mapping[str, Any], known: Sequence[str]) -> str:
    loc = [str(p) for p in error["loc"]]
    dotted = ".".join(loc)
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {dotted!r}{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"key {dotted!r}: {message}"


def _known_keys(loc: Sequence[Any]) -> list[str]:
    if len(loc) > 1 and loc[0] == "aws":
        return list(AwsSettings.model_fields)
    return list(Settings.model_fields)


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read and validate the config; a missing default file means defaults.

    Raises :class:`ConfigError` with one line naming the file, line and key.
    """
    source = config_path(path)
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    text = ""
    data: dict[str, Any] = {}
    try:
        text = source.read_text("utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{source}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
    if text:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            position = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            if position:
                reason = str(exc)[: position.start()].strip()
                raise ConfigError(
                    f"{source}:{position[1]}: invalid TOML: {reason} (column {position[2]})"
                ) from None
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    from_env = environment_overrides(os.environ)
    try:
        settings = Settings.model_validate(_merge(data, from_env))
    except ValidationError as exc:
        first = exc.errors()[0]
        line = _key_line(text, first["loc"])
        where = f"{source}:{line}" if line else str(source)
        # The environment wins over the file, so a bad value set in both came from the variable.
        # List indexes in ``loc`` are not part of a variable's name; a whole table may be one.
        names = [p for p in first["loc"] if isinstance(p, str)]
        for depth in range(len(names), 0, -1):
            env_name = ENV_PREFIX + "__".join(names[:depth]).upper()
            if env_name in {name.upper() for name in os.environ}:
                where = f"environment variable {env_name}"
                break
        more = len(exc.errors()) - 1
        tail = f" (+{more} more)" if more else ""
        raise ConfigError(f"{where}: {_describe(first, _known_keys(first['loc']))}{tail}") from None
    # Command-line flags are trusted values and win over both file and environment.
    return settings.model_copy(update=overrides) if overrides else settings
