"""Properties of the cost ledger over random polling histories."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.costs.ledger import Billable, Ledger

T0 = datetime(2026, 5, 1, tzinfo=UTC)
EVERYTHING = (T0 - timedelta(days=30), T0 + timedelta(days=30))
RATES = st.sampled_from([None, Decimal("0"), Decimal("0.0104"), Decimal("1.006"), Decimal("55.04")])
TINY = Decimal("1e-18")
"""Dividing by 3,600 rounds at Decimal's 28 digits: parts priced apart may differ by this."""
counter = itertools.count()


@contextmanager
def fresh() -> Iterator[Path]:
    """A path for a new ledger file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ledger-") as tmp:
        yield Path(tmp) / f"ledger-{next(counter)}.sqlite3"


def billable(billing: bool, rate: Decimal | None, since: datetime | None) -> Billable:
    """The one instance these properties follow."""
    return Billable("aws:i-1", "aws", "trainer", "ec2", "us-east-1", billing, rate, "list", since)


# A history: polls at increasing offsets (seconds after T0), each the item's state then.
Poll = tuple[int, bool, Decimal | None, int | None]
polls = st.lists(
    st.tuples(
        st.integers(1, 3 * 3600),
        st.booleans(),
        RATES,
        st.one_of(st.none(), st.integers(-7200, 3 * 3600 * 40)),
    ),
    min_size=1,
    max_size=25,
).map(
    lambda steps: [
        (at, billing, rate, since)
        for at, (_, billing, rate, since) in zip(
            itertools.accumulate(step for step, *_ in steps), steps, strict=True
        )
    ]
)


def replay(ledger: Ledger, history: Sequence[Poll]) -> None:
    """Record each poll of ``history``."""
    for at, billing, rate, since in history:
        when = None if since is None else T0 + timedelta(seconds=since)
        ledger.record([billable(billing, rate, when)], T0 + timedelta(seconds=at))


@settings(max_examples=60, deadline=None)
@given(polls)
def test_cost_is_never_negative(history: list[Poll]) -> None:
    with fresh() as path:
        ledger = Ledger(path)
        replay(ledger, history)
        assert ledger.totals(*EVERYTHING) >= 0
        for spend in ledger.spend(*EVERYTHING):
            assert spend.usd >= 0
            assert spend.seconds >= spend.unpriced_seconds >= 0
        for gap in ledger.gaps(*EVERYTHING):
            assert gap.start < gap.end


@settings(max_examples=40, deadline=None)
@given(
    rate=RATES.filter(lambda r: r is not None),
    launch=st.integers(0, 3600),
    steps=st.lists(st.integers(1, 600), min_size=1, max_size=30),
)
def test_a_running_item_costs_more_as_time_goes_on(
    rate: Decimal, launch: int, steps: list[int]
) -> None:
    with fresh() as path:
        ledger = Ledger(path)
        since = T0 + timedelta(seconds=launch)
        at = since
        previous = Decimal(0)
        for step in steps:
            at += timedelta(seconds=step)
            ledger.record([billable(True, rate, since)], at)
            total = ledger.totals(*EVERYTHING)
            assert total >= previous
            assert total == rate * Decimal((at - since).total_seconds()) / 3600
            previous = total


@settings(max_examples=40, deadline=None)
@given(
    rate=RATES,
    since=st.one_of(st.none(), st.integers(-3600, 0)),
    ends=st.lists(st.integers(1, 20_000), min_size=2, max_size=10, unique=True),
    extra=st.lists(st.integers(1, 20_000), max_size=30),
)
def test_extra_samples_in_between_never_change_the_total(
    rate: Decimal | None, since: int | None, ends: list[int], extra: list[int]
) -> None:
    """Samples at ``ends`` (each within the max gap of the next when ``since`` is unknown)."""
    ends = sorted(ends)
    if since is None:
        ends = [e for e in ends if e <= 290 * (len(ends))]  # keep polls close together
        ends = [n * 290 for n in range(1, len(ends) + 1)] if ends else [290, 580]
    launch = None if since is None else T0 + timedelta(seconds=since)
    sparse = [(e, True, rate, since) for e in ends]
    dense_times = sorted(set(ends) | {x for x in extra if ends[0] < x < ends[-1]})
    dense = [(e, True, rate, since) for e in dense_times]
    with fresh() as one, fresh() as two:
        a, b = Ledger(one), Ledger(two)
        replay(a, sparse)
        replay(b, dense)
        assert a.totals(*EVERYTHING) == b.totals(*EVERYTHING)
        assert [s.seconds for s in a.spend(*EVERYTHING)] == [
            s.seconds for s in b.spend(*EVERYTHING)
        ]
        assert launch is None or a.gaps(*EVERYTHING) == []


@settings(max_examples=60, deadline=None)
@given(history=polls, cut=st.integers(0, 25))
def test_a_restart_loses_nothing_and_counts_nothing_twice(history: list[Poll], cut: int) -> None:
    with fresh() as one, fresh() as two:
        straight = Ledger(one)
        replay(straight, history)
        first = Ledger(two)
        replay(first, history[:cut])
        first.close()
        second = Ledger(two)
        replay(second, history[cut:])
        assert second.totals(*EVERYTHING) == straight.totals(*EVERYTHING)
        assert second.spend(*EVERYTHING) == straight.spend(*EVERYTHING)
        assert second.gaps(*EVERYTHING) == straight.gaps(*EVERYTHING)


@settings(max_examples=60, deadline=None)
@given(history=polls, windows=st.lists(st.integers(0, 3 * 3600 * 25), min_size=1, max_size=8))
def test_windows_add_up_to_the_whole(history: list[Poll], windows: list[int]) -> None:
    """Totals of adjacent ranges sum to the total of their union: nothing overlaps."""
    with fresh() as path:
        ledger = Ledger(path)
        replay(ledger, history)
        cuts = [EVERYTHING[0], *sorted(T0 + timedelta(seconds=w) for w in windows), EVERYTHING[1]]
        parts = sum(
            (ledger.totals(lo, hi) for lo, hi in itertools.pairwise(cuts)), start=Decimal(0)
        )
        assert abs(parts - ledger.totals(*EVERYTHING)) <= TINY


@settings(max_examples=40, deadline=None)
@given(
    rates=st.lists(
        st.tuples(RATES.filter(lambda r: r is not None), st.integers(1, 50)),
        min_size=1,
        max_size=6,
    )
)
def test_each_rate_prices_its_own_part(rates: list[tuple[Decimal, int]]) -> None:
    """Every 10 s poll at the rate then in force: each sample is priced at the rate it ended."""
    with fresh() as path:
        ledger = Ledger(path)
        at = 0
        expected = Decimal(0)
        previous_rate: Decimal | None = None
        for rate, count in rates:
            for _ in range(count):
                if previous_rate is not None:
                    # A change is seen at this sample: the stretch up to it is at the old rate.
                    expected += previous_rate * 10 / 3600
                    at += 10
                ledger.record([billable(True, rate, T0)], T0 + timedelta(seconds=at))
                if previous_rate is None:
                    expected = rate * at / 3600
                previous_rate = rate
        # The first sample backfills from the launch (at = 0: nothing).
        assert abs(ledger.totals(*EVERYTHING) - expected) <= TINY
