"""Shared plumbing: medians, formatting, and the figures a benchmark hands to the summary."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project directory, so children find ``bench`` whatever the caller's cwd."""

LOOPBACK = "127.0.0.1"

SCRUBBED_PREFIXES = ("RUNCTL_TUI_", "TEXTUAL", "AWS_", "RUNPOD_")
"""Variables that would change what the apps read or where boto3 and the runpod SDK connect."""
SCRUBBED_NAMES = frozenset({"COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "SSH_AUTH_SOCK"})


@dataclass(frozen=True)
class Figure:
    """One headline result, checked against its goal in the summary."""

    name: str
    value: float
    unit: str
    """``x`` for a ratio, ``ms`` for a duration, ``MB`` for memory."""
    goal: float | None
    """The figure must be at most this; ``None`` for a figure reported without a goal."""
    detail: str = ""
    """Context for the summary line, e.g. the two medians behind a ratio."""

    @property
    def met(self) -> bool:
        """Whether the figure is within its goal (always, when it has none)."""
        return self.goal is None or self.value <= self.goal

    def line(self) -> str:
        """The figure, its goal and the verdict on one line."""
        value = fmt_value(self.value, self.unit)
        detail = f"  ({self.detail})" if self.detail else ""
        if self.goal is None:
            return f"{self.name:<42} {value:>9}  {'no goal':<20}{detail}"
        goal = fmt_value(self.goal, self.unit)
        verdict = "met" if self.met else "MISSED"
        return f"{self.name:<42} {value:>9}  goal <= {goal:<8} {verdict}{detail}"


def fmt_value(value: float, unit: str) -> str:
    """``1.23x``, ``45 ms`` or ``79 MB``: a ratio, or a whole number of ``unit``."""
    return f"{value:.2f}x" if unit == "x" else f"{value:.0f} {unit}"


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f} ms"


def median(values: Iterable[float]) -> float:
    """The median of a non-empty sample."""
    return statistics.median(list(values))


def spread(values: Sequence[float]) -> str:
    """``median 812 ms (min 760, max 901)`` for a sample in seconds."""
    low, high = min(values) * 1000, max(values) * 1000
    return f"median {ms(median(values)):>8}  (min {low:.0f}, max {high:.0f}, n={len(values)})"


def round_ratios(candidate: Sequence[float], baseline: Sequence[float]) -> str:
    """``per round 1.62-2.31x``: the spread of the ratios of times taken in the same round."""
    ratios = [c / b for c, b in zip(candidate, baseline, strict=True)]
    return f"per round {min(ratios):.2f}-{max(ratios):.2f}x"


def alternate(round_index: int, first: str, second: str) -> tuple[str, str]:
    """The order of the two contenders in a round: swapped every round so drift hits both."""
    return (first, second) if round_index % 2 == 0 else (second, first)


def isolated_env(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """``base`` without user config, cloud settings or Textual dev flags; HOME and XDG in ``home``.

    HOME moves too: runpodctl's ``~/.runpod``, ``~/.aws`` and ``~/.ssh`` (keys, known_hosts,
    config) of the person running the benchmark must never be read.
    """
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith(SCRUBBED_PREFIXES) and k not in SCRUBBED_NAMES
    }
    env["HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        path = home / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    # boto3 must find no profile, no credentials file and no instance metadata: only loopback.
    env["AWS_CONFIG_FILE"] = str(home / "aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    return env


def isolate_this_process(home: Path) -> None:
    """Apply :func:`isolated_env` to ``os.environ``, so boto3 and Textual here see only it."""
    env = isolated_env(os.environ, home)
    os.environ.clear()
    os.environ.update(env)


def child_arguments(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """The options every benchmark module takes: ``--json PATH`` and ``--quick``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", metavar="PATH", help="also write the headline figures here")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    return parser.parse_args(argv)


def write_figures(path: str | os.PathLike[str] | None, figures: Sequence[Figure]) -> None:
    """Hand the figures to ``python -m bench`` (no-op when run on its own)."""
    if path:
        Path(path).write_text(json.dumps([asdict(f) for f in figures]), encoding="utf-8")


def read_figures(path: Path) -> list[Figure]:
    """The figures a benchmark child wrote."""
    return [Figure(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]


def heading(title: str) -> None:
    """Print a section title."""
    print(f"\n== {title}", flush=True)
