"""Resume commands and the clipboard sequence: pure functions, hostile paths included."""

from __future__ import annotations

import base64
import shlex
from datetime import UTC, datetime

import pytest

from runctl_tui.checkpoints.actions import (
    DEFAULT_RESUME_TEMPLATE,
    OSC52_MAX_BYTES,
    osc52,
    resume_command,
)
from runctl_tui.checkpoints.listing import Checkpoint, LocationKind

HOSTILE = [
    "/ckpt/a b.pt",
    "/ckpt/$(rm -rf ~).pt",
    "/ckpt/`id`;echo x.pt",
    "/ckpt/it's.pt",
    "/ckpt/line\nbreak.pt",
    "/ckpt/-rf.pt",
    "/ckpt/\x1b]52;c;AAAA\x07.pt",
]


def checkpoint(path: str, step: int | None = 500, epoch: float | None = 2.0) -> Checkpoint:
    return Checkpoint(
        name=path.rsplit("/", 1)[-1],
        path=path,
        kind=LocationKind.LOCAL,
        where="this machine",
        size=10,
        modified=datetime(2026, 1, 1, tzinfo=UTC),
        step=step,
        epoch=epoch,
        members=(path,),
    )


@pytest.mark.parametrize("path", HOSTILE)
def test_the_path_is_one_shell_word(path: str) -> None:
    command = resume_command(DEFAULT_RESUME_TEMPLATE, checkpoint(path))
    assert shlex.split(command) == ["python", "train.py", "--resume", path]


def test_step_epoch_and_name() -> None:
    made = resume_command(
        "torchrun t.py --ckpt {path} --step {step} --epoch {epoch} --tag {name}",
        checkpoint("/c/it's best.pt"),
    )
    assert shlex.split(made)[-6:] == ["--step", "500", "--epoch", "2", "--tag", "it's best.pt"]
    assert "--epoch 2.5" in resume_command("--epoch {epoch}", checkpoint("/c/x.pt", epoch=2.5))


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("python t.py {pth}", "unknown placeholder {pth}"),
        ("python t.py {path.__class__}", "unknown placeholder {path.__class__}"),
        ("python t.py {}", "unknown placeholder {}"),
        ("python t.py {0}", "unknown placeholder {0}"),
        ("python t.py {path", "resume template"),
        ("python t.py {step:q}", "resume template"),
    ],
)
def test_bad_templates_are_one_line_errors(template: str, said: str) -> None:
    with pytest.raises(ValueError, match="resume template") as caught:
        resume_command(template, checkpoint("/c/x.pt"))
    assert said in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_step_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"uses \{step\} but x.pt has no step"):
        resume_command("--step {step}", checkpoint("/c/x.pt", step=None))
    assert resume_command("{path}", checkpoint("/c/x.pt", step=None)) == "/c/x.pt"


def test_osc52_round_trips() -> None:
    text = "python train.py --resume '/c/ü x.pt'"
    sequence = osc52(text)
    assert sequence.startswith("\x1b]52;c;")
    assert sequence.endswith("\x07")
    payload = sequence.removeprefix("\x1b]52;c;").removesuffix("\x07")
    assert base64.b64decode(payload).decode() == text
    assert "\x1b" not in payload
    assert "\x07" not in payload


def test_osc52_refuses_too_much() -> None:
    osc52("x" * (OSC52_MAX_BYTES * 3 // 4))
    with pytest.raises(ValueError, match="too long to copy"):
        osc52("x" * OSC52_MAX_BYTES)
