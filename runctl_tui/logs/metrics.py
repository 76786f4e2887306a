"""Training metrics read from log lines: step, epoch, losses, learning rate, throughput, ETA.

Pure functions, no I/O. :func:`parse_metrics` understands the formats training scripts print
most: Hugging Face Trainer dicts (Python ``repr``, not JSON), PyTorch Lightning and tqdm
progress bars, ``key=value`` / ``key: value`` / ``key value`` lines and JSON lines.
:class:`MetricsSeries` accumulates samples into bounded histories for the loss curve, the
latest values, progress and ETA.

A log line is untrusted text: every value comes from a number token matched in full (a word
that merely starts with digits, a version, an address or a time of day gives nothing), and
every name is reduced to ``[0-9a-z_]`` before it is kept, so it is safe to show.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from functools import lru_cache

MAX_LINE = 4096
"""Characters of a line that are looked at: a 10 MB line costs no more than a short one."""
MAX_EXTRA = 32
"""Other numeric values kept per sample, beyond the known fields."""
MAX_LATEST = 256
"""Names :attr:`MetricsSeries.latest` holds at most: a long log printing ever new names (one
per worker, per file) cannot grow it without bound. Names already held keep updating."""

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

_NUM = (
    r"[-+]?(?:(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][-+]?\d{1,4})?"
    r"|(?i:nan|inf(?:inity)?))"
)
_END = r"(?![\w.])(?!:\d)"
"""A number ends here: not inside a word, a version, an address or a time of day."""

_PAIR = re.compile(
    r"(?<![\w./-])(?P<q1>['\"]?)(?P<key>[A-Za-z_][\w./-]{0,62})(?P=q1)"
    r"(?P<sep>[ \t]*[=:][ \t]*|[ \t]+)"
    r"(?P<q2>['\"]?)\[?(?:(?:np\.)?float\d{0,2}\(|tensor\()?"
    rf"(?P<val>{_NUM})\)?(?:/(?P<of>\d{{1,15}}))?\]?(?P=q2)" + _END
)
_RATE = re.compile(
    rf"(?<![\w.])(?P<num>{_NUM})[ \t]*"
    r"(?P<unit>samples?|examples?|ex|seqs?|sequences?|imgs?|images?|tokens?|toks?|tok"
    r"|its?|iters?|iterations?|steps?|batch(?:es)?)[ \t]*/[ \t]*(?:s|sec|second)\b"
    r"(?![ \t]*[=:])"  # ``tokens/s=512``: a name, its value comes after
)
_INVERSE_RATE = re.compile(
    rf"(?<![\w.])(?P<num>{_NUM})[ \t]*(?P<unit>s|ms)[ \t]*/[ \t]*(?:it|iter|step|batch)\b"
)
# Where a rate may end: a plain scan for these is far cheaper than trying the whole rate
# pattern at every position, and the rate pattern then runs only just before each.
_RATE_END = re.compile(r"/[ \t]*(?:s|sec|second)\b(?![ \t]*[=:])")
_INVERSE_RATE_END = re.compile(r"/[ \t]*(?:it|iter|step|batch)\b")
_NUM_REACH = 80
"""More characters than the longest number token :data:`_NUM` can match."""
_CLOCK = r"(?:\d{1,6}:)?\d{1,6}:\d{2}"
_TQDM = re.compile(
    r"(?P<n>\d{1,15})/(?P<total>\d{1,15})[ \t]*"
    rf"\[(?P<elapsed>{_CLOCK})<(?P<left>{_CLOCK}|\?)(?P<rest>[^\]]{{0,500}})\]"
)
_TQDM_OPEN = re.compile(
    rf"(?<![\w.])(?P<n>\d{{1,15}})(?:it)?[ \t]*\[(?P<elapsed>{_CLOCK})(?P<rest>,[^\]]{{0,500}})\]"
)
_TQDM_BAR = re.compile(r"\d{1,3}%\|[^|]{0,200}\|\s*$")
_NOT_TRAINING = re.compile(
    r"load|download|map|filter|token|fetch|generat|extract|resolv|sav|upload|valid|eval"
    r"|test|predict|sanity|shard|convert|process|writ|read|copy|build|compil|index|cach"
    r"|unpack|verif|infer",
    re.IGNORECASE,
)
_DURATION = (
    r"(?P<clock>(?:(?P<days>\d{1,4})[ \t]*(?:days?|d),?[ \t]*)?" + _CLOCK + r"(?:\.\d{1,6})?)"
    r"|(?P<units>(?:\d{1,9}(?:\.\d{1,6})?[ \t]*(?:days?|d|hrs?|h|mins?|m|secs?|s)[ \t]*){1,4})"
    r"|(?P<secs>\d{1,9}(?:\.\d{1,6})?)"
)
_ETA = re.compile(
    r"(?<![\w.])(?i:eta|time[_ ]left|remaining(?:[_ ]time)?)['\"]?[ \t]*[=:]?[ \t]*['\"]?"
    rf"(?:{_DURATION})(?![\w:.])"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_HF_TOTAL = re.compile(
    r"(?i:total optimization steps)\s*=\s*(\d{1,3}(?:,\d{3})+|\d{1,15})"
    r"(?![\w.,])"
)
_DIGITS_OR_NONFINITE = re.compile(r"\d|(?i:nan|inf)")
_METRIC_WORDS = (
    "loss", "lr", "learning", "norm", "step", "epoch", "iter", "update", "total", "max", "num",
    "sample", "example", "tok", "tps", "its", "it_s", "it_per", "eta", "remaining", "left",
)  # fmt: skip
"""Words every known field needs, in lower case: a line with none of them (and no progress
bar or rate) gives no sample, so it is skipped before the costlier patterns run."""
_BAR_OR_RATE = re.compile(r"/\s*(?:s|it|batch)|\d(?:it)?\s*\[")


def _maybe_metric(lowered: str) -> bool:
    """Whether ``lowered`` (a line in lower case) could hold a known field: a cheap test, true
    for every line that does."""
    if any(word in lowered for word in _METRIC_WORDS):
        return True
    return ("/" in lowered or "[" in lowered) and _BAR_OR_RATE.search(lowered) is not None


_ALIASES: dict[str, str] = {
    "loss": "loss",
    "training_loss": "loss",
    "lr": "lr",
    "learning_rate": "lr",
    "grad_norm": "grad_norm",
    "gradient_norm": "grad_norm",
    "gnorm": "grad_norm",
    "grad_l2_norm": "grad_norm",
    "global_grad_norm": "grad_norm",
    "step": "step",
    "global_step": "step",
    "iter": "step",
    "iteration": "step",
    "num_updates": "step",
    "epoch": "epoch",
    "total_steps": "total_steps",
    "max_steps": "total_steps",
    "num_training_steps": "total_steps",
    "max_iter": "total_steps",
    "max_iters": "total_steps",
    "total_iters": "total_steps",
    "num_steps": "total_steps",
    "num_epochs": "total_epochs",
    "num_train_epochs": "total_epochs",
    "max_epochs": "total_epochs",
    "total_epochs": "total_epochs",
    "samples_per_second": "samples_per_s",
    "samples_per_sec": "samples_per_s",
    "samples_per_s": "samples_per_s",
    "samples_s": "samples_per_s",
    "samples_sec": "samples_per_s",
    "examples_per_second": "samples_per_s",
    "tokens_per_second": "tokens_per_s",
    "tokens_per_sec": "tokens_per_s",
    "tokens_per_s": "tokens_per_s",
    "tokens_s": "tokens_per_s",
    "tokens_sec": "tokens_per_s",
    "tok_s": "tokens_per_s",
    "tok_sec": "tokens_per_s",
    "toks": "tokens_per_s",
    "tps": "tokens_per_s",
    "it_s": "it_per_s",
    "its": "it_per_s",
    "it_per_s": "it_per_s",
    "iter_s": "it_per_s",
    "iters_s": "it_per_s",
    "steps_per_second": "it_per_s",
    "steps_per_sec": "it_per_s",
    "steps_s": "it_per_s",
    "eta": "eta",
}
_EVAL_PREFIXES = ("eval_", "val_", "valid_", "validation_")
_LR_GROUP = re.compile(r"(?:lr|learning_rate)_(?:\d+|pg\d+|group\d+|[a-z]*adam[a-z]*|sgd|lion)")
_WEAK_ALONE = frozenset({"step", "epoch", "total_steps", "total_epochs", "eta"})
"""Fields that, read from ``name 12`` with only a space between, do not make a sample alone:
"Step 1: install" and "Epoch 3 starting" are prose, not metrics."""
_RATE_FIELDS = {
    "sample": "samples_per_s",
    "example": "samples_per_s",
    "ex": "samples_per_s",
    "seq": "samples_per_s",
    "sequence": "samples_per_s",
    "img": "samples_per_s",
    "image": "samples_per_s",
    "token": "tokens_per_s",
    "tok": "tokens_per_s",
    "it": "it_per_s",
    "iter": "it_per_s",
    "iteration": "it_per_s",
    "step": "it_per_s",
    "batch": "it_per_s",
}


@lru_cache(maxsize=1024)
def normalise_name(name: str) -> str:
    """A metric name in one spelling: ``train/loss`` and ``train_loss`` are ``loss``,
    ``learning_rate`` is ``lr``, ``val_loss`` is ``eval_loss``; unknown names in ``[0-9a-z_]``."""
    key = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    if key in _ALIASES:
        return _ALIASES[key]
    for prefix in _EVAL_PREFIXES:
        if key.startswith(prefix) and key[len(prefix) :] in ("loss", "loss_epoch"):
            return "eval_loss"
    if _LR_GROUP.fullmatch(key):
        return "lr"
    base = key.removeprefix("train_").removeprefix("training_")
    for candidate in (base, base.removesuffix("_step")):
        if candidate != key and candidate in _ALIASES:
            return _ALIASES[candidate]
    return key


@dataclass(frozen=True)
class MetricsSample:
    """What one log line says about the run; ``None`` where it says nothing."""

    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    total_epochs: int | None = None
    loss: float | None = None
    """Training loss; NaN and infinity are kept as such."""
    eval_loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    it_per_s: float | None = None
    eta: float | None = None
    """Seconds left, as the line reported it."""
    extra: tuple[tuple[str, float], ...] = ()
    """Other numbers the line gave by name, names normalised (``[0-9a-z_]`` only)."""

    def values(self) -> dict[str, float]:
        """Every number the sample holds, by normalised name, known fields first."""
        out: dict[str, float] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        for name, value in self.extra:
            out.setdefault(name, value)
        return out


_FIELDS = tuple(item.name for item in fields(MetricsSample) if item.name != "extra")
"""The known fields, in order."""

MEASURES = ("loss", "eval_loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "it_per_s")
"""The fields that are measurements of the run, each given a history by :class:`MetricsSeries`."""
_MEASURED = frozenset(MEASURES)
_WHOLE = frozenset({"step", "total_steps", "total_epochs"})
"""Fields a sample holds as whole numbers."""


def _prepare(line: str) -> str:
    """The part of ``line`` worth reading: colours dropped, the latest ``\\r`` redraw, capped."""
    if "\x1b" in line:
        line = _ANSI.sub("", line[: MAX_LINE * 4])
    if "\r" in line:
        parts = [part for part in line.split("\r") if part.strip()]
        line = parts[-1] if parts else ""
    return _CONTROL.sub(" ", line[:MAX_LINE])


def _clock_seconds(text: str) -> float:
    """``01:42`` or ``1:01:42`` as seconds."""
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def _duration(match: re.Match[str]) -> float | None:
    """The seconds of a :data:`_DURATION` match."""
    if match["clock"]:
        clock = match["clock"]
        days = float(match["days"]) if match["days"] else 0.0
        clock = clock[clock.rfind(" ") + 1 :] if " " in clock else clock
        clock = re.sub(r"^\d+(?:days?|d),?", "", clock)
        return days * 86400 + _clock_seconds(clock)
    if match["units"]:
        total = 0.0
        for number, unit in _DURATION_PART.findall(match["units"]):
            total += float(number) * _UNIT_SECONDS[unit]
        return total
    if match["secs"]:
        return float(match["secs"])
    return None


def _near_ends(
    pattern: re.Pattern[str], end: re.Pattern[str], text: str
) -> Iterator[re.Match[str]]:
    """What ``pattern.finditer(text)`` gives, for a ``pattern`` made of a number, blanks, a
    unit word, then ``end``: it is tried only in the few characters before each ``end``."""
    done = 0
    for tail in end.finditer(text):
        # Back over the blanks and the unit word, then far enough for any number.
        at = tail.start()
        while at > done and text[at - 1] in " \t":
            at -= 1
        while at > done and text[at - 1].isalpha():
            at -= 1
        while at > done and text[at - 1] in " \t":
            at -= 1
        match = pattern.search(text, max(done, at - _NUM_REACH), tail.end())
        if match is not None:
            done = match.end()
            yield match


_PairSpans = tuple[tuple[int, int, int, int, int, int, bool], ...]
_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")
_ASCII_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SHAPE_CACHE_LINE = 512
"""Longest text whose pairs' places are remembered by its shape."""


def _pair_spans(text: str) -> _PairSpans:
    """Where :data:`_PAIR` matches in ``text``: key, value and ``/total`` spans (-1 when
    absent), and whether only blanks part the key from the value.

    Training scripts print the same line over and over with other numbers in it. Every
    pattern here treats all digits alike, so with each digit made ``0`` a line keeps the very
    same matches: the places are found once per shape, not once per line.
    """
    if len(text) > _SHAPE_CACHE_LINE:
        return _find_pair_spans(text)
    if text.isascii():
        return _ascii_pair_spans(text.encode("ascii").translate(_ASCII_DIGITS_AS_ZERO))
    return _shape_pair_spans(text.translate(_DIGITS_AS_ZERO))


def _find_pair_spans(text: str) -> _PairSpans:
    found = []
    for match in _PAIR.finditer(text):
        spaced = not match["sep"].strip() and not match["q1"]
        found.append((*match.span("key"), *match.span("val"), *match.span("of"), spaced))
    return tuple(found)


_shape_pair_spans = lru_cache(maxsize=512)(_find_pair_spans)


@lru_cache(maxsize=2048)
def _ascii_pair_spans(shape: bytes) -> _PairSpans:
    return _find_pair_spans(shape.decode("ascii"))


class _Builder:
    """Fields gathered from one line, first value of each field winning."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.extra: dict[str, float] = {}
        self.strong = False

    def put(self, name: str, value: float, *, strong: bool = True) -> None:
        if name in self.values:
            return
        if name in ("step", "total_steps", "total_epochs"):
            if not (math.isfinite(value) and value.is_integer() and 0 <= value < 1e15):
                return
            if name != "step" and value <= 0:
                return
        elif name in ("epoch", "eta") and not (math.isfinite(value) and value >= 0):
            return
        self.values[name] = value
        self.strong = self.strong or strong or name not in _WEAK_ALONE

    def put_extra(self, name: str, value: float) -> None:
        if name and name not in self.extra and len(self.extra) < MAX_EXTRA:
            self.extra[name] = value

    def pairs(self, text: str) -> None:
        for key_at, key_end, val_at, val_end, of_at, of_end, spaced in _pair_spans(text):
            name = normalise_name(text[key_at:key_end])
            if name in _NAMED:
                value = float(text[val_at:val_end])
                self.put(name, value, strong=not spaced or of_at >= 0)
                if of_at >= 0 and name in _FRACTIONAL:
                    self.put(_FRACTIONAL[name], float(text[of_at:of_end]))
            elif not spaced:
                self.put_extra(name, float(text[val_at:val_end]))

    def rates(self, text: str) -> None:
        for match in _near_ends(_RATE, _RATE_END, text):
            unit = match["unit"].lower()
            target = next(
                (_RATE_FIELDS[u] for u in (unit, unit[:-1], unit[:-2]) if u in _RATE_FIELDS), None
            )
            if target is not None:
                self.put(target, float(match["num"]))
        for match in _near_ends(_INVERSE_RATE, _INVERSE_RATE_END, text):
            seconds = float(match["num"]) / (1000.0 if match["unit"] == "ms" else 1.0)
            if seconds > 0 and math.isfinite(seconds):
                self.put("it_per_s", 1.0 / seconds)

    def eta(self, text: str) -> None:
        match = _ETA.search(text)
        if match is not None:
            seconds = _duration(match)
            if seconds is not None:
                self.put("eta", seconds, strong=False)

    def sample(self) -> MetricsSample | None:
        if not self.values or not self.strong:
            return None
        values = self.values

        def whole(name: str) -> int | None:
            return int(values[name]) if name in values else None

        return MetricsSample(
            step=whole("step"),
            total_steps=whole("total_steps"),
            epoch=values.get("epoch"),
            total_epochs=whole("total_epochs"),
            loss=values.get("loss"),
            eval_loss=values.get("eval_loss"),
            lr=values.get("lr"),
            grad_norm=values.get("grad_norm"),
            samples_per_s=values.get("samples_per_s"),
            tokens_per_s=values.get("tokens_per_s"),
            it_per_s=values.get("it_per_s"),
            eta=values.get("eta"),
            extra=tuple(self.extra.items()),
        )


_FRACTIONAL = {"step": "total_steps", "epoch": "total_epochs"}
"""``step 5/100``, ``Epoch [3/10]``: what the number after the slash is."""
_NAMED = frozenset(MEASURES) | _WEAK_ALONE | frozenset(_FRACTIONAL)
"""Names read as known fields; any other name is an extra value."""


def _tqdm(text: str, builder: _Builder) -> bool | None:
    """Read a tqdm/Lightning progress bar into ``builder``; ``None`` when there is none,
    ``False`` when it is a bar of something other than training (downloads, eval, maps)."""
    match = _TQDM.search(text)
    opened = match is None
    if match is None:
        match = _TQDM_OPEN.search(text)
        if match is None:
            return None
    desc = _TQDM_BAR.sub("", text[: match.start()]).strip().rstrip(":").strip()
    if desc and _NOT_TRAINING.search(desc):
        return False
    builder.put("step", float(match["n"]))
    if not opened:
        builder.put("total_steps", float(match["total"]))
        if match["left"] != "?":
            builder.put("eta", _clock_seconds(match["left"]))
    builder.pairs(desc)
    builder.rates(match["rest"])
    builder.pairs(match["rest"])
    return True


def _parse(line: str) -> _Builder | None:
    """The fields ``line`` gives, gathered; ``None`` when it gives none."""
    text = _prepare(line)
    if not _DIGITS_OR_NONFINITE.search(text):
        return None
    lowered = text.lower()
    if not _maybe_metric(lowered):
        return None
    builder = _Builder()
    # Each pattern runs only on lines holding the literal it needs: most lines hold none.
    total = _HF_TOTAL.search(text) if "optimization" in lowered else None
    if total is not None:
        builder.put("total_steps", float(total[1].replace(",", "")))
    else:
        bar = _tqdm(text, builder) if "[" in text else None
        if bar is False:
            return None
        if bar is None:
            if "eta" in lowered or "remaining" in lowered or "left" in lowered:
                builder.eta(text)
            if "/" in text:
                builder.rates(text)
            builder.pairs(text)
    return builder if builder.values and builder.strong else None


def parse_metrics(line: str) -> MetricsSample | None:
    """The metrics ``line`` reports, or ``None`` when it reports none. Never raises."""
    builder = _parse(line)
    return None if builder is None else builder.sample()


@dataclass
class History:
    """One metric's values in order, at most ``capacity`` points: when full, neighbouring
    points are averaged in pairs, so a long run keeps its whole shape at a coarser grain."""

    capacity: int = 1024
    stride: int = 1
    """How many samples each stored point stands for."""
    count: int = 0
    """Samples seen in all."""
    _xs: list[float] = field(default_factory=list, init=False, repr=False)
    _ys: list[float] = field(default_factory=list, init=False, repr=False)
    _pending: list[tuple[float, float]] = field(default_factory=list, init=False, repr=False)

    def append(self, x: float, y: float) -> None:
        """Add the value ``y`` at position ``x`` (the step, or the sample number)."""
        self.count += 1
        self._pending.append((x, y))
        if len(self._pending) < self.stride:
            return
        px, py = _merge(self._pending)
        self._pending.clear()
        self._xs.append(px)
        self._ys.append(py)
        if len(self._ys) >= max(2, self.capacity):
            merged = [
                _merge(list(zip(self._xs[i : i + 2], self._ys[i : i + 2], strict=True)))
                for i in range(0, len(self._ys), 2)
            ]
            self._xs = [x for x, _ in merged]
            self._ys = [y for _, y in merged]
            self.stride *= 2

    def points(self) -> list[tuple[float, float]]:
        """``(x, value)`` pairs, oldest first, the newest samples included even mid-stride."""
        out = list(zip(self._xs, self._ys, strict=True))
        if self._pending:
            out.append(_merge(self._pending))
        return out

    def values(self) -> list[float]:
        """The values alone, oldest first: what a chart draws."""
        return [y for _, y in self.points()]


def _merge(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The last position and the mean of the finite values (or the first non-finite one)."""
    finite = [y for _, y in points if math.isfinite(y)]
    value = sum(finite) / len(finite) if finite else points[0][1]
    return points[-1][0], value


class MetricsSeries:
    """Samples of one run gathered: bounded histories, latest values, progress and ETA."""

    def __init__(self, capacity: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._clock = clock
        self.histories: dict[str, History] = {}
        self.latest: dict[str, float] = {}
        """The newest value of every metric seen, by normalised name."""
        self.samples = 0
        self.step: int | None = None
        self.total_steps: int | None = None
        self.epoch: float | None = None
        self._eta: tuple[float, float] | None = None
        self._rate_from: tuple[int, float] | None = None
        self._last_step_at: float | None = None

    def feed(self, line: str) -> MetricsSample | None:
        """Parse ``line`` and add what it says; the sample, or ``None``."""
        sample = parse_metrics(line)
        if sample is not None:
            self.add(sample)
        return sample

    def take(self, line: str) -> bool:
        """Parse ``line`` and add what it says, as :meth:`feed` does without building a
        sample (the cheaper call for every line of a log); whether it said anything."""
        builder = _parse(line)
        if builder is None:
            return False
        self._add(builder.values, builder.extra, self._clock())
        return True

    def add(self, sample: MetricsSample, at: float | None = None) -> None:
        """Take in one sample, seen at ``at`` (the clock's now by default)."""
        values: dict[str, float] = {}
        for name in _FIELDS:
            value = getattr(sample, name)
            if value is not None:
                values[name] = float(value)
        self._add(values, dict(sample.extra), self._clock() if at is None else at)

    def _add(self, values: dict[str, float], extra: dict[str, float], now: float) -> None:
        self.samples += 1
        found = values.get("step")
        step = None if found is None else int(found)
        if step is not None:
            if self.step is not None and step < self.step:
                # A new epoch's bar (Lightning) or a restarted run: the rate starts afresh.
                self._rate_from = None
            if self._rate_from is None:
                self._rate_from = (step, now)
            self.step = step
            self._last_step_at = now
        total = values.get("total_steps")
        if total is not None:
            self.total_steps = int(total)
        epoch = values.get("epoch")
        if epoch is not None:
            self.epoch = epoch
        eta = values.get("eta")
        if eta is not None:
            self._eta = (eta, now)
        elif step is not None:
            self._eta = None
        # A sample without a step of its own (a Trainer dict after a progress bar) belongs to
        # the last step seen; with no step ever seen, samples are counted.
        if step is not None:
            x = float(step)
        elif self.step is not None:
            x = float(self.step)
        else:
            x = float(self.samples)
        latest = self.latest
        for name in _FIELDS:
            value = values.get(name)
            if value is None:
                continue
            if name in _MEASURED:
                history = self.histories.get(name)
                if history is None:
                    history = self.histories[name] = History(self._capacity)
                history.append(x, value)
            latest[name] = float(int(value)) if name in _WHOLE else value
        for name, value in extra.items():
            if name in values:
                continue
            if name in latest or len(latest) < MAX_LATEST:
                latest[name] = value

    def history(self, name: str = "loss") -> list[float]:
        """The values of ``name`` in order, for the loss curve (empty if never seen)."""
        found = self.histories.get(normalise_name(name))
        return found.values() if found is not None else []

    @property
    def progress(self) -> float | None:
        """``step / total_steps`` between 0 and 1, when both are known."""
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, max(0.0, self.step / self.total_steps))

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left: as last reported, less the time since; else from the step rate."""
        now = self._clock() if now is None else now
        if self._eta is not None:
            value, at = self._eta
            return max(0.0, value - max(0.0, now - at))
        if self.total_steps is None or self.step is None or self._rate_from is None:
            return None
        first_step, first_at = self._rate_from
        last_at = self._last_step_at if self._last_step_at is not None else now
        if self.step <= first_step or last_at <= first_at:
            return None
        rate = (self.step - first_step) / (last_at - first_at)
        left = (self.total_steps - self.step) / rate - max(0.0, now - last_at)
        return max(0.0, left)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        """The latest values, by name."""
        return iter(self.latest.items())
