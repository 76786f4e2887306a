"""Training processes on a host reached over SSH: the shell commands that list and signal them,
and the parsers of what those commands print.

Everything here is pure: commands are built as text and answers parsed from text, so the
module imports nothing heavy and is tested without a host. The commands are POSIX ``sh`` over
Linux's ``/proc``; nothing needs to be installed on the host.

What a host prints is untrusted. A command line can hold any byte, a newline or a tab
included, so it travels hex-encoded (``od``) and cannot forge a row; every other field is a
number the kernel writes, checked again by the parser, which skips whatever does not parse.
A process is identified by its pid *and* its start time (clock ticks since boot, field 22 of
``/proc/PID/stat``): the signal command re-reads that start time on the host and signals
nothing when the pid now names another process.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

PROCS_MARK = "--runctl-procs--"
"""The line that opens the process section of a poll's output."""
CMDLINE_MAX_BYTES = 65536
"""Longer command lines are cut: enough to match a pattern and to show the arguments."""
KTHREAD_FLAG = 0x00200000
"""``PF_KTHREAD`` in the flags of ``/proc/PID/stat``: kernel threads have no command line."""
KILL_SETTLE_SECONDS = 1.0
"""How long the kill command watches for the process to vanish before it answers."""

Signal = Literal["INT", "TERM", "KILL"]

_HEX_LINE = re.compile(r"(?: [0-9a-f]{2})+")
_UINT = re.compile(r"[0-9]+")

# Shell variables carry an ``rc_`` prefix so the snippet can sit inside a larger command.
_STAT_FIELDS = 'set -f; set -- ${rc_s##*") "}; set +f'
"""Split a stat line after its last ``) ``: the command name before it may hold spaces or
parentheses; what follows is numbers the kernel writes. ``$1`` is then the state (field 3),
``$3`` the process group (field 5) and ``${20}`` the start time (field 22)."""
_UID_OF = (
    "rc_uid_of() { rc_u=x; while read -r rc_k rc_v rc_r; do "
    'if [ "$rc_k" = Uid: ]; then rc_u=$rc_v; break; fi; done < "$1/status"; }'
)
"""``rc_uid_of /proc/PID`` sets ``rc_u`` to the real uid, or ``x``; builtins only, no fork."""


def wrap(script: str) -> str:
    """``script`` run by ``sh``, whatever the login shell is (bash, zsh, fish...)."""
    return f"sh -c {shlex.quote(script)}"


def list_script(only_pids: Iterable[int] | None = None) -> str:
    """The ``sh`` script that prints the process table (see :func:`parse_processes`).

    One line per process (``P pid uid state ppid pgrp utime stime start rss``), kernel threads
    left out; then, for every live process (or only ``only_pid``), ``C pid`` followed by its
    command line as ``od`` hex lines (``only_pids``: just those command lines, to look at one
    run and its group's leader). Headers give the clock tick rate, the page size, the
    login's uid and the uptime; ``N uid name`` lines name the users seen.
    """
    only = "" if only_pids is None else " " + "".join(f"{_pid(pid)} " for pid in only_pids)
    return "\n".join(
        [
            f"echo {PROCS_MARK}",
            "(",
            "exec 2>/dev/null",
            "printf 'H ticks %s\\n' \"$(getconf CLK_TCK)\"",
            "printf 'H page %s\\n' \"$(getconf PAGESIZE)\"",
            "printf 'H uid %s\\n' \"$(id -u)\"",
            "rc_s=; IFS= read -r rc_s < /proc/uptime && printf 'H uptime %s\\n' \"${rc_s%% *}\"",
            _UID_OF,
            f"rc_only={shlex.quote(only)}; rc_uids=",
            "for rc_d in /proc/[0-9]*; do",
            "  rc_p=${rc_d#/proc/}",
            "  case $rc_p in ''|*[!0-9]*) continue;; esac",
            '  rc_s=; IFS= read -r rc_s < "$rc_d/stat" || continue',
            f"  {_STAT_FIELDS}",
            "  [ $# -ge 22 ] || continue",
            "  case $7 in ''|*[!0-9]*) continue;; esac",
            f"  [ $(( $7 & {KTHREAD_FLAG} )) -eq 0 ] || continue",
            '  rc_uid_of "$rc_d"',
            "  printf 'P %s %s %s %s %s %s %s %s %s\\n' "
            '"$rc_p" "$rc_u" "$1" "$2" "$3" "${12}" "${13}" "${20}" "${22}"',
            '  case $rc_u in *[!0-9]*) ;; *) case " $rc_uids " in *" $rc_u "*) ;; '
            '*) rc_uids="$rc_uids $rc_u";; esac;; esac',
            "  case $1 in Z|X) continue;; esac",
            '  case "${rc_only:- $rc_p }" in *" $rc_p "*)',
            "    printf 'C %s\\n' \"$rc_p\"",
            f'    od -An -v -tx1 -N {CMDLINE_MAX_BYTES} "$rc_d/cmdline";;',
            "  esac",
            "done",
            'if [ -n "$rc_uids" ]; then',
            "  { getent passwd $rc_uids || cat /etc/passwd; } | awk -F: '{print \"N\", $3, $1}'",
            "fi",
            ")",
        ]
    )


@dataclass(frozen=True)
class ProcRow:
    """One process as the host's ``/proc`` showed it."""

    pid: int
    uid: int | None
    """Real uid; ``None`` when ``/proc/PID/status`` could not be read."""
    state: str
    """One letter: ``R``, ``S``, ``D``, ``T`` (stopped), ``Z`` (zombie)..."""
    ppid: int
    pgid: int
    cpu_ticks: int
    """User plus system time, in clock ticks."""
    start_ticks: int
    """Start time in clock ticks since boot: with the pid, the process's identity."""
    rss_pages: int
    cmdline: tuple[str, ...] | None = None
    """``None`` when it was not read (a zombie, or not the one process asked for)."""


@dataclass(frozen=True)
class ProcTable:
    """Every process of one host at one moment, and what is needed to read the figures."""

    clock_ticks: int | None = None
    """``getconf CLK_TCK``: ticks per second."""
    page_size: int | None = None
    login_uid: int | None = None
    """``id -u`` of the SSH login: only its processes are acted on."""
    uptime: float | None = None
    """Seconds since boot when the table was read."""
    rows: dict[int, ProcRow] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    """User names by uid, for the uids seen."""

    def group_size(self, pgid: int) -> int:
        """How many processes are in process group ``pgid``."""
        return sum(1 for row in self.rows.values() if row.pgid == pgid)

    def seconds(self, ticks: int) -> float | None:
        """``ticks`` in seconds, when the tick rate is known."""
        return ticks / self.clock_ticks if self.clock_ticks else None

    def run_seconds(self, row: ProcRow) -> float | None:
        """How long ``row`` has been running, by the host's own clock."""
        started = self.seconds(row.start_ticks)
        if started is None or self.uptime is None:
            return None
        return max(self.uptime - started, 0.0)

    def rss_bytes(self, row: ProcRow) -> int | None:
        """Resident memory in bytes, when the page size is known."""
        return row.rss_pages * self.page_size if self.page_size else None

    def username(self, uid: int | None) -> str | None:
        """The user's name, else the uid as text; ``None`` when the uid is unknown."""
        if uid is None:
            return None
        return self.users.get(uid, str(uid))


def _pid(value: int) -> int:
    """A validated pid or tick count: a positive ``int``, never anything that could be code."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a process number: {value!r}")
    return value


def _uint(text: str) -> int | None:
    return int(text) if _UINT.fullmatch(text) else None


def decode_cmdline(hex_text: str) -> tuple[str, ...]:
    """The arguments of a NUL-separated command line given as hex; invalid UTF-8 is replaced.

    Arguments keep every character they hold (newlines, tabs, ESC): the display escapes them.
    """
    try:
        raw = bytes.fromhex(hex_text)
    except ValueError:
        return ()
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return tuple(part.decode("utf-8", "replace") for part in parts)


def _row(fields: list[str]) -> ProcRow | None:
    if len(fields) != 9:
        return None
    pid, uid_text, state, *rest = fields
    numbers = [_uint(text) for text in [pid, *rest]]
    if any(number is None for number in numbers) or len(state) != 1 or not state.isalpha():
        return None
    pid_n, ppid, pgid, utime, stime, start, rss = (int(n or 0) for n in numbers)
    if pid_n <= 0:
        return None
    return ProcRow(
        pid=pid_n,
        uid=_uint(uid_text),
        state=state,
        ppid=ppid,
        pgid=pgid,
        cpu_ticks=utime + stime,
        start_ticks=start,
        rss_pages=rss,
    )


def parse_processes(text: str) -> ProcTable:
    """The output of :func:`list_script` (with or without the lines before its mark).

    Malformed lines are skipped, never raised on: a row missing a field is left out, a
    header that does not parse stays unknown.
    """
    _, marked, after = text.partition(PROCS_MARK + "\n")
    body = after if marked else text
    headers: dict[str, str] = {}
    rows: dict[int, ProcRow] = {}
    hexes: dict[int, list[str]] = {}
    users: dict[int, str] = {}
    current: list[str] | None = None
    for line in body.splitlines():
        if current is not None and _HEX_LINE.fullmatch(line):
            current.append(line.replace(" ", ""))
            continue
        current = None
        kind, _, rest = line.partition(" ")
        if kind == "H":
            key, _, value = rest.partition(" ")
            headers[key] = value.strip()
        elif kind == "P":
            row = _row(rest.split(" "))
            if row is not None:
                rows[row.pid] = row
        elif kind == "C":
            pid = _uint(rest)
            if pid is not None:
                current = hexes[pid] = []
        elif kind == "N":
            uid_text, _, name = rest.partition(" ")
            uid = _uint(uid_text)
            if uid is not None and name and uid not in users:
                users[uid] = name
    for pid, chunks in hexes.items():
        row = rows.get(pid)
        if row is not None:
            rows[pid] = ProcRow(**{**row.__dict__, "cmdline": decode_cmdline("".join(chunks))})
    uptime: float | None
    try:
        uptime = float(headers.get("uptime", ""))
    except ValueError:
        uptime = None
    if uptime is not None and (not math.isfinite(uptime) or uptime < 0):
        uptime = None
    ticks = _uint(headers.get("ticks", ""))
    return ProcTable(
        clock_ticks=ticks or None,
        page_size=_uint(headers.get("page", "")) or None,
        login_uid=_uint(headers.get("uid", "")),
        uptime=uptime,
        rows=rows,
        users=users,
    )


def group_to_signal(
    table: ProcTable, row: ProcRow, is_training: Callable[[ProcRow], bool]
) -> int | None:
    """The process group an action on ``row`` signals, or ``None`` to signal it alone.

    As on this machine: the group is what Ctrl-C in the run's terminal reaches (the launcher
    and its workers), so it is signalled when ``row`` leads it or its leader is one of the
    login's own training runs; when every member belongs to the login. Anything else (a
    wrapper script, a scheduler, a container's init leading everything) means the group holds
    processes nobody chose. The host checks again before it signals (:func:`signal_script`).
    """
    group = row.pgid
    if group <= 1:
        return None
    members = [other for other in table.rows.values() if other.pgid == group]
    if any(member.uid is None or member.uid != table.login_uid for member in members):
        return None
    if group == row.pid:
        return group
    leader = table.rows.get(group)
    if leader is None or leader.state in {"Z", "X"} or leader.cmdline is None:
        return None
    return group if is_training(leader) else None


class SignalStatus(StrEnum):
    """What the host answered to a signal command."""

    SENT = "sent"
    GONE = "gone"
    """The process has exited (or is a zombie): nothing was sent."""
    REPLACED = "replaced"
    """The pid now belongs to another process (another start time): nothing was sent."""
    DENIED = "denied"
    """Not the login's process, or the kernel refused the signal."""


@dataclass(frozen=True)
class SignalAnswer:
    """The host's answer to :func:`signal_command`."""

    status: SignalStatus
    target: str = ""
    """``group N`` or ``pid N`` when sent."""
    exited: bool | None = None
    """For a kill: whether the process was gone within :data:`KILL_SETTLE_SECONDS`."""


def _number_text(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def signal_script(
    pid: int,
    start_ticks: int,
    sig: Signal,
    *,
    group: int | None = None,
    grace_seconds: float | None = None,
    settle_seconds: float = KILL_SETTLE_SECONDS,
) -> str:
    """The ``sh`` script that signals ``pid`` only if its start time is still ``start_ticks``.

    It signals process group ``group`` instead when that is still the process's group, is not
    the login shell's own, and holds only the login's processes; else the pid alone. It prints
    one status word (:class:`SignalStatus`). With ``grace_seconds``, a SIGTERM follow-up
    runs detached on the host after that long, with the same checks, so it happens even if
    this program quits. A ``KILL`` waits up to ``settle_seconds`` and says ``exited`` or
    ``alive``.
    """
    if sig not in ("INT", "TERM", "KILL"):
        raise ValueError(f"not a signal this program sends: {sig!r}")
    values = [
        f"rc_p={_pid(pid)}",
        f"rc_t={_pid(start_ticks)}",
        f"rc_g={_pid(group or 0)}",
        f"rc_sig={sig}",
    ]
    lines = [
        "exec 2>/dev/null",
        " ".join(values),
        'rc_me=$(id -u); rc_mypg=""',
        "rc_s=; IFS= read -r rc_s < /proc/$$/stat",
        f"{_STAT_FIELDS}; rc_mypg=$3",
        _UID_OF,
        # Exits with the status word when the process is not the one asked for any more.
        "rc_look() {",
        '  rc_s=; IFS= read -r rc_s < "/proc/$rc_p/stat" || { echo gone; exit 0; }',
        f"  {_STAT_FIELDS}",
        "  [ $# -ge 22 ] || { echo gone; exit 0; }",
        "  case $1 in Z|X) echo gone; exit 0;; esac",
        '  [ "${20}" = "$rc_t" ] || { echo replaced; exit 0; }',
        "  rc_pg=$3",
        "}",
        "rc_alive() {",
        '  rc_s=; IFS= read -r rc_s < "/proc/$rc_p/stat" || return 1',
        f"  {_STAT_FIELDS}",
        '  [ $# -ge 22 ] && [ "${20}" = "$rc_t" ] || return 1',
        "  case $1 in Z|X) return 1;; esac",
        "}",
        "rc_look",
        'rc_uid_of "/proc/$rc_p"',
        '[ "$rc_u" = "$rc_me" ] || { echo denied; exit 0; }',
        'rc_target=$rc_p; rc_what="pid $rc_p"',
        'if [ "$rc_g" -gt 1 ] && [ "$rc_pg" = "$rc_g" ] && [ "$rc_g" != "$rc_mypg" ]; then',
        '  rc_target=-$rc_g; rc_what="group $rc_g"',
        "  for rc_d in /proc/[0-9]*; do",
        '    rc_s=; IFS= read -r rc_s < "$rc_d/stat" || continue',
        f"    {_STAT_FIELDS}",
        '    [ "$3" = "$rc_g" ] || continue',
        '    rc_uid_of "$rc_d"',
        '    [ "$rc_u" = "$rc_me" ] || { rc_target=$rc_p; rc_what="pid $rc_p"; break; }',
        "  done",
        "fi",
        # Checked once more right before the signal: the group scan takes a moment.
        "rc_look",
        'if ! kill -s "$rc_sig" -- "$rc_target"; then',
        '  if [ -e "/proc/$rc_p" ]; then echo denied; else echo gone; fi',
        "  exit 0",
        "fi",
        'echo "sent $rc_what"',
    ]
    if sig == "KILL":
        rounds = max(1, math.ceil(settle_seconds / 0.05))
        lines += [
            "rc_i=0",
            f"while [ $rc_i -lt {rounds} ]; do",
            "  rc_alive || { echo exited; exit 0; }",
            "  sleep 0.05 || break",
            "  rc_i=$((rc_i + 1))",
            "done",
            "rc_alive && echo alive || echo exited",
        ]
    if grace_seconds is not None:
        follow = f"sleep {_number_text(grace_seconds)}; " + signal_script(
            pid, start_ticks, "TERM", group=group
        )
        quoted = shlex.quote(follow)
        # setsid: out of the SSH session's process group, so closing the channel (or sshd
        # hanging up on it) does not take the follow-up with it.
        lines += [
            "if command -v setsid >/dev/null; then",
            f"  setsid sh -c {quoted} </dev/null >/dev/null 2>&1 &",
            "else",
            f"  nohup sh -c {quoted} </dev/null >/dev/null 2>&1 &",
            "fi",
        ]
    return "\n".join(lines)


def signal_command(
    pid: int,
    start_ticks: int,
    sig: Signal,
    *,
    group: int | None = None,
    grace_seconds: float | None = None,
) -> str:
    """:func:`signal_script` as one command for the hub, run by ``sh`` whatever the login shell."""
    return wrap(signal_script(pid, start_ticks, sig, group=group, grace_seconds=grace_seconds))


def parse_signal_answer(text: str) -> SignalAnswer | None:
    """The status the signal command printed; ``None`` when it printed none (it did not run)."""
    words = [line.split() for line in text.splitlines() if line.strip()]
    if not words:
        return None
    first = words[0]
    try:
        status = SignalStatus(first[0])
    except ValueError:
        return None
    target = " ".join(first[1:3]) if status is SignalStatus.SENT else ""
    exited: bool | None = None
    for line in words[1:]:
        if line[0] in {"exited", "alive"}:
            exited = line[0] == "exited"
    return SignalAnswer(status, target, exited)


def training_rows(
    table: ProcTable, match: Callable[[tuple[str, ...]], str | None]
) -> Iterable[tuple[ProcRow, str]]:
    """The live rows whose command line ``match`` names a pattern for, with that pattern."""
    for row in table.rows.values():
        if row.cmdline and row.state not in {"Z", "X"}:
            pattern = match(row.cmdline)
            if pattern is not None:
                yield row, pattern


OPEN_FILES_MARK = "--runctl-open-files--"
"""Heads the answer of :func:`open_files_script`; what comes before it is not ours."""


def open_files_script(pid: int, start_ticks: int) -> str:
    """The ``sh`` script that lists the regular files ``pid`` (with that start time) and its
    children have open: ``F fd pid hex-path`` lines after :data:`OPEN_FILES_MARK`, or
    ``GONE`` when the pid has exited or belongs to another process now.

    Paths travel hex-encoded, as command lines do, so a newline in a name cannot forge a row.
    """
    pid, ticks = _pid(pid), _pid(start_ticks)
    return "\n".join(
        [
            f"printf '%s\\n' {OPEN_FILES_MARK}",
            f"rc_s=$(cat /proc/{pid}/stat 2>/dev/null) || {{ echo GONE; exit 0; }}",
            _STAT_FIELDS,
            f'[ "${{20}}" = {ticks} ] || {{ echo GONE; exit 0; }}',
            f"rc_pids={pid}",
            f"for rc_c in /proc/{pid}/task/*/children; do",
            '  [ -r "$rc_c" ] && rc_pids="$rc_pids $(cat "$rc_c")"',
            "done",
            "for rc_p in $rc_pids; do",
            '  for rc_f in /proc/"$rc_p"/fd/*; do',
            '    rc_t=$(readlink "$rc_f" 2>/dev/null) || continue',
            '    [ -f "$rc_t" ] || continue',
            '    printf \'F %s %s\' "${rc_f##*/}" "$rc_p"',
            "    printf '%s' \"$rc_t\" | od -An -v -tx1 | tr -d '\\n'",
            "    echo",
            "  done",
            "done",
        ]
    )


def parse_open_files(text: str) -> list[tuple[int, int, str]] | None:
    """``(fd, pid, path)`` per line of :func:`open_files_script`'s answer; ``None`` when the
    process is gone or replaced. Malformed lines are skipped."""
    _, mark, body = text.partition(OPEN_FILES_MARK)
    if not mark:
        return []
    found: list[tuple[int, int, str]] = []
    for line in body.splitlines():
        if line.strip() == "GONE":
            return None
        fields = line.split(" ", 3)
        if len(fields) != 4 or fields[0] != "F":
            continue
        fd, pid = _uint(fields[1]), _uint(fields[2])
        hex_path = " " + fields[3].strip()
        if fd is None or pid is None or not _HEX_LINE.fullmatch(hex_path):
            continue
        raw = bytes.fromhex(hex_path.replace(" ", ""))
        found.append((fd, pid, raw.decode("utf-8", errors="surrogateescape")))
    return found


_GLOB_FUNCTIONS = r"""
rc_home() {
  case $1 in
    "~") rc_w=$HOME;;
    "~/"*) rc_w=$HOME/${1#??};;
    *) rc_w=$1;;
  esac
}
rc_glob() {
  rc_home "$2"
  rc_n=0
  rc_ifs=$IFS; IFS=
  set +f
  for rc_f in $rc_w; do
    [ "$rc_n" -lt "$rc_scan" ] || break
    rc_n=$((rc_n + 1))
    rc_emit "$1" "$rc_f"
  done
  set -f
  IFS=$rc_ifs
}
"""
"""``rc_glob INDEX PATTERN``: ``rc_emit INDEX PATH`` for each match of ``PATTERN`` (``~`` the
login's home), at most ``rc_scan``; the pattern is expanded as a pattern only, never split."""

LOGS_MARK = "--runctl-logs--"
"""Heads the answer of :func:`log_search_script`."""

_LOG_SEARCH = r"""
rc_minutes=$1; rc_depth=$2; rc_scan=$3; shift 3
rc_nl=$(printf '\nx'); rc_nl=${rc_nl%x}
printf '%s\n' "$rc_mark"
printf 'T %s\n' "$(date +%s)"
rc_emit() {
  [ -f "$2" ] || return 0
  rc_st=$(stat -L -c '%Y %s' -- "$2" 2>/dev/null || stat -L -f '%m %z' -- "$2" 2>/dev/null) \
    || return 0
  printf 'L %s %s ' "$1" "$rc_st"
  printf '%s' "$2" | od -An -v -tx1 | tr -d '\n'
  echo
}
rc_i=0
for rc_a; do
  case $rc_a in
    g:*)
      rc_glob "$rc_i" "${rc_a#g:}"
      rc_i=$((rc_i + 1));;
    d:*)
      rc_home "${rc_a#d:}"
      [ -d "$rc_w" ] || continue
      find "$rc_w" -maxdepth "$rc_depth" -type f -name '*.log' ! -path "*$rc_nl*" \
          -mmin "-$rc_minutes" -print 2>/dev/null | head -n "$rc_scan" |
        while IFS= read -r rc_f; do rc_emit R "$rc_f"; done;;
  esac
done
"""


def log_search_command(
    globs: Sequence[str],
    recent_dirs: Sequence[str],
    *,
    recent_days: float,
    depth: int,
    scan_limit: int,
    before: str = "",
) -> str:
    """One command that prints, after :data:`LOGS_MARK`, the host's clock (``T seconds``) and
    ``L kind mtime size hex-path`` for every file the globs match (kind: the glob's index) and
    every ``*.log`` below ``recent_dirs`` modified in the last ``recent_days`` (kind ``R``).

    ``~`` in a glob or directory is the login's home on the host. Globs and directories travel
    as quoted arguments, never as script text: a hostile one is only ever a pattern. ``before``
    is a script run first, in a subshell of its own (e.g. :func:`open_files_script`).
    """
    minutes = max(1, math.ceil(recent_days * 1440))
    args = [str(minutes), str(max(1, int(depth))), str(max(1, int(scan_limit)))]
    args += [f"g:{glob}" for glob in globs]
    args += [f"d:{folder}" for folder in recent_dirs]
    script = f"rc_mark={LOGS_MARK}\nset -f\n" + _GLOB_FUNCTIONS + _LOG_SEARCH
    if before:
        script = f"(\n{before}\n)\n" + script
    return wrap(script) + " sh " + " ".join(shlex.quote(arg) for arg in args)


@dataclass(frozen=True)
class LogSearchAnswer:
    """What :func:`log_search_command` printed."""

    now: float | None
    """The host's clock, seconds since the epoch."""
    files: list[tuple[int | None, float, int, str]]
    """``(glob index or None for a recent log, mtime, size, path)``."""


def parse_log_search(text: str) -> LogSearchAnswer:
    """The answer of :func:`log_search_command`; malformed lines are skipped."""
    _, mark, body = text.partition(LOGS_MARK)
    now: float | None = None
    files: list[tuple[int | None, float, int, str]] = []
    if not mark:
        return LogSearchAnswer(None, files)
    for line in body.splitlines():
        fields = line.split(" ", 4)
        if fields[0] == "T" and len(fields) == 2 and _UINT.fullmatch(fields[1]):
            now = float(fields[1])
            continue
        if len(fields) != 5 or fields[0] != "L":
            continue
        kind, mtime, size = fields[1], _uint(fields[2]), _uint(fields[3])
        hex_path = " " + fields[4].strip()
        if mtime is None or size is None or not _HEX_LINE.fullmatch(hex_path):
            continue
        if kind == "R":
            index: int | None = None
        elif _UINT.fullmatch(kind):
            index = int(kind)
        else:
            continue
        raw = bytes.fromhex(hex_path.replace(" ", ""))
        files.append((index, float(mtime), size, raw.decode("utf-8", errors="surrogateescape")))
    return LogSearchAnswer(now, files)


CHECKPOINTS_MARK = "--runctl-checkpoints--"
"""Heads the answer of :func:`checkpoint_dirs_command`."""

_CHECKPOINT_SEARCH = r"""
rc_scan=$1; rc_pid=$2; rc_ticks=$3; rc_sub=$4; shift 4
printf '%s\n' "$rc_mark"
printf 'T %s\n' "$(date +%s)"
rc_emit() {
  [ -d "$2" ] || return 0
  rc_st=$(stat -L -c '%Y' -- "$2" 2>/dev/null || stat -L -f '%m' -- "$2" 2>/dev/null) \
    || return 0
  printf 'D %s %s ' "$1" "$rc_st"
  printf '%s' "$2" | od -An -v -tx1 | tr -d '\n'
  echo
}
if [ "$rc_pid" != - ]; then
  if rc_s=$(cat "/proc/$rc_pid/stat" 2>/dev/null); then
    (
      __STAT_FIELDS__
      if [ "${20}" = "$rc_ticks" ]; then
        rc_c=$(readlink "/proc/$rc_pid/cwd" 2>/dev/null) && [ -n "$rc_c" ] \
          && rc_emit W "${rc_c%/}/$rc_sub"
      else
        echo GONE
      fi
    )
  else
    echo GONE
  fi
fi
rc_i=0
for rc_a; do
  rc_glob "$rc_i" "$rc_a"
  rc_i=$((rc_i + 1))
done
""".replace("__STAT_FIELDS__", _STAT_FIELDS)


def checkpoint_dirs_command(
    dirs: Sequence[str],
    *,
    run: tuple[int, int] | None = None,
    subdir: str = "checkpoints",
    scan_limit: int = 2000,
) -> str:
    """One command that prints, after :data:`CHECKPOINTS_MARK`, the host's clock
    (``T seconds``) and ``D kind mtime hex-path`` for every existing directory the globs in
    ``dirs`` match (kind: the glob's index).

    ``run`` is ``(pid, start ticks)``: that process's working directory's ``subdir`` comes
    first (kind ``W``) when it exists, and ``GONE`` is printed when the pid has exited or
    belongs to another process now. ``~`` is the login's home on the host; globs travel as
    quoted arguments, never as script text.
    """
    if "/" in subdir or not subdir or subdir in {".", ".."}:
        raise ValueError(f"not a folder name: {subdir!r}")
    pid, ticks = ("-", "-") if run is None else (str(_pid(run[0])), str(_pid(run[1])))
    args = [str(max(1, int(scan_limit))), pid, ticks, subdir, *dirs]
    script = f"rc_mark={CHECKPOINTS_MARK}\nset -f\n" + _GLOB_FUNCTIONS + _CHECKPOINT_SEARCH
    return wrap(script) + " sh " + " ".join(shlex.quote(arg) for arg in args)


@dataclass(frozen=True)
class CheckpointDirsAnswer:
    """What :func:`checkpoint_dirs_command` printed."""

    now: float | None
    """The host's clock, seconds since the epoch."""
    dirs: list[tuple[int | None, float, str]]
    """``(glob index, or None for the run's own folder, mtime, path)``."""
    gone: bool = False
    """The run asked about has exited or its pid was reused."""


def parse_checkpoint_dirs(text: str) -> CheckpointDirsAnswer:
    """The answer of :func:`checkpoint_dirs_command`; malformed lines are skipped."""
    _, mark, body = text.partition(CHECKPOINTS_MARK)
    now: float | None = None
    dirs: list[tuple[int | None, float, str]] = []
    gone = False
    if not mark:
        return CheckpointDirsAnswer(None, dirs)
    for line in body.splitlines():
        if line.strip() == "GONE":
            gone = True
            continue
        fields = line.split(" ", 3)
        if fields[0] == "T" and len(fields) == 2 and _UINT.fullmatch(fields[1]):
            now = float(fields[1])
            continue
        if len(fields) != 4 or fields[0] != "D":
            continue
        kind, mtime = fields[1], _uint(fields[2])
        hex_path = " " + fields[3].strip()
        if mtime is None or not _HEX_LINE.fullmatch(hex_path):
            continue
        if kind == "W":
            index: int | None = None
        elif _UINT.fullmatch(kind):
            index = int(kind)
        else:
            continue
        raw = bytes.fromhex(hex_path.replace(" ", ""))
        dirs.append((index, float(mtime), raw.decode("utf-8", errors="surrogateescape")))
    return CheckpointDirsAnswer(now, dirs, gone)
