"""Training runs on SSH hosts: listed, interrupted and killed over the hub, identity checked.

Each test runs against asyncssh's server (running commands with ``sh``) and against a real
OpenSSH sshd, both on 127.0.0.1; the "remote" runs are real child processes of this test,
each in a session of its own, killed with their whole group on teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.models import Action, HostDetails, Instance, InstanceState, Outcome, ProcessDetails
from runctl_tui.providers.base import NotFoundError, ProviderError
from runctl_tui.providers.ssh_hosts import SshHost, SshHostsProvider, process_id
from runctl_tui.remote.ssh import SshHub, parse_target
from runctl_tui.services.fleet import Fleet
from tests.integration.ssh_servers import (
    ClientKey,
    ShellServer,
    Sshd,
    add_known_host,
    write_host_key,
)

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

LABEL = "lab-box"
WAIT_SECONDS = 15.0

TRAIN_SCRIPT = """\
import os, signal, sys, time
from pathlib import Path

checkpoint = Path(sys.argv[1])
def save(signum, frame):
    checkpoint.write_text("saved")
    sys.exit(0)
signal.signal(signal.SIGINT, signal.SIG_IGN if "--ignore-sigint" in sys.argv else save)
if "--spawn-worker" in sys.argv:
    import subprocess
    subprocess.Popen([sys.executable, sys.argv[0], str(checkpoint) + ".worker"])
Path(str(checkpoint) + ".partial").write_text(str(os.getpid()))
os.replace(str(checkpoint) + ".partial", str(checkpoint) + ".ready")
while True:
    time.sleep(0.05)
"""
"""A training-like run: saves a checkpoint on SIGINT and exits (unless told to ignore it); with
``--spawn-worker`` it starts a second one in its process group, as a launcher starts ranks."""


@pytest.fixture
async def shell_server(ssh_client_key: ClientKey, tmp_path: Path) -> AsyncIterator[ShellServer]:
    """A :class:`ShellServer` on 127.0.0.1, trusting the test user's key."""
    server = ShellServer(write_host_key(tmp_path / "shell_host_key"), ssh_client_key.public_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(params=["asyncssh", "sshd"])
def lab(request: pytest.FixtureRequest, isolated_environment: Path) -> SshHost:
    """This machine as a configured SSH host, served by asyncssh or by a real sshd."""
    server: ShellServer | Sshd = request.getfixturevalue(
        "shell_server" if request.param == "asyncssh" else "real_sshd"
    )
    add_known_host(isolated_environment, server.port, server.host_key)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{server.port}")
    return SshHost(target, LABEL, Decimal("1.25"))


@pytest.fixture
def provider(lab: SshHost, ssh_hub: SshHub) -> SshHostsProvider:
    """The SSH provider over the one lab host, with a short grace period."""
    return SshHostsProvider([lab], ssh_hub, patterns=["train*.py"], grace_seconds=1.0)


@dataclass
class Run:
    """A started training-like run."""

    popen: subprocess.Popen[bytes]
    checkpoint: Path

    @property
    def pid(self) -> int:
        """The run's pid."""
        return self.popen.pid


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` on the loop until it holds; fail after :data:`WAIT_SECONDS`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    """Start ``train_x.py`` runs (extra arguments passed on); all killed with their group after."""
    script = tmp_path / "train_x.py"
    script.write_text(TRAIN_SCRIPT)
    started: list[Run] = []

    def start(*args: str) -> Run:
        checkpoint = tmp_path / f"run{len(started)}.ckpt"
        popen = subprocess.Popen(
            [sys.executable, str(script), str(checkpoint), *args],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        run = Run(popen, checkpoint)
        started.append(run)
        return run

    yield start
    for run in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.popen.wait(timeout=5)


def text_of(path: Path) -> str:
    """What a run wrote to ``path`` (small, local: reading it does not stall the loop)."""
    return path.read_text()


async def ready(run: Run) -> None:
    """Wait until the run's SIGINT handler is installed."""
    ready_file = Path(f"{run.checkpoint}.ready")
    await wait_for(ready_file.exists, f"{ready_file.name}")


async def row_of(provider: SshHostsProvider, run: Run) -> Instance:
    """The run's row in a fresh poll."""
    rows = await provider.list_instances()
    mine = [
        row
        for row in rows
        if isinstance(row.details, ProcessDetails) and row.details.pid == run.pid
    ]
    assert len(mine) == 1, [row.id for row in rows]
    return mine[0]


async def test_a_run_is_listed_after_its_host(
    provider: SshHostsProvider, start_run: Callable[..., Run]
) -> None:
    hostile = "evil\nP 1 0 S 0 1 0 0 1 0\t\x1b[31m"
    run = start_run("--note", hostile)
    await ready(run)

    rows = await provider.list_instances()
    row = await row_of(provider, run)

    host = rows[0]
    assert (host.id, host.location, host.hourly_usd) == (LABEL, LABEL, Decimal("1.25"))
    assert isinstance(host.details, HostDetails)
    assert host.details.ssh_target is not None
    assert host.details.ssh_target.endswith(f"@127.0.0.1:{provider.hosts[0].target.port}")
    assert (host.details.cpus or 0) >= 1
    assert provider.actions(host) == frozenset()
    details = row.details
    assert isinstance(details, ProcessDetails)
    assert row.id == process_id(LABEL, run.pid, int(details.start_time))
    assert (row.location, row.state, row.hourly_usd) == (LABEL, InstanceState.RUNNING, Decimal(0))
    assert row.rate_source == f"counted on {LABEL}'s row"
    script = str(run.popen.args[1])  # type: ignore[index]
    assert details.cmdline[1:] == (script, str(run.checkpoint), "--note", hostile)
    assert (details.program, details.pattern, details.host) == ("train_x.py", "train*.py", LABEL)
    assert (details.own, details.username) == (True, getpass.getuser())
    assert (details.pgid, details.group_size) == (run.pid, 1)
    assert details.rss_bytes is not None
    assert details.rss_bytes > 1_000_000
    assert details.cpu_percent is not None  # the first list_instances took the first sample
    assert row.launched_at is not None
    assert provider.actions(row) == frozenset({Action.INTERRUPT, Action.KILL})
    assert provider.refusal(Action.KILL, row) is None
    assert provider.losses(Action.INTERRUPT, row) == [
        f"SIGINT to process group {run.pid} (1 process) on {LABEL}: "
        "the run may save a checkpoint and exit",
        "SIGTERM after 1 s if it is still running "
        "(scheduled on the host: it happens even if this program quits)",
    ]


async def test_interrupt_lets_the_run_save_and_exit(
    provider: SshHostsProvider, start_run: Callable[..., Run]
) -> None:
    run = start_run()
    await ready(run)
    row = await row_of(provider, run)

    assert await provider.perform(Action.INTERRUPT, row) is InstanceState.STOPPING

    await wait_for(lambda: run.popen.poll() is not None, "the run to exit")
    assert run.popen.returncode == 0
    assert run.checkpoint.read_text() == "saved"
    rows = await provider.list_instances()
    assert row.id not in {r.id for r in rows}
    with pytest.raises(NotFoundError, match=f"{LABEL}: pid {run.pid} has exited"):
        await provider.describe(row)


async def test_sigterm_follows_after_the_grace_period_even_once_closed(
    provider: SshHostsProvider, start_run: Callable[..., Run]
) -> None:
    run = start_run("--ignore-sigint")
    await ready(run)
    row = await row_of(provider, run)

    assert await provider.perform(Action.INTERRUPT, row) is InstanceState.STOPPING
    again = await row_of(provider, run)
    assert again.state is InstanceState.STOPPING
    # A second interrupt while the first one's follow-up is due sends nothing more.
    assert await provider.perform(Action.INTERRUPT, again) is InstanceState.STOPPING
    await provider.close()
    assert run.popen.poll() is None

    await wait_for(lambda: run.popen.poll() is not None, "SIGTERM after the grace period")
    assert run.popen.returncode == -signal.SIGTERM
    assert not run.checkpoint.exists()


async def test_kill_ends_the_run_at_once(
    provider: SshHostsProvider, start_run: Callable[..., Run]
) -> None:
    run, other = start_run(), start_run()
    await ready(run)
    await ready(other)
    row = await row_of(provider, run)

    state = await provider.perform(Action.KILL, row)

    assert state in {InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN}
    await wait_for(lambda: run.popen.poll() is not None, "the run to die")
    assert run.popen.returncode == -signal.SIGKILL
    assert not run.checkpoint.exists()
    assert other.popen.poll() is None
    assert provider.losses(Action.KILL, row)[0].startswith(f"SIGKILL to process group {run.pid}")


async def test_a_pid_with_another_start_time_is_refused(
    provider: SshHostsProvider, start_run: Callable[..., Run]
) -> None:
    run = start_run()
    await ready(run)
    row = await row_of(provider, run)
    assert isinstance(row.details, ProcessDetails)
    ticks = int(row.details.start_time) + 1
    forged = row.model_copy(
        update={
            "id": process_id(LABEL, run.pid, ticks),
            "details": row.details.model_copy(update={"start_time": ticks}),
        }
    )

    for action in (Action.INTERRUPT, Action.KILL):
        with pytest.raises(NotFoundError, match="now belongs to another process; nothing sent"):
            await provider.perform(action, forged)
    with pytest.raises(NotFoundError, match="now belongs to another process"):
        await provider.describe(forged)
    await asyncio.sleep(0.2)
    assert run.popen.poll() is None
    assert not run.checkpoint.exists()
    assert (await provider.describe(row)).id == row.id


async def test_the_fleet_interrupts_through_its_checks(
    provider: SshHostsProvider, start_run: Callable[..., Run], tmp_path: Path
) -> None:
    run = start_run()
    await ready(run)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), poll_deadline=30)
    snapshot = await fleet.poll_async()
    (row,) = [i for i in snapshot.instances if i.kind == "process" and str(run.pid) in i.id]

    (result,) = await fleet.act(Action.INTERRUPT, [row])

    assert result.outcome is Outcome.DONE, result.detail
    await wait_for(lambda: run.popen.poll() is not None, "the run to exit")
    assert run.checkpoint.read_text() == "saved"
    (again,) = await fleet.act(Action.KILL, [row])
    assert again.outcome is Outcome.REFUSED
    assert again.detail == "it no longer exists"


async def test_interrupting_a_worker_reaches_its_launchers_whole_group(
    provider: SshHostsProvider, start_run: Callable[..., Run]
) -> None:
    launcher = start_run("--spawn-worker")
    await ready(launcher)
    worker_ready = Path(f"{launcher.checkpoint}.worker.ready")
    await wait_for(worker_ready.exists, worker_ready.name)
    worker_pid = int(text_of(worker_ready))
    await provider.list_instances()
    (worker,) = [
        row
        for row in await provider.list_instances()
        if isinstance(row.details, ProcessDetails) and row.details.pid == worker_pid
    ]
    assert isinstance(worker.details, ProcessDetails)
    assert (worker.details.pgid, worker.details.group_size) == (launcher.pid, 2)
    reach = f"SIGINT to process group {launcher.pid} (2 processes) on {LABEL}"

    fresh = await provider.describe(worker)

    assert fresh.id == worker.id
    assert provider.losses(Action.INTERRUPT, fresh)[0].startswith(reach)
    assert await provider.perform(Action.INTERRUPT, fresh) is InstanceState.STOPPING
    await wait_for(lambda: launcher.popen.poll() is not None, "the launcher to exit")
    worker_checkpoint = Path(f"{launcher.checkpoint}.worker")
    await wait_for(worker_checkpoint.exists, "the worker's checkpoint")
    assert text_of(launcher.checkpoint) == text_of(worker_checkpoint) == "saved"


@pytest.fixture
def nobodys_run() -> Iterator[subprocess.Popen[bytes]]:
    """``sleep 60`` running as user ``nobody``, killed after the test."""
    if os.geteuid() != 0:
        pytest.skip("starting a process as another user needs root")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")
    popen = subprocess.Popen(
        ["sleep", "60"], stdin=subprocess.DEVNULL, start_new_session=True, user="nobody"
    )
    try:
        yield popen
    finally:
        popen.kill()
        popen.wait(timeout=5)


async def test_another_users_run_is_shown_and_never_acted_on(
    lab: SshHost, ssh_hub: SshHub, nobodys_run: subprocess.Popen[bytes]
) -> None:
    provider = SshHostsProvider([lab], ssh_hub, patterns=["train*.py", "sleep"])

    rows = [
        row
        for row in await provider.list_instances()
        if isinstance(row.details, ProcessDetails) and row.details.pid == nobodys_run.pid
    ]

    (row,) = rows
    assert isinstance(row.details, ProcessDetails)
    assert (row.details.own, row.details.username) == (False, "nobody")
    assert provider.refusal(Action.KILL, row) == (
        "belongs to nobody; only your own processes are acted on"
    )
    assert provider.refusal(Action.INTERRUPT, row) is not None
    # Even asked directly, the host itself refuses: the login is not the owner.
    with pytest.raises(ProviderError, match="not permitted to signal it"):
        await provider.perform(Action.KILL, row)
    await asyncio.sleep(0.2)
    assert nobodys_run.poll() is None


LOGGING_SCRIPT = """\
import sys, time
from pathlib import Path

log = open(sys.argv[1], "a")
log.write("step 1 loss 2.3\\n")
log.flush()
print("started", flush=True)
Path(sys.argv[1] + ".ready").write_text("")
while True:
    time.sleep(0.05)
"""


def start_logging(script: Path, log: Path, out: Path) -> subprocess.Popen[bytes]:
    """Start ``script`` writing ``log``, its stdout going to ``out``."""
    with out.open("wb") as stdout:
        return subprocess.Popen(
            [sys.executable, str(script), str(log)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            start_new_session=True,
        )


async def test_a_runs_log_files_are_found_on_its_host(
    provider: SshHostsProvider, tmp_path: Path
) -> None:
    script = tmp_path / "train_logs.py"
    script.write_text(LOGGING_SCRIPT)
    log = tmp_path / "run 1\n[x].log"
    out = tmp_path / "stdout.txt"
    popen = start_logging(script, log, out)
    try:
        await wait_for(Path(f"{log}.ready").exists, "the run's log")
        rows = await provider.list_instances()
        (row,) = [
            r for r in rows if isinstance(r.details, ProcessDetails) and r.details.pid == popen.pid
        ]

        found = await provider.log_locations(row)

        # The log first (its name holds a newline: it arrives whole), then stdout's file.
        assert [f.path for f in found] == [str(log), str(out)]
        assert found[0].found == f"open of pid {popen.pid}"
        assert found[1].found == f"stdout of pid {popen.pid}"
        assert found[0].target == str(provider.hosts[0].target)
        assert found[0].source.startswith(f"ssh://{provider.hosts[0].target}/")

        # Another process under the same pid is not this run: its files are not shown.
        stale = process_id(LABEL, popen.pid, 1)
        with pytest.raises(NotFoundError):
            await provider.log_locations(row.model_copy(update={"id": stale}))
    finally:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=5)
