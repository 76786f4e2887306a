"""Trust, but verify: a resource reported stopped or terminated must really stop billing.

After a stop, terminate, interrupt or kill that the provider reported done, the item is watched
for a few polls. If it then still shows running (an EC2 instance back up, a pod still listed
running) or still shows signs of billing (a pod whose runtime keeps reporting uptime or GPU load
at its hourly price), it is a :class:`Leak`: flagged loudly with its burn rate. A pod that RunPod
itself calls ``TERMINATED`` or ``EXITED`` while it keeps billing is watched the same way without
any action. An item that really stopped, or that vanished (terminated and gone), is let go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from runctl_tui.models import (
    Action,
    ActionResult,
    FleetSnapshot,
    Instance,
    InstanceState,
    Outcome,
    PodDetails,
    format_usd,
)
from runctl_tui.providers.local import DEFAULT_GRACE_SECONDS
from runctl_tui.text import one_line

DEFAULT_POLLS = 3

STOPPING_ACTIONS = frozenset({Action.STOP, Action.TERMINATE, Action.INTERRUPT, Action.KILL})
"""Actions after which the item should stop billing (or, for a run, stop running)."""
SHOWS_UP = frozenset({InstanceState.RUNNING, InstanceState.PENDING})
"""States that mean "up again" after a stop."""
AT_REST = frozenset({InstanceState.STOPPED, InstanceState.TERMINATED})
"""States that mean the item really stopped; the rest (stopping, shutting down, unknown) are
still on their way and are waited out."""
POD_AT_REST = frozenset({"TERMINATED", "EXITED", "DEAD", "PAUSED"})
"""RunPod's own words for a pod that bills no compute."""
_DONE = {
    Action.STOP: "stopped",
    Action.TERMINATE: "terminated",
    Action.INTERRUPT: "interrupted",
    Action.KILL: "killed",
}


def billing_signs(instance: Instance) -> str | None:
    """What ``instance`` shows that says it is still up or billing, or ``None``."""
    if instance.state in SHOWS_UP:
        return f"shows {instance.state}"
    if not isinstance(instance.details, PodDetails):
        return None
    if instance.details.desired_status.upper() not in POD_AT_REST:
        return None
    hourly = instance.hourly_usd
    if instance.gpu_usage:
        return "still reports GPU load"
    if instance.launched_at is not None and hourly is not None and hourly > 0:
        return "still reports uptime"
    return None


def _at_rest(instance: Instance) -> bool:
    return instance.state in AT_REST and billing_signs(instance) is None


def _pod_says_at_rest(instance: Instance) -> str | None:
    """RunPod's word for a pod it calls stopped or terminated, else ``None``."""
    if isinstance(instance.details, PodDetails):
        status = instance.details.desired_status.upper()
        if status in POD_AT_REST:
            return status
    return None


@dataclass(frozen=True)
class Leak:
    """A resource reported stopped or terminated that still shows up or billing."""

    key: str
    instance: Instance
    """As the latest poll showed it."""
    action: Action | None
    """The action that should have stopped it; ``None`` when the provider's own status says it
    is stopped while it bills."""
    reported: str
    """What it was reported as: ``stopped``, ``terminated``, RunPod's ``TERMINATED``..."""
    since: datetime
    """When the action was done, or the contradiction first seen."""
    polls: int
    """Polls since then."""
    shows: str
    """What it shows instead: ``shows running``, ``still reports GPU load``..."""

    @property
    def hourly(self) -> Decimal | None:
        """What it burns per hour, when known."""
        return self.instance.hourly_usd

    def describe(self) -> str:
        """One loud line: ``still billing $21.96/h: i-0abc was stopped 3 polls ago but shows
        running``."""
        hourly = self.hourly
        if hourly is not None and hourly > 0:
            burn = f"still billing {format_usd(hourly, per_hour=True)}"
        else:
            burn = "still running"
        who = one_line(self.instance.id, 64)
        what = _DONE[self.action] if self.action is not None else f"reported {self.reported}"
        ago = f"{self.polls} poll{'s' * (self.polls != 1)} ago"
        return f"{burn}: {who} was {what} {ago} but {self.shows}"


@dataclass
class _Expectation:
    provider: str
    action: Action | None
    reported: str
    since: datetime
    polls: int = 0
    last_poll: datetime | None = None


class EffectChecker:
    """Watches what stopping actions did and reports the resources that kept billing.

    ``polls`` is how many polls after the action an item must have settled: earlier, an EC2
    instance still stopping or a pod still listed running is just slow, not a leak. An
    interrupted run is also given ``interrupt_grace_seconds``: it may save a checkpoint before
    it exits, and is only escalated to SIGTERM after that grace period.
    """

    def __init__(
        self,
        polls: int = DEFAULT_POLLS,
        *,
        interrupt_grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        if polls < 1:
            raise ValueError("an effect is checked at least 1 poll later")
        self.polls = polls
        self.interrupt_grace = timedelta(seconds=interrupt_grace_seconds)
        self._expected: dict[str, _Expectation] = {}
        self._leaks: dict[str, Leak] = {}
        self._announced: set[str] = set()

    def expect(self, result: ActionResult, at: datetime) -> None:
        """Take an action's result: a done stop, terminate, interrupt or kill is watched from
        ``at``; a done start lets the item go (running is then what was asked)."""
        if result.outcome is not Outcome.DONE:
            return
        key = result.instance.key
        if result.action is Action.START:
            self._forget(key)
            return
        if result.action not in STOPPING_ACTIONS:
            return
        reported = str(result.new_state) if result.new_state else _DONE[result.action]
        self._expected[key] = _Expectation(result.instance.provider, result.action, reported, at)
        self._leaks.pop(key, None)
        self._announced.discard(key)

    def watching(self) -> frozenset[str]:
        """The keys whose effect is still being checked."""
        return frozenset(self._expected)

    def _forget(self, key: str) -> None:
        self._expected.pop(key, None)
        self._leaks.pop(key, None)
        self._announced.discard(key)

    def observe(self, snapshot: FleetSnapshot) -> list[Leak]:
        """Take one poll; every current leak, oldest first.

        Items of a provider whose poll failed keep their expectation unchanged: their rows are
        the last good data, which proves nothing new.
        """
        failed = {s.provider for s in snapshot.statuses if not s.ok}
        at = snapshot.taken_at
        present: dict[str, Instance] = {}
        for item in snapshot.instances:
            if item.provider not in failed:
                present[item.key] = item
        self._watch_contradictions(present.values(), at)
        for key, expected in list(self._expected.items()):
            instance = present.get(key)
            if instance is None:
                if expected.provider not in failed:
                    self._forget(key)
                continue
            if at <= expected.since or expected.last_poll == at:
                continue
            expected.polls += 1
            expected.last_poll = at
            self._judge(key, expected, instance, at)
        return sorted(self._leaks.values(), key=lambda leak: (leak.since, leak.key))

    def _watch_contradictions(self, instances: Iterable[Instance], at: datetime) -> None:
        """Start watching pods RunPod calls stopped while they show signs of billing."""
        for instance in instances:
            status = _pod_says_at_rest(instance)
            if status is None or instance.key in self._expected:
                continue
            if billing_signs(instance) is not None:
                # Counted from this sighting: it is a leak if it still bills ``polls`` later.
                self._expected[instance.key] = _Expectation(instance.provider, None, status, at)

    def _judge(self, key: str, expected: _Expectation, instance: Instance, at: datetime) -> None:
        shows = billing_signs(instance)
        if expected.action is None and shows is None:
            # The contradiction resolved itself: the pod stopped billing.
            self._forget(key)
            return
        if expected.polls < self.polls:
            return
        if expected.action is Action.INTERRUPT and at - expected.since < self.interrupt_grace:
            return
        if shows is not None:
            self._leaks[key] = self._leak(key, expected, instance, shows)
        elif _at_rest(instance):
            self._forget(key)
        else:
            # Stopping or shutting down for a long time: neither up nor settled; keep looking.
            self._leaks.pop(key, None)
            self._announced.discard(key)

    def _leak(self, key: str, expected: _Expectation, instance: Instance, shows: str) -> Leak:
        return Leak(
            key=key,
            instance=instance,
            action=expected.action,
            reported=expected.reported,
            since=expected.since,
            polls=expected.polls,
            shows=shows,
        )

    def leaks(self) -> list[Leak]:
        """Every current leak, oldest first."""
        return sorted(self._leaks.values(), key=lambda leak: (leak.since, leak.key))

    def new_leaks(self) -> list[Leak]:
        """The current leaks not returned here before: notify each one once.

        A leak that cleared and came back is new again.
        """
        fresh = [leak for leak in self.leaks() if leak.key not in self._announced]
        self._announced.update(leak.key for leak in fresh)
        return fresh
