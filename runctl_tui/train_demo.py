"""The demo's training run: logs a falling loss, writes checkpoints, saves one more on SIGINT.

``runctl-tui --demo`` starts it in a session of its own so that `s` on its row shows the real
interrupt path: SIGINT to the process group, a checkpoint written, a clean exit.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from types import FrameType

CHECKPOINT_EVERY = 20
"""Steps between checkpoints."""
WARN_EVERY = 37
"""Steps between the occasional warning a real run logs (a loss-scale overflow)."""


def save(directory: Path, step: int) -> Path:
    """Write the checkpoint for ``step`` atomically (a reader never sees half of it)."""
    path = directory / f"step-{step:06d}.ckpt"
    partial = path.with_suffix(".partial")
    partial.write_text(f"step={step}\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def main(argv: list[str]) -> int:
    """Train until interrupted (or until ``--parent PID`` is gone), logging to ``DIR/train.log``.

    ``DIR [--seed N] [--parent PID]``.
    """
    parser = argparse.ArgumentParser(prog="train_demo.py")
    parser.add_argument("directory", nargs="?", default=".")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv[1:])
    directory = Path(args.directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    step = 0

    def interrupted(signum: int, frame: FrameType | None) -> None:
        path = save(directory, step)
        print(f"interrupted at step {step}: saved {path.name}", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, interrupted)
    noise = random.Random(args.seed)
    with (directory / "train.log").open("a", encoding="utf-8") as log:
        while True:
            step += 1
            loss = 2.6 * math.exp(-step / 400) + 0.35 + noise.uniform(-0.03, 0.03)
            log.write(
                f"{{'loss': {loss:.4f}, 'grad_norm': {1.5 * loss:.3f}, "
                f"'learning_rate': 3e-05, 'epoch': {step / 500:.2f}}}\n"
            )
            if step % WARN_EVERY == 0:
                log.write(
                    f"[rank0]: UserWarning: step {step}: gradient overflow, "
                    "skipping update and lowering the loss scale\n"
                )
            log.flush()
            if step % CHECKPOINT_EVERY == 0:
                path = save(directory, step)
                log.write(f"step {step}: saved checkpoint {path.name}\n")
                log.flush()
            time.sleep(0.5)
            if args.parent is not None and os.getppid() != args.parent:
                # The dashboard that started the demo is gone: so is the demo.
                return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
