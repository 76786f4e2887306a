"""Benchmark 3: the longest event-loop stall while 1,000 rows are shown, refreshed and scrolled.

The real RunctlApp runs headless at 160x45 on an in-memory provider; the baseline is the bare app
holding Textual's stock DataTable with the same 1,000 x 11 cells. A 5 ms asyncio ticker on the
app's event loop records the longest gap between its ticks in each phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable

from bench.bare_app import COLUMNS as BARE_COLUMNS
from bench.bare_app import BareTableApp
from bench.common import (
    Figure,
    alternate,
    child_arguments,
    heading,
    isolate_this_process,
    median,
    write_figures,
)
from bench.fake_fleet import MemoryProvider, synthetic_fleet, with_changes
from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.models import Instance
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.screens.main import MainScreen
from runctl_tui.views import COLUMNS, row_cells, sort_key

SIZE = (160, 45)
ROWS = 1000
CHANGED = 20
TICK = 0.005
SETTLE = 0.3
"""Seconds to let the next frames render (and be measured) after a change has landed."""
WAIT_LIMIT = 20.0
SCROLL_KEYS = ("pagedown",) * 5 + ("down",) * 5
ROUNDS, QUICK_ROUNDS = 5, 1
GOAL_MS = 50.0

PHASES = {
    "idle": "idle, for reference",
    "fill": "(a) first fill, 1,000 rows",
    "all": "(b) refresh, every row changed",
    "some": f"(c) refresh, {CHANGED} rows changed",
    "scroll": "(d) 5x pagedown, 5x down",
}


@dataclass(frozen=True)
class Generations:
    """The three fleets the refreshes show, built once so building them is never timed."""

    now: datetime
    first: list[Instance]
    changed_all: list[Instance]
    changed_some: list[Instance]

    @classmethod
    def build(cls) -> Generations:
        """Generation 0, generation 1, and generation 1 with ``CHANGED`` rows altered."""
        now = datetime.now(UTC)
        changed_all = synthetic_fleet(ROWS, now, generation=1)
        return cls(now, synthetic_fleet(ROWS, now), changed_all, with_changes(changed_all, CHANGED))


class StallMeter:
    """The longest gap between the ticks of a 5 ms asyncio task on the app's event loop."""

    def __init__(self, period: float = TICK) -> None:
        self.period = period
        self._longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking on the running loop."""
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self._longest = max(self._longest, now - last)
            last = now

    def take(self) -> float:
        """The longest gap, in seconds, since the previous call."""
        longest, self._longest = self._longest, 0.0
        return longest

    async def stop(self) -> None:
        """Stop ticking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` every millisecond; fail after ``WAIT_LIMIT`` seconds."""
    deadline = time.perf_counter() + WAIT_LIMIT
    while True:
        if condition():
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.001)


async def settle(pilot: Pilot[None]) -> None:
    """Let queued messages run and the next frames render."""
    await pilot.pause()
    await asyncio.sleep(SETTLE)
    await pilot.pause()


async def idle_gap(meter: StallMeter) -> float:
    """Start ``meter`` and return the longest gap of an idle stretch: the measuring floor."""
    meter.start()
    await asyncio.sleep(SETTLE)
    return meter.take()


async def poll_and_show(screen: MainScreen, pilot: Pilot[None]) -> None:
    """Poll through the real worker and wait for the screen to take the new snapshot and paint."""
    before = screen.snapshot
    screen.poll_now()
    await wait_until(lambda: screen.snapshot is not before, "the poll to reach the screen")
    await settle(pilot)


async def run_ours(fleets: Generations, journal: Path) -> dict[str, float]:
    """Max stall per phase for RunctlApp with its InstanceTable."""
    provider = MemoryProvider()
    fleet = Fleet([provider], journal=Journal(journal))
    app = RunctlApp(Settings(poll_seconds=3600.0), fleet)
    meter = StallMeter()
    stalls: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, MainScreen)
        # The screen polls once on mount; that (empty) poll is not measured.
        await wait_until(lambda: screen.snapshot is not None, "the first poll")
        await settle(pilot)
        stalls["idle"] = await idle_gap(meter)
        for phase, instances in (
            ("fill", fleets.first),
            ("all", fleets.changed_all),
            ("some", fleets.changed_some),
        ):
            provider.instances = instances
            meter.take()
            await poll_and_show(screen, pilot)
            stalls[phase] = meter.take()
        if screen.table.row_count != ROWS:
            raise RuntimeError(f"InstanceTable shows {screen.table.row_count} rows, not {ROWS}")
        await pilot.press(*SCROLL_KEYS)
        await settle(pilot)
        stalls["scroll"] = meter.take()
        if screen.table.cursor_row == 0:
            raise RuntimeError("the scroll keys did not move the InstanceTable's cursor")
        await meter.stop()
    return stalls


def table_cells(instances: Sequence[Instance], now: datetime) -> dict[str, tuple[str, ...]]:
    """Instance key to the strings the stock table shows, in runctl-tui's display order.

    Only the bare app's columns: one provider's rows have no PROVIDER column in ours either.
    """
    picked = [COLUMNS.index(column) for column in BARE_COLUMNS]
    shown = {}
    for instance in sorted(instances, key=sort_key):
        cells = row_cells(instance, now)
        shown[instance.key] = tuple(cells[n] for n in picked)
    return shown


async def run_stock(fleets: Generations) -> dict[str, float]:
    """Max stall per phase for the bare app's stock DataTable, fed the same cells."""
    app = BareTableApp()
    meter = StallMeter()
    stalls: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        table: DataTable[str] = app.query_one(DataTable)
        await settle(pilot)
        columns = list(table.columns)
        stalls["idle"] = await idle_gap(meter)

        # Cells are computed inside the window on both sides: ours in the poll worker, by prepare().
        shown = table_cells(fleets.first, fleets.now)
        rows = dict(zip(shown, table.add_rows(shown.values()), strict=True))
        await settle(pilot)
        stalls["fill"] = meter.take()

        for phase, instances in (("all", fleets.changed_all), ("some", fleets.changed_some)):
            meter.take()
            fresh = table_cells(instances, fleets.now)
            # Every cell when every row changed (the plain way to refresh a stock table); for a
            # few changed rows, only the cells whose text changed: stock usage at its best.
            everything = phase == "all"
            with app.batch_update():
                for key, cells in fresh.items():
                    for column, old, new in zip(columns, shown[key], cells, strict=True):
                        if everything or old != new:
                            table.update_cell(rows[key], column, new)
            shown = fresh
            await settle(pilot)
            stalls[phase] = meter.take()

        if table.row_count != ROWS:
            raise RuntimeError(f"DataTable shows {table.row_count} rows, not {ROWS}")
        await pilot.press(*SCROLL_KEYS)
        await settle(pilot)
        stalls["scroll"] = meter.take()
        if table.cursor_row == 0:
            raise RuntimeError("the scroll keys did not move the DataTable's cursor")
        await meter.stop()
    return stalls


async def measure(rounds: int, journal: Path) -> dict[str, list[dict[str, float]]]:
    """``rounds`` interleaved rounds, each a fresh app of each kind."""
    fleets = Generations.build()
    results: dict[str, list[dict[str, float]]] = {"ours": [], "stock": []}
    for n in range(rounds):
        for who in alternate(n, "ours", "stock"):
            if who == "ours":
                results["ours"].append(await run_ours(fleets, journal))
            else:
                results["stock"].append(await run_stock(fleets))
    return results


def report(results: Mapping[str, Sequence[Mapping[str, float]]]) -> list[Figure]:
    """Print the median and worst stall per phase for both tables; return the headline figure."""

    def cell(who: str, phase: str) -> str:
        values = [r[phase] * 1000 for r in results[who]]
        return f"{median(values):6.0f} ms (worst {max(values):4.0f})"

    print(f"  {'longest tick gap, median of rounds':<36} {'InstanceTable':<22} stock DataTable")
    for phase, label in PHASES.items():
        print(f"  {label:<36} {cell('ours', phase):<22} {cell('stock', phase)}")

    def worst_phase(who: str) -> tuple[float, str]:
        measured = (p for p in PHASES if p != "idle")
        return max((median(r[p] for r in results[who]) * 1000, PHASES[p][:3]) for p in measured)

    ours, ours_phase = worst_phase("ours")
    stock, stock_phase = worst_phase("stock")
    return [
        Figure(
            "UI stall, worst phase, InstanceTable",
            ours,
            "ms",
            GOAL_MS,
            f"phase {ours_phase}; stock DataTable {stock:.0f} ms in {stock_phase}",
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the UI-stall benchmark and print its report."""
    args = child_arguments(__doc__ or "", argv)
    rounds = QUICK_ROUNDS if args.quick else ROUNDS
    heading(
        f"3. UI stall: {ROWS:,} rows, headless {SIZE[0]}x{SIZE[1]}, "
        f"{TICK * 1000:.0f} ms ticker, {rounds} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        isolate_this_process(Path(tmp))
        results = asyncio.run(measure(rounds, Path(tmp) / "journal.jsonl"))
    write_figures(args.json, report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
