"""Trust, but verify: resources reported stopped or terminated that keep billing are caught."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest

from runctl_tui.costs.verify import EffectChecker, Leak, billing_signs
from runctl_tui.models import (
    Action,
    ActionResult,
    FleetSnapshot,
    GpuUsage,
    Instance,
    InstanceState,
    Outcome,
    PodDetails,
    ProviderStatus,
    Rate,
)
from tests.fakes import T0, make_instance, make_run

POLL = timedelta(seconds=10)
RATE = Rate(usd_per_hour=Decimal("21.96"), source="AWS Price List API")


def ec2(state: InstanceState, instance_id: str = "i-0abc") -> Instance:
    """An EC2 instance at $21.96/h in ``state``."""
    return make_instance(instance_id, state=state, rate=RATE)


def pod(
    desired: str,
    state: InstanceState,
    *,
    hourly: str | None = "0.44",
    uptime: bool = False,
    load: bool = False,
) -> Instance:
    """A RunPod pod as the provider maps it: ``desired`` is RunPod's own status."""
    return Instance(
        provider="runpod",
        id="pod-7f3",
        name="finetune",
        location="EU-RO-1",
        state=state,
        launched_at=T0 - timedelta(hours=2) if uptime else None,
        gpu_usage=(GpuUsage(index=0, utilization_percent=37),) if load else (),
        rate=None if hourly is None else Rate(usd_per_hour=Decimal(hourly), source="costPerHr"),
        details=PodDetails(desired_status=desired, gpu_count=1),
    )


def snap(n: int, *instances: Instance, failed: Sequence[str] = ()) -> FleetSnapshot:
    """The ``n``-th poll after T0 (10 s apart)."""
    providers = {i.provider for i in instances} | set(failed)
    return FleetSnapshot(
        instances=instances,
        statuses=tuple(ProviderStatus(provider=p, ok=p not in failed) for p in sorted(providers)),
        taken_at=T0 + n * POLL,
    )


def done(
    action: Action, instance: Instance, new_state: InstanceState | None = None
) -> ActionResult:
    """A result the provider reported done."""
    return ActionResult(action=action, instance=instance, outcome=Outcome.DONE, new_state=new_state)


def test_a_stopped_instance_that_shows_running_three_polls_later_is_a_leak() -> None:
    checker = EffectChecker(polls=3)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPING), T0)

    assert checker.observe(snap(1, ec2(InstanceState.STOPPING))) == []
    assert checker.observe(snap(2, ec2(InstanceState.RUNNING))) == []
    (leak,) = checker.observe(snap(3, ec2(InstanceState.RUNNING)))

    assert leak.describe() == (
        "still billing $21.96/h: i-0abc was stopped 3 polls ago but shows running"
    )
    assert (leak.key, leak.action, leak.reported, leak.since, leak.polls) == (
        "fake:i-0abc",
        Action.STOP,
        "stopping",
        T0,
        3,
    )
    assert leak.hourly == Decimal("21.96")


def test_an_instance_back_to_running_after_stopping_is_a_leak() -> None:
    checker = EffectChecker(polls=3)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPED), T0)

    checker.observe(snap(1, ec2(InstanceState.STOPPED)))
    checker.observe(snap(2, ec2(InstanceState.STOPPED)))
    (leak,) = checker.observe(snap(3, ec2(InstanceState.PENDING)))

    assert leak.shows == "shows pending"


def test_an_instance_that_really_stopped_is_let_go() -> None:
    checker = EffectChecker(polls=3)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPING), T0)

    for n in (1, 2, 3):
        assert checker.observe(snap(n, ec2(InstanceState.STOPPED))) == []
    assert checker.watching() == frozenset()
    # Started again later by someone: that is not a leak any more.
    assert checker.observe(snap(4, ec2(InstanceState.RUNNING))) == []


def test_an_instance_still_stopping_is_waited_for() -> None:
    checker = EffectChecker(polls=2)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPING), T0)

    for n in range(1, 6):
        assert checker.observe(snap(n, ec2(InstanceState.STOPPING))) == []
    assert checker.watching() == {"fake:i-0abc"}
    assert checker.observe(snap(6, ec2(InstanceState.RUNNING)))[0].polls == 6
    assert checker.observe(snap(7, ec2(InstanceState.STOPPED))) == []
    assert checker.watching() == frozenset()


def test_a_terminated_instance_that_vanished_is_let_go() -> None:
    checker = EffectChecker(polls=3)
    checker.expect(
        done(Action.TERMINATE, ec2(InstanceState.RUNNING), InstanceState.SHUTTING_DOWN), T0
    )

    checker.observe(snap(1, ec2(InstanceState.SHUTTING_DOWN)))
    assert checker.observe(snap(2, ec2(InstanceState.RUNNING, "i-other"))) == []
    assert checker.watching() == frozenset()


def test_a_failed_poll_proves_nothing() -> None:
    checker = EffectChecker(polls=2)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPING), T0)

    # The provider failed: its rows (or their absence) are not news.
    checker.observe(snap(1, ec2(InstanceState.RUNNING), failed=["fake"]))
    checker.observe(snap(2, failed=["fake"]))
    assert checker.watching() == {"fake:i-0abc"}
    assert checker.observe(snap(3, ec2(InstanceState.RUNNING))) == []
    assert len(checker.observe(snap(4, ec2(InstanceState.RUNNING)))) == 1


def test_a_poll_before_the_action_or_seen_twice_is_not_counted() -> None:
    checker = EffectChecker(polls=2)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING)), T0 + 2 * POLL)

    checker.observe(snap(1, ec2(InstanceState.RUNNING)))
    checker.observe(snap(2, ec2(InstanceState.RUNNING)))
    checker.observe(snap(3, ec2(InstanceState.RUNNING)))
    assert checker.observe(snap(3, ec2(InstanceState.RUNNING))) == []
    (leak,) = checker.observe(snap(4, ec2(InstanceState.RUNNING)))
    assert (leak.polls, leak.reported) == (2, "stopped")


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.REFUSED, Outcome.CANCELLED])
def test_only_done_actions_are_checked(outcome: Outcome) -> None:
    checker = EffectChecker(polls=1)
    checker.expect(
        ActionResult(action=Action.STOP, instance=ec2(InstanceState.RUNNING), outcome=outcome), T0
    )

    assert checker.observe(snap(1, ec2(InstanceState.RUNNING))) == []
    assert checker.watching() == frozenset()


def test_a_start_afterwards_lets_the_item_go() -> None:
    checker = EffectChecker(polls=1)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPED), T0)
    checker.observe(snap(1, ec2(InstanceState.RUNNING)))
    assert checker.leaks()

    checker.expect(done(Action.START, ec2(InstanceState.STOPPED), InstanceState.PENDING), T0)
    assert checker.leaks() == []
    assert checker.observe(snap(2, ec2(InstanceState.RUNNING))) == []


def test_a_terminated_pod_still_listed_running_is_a_leak() -> None:
    checker = EffectChecker(polls=3)
    running = pod("RUNNING", InstanceState.RUNNING, uptime=True)
    checker.expect(done(Action.TERMINATE, running, InstanceState.TERMINATED), T0)

    for n in (1, 2):
        assert checker.observe(snap(n, running)) == []
    (leak,) = checker.observe(snap(3, running))

    assert leak.describe() == (
        "still billing $0.440/h: pod-7f3 was terminated 3 polls ago but shows running"
    )


def test_a_pod_runpod_calls_terminated_that_keeps_billing_is_a_leak_without_an_action() -> None:
    checker = EffectChecker(polls=3)
    ghost = pod("TERMINATED", InstanceState.TERMINATED, uptime=True)

    for n in (1, 2, 3):
        assert checker.observe(snap(n, ghost)) == []
    (leak,) = checker.observe(snap(4, ghost))

    assert leak.action is None
    assert leak.describe() == (
        "still billing $0.440/h: pod-7f3 was reported TERMINATED 3 polls ago "
        "but still reports uptime"
    )


def test_an_exited_pod_reporting_gpu_load_is_a_leak() -> None:
    checker = EffectChecker(polls=1)
    ghost = pod("EXITED", InstanceState.STOPPED, load=True)

    checker.observe(snap(1, ghost))
    (leak,) = checker.observe(snap(2, ghost))
    assert (leak.reported, leak.shows) == ("EXITED", "still reports GPU load")


def test_a_contradiction_that_resolves_is_let_go() -> None:
    checker = EffectChecker(polls=3)
    checker.observe(snap(1, pod("TERMINATED", InstanceState.TERMINATED, uptime=True)))

    assert checker.watching() == {"runpod:pod-7f3"}
    checker.observe(snap(2, pod("TERMINATED", InstanceState.TERMINATED)))
    assert checker.watching() == frozenset()


@pytest.mark.parametrize(
    "instance",
    [
        pod("EXITED", InstanceState.STOPPED),
        pod("EXITED", InstanceState.STOPPED, uptime=True, hourly="0"),
        pod("EXITED", InstanceState.STOPPED, uptime=True, hourly=None),
        pod("RUNNING", InstanceState.RUNNING, uptime=True),
        ec2(InstanceState.STOPPED),
    ],
)
def test_quiet_or_consistent_items_are_not_watched(instance: Instance) -> None:
    checker = EffectChecker(polls=1)
    for n in (1, 2, 3):
        assert checker.observe(snap(n, instance)) == []
    assert checker.watching() == frozenset()


def test_billing_signs() -> None:
    assert billing_signs(ec2(InstanceState.RUNNING)) == "shows running"
    assert billing_signs(ec2(InstanceState.STOPPING)) is None
    assert billing_signs(pod("TERMINATED", InstanceState.TERMINATED)) is None


def test_a_killed_run_still_running_is_flagged_without_a_price() -> None:
    checker = EffectChecker(polls=2)
    run = make_run(4242)
    checker.expect(done(Action.KILL, run), T0)

    checker.observe(snap(1, run))
    (leak,) = checker.observe(snap(2, run))
    assert leak.describe() == "still running: 4242@5242 was killed 2 polls ago but shows running"


def test_an_interrupted_run_is_given_its_grace_period_to_exit() -> None:
    checker = EffectChecker(polls=2, interrupt_grace_seconds=45)
    run = make_run(4242)
    checker.expect(done(Action.INTERRUPT, run), T0)

    for n in (1, 2, 3, 4):
        assert checker.observe(snap(n, run)) == []
    (leak,) = checker.observe(snap(5, run))
    assert leak.describe().endswith("was interrupted 5 polls ago but shows running")


def test_an_interrupted_run_that_exits_is_let_go() -> None:
    checker = EffectChecker(polls=1)
    run = make_run(4242)
    checker.expect(done(Action.INTERRUPT, run), T0)

    assert checker.observe(snap(1, run)) == []
    assert checker.observe(snap(2)) == []
    assert checker.watching() == frozenset()


def test_new_leaks_are_announced_once_and_again_after_they_clear() -> None:
    checker = EffectChecker(polls=1)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPING), T0)

    checker.observe(snap(1, ec2(InstanceState.RUNNING)))
    (first,) = checker.new_leaks()
    assert isinstance(first, Leak)
    checker.observe(snap(2, ec2(InstanceState.RUNNING)))
    assert checker.new_leaks() == []
    assert len(checker.leaks()) == 1

    # It stops for good, then a new stop leaks again: that is news.
    checker.observe(snap(3, ec2(InstanceState.STOPPED)))
    assert checker.leaks() == []
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING), InstanceState.STOPPING), T0)
    checker.observe(snap(4, ec2(InstanceState.RUNNING)))
    assert len(checker.new_leaks()) == 1


def test_leaks_are_listed_oldest_first() -> None:
    checker = EffectChecker(polls=1)
    late = T0 + POLL / 2
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING, "i-b")), T0)
    checker.expect(done(Action.STOP, ec2(InstanceState.RUNNING, "i-a")), late)

    leaks = checker.observe(
        snap(1, ec2(InstanceState.RUNNING, "i-a"), ec2(InstanceState.RUNNING, "i-b"))
    )
    assert [leak.instance.id for leak in leaks] == ["i-b", "i-a"]
    assert [leak.since for leak in leaks] == [T0, late]


def test_a_check_needs_at_least_one_poll() -> None:
    with pytest.raises(ValueError, match="at least 1 poll"):
        EffectChecker(polls=0)
