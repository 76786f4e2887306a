"""Benchmark 7: live logs: ingest speed and UI stall, opening a 2 GB log, memory over a long run.

Everything goes through the log core as the log pane uses it: a ``LocalFileSource`` followed by a
``LogDocument``, shown in a ``LogView`` of a headless Textual app that is told of new lines at
most every 50 ms. The baselines are ``tail -F`` on the same file (ingest) and the same open of a
1 KB log (open); memory is measured in a fresh interpreter running the same app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from textual.app import App, ComposeResult
from textual.containers import Vertical

from bench.common import (
    ROOT,
    Figure,
    alternate,
    heading,
    isolate_this_process,
    median,
    round_ratios,
    write_figures,
)
from runctl_tui.logs.document import Changed, LogDocument
from runctl_tui.logs.local import LocalFileSource
from runctl_tui.logs.source import SourceState
from runctl_tui.tui.widgets.log_view import LogView, ViewLine

SIZE = (160, 45)
TICK = 0.005
REFRESH = 0.05
"""The view is told of new lines at most this often, as the log pane does."""
SETTLE = 0.3
WAIT_LIMIT = 600.0
"""Seconds before a wait gives up: ingest is slow when the core is, but must end."""
WRITE_BYTES = 64 * 1024
"""One ``write`` of the log writer: a training process's buffered stdout, flushed."""

INGEST_LINES, QUICK_INGEST_LINES = 200_000, 50_000
INGEST_ROUNDS, QUICK_INGEST_ROUNDS = 3, 1
OPEN_ROUNDS, QUICK_OPEN_ROUNDS = 5, 2
BIG_BYTES = 2 * 1024**3
BIG_REAL_BYTES = 4 * 1024 * 1024
"""Real lines at the end of the 2 GB file; before them it is sparse (reads as NUL bytes)."""
SMALL_BYTES = 1024
MID_BYTES = 1024 * 1024
MEMORY_LINES, QUICK_MEMORY_LINES = 10_000_000, 1_000_000
MEMORY_BATCH = 100_000

STALL_GOAL_MS = 50.0
OPEN_GOAL = 1.2
MEMORY_GOAL_MB = 150.0
PAGE = os.sysconf("SC_PAGE_SIZE")


# The log's lines -------------------------------------------------------------------------------


def log_line(n: int) -> bytes:
    """Line ``n`` of a synthetic training log: mostly key=value steps, some dicts, colours."""
    if n % 50 == 49:
        return (
            b"{'loss': 0.%04d, 'grad_norm': 1.%03d, 'learning_rate': 2.9e-05, 'epoch': %d.%02d}\n"
            % (
                n % 9973,
                n % 997,
                n // 100_000,
                n // 1000 % 100,
            )
        )
    if n % 1000 == 999:
        return b"2024-05-01 12:00:00,123 WARNING torch.utils.data: worker %d is slow (%d ms)\n" % (
            n % 8,
            n % 400,
        )
    level = b"\x1b[32mINFO\x1b[0m" if n % 10 == 0 else b"INFO"
    return b"2024-05-01 12:00:00,123 %s train step=%d loss=0.%04d lr=3.0e-04 tokens/s=%d\n" % (
        level,
        n,
        n % 9973,
        50_000 + n % 5000,
    )


def end_line(tag: str) -> bytes:
    """The last line of a log, found by its text."""
    return f"END-OF-LOG {tag}\n".encode()


def log_bytes(first: int, count: int) -> bytes:
    """Lines ``first`` to ``first + count``."""
    return b"".join(log_line(n) for n in range(first, first + count))


def lines_of_size(size: int, tag: str) -> bytes:
    """Whole lines making about ``size`` bytes, the last of them :func:`end_line`."""
    tail = end_line(tag)
    parts: list[bytes] = []
    total = len(tail)
    n = 0
    while True:
        line = log_line(n)
        if total + len(line) > size:
            break
        parts.append(line)
        total += len(line)
        n += 1
    parts.append(tail)
    return b"".join(parts)


def rss_mb() -> float:
    """This process's resident set size, in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / 1e6


# The app ---------------------------------------------------------------------------------------


class DocumentLines:
    """The document as the view's ``LineStore``; notes when a line with a given text is shown."""

    def __init__(self, document: LogDocument, watch_for: str = "") -> None:
        self.document = document
        self.watch_for = watch_for
        self.shown_at: float | None = None
        """When the view first rendered the line :attr:`watch_for`."""

    def __len__(self) -> int:
        return len(self.document)

    def get(self, index: int) -> ViewLine | None:
        """The document's line, as the view shows it."""
        line = self.document.get(index)
        if line is None:
            return None
        text = line.styled.text
        if self.shown_at is None and self.watch_for and text == self.watch_for:
            self.shown_at = time.perf_counter()
        return ViewLine(text, error=line.error is not None)


class Refresher:
    """A document listener telling the view of new lines at most every ``period`` seconds."""

    def __init__(self, view: LogView, period: float = REFRESH) -> None:
        self.view = view
        self.period = period
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def __call__(self, changed: Changed) -> None:
        if self._handle is not None:
            return
        delay = max(0.0, self._last + self.period - time.perf_counter())
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._last = time.perf_counter()
        self.view.lines_changed()

    def cancel(self) -> None:
        """No more updates."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class LogBenchApp(App[None]):
    """An empty app the benchmark mounts log views into."""

    def compose(self) -> ComposeResult:
        """One container for the views."""
        yield Vertical(id="logs")


class Shown:
    """One log followed into a mounted view: source, document, store, view and its runner."""

    def __init__(self, path: Path, watch_for: str) -> None:
        self.source = LocalFileSource(path)
        self.document = LogDocument(self.source)
        self.store = DocumentLines(self.document, watch_for)
        self.view = LogView(self.store)
        self.refresher = Refresher(self.view)
        self.document.subscribe(self.refresher)
        self.task: asyncio.Task[None] | None = None

    async def start(self, app: App[None]) -> None:
        """Mount the view, then follow the log."""
        await app.query_one("#logs").mount(self.view)
        self.task = asyncio.create_task(self.document.run())

    async def stop(self) -> None:
        """Stop following and unmount the view."""
        self.refresher.cancel()
        await self.document.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.view.remove()


async def wait_until(condition: Callable[[], bool], what: str, step: float = 0.001) -> None:
    """Poll ``condition``; fail after ``WAIT_LIMIT`` seconds."""
    deadline = time.perf_counter() + WAIT_LIMIT
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(step)


async def following(shown: Shown) -> None:
    """Until the source follows the file and its directory watch has had time to start."""
    await wait_until(
        lambda: shown.document.status.state is SourceState.FOLLOWING, "the source to follow"
    )
    await asyncio.sleep(SETTLE)


# 1. Ingest -------------------------------------------------------------------------------------

WRITER = (
    "import sys; from bench.logs import writer_main; writer_main(sys.argv[1], int(sys.argv[2]))"
)


def writer_main(path: str, lines: int) -> None:
    """The log writer process: build the lines, say ``ready``, write them all on ``go``."""
    payload = memoryview(log_bytes(0, lines - 1) + end_line("ingest"))
    print("ready", flush=True)
    sys.stdin.readline()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    started = time.perf_counter()
    for at in range(0, len(payload), WRITE_BYTES):
        os.write(fd, payload[at : at + WRITE_BYTES])
    os.close(fd)
    print(f"{time.perf_counter() - started:.6f}", flush=True)


class Writer:
    """A log writer in its own process, ready to append ``lines`` lines to ``path`` at once."""

    def __init__(self, path: Path, lines: int) -> None:
        path.write_bytes(b"")
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(lines)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the log writer for {path} did not start")

    def go(self) -> float:
        """Start writing; the time it started."""
        assert self.process.stdin is not None
        started = time.perf_counter()
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return started

    def finish(self) -> float:
        """Seconds the writer took to write everything."""
        assert self.process.stdout is not None
        took = float(self.process.stdout.readline() or "nan")
        self.process.wait(timeout=WAIT_LIMIT)
        return took


def ingest_tail(path: Path, lines: int) -> tuple[float, float]:
    """``tail -F`` on ``path`` while the writer appends: seconds until it delivered every line,
    and the writer's own seconds."""
    writer = Writer(path, lines)
    tail = subprocess.Popen(["tail", "-F", "-n", "+1", str(path)], stdout=subprocess.PIPE)
    assert tail.stdout is not None
    fd = tail.stdout.fileno()
    try:
        time.sleep(SETTLE)
        started = writer.go()
        seen = 0
        deadline = started + WAIT_LIMIT
        while seen < lines:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.perf_counter()))
            if not ready:
                raise TimeoutError(f"tail -F delivered {seen:,} of {lines:,} lines")
            data = os.read(fd, 1024 * 1024)
            if not data:
                raise RuntimeError(f"tail -F ended after {seen:,} of {lines:,} lines")
            seen += data.count(b"\n")
        took = time.perf_counter() - started
    finally:
        tail.kill()
        tail.wait()
    return took, writer.finish()


async def ingest_ours(path: Path, lines: int) -> tuple[float, float, float, float]:
    """The log core and view on ``path`` while the writer appends: seconds until the last line
    is on screen, the writer's seconds, the longest stall while ingesting, and idle."""
    from bench.ui_stall import StallMeter

    writer = Writer(path, lines)
    app = LogBenchApp()
    meter = StallMeter(TICK)
    async with app.run_test(size=SIZE) as pilot:
        shown = Shown(path, end_line("ingest").decode().rstrip("\n"))
        await shown.start(app)
        await following(shown)
        meter.start()
        await asyncio.sleep(SETTLE)
        idle = meter.take()
        started = writer.go()
        await wait_until(lambda: shown.store.shown_at is not None, "the last line on screen")
        assert shown.store.shown_at is not None
        took = shown.store.shown_at - started
        await pilot.pause()
        await asyncio.sleep(SETTLE)
        stall = meter.take()
        await meter.stop()
        if len(shown.document) != lines:
            raise RuntimeError(f"the document has {len(shown.document):,} lines, not {lines:,}")
        await shown.stop()
    return took, writer.finish(), stall, idle


def ingest(tmp: Path, quick: bool) -> list[Figure]:
    """Lines per second into the view against ``tail -F``, and the UI's longest stall."""
    lines = QUICK_INGEST_LINES if quick else INGEST_LINES
    rounds = QUICK_INGEST_ROUNDS if quick else INGEST_ROUNDS
    megabytes = len(log_bytes(0, 1000)) * lines / 1000 / 1e6
    heading(
        f"7a. Log ingest: {lines:,} lines ({megabytes:.0f} MB) appended at once, {rounds} rounds, "
        f"headless {SIZE[0]}x{SIZE[1]}"
    )
    ours: list[float] = []
    tails: list[float] = []
    stalls: list[float] = []
    idles: list[float] = []
    writes: list[float] = []
    for n in range(rounds):
        for who in alternate(n, "ours", "tail"):
            path = tmp / f"ingest-{who}.log"
            if who == "ours":
                took, wrote, stall, idle = asyncio.run(ingest_ours(path, lines))
                ours.append(took)
                stalls.append(stall)
                idles.append(idle)
            else:
                took, wrote = ingest_tail(path, lines)
                tails.append(took)
            writes.append(wrote)
            path.unlink()
    ours_rate, tail_rate = lines / median(ours), lines / median(tails)
    print(f"  writer alone            {lines / median(writes):>12,.0f} lines/s")
    print(f"  tail -F > pipe          {tail_rate:>12,.0f} lines/s  (median {median(tails):.3f} s)")
    print(f"  LogDocument + LogView   {ours_rate:>12,.0f} lines/s  (median {median(ours):.3f} s)")
    print(
        f"  ratio (tail rate / ours) {tail_rate / ours_rate:>10.1f}x  {round_ratios(ours, tails)}"
    )
    stall_ms, idle_ms = median(stalls) * 1000, median(idles) * 1000
    print(
        f"  longest tick gap while ingesting: median {stall_ms:.0f} ms "
        f"(worst {max(stalls) * 1000:.0f}); idle {idle_ms:.0f} ms"
    )
    return [
        Figure(
            "Log ingest, tail -F rate / ours",
            tail_rate / ours_rate,
            "x",
            None,
            f"ours {ours_rate:,.0f} lines/s, tail -F {tail_rate:,.0f} lines/s",
        ),
        Figure(
            "Log ingest, UI stall",
            stall_ms,
            "ms",
            STALL_GOAL_MS,
            f"worst {max(stalls) * 1000:.0f} ms; idle {idle_ms:.0f} ms",
        ),
    ]


# 2. Open ---------------------------------------------------------------------------------------


def make_open_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """The 1 KB, 1 MB and sparse 2 GB logs: name to path and the text of the last line."""
    files: dict[str, tuple[Path, str]] = {}
    for name, size in (("1 KB", SMALL_BYTES), ("1 MB", MID_BYTES)):
        path = tmp / f"open-{size}.log"
        path.write_bytes(lines_of_size(size, name))
        files[name] = (path, end_line(name).decode().rstrip("\n"))
    big = tmp / "open-2g.log"
    real = lines_of_size(BIG_REAL_BYTES, "2 GB")
    with big.open("wb") as file:
        # Sparse: only the real lines at the end take disk blocks.
        file.truncate(BIG_BYTES - len(real) - 1)
        file.seek(BIG_BYTES - len(real) - 1)
        file.write(b"\n" + real)
    files["2 GB"] = (big, end_line("2 GB").decode().rstrip("\n"))
    return files


async def open_once(app: App[None], path: Path, last: str) -> tuple[float, float]:
    """Seconds until the last line is in the document, and until it is on screen."""
    started = time.perf_counter()
    shown = Shown(path, last)
    in_document: list[float] = []

    def check(changed: Changed) -> None:
        # New lines are indexed first and decoded just after (or read back when asked for).
        count = len(shown.document)
        if not in_document and (changed.back or changed.loaded) and count:
            line = shown.document.get(count - 1)
            if line is not None and line.styled.text == last:
                in_document.append(time.perf_counter())

    shown.document.subscribe(check)
    await shown.start(app)
    await wait_until(lambda: shown.store.shown_at is not None, f"the last line of {path.name}")
    assert shown.store.shown_at is not None
    on_screen = shown.store.shown_at - started
    await shown.stop()
    if not in_document:
        raise RuntimeError(f"{path.name}: the document never held its last line")
    return in_document[0] - started, on_screen


async def measure_open(
    files: dict[str, tuple[Path, str]], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """``rounds`` rounds of opening each file (order rotating), after one untimed open each."""
    app = LogBenchApp()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in files}
    names = list(files)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for name in names:
            await open_once(app, *files[name])
        for n in range(rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            if n % 2:
                order.reverse()
            for name in order:
                results[name].append(await open_once(app, *files[name]))
                await pilot.pause()
    return results


def open_big(tmp: Path, quick: bool) -> list[Figure]:
    """Time until the last line of a 2 GB log is on screen, as a ratio to a 1 KB log."""
    rounds = QUICK_OPEN_ROUNDS if quick else OPEN_ROUNDS
    heading(f"7b. Log open: 1 KB, 1 MB and a sparse 2 GB log, {rounds} rounds")
    files = make_open_files(tmp)
    try:
        results = asyncio.run(measure_open(files, rounds))
    finally:
        for path, _ in files.values():
            path.unlink(missing_ok=True)
    print(f"  {'log':<6} {'last line in document':<30} last line on screen")
    for name, times in results.items():
        doc = [t[0] for t in times]
        screen = [t[1] for t in times]
        print(
            f"  {name:<6} median {median(doc) * 1000:5.0f} ms (max {max(doc) * 1000:4.0f})"
            f"{'':<7} median {median(screen) * 1000:5.0f} ms (max {max(screen) * 1000:4.0f})"
        )
    big = [t[1] for t in results["2 GB"]]
    small = [t[1] for t in results["1 KB"]]
    ratio = median(big) / median(small)
    print(f"  2 GB / 1 KB on screen: {ratio:.2f}x, {round_ratios(big, small)}")
    return [
        Figure(
            "Log open, 2 GB / 1 KB, last line on screen",
            ratio,
            "x",
            OPEN_GOAL,
            f"{median(big) * 1000:.0f} ms vs {median(small) * 1000:.0f} ms",
        )
    ]


# 3. Memory -------------------------------------------------------------------------------------

MEMORY = (
    "import sys; from bench.logs import memory_main; memory_main(sys.argv[1], int(sys.argv[2]))"
)


def holds(document: LogDocument, lines: int) -> bool:
    """Whether ``document`` knows at least ``lines`` lines."""
    return len(document) >= lines


async def follow_for_memory(path: Path, total: int, marks: Sequence[int]) -> dict[str, float]:
    """Append ``total`` lines in batches, the document following; RSS at each of ``marks``."""
    app = LogBenchApp()
    samples: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        shown = Shown(path, "")
        await shown.start(app)
        await following(shown)
        await pilot.pause()
        samples["0"] = rss_mb()
        started = time.perf_counter()
        written = 0
        pending = list(marks)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            while written < total:
                count = min(MEMORY_BATCH, total - written)
                os.write(fd, log_bytes(written, count))
                written += count
                await wait_until(
                    functools.partial(holds, shown.document, written), "the document", 0.01
                )
                if pending and written >= pending[0]:
                    pending.pop(0)
                    await pilot.pause()
                    samples[str(written)] = rss_mb()
                    print(
                        f"  {written:>12,} lines  RSS {samples[str(written)]:6.1f} MB  "
                        f"index {shown.document.index.nbytes() / 1e6:5.1f} MB  "
                        f"after {time.perf_counter() - started:5.0f} s",
                        flush=True,
                    )
        finally:
            os.close(fd)
        samples["seconds"] = time.perf_counter() - started
        await shown.stop()
    return samples


def memory_main(out: str, total: int) -> None:
    """The memory child: follow ``total`` lines in a fresh interpreter, write the samples."""
    marks = sorted({total // 10, total // 2, total})
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        path = Path(tmp) / "memory.log"
        path.write_bytes(b"")
        samples = asyncio.run(follow_for_memory(path, total, marks))
    Path(out).write_text(json.dumps(samples), encoding="utf-8")


def memory(tmp: Path, total: int) -> list[Figure]:
    """RSS of the app after ``total`` lines tailed through the document, in a fresh interpreter."""
    heading(f"7c. Log memory: RSS while {total:,} lines are tailed, fresh interpreter")
    out = tmp / "memory.json"
    subprocess.run([sys.executable, "-c", MEMORY, str(out), str(total)], cwd=ROOT, check=True)
    samples = json.loads(out.read_text(encoding="utf-8"))
    marks = sorted(int(k) for k in samples if k.isdigit())
    first, last = samples[str(marks[1])], samples[str(marks[-1])]
    print(
        f"  RSS before any line {samples['0']:.1f} MB; "
        f"{last - first:+.1f} MB from {marks[1]:,} to {marks[-1]:,} lines; "
        f"{total / samples['seconds']:,.0f} lines/s"
    )
    return [
        Figure(
            f"Log memory, RSS after {total / 1e6:g} M lines",
            last,
            "MB",
            MEMORY_GOAL_MB,
            f"{first:.0f} MB at {marks[1] / 1e6:g} M, {samples['0']:.0f} MB before",
        )
    ]


# Main ------------------------------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """``--json``, ``--quick``, and which parts to run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the headline figures here")
    parser.add_argument("--quick", action="store_true", help="fewer lines and repetitions")
    parser.add_argument(
        "--only", choices=("ingest", "open", "memory"), action="append", help="run only these"
    )
    parser.add_argument(
        "--memory-lines", type=int, metavar="N", help="lines for the memory part (10 M; 1 M quick)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the log benchmarks and print their report."""
    args = arguments(argv)
    parts = args.only or ["ingest", "open", "memory"]
    total = args.memory_lines or (QUICK_MEMORY_LINES if args.quick else MEMORY_LINES)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        isolate_this_process(Path(tmp) / "home")
        if "ingest" in parts:
            figures += ingest(Path(tmp), args.quick)
        if "open" in parts:
            figures += open_big(Path(tmp), args.quick)
        if "memory" in parts:
            figures += memory(Path(tmp), total)
    write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
