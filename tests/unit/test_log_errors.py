"""Failures found in training log lines as frameworks print them, and a log that stalls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.logs.errors import ErrorKind, StallDetector, classify


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("Traceback (most recent call last):", ErrorKind.TRACEBACK),
        ("[rank0]: Traceback (most recent call last):", ErrorKind.TRACEBACK),
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
            "total capacity of 79.15 GiB of which 1.06 GiB is free.",
            ErrorKind.CUDA_OOM,
        ),
        (
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 512.00 MiB",
            ErrorKind.CUDA_OOM,
        ),
        (
            "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling "
            "`cublasCreate(handle)`",
            ErrorKind.CUDA_OOM,
        ),
        (
            "{'loss': nan, 'grad_norm': nan, 'learning_rate': 1e-05, 'epoch': 1.2}",
            ErrorKind.NAN_LOSS,
        ),
        ("step 300 | loss inf | lr 3e-4", ErrorKind.NAN_LOSS),
        ("loss: nan", ErrorKind.NAN_LOSS),
        ("Loss is nan, stopping training", ErrorKind.NAN_LOSS),
        (
            "Epoch 0: 100%|██████████| 10/10 [00:01<00:00,  9.80it/s, loss=nan, v_num=1]",
            ErrorKind.NAN_LOSS,
        ),
        ("Monitored metric val_loss = nan is not finite.", ErrorKind.NAN_LOSS),
        (
            "gpu-node-1:2210:2298 [0] NCCL WARN Call to connect returned Connection refused, "
            "retrying",
            ErrorKind.NCCL,
        ),
        (
            "[rank1]:[E ProcessGroupNCCL.cpp:616] [Rank 1] Watchdog caught collective operation "
            "timeout: WorkNCCL(SeqNum=12, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, "
            "Timeout(ms)=600000) ran for 600012 milliseconds before timing out.",
            ErrorKind.NCCL,
        ),
        (
            "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
            "NCCLUtils.hpp:275, unhandled system error",
            ErrorKind.NCCL,
        ),
        ("Killed", ErrorKind.KILLED),
        (
            "/home/ubuntu/run.sh: line 3: 12345 Killed                  python train.py",
            ErrorKind.KILLED,
        ),
        (
            "[ 8123.456789] Out of memory: Killed process 4321 (python) total-vm:98765432kB",
            ErrorKind.KILLED,
        ),
        ("  exitcode  : -9 (pid: 23801)", ErrorKind.KILLED),
        ("Segmentation fault (core dumped)", ErrorKind.SEGFAULT),
        ("Fatal Python error: Segmentation fault", ErrorKind.SEGFAULT),
        ("ERROR: Unexpected segmentation fault encountered in worker.", ErrorKind.SEGFAULT),
        (
            "RuntimeError: DataLoader worker (pid 4242) is killed by signal: SIGSEGV",
            ErrorKind.SEGFAULT,
        ),
        ("Process finished with exit code 1", ErrorKind.EXIT),
        ("train.py exited with code 2", ErrorKind.EXIT),
        (
            "subprocess.CalledProcessError: Command '['python', 'prep.py']' returned non-zero "
            "exit status 1.",
            ErrorKind.EXIT,
        ),
        ("torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", ErrorKind.EXIT),
        (
            "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1) "
            "local_rank: 0 (pid: 2123) of binary: /usr/bin/python3",
            ErrorKind.EXIT,
        ),
    ],
)
def test_failures_are_found(line: str, kind: ErrorKind) -> None:
    assert classify(line) is kind


@pytest.mark.parametrize(
    "line",
    [
        "eval_error_rate=0.1",
        "{'eval_loss': 0.31, 'eval_error_rate': 0.08, 'epoch': 2.0}",
        "errors: 0",
        "error_count=0 warnings=3",
        "gpu-node-1:2210:2298 [0] NCCL INFO Channel 00/02 :    0   1",
        "{'loss': 0.41, 'grad_norm': inf, 'learning_rate': 2e-05, 'epoch': 0.3}",
        "Process finished with exit code 0",
        "INFO starting inference on 3 files",
        "Using the latest cached version of the module, info: ok",
        "Saving checkpoint to /workspace/out/checkpoint-500",
        "torch.cuda.memory_allocated: 12.3 GiB",
        "",
    ],
)
def test_ordinary_lines_are_not_failures(line: str) -> None:
    assert classify(line) is None


def test_every_kind_has_a_short_label() -> None:
    labels = {kind: kind.label for kind in ErrorKind}
    assert labels[ErrorKind.CUDA_OOM] == "CUDA OOM"
    assert all(0 < len(label) <= 10 for label in labels.values())
    assert len(set(labels.values())) == len(labels)


def test_huge_line_is_cheap_and_safe() -> None:
    assert classify("x" * 10_000_000) is None
    assert classify("Traceback (most recent call last):" + "x" * 10_000_000) is ErrorKind.TRACEBACK


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_line_raises(line: str) -> None:
    result = classify(line)
    assert result is None or isinstance(result, ErrorKind)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["error", "errors", "error_rate", "eval_error", "Error"]),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_metric_named_error_is_not_a_failure(name: str, value: float) -> None:
    assert classify(f"step=10 {name}={value}") is None


def test_stall_is_reported_once_and_cleared_by_growth() -> None:
    now = [0.0]
    stall = StallDetector(30.0, clock=lambda: now[0])
    now[0] = 29.0
    assert not stall.stalled()
    assert not stall.check()
    now[0] = 30.0
    assert stall.stalled()
    assert stall.check()
    assert not stall.check()
    assert stall.idle_for() == 30.0
    stall.grew()
    assert not stall.stalled()
    assert stall.idle_for(now=45.0) == 15.0
    assert stall.check(now=60.0)


def test_stall_uses_explicit_times() -> None:
    stall = StallDetector(5.0, clock=lambda: 100.0)
    stall.grew(now=200.0)
    assert stall.idle_for() == 0.0
    assert stall.stalled(now=205.0)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_stall_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="stall timeout"):
        StallDetector(timeout)
