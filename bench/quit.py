"""Benchmark 4: time from the quit key to process exit while an EC2 endpoint hangs.

``runctl-tui`` polls an endpoint on 127.0.0.1 that accepts connections and never answers, so a
poll is in flight when the quit key arrives; the baseline is the bare Textual app quitting with
nothing in flight. Both run under a 160x45 pseudo-terminal; the clock runs from writing the key
to the child's exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.common import (
    LOOPBACK,
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
from bench.startup import Launch, spawn_in_pty, tail

RUNS, QUICK_RUNS = 5, 2
GOAL_MS = 1000.0
IN_FLIGHT = 1.5
"""Seconds between the first frame and the quit key: the first poll is stuck by then."""
TIMEOUT = 30.0


def hung_endpoint() -> socket.socket:
    """A listening socket that accepts connections into its backlog and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((LOOPBACK, 0))
    server.listen(64)
    return server


def quit_seconds(launch: Launch, key: bytes, env: Mapping[str, str]) -> float:
    """Seconds from writing ``key`` (after the first frame) until the child has exited."""
    pid, master = spawn_in_pty(launch.argv, env)
    seen = bytearray()
    exited = False
    try:
        deadline = time.perf_counter() + TIMEOUT
        while not all(marker in seen for marker in launch.markers):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{launch.label}: no first frame: {tail(seen)}")
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                seen += os.read(master, 65536)
        settle = time.perf_counter() + IN_FLIGHT
        while time.perf_counter() < settle:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                os.read(master, 65536)
        start = time.perf_counter()
        os.write(master, key)
        while True:
            if time.perf_counter() - start > TIMEOUT:
                raise TimeoutError(f"{launch.label}: still running {TIMEOUT:.0f} s after quit")
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                exited = True
                return time.perf_counter() - start
            ready, _, _ = select.select([master], [], [], 0.005)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(master, 65536)
    finally:
        if not exited:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)


def measure(runs: int) -> dict[str, list[float]]:
    """``runs`` interleaved quits of each app, after one untimed warm-up each."""
    bin_dir = Path(sys.executable).parent
    ours = Launch("runctl-tui, hung endpoint", (str(bin_dir / "runctl-tui"),), (b"NAME", b"$/H"))
    bare = Launch(
        "bare DataTable app",
        (sys.executable, str(Path(__file__).with_name("bare_app.py"))),
        (b"NAME", b"$/H"),
    )
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    server = hung_endpoint()
    port = server.getsockname()[1]
    try:
        with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
            for n in range(runs + 1):
                for name in alternate(n, "ours", "bare"):
                    env = isolated_env(os.environ, Path(tmp) / f"{name}-{n}")
                    env["TERM"] = "xterm-256color"
                    env["AWS_ENDPOINT_URL"] = f"http://{LOOPBACK}:{port}"
                    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "bench"
                    env["RUNCTL_TUI_AWS__REGIONS"] = '["us-east-1"]'
                    launch, key = (ours, b"q") if name == "ours" else (bare, b"\x11")
                    seconds = quit_seconds(launch, key, env)
                    if n:
                        times[name].append(seconds)
    finally:
        server.close()
    return times


def report(times: Mapping[str, Sequence[float]]) -> list[Figure]:
    """Print both samples and the ratio; the headline is our median in milliseconds."""
    print(f"  {'runctl-tui, hung poll':<26} {spread(times['ours'])}")
    print(f"  {'bare app, nothing running':<26} {spread(times['bare'])}")
    ratio = median(times["ours"]) / median(times["bare"])
    print(
        f"  {'ratio of medians':<26} {ratio:.2f}x  ({round_ratios(times['ours'], times['bare'])})"
    )
    return [
        Figure(
            "quit behind a hung endpoint",
            median(times["ours"]) * 1000,
            "ms",
            GOAL_MS,
            f"{ratio:.2f}x the bare app's {median(times['bare']) * 1000:.0f} ms",
        )
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the quit benchmark and print its report."""
    args = child_arguments(__doc__ or "", argv)
    runs = QUICK_RUNS if args.quick else RUNS
    heading(f"4. Quit while a poll hangs: key to exit, {runs} runs each")
    write_figures(args.json, report(measure(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
