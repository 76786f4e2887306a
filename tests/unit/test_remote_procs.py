"""The process table of an SSH host: its parser, and the commands that list and signal runs."""

from __future__ import annotations

import shlex

import pytest

from runctl_tui.remote.procs import (
    PROCS_MARK,
    ProcRow,
    ProcTable,
    SignalStatus,
    decode_cmdline,
    group_to_signal,
    list_script,
    parse_processes,
    parse_signal_answer,
    signal_command,
    signal_script,
    training_rows,
    wrap,
)


def od(raw: bytes) -> str:
    """``raw`` as ``od -An -v -tx1`` prints it: 16 bytes a line, each with a leading space."""
    return "".join(
        "".join(f" {byte:02x}" for byte in raw[i : i + 16]) + "\n" for i in range(0, len(raw), 16)
    )


HEADER = "H ticks 100\nH page 4096\nH uid 1000\nH uptime 5000.25\n"


def table_text(*records: str, header: str = HEADER) -> str:
    """A listing as the host prints it, after the section mark."""
    return f"{PROCS_MARK}\n{header}" + "".join(records)


def proc(pid: int, uid: str = "1000", state: str = "S", pgid: int | None = None) -> str:
    """One ``P`` line: ppid 1, utime 300, stime 100, start 20000 ticks, rss 2560 pages."""
    return f"P {pid} {uid} {state} 1 {pgid or pid} 300 100 20000 2560\n"


def cmd(pid: int, *args: bytes) -> str:
    """A ``C`` record for ``args``, NUL-terminated as the kernel writes them."""
    return f"C {pid}\n" + od(b"".join(arg + b"\0" for arg in args))


def test_a_listing_reads_headers_rows_command_lines_and_users() -> None:
    text = table_text(
        proc(4242),
        cmd(4242, b"/usr/bin/python3", b"train.py", b"--lr", b"3e-4"),
        "N 1000 maria\n",
    )

    table = parse_processes(text)

    assert (table.clock_ticks, table.page_size, table.login_uid) == (100, 4096, 1000)
    assert table.uptime == 5000.25
    row = table.rows[4242]
    assert row == ProcRow(
        pid=4242,
        uid=1000,
        state="S",
        ppid=1,
        pgid=4242,
        cpu_ticks=400,
        start_ticks=20000,
        rss_pages=2560,
        cmdline=("/usr/bin/python3", "train.py", "--lr", "3e-4"),
    )
    assert table.username(1000) == "maria"
    assert table.username(33) == "33"
    assert table.rss_bytes(row) == 2560 * 4096
    assert table.run_seconds(row) == pytest.approx(4800.25)


def test_hostile_arguments_stay_inside_their_own_process() -> None:
    forged = b"x\nP 1 0 S 0 1 0 0 1 0\nC 1\n 41 41\n"
    hostile = [b"train.py", b"tab\there", b"esc\x1b[31mred", b"bad\xff\xfeutf8", forged]
    text = table_text(proc(7), cmd(7, b"python", *hostile), proc(8), cmd(8, b"sleep", b"1"))

    table = parse_processes(text)

    assert set(table.rows) == {7, 8}
    args = table.rows[7].cmdline
    assert args is not None
    assert args[1:4] == ("train.py", "tab\there", "esc\x1b[31mred")
    assert args[4] == "bad\ufffd\ufffdutf8"
    assert args[5] == forged.decode()
    assert table.rows[8].cmdline == ("sleep", "1")


def test_malformed_rows_are_skipped() -> None:
    text = table_text(
        "P 10 1000 S 1 10 300 100\n",  # fields missing
        "P 11 1000 S 1 11 300 100 twenty 2560\n",  # not a number
        "P 12 1000 SS 1 12 300 100 20000 2560\n",  # two-letter state
        "P -13 1000 S 1 13 300 100 20000 2560\n",
        "P 0 1000 S 1 0 300 100 20000 2560\n",
        "P ² 1000 S 1 14 300 100 20000 2560\n",  # digits int() would take, but not ASCII
        "garbage line\n",
        "C 99\n 41 42\n",  # a command line for no listed process
        "C nope\n 41 42\n",
        proc(15, uid="x"),
        "N nobody-uid x\n",
    )

    table = parse_processes(text)

    assert set(table.rows) == {15}
    assert table.rows[15].uid is None
    assert table.username(None) is None
    assert table.users == {}


def test_missing_headers_leave_figures_unknown() -> None:
    table = parse_processes(table_text(proc(5), header="H ticks zero\nH uptime nan\n"))

    assert (table.clock_ticks, table.page_size, table.login_uid, table.uptime) == (
        None,
        None,
        None,
        None,
    )
    row = table.rows[5]
    assert table.run_seconds(row) is None
    assert table.rss_bytes(row) is None


def test_odd_hex_and_truncated_output_do_not_crash() -> None:
    assert decode_cmdline("4") == ()
    assert decode_cmdline("") == ()
    assert decode_cmdline("610062") == ("a", "b")
    text = table_text(proc(5), "C 5\n 74 72 61 69 6e\n 2e 7")  # cut mid-byte
    assert parse_processes(text).rows[5].cmdline == ("train",)
    assert parse_processes("").rows == {}


def test_a_zombie_is_listed_but_never_a_training_run() -> None:
    table = parse_processes(table_text(proc(5, state="Z"), cmd(5, b"python", b"train.py")))

    assert [row.pid for row, _ in training_rows(table, lambda args: "train*.py")] == []


def _table(*rows: ProcRow, login_uid: int = 1000) -> ProcTable:
    return ProcTable(clock_ticks=100, login_uid=login_uid, rows={row.pid: row for row in rows})


def _row(pid: int, pgid: int, uid: int = 1000, cmdline: tuple[str, ...] = ("x",)) -> ProcRow:
    return ProcRow(pid, uid, "S", 1, pgid, 0, 100, 1, cmdline)


def training(row: ProcRow) -> bool:
    """Stands for the pattern match: ``train.py`` is a run, anything else is not."""
    return row.cmdline is not None and "train.py" in row.cmdline


def test_the_group_is_signalled_when_the_run_leads_it() -> None:
    leader, worker = _row(10, 10, cmdline=("python", "train.py")), _row(11, 10)

    assert group_to_signal(_table(leader, worker), leader, training) == 10


def test_the_group_is_signalled_when_its_leader_is_a_run_too() -> None:
    leader, worker = _row(10, 10, cmdline=("python", "train.py")), _row(11, 10)

    assert group_to_signal(_table(leader, worker), worker, training) == 10


def test_a_group_led_by_something_else_is_not_signalled() -> None:
    shell, run = _row(10, 10, cmdline=("bash", "run.sh")), _row(11, 10)

    assert group_to_signal(_table(shell, run), run, training) is None


def test_a_group_with_another_users_process_is_not_signalled() -> None:
    leader = _row(10, 10, cmdline=("python", "train.py"))
    theirs = _row(11, 10, uid=0)

    assert group_to_signal(_table(leader, theirs), leader, training) is None


def test_group_zero_and_init_are_never_signalled() -> None:
    row = _row(10, 1)

    assert group_to_signal(_table(row), row, training) is None
    assert group_to_signal(_table(_row(10, 0)), _row(10, 0), training) is None


def test_the_list_script_asks_for_one_command_line_when_told() -> None:
    assert "rc_only=''" in list_script()
    assert "rc_only=' 4242 7 '" in list_script([4242, 7])
    with pytest.raises(ValueError, match="not a process number"):
        list_script(["1; reboot"])  # type: ignore[list-item]
    assert list_script().startswith(f"echo {PROCS_MARK}\n")


def test_wrap_runs_the_script_under_sh_whatever_the_login_shell() -> None:
    script = "echo 'a b' \"$HOME\""

    assert shlex.split(wrap(script)) == ["sh", "-c", script]


def test_the_signal_command_carries_only_validated_numbers() -> None:
    script = signal_script(4242, 123456, "KILL", group=4242)

    assert "rc_p=4242 rc_t=123456 rc_g=4242 rc_sig=KILL" in script
    for bad in (-1, True, 1.5, "4242; reboot"):
        with pytest.raises(ValueError, match="not a process number"):
            signal_script(bad, 1, "INT")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not a process number"):
            signal_script(1, bad, "INT")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a signal"):
        signal_script(1, 1, "HUP")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a duration"):
        signal_script(1, 1, "INT", grace_seconds=float("nan"))


def test_an_interrupt_schedules_its_sigterm_detached_on_the_host() -> None:
    script = signal_script(4242, 99, "INT", group=None, grace_seconds=30)

    assert "setsid sh -c" in script
    assert "sleep 30;" in script
    assert "rc_sig=TERM" in script
    assert "</dev/null >/dev/null 2>&1 &" in script
    assert "setsid" not in signal_script(4242, 99, "KILL")
    assert "sleep 1.5;" in signal_script(1, 1, "INT", grace_seconds=1.5)


def test_the_whole_signal_command_is_one_quoted_argument_to_sh() -> None:
    command = signal_command(4242, 99, "INT", grace_seconds=2)

    argv = shlex.split(command)
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == signal_script(4242, 99, "INT", grace_seconds=2)


@pytest.mark.parametrize(
    ("text", "status", "target", "exited"),
    [
        ("sent group 4242\n", SignalStatus.SENT, "group 4242", None),
        ("sent pid 7\nexited\n", SignalStatus.SENT, "pid 7", True),
        ("sent pid 7\nalive\n", SignalStatus.SENT, "pid 7", False),
        ("gone\n", SignalStatus.GONE, "", None),
        ("replaced\n", SignalStatus.REPLACED, "", None),
        ("\n\ndenied\n", SignalStatus.DENIED, "", None),
    ],
)
def test_signal_answers(text: str, status: SignalStatus, target: str, exited: bool | None) -> None:
    answer = parse_signal_answer(text)

    assert answer is not None
    assert (answer.status, answer.target, answer.exited) == (status, target, exited)


@pytest.mark.parametrize("text", ["", "\n", "sh: 1: syntax error\n", "SENT pid 1\n"])
def test_no_status_word_is_no_answer(text: str) -> None:
    assert parse_signal_answer(text) is None


def test_open_files_answer_keeps_hostile_paths_whole() -> None:
    from runctl_tui.remote.procs import OPEN_FILES_MARK, parse_open_files

    path = "/tmp/run 1\nF 9 9 2f\t\x1b[31m.log"
    hex_path = " ".join(f"{b:02x}" for b in path.encode())
    answer = f"junk\n{OPEN_FILES_MARK}\nF 3 4242  {hex_path}\nF x 1 2f\nnot a row\n"

    assert parse_open_files(answer) == [(3, 4242, path)]
    assert parse_open_files(f"{OPEN_FILES_MARK}\nGONE\n") is None
    assert parse_open_files("no mark at all") == []


def test_log_rank_prefers_log_files_then_stdout() -> None:
    from runctl_tui.providers.local import log_rank

    assert log_rank("/w/train.log", 5) == 0
    assert log_rank("/w/out", 1) == 1
    assert log_rank("/w/notes.txt", 7) == 2
    assert log_rank("/w/model.pt", 7) is None
    assert log_rank("/dev/null", 1) is None
