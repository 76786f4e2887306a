"""The local provider against real child processes: discovery, interrupt, kill, identity checks.

Every child starts in a session of its own (so it leads its process group, as a run started
from a terminal does) and is killed with its whole group on teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from runctl_tui.models import Action, GpuSpec, HostDetails, Instance, InstanceState, ProcessDetails
from runctl_tui.providers.base import NotFoundError, ProviderError
from runctl_tui.providers.local import HOST_ID, Escalation, LocalProvider, identity_key

pytestmark = pytest.mark.integration

STUB = Path(__file__).with_name("train_stub.py")
WAIT_SECONDS = 10.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def gone(pid: int) -> bool:
    """The pid no longer names a running process (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class Run:
    """A started ``train_stub.py``."""

    popen: subprocess.Popen[bytes]
    checkpoint: Path

    @property
    def pid(self) -> int:
        """The stub's pid."""
        return self.popen.pid

    def ready_pid(self, suffix: str = "") -> int:
        """Wait until the stub (or its worker, ``suffix=".worker"``) can take SIGINT; its pid."""
        ready = self.checkpoint.with_name(f"{self.checkpoint.name}{suffix}.ready")
        wait_for(ready.exists, f"{ready.name}")
        return int(ready.read_text())

    def saved(self, suffix: str = "") -> dict[str, float]:
        """The checkpoint the stub wrote on SIGINT."""
        path = self.checkpoint.with_name(self.checkpoint.name + suffix)
        data: dict[str, float] = json.loads(path.read_text())
        return data


class Children:
    """Starts child processes and kills each one's whole group when the test ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], **options: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` as the leader of a new session."""
        child: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **options,
        )
        self.started.append(child)
        return child

    def stub(self, *extra: str, name: str = "run") -> Run:
        """Start ``train_stub.py`` and wait until it has installed its SIGINT handler."""
        checkpoint = self.directory / f"{name}.ckpt"
        run = Run(self.start(self.stub_argv(checkpoint, *extra)), checkpoint)
        run.ready_pid()
        return run

    def stub_argv(self, checkpoint: Path, *extra: str) -> list[str]:
        """The command line that runs the stub."""
        return [sys.executable, str(STUB), "--checkpoint", str(checkpoint), *extra]

    def cleanup(self) -> None:
        """Kill every child's group and reap the child."""
        for child in self.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=WAIT_SECONDS)


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    """Child processes that cannot outlive the test."""
    started = Children(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()


@pytest.fixture
def provider() -> LocalProvider:
    """The provider with the default patterns, a short grace period and no nvidia-smi."""
    return LocalProvider(grace_seconds=0.5, nvidia_smi=None)


def row_of(
    provider: LocalProvider, pid: int, instances: Sequence[Instance] | None = None
) -> Instance:
    """The row of ``pid`` in ``instances``, or in a fresh listing."""
    for instance in provider.list_instances() if instances is None else instances:
        if isinstance(instance.details, ProcessDetails) and instance.details.pid == pid:
            return instance
    pytest.fail(f"pid {pid} is not listed")


def listed_pids(provider: LocalProvider) -> set[int]:
    """The pids of every listed training process."""
    pids = set()
    for instance in provider.list_instances():
        if isinstance(instance.details, ProcessDetails):
            pids.add(instance.details.pid)
    return pids


def test_lists_the_host_and_a_training_run(children: Children, provider: LocalProvider) -> None:
    run = children.stub()
    instances = provider.list_instances()
    host = instances[0]
    assert (host.provider, host.id, host.state) == ("local", HOST_ID, InstanceState.RUNNING)
    assert host.location == host.name == socket.gethostname()
    facts = host.details
    assert isinstance(facts, HostDetails)
    assert facts.hostname == socket.gethostname()
    assert facts.cpus == psutil.cpu_count()
    assert facts.memory_used_bytes is not None
    assert facts.memory_total_bytes is not None
    assert 0 < facts.memory_used_bytes <= facts.memory_total_bytes
    assert facts.gpu_note == "no nvidia-smi on this machine"
    assert (host.gpus, host.gpu_usage) == (None, ())
    assert provider.actions(host) == frozenset()

    row = row_of(provider, run.pid, instances)
    create_time = psutil.Process(run.pid).create_time()
    assert row.id == identity_key(run.pid, create_time)
    assert (row.provider, row.kind, row.state) == ("local", "process", "running")
    assert row.location == socket.gethostname()
    assert row.launched_at is not None
    assert row.launched_at.timestamp() == pytest.approx(create_time)
    assert provider.actions(row) == {Action.INTERRUPT, Action.KILL}
    assert provider.refusal(Action.INTERRUPT, row) is None
    process = row.details
    assert isinstance(process, ProcessDetails)
    assert (process.program, process.type_label) == ("train_stub.py", "train_stub.py")
    assert (process.pid, process.start_time, process.host) == (
        run.pid,
        create_time,
        socket.gethostname(),
    )
    assert process.group_size == 1
    assert process.own
    assert process.username == pwd.getpwuid(os.getuid()).pw_name
    assert process.pattern == "train*.py"
    assert process.cmdline[1:3] == (str(STUB), "--checkpoint")
    assert process.pgid == run.pid
    assert process.rss_bytes is not None
    assert process.rss_bytes > 0
    assert process.cpu_percent is None  # nothing to compare with on first sight
    assert process.gpu_memory_mib is None

    again = row_of(provider, run.pid).details
    assert isinstance(again, ProcessDetails)
    assert again.cpu_percent is not None


def test_processes_that_do_not_match_are_not_listed(
    children: Children, provider: LocalProvider
) -> None:
    # train_x.py is an argument here, not the script that runs: no substring match.
    mentions = children.start([sys.executable, "-c", "import time; time.sleep(30)", "train_x.py"])
    sleeper = children.start(["sleep", "30"])
    wait_for(lambda: psutil.Process(mentions.pid).cmdline()[-1:] == ["train_x.py"], "exec")
    assert not {mentions.pid, sleeper.pid} & listed_pids(provider)


def test_this_process_is_never_listed() -> None:
    everything = LocalProvider(patterns=["*"], nvidia_smi=None)
    pids = listed_pids(everything)
    assert pids
    assert os.getpid() not in pids


def test_interrupt_and_the_run_saves_a_checkpoint(
    children: Children, provider: LocalProvider
) -> None:
    run = children.stub()
    row = row_of(provider, run.pid)
    assert provider.losses(Action.INTERRUPT, row) == [
        f"SIGINT to process group {run.pid} (1 process): the run may save a checkpoint and exit",
        "SIGTERM after 0.5 s if it is still running",
    ]
    assert provider.perform(Action.INTERRUPT, row) is InstanceState.STOPPING
    assert run.popen.wait(timeout=WAIT_SECONDS) == 0
    assert run.saved()["step"] >= 1
    follow_up = provider.escalation(row.id)
    assert follow_up is not None
    assert follow_up.result(timeout=WAIT_SECONDS) is Escalation.EXITED
    assert run.pid not in listed_pids(provider)
    with pytest.raises(NotFoundError, match="has exited"):
        provider.describe(row)


def test_a_run_that_ignores_sigint_gets_sigterm_after_the_grace_period(
    children: Children, provider: LocalProvider
) -> None:
    run = children.stub("--ignore-sigint")
    row = row_of(provider, run.pid)
    assert provider.interrupt(row) is InstanceState.STOPPING
    assert run.popen.wait(timeout=WAIT_SECONDS) == -signal.SIGTERM
    follow_up = provider.escalation(row.id)
    assert follow_up is not None
    assert follow_up.result(timeout=WAIT_SECONDS) is Escalation.TERMINATED
    assert not run.checkpoint.exists()


def test_a_second_interrupt_while_one_is_pending_sends_nothing_more(children: Children) -> None:
    provider = LocalProvider(grace_seconds=30, nvidia_smi=None)
    run = children.stub("--ignore-sigint")
    row = row_of(provider, run.pid)
    assert provider.interrupt(row) is InstanceState.STOPPING
    first = provider.escalation(row.id)
    assert provider.interrupt(row) is InstanceState.STOPPING
    assert provider.escalation(row.id) is first
    assert row_of(provider, run.pid).state is InstanceState.STOPPING
    assert provider.kill(row) in {InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN}
    assert first is not None
    assert first.result(timeout=WAIT_SECONDS) is Escalation.EXITED


def test_kill_leaves_no_checkpoint(children: Children, provider: LocalProvider) -> None:
    run = children.stub()
    row = row_of(provider, run.pid)
    assert provider.losses(Action.KILL, row)[0].startswith(f"SIGKILL to process group {run.pid}")
    assert provider.perform(Action.KILL, row) in {
        InstanceState.TERMINATED,
        InstanceState.SHUTTING_DOWN,
    }
    assert run.popen.wait(timeout=WAIT_SECONDS) == -signal.SIGKILL
    assert not run.checkpoint.exists()
    assert provider.escalation(row.id) is None


def test_a_reused_pid_is_refused_and_nothing_is_signalled(
    children: Children, provider: LocalProvider
) -> None:
    run = children.stub()
    row = row_of(provider, run.pid)
    create_time = psutil.Process(run.pid).create_time()
    for wrong in (create_time - 3600, create_time + 0.01):
        forged = row.model_copy(update={"id": identity_key(run.pid, wrong)})
        for act in (provider.interrupt, provider.kill, provider.signal_scope, provider.describe):
            with pytest.raises(NotFoundError, match=f"pid {run.pid} now belongs to another"):
                act(forged)
        assert provider.escalation(forged.id) is None
    assert provider.escalation(row.id) is None
    # The stub exits within one step of a SIGINT and dies of SIGTERM or SIGKILL: still
    # running well after those steps means none of them arrived.
    time.sleep(0.3)
    assert run.popen.poll() is None
    assert not run.checkpoint.exists()
    # And the real identity is still honoured.
    provider.interrupt(row)
    assert run.popen.wait(timeout=WAIT_SECONDS) == 0


def test_a_worker_led_by_a_training_run_interrupts_the_whole_group(
    children: Children, provider: LocalProvider
) -> None:
    run = children.stub("--spawn-worker")
    worker = run.ready_pid(".worker")
    assert {run.pid, worker} <= listed_pids(provider)
    row = row_of(provider, worker)
    scope = provider.signal_scope(row)
    assert scope.pgid == run.pid
    assert {run.pid, worker} <= set(scope.members)

    provider.interrupt(row)
    assert run.popen.wait(timeout=WAIT_SECONDS) == 0
    assert run.saved()["step"] >= 1
    assert run.saved(".worker")["step"] >= 1
    wait_for(lambda: gone(worker), "the worker to exit")


def test_a_run_under_a_wrapper_is_interrupted_alone(
    children: Children, provider: LocalProvider, tmp_path: Path
) -> None:
    # The wrapper leads the group but is no training run; it dies of a SIGINT of its own.
    checkpoint = tmp_path / "wrapped.ckpt"
    launch = (
        "import subprocess, sys, time; "
        f"subprocess.Popen({children.stub_argv(checkpoint)!r}); time.sleep(30)"
    )
    wrapper = children.start([sys.executable, "-c", launch])
    run = Run(wrapper, checkpoint)
    stub = run.ready_pid()
    row = row_of(provider, stub)
    scope = provider.signal_scope(row)
    assert (scope.pgid, scope.members) == (None, (stub,))

    provider.interrupt(row)
    wait_for(checkpoint.exists, "the checkpoint")
    wait_for(lambda: gone(stub), "the stub to exit")
    time.sleep(0.3)
    assert wrapper.poll() is None, "the wrapper got the signal too"


@pytest.mark.skipif(os.geteuid() != 0, reason="starting another user's process needs root")
def test_another_users_process_is_listed_but_never_acted_on(children: Children) -> None:
    provider = LocalProvider(patterns=["sleep"], grace_seconds=0.5, nvidia_smi=None)
    theirs = children.start(["sleep", "30"], user="nobody")
    wait_for(lambda: psutil.Process(theirs.pid).uids().real != 0, "the user switch")
    wait_for(lambda: theirs.pid in listed_pids(provider), "the listing")
    row = row_of(provider, theirs.pid)
    process = row.details
    assert isinstance(process, ProcessDetails)
    assert (process.username, process.own) == ("nobody", False)
    assert provider.actions(row) == {Action.INTERRUPT, Action.KILL}
    for action in (Action.INTERRUPT, Action.KILL):
        assert provider.refusal(action, row) == (
            "belongs to nobody; only your own processes are acted on"
        )
    # Even when asked directly, past the refusal, nothing is sent.
    for act in (provider.interrupt, provider.kill):
        with pytest.raises(ProviderError, match="belongs to nobody; only your own processes"):
            act(row)
    assert provider.escalation(row.id) is None
    time.sleep(0.2)
    assert theirs.poll() is None


def test_the_host_row_is_never_acted_on(provider: LocalProvider) -> None:
    host = provider.list_instances()[0]
    assert provider.actions(host) == frozenset()
    for action in (Action.INTERRUPT, Action.KILL, Action.STOP):
        assert provider.refusal(action, host) is not None
        with pytest.raises(ProviderError):
            provider.perform(action, host)
    assert provider.describe(host).id == HOST_ID


def test_describe_reads_the_process_again(children: Children, provider: LocalProvider) -> None:
    run = children.stub()
    row = row_of(provider, run.pid)
    assert isinstance(row.details, ProcessDetails)
    assert row.details.cpu_percent is None
    fresh = provider.describe(row)
    assert (fresh.id, fresh.state, fresh.location) == (row.id, InstanceState.RUNNING, row.location)
    assert isinstance(fresh.details, ProcessDetails)
    # Measured since the poll: describe reads the process again, it does not repeat the poll.
    assert fresh.details.cpu_percent is not None
    assert fresh.details.group_size == 1


def fake_nvidia_smi(directory: Path, body: str) -> str:
    """An executable that stands in for ``nvidia-smi``."""
    path = directory / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_gpus_and_gpu_memory_come_from_nvidia_smi(children: Children, tmp_path: Path) -> None:
    run = children.stub()
    smi = fake_nvidia_smi(
        tmp_path,
        f"""case "$*" in
"--query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits")
  echo "0, NVIDIA A100-SXM4-80GB, 87, 40000, 81920"
  echo "1, NVIDIA A100-SXM4-80GB, [N/A], 10, 81920" ;;
"--query-compute-apps=pid,used_memory --format=csv,noheader,nounits")
  echo "{run.pid}, 1234"
  echo "{run.pid}, 100"
  echo "1, 5" ;;
*) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac""",
    )
    provider = LocalProvider(nvidia_smi=smi)
    host = provider.list_instances()[0]
    assert host.gpus == GpuSpec(count=2, model="NVIDIA A100-SXM4-80GB", memory_mib=81920)
    assert [g.utilization_percent for g in host.gpu_usage] == [87, None]
    assert [g.memory_used_mib for g in host.gpu_usage] == [40000, 10]
    assert isinstance(host.details, HostDetails)
    assert host.details.gpu_note is None
    process = row_of(provider, run.pid).details
    assert isinstance(process, ProcessDetails)
    assert process.gpu_memory_mib == 1334
    assert provider.poll_warnings() == ()


def test_a_missing_nvidia_smi_means_no_gpus_and_no_warning(tmp_path: Path) -> None:
    provider = LocalProvider(nvidia_smi=str(tmp_path / "absent" / "nvidia-smi"))
    assert provider.list_instances()[0].gpus is None
    assert provider.poll_warnings() == ()


def test_a_hanging_nvidia_smi_is_cut_off_and_not_asked_again_at_once(
    children: Children, tmp_path: Path
) -> None:
    children.stub()  # a training process, so the poll wants per-process GPU memory too
    calls = tmp_path / "calls"
    # Not exec'd: the sleep is a grandchild holding the pipe, which must be killed too.
    smi = fake_nvidia_smi(tmp_path, f"echo called >> {calls}; sleep 30; echo late")
    provider = LocalProvider(nvidia_smi=smi, nvidia_smi_timeout=0.3)
    began = time.monotonic()
    for _ in range(2):
        host = provider.list_instances()[0]
        assert host.gpus is None
        assert isinstance(host.details, HostDetails)
        assert host.details.gpu_note == "nvidia-smi did not answer within 0.3 s"
        assert provider.poll_warnings() == ("nvidia-smi did not answer within 0.3 s",)
    assert time.monotonic() - began < WAIT_SECONDS
    assert calls.read_text().splitlines() == ["called"]


def test_a_failing_nvidia_smi_is_a_warning(tmp_path: Path) -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    provider = LocalProvider(nvidia_smi=fake_nvidia_smi(tmp_path, f'echo "{message}"; exit 9'))
    assert provider.list_instances()[0].gpus is None
    assert provider.poll_warnings() == (f"nvidia-smi failed (exit 9): {message}",)
