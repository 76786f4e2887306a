"""Checkpoints found by name, grouped, marked newest and best; keep-last-N and the warnings.

Everything here is pure: the sources (``listing_local``, ``listing_remote``, ``listing_s3``)
walk their storage, hand :func:`build_listing` flat :class:`FileEntry` rows and the few
``trainer_state.json`` files they read, and get a :class:`Listing` back. The same rules then
hold for a local disk, an instance's disk over SFTP and an S3 prefix.

What counts as a checkpoint, by name:

- directories: Hugging Face ``checkpoint-500/``, DeepSpeed ``global_step1200/``, Megatron
  ``iter_0001000/``, ``step_1000/``, ``checkpoint_3/`` (Accelerate), ``checkpoint-best/``;
  everything below one is part of it and its size is the sum of its files;
- files: ``.pt``, ``.pth``, ``.pth.tar``, ``.ckpt``, ``.bin``, ``.safetensors``, ``.npz``,
  ``.h5``/``.hdf5``/``.keras``, ``.msgpack``; sharded files (``model-00001-of-00004.safetensors``)
  are one checkpoint together with their ``.index.json``.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from runctl_tui.text import one_line

DEFAULT_DEPTH = 3
"""How many directory levels below the listed one are searched for checkpoints."""
INSIDE_DEPTH = 8
"""How deep a checkpoint directory's own files are summed."""
MAX_ENTRIES = 200_000
"""A listing stops after this many files and says so."""
TRAINER_STATE = "trainer_state.json"
TRAINER_STATE_MAX_BYTES = 32 * 1024 * 1024
"""A bigger ``trainer_state.json`` is not read (its log history would be most of it)."""
STATES_READ = 2
"""How many checkpoint directories' ``trainer_state.json`` are read: the newest by step."""

# ---------------------------------------------------------------------------------------------
# Names

WEIGHT_SUFFIXES = (
    ".pth.tar",
    ".pt",
    ".pth",
    ".ckpt",
    ".bin",
    ".safetensors",
    ".npz",
    ".h5",
    ".hdf5",
    ".keras",
    ".msgpack",
)
"""File endings that mark a checkpoint file, longest first."""
NOT_CHECKPOINTS = frozenset({"training_args.bin", "scheduler.pt", "scaler.pt"})
"""Files with a checkpoint ending that hold no weights (Hugging Face Trainer's companions)."""
_RNG_STATE = re.compile(r"rng_state(?:_\d+)?\.pth")

_CHECKPOINT_DIR = re.compile(
    r"(?:checkpoint|ckpt)[-_]?(?P<step>\d+)"
    r"|(?:checkpoint|ckpt)[-_](?P<label>best|last|latest|final)"
    r"|global[-_]?step[-_]?(?P<global_step>\d+)"
    r"|iter(?:ation)?[-_]?(?P<iter>\d+)"
    r"|step[-_]?(?P<step_dir>\d+)",
    re.IGNORECASE,
)
_SHARD = re.compile(r"^(?P<prefix>.+?)-(?P<index>\d{5})-of-(?P<total>\d{5})$")
_VERSION = re.compile(r"-v\d+$")
"""Lightning's suffix for a name saved twice (``last-v1.ckpt``)."""
_KEY = r"[A-Za-z_][A-Za-z0-9_./]*"
_PAIR = re.compile(rf"(?:^|[-_ ])(?P<key>{_KEY})=(?P<value>.*?)(?=-{_KEY}=|_{_KEY}=|$)")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STEP_LABEL = re.compile(
    r"(?:^|[-_.])(?:global[-_]?)?(?:steps?|iter|iteration|it)[-_]?(?P<n>\d+)(?=$|[-_.])",
    re.IGNORECASE,
)
_EPOCH_LABEL = re.compile(r"(?:^|[-_.])(?:epoch|ep)[-_]?(?P<n>\d+)(?=$|[-_.])", re.IGNORECASE)
_TRAILING_STEP = re.compile(
    r"^(?:[a-z]+[-_])*(?:checkpoint|ckpt|model|weights|snapshot|state|save|net)[-_.]?(?P<n>\d+)$",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"^\d+$")
_WORDS = re.compile(r"[a-z0-9]+")

LOWER_IS_BETTER = frozenset(
    {
        "loss",
        "losses",
        "perplexity",
        "ppl",
        "error",
        "err",
        "wer",
        "cer",
        "mse",
        "mae",
        "rmse",
        "nll",
        "bpd",
        "bpb",
        "fid",
        "cost",
        "distance",
        "regret",
    }
)
HIGHER_IS_BETTER = frozenset(
    {
        "acc",
        "accuracy",
        "acc1",
        "acc5",
        "top1",
        "top5",
        "f1",
        "bleu",
        "rouge",
        "rouge1",
        "rouge2",
        "rougel",
        "auc",
        "auroc",
        "map",
        "iou",
        "miou",
        "precision",
        "recall",
        "score",
        "reward",
        "return",
        "psnr",
        "ssim",
        "dice",
        "r2",
        "em",
        "mrr",
        "ndcg",
        "sacrebleu",
        "chrf",
        "meteor",
        "pass",
        "win",
    }
)


def lower_is_better(metric: str) -> bool | None:
    """Whether a lower ``metric`` is better: ``val_loss`` yes, ``val_acc`` no, ``lr`` unknown."""
    words = _WORDS.findall(metric.lower())
    if any(word in LOWER_IS_BETTER for word in words):
        return True
    if any(word in HIGHER_IS_BETTER for word in words):
        return False
    return None


class Metric(BaseModel):
    """A metric value a checkpoint's name (or its trainer state) records."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    value: float
    lower_is_better: bool | None = None
    """``None`` when the name does not tell (``lr``, ``temperature``)."""

    def label(self) -> str:
        """``val_loss=0.4123``."""
        return f"{self.name}={self.value:g}"


@dataclass(frozen=True)
class NameInfo:
    """What a checkpoint's name says about it."""

    step: int | None = None
    epoch: int | None = None
    metrics: tuple[Metric, ...] = ()
    named_best: bool = False
    """``best.pt``, ``model_best.pth.tar``, ``checkpoint-best/``."""
    named_last: bool = False
    """``last.ckpt``, ``latest.pt``."""
    shard: tuple[str, int, int] | None = None
    """For ``model-00002-of-00004.safetensors``: (``model``, 2, 4)."""


_SINGLE_SUFFIXES = frozenset(suffix for suffix in WEIGHT_SUFFIXES if suffix.count(".") == 1)


def weight_suffix(name: str) -> str | None:
    """The checkpoint ending of a file name (``.pth.tar``, ``.safetensors``), else ``None``."""
    dot = name.rfind(".")
    if dot <= 0:
        return None
    ending = name[dot:].lower()
    if ending in _SINGLE_SUFFIXES:
        return ending
    if ending == ".tar" and name[:dot].lower().endswith(".pth") and dot > 4:
        return ".pth.tar"
    return None


def is_checkpoint_file(name: str) -> bool:
    """Whether a file of this name holds a checkpoint (or one shard of one)."""
    if weight_suffix(name) is None:
        return False
    lowered = name.lower()
    return lowered not in NOT_CHECKPOINTS and not _RNG_STATE.fullmatch(lowered)


def is_checkpoint_dir(name: str) -> bool:
    """Whether a directory of this name is a checkpoint (``checkpoint-500``, ``global_step12``)."""
    return _CHECKPOINT_DIR.fullmatch(name) is not None


def shard_index_name(name: str) -> str | None:
    """For ``model.safetensors.index.json``, ``model.safetensors``: the shards' index file."""
    if name.endswith(".index.json"):
        inner = name.removesuffix(".index.json")
        if weight_suffix(inner) is not None:
            return inner
    return None


def _number(text: str) -> float | None:
    if not re.fullmatch(_NUMBER, text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


@lru_cache(maxsize=65536)
def parse_name(name: str) -> NameInfo:
    """Step, epoch, metrics and shard of a checkpoint file or directory name.

    ``epoch=3-step=1200-val_loss=0.4123.ckpt`` gives epoch 3, step 1200 and ``val_loss``
    (lower is better); ``checkpoint-500`` step 500; ``model_0005000.pt`` step 5000;
    ``model-00001-of-00004.safetensors`` shard 1 of 4 of ``model``.
    """
    suffix = weight_suffix(name)
    stem = name[: -len(suffix)] if suffix else name
    shard: tuple[str, int, int] | None = None
    if found := _SHARD.match(stem):
        shard = (found["prefix"], int(found["index"]), int(found["total"]))
        stem = found["prefix"]
    stem = _VERSION.sub("", stem)
    step: int | None = None
    epoch: int | None = None
    metrics: list[Metric] = []
    rest = stem
    if "=" in stem:
        for pair in _PAIR.finditer(stem):
            key, value = pair["key"], _VERSION.sub("", pair["value"])
            number = _number(value)
            if number is None:
                continue
            lowered = key.lower()
            if lowered in {"epoch", "ep"}:
                epoch = int(number)
            elif lowered in {"step", "steps", "global_step", "iter", "iteration", "it"}:
                step = int(number)
            else:
                metrics.append(Metric(name=key, value=number, lower_is_better=lower_is_better(key)))
        rest = _PAIR.sub("", stem)
    if directory := _CHECKPOINT_DIR.fullmatch(stem):
        numbers = [directory[g] for g in ("step", "global_step", "iter", "step_dir")]
        found_step = next((n for n in numbers if n is not None), None)
        if found_step is not None and step is None:
            step = int(found_step)
    if step is None and (found := _STEP_LABEL.search(rest)):
        step = int(found["n"])
    if epoch is None and (found := _EPOCH_LABEL.search(rest)):
        epoch = int(found["n"])
    if step is None and epoch is None:
        if found := _TRAILING_STEP.match(rest):
            step = int(found["n"])
        elif _DIGITS.match(rest):
            step = int(rest)
    words = set(_WORDS.findall(rest.lower()))
    return NameInfo(
        step=step,
        epoch=epoch,
        metrics=tuple(metrics),
        named_best="best" in words,
        named_last=bool(words & {"last", "latest"}),
        shard=shard,
    )


# ---------------------------------------------------------------------------------------------
# Hugging Face trainer state


@dataclass(frozen=True)
class TrainerState:
    """The parts of a Hugging Face ``trainer_state.json`` a listing uses."""

    global_step: int | None = None
    epoch: float | None = None
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    """As the trainer wrote it: a path relative to where training ran, or absolute."""


def parse_trainer_state(data: bytes) -> TrainerState:
    """A ``trainer_state.json``'s step, epoch and best checkpoint; ``ValueError`` (one line)
    when it is not such a file."""
    try:
        loaded = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {one_line(exc, 120)}") from None
    if not isinstance(loaded, dict):
        raise ValueError("not a JSON object")

    def number(key: str) -> float | None:
        value = loaded.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) else None

    step = number("global_step")
    best = loaded.get("best_model_checkpoint")
    return TrainerState(
        global_step=int(step) if step is not None else None,
        epoch=number("epoch"),
        best_metric=number("best_metric"),
        best_model_checkpoint=best if isinstance(best, str) and best else None,
    )


# ---------------------------------------------------------------------------------------------
# The listing


class LocationKind(StrEnum):
    """Where a checkpoint lives."""

    LOCAL = "local"
    SSH = "ssh"
    """On an SSH host's (an instance's) disk."""
    S3 = "s3"


class Checkpoint(BaseModel):
    """One checkpoint: a file, a set of shards, or a checkpoint directory."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    """Its path relative to the listed directory (``run1/checkpoint-500``); shards as
    ``model-*-of-00004.safetensors``."""
    path: str
    """Where to find it: a local or remote path, or an ``s3://`` URL. For shards, the
    directory holding them."""
    kind: LocationKind
    where: str
    """``this machine``, the SSH target (``ubuntu@gpu-1``), or ``s3://bucket``."""
    size: int
    """Bytes: a directory's or a shard set's total."""
    modified: datetime
    """The newest modification time of anything in it; UTC."""
    is_dir: bool = False
    files: int = 1
    step: int | None = None
    epoch: float | None = None
    metrics: tuple[Metric, ...] = ()
    members: tuple[str, ...] = ()
    """What deleting it removes: the file, the directory, or every shard and the index."""
    shards: int | None = None
    """How many shards the names promise (``-of-00004``), for sharded checkpoints."""
    shards_present: int | None = None
    newest: bool = False
    best: bool = False
    best_reason: str = ""
    """Why it is the best, in one line (``lowest val_loss=0.4123``)."""
    named_best: bool = False
    named_last: bool = False

    @property
    def metric(self) -> Metric | None:
        """The first metric its name records."""
        return self.metrics[0] if self.metrics else None

    @property
    def complete(self) -> bool:
        """False for a shard set with shards missing (still being written, or broken)."""
        return self.shards is None or self.shards_present == self.shards

    def basename(self) -> str:
        """The last part of its name: ``checkpoint-500``, ``epoch=3-step=1200.ckpt``."""
        return self.name.rstrip("/").rsplit("/", 1)[-1]


class Listing(BaseModel):
    """The checkpoints in one directory (or S3 prefix), newest first."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    directory: str
    """As given (``~/train/checkpoints``, ``s3://bucket/run1``)."""
    kind: LocationKind
    where: str
    listed_at: datetime
    checkpoints: tuple[Checkpoint, ...] = ()
    total_size: int = 0
    """The checkpoints' bytes together."""
    notes: tuple[str, ...] = ()
    """Things skipped or unreadable, one line each."""
    error: str | None = None
    """Why nothing could be listed (no such directory, no permission, no answer)."""
    complete: bool = True
    """False when files were left out (too many, or a directory could not be read): the
    newest checkpoint may be among them, so nothing is deleted on the strength of it."""

    @property
    def newest(self) -> Checkpoint | None:
        """The most recently written checkpoint."""
        return self.checkpoints[0] if self.checkpoints else None

    @property
    def best(self) -> Checkpoint | None:
        """The checkpoint marked best, if any."""
        return next((c for c in self.checkpoints if c.best), None)

    def same_as(self, other: Listing | None) -> bool:
        """Whether ``other`` lists the same checkpoints, notes and error (listing time aside)."""
        if other is None:
            return False
        return (self.checkpoints, self.notes, self.error) == (
            other.checkpoints,
            other.notes,
            other.error,
        )


def failed_listing(
    directory: str, kind: LocationKind, where: str, error: str, *, now: datetime | None = None
) -> Listing:
    """A listing that found nothing because of ``error`` (cleaned to one line)."""
    return Listing(
        directory=one_line(directory, 300),
        kind=kind,
        where=where,
        listed_at=now or datetime.now(UTC),
        error=one_line(error, 300),
    )


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file (or a checkpoint directory itself) a source found, relative to the listed one."""

    parts: tuple[str, ...]
    size: int
    mtime: float
    """Seconds since the epoch."""
    is_dir: bool = False


def checkpoint_dir_index(parts: Sequence[str], max_depth: int = DEFAULT_DEPTH) -> int | None:
    """Which of ``parts`` (directories of a file's path) is a checkpoint directory, searched
    within ``max_depth`` levels; ``None`` if none is."""
    for index, part in enumerate(parts[:max_depth]):
        if is_checkpoint_dir(part):
            return index
    return None


def wanted_outside(name: str) -> bool:
    """Whether a file outside checkpoint directories matters to a listing (saves a stat)."""
    return is_checkpoint_file(name) or name == TRAINER_STATE or shard_index_name(name) is not None


class Walk:
    """What one walk of a directory tree found, and the rules it follows; the walks over a local
    disk and over SFTP read the entries their own way and ask these rules of each."""

    def __init__(self, max_depth: int, max_entries: int) -> None:
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.entries: list[FileEntry] = []
        self.states: list[FileEntry] = []
        """``trainer_state.json`` files seen, to pick the ones worth reading."""
        self.trainer_states: dict[tuple[str, ...], TrainerState] = {}
        """The ones read, by the directory they are in."""
        self.notes: list[str] = []
        self.truncated = False
        self.complete = True

    def note(self, parts: tuple[str, ...], what: str) -> None:
        """Say something about ``parts`` (below the root), up to 20 notes."""
        if len(self.notes) < 20:
            self.notes.append(one_line(f"{'/'.join(parts) or '.'}: {what}", 300))

    def not_listed(self, parts: tuple[str, ...], why: str) -> None:
        """A directory could not be read: the listing is incomplete."""
        self.note(parts, f"not listed: {why}")
        self.complete = False

    def full(self) -> bool:
        """Whether :attr:`max_entries` are found: the walk stops, the listing is incomplete."""
        if len(self.entries) >= self.max_entries:
            self.truncated = True
        return self.truncated

    def directory(
        self, child: tuple[str, ...], inside: bool, mtime: Callable[[], float]
    ) -> bool | None:
        """Whether to walk into the directory ``child``: ``True`` as (or within) a checkpoint
        directory, which is then recorded with ``mtime()``; ``False`` as a plain one; ``None``
        not at all (too deep)."""
        depth = len(child) - 1
        if inside:
            if depth + 1 < INSIDE_DEPTH:
                return True
            self.note(child, "too deep; its size is not counted")
            return None
        if depth >= self.max_depth:
            return None
        if is_checkpoint_dir(child[-1]):
            self.entries.append(FileEntry(child, 0, mtime(), True))
            return True
        return False

    def file(self, child: tuple[str, ...], size: int, mtime: float) -> None:
        """Record the file ``child``."""
        found = FileEntry(child, size, mtime)
        self.entries.append(found)
        if child[-1] == TRAINER_STATE:
            self.states.append(found)

    def read(self, entry: FileEntry, state: TrainerState | str) -> None:
        """Keep what reading the trainer state ``entry`` gave, or why it could not be read."""
        if isinstance(state, str):
            self.notes.append(state)
        else:
            self.trainer_states[entry.parts[:-1]] = state

    def finish(self) -> None:
        """The walk is over: say so if it stopped early."""
        if self.truncated:
            self.notes.append(f"stopped after {self.max_entries} files; the listing is incomplete")

    def listing(
        self,
        *,
        directory: str,
        kind: LocationKind,
        where: str,
        join: Callable[[tuple[str, ...]], str],
        listed_at: datetime,
    ) -> Listing:
        """The listing of what was found."""
        return build_listing(
            self.entries,
            directory=directory,
            kind=kind,
            where=where,
            join=join,
            listed_at=listed_at,
            trainer_states=self.trainer_states,
            notes=self.notes,
            max_depth=self.max_depth,
            complete=self.complete and not self.truncated,
        )


def pick_trainer_states(candidates: Iterable[FileEntry]) -> list[FileEntry]:
    """Which ``trainer_state.json`` files to read: those outside checkpoint directories, and
    those of the :data:`STATES_READ` checkpoint directories with the highest steps (the newest
    one holds the current best), none bigger than :data:`TRAINER_STATE_MAX_BYTES`."""
    outside: list[FileEntry] = []
    inside: list[tuple[int, float, FileEntry]] = []
    for entry in candidates:
        if entry.size > TRAINER_STATE_MAX_BYTES:
            continue
        index = checkpoint_dir_index(entry.parts[:-1], len(entry.parts))
        if index is None:
            outside.append(entry)
        elif index == len(entry.parts) - 2:
            step = parse_name(entry.parts[index]).step
            inside.append((step if step is not None else -1, entry.mtime, entry))
    inside.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return outside + [entry for _, _, entry in inside[:STATES_READ]]


@dataclass
class _Group:
    """A checkpoint being assembled from entries."""

    key: tuple[str, ...]
    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    files: int = 0
    members: list[tuple[str, ...]] = field(default_factory=list)
    info: NameInfo = field(default_factory=NameInfo)
    shard_indexes: set[int] = field(default_factory=set)
    epoch: float | None = None
    step: int | None = None

    dir_mtime: float = 0.0

    def add(self, entry: FileEntry) -> None:
        # A directory's own time changes when anything in it is added, renamed or removed,
        # even long after the checkpoint was written: its files' times say when that was.
        if entry.is_dir:
            self.dir_mtime = max(self.dir_mtime, entry.mtime)
        else:
            self.mtime = max(self.mtime, entry.mtime)
            self.size += entry.size
            self.files += 1


def _timestamp(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, UTC)


def _best_by_state(
    groups: Sequence[_Group], states: Mapping[tuple[str, ...], TrainerState]
) -> tuple[_Group, str] | None:
    """The checkpoint the newest trainer state names as best, and why."""
    ranked = sorted(
        states.items(),
        key=lambda item: item[1].global_step if item[1].global_step is not None else -1,
        reverse=True,
    )
    for parent, state in ranked:
        if state.best_model_checkpoint is None:
            continue
        wanted = posixpath.basename(state.best_model_checkpoint.replace("\\", "/").rstrip("/"))
        matches = [g for g in groups if g.is_dir and g.key[-1] == wanted]
        if not matches:
            continue
        # Prefer the run the state file belongs to: its directory or its parent's.
        home = parent if not parent or not is_checkpoint_dir(parent[-1]) else parent[:-1]
        matches.sort(key=lambda g: (g.key[:-1] != home, -g.mtime))
        metric = f" (best_metric {state.best_metric:g})" if state.best_metric is not None else ""
        return matches[0], one_line(f"trainer_state.json names it best{metric}", 120)
    return None


def _best_by_metric(groups: Sequence[_Group]) -> tuple[_Group, str] | None:
    """The checkpoint with the best value of the metric most names record."""
    counts: dict[str, int] = {}
    for group in groups:
        for metric in group.info.metrics:
            if metric.lower_is_better is not None:
                counts[metric.name] = counts.get(metric.name, 0) + 1
    if not counts:
        return None
    name = max(counts, key=lambda key: counts[key])
    scored: list[tuple[float, float, _Group, Metric]] = []
    for group in groups:
        for metric in group.info.metrics:
            if metric.name == name:
                value = metric.value if metric.lower_is_better else -metric.value
                scored.append((value, -group.mtime, group, metric))
                break
    scored.sort(key=lambda item: (item[0], item[1]))
    _, _, chosen, best = scored[0]
    word = "lowest" if best.lower_is_better else "highest"
    return chosen, one_line(f"{word} {best.label()}", 120)


def _best_by_name(groups: Sequence[_Group]) -> tuple[_Group, str] | None:
    named = [g for g in groups if g.info.named_best]
    if not named:
        return None
    return max(named, key=lambda g: g.mtime), "named best"


def build_listing(
    entries: Iterable[FileEntry],
    *,
    directory: str,
    kind: LocationKind,
    where: str,
    join: Callable[[tuple[str, ...]], str],
    listed_at: datetime | None = None,
    trainer_states: Mapping[tuple[str, ...], TrainerState] | None = None,
    notes: Sequence[str] = (),
    max_depth: int = DEFAULT_DEPTH,
    complete: bool = True,
) -> Listing:
    """Group ``entries`` into checkpoints, mark the newest and the best, sort newest first.

    ``join`` turns relative parts into the full path (or URL) shown and acted on;
    ``trainer_states`` maps a directory's parts (``()`` for the listed one) to the state read
    from its ``trainer_state.json``.
    """
    states = dict(trainer_states or {})
    groups: dict[tuple[str, ...], _Group] = {}
    indexes: dict[tuple[str, ...], FileEntry] = {}
    for entry in entries:
        parts = entry.parts
        dirs = parts if entry.is_dir else parts[:-1]
        index = checkpoint_dir_index(dirs, max_depth)
        if index is not None:
            key = parts[: index + 1]
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(key, "/".join(key), True, info=parse_name(key[-1]))
                group.members.append(key)
            group.add(entry)
            continue
        if entry.is_dir or len(dirs) > max_depth:
            continue
        name = parts[-1]
        if shard_index_name(name) is not None:
            indexes[parts] = entry
            continue
        if not is_checkpoint_file(name):
            continue
        info = parse_name(name)
        if info.shard is not None:
            prefix, number, total = info.shard
            suffix = weight_suffix(name) or ""
            shown = f"{prefix}-*-of-{total:05d}{suffix}"
            key = (*dirs, shown)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(key, "/".join(key), False, info=info)
            group.shard_indexes.add(number)
        else:
            key = parts
            group = groups[key] = _Group(key, "/".join(key), False, info=info)
        group.members.append(parts)
        group.add(entry)
    for parts, entry in indexes.items():
        shard_name = shard_index_name(parts[-1]) or ""
        suffix = weight_suffix(shard_name) or ""
        prefix = shard_name[: -len(suffix)] if suffix else shard_name
        for group in groups.values():
            shard = group.info.shard
            if (
                shard is not None
                and group.key[:-1] == parts[:-1]
                and shard[0] == prefix
                and group.key[-1].endswith(suffix)
            ):
                group.members.append(parts)
                group.add(entry)
                break
    found = list(groups.values())
    for group in found:
        if not group.files:
            group.mtime = group.dir_mtime
        group.step = group.info.step
        group.epoch = float(group.info.epoch) if group.info.epoch is not None else None
        state = states.get(group.key) if group.is_dir else None
        if state is not None:
            if group.step is None:
                group.step = state.global_step
            if group.epoch is None:
                group.epoch = state.epoch
    found.sort(key=lambda g: (g.mtime, g.step if g.step is not None else -1, g.name), reverse=True)
    best = _best_by_state(found, states) or _best_by_metric(found) or _best_by_name(found)
    all_notes = [one_line(note, 300) for note in notes]
    checkpoints: list[Checkpoint] = []
    for position, group in enumerate(found):
        shards = group.info.shard[2] if group.info.shard is not None else None
        present = len(group.shard_indexes) if shards is not None else None
        if shards is not None and present != shards:
            all_notes.append(one_line(f"{group.name}: {present} of {shards} shards present", 300))
        is_best = best is not None and best[0] is group
        members = tuple(join(member) for member in group.members)
        if shards is not None:
            path = join(group.key[:-1])
        else:
            path = members[0] if group.members[0] == group.key else join(group.key)
        checkpoints.append(
            Checkpoint(
                name=one_line(group.name, 1000),
                path=path,
                kind=kind,
                where=where,
                size=group.size,
                modified=_timestamp(group.mtime),
                is_dir=group.is_dir,
                files=group.files,
                step=group.step,
                epoch=group.epoch,
                metrics=group.info.metrics,
                members=members,
                shards=shards,
                shards_present=present,
                newest=position == 0,
                best=is_best,
                best_reason=best[1] if is_best and best is not None else "",
                named_best=group.info.named_best,
                named_last=group.info.named_last,
            )
        )
    return Listing(
        directory=one_line(directory, 300),
        kind=kind,
        where=where,
        listed_at=listed_at or datetime.now(UTC),
        checkpoints=tuple(checkpoints),
        total_size=sum(c.size for c in checkpoints),
        notes=tuple(all_notes),
        complete=complete,
    )


# ---------------------------------------------------------------------------------------------
# Keep the last N


class Kept(BaseModel):
    """A checkpoint a keep-last-N plan leaves alone, and why."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    checkpoint: Checkpoint
    reasons: tuple[str, ...]


class KeepPlan(BaseModel):
    """What keeping the last N checkpoints would delete, and what it keeps and why."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    n: int
    delete: tuple[Checkpoint, ...] = ()
    keep: tuple[Kept, ...] = ()
    bytes_freed: int = 0
    refusal: str | None = None
    """Why nothing at all is deleted (``N must be at least 1``, the listing failed)."""


def _is_open(checkpoint: Checkpoint, open_for_writing: set[str]) -> bool:
    if not open_for_writing:
        return False
    paths = {checkpoint.path, *checkpoint.members}
    if paths & open_for_writing:
        return True
    if checkpoint.is_dir:
        prefixes = tuple(p.rstrip("/") + "/" for p in paths)
        return any(path.startswith(prefixes) for path in open_for_writing)
    return False


def plan_keep_last(listing: Listing, n: int, *, open_for_writing: set[str]) -> KeepPlan:
    """Which checkpoints "keep the last ``n``" deletes: all but the ``n`` newest, never the
    newest, the best, one open for writing (``open_for_writing`` holds full paths, as in
    :attr:`Checkpoint.members`), or a shard set with shards missing. Nothing when ``n < 1``
    or when the listing failed or is incomplete."""
    if n < 1:
        refusal = f"keep-last needs N of at least 1, not {n}; nothing deleted"
        kept = tuple(Kept(checkpoint=c, reasons=("N < 1",)) for c in listing.checkpoints)
        return KeepPlan(n=n, keep=kept, refusal=refusal)
    if listing.error is not None:
        return KeepPlan(n=n, refusal=f"the listing failed, nothing deleted: {listing.error}")
    if not listing.complete:
        kept = tuple(
            Kept(checkpoint=c, reasons=("listing incomplete",)) for c in listing.checkpoints
        )
        return KeepPlan(
            n=n, keep=kept, refusal="the listing is incomplete (see its notes); nothing deleted"
        )
    delete: list[Checkpoint] = []
    keep: list[Kept] = []
    for position, checkpoint in enumerate(listing.checkpoints):
        reasons: list[str] = []
        if position < n:
            reasons.append(f"among the newest {n}")
        if checkpoint.newest:
            reasons.append("newest")
        if checkpoint.best:
            reasons.append(f"best ({checkpoint.best_reason})" if checkpoint.best_reason else "best")
        if _is_open(checkpoint, open_for_writing):
            reasons.append("open for writing")
        if not checkpoint.complete:
            reasons.append(
                f"incomplete ({checkpoint.shards_present} of {checkpoint.shards} shards)"
            )
        if reasons:
            keep.append(Kept(checkpoint=checkpoint, reasons=tuple(reasons)))
        else:
            delete.append(checkpoint)
    return KeepPlan(
        n=n, delete=tuple(delete), keep=tuple(keep), bytes_freed=sum(c.size for c in delete)
    )


# ---------------------------------------------------------------------------------------------
# Warnings


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min"


def stale_warning(
    newest_modified: datetime | None,
    now: datetime,
    threshold: timedelta,
    *,
    name: str = "",
    since: datetime | None = None,
) -> str | None:
    """ "No new checkpoint for N minutes" as one line, or ``None`` while checkpoints are fresh.

    Without a checkpoint at all, ``since`` (when the run started) stands in for the newest
    one; without either there is nothing to measure and no warning.
    """
    if newest_modified is None:
        if since is None or now - since < threshold:
            return None
        return f"no checkpoint yet, {_minutes(now - since)} after the run started"
    age = now - newest_modified
    if age < threshold:
        return None
    what = f" (newest: {one_line(name, 80)})" if name else ""
    return f"no new checkpoint for {_minutes(age)}{what}"


@dataclass(frozen=True)
class CopyCheck:
    """Whether an instance's newest checkpoint has a copy somewhere else."""

    copy: Checkpoint | None
    """The copy found, if any."""
    warning: str | None
    """One line for the terminate confirmation when no copy was found."""


def size_text(size: int) -> str:
    """``1.5 GiB``: a byte count in binary units, as the checkpoint messages say sizes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def find_copy(name: str, step: int | None, size: int, elsewhere: Sequence[Listing]) -> CopyCheck:
    """Look for the instance's newest checkpoint (``name``, ``step``, ``size``) in the listings
    of the configured S3 prefix and local directory: same name and size, or same step."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    for listing in elsewhere:
        for checkpoint in listing.checkpoints:
            if checkpoint.basename() == base and checkpoint.size == size:
                return CopyCheck(checkpoint, None)
    for listing in elsewhere:
        for checkpoint in listing.checkpoints:
            if step is not None and checkpoint.step == step:
                return CopyCheck(checkpoint, None)
    searched = [lst.directory for lst in elsewhere if lst.error is None]
    failed = [lst.directory for lst in elsewhere if lst.error is not None]
    what = one_line(base, 80)
    if step is not None:
        what += f" (step {step}, {size_text(size)})"
    else:
        what += f" ({size_text(size)})"
    text = f"the newest checkpoint {what} exists only on this instance's disk"
    if searched:
        text += f": no copy in {', '.join(searched)}"
    if failed:
        text += f"{';' if searched else ':'} could not check {', '.join(failed)}"
    if not elsewhere:
        text += ": no S3 prefix or local directory is configured to copy it to"
    return CopyCheck(None, one_line(text, 400))


def failure_reason(exc: BaseException) -> str:
    """Why a storage call failed, in one line: an S3 error's code and message, an SSH or SFTP
    error's reason, an OS error's text, else the exception itself."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = str(error.get("Code", "") or "")
        message = " ".join(str(error.get("Message", "") or "").split())
        if code:
            return one_line(f"{code}{': ' + message if message else ''}", 200)
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return one_line(reason, 200)
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror, 200)
    return one_line(str(exc) or type(exc).__name__, 200)
