"""The demo's training run: logs a falling loss, writes checkpoints, saves one more on SIGINT.

``runctl-tui --demo`` starts it in a session of its own so that `s` on its row shows the real
interrupt path: SIGINT to the process group, a checkpoint written, a clean exit.

Every :data:`CHECKPOINT_EVERY` steps it saves into ``DIR/checkpoints/`` what real runs save: a
PyTorch zip-format ``model_NNNNNNN.pt``, a ``model_NNNNNNN.safetensors`` and a Hugging Face
style ``checkpoint-N/`` directory whose ``trainer_state.json`` names the best one so far.
They hold a tiny model (KBs), and only the newest :data:`KEEP` of each kind stay, plus the best.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

try:
    from runctl_tui.checkpoints import writer
except ImportError:  # pragma: no cover - run as a bare script from a source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from runctl_tui.checkpoints import writer

CHECKPOINT_EVERY = 20
"""Steps between checkpoints."""
WARN_EVERY = 37
"""Steps between the occasional warning a real run logs (a loss-scale overflow)."""
KEEP = 5
"""How many checkpoints of each kind stay (the best one stays too)."""
STEPS_PER_EPOCH = 500
MODEL = writer.Model(vocab=64, hidden=16, intermediate=44, layers=2, kv_hidden=8)
"""A Llama-shaped model small enough that a checkpoint is a few KB."""


class Saver:
    """Writes the run's checkpoints into one directory and remembers the best."""

    def __init__(self, directory: Path) -> None:
        """``directory`` is made now, so that it is there to be found from the first step."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.best: tuple[float, str] | None = None
        self.history: list[dict[str, float]] = []

    def save(self, step: int, loss: float) -> Path:
        """Write the checkpoints for ``step``, each atomically (a reader never sees half of
        one); returns the ``.pt`` file's path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        epoch = step // STEPS_PER_EPOCH
        path = self.directory / f"model_{step:07d}.pt"
        partial = self.directory / f".{path.name}.partial"
        writer.write_checkpoint(partial, MODEL, epoch=epoch, global_step=step)
        os.replace(partial, path)
        tensors = self.directory / f"model_{step:07d}.safetensors"
        partial = self.directory / f".{tensors.name}.partial"
        metadata = {"format": "pt", "step": str(step), "loss": f"{loss:.4f}"}
        writer.write_safetensors(partial, writer.model_tensors(MODEL), metadata)
        os.replace(partial, tensors)
        folder = self.directory / f"checkpoint-{step}"
        if self.best is None or loss < self.best[0]:
            self.best = (loss, str(folder))
        self.history.append({"loss": round(loss, 4), "step": float(step)})
        writer.write_hf_checkpoint(
            self.directory,
            MODEL,
            step=step,
            best_metric=round(self.best[0], 4),
            best_model_checkpoint=self.best[1],
            log_history=self.history[-20:],
            epoch=step / STEPS_PER_EPOCH,
        )
        self.prune()
        return path

    def prune(self) -> None:
        """Keep the newest :data:`KEEP` of each kind, and the best directory."""
        best = self.best[1] if self.best is not None else None
        for pattern in ("model_*.pt", "model_*.safetensors", "checkpoint-*"):
            found = sorted(self.directory.glob(pattern), key=lambda p: _step_of(p.name))
            for old in found[:-KEEP]:
                if str(old) == best:
                    continue
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)


def _step_of(name: str) -> int:
    digits = "".join(char for char in name.rsplit("-", 1)[-1].rsplit("_", 1)[-1] if char.isdigit())
    return int(digits) if digits else 0


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
    saver = Saver(directory / "checkpoints")
    step = 0
    loss = 0.0

    def interrupted(signum: int, frame: FrameType | None) -> None:
        path = saver.save(step, loss)
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
                path = saver.save(step, loss)
                log.write(f"step {step}: saved checkpoint checkpoints/{path.name}\n")
                log.flush()
            time.sleep(0.5)
            if args.parent is not None and os.getppid() != args.parent:
                # The dashboard that started the demo is gone: so is the demo.
                return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
