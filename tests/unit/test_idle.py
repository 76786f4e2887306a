"""Idle GPUs: every rule of the idle clock, with explicit poll times."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runctl_tui.costs.idle import IdleState, IdleTracker, idle_flag, peak_utilisation
from runctl_tui.models import GpuSpec, GpuUsage, Instance, InstanceState, Rate
from tests.fakes import T0, make_instance, make_run

KEY = "fake:i-gpu"


def at(minutes: float) -> timedelta:
    """``minutes`` after T0, as an offset."""
    return timedelta(minutes=minutes)


def gpu_box(
    *load: int | None, state: InstanceState = InstanceState.RUNNING, gpus: int | None = None
) -> Instance:
    """A 2-GPU (by default) instance whose GPUs report ``load`` (no figures when empty)."""
    count = gpus if gpus is not None else max(len(load), 2)
    return make_instance(
        "i-gpu",
        state=state,
        gpus=GpuSpec(count=count, model="A100"),
        gpu_usage=tuple(
            GpuUsage(index=i, name="A100", utilization_percent=value)
            for i, value in enumerate(load)
        ),
        rate=Rate(usd_per_hour=Decimal("32.77"), source="AWS Price List API"),
    )


def feed(tracker: IdleTracker, *polls: tuple[float, Instance | None]) -> None:
    """Polls at the given minutes after T0; ``None`` is a poll where the item is gone."""
    for minute, instance in polls:
        tracker.update([] if instance is None else [instance], T0 + at(minute))


def test_quiet_gpus_become_idle_after_the_period() -> None:
    tracker = IdleTracker()
    feed(tracker, *[(m, gpu_box(1, 3)) for m in range(0, 15)])

    assert tracker.idle(KEY) is None
    quiet = tracker.quiet(KEY)
    assert quiet is not None
    assert quiet.minutes == 14

    feed(tracker, (15, gpu_box(0, 4)))
    state = tracker.idle(KEY)
    assert state == IdleState(KEY, T0, T0 + at(15), 4.0)
    assert tracker.all() == {KEY: state}


def test_a_reading_at_the_threshold_resets_the_clock() -> None:
    tracker = IdleTracker(threshold_percent=5, minutes=10)
    feed(tracker, (0, gpu_box(0, 0)), (9, gpu_box(0, 5)), (10, gpu_box(0, 0)), (19, gpu_box(1, 1)))

    assert tracker.idle(KEY) is None
    feed(tracker, (20, gpu_box(2, 1)))
    state = tracker.idle(KEY)
    assert state is not None
    assert (state.since, state.max_percent) == (T0 + at(10), 2.0)


def test_the_busiest_gpu_decides() -> None:
    tracker = IdleTracker(minutes=1)
    feed(tracker, (0, gpu_box(0, 0, 0, 90)), (1, gpu_box(0, 0, 0, 90)))

    assert tracker.quiet(KEY) is None


@pytest.mark.parametrize(
    "instance",
    [
        gpu_box(0, None),  # one GPU says [N/A]
        gpu_box(0, gpus=2),  # one of two GPUs reported
        gpu_box(),  # no figures at all
    ],
)
def test_incomplete_figures_prove_nothing(instance: Instance) -> None:
    assert peak_utilisation(instance) is None
    tracker = IdleTracker(minutes=1)
    feed(tracker, (0, instance), (5, instance))

    assert tracker.quiet(KEY) is None


def test_missing_figures_neither_reset_nor_advance() -> None:
    tracker = IdleTracker(minutes=15)
    feed(tracker, (0, gpu_box(1, 1)), (5, gpu_box(1, 1)), (10, gpu_box()), (14, gpu_box()))

    quiet = tracker.quiet(KEY)
    assert quiet is not None
    assert (quiet.since, quiet.minutes) == (T0, 5)

    feed(tracker, (16, gpu_box(2, 2)))
    assert tracker.idle(KEY) is not None


def test_a_gap_in_figures_longer_than_the_period_starts_over() -> None:
    tracker = IdleTracker(minutes=15)
    feed(tracker, (0, gpu_box(1, 1)), (10, gpu_box()), (25, gpu_box()), (26, gpu_box(1, 1)))

    quiet = tracker.quiet(KEY)
    assert quiet is not None
    assert quiet.since == T0 + at(26)
    feed(tracker, (41, gpu_box(1, 1)))
    assert tracker.idle(KEY) is not None


def test_a_figureless_poll_after_a_long_gap_drops_the_stretch() -> None:
    tracker = IdleTracker(minutes=15, grace_minutes=5)
    feed(tracker, (0, gpu_box(1, 1)), (6, gpu_box()))

    assert tracker.quiet(KEY) is None


def test_readings_within_the_grace_keep_the_stretch() -> None:
    tracker = IdleTracker(minutes=15, grace_minutes=5)
    feed(tracker, (0, gpu_box(1, 1)), (5, gpu_box(1, 1)), (10, gpu_box(1, 1)), (15, gpu_box(0, 0)))

    assert tracker.idle(KEY) is not None


@pytest.mark.parametrize(
    "state", [InstanceState.STOPPED, InstanceState.STOPPING, InstanceState.PENDING]
)
def test_an_item_that_is_not_running_is_not_idle(state: InstanceState) -> None:
    tracker = IdleTracker(minutes=1)
    feed(tracker, (0, gpu_box(0, 0)), (1, gpu_box(0, 0)), (2, gpu_box(0, 0, state=state)))

    assert tracker.all() == {}
    feed(tracker, (3, gpu_box(0, 0)))
    quiet = tracker.quiet(KEY)
    assert quiet is not None
    assert quiet.since == T0 + at(3)


def test_items_without_gpus_are_never_idle() -> None:
    tracker = IdleTracker(minutes=1)
    cpu_only = make_instance("i-cpu", gpus=None)
    run = make_run()
    for minute in range(5):
        tracker.update([cpu_only, run], T0 + at(minute))

    assert tracker.all() == {}


def test_items_that_vanish_are_forgotten() -> None:
    tracker = IdleTracker(minutes=1)
    feed(tracker, (0, gpu_box(0, 0)), (1, gpu_box(0, 0)))
    assert tracker.idle(KEY) is not None

    feed(tracker, (2, None))
    assert tracker.quiet(KEY) is None
    feed(tracker, (3, gpu_box(0, 0)))
    assert tracker.idle(KEY) is None


def test_a_repeated_poll_time_changes_nothing() -> None:
    tracker = IdleTracker(minutes=1)
    feed(tracker, (0, gpu_box(0, 0)), (1, gpu_box(0, 1)), (1, gpu_box(0, 3)))

    state = tracker.idle(KEY)
    assert state is not None
    assert state.max_percent == 1.0


def test_gpu_figures_without_a_spec_count() -> None:
    tracker = IdleTracker(minutes=1)
    box = gpu_box(0).model_copy(update={"gpus": None})
    feed(tracker, (0, box), (1, box))

    assert tracker.idle(KEY) is not None


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        IdleTracker(threshold_percent=0)
    with pytest.raises(ValueError, match="more than 0"):
        IdleTracker(minutes=-1)


def test_the_flag_says_for_how_long_and_what_it_burns() -> None:
    state = IdleState(KEY, T0, T0 + at(17.5), 2.0)

    assert idle_flag(state, Decimal("32.77")) == "idle 17m, burning $32.77/h"
    assert idle_flag(state, Decimal("0.44")) == "idle 17m, burning $0.440/h"
    assert idle_flag(IdleState(KEY, T0, T0 + at(95), 0.0), None) == "idle 1h35m"
    assert idle_flag(state, Decimal(0)) == "idle 17m"


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=600), st.none() | st.integers(0, 100)),
        max_size=40,
    )
)
def test_a_stretch_never_outlasts_its_readings_and_any_busy_reading_ends_it(
    polls: list[tuple[int, int | None]],
) -> None:
    tracker = IdleTracker(threshold_percent=5, minutes=15)
    moment = T0
    for seconds, load in polls:
        moment += timedelta(seconds=seconds)
        tracker.update([gpu_box() if load is None else gpu_box(0, load)], moment)
        quiet = tracker.quiet(KEY)
        if load is not None and load >= 5:
            assert quiet is None
        if quiet is not None:
            assert T0 < quiet.since <= quiet.last_reading <= moment
            assert quiet.max_percent < 5
            assert (tracker.idle(KEY) is not None) == (quiet.minutes >= 15)
