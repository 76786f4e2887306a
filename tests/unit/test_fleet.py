"""The fleet service: polling with stale data kept, and guarded, journalled actions."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runctl_tui.audit import Journal
from runctl_tui.models import Action, FleetSnapshot, Instance, InstanceState, Outcome
from runctl_tui.providers.base import (
    NotFoundError,
    Provider,
    ProviderError,
    SpotRequest,
)
from runctl_tui.services.fleet import Fleet, refusal
from tests.fakes import T0, FakeClock, FakeProvider, make_instance, make_run

TAG = "runctl:protect"


def journal_lines(journal: Journal) -> list[dict[str, Any]]:
    if not journal.path.exists():
        return []
    return [json.loads(line) for line in journal.path.read_text("utf-8").splitlines()]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_fleet(
    journal: Journal, clock: FakeClock, *providers: FakeProvider, readonly: bool = False
) -> Fleet:
    return Fleet(providers, journal=journal, readonly=readonly, clock=clock)


# refusal(): one case per rule --------------------------------------------------------------------

RUNNING = make_instance("i-1")
STOPPED = make_instance("i-1", state=InstanceState.STOPPED)


@pytest.mark.parametrize(
    ("action", "seen", "fresh", "reason"),
    [
        pytest.param(
            Action.TERMINATE,
            RUNNING,
            STOPPED,
            "state changed from running to stopped",
            id="state-changed",
        ),
        pytest.param(
            Action.STOP,
            RUNNING,
            make_instance("i-1", state=InstanceState.STOPPING),
            "state changed from running to stopping",
            id="state-changed-stop",
        ),
        pytest.param(
            Action.TERMINATE,
            RUNNING,
            make_instance("i-1", protected=True),
            f"protected by tag {TAG}=true",
            id="protected-now",
        ),
        pytest.param(
            Action.TERMINATE,
            make_instance("i-1", protected=True),
            RUNNING,
            f"protected by tag {TAG}=true",
            id="protected-when-seen",
        ),
        pytest.param(
            Action.TERMINATE,
            make_instance("i-1", state=InstanceState.TERMINATED),
            make_instance("i-1", state=InstanceState.TERMINATED),
            "already terminated",
            id="already-terminated",
        ),
        pytest.param(
            Action.TERMINATE,
            make_instance("i-1", state=InstanceState.SHUTTING_DOWN),
            make_instance("i-1", state=InstanceState.SHUTTING_DOWN),
            "already shutting-down",
            id="already-shutting-down",
        ),
        pytest.param(
            Action.STOP,
            make_instance("i-1", spot="one-time"),
            make_instance("i-1", spot="one-time"),
            "one-time spot instance cannot be stopped",
            id="one-time-spot",
        ),
        pytest.param(
            Action.STOP,
            STOPPED,
            STOPPED,
            "cannot stop an instance that is stopped",
            id="stop-stopped",
        ),
        pytest.param(
            Action.START,
            RUNNING,
            RUNNING,
            "only a stopped instance can be started; it is running",
            id="start-running",
        ),
    ],
)
def test_refusal_rules(action: Action, seen: Instance, fresh: Instance, reason: str) -> None:
    refused = refusal(action, seen, fresh) or FakeProvider().refusal(action, fresh)

    assert refused is not None
    assert reason in refused


@pytest.mark.parametrize(
    ("action", "instance"),
    [
        (Action.STOP, RUNNING),
        (Action.STOP, make_instance("i-1", state=InstanceState.PENDING)),
        (Action.STOP, make_instance("i-1", spot="persistent")),
        (Action.STOP, make_instance("i-1", protected=True)),
        (Action.START, STOPPED),
        (Action.START, make_instance("i-1", state=InstanceState.STOPPED, protected=True)),
        (Action.TERMINATE, RUNNING),
        (Action.TERMINATE, STOPPED),
        (Action.TERMINATE, make_instance("i-1", spot="one-time")),
    ],
)
def test_allowed_actions(action: Action, instance: Instance) -> None:
    assert refusal(action, instance, instance) or FakeProvider().refusal(action, instance) is None


def test_fake_provider_satisfies_the_protocol() -> None:
    assert isinstance(FakeProvider(), Provider)


# poll --------------------------------------------------------------------------------------------


def test_statuses_before_the_first_poll(journal: Journal, clock: FakeClock) -> None:
    snapshot = make_fleet(journal, clock, FakeProvider([RUNNING])).snapshot()

    assert snapshot.instances == ()
    assert [(s.provider, s.ok, s.refreshed_at) for s in snapshot.statuses] == [
        ("fake", False, None)
    ]


def test_poll_collects_every_provider(journal: Journal, clock: FakeClock) -> None:
    a = FakeProvider(
        [make_instance("i-a1", provider="a"), make_instance("i-a2", provider="a")], name="a"
    )
    b = FakeProvider([make_instance("i-b1", provider="b")], name="b")

    snapshot = make_fleet(journal, clock, a, b).poll()

    assert [i.id for i in snapshot.instances] == ["i-a1", "i-a2", "i-b1"]
    assert snapshot.all_ok
    assert snapshot.taken_at == T0
    assert [(s.provider, s.ok, s.refreshed_at, s.instance_count) for s in snapshot.statuses] == [
        ("a", True, T0, 2),
        ("b", True, T0, 1),
    ]


def test_failed_poll_keeps_stale_data_with_error_and_hint(
    journal: Journal, clock: FakeClock
) -> None:
    provider = FakeProvider([make_instance("i-1"), make_instance("i-2")])
    fleet = make_fleet(journal, clock, provider)
    fleet.poll()
    clock.advance(timedelta(seconds=30))
    provider.instances.clear()
    provider.list_error = ProviderError("fake", "token expired", hint="log in again")

    snapshot = fleet.poll()

    assert [i.id for i in snapshot.instances] == ["i-1", "i-2"]
    (status,) = snapshot.statuses
    assert status.ok is False
    assert status.error == "token expired"
    assert status.hint == "log in again"
    assert status.refreshed_at == T0
    assert status.failed_at == T0 + timedelta(seconds=30)
    assert status.age(clock()) == timedelta(seconds=30)
    assert status.instance_count == 2
    assert not snapshot.all_ok


def test_recovery_after_a_failure(journal: Journal, clock: FakeClock) -> None:
    provider = FakeProvider([make_instance("i-1")])
    fleet = make_fleet(journal, clock, provider)
    provider.list_error = ProviderError("fake", "down")
    assert fleet.poll().statuses[0].refreshed_at is None
    provider.list_error = None
    clock.advance(timedelta(seconds=10))

    (status,) = fleet.poll().statuses

    assert status.ok
    assert status.error is None
    assert status.hint is None
    assert status.refreshed_at == clock()


def test_unexpected_exception_is_a_failed_status_not_a_crash(
    journal: Journal, clock: FakeClock
) -> None:
    provider = FakeProvider([make_instance("i-1")])
    fleet = make_fleet(journal, clock, provider)
    fleet.poll()
    provider.list_error = KeyError("Reservations")

    snapshot = fleet.poll()

    assert [i.id for i in snapshot.instances] == ["i-1"]
    assert snapshot.statuses[0].ok is False
    assert snapshot.statuses[0].error == "KeyError: 'Reservations'"


def test_one_failing_provider_does_not_hide_the_others(journal: Journal, clock: FakeClock) -> None:
    good = FakeProvider([make_instance("i-g", provider="good")], name="good")
    bad = FakeProvider(name="bad")
    bad.list_error = ProviderError("bad", "unreachable")

    snapshot = make_fleet(journal, clock, good, bad).poll()

    assert [i.id for i in snapshot.instances] == ["i-g"]
    assert [s.ok for s in snapshot.statuses] == [True, False]


def test_partial_failure_keeps_old_rows_of_failed_regions_only(
    journal: Journal, clock: FakeClock
) -> None:
    east_old = make_instance("i-east-old", region="us-east-1")
    west = make_instance("i-west", region="eu-west-1")
    provider = FakeProvider([east_old, west])
    fleet = make_fleet(journal, clock, provider)
    fleet.poll()
    clock.advance(timedelta(minutes=1))
    east_new = make_instance("i-east-new", region="us-east-1")
    provider.list_error = ProviderError(
        "fake",
        "eu-west-1: AWS is throttling requests",
        partial=[east_new],
        failed_regions=["eu-west-1"],
    )

    snapshot = fleet.poll()

    assert sorted(i.id for i in snapshot.instances) == ["i-east-new", "i-west"]
    (status,) = snapshot.statuses
    assert status.ok is False
    assert status.refreshed_at == T0
    assert status.instance_count == 2


# act ---------------------------------------------------------------------------------------------


def test_stop_is_done_and_journalled(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1", name="trainer")
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [instance])

    assert result.outcome is Outcome.DONE
    assert result.new_state is InstanceState.STOPPING
    assert result.instance == instance
    assert provider.acted() == [("stop", "i-1")]
    assert provider.instances["i-1"].state is InstanceState.STOPPING
    attempted, line = journal_lines(journal)
    assert (attempted["action"], attempted["result"], attempted["id"]) == (
        "stop",
        "attempted",
        "i-1",
    )
    assert line["action"] == "stop"
    assert line["result"] == "done"
    assert line["id"] == "i-1"
    assert line["state_after"] == "stopping"
    assert line["time"] == T0.isoformat(timespec="seconds")


def test_start_and_terminate(journal: Journal, clock: FakeClock) -> None:
    stopped = make_instance("i-1", state=InstanceState.STOPPED)
    running = make_instance("i-2")
    provider = FakeProvider([stopped, running])
    fleet = make_fleet(journal, clock, provider)

    (started,) = fleet.act_now(Action.START, [stopped])
    (terminated,) = fleet.act_now(Action.TERMINATE, [running])

    assert (started.outcome, started.new_state) == (Outcome.DONE, InstanceState.PENDING)
    assert (terminated.outcome, terminated.new_state) == (Outcome.DONE, InstanceState.SHUTTING_DOWN)
    assert provider.acted() == [("start", "i-1"), ("terminate", "i-2")]


def test_state_changed_since_seen_is_refused_and_never_acted_on(
    journal: Journal, clock: FakeClock
) -> None:
    seen = make_instance("i-1")
    provider = FakeProvider([seen])
    provider.set(make_instance("i-1", state=InstanceState.STOPPED))

    (result,) = make_fleet(journal, clock, provider).act_now(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert "state changed from running to stopped" in result.detail
    assert provider.acted() == []
    assert ("describe", "i-1") in provider.calls
    assert journal_lines(journal)[0]["result"] == "refused"


def test_protected_instance_is_never_terminated(journal: Journal, clock: FakeClock) -> None:
    seen = make_instance("i-1")
    provider = FakeProvider([seen])
    # The tag was added after the row was shown.
    provider.set(make_instance("i-1", protected=True))

    (result,) = make_fleet(journal, clock, provider).act_now(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert TAG in result.detail
    assert provider.acted() == []
    assert provider.instances["i-1"].state is InstanceState.RUNNING


def test_protected_instance_can_still_be_stopped(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1", protected=True)
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [instance])

    assert result.outcome is Outcome.DONE


def test_one_time_spot_stop_is_refused(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1", spot="one-time")
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [instance])

    assert result.outcome is Outcome.REFUSED
    assert provider.acted() == []


def test_readonly_refuses_without_touching_the_provider(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance])
    fleet = make_fleet(journal, clock, provider, readonly=True)

    results = fleet.act_now(Action.STOP, [instance]) + fleet.act_now(Action.TERMINATE, [instance])

    assert [r.outcome for r in results] == [Outcome.REFUSED, Outcome.REFUSED]
    assert all("read-only" in r.detail for r in results)
    assert provider.calls == []
    assert [(line["action"], line["result"]) for line in journal_lines(journal)] == [
        ("stop", "refused"),
        ("terminate", "refused"),
    ]


def test_vanished_instance_is_refused(journal: Journal, clock: FakeClock) -> None:
    seen = make_instance("i-gone")
    provider = FakeProvider([])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert result.detail == "it no longer exists"
    assert provider.acted() == []


def test_describe_failure_is_failed_not_acted_on(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance])
    provider.describe_error = ProviderError("fake", "throttled")

    (result,) = make_fleet(journal, clock, provider).act_now(Action.TERMINATE, [instance])

    assert result.outcome is Outcome.FAILED
    assert result.detail == "could not check its state: throttled"
    assert provider.acted() == []
    assert journal_lines(journal)[0]["result"] == "failed"


def test_provider_error_during_the_action_is_failed(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance])
    provider.action_error = ProviderError("fake", "not permitted: ec2:StopInstances")

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [instance])

    assert result.outcome is Outcome.FAILED
    assert result.detail == "not permitted: ec2:StopInstances"
    assert result.new_state is None
    assert [line["result"] for line in journal_lines(journal)] == ["attempted", "failed"]
    assert journal_lines(journal)[1]["detail"] == "not permitted: ec2:StopInstances"


def test_unsupported_action_is_refused(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance], actions=frozenset({Action.START, Action.TERMINATE}))

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [instance])

    assert result.outcome is Outcome.REFUSED
    assert result.detail == "stop does not apply to an EC2 instance"
    assert provider.calls == []


def test_unknown_provider_is_refused(journal: Journal, clock: FakeClock) -> None:
    stranger = make_instance("i-1", provider="elsewhere")

    (result,) = make_fleet(journal, clock, FakeProvider()).act_now(Action.STOP, [stranger])

    assert result.outcome is Outcome.REFUSED
    assert "elsewhere" in result.detail


def test_each_target_is_checked_on_its_own(journal: Journal, clock: FakeClock) -> None:
    ok = make_instance("i-ok")
    guarded = make_instance("i-guarded", protected=True)
    gone = make_instance("i-gone")
    provider = FakeProvider([ok, guarded])

    results = make_fleet(journal, clock, provider).act_now(Action.TERMINATE, [ok, guarded, gone])

    assert [(r.instance.id, r.outcome) for r in results] == [
        ("i-ok", Outcome.DONE),
        ("i-guarded", Outcome.REFUSED),
        ("i-gone", Outcome.REFUSED),
    ]
    assert provider.acted() == [("terminate", "i-ok")]
    assert [(line["id"], line["result"]) for line in journal_lines(journal)] == [
        ("i-ok", "attempted"),
        ("i-ok", "done"),
        ("i-guarded", "refused"),
        ("i-gone", "refused"),
    ]


def test_cancellations_are_journalled(journal: Journal, clock: FakeClock) -> None:
    a, b = make_instance("i-a"), make_instance("i-b")
    provider = FakeProvider([a, b])

    make_fleet(journal, clock, provider).record_cancelled(Action.TERMINATE, [a, b])

    assert provider.calls == []
    assert [(line["id"], line["action"], line["result"]) for line in journal_lines(journal)] == [
        ("i-a", "terminate", "cancelled"),
        ("i-b", "terminate", "cancelled"),
    ]


def test_act_describes_with_what_the_user_saw(journal: Journal, clock: FakeClock) -> None:
    """The result names the instance as shown, even when the provider's copy differs."""
    seen = make_instance("i-1", name="old-name")
    provider = FakeProvider([make_instance("i-1", name="renamed")])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [seen])

    assert result.outcome is Outcome.DONE
    assert result.instance.name == "old-name"


def test_not_found_error_is_a_provider_error() -> None:
    assert issubclass(NotFoundError, ProviderError)
    error = ProviderError(
        "aws", "boom", hint="fix", partial=[RUNNING], failed_regions=["eu-west-1"]
    )
    assert str(error) == "aws: boom"
    assert error.partial == (RUNNING,)
    assert error.failed_regions == ("eu-west-1",)
    assert ProviderError("aws", "boom").partial is None


# Deadlines: a hung provider never holds the poll -------------------------------------------------


def test_a_provider_that_does_not_answer_is_abandoned_at_the_deadline(
    journal: Journal, clock: FakeClock
) -> None:
    hung = FakeProvider([make_instance("i-h")], name="hung")
    hung.list_gate = threading.Event()
    quick = FakeProvider([make_instance("i-q")], name="quick")
    fleet = make_fleet(journal, clock, hung, quick)
    try:
        snapshot = fleet.poll(deadline=0.2)

        hung_status, quick_status = snapshot.statuses
        assert quick_status.ok
        assert not hung_status.ok
        assert hung_status.error == "no answer within 0.2 s"
        assert "poll_deadline_seconds" in (hung_status.hint or "")
        assert [i.id for i in snapshot.instances] == ["i-q"]
        assert fleet.polling_since is None

        # The next poll waits for the same call instead of starting another one.
        fleet.poll(deadline=0.1)
        assert hung.calls == []
        hung.list_gate.set()
        snapshot = fleet.poll(deadline=5)
        assert snapshot.statuses[0].ok
        assert hung.calls == [("list", "")]
    finally:
        hung.list_gate.set()


def test_polling_since_is_set_while_a_poll_runs(journal: Journal, clock: FakeClock) -> None:
    provider = FakeProvider([make_instance()])
    provider.list_gate = threading.Event()
    fleet = make_fleet(journal, clock, provider)
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(fleet.poll(deadline=5)))
    worker.start()
    try:
        for _ in range(100):
            if fleet.polling_since is not None:
                break
            time.sleep(0.01)
        assert fleet.polling_since == T0
    finally:
        provider.list_gate.set()
        worker.join(5)
    assert fleet.polling_since is None
    assert seen


def test_warnings_and_identity_reach_the_status(journal: Journal, clock: FakeClock) -> None:
    provider = FakeProvider([make_instance()])
    provider.warnings = ("not permitted: ec2:DescribeInstanceTypes\n[b]x",)
    provider.account = "profile ml · account 123456789012\x1b[2J"
    (status,) = make_fleet(journal, clock, provider).poll().statuses

    assert status.warnings == ("not permitted: ec2:DescribeInstanceTypes␤[b]x",)
    assert status.identity == "profile ml · account 123456789012␛[2J"


def test_failure_text_is_one_escaped_line(journal: Journal, clock: FakeClock) -> None:
    provider = FakeProvider()
    provider.list_error = ProviderError("fake", "bad\nthing\x1b]0;t\x07", hint="fix\rit")
    (status,) = make_fleet(journal, clock, provider).poll().statuses

    assert status.error == "bad␤thing␛]0;t␇"
    assert status.hint == "fix␍it"


# Pre-flight checks and refusals ------------------------------------------------------------------


def test_preflight_names_each_target_that_cannot_take_the_action(
    journal: Journal, clock: FakeClock
) -> None:
    running = make_instance("i-run")
    stopped = make_instance("i-stop", state=InstanceState.STOPPED)
    one_time = make_instance("i-spot", spot="one-time")
    guarded = make_instance("i-guard", protected=True)
    fleet = make_fleet(journal, clock, FakeProvider([running, stopped, one_time, guarded]))

    stop = fleet.preflight(Action.STOP, [running, stopped, one_time])
    start = fleet.preflight(Action.START, [running, stopped])
    terminate = fleet.preflight(Action.TERMINATE, [running, guarded])

    assert set(stop) == {stopped.key, one_time.key}
    assert "one-time spot" in stop[one_time.key]
    assert set(start) == {running.key}
    assert set(terminate) == {guarded.key}
    assert "protected" in terminate[guarded.key]


def test_preflight_in_read_only_mode_refuses_everything(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance()
    fleet = make_fleet(journal, clock, FakeProvider([instance]), readonly=True)

    reasons = fleet.preflight(Action.START, [instance])

    assert "read-only" in reasons[instance.key]


def test_record_refused_journals_each_target(journal: Journal, clock: FakeClock) -> None:
    guarded = make_instance("i-guard", protected=True)
    provider = FakeProvider([guarded])
    fleet = make_fleet(journal, clock, provider)

    fleet.record_refused(Action.TERMINATE, [guarded], fleet.preflight(Action.TERMINATE, [guarded]))

    (line,) = journal_lines(journal)
    assert (line["id"], line["action"], line["result"]) == ("i-guard", "terminate", "refused")
    assert "protected" in line["detail"]
    assert provider.calls == []


# The journal comes first -------------------------------------------------------------------------


class JournalWatchingProvider(FakeProvider):
    """Records how many journal lines existed when each state-changing call was made."""

    def __init__(self, journal: Journal, instances: list[Instance]) -> None:
        super().__init__(instances)
        self.journal = journal
        self.lines_at_call: list[int] = []

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        self.lines_at_call.append(len(journal_lines(self.journal)))
        return super().perform(action, instance)


def test_attempted_line_is_on_disk_before_each_call(journal: Journal, clock: FakeClock) -> None:
    a, b = make_instance("i-a"), make_instance("i-b")
    provider = JournalWatchingProvider(journal, [a, b])

    make_fleet(journal, clock, provider).act_now(Action.STOP, [a, b])

    # a: attempted (1) before its call; b: a's two lines and its own attempted line (3).
    assert provider.lines_at_call == [1, 3]
    assert [(x["id"], x["result"]) for x in journal_lines(journal)] == [
        ("i-a", "attempted"),
        ("i-a", "done"),
        ("i-b", "attempted"),
        ("i-b", "done"),
    ]


def test_unwritable_journal_refuses_the_action(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where a directory should be", encoding="utf-8")
    journal = Journal(blocker / "journal.jsonl")
    instance = make_instance("i-1")
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [instance])

    assert result.outcome is Outcome.REFUSED
    assert str(blocker / "journal.jsonl") in result.detail
    assert result.detail.startswith("nothing done: cannot write the audit journal")
    assert provider.acted() == []


# Persistent spot requests ------------------------------------------------------------------------


def persistent_spot() -> tuple[Instance, FakeProvider]:
    instance = make_instance("i-spot", spot="persistent")
    provider = FakeProvider([instance])
    provider.spot_requests["i-spot"] = SpotRequest("sir-1", "persistent", "active")
    return instance, provider


def test_spot_requests_finds_live_persistent_requests(journal: Journal, clock: FakeClock) -> None:
    instance, provider = persistent_spot()
    on_demand = make_instance("i-od")
    provider.set(on_demand)

    found = make_fleet(journal, clock, provider).spot_requests([instance, on_demand])

    assert found == {instance.key: SpotRequest("sir-1", "persistent", "active")}


def test_terminate_cancels_the_spot_request_first_when_asked(
    journal: Journal, clock: FakeClock
) -> None:
    instance, provider = persistent_spot()

    results = make_fleet(journal, clock, provider).act_now(
        Action.TERMINATE, [instance], cancel_spot_requests=True
    )

    assert [(r.action, r.outcome) for r in results] == [
        (Action.CANCEL_SPOT_REQUEST, Outcome.DONE),
        (Action.TERMINATE, Outcome.DONE),
    ]
    assert provider.acted() == [("cancel_spot_request", "sir-1"), ("terminate", "i-spot")]
    assert [(x["action"], x["result"]) for x in journal_lines(journal)] == [
        ("cancel-spot-request", "attempted"),
        ("cancel-spot-request", "done"),
        ("terminate", "attempted"),
        ("terminate", "done"),
    ]
    assert journal_lines(journal)[0]["detail"] == "sir-1"


def test_terminate_keeps_the_spot_request_unless_asked(journal: Journal, clock: FakeClock) -> None:
    instance, provider = persistent_spot()

    make_fleet(journal, clock, provider).act_now(Action.TERMINATE, [instance])

    assert provider.acted() == [("terminate", "i-spot")]


def test_terminate_is_refused_when_the_spot_request_cannot_be_cancelled(
    journal: Journal, clock: FakeClock
) -> None:
    instance, provider = persistent_spot()
    provider.cancel_error = ProviderError("fake", "not permitted: ec2:CancelSpotInstanceRequests")

    results = make_fleet(journal, clock, provider).act_now(
        Action.TERMINATE, [instance], cancel_spot_requests=True
    )

    assert [(r.action, r.outcome) for r in results] == [
        (Action.CANCEL_SPOT_REQUEST, Outcome.FAILED),
        (Action.TERMINATE, Outcome.REFUSED),
    ]
    assert ("terminate", "i-spot") not in provider.acted()


# Providers whose calls are coroutines ------------------------------------------------------------


class AsyncFakeProvider:
    """A provider whose listing is a coroutine, like one built on the SSH hub."""

    def __init__(self, instances: list[Instance], *, name: str = "hosts") -> None:
        self.name = name
        self.instances = instances
        self.gate: asyncio.Event | None = None
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.performed: list[tuple[Action, str]] = []

    async def list_instances(self) -> list[Instance]:
        self.loops.append(asyncio.get_running_loop())
        if self.gate is not None:
            await self.gate.wait()
        return list(self.instances)

    async def describe(self, instance: Instance) -> Instance:
        for known in self.instances:
            if known.id == instance.id:
                return known
        raise NotFoundError(self.name, f"{instance.id} is gone")

    def actions(self, instance: Instance) -> frozenset[Action]:
        return (
            frozenset({Action.INTERRUPT, Action.KILL})
            if instance.kind == "process"
            else frozenset()
        )

    def refusal(self, action: Action, instance: Instance) -> str | None:
        return None

    async def perform(self, action: Action, instance: Instance) -> InstanceState:
        self.loops.append(asyncio.get_running_loop())
        self.performed.append((action, instance.id))
        return InstanceState.STOPPING


async def test_async_providers_are_polled_on_the_callers_loop(
    journal: Journal, clock: FakeClock
) -> None:
    hosts = AsyncFakeProvider([make_instance("gpu-box", provider="hosts")])
    cloud = FakeProvider([make_instance("i-1")])
    fleet = Fleet([hosts, cloud], journal=journal, clock=clock)

    snapshot = await fleet.poll_async()

    assert [s.ok for s in snapshot.statuses] == [True, True]
    assert sorted(i.id for i in snapshot.instances) == ["gpu-box", "i-1"]
    assert hosts.loops == [asyncio.get_running_loop()]


async def test_a_hung_async_provider_is_abandoned_at_the_deadline(
    journal: Journal, clock: FakeClock
) -> None:
    hosts = AsyncFakeProvider([make_instance("gpu-box", provider="hosts")])
    hosts.gate = asyncio.Event()
    fleet = Fleet([hosts], journal=journal, clock=clock)

    (status,) = (await fleet.poll_async(deadline=0.1)).statuses
    assert (status.ok, status.error) == (False, "no answer within 0.1 s")

    hosts.gate.set()
    (status,) = (await fleet.poll_async(deadline=5)).statuses
    assert status.ok
    # The second poll took the answer of the first call instead of starting another.
    assert len(hosts.loops) == 1


async def test_an_async_providers_action_runs_on_the_callers_loop(
    journal: Journal, clock: FakeClock
) -> None:
    run = make_run(4242, provider="hosts")
    hosts = AsyncFakeProvider([run])
    fleet = Fleet([hosts], journal=journal, clock=clock)

    (result,) = await fleet.act(Action.INTERRUPT, [run])

    assert (result.outcome, result.new_state) == (Outcome.DONE, InstanceState.STOPPING)
    assert hosts.performed == [(Action.INTERRUPT, run.id)]
    assert hosts.loops == [asyncio.get_running_loop()]
    assert [line["result"] for line in journal_lines(journal)] == ["attempted", "done"]


# The key's action, resolved per kind of item -----------------------------------------------------


def test_stop_on_a_run_is_an_interrupt_and_terminate_a_kill(
    journal: Journal, clock: FakeClock
) -> None:
    run = make_run()
    fleet = make_fleet(journal, clock, FakeProvider([run, RUNNING]))

    assert fleet.resolve(Action.STOP, [run]) is Action.INTERRUPT
    assert fleet.resolve(Action.TERMINATE, [run]) is Action.KILL
    assert fleet.resolve(Action.STOP, [RUNNING]) is Action.STOP
    assert fleet.resolve(Action.START, [run]) is Action.START


def test_a_key_pressed_on_mixed_kinds_refuses_the_other_kind(
    journal: Journal, clock: FakeClock
) -> None:
    run = make_run()
    fleet = make_fleet(journal, clock, FakeProvider([run, RUNNING]))

    reasons = fleet.preflight(Action.INTERRUPT, [run, RUNNING])

    assert list(reasons) == [RUNNING.key]
    assert "an EC2 instance takes stop, not interrupt" in reasons[RUNNING.key]


def test_an_action_the_item_does_not_take_is_refused_without_a_call(
    journal: Journal, clock: FakeClock
) -> None:
    run = make_run()
    provider = FakeProvider([run])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.START, [run])

    assert result.outcome is Outcome.REFUSED
    assert "start does not apply to a training run" in result.detail
    assert provider.acted() == []


def test_interrupt_and_kill_a_run(journal: Journal, clock: FakeClock) -> None:
    first, second = make_run(1), make_run(2)
    provider = FakeProvider([first, second])
    fleet = make_fleet(journal, clock, provider)

    (interrupted,) = fleet.act_now(Action.INTERRUPT, [first])
    (killed,) = fleet.act_now(Action.KILL, [second])

    assert (interrupted.outcome, killed.outcome) == (Outcome.DONE, Outcome.DONE)
    assert provider.acted() == [("interrupt", first.id), ("kill", second.id)]


def test_another_users_run_is_shown_but_never_acted_on(journal: Journal, clock: FakeClock) -> None:
    theirs = make_run(7, own=False)
    provider = FakeProvider([theirs])
    fleet = make_fleet(journal, clock, provider)

    assert "belongs to alice" in fleet.preflight(Action.KILL, [theirs])[theirs.key]
    (result,) = fleet.act_now(Action.KILL, [theirs])
    assert result.outcome is Outcome.REFUSED
    assert provider.acted() == []


def test_a_protected_run_is_never_killed(journal: Journal, clock: FakeClock) -> None:
    run = make_run(9, protected=True, protected_by="name contains [protect]")
    provider = FakeProvider([run])

    (result,) = make_fleet(journal, clock, provider).act_now(Action.KILL, [run])

    assert result.outcome is Outcome.REFUSED
    assert "protected by name contains [protect]" in result.detail
    assert provider.acted() == []


def test_a_provider_whose_refusal_check_breaks_refuses_rather_than_acts(
    journal: Journal, clock: FakeClock
) -> None:
    class Broken(FakeProvider):
        def refusal(self, action: Action, instance: Instance) -> str | None:
            raise RuntimeError("no idea")

    provider = Broken([RUNNING])
    (result,) = make_fleet(journal, clock, provider).act_now(Action.STOP, [RUNNING])

    assert result.outcome is Outcome.REFUSED
    assert "could not check: RuntimeError: no idea" in result.detail
    assert provider.acted() == []


async def test_providers_that_answer_are_shown_before_a_slow_one(
    journal: Journal, clock: FakeClock
) -> None:
    slow = AsyncFakeProvider([make_instance("gpu-box", provider="hosts")])
    slow.gate = asyncio.Event()
    quick = FakeProvider([make_instance("i-1")])
    fleet = Fleet([slow, quick], journal=journal, clock=clock)
    shown: list[list[str]] = []

    async def progress(snapshot: FleetSnapshot) -> None:
        shown.append([i.id for i in snapshot.instances])
        slow.gate.set()  # type: ignore[union-attr]

    final = await fleet.poll_async(deadline=5, on_progress=progress)

    assert shown == [["i-1"]]
    assert sorted(i.id for i in final.instances) == ["gpu-box", "i-1"]
    assert [s.ok for s in final.statuses] == [True, True]
    # Each provider was asked once and recorded once.
    assert len(slow.loops) == 1
    assert sum(1 for call in quick.calls if call[0] == "list") == 1
