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
from runctl_tui.providers.base import LogSearch, NotFoundError
from runctl_tui.providers.local import LocalProvider, search_logs
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
    # Nothing configured: only the files the run has open.
    provider = LocalProvider(patterns=("train_logs.py",), log_search=LogSearch((), ()))
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


def test_a_runs_open_logs_come_before_configured_and_recent_ones(
    run: tuple[subprocess.Popen[bytes], Path, Path], isolated_environment: Path
) -> None:
    popen, log, _ = run
    (isolated_environment / "train").mkdir()
    configured = isolated_environment / "train" / "sft.log"
    configured.write_text("x\n")
    search = LogSearch(("~/train/*.log",), ("~",), recent_days=1)
    provider = LocalProvider(patterns=("train_logs.py",), log_search=search)
    (row,) = [
        r
        for r in provider.list_instances()
        if isinstance(r.details, ProcessDetails) and r.details.pid == popen.pid
    ]

    found = provider.log_locations(row)

    paths = [f.path for f in found]
    assert paths[0] in {str(log), f"{log}.rank1.log"}
    assert paths.index(str(configured)) == 3
    assert found[3].found.startswith("matches ~/train/*.log · modified ")
    assert paths.count(str(configured)) == 1


def age(path: Path, seconds: float, now: float) -> None:
    """Make ``path`` look modified ``seconds`` before ``now``."""
    os.utime(path, (now - seconds, now - seconds))


def test_this_machine_lists_configured_globs_then_recent_logs_newest_first(
    isolated_environment: Path, tmp_path: Path
) -> None:
    home = isolated_environment
    now = time.time()
    (home / "train").mkdir()
    (home / "exp" / "a" / "deep" / "deeper").mkdir(parents=True)
    files = {
        "older": home / "train" / "run1.log",
        "newer": home / "train" / "run 2 $(id).log",
        "recent": home / "exp" / "a" / "notes.log",
        "recent2": home / "stray.log",
        "stale": home / "exp" / "old.log",
        "too_deep": home / "exp" / "a" / "deep" / "deeper" / "x.log",
        "not_a_log": home / "exp" / "a" / "notes.txt",
    }
    for path in files.values():
        path.write_text("step 1 loss 2.0\n" * 1000)
    age(files["older"], 3600, now)
    age(files["newer"], 120, now)
    age(files["recent"], 600, now)
    age(files["recent2"], 30, now)
    age(files["stale"], 10 * 86400, now)
    age(files["too_deep"], 10, now)
    age(files["not_a_log"], 10, now)
    search = LogSearch(("~/train/*.log", "/nowhere/*.log"), ("~",), recent_days=3, depth=3)
    provider = LocalProvider(log_search=search)
    host = provider.host()

    found = provider.log_locations(host)

    assert [f.path for f in found] == [
        str(files["newer"]),
        str(files["older"]),
        str(files["recent2"]),
        str(files["recent"]),
    ]
    assert found[0].found == "matches ~/train/*.log · modified 2 min ago · 16.0 kB"
    assert found[1].found == "matches ~/train/*.log · modified 1 h ago · 16.0 kB"
    assert found[2].found.startswith("recent *.log · modified ")
    assert all(f.target is None and f.size == 16000 for f in found)
    assert found[0].modified is not None
    assert abs(found[0].modified - (now - 120)) < 1


def test_the_search_is_bounded(isolated_environment: Path) -> None:
    for n in range(30):
        (isolated_environment / f"f{n:02}.log").write_text("")

    found = search_logs(LogSearch(("~/*.log",), ("~",), limit=5, scan_limit=12))

    # At most ``limit`` matches of the glob, and ``limit`` recent ones besides.
    assert len(found) == 10
    assert all(f.found.startswith("matches ~/*.log") for f in found[:5])
    assert all(f.found.startswith("recent *.log") for f in found[5:])
    assert len({f.path for f in found}) == 10


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
