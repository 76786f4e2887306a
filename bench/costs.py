"""Benchmark 9: the cost ledger: its size after a month of polls, totals over it, poll to totals.

A fleet of 1,000 EC2 instances, 2,000 EBS volumes and 200 RunPod pods is recorded every 10 s
of simulated time (an injected clock, no sleeping) for a month (``--quick``: a day). Instances
stop and start now and then (each start a new launch time), a tenth of them are spot and change
price every hour, pods restart, and a few volumes are deleted and created. Then: the ledger's
size on disk, a month's ``totals`` and ``spend``, and the time the cost service takes from a
poll's snapshot to its report (``CostService.observe``) against preparing the fleet table's rows
of the same instances.

The ledger only extends intervals, so a poll where nothing changes writes nothing but later
``end`` and ``off_at`` values that the next poll overwrites. The simulation therefore records the
whole fleet every 5 minutes (the ledger's ``max_gap``), and in between only what changes: each
changed resource as it was one poll before (so its interval ends where it would have) and as it
is now. The rows are those of recording every poll; each run checks it against recording every
poll over a stretch of simulated time, and ``--verify-hours`` makes that stretch longer.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.common import Figure, alternate, heading, ms, round_ratios, spread, write_figures
from runctl_tui.config import CostsSettings
from runctl_tui.costs.ledger import Billable, Ledger, month_start
from runctl_tui.models import (
    Ec2Details,
    FleetSnapshot,
    GpuSpec,
    Instance,
    InstanceState,
    Lifecycle,
    PodDetails,
    ProviderStatus,
    Rate,
    StorageItem,
)
from runctl_tui.services.costs import CostService

INSTANCES, VOLUMES, PODS = 1_000, 2_000, 200
POLL_SECONDS = 10
POLLS_PER_DAY = 86_400 // POLL_SECONDS
MONTH_DAYS, QUICK_DAYS = 30, 1
START = datetime(2026, 3, 1, 12, tzinfo=UTC)
"""Noon, so the polls after the simulation fall half a day into their day."""
SPOT_EVERY = 360
"""Polls between spot price changes (an hour)."""
FULL_EVERY = 30
"""Polls between records of the whole fleet: 5 minutes, the ledger's ``max_gap``."""
VERIFY_HOURS = 2
QUERY_ROUNDS = 21
OBSERVE_ROUNDS, QUICK_OBSERVE_ROUNDS = 21, 7

SIZE_GOAL_MB = 50.0
TOTALS_GOAL_MS = 50.0

REGION = "us-east-1"
PRICED_AT = datetime(2026, 2, 20, tzinfo=UTC)
ON_DEMAND = "AWS Price List API"
SPOT = "EC2 spot price history"
EC2_TYPES: tuple[tuple[str, str, GpuSpec | None], ...] = (
    ("g5.xlarge", "1.006", GpuSpec(count=1, model="A10G", memory_mib=22888)),
    ("g5.12xlarge", "5.672", GpuSpec(count=4, model="A10G", memory_mib=22888)),
    ("g6e.12xlarge", "10.493", GpuSpec(count=4, model="L40S", memory_mib=45776)),
    ("p4d.24xlarge", "21.96", GpuSpec(count=8, model="A100", memory_mib=40960)),
    ("p5.48xlarge", "55.04", GpuSpec(count=8, model="H100", memory_mib=81920)),
    ("c6i.xlarge", "0.17", None),
    ("m6i.2xlarge", "0.384", None),
)
"""Instance type, on-demand $/h in us-east-1, GPUs."""
EBS_TYPES = (("gp3", Decimal("0.08")), ("gp2", Decimal("0.10")), ("st1", Decimal("0.045")))
"""Volume type and $ per GB-month."""
EBS_SIZES = (100, 200, 500, 1000, 2000)
PODS_GPUS = (("RTX 4090", "0.69"), ("A100 80GB", "1.64"), ("H100 80GB", "2.69"), ("A40", "0.39"))
HOURS_PER_MONTH = Decimal(730)
ORPHANED_EVERY = 10
"""One volume in ten is attached to nothing."""


def on_demand(usd: Decimal) -> Rate:
    """A list price from the Price List API."""
    return Rate(usd_per_hour=usd, source=ON_DEMAND, region=REGION, as_of=PRICED_AT)


def spot(usd: Decimal, at: datetime) -> Rate:
    """A spot price, as of the hour it was read."""
    return Rate(usd_per_hour=usd, source=SPOT, region=f"{REGION}a", as_of=at)


def volume_rate(n: int) -> tuple[Decimal, Rate]:
    """Volume ``n``'s price per month and its rate per hour (the month over 730 hours)."""
    volume_type, per_gb = EBS_TYPES[n % len(EBS_TYPES)]
    monthly = per_gb * EBS_SIZES[n % len(EBS_SIZES)]
    rate = Rate(
        usd_per_hour=monthly / HOURS_PER_MONTH,
        source=f"EBS {volume_type} list price",
        region=REGION,
        as_of=PRICED_AT,
    )
    return monthly, rate


def pod_rate(n: int) -> Rate:
    """Pod ``n``'s ``costPerHr``."""
    return Rate(usd_per_hour=Decimal(PODS_GPUS[n % len(PODS_GPUS)][1]), source="pod costPerHr")


def is_spot(n: int) -> bool:
    """A tenth of the instances are spot."""
    return n % 10 == 0


class Fleet:
    """The simulated fleet, changed a little at each poll, seeded for repeatable runs.

    ``items`` are the ledger's view (``Billable``, cheap to copy at every poll); ``rates``
    hold each one's rate, and :meth:`snapshot` turns the fleet into what a poll produces.
    """

    def __init__(self, seed: int = 9) -> None:
        self.random = random.Random(seed)
        self.items: list[Billable] = []
        self.rates: list[Rate] = []
        for n in range(INSTANCES):
            price = Decimal(EC2_TYPES[n % len(EC2_TYPES)][1])
            rate = spot(price * Decimal("0.35"), START) if is_spot(n) else on_demand(price)
            self._add(f"aws:i-{n:017x}", "aws", f"train-{n}", "ec2", REGION, rate, n % 48, 1)
        for n in range(VOLUMES):
            _, rate = volume_rate(n)
            self._add(f"aws:vol-{n:017x}", "aws", f"data-{n}", "ebs", REGION, rate, n % 90, 24)
        for n in range(PODS):
            self._add(f"runpod:pod{n}", "runpod", f"pod-{n}", "pod", "EU-RO-1", pod_rate(n), n, 1)

    def _add(
        self,
        key: str,
        provider: str,
        name: str,
        kind: str,
        where: str,
        rate: Rate,
        age: int,
        unit: int,
    ) -> None:
        since = START - timedelta(hours=age * unit)
        self.rates.append(rate)
        self.items.append(
            Billable(
                key, provider, name, kind, where, True, rate.usd_per_hour, rate.describe(), since
            )
        )

    def step(self, poll: int, now: datetime) -> dict[int, Billable]:
        """Stop or start an instance, restart a pod, replace a volume; reprice spot hourly.

        Returns what changed: each changed index and its item before this poll.
        """
        rng = self.random
        items = self.items
        before: dict[int, Billable] = {}
        if rng.random() < 0.1:
            n = rng.randrange(INSTANCES)
            item = before.setdefault(n, items[n])
            items[n] = replace(
                item, billing=not item.billing, since=now if not item.billing else item.since
            )
        if rng.random() < 0.02:
            n = INSTANCES + VOLUMES + rng.randrange(PODS)
            before.setdefault(n, items[n])
            items[n] = replace(items[n], since=now)
        if rng.random() < 0.01:
            n = INSTANCES + rng.randrange(VOLUMES)
            before.setdefault(n, items[n])
            items[n] = replace(items[n], key=f"aws:vol-new{poll}", since=now)
        if poll % SPOT_EVERY == 0:
            for n in range(0, INSTANCES, 10):
                list_price = Decimal(EC2_TYPES[n % len(EC2_TYPES)][1])
                rate = spot(list_price * rng.randrange(3000, 4500) / 10_000, now)
                self.rates[n] = rate
                before.setdefault(n, items[n])
                items[n] = replace(
                    items[n], usd_per_hour=rate.usd_per_hour, rate_source=rate.describe()
                )
        return before

    def snapshot(self, at: datetime) -> FleetSnapshot:
        """The fleet as one poll of EC2 and RunPod reports it at ``at``."""
        instances: list[Instance] = []
        states: dict[str, InstanceState] = {}
        for n, (item, rate) in enumerate(zip(self.items[:INSTANCES], self.rates, strict=False)):
            instance_type, _, gpus = EC2_TYPES[n % len(EC2_TYPES)]
            state = InstanceState.RUNNING if item.billing else InstanceState.STOPPED
            instance_id = item.key.split(":", 1)[1]
            states[instance_id] = state
            instances.append(
                Instance(
                    provider="aws",
                    id=instance_id,
                    name=item.name,
                    location=item.location,
                    state=state,
                    gpus=gpus,
                    launched_at=item.since,
                    rate=rate,
                    tags={"Name": item.name, "project": f"p{n % 8}"},
                    details=Ec2Details(
                        instance_type=instance_type,
                        zone=f"{REGION}a",
                        lifecycle=Lifecycle.SPOT if is_spot(n) else Lifecycle.ON_DEMAND,
                        spot_request_type="persistent" if is_spot(n) else None,
                        private_ip=f"10.0.{n // 250}.{n % 250}",
                    ),
                )
            )
        for n in range(PODS):
            item = self.items[INSTANCES + VOLUMES + n]
            gpu, _ = PODS_GPUS[n % len(PODS_GPUS)]
            instances.append(
                Instance(
                    provider="runpod",
                    id=item.key.split(":", 1)[1],
                    name=item.name,
                    location=item.location,
                    state=InstanceState.RUNNING,
                    gpus=GpuSpec(count=1, model=gpu),
                    launched_at=item.since,
                    rate=self.rates[INSTANCES + VOLUMES + n],
                    details=PodDetails(
                        desired_status="RUNNING", gpu_count=1, gpu_display_name=gpu, volume_gb=50
                    ),
                )
            )
        storage: list[StorageItem] = []
        for n in range(VOLUMES):
            item = self.items[INSTANCES + n]
            monthly, rate = volume_rate(n)
            owner = None if n % ORPHANED_EVERY == 0 else f"i-{n % INSTANCES:017x}"
            storage.append(
                StorageItem(
                    provider="aws",
                    id=item.key.split(":", 1)[1],
                    name=item.name,
                    location=item.location,
                    volume_type=EBS_TYPES[n % len(EBS_TYPES)][0],
                    size_gb=EBS_SIZES[n % len(EBS_SIZES)],
                    attached_to=owner,
                    attached_state=None if owner is None else states[owner],
                    created_at=item.since,
                    rate=rate,
                    monthly_usd=monthly,
                )
            )
        statuses = tuple(
            ProviderStatus(provider=name, ok=True, refreshed_at=at, instance_count=count)
            for name, count in (("aws", INSTANCES), ("runpod", PODS))
        )
        return FleetSnapshot(
            instances=tuple(instances), statuses=statuses, taken_at=at, storage=tuple(storage)
        )


def file_mb(path: Path) -> float:
    """The database with its write-ahead log, in MB."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            total += part.stat().st_size
    return total / 1e6


@dataclass
class Simulated:
    """What a simulation left: its fleet, last poll time, and its records' seconds."""

    fleet: Fleet
    end: datetime
    polls: int
    full: list[float]
    """Seconds of each record of the whole fleet."""
    last_day: list[float]
    """The same, over the last simulated day: what a record costs with a month behind it."""
    partial: int
    """Records of the changed resources only."""


def poll_time(poll: int) -> datetime:
    """When poll number ``poll`` is taken."""
    return START + timedelta(seconds=poll * POLL_SECONDS)


def simulate(
    path: Path, polls: int, full_every: int = FULL_EVERY, report: bool = True
) -> Simulated:
    """Record ``polls`` polls into a new ledger at ``path``: the whole fleet every
    ``full_every`` polls (1: every poll) and at the last, and in between what changed, at the
    poll before its change and at its change."""
    fleet = Fleet()
    ledger = Ledger(path)
    full: list[float] = []
    partial = 0
    started = time.perf_counter()
    last = polls - 1
    for poll in range(polls):
        now = poll_time(poll)
        before = fleet.step(poll, now)
        whole = poll % full_every == 0 or poll == last
        if before and poll and (poll - 1) % full_every:
            ledger.record([before[n] for n in sorted(before)], poll_time(poll - 1))
            partial += 1
        if whole:
            clock = time.perf_counter()
            ledger.record(fleet.items, now)
            full.append(time.perf_counter() - clock)
        elif before:
            ledger.record([fleet.items[n] for n in sorted(before)], now)
            partial += 1
        if report and poll and poll % POLLS_PER_DAY == 0:
            print(
                f"  day {poll // POLLS_PER_DAY}: {file_mb(path):.1f} MB,"
                f" {time.perf_counter() - started:.0f} s so far",
                flush=True,
            )
    ledger.close()
    last_day = full[-(min(polls, POLLS_PER_DAY) // full_every) :]
    return Simulated(fleet, poll_time(last), polls, full, last_day, partial)


def rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every interval and gap of the ledger at ``path``, in order."""
    db = sqlite3.connect(path)
    try:
        intervals = list(db.execute("SELECT * FROM intervals ORDER BY id"))
        gaps = list(db.execute("SELECT * FROM gaps ORDER BY id"))
    finally:
        db.close()
    return intervals, gaps


def count_intervals(path: Path) -> int:
    """How many intervals the ledger at ``path`` holds."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM intervals").fetchone()[0])
    finally:
        db.close()


def verify(tmp: Path, hours: float) -> tuple[float, float, int]:
    """Check that the sampled simulation writes the rows of recording every poll over ``hours``:
    the two sizes in MB and the intervals; exits when they differ."""
    polls = int(hours * 3600) // POLL_SECONDS
    every, sampled = tmp / "every-poll.sqlite3", tmp / "sampled.sqlite3"
    simulate(every, polls, full_every=1, report=False)
    simulate(sampled, polls, report=False)
    expected, found = rows(every), rows(sampled)
    if expected != found:
        sys.exit(
            f"sampled simulation differs from recording every poll over {hours:g} h:"
            f" {len(found[0])} intervals, {len(found[1])} gaps against"
            f" {len(expected[0])}, {len(expected[1])}"
        )
    return file_mb(every), file_mb(sampled), len(expected[0])


def timed_queries(path: Path, end: datetime) -> tuple[list[float], list[float], Decimal, int]:
    """Seconds per month ``totals`` and per month ``spend``; the total and the resources."""
    ledger = Ledger(path)
    start = month_start(end, UTC)
    stop = end + timedelta(seconds=1)
    totals: list[float] = []
    spends: list[float] = []
    total = Decimal(0)
    resources = 0
    for _ in range(QUERY_ROUNDS):
        before = time.perf_counter()
        total = ledger.totals(start, stop)
        totals.append(time.perf_counter() - before)
        before = time.perf_counter()
        resources = len(ledger.spend(start, stop))
        spends.append(time.perf_counter() - before)
    ledger.close()
    return totals, spends, total, resources


@dataclass
class PollFigures:
    """Seconds per poll of the cost service and of the fleet table, round by round."""

    observe: list[float]
    prepare: list[float]
    lines: int
    month_usd: Decimal


def poll_to_totals(path: Path, simulated: Simulated, rounds: int) -> PollFigures:
    """Time ``CostService.observe`` of the fleet's next polls on the simulated ledger, against
    ``prepare`` of the fleet table's rows of the same instances, alternating which goes first."""
    # Textual is imported here only: the ledger's own figures need none of it.
    from runctl_tui.tui.widgets.instance_table import prepare

    service = CostService(
        CostsSettings(daily_budget=Decimal(20_000), monthly_budget=Decimal(400_000)),
        path=path,
        clock=lambda: simulated.end,
        poll_seconds=POLL_SECONDS,
        tz=UTC,
    )
    first = simulated.fleet.snapshot(simulated.end + timedelta(seconds=POLL_SECONDS))
    observe: list[float] = []
    prepared: list[float] = []
    report = None
    try:
        for poll in range(rounds + 1):
            snapshot = first.model_copy(
                update={"taken_at": first.taken_at + timedelta(seconds=poll * POLL_SECONDS)}
            )
            for contender in alternate(poll, "observe", "prepare"):
                before = time.perf_counter()
                if contender == "observe":
                    report = service.observe(snapshot)
                else:
                    prepare(snapshot.instances, snapshot.taken_at)
                took = time.perf_counter() - before
                if poll:  # the first round opens the ledger and warms the caches
                    (observe if contender == "observe" else prepared).append(took)
    finally:
        service.close()
    assert report is not None
    return PollFigures(observe, prepared, len(report.lines), report.total.month_usd)


def run(quick: bool, verify_hours: float) -> list[Figure]:
    """Simulate, measure and print; the headline figures."""
    days = QUICK_DAYS if quick else MONTH_DAYS
    rounds = QUICK_OBSERVE_ROUNDS if quick else OBSERVE_ROUNDS
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        path = Path(tmp) / "ledger.sqlite3"
        heading(
            f"Cost ledger: {days} day(s) of {POLL_SECONDS} s polls of {INSTANCES:,} instances,"
            f" {VOLUMES:,} volumes, {PODS} pods"
        )
        started = time.perf_counter()
        every_mb, sampled_mb, checked = verify(Path(tmp), verify_hours)
        print(
            f"  check           {verify_hours:g} h sampled = every poll: {checked:,} intervals"
            f" alike; {sampled_mb:.2f} MB against {every_mb:.2f} MB"
            f" ({time.perf_counter() - started:.0f} s)"
        )
        started = time.perf_counter()
        simulated = simulate(path, days * POLLS_PER_DAY)
        print(
            f"  simulated in {time.perf_counter() - started:.0f} s ({simulated.polls:,} polls:"
            f" {len(simulated.full):,} records of the fleet, {simulated.partial:,} of changes)"
        )
        size = file_mb(path)
        totals, spends, total, resources = timed_queries(path, simulated.end)
        intervals = count_intervals(path)
        print(f"  size            {size:.1f} MB ({intervals:,} intervals)")
        print(f"  record()        {spread(simulated.full)}  (the whole fleet)")
        print(f"  record() day {days:<3}{spread(simulated.last_day)}  (the last day)")
        print(f"  totals(month)   {spread(totals)}  = ${total:.2f}")
        print(f"  spend(month)    {spread(spends)}  ({resources:,} resources)")
        polls = poll_to_totals(path, simulated, rounds)
        print(
            f"  observe()       {spread(polls.observe)}  ({polls.lines:,} lines,"
            f" month ${polls.month_usd:.2f})"
        )
        print(f"  prepare()       {spread(polls.prepare)}  (fleet table rows)")
    observe, prepared = statistics.median(polls.observe), statistics.median(polls.prepare)
    return [
        Figure(f"Ledger size after {days} d of polls", size, "MB", SIZE_GOAL_MB),
        Figure(
            "Ledger totals over the month", statistics.median(totals) * 1000, "ms", TOTALS_GOAL_MS
        ),
        Figure(
            f"Ledger record() of 3,200 resources, day {days}",
            statistics.median(simulated.last_day) * 1000,
            "ms",
            None,
            f"worst {ms(max(simulated.last_day))}; over all days median"
            f" {ms(statistics.median(simulated.full))}, worst {ms(max(simulated.full))}",
        ),
        Figure(
            f"Poll to totals vs fleet table rows ({days} d)",
            observe / prepared,
            "x",
            None,
            f"observe {ms(observe)}, worst {ms(max(polls.observe))}; prepare {ms(prepared)};"
            f" {round_ratios(polls.observe, polls.prepare)}",
        ),
    ]


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """``--json``, ``--quick``, and how long a stretch the sampling is checked over."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the headline figures here")
    parser.add_argument("--quick", action="store_true", help="a day of polls, fewer rounds")
    parser.add_argument(
        "--verify-hours",
        type=float,
        default=VERIFY_HOURS,
        metavar="H",
        help=f"simulated hours recorded both ways and compared (default {VERIFY_HOURS})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ledger benchmark and print its report."""
    args = arguments(argv)
    write_figures(args.json, run(args.quick, args.verify_hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
