"""Where a log is, as a user writes it; and the remote reader's script, run here with ``sh``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runctl_tui.logs.remote import FOLLOW_SCRIPT, RANGE_SCRIPT, _command, parse_log_source
from runctl_tui.remote.ssh import SshTarget


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.log", (None, "train.log")),
        ("/var/log/train.log", (None, "/var/log/train.log")),
        ("./a:b.log", (None, "./a:b.log")),
        ("logs/run:1.log", (None, "logs/run:1.log")),
        ("~/train/out.log", (None, "~/train/out.log")),
        ("C:\\runs\\train.log", (None, "C:\\runs\\train.log")),
        ("c:/runs/train.log", (None, "c:/runs/train.log")),
        ("gpu-box:train/out.log", (SshTarget("gpu-box"), "train/out.log")),
        (
            "ml@10.0.0.5:/workspace/logs/a.log",
            (SshTarget("10.0.0.5", None, "ml"), "/workspace/logs/a.log"),
        ),
        ("ml@[::1]:~/x.log", (SshTarget("::1", None, "ml"), "~/x.log")),
        ("a@corp@bastion:x.log", (SshTarget("bastion", None, "a@corp"), "x.log")),
        ("box:/tmp/a@b:c.log", (SshTarget("box"), "/tmp/a@b:c.log")),
        ("ssh://ml@host:2222/var/log/a.log", (SshTarget("host", 2222, "ml"), "/var/log/a.log")),
        ("ssh://host/~/train.log", (SshTarget("host"), "~/train.log")),
        ("SSH://[::1]:22/x", (SshTarget("::1", 22), "/x")),
    ],
)
def test_log_sources_parse(text: str, expected: tuple[SshTarget | None, str]) -> None:
    assert parse_log_source(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no log file given"),
        ("box:", "no path after the host"),
        ("ssh://box", "no path after the host"),
        ("ssh://box/", "no path after the host"),
        ("-oProxyCommand=x:y", "not an SSH target"),
        ("ssh://ml@host:99999/x", "port must be 1-65535"),
        ("bad host\x1b:x", "not an SSH target"),
    ],
)
def test_bad_log_sources_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_log_source(text)
    assert "\n" not in str(caught.value)
    assert "\x1b" not in str(caught.value)


def follow_once(path: Path, offset: int, inode: str = "", max_frame: int = 1 << 20) -> bytes:
    """The reader's whole output for one pass over ``path`` (not following)."""
    args = [str(path), str(offset), inode, "0", "0.01", str(max_frame)]
    done = subprocess.run(
        _command(FOLLOW_SCRIPT, args), shell=True, capture_output=True, timeout=10, check=True
    )
    assert done.stderr == b""
    return done.stdout


def test_frames_carry_exact_offsets(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"one\ntwo\npart")
    inode = os.stat(log).st_ino
    assert follow_once(log, 2, max_frame=5) == (
        f"F {inode} 2\n".encode() + b"D 2 5\ne\ntwoK\nD 7 5\n\npartK\nE\n"
    )


def test_a_negative_offset_counts_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"0123456789")
    out = follow_once(log, -4)
    assert out.endswith(b"F %d 6\nD 6 4\n6789K\nE\n" % os.stat(log).st_ino)
    assert follow_once(log, -400).split(b"\n")[0] == b"F %d 0" % os.stat(log).st_ino


def test_resuming_a_shorter_file_of_the_same_inode_is_a_truncation(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"abc")
    inode = str(os.stat(log).st_ino)
    assert follow_once(log, 10, inode) == f"R truncated\nF {inode} 0\nD 0 3\nabcK\nE\n".encode()


def test_resuming_after_a_rotation_drains_the_renamed_file_first(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"old bytes")
    old_inode = str(os.stat(log).st_ino)
    log.rename(tmp_path / "a.log.1")
    log.write_bytes(b"new")
    new_inode = os.stat(log).st_ino
    assert follow_once(log, 4, old_inode) == (
        f"D 4 5\nbytesK\nR rotated\nF {new_inode} 0\nD 0 3\nnewK\nE\n".encode()
    )


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    assert follow_once(tmp_path / "nope.log", 0) == b"W missing\nE\n"


def test_range_reads_are_exact(tmp_path: Path) -> None:
    log = tmp_path / "a b'.log"
    log.write_bytes(b"\x00\xff0123456789")
    args = [str(log), "", "3", "4"]
    done = subprocess.run(
        _command(RANGE_SCRIPT, args), shell=True, capture_output=True, timeout=10, check=True
    )
    assert done.stdout == b"12\n1234"
