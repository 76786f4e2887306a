"""Errors found in training log lines, and a log that stopped growing.

:func:`classify` names the kind of failure a line announces (a Python traceback, CUDA out of
memory, a NaN loss, an NCCL timeout, the OOM killer, a segfault, a non-zero exit), so the log
pane can flag it and jump between them. It matches what those failures actually print, never
the bare word "error": ``eval_error_rate=0.1`` or ``errors: 0`` are not failures.
:class:`StallDetector` says when the log has not grown for a while. Pure, no I/O.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from enum import StrEnum

from runctl_tui.logs.metrics import parse_metrics

MAX_LINE = 16384
"""Characters of a line that are looked at: failures announce themselves early in a line."""


class ErrorKind(StrEnum):
    """A kind of failure a training log shows."""

    TRACEBACK = "traceback"
    CUDA_OOM = "cuda_oom"
    NAN_LOSS = "nan_loss"
    NCCL = "nccl"
    KILLED = "killed"
    SEGFAULT = "segfault"
    EXIT = "exit"

    @property
    def label(self) -> str:
        """A short name for the pane's flag."""
        return _LABELS[self]


_LABELS = {
    ErrorKind.TRACEBACK: "Traceback",
    ErrorKind.CUDA_OOM: "CUDA OOM",
    ErrorKind.NAN_LOSS: "NaN loss",
    ErrorKind.NCCL: "NCCL",
    ErrorKind.KILLED: "Killed",
    ErrorKind.SEGFAULT: "Segfault",
    ErrorKind.EXIT: "Exit ≠ 0",
}

# Most specific first: an OOM is also raised through a traceback, a killed worker also exits.
_PATTERNS: tuple[tuple[ErrorKind, re.Pattern[str]], ...] = (
    (
        ErrorKind.CUDA_OOM,
        re.compile(
            r"CUDA out of memory|(?:torch\.(?:cuda\.)?)?OutOfMemoryError"
            r"|CUBLAS_STATUS_ALLOC_FAILED|CUDA error: out of memory|cudaErrorMemoryAllocation"
            r"|CUDNN_STATUS_ALLOC_FAILED|RESOURCE_EXHAUSTED: Out of memory",
            re.IGNORECASE,
        ),
    ),
    (
        ErrorKind.NCCL,
        re.compile(
            r"\bNCCL WARN\b|\bNCCL (?:error|timeout)|\bnccl(?:System|Internal|Invalid\w*|Remote"
            r"|UnhandledCuda)Error\b|Watchdog caught collective operation timeout"
            r"|ProcessGroupNCCL\b.{0,200}\b(?:timed out|timeout|error)\b|\bDistBackendError\b",
            re.IGNORECASE,
        ),
    ),
    (
        ErrorKind.SEGFAULT,
        re.compile(
            r"\bSegmentation fault\b|\bSIGSEGV\b|\bsegfault at\b|Fatal Python error: Segmentation",
            re.IGNORECASE,
        ),
    ),
    (
        ErrorKind.KILLED,
        re.compile(
            r"^\s*Killed\s*$|(?:^|:\s*|\s)\d+\s+Killed\s+\S|\bKilled process \d+"
            r"|\bOut of memory: Kill(?:ed)? process|\boom-kill(?:er)?\b.{0,80}\bkilled\b"
            r"|\bSIGKILL\b|\bsignal 9\b"
        ),
    ),
    (
        ErrorKind.TRACEBACK,
        re.compile(r"Traceback \(most recent call last\):?"),
    ),
    (
        ErrorKind.EXIT,
        re.compile(
            r"returned non-zero exit status|\bChildFailedError\b"
            r"|\bnon-zero exit (?:code|status)\b",
            re.IGNORECASE,
        ),
    ),
)
_EXIT_CODE = re.compile(
    r"\b(?:exited with (?:exit )?(?:code|status)|exit(?:ed)? with|exit code|exitcode"
    r"|exit status|return code|returncode)\b[ \t]*[:=]?[ \t]*(?P<code>-?\d{1,4})(?![\d.])",
    re.IGNORECASE,
)
_NAN_WORDS = re.compile(
    r"\bloss\b[^\n]{0,20}?\b(?:is|became|was|=|:)\s*[-+]?(?:nan|inf(?:inity)?)\b"
    r"|\b(?:nan|inf(?:inite)?|non-finite)\s+(?:loss|values? in (?:the )?loss)\b"
    r"|\bloss\b.{0,40}\bis not finite\b",
    re.IGNORECASE,
)
# ``\bnan`` and ``\binf`` written with the boundary after the first letter, so that the scan
# skips ahead to an ``n`` or an ``i`` rather than trying the pattern at every position.
_NONFINITE = re.compile(r"n(?:(?<!\wn)an\b|on-finite|ot finite)|i(?<!\wi)nf(?:inity)?\b")
_CLUES = (
    "memory", "cublas", "cudnn", "nccl", "watchdog", "processgroup", "distbackend", "seg",
    "kill", "signal", "traceback", "exit", "non-zero", "childfailed", "return",
)  # fmt: skip
"""A cheap first look, in lower case: a line with none of these words is only checked for a
NaN loss."""
_CLUE = re.compile("|".join(_CLUES))

_KILLED_CODES = {-9, 137}
_SEGFAULT_CODES = {-11, 139}


def _exit_kind(text: str) -> ErrorKind | None:
    """The kind an exit code stated in ``text`` means, if it is not 0."""
    for match in _EXIT_CODE.finditer(text):
        code = int(match["code"])
        if code == 0:
            continue
        if code in _KILLED_CODES:
            return ErrorKind.KILLED
        if code in _SEGFAULT_CODES:
            return ErrorKind.SEGFAULT
        return ErrorKind.EXIT
    return None


def _nan_loss(text: str, lowered: str) -> bool:
    """Whether ``text`` reports a loss that is NaN or infinite."""
    if not ("nan" in lowered or "inf" in lowered) or not _NONFINITE.search(lowered):
        return False
    if _NAN_WORDS.search(text):
        return True
    sample = parse_metrics(text)
    if sample is None:
        return False
    return any(v is not None and not math.isfinite(v) for v in (sample.loss, sample.eval_loss))


def classify(line: str) -> ErrorKind | None:
    """The failure ``line`` announces, or ``None`` for an ordinary line. Never raises."""
    text = line[:MAX_LINE]
    lowered = text.lower()
    if _CLUE.search(lowered) is not None:
        for kind, pattern in _PATTERNS:
            if pattern.search(text):
                return kind
        exit_kind = _exit_kind(text)
        if exit_kind is not None:
            return exit_kind
    return ErrorKind.NAN_LOSS if _nan_loss(text, lowered) else None


class StallDetector:
    """Says when a log has not grown for ``timeout`` seconds, by a clock it is given."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"stall timeout must be a positive number of seconds, not {timeout}")
        self.timeout = timeout
        self._clock = clock
        self._last_growth = clock()
        self._reported = False

    def grew(self, now: float | None = None) -> None:
        """The log grew (a chunk arrived): the stall, if any, is over."""
        self._last_growth = self._clock() if now is None else now
        self._reported = False

    def idle_for(self, now: float | None = None) -> float:
        """Seconds since the log last grew."""
        now = self._clock() if now is None else now
        return max(0.0, now - self._last_growth)

    def stalled(self, now: float | None = None) -> bool:
        """Whether the log has not grown for at least ``timeout`` seconds."""
        return self.idle_for(now) >= self.timeout

    def check(self, now: float | None = None) -> bool:
        """``True`` once when a stall begins (to notify once), ``False`` until it grows again."""
        if self._reported or not self.stalled(now):
            return False
        self._reported = True
        return True
