"""The ``runctl-tui`` command: the dashboard, ``status``, ``costs``, ``tail``, ``checkpoints``,
``config``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from runctl_tui import __version__
from runctl_tui.config import (
    APP_NAME,
    CONFIG_ENV,
    ConfigError,
    CostsSettings,
    Settings,
    config_path,
    default_config_text,
    load_settings,
)
from runctl_tui.providers.base import AnyProvider
from runctl_tui.services.fleet import Fleet
from runctl_tui.text import clean

if TYPE_CHECKING:
    import psutil

    from runctl_tui.checkpoints.report import CheckpointReport
    from runctl_tui.logs.source import LogSource
    from runctl_tui.remote.ssh import SshTarget

log = logging.getLogger("runctl_tui")

EXIT_OK, EXIT_PROVIDER_FAILED, EXIT_USAGE = 0, 1, 2
QUIET_LOGGERS = (
    "botocore",
    "boto3",
    "urllib3",
    "s3transfer",
    "werkzeug",
    "moto",
    "asyncio",
    "asyncssh",
)
"""Third-party loggers kept at WARNING even with --debug: their debug output carries request
headers, including session tokens."""


def log_path() -> Path:
    """The app's diagnostic log file."""
    return platformdirs.user_log_path(APP_NAME) / "runctl-tui.log"


def setup_logging(debug: bool, *, to_stderr_on_failure: bool) -> str | None:
    """Send diagnostics to the log file, never to the terminal while the dashboard is on it.

    If the log file cannot be opened, returns one line saying so; diagnostics then go to
    stderr (WARNING and above) when ``to_stderr_on_failure``, else nowhere.
    """
    path = log_path()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    # A failed write later on (a full disk) must not print a traceback over the dashboard.
    logging.raiseExceptions = to_stderr_on_failure
    handler: logging.Handler
    problem: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Opening a FIFO for append would wait for a reader: check before opening.
        if path.exists() and not path.is_file():
            raise OSError(f"not a regular file: {path}")
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    except OSError as exc:
        problem = clean(f"log unavailable: {path}: {exc.strerror or 'not a regular file'}")
        if to_stderr_on_failure:
            handler = logging.StreamHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            handler.setFormatter(logging.Formatter(f"{APP_NAME}: %(levelname)s: %(message)s"))
        else:
            handler = logging.NullHandler()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    if problem is not None:
        log.warning("%s", problem)
    return problem


def has_terminal() -> bool:
    """Whether stdin and stdout are both a terminal, as the dashboard needs."""
    for stream in (sys.stdin, sys.stdout):
        try:
            if stream is None or not stream.isatty():
                return False
        except (OSError, ValueError):
            return False
    return True


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help=f"config file (default: ${CONFIG_ENV}, else {config_path(None)})",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        default=default if suppress else False,
        help="use the built-in demo fleet (a local EC2 server; no credentials, no network)",
    )
    parser.add_argument(
        "--readonly",
        action="store_true",
        default=default if suppress else False,
        help="disable stop, start and terminate",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default if suppress else False,
        help=f"verbose diagnostics in {log_path()}",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="runctl-tui",
        description="A keyboard-driven dashboard for ML training machines on AWS EC2.",
        epilog="With no command, opens the dashboard. Keys: press ? inside it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    status = commands.add_parser(
        "status", help="print the fleet once and exit (1 if a provider failed)"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _common(status, suppress=True)
    _costs_parser(commands)
    tail = commands.add_parser(
        "tail",
        help="follow a log (a path, [user@]host:PATH or ssh://user@host:port/PATH)",
        description="Follow a training log in the logs pane, or print it with --no-tui.",
    )
    tail.add_argument(
        "source",
        metavar="SOURCE",
        nargs="+",
        help="PATH, [user@]host:PATH or ssh://host/PATH; several open as tabs (one with --no-tui)",
    )
    tail.add_argument(
        "--no-tui",
        action="store_true",
        help="print the lines to stdout as they arrive (for pipes), until Ctrl-C",
    )
    tail.add_argument(
        "--pid",
        type=int,
        metavar="PID",
        help="with --no-tui: stop once process PID has exited and its last lines are printed "
        "(local files)",
    )
    _common(tail, suppress=True)
    _checkpoints_parser(commands)
    config = commands.add_parser("config", help="where the config lives; write a default one")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    init = config_commands.add_parser("init", help="write a commented default config file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    _common(init, suppress=True)
    path = config_commands.add_parser("path", help="print the config path in force")
    _common(path, suppress=True)
    return parser


MAX_CHECKPOINT_DEPTH = 16


def _date(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight here) or an ISO time, for ``--since``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _costs_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    costs = commands.add_parser(
        "costs",
        help="poll once, record it in the spend ledger and print what the fleet costs",
        description="Per resource: provider, rate and where it came from, hours and cost; then "
        "burn rate, spend today and this month, projections and budgets, per provider and in "
        "total. Spend of earlier polls comes from the ledger.",
    )
    output = costs.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--csv", action="store_true", help="one CSV row per resource")
    costs.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="report spend since DATE (YYYY-MM-DD, midnight here) instead of this month",
    )
    costs.add_argument(
        "--reset-ledger",
        action="store_true",
        help="wipe the spend ledger (asks first; --yes for scripts) and exit",
    )
    costs.add_argument("--yes", action="store_true", help="with --reset-ledger: do not ask")
    _common(costs, suppress=True)


def _depth(text: str) -> int:
    try:
        depth = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {clean(text)!r}") from None
    if not 0 <= depth <= MAX_CHECKPOINT_DEPTH:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_CHECKPOINT_DEPTH}")
    return depth


def _checkpoints_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from runctl_tui.checkpoints.listing import DEFAULT_DEPTH

    checkpoints = commands.add_parser(
        "checkpoints",
        help="list (and inspect) the checkpoints in a directory, on an SSH host or on S3",
        description="Open the dashboard on the checkpoints pane at LOCATION; with --no-tui, "
        "--json, --inspect or without a terminal, print the checkpoints, newest first, with the "
        "newest (*) and best (B) marked, and inspect them without loading them. Exit status: 0 "
        "listed, 1 the location could not be listed, 2 usage error.",
    )
    checkpoints.add_argument(
        "location",
        metavar="LOCATION",
        help="PATH, [user@]host:PATH, ssh://user@host:port/PATH or s3://bucket/prefix",
    )
    checkpoints.add_argument(
        "--json", action="store_true", help="print the runctl-tui/checkpoints/v1 JSON document"
    )
    checkpoints.add_argument(
        "--no-tui",
        action="store_true",
        help="print the listing as text instead of opening the checkpoints pane (the default "
        "without a terminal)",
    )
    which = checkpoints.add_mutually_exclusive_group()
    which.add_argument(
        "--inspect",
        metavar="NAME",
        action="append",
        default=[],
        help="also inspect checkpoint NAME (as listed, or its last part); may be repeated",
    )
    which.add_argument("--inspect-all", action="store_true", help="inspect every checkpoint")
    checkpoints.add_argument(
        "--depth",
        type=_depth,
        default=DEFAULT_DEPTH,
        metavar="N",
        help=f"directory levels searched below LOCATION (default {DEFAULT_DEPTH})",
    )
    _common(checkpoints, suppress=True)


def _config_command(args: argparse.Namespace) -> int:
    target = config_path(args.config)
    if args.config_command == "path":
        emit(str(target))
        return EXIT_OK
    if target.exists() and not args.force:
        print(f"{APP_NAME}: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_USAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(default_config_text(), encoding="utf-8")
    emit(f"wrote {target}")
    return EXIT_OK


DEMO_POLL_DEADLINE = 90.0


def _build_fleet(settings: Settings, demo: bool) -> tuple[Fleet, list[str]]:
    from runctl_tui.audit import Journal

    warnings: list[str] = []
    providers: list[AnyProvider]
    if demo:
        from runctl_tui.demo import DemoBackend, demo_providers

        providers = list(demo_providers(DemoBackend(), settings.protect_tag))
    else:
        from runctl_tui.providers.registry import load_providers

        found, warnings = load_providers(settings)
        providers = list(found)
    from runctl_tui.services.costs import CostService

    cost_settings = settings.costs
    if demo:
        cost_settings = demo_cost_settings(cost_settings)
    costs = CostService(
        cost_settings,
        # The demo's made-up spend never mixes with the real ledger.
        path=demo_ledger() if demo else None,
        poll_seconds=settings.poll_seconds,
    )
    fleet = Fleet(
        providers,
        journal=Journal(),
        readonly=settings.readonly,
        costs=costs,
        # The demo's first poll starts and seeds its servers: on a busy machine that alone can
        # take longer than any real endpoint should.
        poll_deadline=max(settings.poll_deadline_seconds, DEMO_POLL_DEADLINE)
        if demo
        else settings.poll_deadline_seconds,
    )
    return fleet, warnings


DEMO_DAILY_BUDGET = 1000
DEMO_IDLE_MINUTES = 2.0


def demo_ledger() -> Path:
    """A ledger of this demo run only, removed at exit: the demo's machines are made up anew
    each run, and their spend never mixes with the real ledger's."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="runctl-tui-demo-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder) / "ledger.sqlite3"


def demo_cost_settings(costs: CostsSettings) -> CostsSettings:
    """The demo shows a budget and an idle GPU within minutes: a daily budget and a short idle
    period, where the config sets none."""
    from decimal import Decimal

    update: dict[str, object] = {}
    if costs.daily_budget is None and costs.monthly_budget is None:
        update["daily_budget"] = Decimal(DEMO_DAILY_BUDGET)
    if "idle_minutes" not in costs.model_fields_set:
        update["idle_minutes"] = DEMO_IDLE_MINUTES
    return costs.model_copy(update=update)


def _silence_stdout() -> None:
    """Point stdout at the null device, so the exit-time flush cannot hit the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def emit(text: str) -> None:
    """Print ``text`` to stdout; a reader that has gone away (``| head``) is no error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _silence_stdout()


def _status_command(settings: Settings, args: argparse.Namespace) -> int:
    from runctl_tui.views import json_report, text_report

    fleet, warnings = _build_fleet(settings, args.demo)
    for warning in warnings:
        print(f"{APP_NAME}: warning: {warning}", file=sys.stderr)
    snapshot = fleet.poll(deadline=fleet.poll_deadline, close=True)
    code = EXIT_OK if snapshot.all_ok else EXIT_PROVIDER_FAILED
    costs = fleet.cost_report
    spent = (
        {line.key: line.since_launch_usd for line in costs.lines if line.since_launch_usd}
        if costs is not None
        else None
    )
    if args.json:
        report = json.dumps(json_report(snapshot, spent), indent=2)
    else:
        report = text_report(snapshot, spent)
        if costs is not None:
            from runctl_tui.models import format_usd

            total = costs.total
            report += (
                f"\nspend: today {total.marker}{format_usd(total.today_usd)} · this month "
                f"{total.marker}{format_usd(total.month_usd)} (runctl-tui costs for more)"
            )
    emit(report)
    return code


def _reset_ledger(settings: Settings, args: argparse.Namespace) -> int:
    from runctl_tui.costs.ledger import LedgerError
    from runctl_tui.services.costs import CostService

    costs = CostService(settings.costs, record=False)
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"{APP_NAME}: --reset-ledger asks first; without a terminal add --yes",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(
            f"This forgets every recorded spend in {costs.path} (today, this month and "
            "everything before). Type 'reset' to wipe it: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        try:
            answer = sys.stdin.readline().strip()
        except KeyboardInterrupt:
            answer = ""
        if answer != "reset":
            print(f"{APP_NAME}: nothing wiped", file=sys.stderr)
            return EXIT_USAGE
    try:
        costs.reset_ledger()
    except LedgerError as exc:
        print(f"{APP_NAME}: {clean(exc)}", file=sys.stderr)
        return EXIT_PROVIDER_FAILED
    finally:
        costs.close()
    print(f"{APP_NAME}: ledger wiped: {costs.path}", file=sys.stderr)
    return EXIT_OK


def _costs_command(settings: Settings, args: argparse.Namespace) -> int:
    from runctl_tui.costs.output import csv_costs, json_costs, text_costs

    if args.reset_ledger:
        return _reset_ledger(settings, args)
    fleet, warnings = _build_fleet(settings, args.demo)
    for warning in warnings:
        print(f"{APP_NAME}: warning: {warning}", file=sys.stderr)
    snapshot = fleet.poll(deadline=fleet.poll_deadline, close=True)
    code = EXIT_OK if snapshot.all_ok else EXIT_PROVIDER_FAILED
    for status in snapshot.statuses:
        if not status.ok and status.configured:
            print(f"{APP_NAME}: {status.provider}: {clean(status.error)}", file=sys.stderr)
    costs = fleet.costs
    assert costs is not None
    report = costs.read(snapshot, since=args.since) if args.since else fleet.cost_report
    costs.close()
    if report is None:
        print(f"{APP_NAME}: no cost report: see the log for why", file=sys.stderr)
        return EXIT_PROVIDER_FAILED
    if report.ledger_error:
        print(f"{APP_NAME}: warning: {clean(report.ledger_error)}", file=sys.stderr)
    if args.json:
        emit(json.dumps(json_costs(report), indent=2))
    elif args.csv:
        emit(csv_costs(report))
    else:
        period = f"since {args.since:%Y-%m-%d}" if args.since else "this month"
        emit(text_costs(report, period=period))
    return code


def _write_lines(lines: Sequence[str]) -> None:
    """Write ``lines`` to stdout at once (raises BrokenPipeError when the reader is gone)."""
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def reader_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe whose reader has gone away (``| head`` has exited)."""
    import select
    import stat

    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, 0)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


async def _close_when_reader_leaves(source: LogSource, every: float = 0.2) -> None:
    """Stop following once stdout's reader is gone, as ``tail -f | head`` should, even while
    the log is quiet and nothing is written that would fail."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return
    while True:
        if reader_gone(fd):
            break
        await asyncio.sleep(every)
    _silence_stdout()
    await source.close()


async def _finish_when_gone(source: LogSource, process: psutil.Process, every: float = 0.1) -> None:
    """Once ``process`` has exited, have ``source`` read the file to its end and stop."""
    import psutil

    pid = process.pid
    waiter = None
    try:
        # A pidfd becomes readable the moment the process exits; polling is the fallback.
        waiter = os.pidfd_open(pid)
    except (AttributeError, OSError):
        waiter = None
    try:
        if waiter is not None and process.is_running():
            exited = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(waiter, exited.set)
            try:
                await exited.wait()
            finally:
                loop.remove_reader(waiter)
        else:
            while True:
                try:
                    if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                        break
                except psutil.Error:
                    break
                await asyncio.sleep(every)
    finally:
        if waiter is not None:
            os.close(waiter)
    finish = getattr(source, "finish", None)
    if finish is not None:
        await finish(f"process {pid} exited")
    else:
        await source.close()


async def print_log(source_text: str, pid: int | None = None) -> int:
    """Follow ``source_text`` and print its lines to stdout; states go to stderr, one line
    each. With ``pid``, stop once that process has exited and the file is read to its end.
    Returns the exit code (1 when the source failed)."""
    from runctl_tui.logs.decode import LineDecoder
    from runctl_tui.logs.remote import parse_log_source
    from runctl_tui.logs.source import Chunk, Rotated, SourceState

    try:
        target, path = parse_log_source(source_text)
    except ValueError as exc:
        print(f"{APP_NAME}: {clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    source: LogSource
    hub = None
    if pid is not None and target is not None:
        print(
            f"{APP_NAME}: --pid is for local files; follow a remote log without it", file=sys.stderr
        )
        return EXIT_USAGE
    process = None
    if pid is not None:
        import psutil

        try:
            # The start time is part of the identity: a pid alone may be reused.
            process = psutil.Process(pid)
            process.create_time()
        except (psutil.Error, ValueError, OverflowError):
            print(f"{APP_NAME}: no process with pid {pid}", file=sys.stderr)
            return EXIT_USAGE
    if target is None:
        from runctl_tui.logs.local import LocalFileSource

        source = LocalFileSource(path)
    else:
        from runctl_tui.logs.remote import RemoteFileSource
        from runctl_tui.remote.ssh import SshHub

        hub = SshHub()
        source = RemoteFileSource(hub, target, path)
    watcher = asyncio.create_task(_close_when_reader_leaves(source))
    ender = None if process is None else asyncio.create_task(_finish_when_gone(source, process))
    decoder = LineDecoder()
    opened = False
    generation = 0
    code = EXIT_OK
    try:
        async for event in source.events(None):
            if isinstance(event, Chunk):
                if not opened or event.generation != generation:
                    # The first chunk may start inside a line: skip to the next whole one.
                    decoder.reset(
                        event.offset, event.generation, align=not opened and event.offset > 0
                    )
                    opened, generation = True, event.generation
                _write_lines([line.styled.text for line in decoder.feed(event)])
            elif isinstance(event, Rotated):
                opened, generation = True, event.generation
                decoder.reset(0, event.generation)
                print(f"{APP_NAME}: {source.name} was {event.reason}", file=sys.stderr)
            else:
                if event.state is SourceState.FAILED:
                    print(f"{APP_NAME}: {clean(event.detail)}", file=sys.stderr)
                    code = EXIT_PROVIDER_FAILED
                    break
                if event.state in (SourceState.RECONNECTING, SourceState.WAITING):
                    print(f"{APP_NAME}: {clean(event.detail)}", file=sys.stderr)
        tail = decoder.flush()
        if tail is not None:
            _write_lines([tail.styled.text])
    except BrokenPipeError:
        _silence_stdout()
    finally:
        watcher.cancel()
        if ender is not None:
            ender.cancel()
        await source.close()
        if hub is not None:
            await hub.close()
    return code


def _tail_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(print_log(args.source[0], args.pid))
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK


async def _sftp_checkpoints(
    settings: Settings, location: str, target: SshTarget, path: str, args: argparse.Namespace
) -> CheckpointReport:
    from runctl_tui.checkpoints.report import sftp_report
    from runctl_tui.remote.ssh import SshHub

    hub = SshHub(connect_timeout=settings.ssh.connect_timeout, attempts=2)
    try:
        return await sftp_report(
            hub,
            target,
            location,
            path,
            depth=args.depth,
            names=args.inspect,
            inspect_all=args.inspect_all,
        )
    finally:
        await hub.close()


def _checkpoints_in_pane(args: argparse.Namespace) -> bool:
    """Whether ``checkpoints`` opens the dashboard: a terminal, and no output asked for."""
    asked_for_text = args.json or args.no_tui or args.inspect or args.inspect_all
    return not asked_for_text and has_terminal()


def _checkpoints_command(settings: Settings, args: argparse.Namespace) -> int:
    """List (and inspect) the checkpoints at ``args.location``; print text or JSON."""
    from runctl_tui.checkpoints.listing import LocationKind
    from runctl_tui.checkpoints.report import (
        UnknownCheckpoint,
        local_report,
        parse_location,
        report_json,
        report_lines,
        s3_report,
    )

    try:
        location = parse_location(args.location)
    except ValueError as exc:
        print(f"{APP_NAME}: {clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if location.kind is LocationKind.S3:
            from runctl_tui.checkpoints.listing_s3 import s3_client
            from runctl_tui.providers.aws import Ec2Clients

            report = s3_report(
                s3_client(Ec2Clients.from_settings(settings.aws)),
                location.path,
                depth=args.depth,
                names=args.inspect,
                inspect_all=args.inspect_all,
            )
        elif location.target is not None:
            report = asyncio.run(
                _sftp_checkpoints(settings, location.text, location.target, location.path, args)
            )
        else:
            report = local_report(
                location.text,
                location.path,
                depth=args.depth,
                names=args.inspect,
                inspect_all=args.inspect_all,
            )
    except UnknownCheckpoint as exc:
        print(f"{APP_NAME}: {clean(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        emit(json.dumps(report_json(report), indent=2))
    elif report.ok:
        emit("\n".join(report_lines(report)))
    if report.listing.error is not None:
        print(f"{APP_NAME}: {clean(report.listing.error)}", file=sys.stderr)
        return EXIT_PROVIDER_FAILED
    return EXIT_OK


def _dashboard(settings: Settings, args: argparse.Namespace, log_problem: str | None) -> int:
    from runctl_tui.tui.app import RunctlApp

    fleet, warnings = _build_fleet(settings, args.demo)
    if log_problem is not None:
        warnings.append(log_problem)
    open_log = tuple(args.source) if args.command == "tail" else ()
    open_checkpoints = args.location if args.command == "checkpoints" else None
    app = RunctlApp(
        settings,
        fleet,
        demo=args.demo,
        startup_warnings=warnings,
        open_log=open_log,
        open_checkpoints=open_checkpoints,
    )
    app.run()
    return app.return_code or EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    # The entry point holds collection off for start-up; the dashboard turns it back on after
    # its first poll, every other command right away.
    if args.command is not None:
        gc.enable()
    if args.command == "config":
        return _config_command(args)
    if args.command == "tail" and args.pid is not None and not args.no_tui:
        print(f"{APP_NAME}: --pid goes with --no-tui", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "tail" and args.no_tui and len(args.source) > 1:
        print(
            f"{APP_NAME}: --no-tui prints one log; run one {APP_NAME} tail --no-tui per file, "
            f"or drop --no-tui to open them as tabs",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.command == "tail" and args.no_tui:
        setup_logging(args.debug, to_stderr_on_failure=True)
        return _tail_command(args)
    checkpoints_pane = args.command == "checkpoints" and _checkpoints_in_pane(args)
    if checkpoints_pane:
        from runctl_tui.checkpoints.report import parse_location

        try:
            parse_location(args.location)
        except ValueError as exc:
            print(f"{APP_NAME}: {clean(exc)}", file=sys.stderr)
            return EXIT_USAGE
    dashboard = args.command is None or args.command == "tail" or checkpoints_pane
    # The dashboard owns the terminal, so nothing of ours may be printed over it.
    log_problem = setup_logging(args.debug, to_stderr_on_failure=not dashboard)
    overrides = {"readonly": True} if args.readonly else {}
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"{APP_NAME}: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if dashboard and not has_terminal():
        print(
            f"{APP_NAME}: the dashboard needs a terminal (stdin and stdout); "
            f"use '{APP_NAME} status' or 'status --json' in scripts and pipes"
            f"{f', and {APP_NAME} tail --no-tui to print a log' if args.command == 'tail' else ''}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    log.info(
        "runctl-tui %s starting (demo=%s, readonly=%s)", __version__, args.demo, settings.readonly
    )
    try:
        if args.command == "status":
            return _status_command(settings, args)
        if args.command == "costs":
            return _costs_command(settings, args)
        if args.command == "checkpoints" and not checkpoints_pane:
            return _checkpoints_command(settings, args)
        return _dashboard(settings, args, log_problem)
    except KeyboardInterrupt:
        return 130
