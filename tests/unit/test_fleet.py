"""The fleet service: polling with stale data kept, and guarded, journalled actions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runctl_tui.audit import Journal
from runctl_tui.models import Action, Instance, InstanceState, Outcome
from runctl_tui.providers.base import Capabilities, NotFoundError, Provider, ProviderError
from runctl_tui.services.fleet import Fleet, refusal
from tests.fakes import T0, FakeClock, FakeProvider, make_instance

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
    return Fleet(providers, journal=journal, readonly=readonly, protect_tag=TAG, clock=clock)


# refusal(): one case per rule -------------------------------------------------------------------

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
    refused = refusal(action, seen, fresh, TAG)

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
    assert refusal(action, instance, instance, TAG) is None


def test_fake_provider_satisfies_the_protocol() -> None:
    assert isinstance(FakeProvider(), Provider)


# poll -------------------------------------------------------------------------------------------


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


# act --------------------------------------------------------------------------------------------


def test_stop_is_done_and_journalled(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1", name="trainer")
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act(Action.STOP, [instance])

    assert result.outcome is Outcome.DONE
    assert result.new_state is InstanceState.STOPPING
    assert result.instance == instance
    assert provider.acted() == [("stop", "i-1")]
    assert provider.instances["i-1"].state is InstanceState.STOPPING
    (line,) = journal_lines(journal)
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

    (started,) = fleet.act(Action.START, [stopped])
    (terminated,) = fleet.act(Action.TERMINATE, [running])

    assert (started.outcome, started.new_state) == (Outcome.DONE, InstanceState.PENDING)
    assert (terminated.outcome, terminated.new_state) == (Outcome.DONE, InstanceState.SHUTTING_DOWN)
    assert provider.acted() == [("start", "i-1"), ("terminate", "i-2")]


def test_state_changed_since_seen_is_refused_and_never_acted_on(
    journal: Journal, clock: FakeClock
) -> None:
    seen = make_instance("i-1")
    provider = FakeProvider([seen])
    provider.set(make_instance("i-1", state=InstanceState.STOPPED))

    (result,) = make_fleet(journal, clock, provider).act(Action.TERMINATE, [seen])

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

    (result,) = make_fleet(journal, clock, provider).act(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert TAG in result.detail
    assert provider.acted() == []
    assert provider.instances["i-1"].state is InstanceState.RUNNING


def test_protected_instance_can_still_be_stopped(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1", protected=True)
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act(Action.STOP, [instance])

    assert result.outcome is Outcome.DONE


def test_one_time_spot_stop_is_refused(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1", spot="one-time")
    provider = FakeProvider([instance])

    (result,) = make_fleet(journal, clock, provider).act(Action.STOP, [instance])

    assert result.outcome is Outcome.REFUSED
    assert provider.acted() == []


def test_readonly_refuses_without_touching_the_provider(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance])
    fleet = make_fleet(journal, clock, provider, readonly=True)

    results = fleet.act(Action.STOP, [instance]) + fleet.act(Action.TERMINATE, [instance])

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

    (result,) = make_fleet(journal, clock, provider).act(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert result.detail == "it no longer exists"
    assert provider.acted() == []


def test_describe_failure_is_failed_not_acted_on(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance])
    provider.describe_error = ProviderError("fake", "throttled")

    (result,) = make_fleet(journal, clock, provider).act(Action.TERMINATE, [instance])

    assert result.outcome is Outcome.FAILED
    assert result.detail == "could not check its state: throttled"
    assert provider.acted() == []
    assert journal_lines(journal)[0]["result"] == "failed"


def test_provider_error_during_the_action_is_failed(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance])
    provider.action_error = ProviderError("fake", "not permitted: ec2:StopInstances")

    (result,) = make_fleet(journal, clock, provider).act(Action.STOP, [instance])

    assert result.outcome is Outcome.FAILED
    assert result.detail == "not permitted: ec2:StopInstances"
    assert result.new_state is None
    assert journal_lines(journal)[0]["detail"] == "not permitted: ec2:StopInstances"


def test_unsupported_action_is_refused(journal: Journal, clock: FakeClock) -> None:
    instance = make_instance("i-1")
    provider = FakeProvider([instance], capabilities=Capabilities(stop=False))

    (result,) = make_fleet(journal, clock, provider).act(Action.STOP, [instance])

    assert result.outcome is Outcome.REFUSED
    assert result.detail == "fake cannot stop"
    assert provider.calls == []


def test_unknown_provider_is_refused(journal: Journal, clock: FakeClock) -> None:
    stranger = make_instance("i-1", provider="elsewhere")

    (result,) = make_fleet(journal, clock, FakeProvider()).act(Action.STOP, [stranger])

    assert result.outcome is Outcome.REFUSED
    assert "elsewhere" in result.detail


def test_each_target_is_checked_on_its_own(journal: Journal, clock: FakeClock) -> None:
    ok = make_instance("i-ok")
    guarded = make_instance("i-guarded", protected=True)
    gone = make_instance("i-gone")
    provider = FakeProvider([ok, guarded])

    results = make_fleet(journal, clock, provider).act(Action.TERMINATE, [ok, guarded, gone])

    assert [(r.instance.id, r.outcome) for r in results] == [
        ("i-ok", Outcome.DONE),
        ("i-guarded", Outcome.REFUSED),
        ("i-gone", Outcome.REFUSED),
    ]
    assert provider.acted() == [("terminate", "i-ok")]
    assert [(line["id"], line["result"]) for line in journal_lines(journal)] == [
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

    (result,) = make_fleet(journal, clock, provider).act(Action.STOP, [seen])

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
