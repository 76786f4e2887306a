"""The fleet: polls every provider concurrently and performs actions behind safety checks."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl_tui.actions import BY_ACTION, SHARING
from runctl_tui.audit import Journal, JournalError
from runctl_tui.models import (
    Action,
    ActionResult,
    Ec2Details,
    FleetSnapshot,
    Instance,
    InstanceState,
    Outcome,
    ProviderStatus,
    StorageItem,
)
from runctl_tui.providers.base import (
    AnyProvider,
    CheckpointLocation,
    HasCheckpoints,
    HasIdentity,
    HasLogs,
    HasSpotRequests,
    LogLocation,
    NamesLosses,
    NotConfiguredError,
    NotFoundError,
    Provider,
    ProviderError,
    ReportsStorage,
    ReportsWarnings,
    SpotRequest,
)
from runctl_tui.text import clean, one_line
from runctl_tui.threads import run_blocking, submit

if TYPE_CHECKING:
    from runctl_tui.costs.report import CostReport
    from runctl_tui.services.costs import CostService

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


CLOSE_SECONDS = 0.3
"""How long quitting waits for connections to close cleanly before abandoning them."""

DEFAULT_POLL_DEADLINE = 20.0
"""Seconds one poll of a provider may take before it is abandoned and reported."""

KIND_NOUNS = {
    "ec2": "an EC2 instance",
    "pod": "a pod",
    "process": "a training run",
    "host": "a whole host",
}
"""How a refusal names an item of each kind."""

LIVE_SPOT_REQUEST_STATES = frozenset({"open", "active", "disabled"})
"""Spot request states in which a persistent request still launches replacements."""


def refusal(action: Action, seen: Instance, fresh: Instance) -> str | None:
    """Why ``action`` must not go ahead on ``fresh`` (seen by the user as ``seen``), whatever
    the provider: the state moved on, or a protected item would be destroyed."""
    if fresh.state != seen.state:
        return f"state changed from {seen.state} to {fresh.state} since it was shown; look again"
    spec = BY_ACTION.get(action)
    if spec is not None and spec.destroys and (fresh.protected or seen.protected):
        by = fresh.protected_by or seen.protected_by or "its protection marker"
        return f"protected by {clean(by)}; remove that to {action} it"
    return None


def resolve_one(provider: AnyProvider, action: Action, instance: Instance) -> Action | None:
    """What ``action``'s key does to ``instance``: the action itself, or the one sharing its
    key that the item takes (``stop`` on a training run interrupts it); ``None`` if neither."""
    try:
        offered = provider.actions(instance)
    except Exception:
        log.exception("%s: cannot say which actions %s takes", provider.name, instance.id)
        return None
    if action in offered:
        return action
    asked = BY_ACTION.get(action)
    for spec in SHARING.get(asked.key_action if asked else action, ()):
        if spec.action in offered:
            return spec.action
    return None


@dataclass(frozen=True)
class PollOutcome:
    """What one provider's poll thread brought back."""

    instances: tuple[Instance, ...]
    warnings: tuple[str, ...]
    identity: str | None
    storage: tuple[StorageItem, ...] = ()


def _identity(provider: HasIdentity, name: str) -> str | None:
    try:
        return provider.identity()
    except Exception:
        log.exception("%s: identity lookup failed", name)
        return None


def _poll_provider(provider: Provider) -> PollOutcome:
    """List one provider's instances, its warnings and, meanwhile, its identity (blocking)."""
    asked: Future[str | None] | None = None
    if isinstance(provider, HasIdentity):
        # Who the account is (one more client and call, once) need not wait for the listing.
        who = provider
        asked = submit(lambda: _identity(who, provider.name), name=f"identity-{provider.name}")
    instances = tuple(provider.list_instances())
    warnings: tuple[str, ...] = ()
    if isinstance(provider, ReportsWarnings):
        warnings = tuple(one_line(w, 300) for w in provider.poll_warnings())
    storage = tuple(provider.storage()) if isinstance(provider, ReportsStorage) else ()
    identity = asked.result() if asked is not None else None
    return PollOutcome(instances, warnings, one_line(identity, 300) if identity else None, storage)


def is_async(provider: AnyProvider) -> bool:
    """Whether ``provider``'s calls are coroutines, to be awaited on the app's loop."""
    return inspect.iscoroutinefunction(provider.list_instances)


async def _poll_async_provider(provider: Any) -> PollOutcome:
    """List one provider whose calls are coroutines (e.g. over the SSH hub), on this loop."""
    instances = tuple(await provider.list_instances())
    warnings: tuple[str, ...] = ()
    if isinstance(provider, ReportsWarnings):
        warnings = tuple(one_line(w, 300) for w in provider.poll_warnings())
    return PollOutcome(instances, warnings, None)


class Fleet:
    """Every provider behind one poll and one guarded, journaled way to act."""

    def __init__(
        self,
        providers: Sequence[AnyProvider],
        *,
        journal: Journal,
        readonly: bool = False,
        clock: Clock = utc_now,
        poll_deadline: float = DEFAULT_POLL_DEADLINE,
        costs: CostService | None = None,
    ) -> None:
        """``costs``: the ledger each finished poll is recorded in, and that watches what
        actions were meant to stop billing; none keeps no ledger."""
        self.providers = {p.name: p for p in providers}
        self.costs = costs
        self.cost_report: CostReport | None = None
        """What the fleet cost as of the last finished poll, when there is a ledger."""
        self.journal = journal
        self.readonly = readonly
        self.clock = clock
        self.poll_deadline = poll_deadline
        self._lock = threading.Lock()
        self._instances: dict[str, tuple[Instance, ...]] = {name: () for name in self.providers}
        self._storage: dict[str, tuple[StorageItem, ...]] = {name: () for name in self.providers}
        self._statuses: dict[str, ProviderStatus] = {
            name: ProviderStatus(provider=name, ok=False, error="waiting for the first poll")
            for name in self.providers
        }
        self._in_flight: dict[str, Future[PollOutcome] | asyncio.Future[PollOutcome]] = {}
        self._polling_since: datetime | None = None

    @property
    def polling_since(self) -> datetime | None:
        """When the poll in progress started; ``None`` when no poll is running."""
        return self._polling_since

    def snapshot(self) -> FleetSnapshot:
        """What the last polls found, without polling."""
        with self._lock:
            instances = tuple(i for name in self.providers for i in self._instances[name])
            statuses = tuple(self._statuses[name] for name in self.providers)
            storage = tuple(s for name in self.providers for s in self._storage[name])
        return FleetSnapshot(
            instances=instances, statuses=statuses, taken_at=self.clock(), storage=storage
        )

    def poll(self, deadline: float | None = None, *, close: bool = False) -> FleetSnapshot:
        """:meth:`poll_async` for callers without an event loop (``status``, scripts); with
        ``close``, connections are closed afterwards, on the same loop (a last poll)."""

        async def once() -> FleetSnapshot:
            try:
                return await self.poll_async(deadline)
            finally:
                if close:
                    await self.close()

        return asyncio.run(once())

    async def close(self, wait: float = CLOSE_SECONDS) -> None:
        """Let providers that keep connections (SSH) say goodbye, waiting at most ``wait`` s.

        A host that does not answer the goodbye is abandoned: quitting never waits for it.
        """
        closing = [
            asyncio.ensure_future(close())
            for provider in self.providers.values()
            if inspect.iscoroutinefunction(close := getattr(provider, "close", None))
        ]
        if not closing:
            return
        _, pending = await asyncio.wait(closing, timeout=wait)
        for task in pending:
            task.cancel()

    async def poll_async(
        self,
        deadline: float | None = None,
        *,
        on_progress: Callable[[FleetSnapshot], Awaitable[None]] | None = None,
    ) -> FleetSnapshot:
        """Poll every provider at once, waiting at most ``deadline`` seconds in all.

        Blocking providers run on daemon threads; providers whose ``list_instances`` is a
        coroutine function run as tasks on the caller's loop (where their connections live).
        A provider that has not answered by then is reported as timed out and keeps its last
        good data, marked stale; its call goes on unwaited for, and the next poll waits for
        that same call rather than starting another. Cancelling this coroutine (quitting)
        abandons every call at once. With ``on_progress``, each provider that answers while
        others are still out is shown at once: it is awaited with the snapshot so far.
        """
        limit = self.poll_deadline if deadline is None else deadline
        self._polling_since = self.clock()
        try:
            waits: dict[str, asyncio.Future[PollOutcome]] = {
                name: self._poll_started(name, provider)
                for name, provider in self.providers.items()
            }
            loop = asyncio.get_running_loop()
            end = loop.time() + limit
            pending = set(waits)
            while pending and (left := end - loop.time()) > 0:
                await asyncio.wait(
                    [waits[name] for name in pending],
                    timeout=left,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                answered = [name for name in pending if waits[name].done()]
                for name in answered:
                    pending.discard(name)
                    self._in_flight.pop(name, None)
                    self._record(name, waits[name])
                if on_progress is not None and answered and pending:
                    await on_progress(self.snapshot())
            for name in pending:
                self._record_failure(
                    name,
                    ProviderError(
                        name,
                        f"no answer within {limit:g} s",
                        hint="check the network and the endpoint; "
                        "raise poll_deadline_seconds in the config for very large fleets",
                    ),
                )
        finally:
            self._polling_since = None
        snapshot = self.snapshot()
        await self._record_costs(snapshot)
        return snapshot

    async def _record_costs(self, snapshot: FleetSnapshot) -> None:
        """Record the poll in the ledger and keep what it costs, off the event loop."""
        costs = self.costs
        if costs is None:
            return
        try:
            self.cost_report = await run_blocking(
                lambda: costs.observe(snapshot), name="runctl-costs"
            )
        except Exception:
            log.exception("recording the poll's costs failed")

    def _poll_started(self, name: str, provider: AnyProvider) -> asyncio.Future[PollOutcome]:
        """The call in flight for ``provider``, started now unless one still runs."""
        running = self._in_flight.get(name)
        if (
            isinstance(running, asyncio.Future)
            and running.get_loop() is not asyncio.get_running_loop()
        ):
            # A task of a loop that is gone (an earlier ``poll``) can never finish here.
            running = None
        # A call that finished since the last poll gave up on it is still the freshest answer.
        if running is None:
            if isinstance(provider, Provider) and not is_async(provider):
                blocking = provider
                running = submit(lambda: _poll_provider(blocking), name=f"poll-{name}")
            else:
                running = asyncio.ensure_future(_poll_async_provider(provider))
            self._in_flight[name] = running
        if isinstance(running, asyncio.Future):
            return running
        return asyncio.wrap_future(running)

    def _record(self, name: str, future: Future[PollOutcome] | asyncio.Future[PollOutcome]) -> None:
        exc = future.exception()
        if isinstance(exc, ProviderError):
            self._record_failure(name, exc)
            return
        if exc is not None:
            log.error("%s: poll failed unexpectedly", name, exc_info=exc)
            self._record_failure(name, ProviderError(name, f"{type(exc).__name__}: {exc}"))
            return
        outcome = future.result()
        now = self.clock()
        with self._lock:
            self._instances[name] = outcome.instances
            self._storage[name] = outcome.storage
            self._statuses[name] = ProviderStatus(
                provider=name,
                ok=True,
                refreshed_at=now,
                instance_count=len(outcome.instances),
                warnings=outcome.warnings,
                identity=outcome.identity or self._statuses[name].identity,
            )

    def _record_failure(self, name: str, exc: ProviderError) -> None:
        log.warning("%s: %s", name, exc)
        now = self.clock()
        with self._lock:
            previous = self._statuses[name]
            instances = self._instances[name]
            if exc.partial is not None:
                # Keep the last known rows of the regions that failed; take fresh ones elsewhere.
                kept = tuple(i for i in instances if i.location in exc.failed_regions)
                instances = exc.partial + kept
                self._instances[name] = instances
            self._statuses[name] = ProviderStatus(
                provider=name,
                ok=False,
                refreshed_at=previous.refreshed_at,
                error=one_line(exc.message, 300),
                hint=one_line(exc.hint, 300) if exc.hint else None,
                failed_at=now,
                instance_count=len(instances),
                configured=not isinstance(exc, NotConfiguredError),
                warnings=previous.warnings,
                identity=previous.identity,
            )

    # Acting ----------------------------------------------------------------------------------

    def resolve(self, action: Action, targets: Sequence[Instance]) -> Action:
        """The action ``action``'s key asks of ``targets``: ``stop`` on training runs is
        ``interrupt``, ``terminate`` is ``kill``; the first target that takes one decides."""
        for seen in targets:
            provider = self.providers.get(seen.provider)
            if provider is None:
                continue
            concrete = resolve_one(provider, action, seen)
            if concrete is not None:
                return concrete
        return action

    async def log_locations(self, instance: Instance) -> list[LogLocation]:
        """Where ``instance``'s logs are, likeliest first; none when its provider cannot say.
        Raises :class:`ProviderError`."""
        provider = self.providers.get(instance.provider)
        if not isinstance(provider, HasLogs):
            return []
        found: list[LogLocation] = await self._call(provider, "log_locations", instance)
        return found

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """Where ``instance``'s checkpoints are, likeliest first; none when its provider cannot
        say. Raises :class:`ProviderError`."""
        provider = self.providers.get(instance.provider)
        if not isinstance(provider, HasCheckpoints):
            return []
        found: list[CheckpointLocation] = await self._call(
            provider, "checkpoint_locations", instance
        )
        return found

    def takes(self, action: Action, instance: Instance) -> bool:
        """Whether ``action``'s key does anything to ``instance`` at all (state aside)."""
        provider = self.providers.get(instance.provider)
        return provider is not None and resolve_one(provider, action, instance) is not None

    def preflight(self, action: Action, targets: Sequence[Instance]) -> dict[str, str]:
        """Why each target that cannot take ``action`` as it was shown is refused, by key.

        Checked before asking the user, from what is on screen; :meth:`act` checks again
        against the provider's fresh answer.
        """
        reasons: dict[str, str] = {}
        for seen in targets:
            reason = self._static_refusal(action, seen)
            if reason is None:
                reason = refusal(action, seen, seen) or self._provider_refusal(action, seen)
            if reason is not None:
                reasons[seen.key] = reason
        return reasons

    def _static_refusal(self, action: Action, seen: Instance) -> str | None:
        if self.readonly:
            return "read-only mode: actions are disabled (started with --readonly or readonly)"
        provider = self.providers.get(seen.provider)
        if provider is None:
            return f"no provider named {clean(seen.provider)!r}"
        concrete = resolve_one(provider, action, seen)
        what = KIND_NOUNS.get(seen.kind, "this item")
        if concrete is None:
            return f"{action} does not apply to {what}"
        if concrete is not action:
            return f"{what} takes {concrete}, not {action}: act on it separately"
        return None

    def _provider_refusal(self, action: Action, instance: Instance) -> str | None:
        provider = self.providers[instance.provider]
        try:
            reason = provider.refusal(action, instance)
        except Exception as exc:
            log.exception("%s: refusal check failed", provider.name)
            return f"could not check: {one_line(f'{type(exc).__name__}: {exc}', 200)}"
        return one_line(reason, 300) if reason else None

    def record_refused(
        self, action: Action, targets: Sequence[Instance], reasons: Mapping[str, str]
    ) -> None:
        """Journal that ``action`` was refused on ``targets`` before anything was called."""
        for seen in targets:
            detail = reasons.get(seen.key, "refused")
            self._journal_quietly(
                ActionResult(action=action, instance=seen, outcome=Outcome.REFUSED, detail=detail)
            )

    def record_cancelled(self, action: Action, targets: Sequence[Instance]) -> None:
        """Journal that the user backed out of ``action``."""
        for seen in targets:
            self._journal_quietly(
                ActionResult(action=action, instance=seen, outcome=Outcome.CANCELLED)
            )

    def _journal_quietly(self, result: ActionResult) -> None:
        try:
            self.journal.record(result, at=self.clock())
        except JournalError as exc:
            log.error("%s", exc)

    def losses(self, action: Action, targets: Sequence[Instance]) -> dict[str, list[str]]:
        """What each target's provider says the action does and loses, by key, where it says.

        A provider that does not say, or fails to, leaves its targets out (the failure is
        logged): the dialog then says only what every action means.
        """
        said: dict[str, list[str]] = {}
        for seen in targets:
            provider = self.providers.get(seen.provider)
            if not isinstance(provider, NamesLosses):
                continue
            try:
                said[seen.key] = [one_line(line, 200) for line in provider.losses(action, seen)]
            except Exception as exc:
                log.warning(
                    "%s: cannot say what %s does to %s: %s", seen.provider, action, seen.id, exc
                )
        return said

    def spot_requests(self, targets: Sequence[Instance]) -> dict[str, SpotRequest]:
        """The live persistent spot requests behind ``targets``, by instance key (blocking).

        A lookup that fails leaves the instance out: the confirmation then cannot offer to
        cancel its request, and says what the persistent request will do.
        """
        found: dict[str, SpotRequest] = {}
        for seen in targets:
            provider = self.providers.get(seen.provider)
            if not persistent_spot(seen) or not isinstance(provider, HasSpotRequests):
                continue
            try:
                request = provider.spot_request(seen)
            except ProviderError as exc:
                log.warning(
                    "%s: spot request lookup for %s failed: %s", seen.provider, seen.id, exc
                )
                continue
            if request is not None and request.state in LIVE_SPOT_REQUEST_STATES:
                found[seen.key] = request
        return found

    def act_now(
        self,
        action: Action,
        targets: Sequence[Instance],
        *,
        cancel_spot_requests: bool = False,
    ) -> list[ActionResult]:
        """:meth:`act` for callers without an event loop (scripts, tests)."""
        return asyncio.run(self.act(action, targets, cancel_spot_requests=cancel_spot_requests))

    async def act(
        self,
        action: Action,
        targets: Sequence[Instance],
        *,
        cancel_spot_requests: bool = False,
        why: str = "",
    ) -> list[ActionResult]:
        """Perform ``action`` on exactly ``targets`` as the user saw them, each checked afresh.

        Each call is journaled before it is made (an ``attempted`` line) and after (its
        result), one target at a time, so a process killed mid-batch leaves a line for every
        call made. Blocking providers are called on daemon threads (quitting never waits for
        them); coroutine providers on this loop. With ``cancel_spot_requests``, terminating an
        instance of a persistent spot request cancels the request first, so that it launches
        no replacement. ``why`` goes to the journal's ``attempted`` lines when the action was
        not asked for by hand (an exceeded budget).
        """
        results: list[ActionResult] = []
        for seen in targets:
            results.extend(await self._act_one(action, seen, cancel_spot_requests, why))
        if self.costs is not None:
            self.costs.expect(results)
        return results

    def _finish(self, result: ActionResult) -> ActionResult:
        try:
            self.journal.record(result, at=self.clock())
        except JournalError as exc:
            log.error("%s", exc)
            if result.outcome is Outcome.DONE:
                return result.model_copy(update={"detail": f"done, but {exc}"})
        return result

    async def _call(self, provider: AnyProvider, method: str, *args: Any) -> Any:
        """``provider.method(*args)``: awaited on this loop, or run on a daemon thread."""
        call = getattr(provider, method)
        if inspect.iscoroutinefunction(call):
            return await call(*args)
        return await run_blocking(lambda: call(*args), name=f"runctl-{method}-{provider.name}")

    async def _act_one(
        self, action: Action, seen: Instance, cancel_spot: bool, why: str = ""
    ) -> list[ActionResult]:
        def result(outcome: Outcome, detail: str = "", **extra: InstanceState) -> ActionResult:
            return ActionResult(
                action=action, instance=seen, outcome=outcome, detail=detail, **extra
            )

        reason = self._static_refusal(action, seen)
        if reason is not None:
            return [self._finish(result(Outcome.REFUSED, reason))]
        provider = self.providers[seen.provider]
        try:
            self.journal.check()
        except JournalError as exc:
            return [result(Outcome.REFUSED, f"nothing done: {exc}")]
        try:
            fresh: Instance = await self._call(provider, "describe", seen)
        except NotFoundError:
            return [self._finish(result(Outcome.REFUSED, "it no longer exists"))]
        except ProviderError as exc:
            detail = f"could not check its state: {one_line(exc.message, 300)}"
            return [self._finish(result(Outcome.FAILED, detail))]
        reason = refusal(action, seen, fresh) or self._provider_refusal(action, fresh)
        if reason:
            return [self._finish(result(Outcome.REFUSED, reason))]
        done: list[ActionResult] = []
        if (
            action is Action.TERMINATE
            and cancel_spot
            and persistent_spot(fresh)
            and isinstance(provider, HasSpotRequests)
        ):
            cancelled = await self._cancel_spot_request(provider, fresh, seen)
            if cancelled is not None:
                done.append(cancelled)
                if cancelled.outcome is not Outcome.DONE:
                    detail = "not terminated: its spot request could not be cancelled"
                    return [*done, self._finish(result(Outcome.REFUSED, detail))]
        try:
            self.journal.attempted(action, seen, at=self.clock(), detail=why)
        except JournalError as exc:
            return [*done, result(Outcome.REFUSED, f"nothing done: {exc}")]
        try:
            new_state: InstanceState = await self._call(provider, "perform", action, fresh)
        except ProviderError as exc:
            return [*done, self._finish(result(Outcome.FAILED, one_line(exc.message, 300)))]
        except Exception as exc:
            log.exception("%s %s %s failed unexpectedly", action, seen.provider, seen.id)
            detail = one_line(f"{type(exc).__name__}: {exc}", 300)
            return [*done, self._finish(result(Outcome.FAILED, detail))]
        log.info("%s %s %s: now %s", action, seen.provider, seen.id, new_state)
        return [*done, self._finish(result(Outcome.DONE, new_state=new_state))]

    async def _cancel_spot_request(
        self, provider: HasSpotRequests, fresh: Instance, seen: Instance
    ) -> ActionResult | None:
        action = Action.CANCEL_SPOT_REQUEST

        def result(outcome: Outcome, detail: str) -> ActionResult:
            return ActionResult(action=action, instance=seen, outcome=outcome, detail=detail)

        try:
            request = await run_blocking(lambda: provider.spot_request(fresh), name="runctl-spot")
        except ProviderError as exc:
            detail = f"could not look up its spot request: {one_line(exc.message, 300)}"
            return self._finish(result(Outcome.FAILED, detail))
        if request is None or request.state not in LIVE_SPOT_REQUEST_STATES:
            return None
        try:
            self.journal.attempted(action, seen, at=self.clock(), detail=request.id)
        except JournalError as exc:
            return result(Outcome.REFUSED, f"nothing done: {exc}")
        try:
            state = await run_blocking(
                lambda: provider.cancel_spot_request(fresh, request.id), name="runctl-spot"
            )
        except ProviderError as exc:
            detail = f"{request.id}: {one_line(exc.message, 300)}"
            return self._finish(result(Outcome.FAILED, detail))
        return self._finish(result(Outcome.DONE, f"{request.id} now {clean(state)}"))


def persistent_spot(instance: Instance) -> bool:
    """Whether ``instance`` belongs to a persistent EC2 spot request (relaunched if terminated)."""
    details = instance.details
    return isinstance(details, Ec2Details) and details.persistent_spot
