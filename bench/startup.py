"""Benchmark 1: launch to first painted frame of ``runctl-tui --demo``, against a bare Textual app.

Each app runs under its own pseudo-terminal (160x45, ``TERM=xterm-256color``) with fresh XDG
directories; the clock stops when the pty output contains markers from the first frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import sys
import tempfile
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Figure,
    alternate,
    child_arguments,
    heading,
    isolated_env,
    median,
    round_ratios,
    spread,
    write_figures,
)

COLUMNS, ROWS = 160, 45
RUNS, QUICK_RUNS = 7, 2
TIMEOUT = 30.0
GOAL = 1.3


@dataclass(frozen=True)
class Launch:
    """A command and the byte strings that show its first frame has been painted."""

    label: str
    argv: tuple[str, ...]
    markers: tuple[bytes, ...]


def launches() -> dict[str, Launch]:
    """The candidate and the baseline, both on this interpreter."""
    bin_dir = Path(sys.executable).parent
    script = bin_dir / "runctl-tui"
    if not script.exists():
        raise SystemExit(f"{script} not found: run `make venv` first")
    # "$/H" is the last header cell: once it is out, the whole header row has been written.
    return {
        "ours": Launch(
            "runctl-tui --demo", (str(script), "--demo"), (b"runctl-tui", b"NAME", b"$/H")
        ),
        "bare": Launch(
            "bare DataTable app",
            (sys.executable, str(Path(__file__).with_name("bare_app.py"))),
            (b"NAME", b"$/H"),
        ),
    }


def spawn_in_pty(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, int]:
    """Start ``argv`` on a new 160x45 pseudo-terminal; its pid and the pty's master end."""
    master, slave = os.openpty()
    # Set before the child exists, so its very first size query sees 160x45.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    pid = os.fork()
    if pid == 0:
        try:
            os.close(master)
            # New session with the pty as controlling terminal, like a real terminal emulator.
            os.login_tty(slave)
            os.execve(argv[0], list(argv), dict(env))
        finally:
            os._exit(127)
    os.close(slave)
    return pid, master


def first_frame_seconds(launch: Launch, env: Mapping[str, str], timeout: float = TIMEOUT) -> float:
    """Seconds from fork until the first frame's markers reach the pty; then kill the group."""
    start = time.perf_counter()
    pid, master = spawn_in_pty(launch.argv, env)
    seen = bytearray()
    try:
        deadline = start + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(
                    f"{launch.label}: no first frame in {timeout:.0f} s: {tail(seen)}"
                )
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                # EIO: every slave end is closed, i.e. the child exited.
                chunk = b""
            if not chunk:
                raise RuntimeError(f"{launch.label} exited before its first frame: {tail(seen)}")
            seen += chunk
            if all(marker in seen for marker in launch.markers):
                return time.perf_counter() - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(master)


def tail(output: bytes | bytearray, limit: int = 400) -> str:
    """The end of a child's output, readable, for error messages."""
    return repr(bytes(output[-limit:]).decode("utf-8", "replace"))


def measure(runs: int) -> dict[str, list[float]]:
    """One untimed warm-up each (bytecode, page cache), then ``runs`` interleaved launches each."""
    contenders = launches()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        for n in range(runs + 1):
            for name in alternate(n, "ours", "bare"):
                # Fresh XDG dirs per launch: no user config, no log file left by a previous run.
                env = isolated_env(os.environ, Path(tmp) / f"{name}-{n}")
                env["TERM"] = "xterm-256color"
                seconds = first_frame_seconds(contenders[name], env)
                if n:
                    times[name].append(seconds)
    return times


def report(times: Mapping[str, Sequence[float]]) -> list[Figure]:
    """Print the medians and the ratio; return the headline figure."""
    labels = {name: launch.label for name, launch in launches().items()}
    for name in ("ours", "bare"):
        print(f"  {labels[name]:<22} {spread(times[name])}")
    ratio = median(times["ours"]) / median(times["bare"])
    per_round = round_ratios(times["ours"], times["bare"])
    print(f"  {'ratio of medians':<22} {ratio:.2f}x  ({per_round}; goal <= {GOAL:.1f}x)")
    return [
        Figure(
            "start-up: runctl-tui --demo / bare app",
            ratio,
            "x",
            GOAL,
            f"{median(times['ours']) * 1000:.0f} vs {median(times['bare']) * 1000:.0f} ms",
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the start-up benchmark and print its report."""
    args = child_arguments(__doc__ or "", argv)
    runs = QUICK_RUNS if args.quick else RUNS
    heading(f"1. Start-up: launch to first painted frame, {COLUMNS}x{ROWS} pty, {runs} runs each")
    write_figures(args.json, report(measure(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
