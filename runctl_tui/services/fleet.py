"""The fleet: polls every provider concurrently and performs actions behind safety checks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from runctl_tui.audit import Journal
from runctl_tui.models import (
    Action,
    ActionResult,
    FleetSnapshot,
    Instance,
    InstanceState,
    Outcome,
    ProviderStatus,
)
from runctl_tui.providers.base import NotFoundError, Provider, ProviderError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


STOPPABLE = frozenset({InstanceState.RUNNING, InstanceState.PENDING})
GONE = frozenset({InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN})


def refusal(action: Action, seen: Instance, fresh: Instance, protect_tag: str) -> str | None:
    """Why ``action`` must not go ahead on ``fresh`` (seen by the user as ``seen``), or ``None``."""
    if fresh.state != seen.state:
        return f"state changed from {seen.state} to {fresh.state} since it was shown; look again"
    if action is Action.TERMINATE:
        if fresh.protected or seen.protected:
            return f"protected by tag {protect_tag}=true; remove the tag to terminate it"
        if fresh.state in GONE:
            return f"already {fresh.state}"
    elif action is Action.STOP:
        if fresh.one_time_spot:
            return "a one-time spot instance cannot be stopped; terminate it instead"
        if fresh.state not in STOPPABLE:
            return f"cannot stop an instance that is {fresh.state}"
    elif action is Action.START and fresh.state is not InstanceState.STOPPED:
        return f"only a stopped instance can be started; it is {fresh.state}"
    return None


class Fleet:
    """Every provider behind one poll and one guarded way to act."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        journal: Journal,
        readonly: bool = False,
        protect_tag: str = "runctl:protect",
        clock: Clock = utc_now,
    ) -> None:
        self.providers = {p.name: p for p in providers}
        self.journal = journal
        self.readonly = readonly
        self.protect_tag = protect_tag
        self.clock = clock
        self._lock = threading.Lock()
        self._instances: dict[str, tuple[Instance, ...]] = {name: () for name in self.providers}
        self._statuses: dict[str, ProviderStatus] = {
            name: ProviderStatus(provider=name, ok=False, error="waiting for the first poll")
            for name in self.providers
        }

    def snapshot(self) -> FleetSnapshot:
        """What the last polls found, without polling."""
        with self._lock:
            instances = tuple(i for name in self.providers for i in self._instances[name])
            statuses = tuple(self._statuses[name] for name in self.providers)
        return FleetSnapshot(instances=instances, statuses=statuses, taken_at=self.clock())

    def poll(self) -> FleetSnapshot:
        """Poll every provider at once; a failing one keeps its last good data, marked stale."""
        if self.providers:
            with ThreadPoolExecutor(len(self.providers), thread_name_prefix="fleet") as pool:
                list(pool.map(self._poll_one, self.providers.values()))
        return self.snapshot()

    def _poll_one(self, provider: Provider) -> None:
        try:
            instances = tuple(provider.list_instances())
        except ProviderError as exc:
            self._record_failure(provider.name, exc)
            return
        except Exception as exc:
            log.exception("%s: poll failed unexpectedly", provider.name)
            self._record_failure(
                provider.name, ProviderError(provider.name, f"{type(exc).__name__}: {exc}")
            )
            return
        now = self.clock()
        with self._lock:
            self._instances[provider.name] = instances
            self._statuses[provider.name] = ProviderStatus(
                provider=provider.name, ok=True, refreshed_at=now, instance_count=len(instances)
            )

    def _record_failure(self, name: str, exc: ProviderError) -> None:
        log.warning("%s: %s", name, exc)
        now = self.clock()
        with self._lock:
            previous = self._statuses[name]
            instances = self._instances[name]
            if exc.partial is not None:
                # Keep the last known rows of the regions that failed; take fresh ones elsewhere.
                kept = tuple(i for i in instances if i.region in exc.failed_regions)
                instances = exc.partial + kept
                self._instances[name] = instances
            self._statuses[name] = ProviderStatus(
                provider=name,
                ok=False,
                refreshed_at=previous.refreshed_at,
                error=exc.message,
                hint=exc.hint,
                failed_at=now,
                instance_count=len(instances),
            )

    def act(self, action: Action, targets: Sequence[Instance]) -> list[ActionResult]:
        """Perform ``action`` on exactly ``targets`` as the user saw them, each checked afresh."""
        results = [self._act_one(action, seen) for seen in targets]
        for result in results:
            self.journal.record(result, at=self.clock())
        return results

    def record_cancelled(self, action: Action, targets: Sequence[Instance]) -> None:
        """Journal that the user backed out of ``action``."""
        for seen in targets:
            self.journal.record(
                ActionResult(action=action, instance=seen, outcome=Outcome.CANCELLED),
                at=self.clock(),
            )

    def _act_one(self, action: Action, seen: Instance) -> ActionResult:
        def result(outcome: Outcome, detail: str = "", **extra: InstanceState) -> ActionResult:
            return ActionResult(
                action=action, instance=seen, outcome=outcome, detail=detail, **extra
            )

        if self.readonly:
            return result(Outcome.REFUSED, "read-only mode: actions are disabled")
        provider = self.providers.get(seen.provider)
        if provider is None:
            return result(Outcome.REFUSED, f"no provider named {seen.provider!r}")
        if not provider.capabilities.allows(action):
            return result(Outcome.REFUSED, f"{provider.name} cannot {action}")
        try:
            fresh = provider.describe(seen)
        except NotFoundError:
            return result(Outcome.REFUSED, "it no longer exists")
        except ProviderError as exc:
            return result(Outcome.FAILED, f"could not check its state: {exc.message}")
        reason = refusal(action, seen, fresh, self.protect_tag)
        if reason:
            return result(Outcome.REFUSED, reason)
        operation = {
            Action.STOP: provider.stop,
            Action.START: provider.start,
            Action.TERMINATE: provider.terminate,
        }[action]
        try:
            new_state = operation(fresh)
        except ProviderError as exc:
            return result(Outcome.FAILED, exc.message)
        log.info("%s %s %s: now %s", action, seen.provider, seen.id, new_state)
        return result(Outcome.DONE, new_state=new_state)
