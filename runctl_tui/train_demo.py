"""The demo's training run: logs a falling loss, writes checkpoints, saves one more on SIGINT.

``runctl-tui --demo`` starts it in a session of its own so that `s` on its row shows the real
interrupt path: SIGINT to the process group, a checkpoint written, a clean exit.
"""

from __future__ import annotations

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


def save(directory: Path, step: int) -> Path:
    """Write the checkpoint for ``step`` atomically (a reader never sees half of it)."""
    path = directory / f"step-{step:06d}.ckpt"
    partial = path.with_suffix(".partial")
    partial.write_text(f"step={step}\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def main(argv: list[str]) -> int:
    """Train ``forever`` (until interrupted), logging to ``DIR/train.log``."""
    directory = Path(argv[1] if len(argv) > 1 else ".").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    step = 0

    def interrupted(signum: int, frame: FrameType | None) -> None:
        path = save(directory, step)
        print(f"interrupted at step {step}: saved {path.name}", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, interrupted)
    noise = random.Random(7)
    with (directory / "train.log").open("a", encoding="utf-8") as log:
        while True:
            step += 1
            loss = 2.6 * math.exp(-step / 400) + 0.35 + noise.uniform(-0.03, 0.03)
            log.write(
                f"{{'loss': {loss:.4f}, 'learning_rate': 3e-05, 'epoch': {step / 500:.2f}}}\n"
            )
            log.flush()
            if step % CHECKPOINT_EVERY == 0:
                save(directory, step)
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
