"""Settings: a TOML file validated by pydantic, overridable by ``RUNCTL_TUI_*`` variables."""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import re
import stat
import string
import tomllib
import typing
from collections.abc import Mapping, Sequence
from decimal import Decimal
from importlib import resources
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from runctl_tui.keys import KeymapError, resolve_keymap
from runctl_tui.providers.base import (
    DEFAULT_CHECKPOINT_DIRS,
    DEFAULT_LOG_GLOBS,
    DEFAULT_RECENT_DIRS,
    LogSearch,
)
from runctl_tui.providers.local import DEFAULT_GRACE_SECONDS, DEFAULT_PATTERNS
from runctl_tui.providers.plugins import PluginLoadError, load_plugin, plugin_tables
from runctl_tui.text import clean

log = logging.getLogger(__name__)

APP_NAME = "runctl-tui"
CONFIG_ENV = "RUNCTL_TUI_CONFIG"
MAX_CONFIG_BYTES = 1_000_000
"""A config file larger than this is refused unread: it cannot be a hand-written config."""


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is one line naming file, line and key."""


def _check_places(places: list[str] | None, what: str = "glob") -> list[str] | None:
    """Globs or directories on the machine the log is on: absolute, or under ``~/``."""
    if places is None:
        return None
    for place in places:
        if not place.strip():
            raise ValueError(f"an empty {what} matches nothing")
        if any(ord(char) < 32 or ord(char) == 127 for char in place):
            raise ValueError(f"{place!r} holds a control character")
        if not (place.startswith(("/", "~/")) or place == "~"):
            raise ValueError(f"{place!r} must be absolute or start with ~/ (e.g. '~/train/*.log')")
    return places


LogGlobs = list[str] | None
"""A place's own log globs; when set they replace ``[logs] paths`` there."""
CheckpointDirs = list[str] | None
"""A place's own checkpoint directories (globs allowed); when set they replace
``[checkpoints] dirs`` there."""


def _check_dirs(places: list[str] | None) -> list[str] | None:
    return _check_places(places, "directory")


class AwsSettings(BaseModel):
    """The ``[aws]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Poll EC2 at all."""
    regions: list[str] = Field(default_factory=list)
    """Regions to poll; empty means the profile's region; ``["all"]`` every enabled region."""
    profile: str | None = None
    """Named profile from ~/.aws/config; unset uses the standard credential chain."""
    connect_timeout: float = Field(default=5.0, ge=1.0, le=60.0)
    """Seconds to wait for a connection to an AWS endpoint."""
    read_timeout: float = Field(default=10.0, ge=1.0, le=120.0)
    """Seconds to wait for an AWS endpoint to answer once connected."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per AWS call, the first included."""
    ssh_user: str = Field(default="ubuntu", pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    """The login used to read an instance's logs over SSH."""
    ssh_key: str | None = None
    """A private key for instances (``~`` is this machine's home); unset: agent and ~/.ssh."""
    logs: LogGlobs = None
    """Log globs on instances; unset: ``[logs] paths``."""
    checkpoints: CheckpointDirs = None
    """Checkpoint directories on instances; unset: ``[checkpoints] dirs``."""

    _logs = field_validator("logs")(_check_places)
    _checkpoints = field_validator("checkpoints")(_check_dirs)

    @field_validator("regions")
    @classmethod
    def _check_regions(cls, regions: list[str]) -> list[str]:
        for region in regions:
            if region != "all" and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
                raise ValueError(f"{region!r} is not an AWS region name like 'us-east-1'")
        if "all" in regions and len(regions) > 1:
            raise ValueError('"all" cannot be combined with named regions')
        return regions


class LocalSettings(BaseModel):
    """The ``[local]`` table: this machine and the training runs on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Show this machine and its training processes."""
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PATTERNS), min_length=1)
    """Launch patterns of training runs, matched against the program and script, not the whole
    command line: ``train*.py``, ``torchrun``, ``accelerate launch``, ``python -m *.train``."""
    grace_seconds: float = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=3600)
    """After ``s`` sends SIGINT, how long a run has to save and exit before SIGTERM."""
    hourly_usd: Decimal | None = Field(default=None, ge=0)
    """What this machine costs per hour, for the cost totals; unset counts it as free."""
    logs: LogGlobs = None
    """Log globs on this machine; unset: ``[logs] paths``."""
    checkpoints: CheckpointDirs = None
    """Checkpoint directories on this machine; unset: ``[checkpoints] dirs``."""

    _logs = field_validator("logs")(_check_places)
    _checkpoints = field_validator("checkpoints")(_check_dirs)


class RunPodSettings(BaseModel):
    """The ``[runpod]`` table. The API key itself is never read from this file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Poll RunPod at all (without a key it shows as not configured)."""
    api_key_env: str = Field(default="RUNPOD_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the key; else runpodctl's ~/.runpod/config.toml."""
    protect_marker: str = Field(default="[protect]", min_length=1)
    """A pod whose name contains this is never terminated from here."""
    timeout: float = Field(default=15.0, ge=1.0, le=120.0)
    """Seconds one call to RunPod's API may take."""
    logs: LogGlobs = None
    """Log globs in pods (read over SSH as root); unset: ``[logs] paths``."""
    checkpoints: CheckpointDirs = None
    """Checkpoint directories in pods; unset: ``[checkpoints] dirs``."""

    _logs = field_validator("logs")(_check_places)
    _checkpoints = field_validator("checkpoints")(_check_dirs)


class SshHostSettings(BaseModel):
    """One ``[[ssh.hosts]]`` table: a machine reached over SSH."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    """A ``~/.ssh/config`` alias, ``user@host[:port]`` or ``ssh://user@host:port``."""
    label: str | None = None
    """Shown instead of the host, e.g. ``lab-a100``."""
    hourly_usd: Decimal | None = Field(default=None, ge=0)
    """What the machine costs per hour, if anything."""
    logs: LogGlobs = None
    """Log globs on this host (``~`` is the login's home there); unset: ``[logs] paths``."""
    checkpoints: CheckpointDirs = None
    """Checkpoint directories on this host; unset: ``[checkpoints] dirs``."""

    _logs = field_validator("logs")(_check_places)
    _checkpoints = field_validator("checkpoints")(_check_dirs)

    @field_validator("host")
    @classmethod
    def _check_host(cls, host: str) -> str:
        from runctl_tui.remote.ssh import parse_target

        parse_target(host)
        return host


class SshSettings(BaseModel):
    """The ``[ssh]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[SshHostSettings] = Field(default_factory=list)
    """The machines to watch, one ``[[ssh.hosts]]`` table each."""
    connect_timeout: float = Field(default=10.0, ge=1.0, le=120.0)
    """Seconds to wait for a host to accept a connection."""


class LogsSettings(BaseModel):
    """The ``[logs]`` table: how training logs are watched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stall_minutes: float = Field(default=5.0, gt=0, le=24 * 60)
    """A followed log that gains no line for this long is flagged (the run may be hung)."""
    paths: list[str] = Field(default_factory=lambda: list(DEFAULT_LOG_GLOBS))
    """Globs of training logs, on the machine the log is on; the newest match comes first."""
    recent_days: float = Field(default=3.0, gt=0, le=365)
    """How old a "recent" ``*.log`` may be, in days."""
    recent_dirs: list[str] = Field(default_factory=lambda: list(DEFAULT_RECENT_DIRS))
    """Directories searched for recent ``*.log`` files."""
    recent_depth: int = Field(default=3, ge=1, le=8)
    """How many levels below each of ``recent_dirs`` are searched."""
    recent_limit: int = Field(default=20, ge=1, le=200)
    """At most this many recent logs (and matches per glob) are offered."""
    scan_limit: int = Field(default=2000, ge=10, le=100_000)
    """At most this many files are looked at per glob or directory."""
    tensorboard_dirs: list[str] = Field(default_factory=list)
    """Directories of TensorBoard event files read beside every followed log, besides the
    log's own directory and the usual run folders below it (on the machine the log is on)."""

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, paths: list[str]) -> list[str]:
        return _check_places(paths) or []

    @field_validator("recent_dirs", "tensorboard_dirs")
    @classmethod
    def _check_dirs(cls, dirs: list[str]) -> list[str]:
        return _check_places(dirs, "directory") or []

    def search(self, globs: Sequence[str] | None = None) -> LogSearch:
        """Where to look for logs; ``globs`` (a place's own) replace :attr:`paths`."""
        return LogSearch(
            globs=tuple(self.paths if globs is None else globs),
            recent_dirs=tuple(self.recent_dirs),
            recent_days=self.recent_days,
            depth=self.recent_depth,
            limit=self.recent_limit,
            scan_limit=self.scan_limit,
        )


_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")


class CheckpointsSettings(BaseModel):
    """The ``[checkpoints]`` table: where checkpoints are and how they are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dirs: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECKPOINT_DIRS))
    """Checkpoint directories (globs allowed) on the machine they are on; a run's own
    working directory's ``checkpoints/`` comes first."""
    keep_last: int = Field(default=3, ge=1, le=10_000)
    """How many of the newest checkpoints "keep the last N" keeps."""
    resume_command: str = Field(default="python train.py --resume {path}", min_length=1)
    """The command copied for a checkpoint; ``{path}`` is its path."""
    stale_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    """An active run with no new checkpoint for this long is flagged."""
    copies: list[str] = Field(default_factory=list)
    """Where copies of checkpoints are kept (``s3://bucket/prefix`` or a directory here): a
    newest checkpoint found in none of them exists only on its instance's disk."""
    download_dir: str = "~/checkpoints"
    """Where downloaded checkpoints go on this machine."""

    @field_validator("dirs")
    @classmethod
    def _check_dir_list(cls, dirs: list[str]) -> list[str]:
        return _check_places(dirs, "directory") or []

    @field_validator("resume_command")
    @classmethod
    def _check_resume(cls, command: str) -> str:
        if any(ord(char) < 32 or ord(char) == 127 for char in command):
            raise ValueError("holds a control character")
        try:
            names = {field for _, field, _, _ in string.Formatter().parse(command) if field}
            command.format(path="x")
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(
                f"{command!r} is not a template with {{path}} (write {{{{ for a brace): {exc}"
            ) from None
        if names != {"path"}:
            raise ValueError(f"{command!r} must use {{path}}, and no other field")
        return command

    @field_validator("copies")
    @classmethod
    def _check_copies(cls, copies: list[str]) -> list[str]:
        for copy in copies:
            if copy.startswith("s3://"):
                if not _S3_URL.fullmatch(copy):
                    raise ValueError(f"{copy!r} is not s3://bucket/prefix")
                continue
            _check_places([copy], "directory")
        return copies

    @field_validator("download_dir")
    @classmethod
    def _check_download_dir(cls, folder: str) -> str:
        _check_places([folder], "directory")
        return folder

    def dirs_for(self, own: Sequence[str] | None = None) -> tuple[str, ...]:
        """Where to look for checkpoints; ``own`` (a place's own dirs) replace :attr:`dirs`."""
        return tuple(self.dirs if own is None else own)

    def resume_for(self, path: str) -> str:
        """The resume command for the checkpoint at ``path`` (quoted for a POSIX shell)."""
        import shlex

        return self.resume_command.format(path=shlex.quote(path))


class CostsSettings(BaseModel):
    """The ``[costs]`` table: budgets, the idle-GPU check and the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_budget: Decimal | None = Field(default=None, gt=0)
    """Dollars a day: a warning at 80%, an alert (bell, red cost pane) at 100%."""
    monthly_budget: Decimal | None = Field(default=None, gt=0)
    """Dollars a calendar month, likewise."""
    on_budget_exceeded: Literal["notify", "stop-idle"] = "notify"
    """``stop-idle`` also stops idle GPU instances and pods once a budget is exceeded,
    through the same checks and journal as a stop by hand."""
    idle_gpu_percent: float = Field(default=5.0, gt=0, le=100)
    """A GPU busier than this is not idle."""
    idle_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    """How long every GPU must stay under ``idle_gpu_percent`` before the row is flagged."""
    ledger: str | None = None
    """The ledger's SQLite file; the platform's data directory when unset."""


class Settings(BaseModel):
    """Everything the user can configure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_seconds: float = Field(default=10.0, ge=2.0, le=3600.0)
    """Seconds between polls of every provider."""
    poll_deadline_seconds: float = Field(default=20.0, ge=2.0, le=600.0)
    """Seconds one poll of a provider may take before it is abandoned and reported timed out."""
    readonly: bool = False
    """Disable every action (stop, start, terminate)."""
    protect_tag: str = Field(default="runctl:protect", min_length=1)
    """Tag key that, set to ``true``, refuses terminate."""
    aws: AwsSettings = Field(default_factory=AwsSettings)
    runpod: RunPodSettings = Field(default_factory=RunPodSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    ssh: SshSettings = Field(default_factory=SshSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)
    checkpoints: CheckpointsSettings = Field(default_factory=CheckpointsSettings)
    costs: CostsSettings = Field(default_factory=CostsSettings)
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id to keys, e.g. ``stop-instance = "x"``; stored as Textual key names."""
    _plugin_tables: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    """The tables provider plugins claim, as the file and environment set them."""

    def plugin_table(self, name: str) -> dict[str, Any] | None:
        """The ``[name]`` table a provider plugin claims, as written; ``None`` when absent."""
        table = self._plugin_tables.get(name)
        return dict(table) if table is not None else None

    def with_plugin_tables(self, tables: Mapping[str, Mapping[str, Any]]) -> Settings:
        """A copy holding ``tables`` (plugin table name -> its keys), e.g. for a test."""
        copy = self.model_copy()
        copy._plugin_tables = {name: dict(table) for name, table in tables.items()}
        return copy

    @field_validator("keymap")
    @classmethod
    def _check_keymap(cls, keymap: dict[str, str]) -> dict[str, str]:
        try:
            resolved = resolve_keymap(keymap)
        except KeymapError as exc:
            # Raised as a nested error so that its location names the entry, not the table:
            # that is what finds the line in the file and the environment variable.
            detail = InitErrorDetails(
                type=PydanticCustomError("keymap", "{message}", {"message": exc.message}),
                loc=(exc.binding_id,),
                input=keymap.get(exc.binding_id),
            )
            raise ValidationError.from_exception_data("keymap", [detail]) from None
        return {binding_id: ",".join(resolved[binding_id]) for binding_id in keymap}


ENV_PREFIX = "RUNCTL_TUI_"


def _env_value(raw: str) -> Any:
    """A variable's text; JSON for lists and tables (``["us-east-1"]``), else as written."""
    text = raw.strip()
    if text and text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return raw
    return raw


def _env_key(table: str, key: str) -> str:
    """A key as a variable spells it, back in the config's spelling."""
    # Binding ids have hyphens, which a variable name cannot hold portably.
    return key.replace("_", "-") if table == "keymap" else key


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``RUNCTL_TUI_*`` variables as config data; ``__`` separates a table from its key.

    ``RUNCTL_TUI_KEYMAP__STOP_INSTANCE`` sets ``keymap.stop-instance``. A variable naming a
    table or key that does not exist still becomes data, so that validation refuses it.
    """
    data: dict[str, Any] = {}
    paths: list[tuple[list[str], str]] = []
    for name, raw in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_ENV:
            continue
        paths.append((name[len(ENV_PREFIX) :].lower().split("__"), raw))
    # A whole table from one variable first, so that a variable for one of its keys wins.
    for path, raw in sorted(paths, key=lambda item: len(item[0])):
        if len(path) == 1:
            data[path[0]] = _env_value(raw)
            continue
        node = data.setdefault(path[0], {})
        keys = [_env_key(path[0], key) for key in path[1:]]
        for key in keys[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(key, {})
        if isinstance(node, dict):
            node[keys[-1]] = _env_value(raw)
    return data


def _variable_for(names: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The set variable that supplies the key at ``names``, if one does."""
    present = {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}
    present.pop(CONFIG_ENV, None)
    for depth in range(len(names), 0, -1):
        spelled = "__".join(part.replace("-", "_") for part in names[:depth]).upper()
        candidate = ENV_PREFIX + spelled
        if candidate in present:
            return present[candidate]
        if depth == len(names):
            deeper = sorted(upper for upper in present if upper.startswith(candidate + "__"))
            if deeper:
                return present[deeper[0]]
    return None


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


_KEY_PIECE = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_KEY = rf"\s*{_KEY_PIECE}(?:\s*\.\s*{_KEY_PIECE})*\s*"
_HEADER = re.compile(rf"^\s*\[\[?({_DOTTED_KEY})\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(rf"^\s*({_DOTTED_KEY})=")


def _key_parts(dotted: str) -> list[str]:
    """``a."b.c".'d'`` as ``["a", "b.c", "d"]``."""
    parts: list[str] = []
    for piece in re.findall(_KEY_PIECE, dotted):
        if piece[0] in "\"'":
            # A quoted key has exactly the syntax of a string value.
            with contextlib.suppress(tomllib.TOMLDecodeError):
                piece = tomllib.loads(f"k = {piece}")["k"]
        parts.append(piece)
    return parts


def _key_line(text: str, loc: Sequence[str | int]) -> int | None:
    """Best-effort line number of the key at ``loc`` in TOML ``text``.

    ``loc`` is a pydantic error location: an integer after a name picks that entry of an
    array of tables (``["ssh", "hosts", 1, "label"]`` is ``label`` in the second
    ``[[ssh.hosts]]``), so an error in one entry points at that entry's line.
    """
    names: list[str] = []
    entries: dict[int, int] = {}
    """Position in ``names`` of an array-of-tables name -> the entry the error is in."""
    for part in loc:
        if isinstance(part, int):
            if names:
                entries[len(names)] = part
        else:
            names.append(str(part))
    if not names:
        return None
    table: list[str] = []
    seen: dict[tuple[str, ...], int] = {}
    in_entry = True
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _key_parts(header.group(1))
            in_entry = True
            if line.lstrip().startswith("[["):
                count = seen.get(tuple(table), -1) + 1
                seen[tuple(table)] = count
                wanted = entries.get(len(table))
                in_entry = wanted is None or wanted == count
            if in_entry and table == names:
                return number
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and in_entry:
            path = table + _key_parts(assignment.group(1))
            if len(path) > len(table) and path == names[: len(path)]:
                return number
    return None


def _is_table(value: Any) -> bool:
    """A TOML table, or an array of tables."""
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _describe(
    error: Mapping[str, Any],
    known: Sequence[str],
    tables: Sequence[str] = (),
    holds: type[BaseModel] | None = None,
) -> str:
    """One error as ``unknown key 'x' (did you mean 'y'?)`` or ``key 'x': problem``.

    ``tables`` are the top-level tables there are, named when a top-level table is unknown;
    ``holds`` is the settings model the key at the error holds (as items too), if any.
    """
    loc = [str(p) for p in error["loc"]]
    dotted = ".".join(loc)
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        if len(loc) == 1 and tables and _is_table(value):
            close = difflib.get_close_matches(loc[-1], tables, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown table {dotted!r}{hint}; the tables are: {', '.join(tables)}"
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {dotted!r}{hint}"
    if (
        error["type"] in {"model_type", "dict_type"}
        and isinstance(value, list)
        and _is_table(value)
    ):
        return f"key {dotted!r}: is an array of tables ([[{dotted}]]); write [{dotted}] once"
    if error["type"] == "list_type" and isinstance(value, dict) and holds is not None:
        return f"key {dotted!r}: is a single table ([{dotted}]); write [[{dotted}]] for each entry"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"key {dotted!r}: {message}"


def builtin_tables() -> list[str]:
    """The top-level tables of :class:`Settings` (``aws``, ``keymap``...), read from the model."""
    return [
        name
        for name, info in Settings.model_fields.items()
        if _model_in(info.annotation) is not None or typing.get_origin(info.annotation) is dict
    ]


def known_tables() -> list[str]:
    """Every top-level table a config may hold: the built-in ones and those plugins claim."""
    builtin = builtin_tables()
    claimed = plugin_tables(list(Settings.model_fields))
    return sorted({*builtin, *claimed})


def _model_at(path: Sequence[str], root: type[BaseModel]) -> type[BaseModel] | None:
    """The settings model the field at ``path`` holds (directly or as items), if any."""
    model: type[BaseModel] | None = root
    for part in path:
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _model_in(field.annotation)
    return model


def _known_keys(loc: Sequence[Any], root: type[BaseModel] | None = None) -> list[str]:
    """The keys allowed where the error at ``loc`` is, read from the settings models.

    ``loc`` starts at ``root``, :class:`Settings` unless given (a plugin's model).
    """
    model: type[BaseModel] = root or Settings
    for part in loc[:-1]:
        if not isinstance(part, str):
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        nested = _model_in(field.annotation)
        if nested is None:
            break
        model = nested
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds, directly or as the items of a list or dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


_FILE_KINDS = (
    (stat.S_ISDIR, "is a directory, not a config file"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a config file"),
    (stat.S_ISCHR, "is a character device, not a config file"),
    (stat.S_ISBLK, "is a block device, not a config file"),
    (stat.S_ISSOCK, "is a socket, not a config file"),
)


def _refusal(mode: int) -> str | None:
    """Why a file of this mode is no config file; ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((why for test, why in _FILE_KINDS if test(mode)), "is not a regular file")


def _read_config(source: Path, explicit: bool) -> str:
    """The text of the config at ``source``; ``""`` when the default file does not exist.

    Never opens anything but a regular file, and never reads more than
    :data:`MAX_CONFIG_BYTES` + 1 bytes, so a FIFO, a device or a huge file cannot hang it.
    """
    try:
        found = os.stat(source)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{source}: no such config file") from None
        return ""
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    why = _refusal(found.st_mode)
    if why is None and found.st_size > MAX_CONFIG_BYTES:
        why = f"is too large ({found.st_size:,} bytes; a config file is at most 1 MB)"
    if why:
        raise ConfigError(f"{source}: {why}")
    # Non-blocking, so that a FIFO swapped in after the check cannot block the open either.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(source, flags)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        why = _refusal(os.fstat(fd).st_mode)
        if why:
            raise ConfigError(f"{source}: {why}")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: is too large (over 1 MB; a config file is at most 1 MB)")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: cannot read: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start})"
        ) from None


def _parse(source: Path, text: str) -> dict[str, Any]:
    """``text`` as TOML data, or a :class:`ConfigError` naming the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        position = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        if position:
            reason = str(exc)[: position.start()].strip()
            raise ConfigError(
                f"{source}:{position[1]}: invalid TOML: {reason} (column {position[2]})"
            ) from None
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read and validate the config; a missing default file means defaults.

    Raises :class:`ConfigError` with one line naming the file, line and key, in which
    control characters are shown as visible escapes.
    """
    try:
        return _load_settings(path, overrides)
    except ConfigError as exc:
        # Paths, keys and values all come from the user: one visible line, whatever they hold.
        raise ConfigError(clean(str(exc))) from None


def _load_settings(path: str | os.PathLike[str] | None, overrides: Mapping[str, Any]) -> Settings:
    source = config_path(path)
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    text = _read_config(source, explicit)
    data = _parse(source, text) if text else {}
    merged = _merge(data, environment_overrides(os.environ))
    builtin = list(Settings.model_fields)
    # Reading plugin metadata costs a little: only a config with other tables pays for it.
    others = [key for key in merged if key not in builtin]
    claimed = plugin_tables(builtin) if others else {}
    plugin_data = {key: merged.pop(key) for key in others if key in claimed}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(source, text, exc.errors(), Settings) from None
    tables: dict[str, dict[str, Any]] = {}
    for name in sorted(plugin_data):
        tables[name] = _plugin_table(source, text, name, plugin_data[name], claimed[name])
    if tables:
        settings = settings.with_plugin_tables(tables)
    # Command-line flags are trusted values and win over both file and environment.
    return settings.model_copy(update=dict(overrides)) if overrides else settings


def _config_error(
    source: Path,
    text: str,
    errors: Sequence[Mapping[str, Any]],
    root: type[BaseModel],
    table: str | None = None,
) -> ConfigError:
    """The first of ``errors`` as one line naming the file and line, or the variable.

    ``root`` is the model that reported them; for a plugin's model, ``table`` is its table,
    which the locations are given without.
    """
    first = dict(errors[0])
    inner = list(first["loc"])
    first["loc"] = (table, *inner) if table else tuple(inner)
    line = None
    # A missing key has no line of its own: the table it belongs in has.
    for depth in range(len(first["loc"]), 0, -1):
        line = _key_line(text, first["loc"][:depth])
        if line is not None:
            break
    where = f"{source}:{line}" if line else str(source)
    # The environment wins over the file, so a bad value set in both came from the variable.
    # List indexes in ``loc`` are not part of a variable's name; a whole table may be one.
    names = [p for p in first["loc"] if isinstance(p, str)]
    variable = _variable_for(names, os.environ)
    if variable is not None:
        where = f"environment variable {variable}"
    more = len(errors) - 1
    tail = f" (+{more} more)" if more else ""
    unknown_table = table is None and len(inner) == 1 and first["type"] == "extra_forbidden"
    path = [p for p in inner if isinstance(p, str)]
    described = _describe(
        first,
        _known_keys(inner, root),
        tables=known_tables() if unknown_table else (),
        holds=_model_at(path, root) if path else None,
    )
    return ConfigError(f"{where}: {described}{tail}")


def _plugin_table(
    source: Path, text: str, name: str, raw: Any, entry: EntryPoint
) -> dict[str, Any]:
    """The ``[name]`` table, checked by the settings model of the plugin that claims it.

    A plugin that cannot be loaded is not the config's fault: its table is kept as written,
    and building its providers reports the problem on its status line.
    """
    try:
        plugin = load_plugin(entry)
    except PluginLoadError as exc:
        log.warning("provider plugin %s: %s", name, exc)
        return raw if isinstance(raw, dict) else {}
    model = plugin.settings_model
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(source, text, exc.errors(), model, table=name) from None
    except Exception as exc:
        # A bug in the plugin's validators, not in the config: its status line will say so.
        log.warning("provider plugin %s: its settings model failed: %r", name, exc)
        return raw if isinstance(raw, dict) else {}
    # A model that ignores unknown keys would let a misspelt one pass silently.
    if model.model_config.get("extra") not in {"forbid", "allow"}:
        accepted = _accepted_keys(model)
        unknown = [key for key in raw if key not in accepted]
        if unknown:
            error = {"type": "extra_forbidden", "loc": (unknown[0],), "msg": "", "input": None}
            raise _config_error(source, text, [error], model, table=name)
    return dict(raw)


def _accepted_keys(model: type[BaseModel]) -> set[str]:
    """The keys ``model`` reads: its field names and their string aliases."""
    keys = set(model.model_fields)
    for info in model.model_fields.values():
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                keys.add(alias)
    return keys
