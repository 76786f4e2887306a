"""The local provider's pure parts: nvidia-smi parsing, command matching, identity keys."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from runctl_tui.models import (
    Action,
    GpuSpec,
    HostDetails,
    Instance,
    InstanceState,
    ProcessDetails,
)
from runctl_tui.models import GpuUsage as ModelGpuUsage
from runctl_tui.providers.base import NamesLosses, Provider, ReportsWarnings
from runctl_tui.providers.local import (
    DEFAULT_PATTERNS,
    GpuUsage,
    LocalProvider,
    gpu_spec,
    identity_key,
    match_command,
    parse_compute_apps,
    parse_identity,
    parse_nvidia_smi,
    program_name,
)

A100 = "NVIDIA A100-SXM4-80GB"


def test_parses_nvidia_smi_gpu_lines() -> None:
    text = f"0, {A100}, 87, 40000, 81920\n1, {A100}, 0, 3, 81920\n"
    assert parse_nvidia_smi(text) == [
        GpuUsage(
            index=0,
            name=A100,
            utilization_percent=87,
            memory_used_mib=40000,
            memory_total_mib=81920,
        ),
        GpuUsage(
            index=1, name=A100, utilization_percent=0, memory_used_mib=3, memory_total_mib=81920
        ),
    ]


@pytest.mark.parametrize(
    "field", ["[N/A]", "[Not Supported]", "N/A", "[Unknown Error]", "", "-5", "nan", "inf"]
)
def test_values_the_driver_does_not_know_are_none(field: str) -> None:
    (gpu,) = parse_nvidia_smi(f"0, Tesla T4, {field}, {field}, 15360")
    assert (gpu.utilization_percent, gpu.memory_used_mib, gpu.memory_total_mib) == (
        None,
        None,
        15360,
    )


def test_garbage_lines_are_skipped() -> None:
    text = "\n".join(
        [
            "",
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
            "index, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB]",
            "No devices were found",
            "0, Tesla T4, 5, 100",
            "x, Tesla T4, 5, 100, 15360",
            "3, , 5, 100, 15360",
            "\x1b[31m2, Tesla T4, 5, 100, 15360",
            "², Tesla T4, 5, 100, 15360",
            "  2 ,  Tesla T4 ,  5 ,  100 ,  15360  \r",
        ]
    )
    assert parse_nvidia_smi(text) == [
        GpuUsage(
            index=2,
            name="Tesla T4",
            utilization_percent=5,
            memory_used_mib=100,
            memory_total_mib=15360,
        )
    ]


def test_a_comma_in_the_name_keeps_the_numbers_in_place() -> None:
    (gpu,) = parse_nvidia_smi("0, Odd, Name, 7, 2.4, 3")
    assert (gpu.name, gpu.utilization_percent, gpu.memory_used_mib) == ("Odd, Name", 7, 2)
    assert gpu.memory_total_mib == 3


def test_parses_compute_apps_summing_a_process_on_several_gpus() -> None:
    text = "123, 1000\n123, 24\n456, [N/A]\n789, 5\nbad line\n, 5\n999\n², 5\n"
    assert parse_compute_apps(text) == {123: 1024, 789: 5}


def test_no_gpus_is_no_spec() -> None:
    assert gpu_spec([]) is None


def test_same_gpus_make_one_spec_and_mixed_ones_join_their_models() -> None:
    t4 = GpuUsage(index=0, name="Tesla T4", memory_total_mib=15360)
    a100 = GpuUsage(index=1, name=A100, memory_total_mib=81920)
    assert gpu_spec([t4, t4]) == GpuSpec(count=2, model="Tesla T4", memory_mib=15360)
    assert gpu_spec([t4, a100]) == GpuSpec(count=2, model=f"Tesla T4 + {A100}", memory_mib=None)


@pytest.mark.parametrize(
    ("cmdline", "pattern", "program"),
    [
        (["python", "train.py"], "train*.py", "train.py"),
        (["/usr/bin/python3.11", "-u", "/src/train_gpt.py", "--lr", "3e-4"], "train*.py", None),
        (["python3", "-X", "dev", "-W", "ignore", "train.py"], "train*.py", "train.py"),
        (["./train_ddp.py", "--epochs", "3"], "train*.py", "train_ddp.py"),
        (["torchrun", "--nproc-per-node", "8", "x.py"], "torchrun", "torchrun"),
        (["/venv/bin/python", "/venv/bin/torchrun", "x.py"], "torchrun", "torchrun"),
        (["/venv/bin/python", "/venv/bin/accelerate", "launch", "x.py"], "accelerate launch", None),
        (["accelerate", "launch", "--multi_gpu", "x.py"], "accelerate launch", "accelerate"),
        (["deepspeed", "--num_gpus", "2", "x.py"], "deepspeed", "deepspeed"),
        (["python", "-m", "mypkg.train", "--cfg", "a.yaml"], "python -m *.train", "mypkg.train"),
        (["python3.12", "-um", "mypkg.train"], "python -m *.train", "mypkg.train"),
        (["python", "-mmypkg.train"], "python -m *.train", "mypkg.train"),
    ],
)
def test_training_commands_match(cmdline: list[str], pattern: str, program: str | None) -> None:
    assert match_command(cmdline, DEFAULT_PATTERNS) == pattern
    if program is not None:
        assert program_name(cmdline) == program


@pytest.mark.parametrize(
    "cmdline",
    [
        [],
        ["bash"],
        ["vim", "train.py"],
        ["tail", "-f", "train.py"],
        ["python", "-c", "import time", "train.py"],
        ["python", "helper.py", "train.py"],
        ["python", "retrain.py"],
        ["python", "train.pyc"],
        ["python", "-m", "train"],
        ["python", "-m", "mypkg.train_utils"],
        ["accelerate", "config"],
        ["/opt/torchrun-docs/index.html"],
        ["grep", "torchrun", "notes.txt"],
        ["python"],
    ],
)
def test_other_commands_do_not_match(cmdline: list[str]) -> None:
    assert match_command(cmdline, DEFAULT_PATTERNS) is None


def test_a_pattern_with_a_slash_matches_the_whole_path() -> None:
    patterns = ["*/experiments/*.py"]
    assert match_command(["python", "/home/me/experiments/run.py"], patterns) == patterns[0]
    assert match_command(["python", "/home/me/scratch/run.py"], patterns) is None


def test_program_names() -> None:
    assert program_name(["python", "-c", "pass"]) == "python -c"
    assert program_name(["/usr/bin/python3"]) == "python"
    assert program_name([]) == ""


def test_identity_keys_round_trip() -> None:
    key = identity_key(4242, 1718000000.25)
    assert key == "4242@1718000000.25"
    assert parse_identity(key) == (4242, 1718000000.25)


@pytest.mark.parametrize(
    "text",
    ["host", "4242", "@1.5", "abc@1.5", "0@1.5", "-3@1.5", "4242@", "4242@nan", "4242@inf",
     "4242@ 1.5", "4242@1.50", "04242@1.5"],
)  # fmt: skip
def test_other_ids_are_not_identities(text: str) -> None:
    with pytest.raises(ValueError, match="not a local process id"):
        parse_identity(text)


def test_the_provider_follows_the_protocol() -> None:
    provider = LocalProvider(nvidia_smi=None)
    assert isinstance(provider, Provider)
    assert isinstance(provider, ReportsWarnings)
    assert isinstance(provider, NamesLosses)
    assert provider.name == "local"
    assert provider.grace_seconds == 30


def process_row(**details: Any) -> Instance:
    """A training-run row as a poll would build it."""
    fields: dict[str, Any] = {
        "pid": 4242,
        "start_time": 1718000000.25,
        "host": "box",
        "username": "me",
        "own": True,
        "cmdline": ("python", "train.py"),
        "program": "train.py",
        "pattern": "train*.py",
        **details,
    }
    return Instance(
        provider="local",
        id=identity_key(4242, 1718000000.25),
        location="box",
        state=InstanceState.STOPPED if fields.get("stopped") else InstanceState.RUNNING,
        details=ProcessDetails(**fields),
    )


def test_a_run_takes_interrupt_and_kill_and_the_host_nothing() -> None:
    provider = LocalProvider(nvidia_smi=None)
    host = Instance(
        provider="local",
        id="host",
        location="box",
        state=InstanceState.RUNNING,
        details=HostDetails(hostname="box"),
    )
    run = process_row()

    assert provider.actions(host) == frozenset()
    assert provider.actions(run) == {Action.INTERRUPT, Action.KILL}
    assert provider.refusal(Action.INTERRUPT, run) is None
    assert provider.refusal(Action.KILL, run) is None
    assert provider.refusal(Action.STOP, run) == "stop is not something local does to this item"
    assert provider.refusal(Action.KILL, host) == "kill is not something local does to this item"
    assert provider.losses(Action.START, run) == []


def test_another_users_run_is_offered_but_refused() -> None:
    provider = LocalProvider(nvidia_smi=None)
    theirs = process_row(username="alice", own=False)

    assert provider.actions(theirs) == {Action.INTERRUPT, Action.KILL}
    for action in (Action.INTERRUPT, Action.KILL):
        assert provider.refusal(action, theirs) == (
            "belongs to alice; only your own processes are acted on"
        )


def test_a_suspended_run_can_be_killed_but_not_interrupted() -> None:
    provider = LocalProvider(nvidia_smi=None)
    suspended = process_row(stopped=True)

    reason = provider.refusal(Action.INTERRUPT, suspended)
    assert reason is not None
    assert reason.startswith("suspended (e.g. Ctrl-Z): resume it first")
    assert provider.refusal(Action.KILL, suspended) is None


def test_gpu_usage_is_the_models_own() -> None:
    assert GpuUsage is ModelGpuUsage


@pytest.mark.parametrize(
    "options", [{"patterns": []}, {"patterns": ["  "]}, {"grace_seconds": -1.0}]
)
def test_bad_settings_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        LocalProvider(**options)  # type: ignore[arg-type]


def test_models_are_frozen() -> None:
    gpu = GpuUsage(index=0, name="Tesla T4")
    with pytest.raises(ValidationError):
        gpu.index = 1  # type: ignore[misc]


def test_importing_the_module_does_not_import_psutil() -> None:
    code = "import sys, runctl_tui.providers.local; print('psutil' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
