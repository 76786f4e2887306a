"""Idle GPUs: rented accelerators that have done nothing for a while, and what they burn.

An item is idle when it runs, has GPUs, reports a utilisation figure for every one of them,
and the busiest stays under a threshold without a break for a set time. Only readings count:
a poll without figures (an SSH probe not due yet, a pod whose runtime is not reported) neither
resets the clock nor proves anything, but a gap in figures longer than the idle period starts
it over, since the GPUs may have worked unseen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from runctl_tui.models import GpuUsage, Instance, InstanceState, format_duration, format_usd

DEFAULT_THRESHOLD_PERCENT = 5.0
DEFAULT_MINUTES = 15.0


@dataclass(frozen=True)
class IdleState:
    """How long an item's GPUs have stayed under the threshold, as of its last reading."""

    key: str
    since: datetime
    """The first reading of the quiet stretch."""
    last_reading: datetime
    """The latest reading that confirmed it."""
    max_percent: float
    """The highest utilisation any of its GPUs showed during the stretch."""

    @property
    def duration(self) -> timedelta:
        """From the first to the latest quiet reading."""
        return self.last_reading - self.since

    @property
    def minutes(self) -> float:
        """:attr:`duration` in minutes."""
        return self.duration.total_seconds() / 60


def idle_flag(state: IdleState, hourly: Decimal | None) -> str:
    """The row's flag: ``idle 17m, burning $32.77/h`` (without the rate when it is unknown)."""
    text = f"idle {format_duration(state.duration)}"
    if hourly is not None and hourly > 0:
        text += f", burning {format_usd(hourly, per_hour=True)}"
    return text


def peak_utilisation(instance: Instance) -> float | None:
    """The busiest GPU's utilisation, if ``instance`` reports a figure for every GPU it has."""
    usage: tuple[GpuUsage, ...] = instance.gpu_usage
    expected = instance.gpus.count if instance.gpus is not None else 0
    if not usage or len({gpu.index for gpu in usage}) < expected:
        return None
    figures = [gpu.utilization_percent for gpu in usage]
    if any(figure is None for figure in figures):
        return None
    return float(max(figure for figure in figures if figure is not None))


def has_gpus(instance: Instance) -> bool:
    """Whether ``instance`` has accelerators (by its spec or by reported figures)."""
    return (instance.gpus is not None and instance.gpus.count > 0) or bool(instance.gpu_usage)


class IdleTracker:
    """Follows every item's GPU utilisation from poll to poll and says which are idle."""

    def __init__(
        self,
        threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
        minutes: float = DEFAULT_MINUTES,
        *,
        grace_minutes: float | None = None,
    ) -> None:
        """``grace_minutes``: the longest gap in figures that keeps a quiet stretch going;
        ``minutes`` by default."""
        if threshold_percent <= 0 or minutes <= 0:
            raise ValueError("the idle threshold and period must be more than 0")
        self.threshold_percent = threshold_percent
        self.period = timedelta(minutes=minutes)
        self.grace = timedelta(minutes=minutes if grace_minutes is None else grace_minutes)
        self._quiet: dict[str, IdleState] = {}

    def update(self, instances: Iterable[Instance], at: datetime) -> None:
        """Take one poll's items, seen at ``at``; items not among them are forgotten."""
        seen: set[str] = set()
        for instance in instances:
            key = instance.key
            seen.add(key)
            if instance.state is not InstanceState.RUNNING or not has_gpus(instance):
                self._quiet.pop(key, None)
                continue
            quiet = self._quiet.get(key)
            if quiet is not None and at - quiet.last_reading > self.grace:
                # Too long without figures: the GPUs may have worked meanwhile.
                quiet = None
                self._quiet.pop(key)
            peak = peak_utilisation(instance)
            if peak is None:
                continue
            if peak >= self.threshold_percent:
                self._quiet.pop(key, None)
            elif quiet is None:
                self._quiet[key] = IdleState(key, at, at, peak)
            elif at > quiet.last_reading:
                self._quiet[key] = IdleState(key, quiet.since, at, max(quiet.max_percent, peak))
        for gone in self._quiet.keys() - seen:
            del self._quiet[gone]

    def quiet(self, key: str) -> IdleState | None:
        """The quiet stretch of ``key`` so far, idle or not yet."""
        return self._quiet.get(key)

    def idle(self, key: str) -> IdleState | None:
        """The state of ``key`` if it is idle: quiet for at least the idle period."""
        state = self._quiet.get(key)
        return state if state is not None and state.duration >= self.period else None

    def all(self) -> dict[str, IdleState]:
        """Every idle item, by key."""
        return {key: s for key, s in self._quiet.items() if s.duration >= self.period}
