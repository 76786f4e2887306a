"""The ``runctl-tui`` command end to end, in a subprocess, as a user or a script runs it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest

from runctl_tui import __version__, cli
from runctl_tui.cli import log_path, setup_logging
from runctl_tui.config import (
    LocalSettings,
    RunPodSettings,
    Settings,
    default_config_path,
    default_config_text,
    load_settings,
)
from runctl_tui.models import FleetSnapshot
from runctl_tui.services.fleet import Fleet
from runctl_tui.text import clean
from tests.integration.conftest import Ec2Admin, HostileFleet

pytestmark = pytest.mark.integration


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``runctl-tui ARGS`` with the test's (isolated) environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "runctl_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout
    assert "Traceback" not in done.stderr


def test_installed_entry_point_reports_its_version() -> None:
    script = Path(sys.executable).with_name("runctl-tui")

    done = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0
    assert done.stdout.strip() == f"runctl-tui {__version__}"


def test_help_lists_commands_and_options() -> None:
    done = run("--help")

    assert done.returncode == 0
    for word in ("status", "config", "--config", "--demo", "--readonly", "--debug", "--version"):
        assert word in done.stdout
    assert run("status", "--help").stdout.count("--json") >= 1


def test_status_demo_json() -> None:
    done = run("status", "--demo", "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["schema"] == "runctl-tui/status/v1"
    assert report["ok"] is True
    assert [p["name"] for p in report["providers"]] == ["aws", "runpod", "local", "ssh"]
    assert all(p["ok"] for p in report["providers"])
    by_provider = Counter(i["provider"] for i in report["instances"])
    # EC2 in two regions, the stand-in's pods, this machine and its training run, and the lab
    # box over SSH with its own run.
    assert by_provider == {"aws": 11, "runpod": 5, "local": 2, "ssh": 2}
    kinds = Counter((i["provider"], i["kind"]) for i in report["instances"])
    assert kinds[("local", "process")] == kinds[("ssh", "process")] == 1
    assert kinds[("local", "host")] == kinds[("ssh", "host")] == 1
    ec2 = [i for i in report["instances"] if i["provider"] == "aws"]
    assert {i["region"] for i in ec2} == {"us-east-1", "eu-west-1"}
    assert sum(i["protected"] for i in ec2) == 1
    assert report["totals"]["instances"] == 20
    assert report["totals"]["running"] == sum(i["state"] == "running" for i in report["instances"])
    assert float(report["totals"]["hourly_usd"]) > 0
    assert done.stderr == ""


@pytest.mark.usefixtures("no_credentials")
def test_status_without_any_aws_setup_says_not_configured() -> None:
    done = run("status")

    # Nothing configured is not a failure: the exit status counts configured providers only.
    assert done.returncode == 0
    assert "aws: not configured: no AWS credentials found" in done.stdout
    assert "Set up: " in done.stdout
    assert_no_traceback(done)


@pytest.mark.usefixtures("no_credentials")
def test_status_json_without_credentials() -> None:
    done = run("status", "--json")

    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["ok"] is True
    (aws,) = report["providers"]
    assert (aws["ok"], aws["configured"]) == (False, False)
    assert aws["error"] == "not configured: no AWS credentials found"
    assert aws["hint"]
    assert report["instances"] == []


def test_status_against_moto_through_aws_endpoint_url(ec2: Ec2Admin, tmp_path: Path) -> None:
    east = ec2.launch("us-east-1", "p4d.24xlarge", name="trainer", spot="persistent")
    west = ec2.launch("eu-west-1", "g5.xlarge", name="eval", stopped=True)
    config = tmp_path / "config.toml"
    config.write_text('[aws]\nregions = ["us-east-1", "eu-west-1"]\n', encoding="utf-8")

    done = run("--config", str(config), "status", "--json", env={"AWS_ENDPOINT_URL": ec2.url})

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    instances = {i["id"]: i for i in report["instances"]}
    assert set(instances) == {east, west}
    assert instances[east]["name"] == "trainer"
    assert instances[east]["gpus"] == {"count": 8, "model": "A100", "memory_mib": 40960}
    assert instances[east]["spot_request_type"] == "persistent"
    # A spot instance is priced at its zone's spot price (moto's history has made-up prices).
    assert instances[east]["rate_source"] == "spot price history"
    assert Decimal(instances[east]["hourly_usd"]) > 0
    assert instances[west]["state"] == "stopped"
    assert instances[west]["region"] == "eu-west-1"


def test_status_text_against_moto(ec2: Ec2Admin, tmp_path: Path) -> None:
    instance_id = ec2.launch("eu-west-1", "g5.xlarge", name="eval", tags={"runctl:protect": "1"})
    config = tmp_path / "config.toml"
    config.write_text('[aws]\nregions = ["eu-west-1"]\n', encoding="utf-8")

    done = run("status", "--config", str(config), env={"AWS_ENDPOINT_URL_EC2": ec2.url})

    assert done.returncode == 0, done.stdout + done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.startswith("PROVIDER")
    assert row.split()[:4] == ["aws", "eu-west-1", "eval", instance_id]
    assert row.endswith("yes")
    assert "aws: 1 instances, refreshed" in done.stdout


def test_debug_diagnostics_go_to_the_log_file_without_secrets(
    ec2: Ec2Admin, tmp_path: Path
) -> None:
    ec2.launch("us-east-1")
    config = tmp_path / "config.toml"
    config.write_text('[aws]\nregions = ["us-east-1"]\n', encoding="utf-8")
    token = "session-token-that-must-not-be-logged"

    done = run(
        "--debug",
        "--config",
        str(config),
        "status",
        env={"AWS_ENDPOINT_URL": ec2.url, "AWS_SESSION_TOKEN": token},
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    log = log_path().read_text("utf-8")
    assert "runctl-tui" in log
    assert "starting" in log
    assert token not in log


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("poll_seconds = 10\n[aws\n", 2, ["invalid TOML"]),
        (
            "readonly = false\npoll_secnds = 3\n",
            2,
            ["'poll_secnds'", "did you mean 'poll_seconds'"],
        ),
        ('[aws]\nenabled = true\nregions = ["useast1"]\n', 3, ["'aws.regions'", "'useast1'"]),
        ('poll_seconds = "fast"\n', 1, ["'poll_seconds'"]),
        (
            '[keymap]\nstop-instance = "x"\nrefresh = "q"\n',
            3,
            ["key 'keymap.refresh'", "'q' is already the key of quit"],
        ),
        ('[keymap]\n"[b]stop[/b]" = "x"\n', 2, ["unknown binding id '[b]stop[/b]'"]),
        ('[keymap]\nquit = ""\n', 2, ["quit needs at least one key"]),
        ('[keymap]\nhelp = "ctrl+shift+alt+f13"\n', 2, ["'ctrl+shift+alt+f13'"]),
        ("[aws]\nread_timeout = 0\n", 2, ["'aws.read_timeout'"]),
    ],
)
def test_bad_config_exits_2_with_one_line(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")

    done = run("--config", str(config), "status")

    assert done.returncode == 2
    assert done.stdout == ""
    (message,) = done.stderr.splitlines()
    assert message.startswith(f"runctl-tui: config error: {config}:{line}: ")
    for word in words:
        assert word in message
    assert_no_traceback(done)


def test_bad_config_from_the_variable_stops_the_dashboard_too(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("colour = 'dark'\n", encoding="utf-8")

    done = run(env={"RUNCTL_TUI_CONFIG": str(config)})

    assert done.returncode == 2
    assert done.stderr.strip() == f"runctl-tui: config error: {config}:1: unknown key 'colour'"


def test_missing_config_file_given_explicitly(tmp_path: Path) -> None:
    done = run("--config", str(tmp_path / "absent.toml"), "status")

    assert done.returncode == 2
    assert done.stderr.strip().endswith("absent.toml: no such config file")


QUIET = Settings(local=LocalSettings(enabled=False), runpod=RunPodSettings(enabled=False))
"""The defaults as the test environment changes them."""


def test_config_init_writes_a_loadable_file_and_refuses_to_overwrite() -> None:
    target = default_config_path()

    done = run("config", "init")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {target}"
    assert target.read_text("utf-8") == default_config_text()
    # The test environment turns the local provider off; the file itself holds the defaults.
    assert load_settings() == QUIET

    target.write_text("poll_seconds = 30\n", encoding="utf-8")
    again = run("config", "init")

    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "--force" in again.stderr
    assert target.read_text("utf-8") == "poll_seconds = 30\n"

    forced = run("config", "init", "--force")

    assert forced.returncode == 0
    assert target.read_text("utf-8") == default_config_text()


def test_config_init_at_an_explicit_path(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "runctl.toml"

    done = run("config", "init", "--config", str(target))

    assert done.returncode == 0, done.stderr
    assert load_settings(target) == QUIET
    assert not default_config_path().exists()


def test_config_path_precedence(tmp_path: Path) -> None:
    from_env = str(tmp_path / "env.toml")
    from_flag = str(tmp_path / "flag.toml")

    assert run("config", "path").stdout.strip() == str(default_config_path())
    assert run("config", "path", env={"RUNCTL_TUI_CONFIG": from_env}).stdout.strip() == from_env
    with_both = {"RUNCTL_TUI_CONFIG": from_env}
    assert run("--config", from_flag, "config", "path", env=with_both).stdout.strip() == from_flag
    assert run("config", "path", "--config", from_flag, env=with_both).stdout.strip() == from_flag


def test_bad_keymap_variable_exits_2_naming_it() -> None:
    done = run("status", env={"RUNCTL_TUI_KEYMAP__STOP_INSTANCE": "[@click=app.quit]"})

    assert done.returncode == 2
    assert done.stdout == ""
    (message,) = done.stderr.splitlines()
    assert message.startswith(
        "runctl-tui: config error: environment variable RUNCTL_TUI_KEYMAP__STOP_INSTANCE: "
        "key 'keymap.stop-instance': '[@click=app.quit]' is not a key name"
    )


def test_a_fifo_as_config_exits_2_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    started = time.monotonic()

    done = run("--config", str(fifo), "status", timeout=30)

    assert time.monotonic() - started < 20
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"runctl-tui: config error: {fifo}: is a named pipe (FIFO), not a config file"
    )


# Without a terminal --------------------------------------------------------------------------

NO_TERMINAL = (
    "runctl-tui: the dashboard needs a terminal (stdin and stdout); "
    "use 'runctl-tui status' or 'status --json' in scripts and pipes"
)


@pytest.mark.parametrize("args", [(), ("--demo",), ("--readonly",)])
def test_dashboard_refuses_to_start_with_stdout_piped(args: tuple[str, ...]) -> None:
    started = time.monotonic()

    done = run(*args, timeout=30)

    assert time.monotonic() - started < 20
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == NO_TERMINAL + "\n"


def test_dashboard_refuses_a_terminal_on_stdout_only() -> None:
    controller, terminal = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "runctl_tui", "--demo"],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)

    assert done.returncode == 2
    assert done.stderr == NO_TERMINAL + "\n"


def test_the_refusal_comes_before_textual_and_the_fleet() -> None:
    script = (
        "import sys\n"
        "from runctl_tui.cli import main\n"
        "code = main(['--demo'])\n"
        "heavy = sorted({'textual', 'moto', 'boto3'} & {m.split('.')[0] for m in sys.modules})\n"
        "print('imported:', heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [NO_TERMINAL, "imported: []"]


# Into a closed pipe --------------------------------------------------------------------------


def spawn(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]:
    """``runctl-tui ARGS`` started with its stdout and stderr on pipes to this process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runctl_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    return process, process.stdout, process.stderr


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_status_into_a_pipe_closed_before_it_writes(json_flag: tuple[str, ...]) -> None:
    writer, out, err = spawn("--demo", "status", *json_flag)
    # Nobody reads: the report's first write meets a broken pipe.
    out.close()
    errors = err.read().decode()
    code = writer.wait(timeout=120)

    assert code == 0
    assert errors == ""


def test_status_json_piped_into_head() -> None:
    writer, out, err = spawn("--demo", "status", "--json")
    head = subprocess.Popen(["head", "-1"], stdin=out, stdout=subprocess.PIPE)
    # Only head holds the read end now, so its exit closes the pipe.
    out.close()
    first, _ = head.communicate(timeout=120)
    errors = err.read().decode()
    code = writer.wait(timeout=120)

    assert first == b"{\n"
    assert code == 0
    assert errors == ""


def test_status_into_a_reader_that_stops_after_one_line() -> None:
    writer, out, err = spawn("--demo", "status", "--json")
    first = out.readline()
    out.close()
    errors = err.read().decode()
    code = writer.wait(timeout=120)

    assert first == b"{\n"
    assert code == 0
    assert "Traceback" not in errors
    assert errors == ""


def test_a_closed_pipe_keeps_the_failure_exit_status() -> None:
    # Nothing listens on port 9 here: the provider fails at once with connection refused.
    refused = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "RUNCTL_TUI_AWS__MAX_ATTEMPTS": "1"}
    writer, out, err = spawn("status", "--json", env=refused)
    out.close()
    errors = err.read().decode()
    code = writer.wait(timeout=120)

    assert code == 1
    assert errors == ""


# When the log file cannot be opened ----------------------------------------------------------


@pytest.fixture
def unopenable_log(isolated_environment: Path) -> Path:
    """The log's parent made impossible to create: its state directory is a plain file."""
    state = isolated_environment / "xdg_state_home"
    state.write_text("not a directory\n", encoding="utf-8")
    assert log_path().is_relative_to(state)
    return state


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was after an in-process ``setup_logging``."""
    root = logging.getLogger()
    handlers, level, raising = list(root.handlers), root.level, logging.raiseExceptions
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.raiseExceptions = raising
    logging.captureWarnings(False)


@pytest.mark.usefixtures("unopenable_log")
def test_status_without_a_log_file_warns_on_stderr() -> None:
    done = run("--demo", "status", "--json")

    assert done.returncode == 0
    assert json.loads(done.stdout)["ok"] is True
    (warning,) = done.stderr.splitlines()
    assert warning.startswith(f"runctl-tui: WARNING: log unavailable: {log_path()}: ")
    assert_no_traceback(done)


def test_a_fifo_where_the_log_goes_does_not_hang_the_command() -> None:
    log_path().parent.mkdir(parents=True)
    os.mkfifo(log_path())

    done = run("--demo", "status", "--json", timeout=60)

    assert done.returncode == 0
    assert done.stderr == (
        f"runctl-tui: WARNING: log unavailable: {log_path()}: not a regular file\n"
    )


def test_config_path_into_a_closed_pipe() -> None:
    writer, out, err = spawn("config", "path")
    out.close()

    assert writer.wait(timeout=60) == 0
    assert err.read() == b""


@pytest.mark.usefixtures("unopenable_log", "restore_logging")
def test_setup_logging_falls_back_to_stderr_for_commands(
    capfd: pytest.CaptureFixture[str],
) -> None:
    problem = setup_logging(False, to_stderr_on_failure=True)
    logging.getLogger("runctl_tui.test").info("not shown")
    logging.getLogger("runctl_tui.test").error("shown")

    assert problem is not None
    assert problem.startswith(f"log unavailable: {log_path()}: ")
    assert "\n" not in problem
    err = capfd.readouterr().err
    assert err.splitlines() == [f"runctl-tui: WARNING: {problem}", "runctl-tui: ERROR: shown"]


@pytest.mark.usefixtures("unopenable_log", "restore_logging")
def test_setup_logging_keeps_the_dashboard_terminal_clean(
    capfd: pytest.CaptureFixture[str],
) -> None:
    problem = setup_logging(True, to_stderr_on_failure=False)
    logging.getLogger("runctl_tui.test").error("never on the terminal")

    assert problem is not None
    assert problem.startswith(f"log unavailable: {log_path()}: ")
    assert capfd.readouterr() == ("", "")


@pytest.mark.usefixtures("restore_logging")
def test_setup_logging_reports_nothing_when_the_file_opens() -> None:
    assert setup_logging(False, to_stderr_on_failure=True) is None
    assert log_path().exists()


@pytest.mark.usefixtures("unopenable_log", "restore_logging")
def test_the_dashboard_shows_why_the_log_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import runctl_tui.tui.app

    shown: list[list[str]] = []

    class RecordingApp:
        return_code = None

        def __init__(self, *args: object, startup_warnings: list[str], **kwargs: object) -> None:
            shown.append(list(startup_warnings))

        def run(self) -> None:
            """Stands in for the dashboard."""

    monkeypatch.setattr(cli, "has_terminal", lambda: True)
    monkeypatch.setattr(cli, "_build_fleet", lambda settings, demo: (object(), ["a warning"]))
    monkeypatch.setattr(runctl_tui.tui.app, "RunctlApp", RecordingApp)

    assert cli.main([]) == 0

    ((first, problem),) = shown
    assert first == "a warning"
    assert problem.startswith(f"log unavailable: {log_path()}: ")
    assert capfd.readouterr() == ("", "")


def test_status_polls_with_the_configured_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("poll_deadline_seconds = 7\n", encoding="utf-8")
    seen: list[tuple[str, object]] = []
    real_build = cli._build_fleet

    def build(settings: Settings, demo: bool) -> tuple[Fleet, list[str]]:
        fleet, warnings = real_build(settings, demo)
        seen.append(("fleet", fleet.poll_deadline))
        real_poll = fleet.poll

        def poll(deadline: float | None = None, *, close: bool = False) -> FleetSnapshot:
            seen.append(("poll", deadline))
            return real_poll(deadline, close=close)

        monkeypatch.setattr(fleet, "poll", poll)
        return fleet, warnings

    monkeypatch.setattr(cli, "_build_fleet", build)
    monkeypatch.setattr(cli, "setup_logging", lambda debug, to_stderr_on_failure: None)
    monkeypatch.setenv("RUNCTL_TUI_AWS__ENABLED", "false")

    assert cli.main(["--config", str(config), "status", "--json"]) == 0
    assert seen == [("fleet", 7.0), ("poll", 7.0)]


def test_status_over_a_hostile_fleet(hostile_fleet: HostileFleet, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[aws]\nregions = ["{hostile_fleet.region}"]\n', encoding="utf-8")
    env = {"AWS_ENDPOINT_URL": hostile_fleet.url}

    text = run("--config", str(config), "status", env=env)
    as_json = run("--config", str(config), "status", "--json", env=env)

    assert_no_traceback(text)
    assert_no_traceback(as_json)
    lines = text.stdout.splitlines()
    # Header, one line per instance, a blank line, the provider line, the total and the spend.
    assert len(lines) == 1 + len(hostile_fleet.ids) + 4
    assert lines[-1].startswith("spend: today ")
    assert all(clean(line) == line for line in lines)
    report = json.loads(as_json.stdout)
    raw = {i["id"]: i["name"] for i in report["instances"]}
    for label, name in hostile_fleet.names.items():
        assert raw[hostile_fleet.ids[label]] == name


def test_status_lists_runpod_pods_from_the_stand_in() -> None:
    from runctl_tui.runpod_standin import RunPodStandIn, demo_pods

    with RunPodStandIn(demo_pods()) as stand_in:
        done = run(
            "status",
            "--json",
            env={
                "RUNPOD_API_KEY": stand_in.api_key,
                "RUNPOD_API_BASE_URL": stand_in.url,
                "RUNCTL_TUI_AWS__ENABLED": "false",
                "RUNCTL_TUI_RUNPOD__ENABLED": "true",
            },
        )

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    (runpod,) = report["providers"]
    assert (runpod["name"], runpod["ok"]) == ("runpod", True)
    pods = [i for i in report["instances"] if i["provider"] == "runpod"]
    assert len(pods) == len(demo_pods())
    running = [p for p in pods if p["state"] == "running"]
    assert running
    assert all(p["hourly_usd"] != "0.00" for p in running)
    assert stand_in.api_key not in done.stdout + done.stderr
