"""Checkpoints written by hand: what the inspection reads from them is what was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runctl_tui.checkpoints.inspect import inspect_checkpoint
from runctl_tui.checkpoints.inspect_model import CheckpointFormat
from runctl_tui.checkpoints.listing_local import list_local
from runctl_tui.checkpoints.writer import (
    Model,
    model_tensors,
    write_checkpoint,
    write_hf_checkpoint,
    write_safetensors,
)

SMALL = Model(vocab=64, hidden=16, intermediate=44, layers=2, kv_hidden=8)


def expected_parameters(model: Model) -> int:
    total = 0
    for _, shape in model.tensors():
        numel = 1
        for size in shape:
            numel *= size
        total += numel
    return total


def test_a_pytorch_zip_checkpoint_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "model_0000040.pt"

    built = write_checkpoint(path, SMALL, epoch=2, global_step=40)
    inspection = inspect_checkpoint(path)

    assert inspection.error is None
    assert inspection.format is CheckpointFormat.PYTORCH
    assert inspection.safe
    assert built.size == path.stat().st_size
    assert inspection.parameter_count == expected_parameters(SMALL) == built.parameters
    shapes = {t.name: (t.dtype, t.shape) for t in inspection.tensors}
    assert shapes["model.model.embed_tokens.weight"] == ("bfloat16", (64, 16))
    assert shapes["model.lm_head.weight"] == ("bfloat16", (64, 16))
    scalars = {s.name: s.value for s in inspection.scalars}
    assert scalars["epoch"] == "2"
    assert scalars["global_step"] == "40"


def test_a_safetensors_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    tensors = [("a.weight", "F32", (3, 5)), ("b.bias", "BF16", (7,)), ("step", "I64", ())]

    size = write_safetensors(path, tensors, {"step": "20"})
    inspection = inspect_checkpoint(path)

    assert inspection.error is None
    assert size == path.stat().st_size
    assert inspection.metadata == {"step": "20"}
    assert [(t.name, t.dtype, t.shape) for t in inspection.tensors] == [
        ("a.weight", "float32", (3, 5)),
        ("b.bias", "bfloat16", (7,)),
        ("step", "int64", ()),
    ]
    assert inspection.parameter_count == 15 + 7 + 1


def test_a_hugging_face_directory_reads_back(tmp_path: Path) -> None:
    best = str(tmp_path / "checkpoint-20")
    folder = write_hf_checkpoint(
        tmp_path,
        SMALL,
        step=40,
        best_metric=0.42,
        best_model_checkpoint=best,
        log_history=[{"loss": 0.5, "step": 40.0}],
        epoch=0.08,
    )

    inspection = inspect_checkpoint(folder)

    assert folder == tmp_path / "checkpoint-40"
    assert not list(tmp_path.glob(".*partial"))
    assert inspection.error is None
    assert inspection.format is CheckpointFormat.HUGGINGFACE
    assert inspection.config["hidden_size"] == 16
    assert inspection.config["architectures"] == "LlamaForCausalLM"
    assert inspection.trainer_state is not None
    assert inspection.trainer_state.global_step == 40
    assert inspection.trainer_state.best_metric == 0.42
    assert inspection.trainer_state.best_model_checkpoint == best
    assert inspection.parameter_count == expected_parameters(SMALL)
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == 40
    assert len(model_tensors(SMALL)) == len(list(SMALL.tensors()))


def test_the_demo_run_fills_its_checkpoints_directory(tmp_path: Path) -> None:
    from runctl_tui import train_demo

    saver = train_demo.Saver(tmp_path / "checkpoints")
    assert (tmp_path / "checkpoints").is_dir()
    for n, loss in enumerate([2.0, 1.0, 1.5, 1.4, 1.3, 1.2, 1.1], start=1):
        saver.save(n * train_demo.CHECKPOINT_EVERY, loss)

    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert "checkpoint-40" in names  # the best (lowest loss) stays
    assert len([n for n in names if n.endswith(".pt")]) == train_demo.KEEP
    assert len([n for n in names if n.endswith(".safetensors")]) == train_demo.KEEP
    assert len([n for n in names if n.startswith("checkpoint-")]) == train_demo.KEEP + 1
    assert not [n for n in names if "partial" in n]
    listing = list_local(tmp_path / "checkpoints")
    assert listing.error is None
    assert listing.best is not None
    assert listing.best.basename() == "checkpoint-40"
    for name in ("model_0000140.pt", "model_0000140.safetensors", "checkpoint-140"):
        assert inspect_checkpoint(tmp_path / "checkpoints" / name).error is None
    assert sum(p.stat().st_size for p in (tmp_path / "checkpoints").rglob("*")) < 1_000_000


def test_the_demo_run_saves_into_checkpoints_and_on_sigint(tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "runctl_tui" / "train_demo.py"
    popen = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "train.log").exists():
            assert time.monotonic() < deadline, "the demo run did not start"
            time.sleep(0.02)
        time.sleep(0.3)
        popen.send_signal(signal.SIGINT)
        out, _ = popen.communicate(timeout=15)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    assert popen.returncode == 0
    assert b"saved model_" in out
    saved = sorted((tmp_path / "checkpoints").glob("model_*.pt"))
    assert len(saved) == 1
    assert inspect_checkpoint(saved[0]).error is None
