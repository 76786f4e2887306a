"""Benchmark 1: launch to first painted frame of runctl-tui, against a bare Textual app.

Two candidates: ``runctl-tui --demo``, and ``runctl-tui`` with all four providers configured
(EC2 on a moto server, RunPod on its stand-in, this machine, one SSH host on an asyncssh
server; see ``bench/accounts.py``). Each app runs under its own pseudo-terminal (160x45,
``TERM=xterm-256color``) with fresh XDG directories; the clock stops when the text on the pty
(escape sequences removed) contains markers from the first frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
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

from bench.accounts import local_accounts
from bench.common import (
    Figure,
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
ESCAPES = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, colours, modes
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: title, clipboard
    rb"|\x1b[()][0-9A-Za-z]|\x1b[=>78]"  # charsets, keypad modes, cursor save
)
"""CSI, OSC and charset sequences: what is left of a frame is its text."""
CONTENDERS = ("ours", "four", "bare")


@dataclass(frozen=True)
class Launch:
    """A command and the text that shows what is awaited (a first frame, a row) is on screen."""

    label: str
    argv: tuple[str, ...]
    markers: tuple[bytes, ...]
    """All of these must have been written."""
    any_of: tuple[bytes, ...] = ()
    """And, if given, one of these."""

    def shown(self, output: bytes | bytearray) -> bool:
        """Whether ``output`` (raw pty bytes) holds the markers once escapes are removed."""
        text = ESCAPES.sub(b"", output)
        if not all(marker in text for marker in self.markers):
            return False
        return not self.any_of or any(marker in text for marker in self.any_of)


def runctl_script() -> Path:
    """The ``runctl-tui`` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "runctl-tui"
    if not script.exists():
        raise SystemExit(f"{script} not found: run `make venv` first")
    return script


def launches() -> dict[str, Launch]:
    """The two candidates and the baseline, all on this interpreter."""
    script = str(runctl_script())
    # "$/H" is the last header cell: once it is out, the whole header row has been written.
    first_frame = (b"runctl-tui", b"NAME", b"$/H")
    return {
        "ours": Launch("runctl-tui --demo", (script, "--demo"), first_frame),
        "four": Launch("runctl-tui, 4 providers", (script,), first_frame),
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


def seconds_until_shown(launch: Launch, env: Mapping[str, str], timeout: float = TIMEOUT) -> float:
    """Seconds from fork until ``launch``'s markers reach the pty; then kill the group."""
    start = time.perf_counter()
    pid, master = spawn_in_pty(launch.argv, env)
    seen = bytearray()
    try:
        deadline = start + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(
                    f"{launch.label}: markers not shown in {timeout:.0f} s: {tail(seen)}"
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
                raise RuntimeError(f"{launch.label} exited before its markers: {tail(seen)}")
            seen += chunk
            if launch.shown(seen):
                return time.perf_counter() - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(master)


def tail(output: bytes | bytearray, limit: int = 400) -> str:
    """The end of a child's output, readable, for error messages."""
    return repr(bytes(output[-limit:]).decode("utf-8", "replace"))


def rotate(round_index: int, names: Sequence[str]) -> list[str]:
    """The order of the contenders in a round: each goes first in turn, so drift hits all."""
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def measure(runs: int) -> dict[str, list[float]]:
    """One untimed warm-up each (bytecode, page cache), then ``runs`` interleaved launches each."""
    contenders = launches()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        base = isolated_env(os.environ, Path(tmp) / "servers-home")
        with local_accounts(Path(tmp) / "accounts", base, pods=5, ssh_hosts=1) as accounts:
            for n in range(runs + 1):
                for name in rotate(n, CONTENDERS):
                    # Fresh XDG dirs per launch: no user config, no log left by a previous run.
                    env = isolated_env(os.environ, Path(tmp) / f"{name}-{n}")
                    env["TERM"] = "xterm-256color"
                    if name == "four":
                        env.update(accounts.env)
                    seconds = seconds_until_shown(contenders[name], env)
                    if n:
                        times[name].append(seconds)
    return times


def report(times: Mapping[str, Sequence[float]]) -> list[Figure]:
    """Print the medians and the ratio; return the headline figure."""
    labels = {name: launch.label for name, launch in launches().items()}
    for name in CONTENDERS:
        print(f"  {labels[name]:<24} {spread(times[name])}")
    figures = []
    bare = median(times["bare"])
    for name, title in (("ours", "--demo"), ("four", "4 providers")):
        ratio = median(times[name]) / bare
        per_round = round_ratios(times[name], times["bare"])
        label = f"ratio {title} / bare"
        print(f"  {label:<24} {ratio:.2f}x  ({per_round}; goal <= {GOAL:.1f}x)")
        figures.append(
            Figure(
                f"first paint: {title} / bare app",
                ratio,
                "x",
                GOAL,
                f"{median(times[name]) * 1000:.0f} vs {bare * 1000:.0f} ms",
            )
        )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the start-up benchmark and print its report."""
    args = child_arguments(__doc__ or "", argv)
    runs = QUICK_RUNS if args.quick else RUNS
    heading(
        f"1. Start-up: launch to first painted frame, {COLUMNS}x{ROWS} pty, {runs} runs each "
        "(4 providers: moto, RunPod stand-in, this machine, 1 asyncssh host)"
    )
    write_figures(args.json, report(measure(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
