"""Where a training run's logs are: the files it has open, found on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.models import ProcessDetails
from runctl_tui.providers.base import NotFoundError
from runctl_tui.providers.local import LocalProvider
from runctl_tui.services.fleet import Fleet

pytestmark = pytest.mark.integration

SCRIPT = """\
import subprocess, sys, time
from pathlib import Path

log = open(sys.argv[1], "a")
log.write("step 1 loss 2.3\\n")
log.flush()
# A worker, as a launcher starts ranks: its own log counts for the run too.
subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'a'); "
                  "time.sleep(60)", sys.argv[1] + ".rank1.log"])
while not Path(sys.argv[1] + ".rank1.log").exists():
    time.sleep(0.01)
time.sleep(0.1)
print("started", flush=True)
Path(sys.argv[1] + ".ready").write_text("")
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """``train_logs.py`` writing ``train.log``, stdout to ``out.txt``, with one worker."""
    script = tmp_path / "train_logs.py"
    script.write_text(SCRIPT)
    log, out = tmp_path / "train.log", tmp_path / "out.txt"
    with out.open("wb") as stdout:
        popen = subprocess.Popen(
            [sys.executable, str(script), str(log)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            start_new_session=True,
        )
    deadline = time.monotonic() + 15
    while not Path(f"{log}.ready").exists():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    yield popen, log, out
    os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)


def test_a_runs_open_logs_are_found_likeliest_first(
    run: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    popen, log, out = run
    provider = LocalProvider(patterns=("train_logs.py",))
    rows = provider.list_instances()
    (row,) = [
        r for r in rows if isinstance(r.details, ProcessDetails) and r.details.pid == popen.pid
    ]

    found = provider.log_locations(row)

    paths = [f.path for f in found]
    # *.log files (the run's and its worker's) before what stdout goes to.
    assert set(paths[:2]) == {str(log), f"{log}.rank1.log"}
    assert paths[2:] == [str(out)]
    assert found[-1].found == f"stdout of pid {popen.pid}"
    assert all(f.target is None and f.source == f.path for f in found)
    host = next(r for r in rows if r.kind == "host")
    assert provider.log_locations(host) == []


def test_the_fleet_asks_the_provider(
    run: tuple[subprocess.Popen[bytes], Path, Path], tmp_path: Path
) -> None:
    import asyncio

    popen, log, _ = run
    provider = LocalProvider(patterns=("train_logs.py",))
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"))
    snapshot = fleet.poll()
    (row,) = [
        i
        for i in snapshot.instances
        if isinstance(i.details, ProcessDetails) and i.details.pid == popen.pid
    ]

    found = asyncio.run(fleet.log_locations(row))

    assert str(log) in [f.path for f in found]


def test_a_run_that_is_gone_has_no_logs(run: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    popen, _, _ = run
    provider = LocalProvider(patterns=("train_logs.py",))
    (row,) = [
        r
        for r in provider.list_instances()
        if isinstance(r.details, ProcessDetails) and r.details.pid == popen.pid
    ]
    os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)

    with pytest.raises(NotFoundError):
        provider.log_locations(row)
