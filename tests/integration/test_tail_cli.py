"""``runctl-tui tail --no-tui`` in a subprocess: a local file followed to stdout, pipes that
close early, and a remote file over a real sshd (unknown host key refused, then followed)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.ssh_servers import Sshd, add_known_host, ssh_keygen_fingerprint

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_ssh"]

COMMAND = [sys.executable, "-m", "runctl_tui", "tail", "--no-tui"]


class Output:
    """A running ``tail --no-tui``: its stdout read line by line, with deadlines."""

    def __init__(self, source: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, source],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.buffer = b""
        self.lines: list[str] = []

    def until(self, count: int, seconds: float = 20.0) -> list[str]:
        """Read until ``count`` lines arrived in all; the lines."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while len(self.lines) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {self.lines!r} within {seconds} s"
            if self.selector.select(min(left, 0.5)):
                data = self.process.stdout.read() or b""
                if not data and self.process.poll() is not None:
                    raise AssertionError(f"exited early: {self.stderr()}")
                self.buffer += data
                *done, self.buffer = self.buffer.split(b"\n")
                self.lines += [line.decode() for line in done]
        return self.lines

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit code and stderr."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=20)
        return code, self.stderr()

    def stderr(self) -> str:
        """What it said on stderr (once it has exited)."""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode() if self.process.poll() is not None else ""

    def kill(self) -> None:
        """Make sure nothing is left running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def test_prints_the_end_then_new_lines_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_bytes(b"step 1 loss 2.3\nstep 2 \x1b[31mloss\x1b[0m 2.1 [/]\npartial")
    output = Output(str(log))
    try:
        assert output.until(2) == ["step 1 loss 2.3", "step 2 loss 2.1 [/]"]
        with log.open("ab") as handle:
            handle.write(b" line done\nstep 3 loss 1.9\n")
        assert output.until(4)[2:] == ["partial line done", "step 3 loss 1.9"]
        code, stderr = output.stop()
    finally:
        output.kill()
    assert code == 0
    assert "Traceback" not in stderr


def test_a_pipe_closed_by_head_ends_it_quietly(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(f"step {n}\n" for n in range(100)))
    command = " ".join([*COMMAND, str(log)])
    done = subprocess.run(
        ["bash", "-c", f"{command} | head -1; echo rc=${{PIPESTATUS[0]}} >&2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout == "step 0\n"
    assert done.stderr.strip() == "rc=0"


def test_the_dashboard_form_needs_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runctl_tui", "tail", str(tmp_path / "x.log")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "tail --no-tui" in done.stderr
    assert "Traceback" not in done.stderr


def test_remote_unknown_host_key_is_refused_then_trusted_and_followed(
    real_sshd: Sshd, isolated_environment: Path, tmp_path: Path
) -> None:
    log = tmp_path / "remote.log"
    log.write_text("epoch 1 loss 0.5\n")
    source = f"ssh://{real_sshd.user}@127.0.0.1:{real_sshd.port}{log}"
    refused = subprocess.run(
        [*COMMAND, source], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert ssh_keygen_fingerprint(real_sshd.host_key_path.with_suffix(".pub")) in line
    assert "trust it with" in line

    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    output = Output(source)
    try:
        assert output.until(1) == ["epoch 1 loss 0.5"]
        with log.open("a") as handle:
            handle.write("epoch 2 loss 0.4\n")
        assert output.until(2)[1] == "epoch 2 loss 0.4"
        code, stderr = output.stop()
    finally:
        output.kill()
    assert code == 0
    assert "Traceback" not in stderr


CHILD = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
sys.stdin.readline()
for n in range(int(sys.argv[2])):
    os.write(fd, b"step %d loss 1.0\\n" % n)
os.write(fd, sys.argv[3].encode())
"""


@pytest.mark.parametrize("last", ["the end\n", "the end without newline"])
def test_pid_drains_the_log_after_the_process_exits_then_exits_0(tmp_path: Path, last: str) -> None:
    log = tmp_path / "run.log"
    log.write_text("started\n")
    count = 20_000
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(log), str(count), last], stdin=subprocess.PIPE
    )
    assert child.stdin is not None
    try:
        tail = subprocess.Popen(
            [*COMMAND, "--pid", str(child.pid), str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # Let it open the file and print the first line, then let the child write and exit.
        assert tail.stdout is not None
        assert tail.stdout.readline() == b"started\n"
        child.stdin.write(b"go\n")
        child.stdin.close()
        assert child.wait(timeout=30) == 0
        out, err = tail.communicate(timeout=30)
    finally:
        child.kill()
    assert tail.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines == [f"step {n} loss 1.0" for n in range(count)] + [last.rstrip("\n")]
    assert "Traceback" not in err.decode()


def test_pid_is_refused_for_a_remote_log_and_an_unknown_process() -> None:
    remote = subprocess.run(
        [*COMMAND, "--pid", "1", "somehost:/var/log/train.log"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert remote.returncode == 2
    assert (
        remote.stderr.strip()
        == "runctl-tui: --pid is for local files; follow a remote log without it"
    )
    unknown = subprocess.run(
        [*COMMAND, "--pid", str(2**22 + 12345), "/tmp/x.log"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert "no process with pid" in unknown.stderr


def test_no_tui_prints_one_log_and_says_so_for_two(tmp_path: Path) -> None:
    done = subprocess.run(
        [*COMMAND, str(tmp_path / "a.log"), str(tmp_path / "b.log")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "--no-tui prints one log" in line
