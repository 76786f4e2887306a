"""A stand-in training run: logs a falling loss, and on SIGINT writes a checkpoint and exits 0.

Its name matches the default ``train*.py`` pattern. It writes ``CHECKPOINT.ready`` once its
signal handler is installed, so a test never interrupts it before it can save.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def main() -> int:
    """Train until interrupted."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--ignore-sigint", action="store_true", help="only SIGTERM ends it")
    parser.add_argument(
        "--spawn-worker", action="store_true", help="start a worker in the same process group"
    )
    parser.add_argument("--step-seconds", type=float, default=0.05)
    args = parser.parse_args()

    interrupted = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, signal.SIG_IGN if args.ignore_sigint else interrupt)
    worker = None
    if args.spawn_worker:
        checkpoint = args.checkpoint.with_name(args.checkpoint.name + ".worker")
        worker = subprocess.Popen([sys.executable, __file__, "--checkpoint", str(checkpoint)])
    write_atomically(args.checkpoint.with_name(args.checkpoint.name + ".ready"), str(os.getpid()))

    step = 0
    loss = 0.0
    while not interrupted:
        step += 1
        loss = 2.5 * math.exp(-step / 200) + 0.1
        print(f"step {step} loss {loss:.4f}", flush=True)
        time.sleep(args.step_seconds)
    write_atomically(args.checkpoint, json.dumps({"step": step, "loss": loss}))
    print(f"checkpoint written at step {step}", flush=True)
    if worker is not None:
        worker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
