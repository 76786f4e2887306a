"""The ``runctl-tui`` command end to end, in a subprocess, as a user or a script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runctl_tui import __version__
from runctl_tui.cli import log_path
from runctl_tui.config import Settings, default_config_path, default_config_text, load_settings
from tests.integration.conftest import Ec2Admin

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``runctl-tui ARGS`` with the test's (isolated) environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "runctl_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
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
    assert [p["name"] for p in report["providers"]] == ["aws"]
    assert report["providers"][0]["ok"] is True
    assert len(report["instances"]) == 11
    assert {i["region"] for i in report["instances"]} == {"us-east-1", "eu-west-1"}
    assert sum(i["protected"] for i in report["instances"]) == 1
    assert report["totals"]["instances"] == 11
    assert report["totals"]["running"] == 9
    assert float(report["totals"]["hourly_usd"]) > 0
    assert done.stderr == ""


@pytest.mark.usefixtures("no_credentials")
def test_status_without_credentials_fails_cleanly() -> None:
    done = run("status")

    assert done.returncode == 1
    assert "aws: no AWS credentials found" in done.stdout
    assert "Fix: " in done.stdout
    assert_no_traceback(done)


@pytest.mark.usefixtures("no_credentials")
def test_status_json_without_credentials() -> None:
    done = run("status", "--json")

    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    (aws,) = report["providers"]
    assert (aws["ok"], aws["error"]) == (False, "no AWS credentials found")
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
    assert instances[east]["hourly_usd"] == "21.96"
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


def test_config_init_writes_a_loadable_file_and_refuses_to_overwrite() -> None:
    target = default_config_path()

    done = run("config", "init")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {target}"
    assert target.read_text("utf-8") == default_config_text()
    assert load_settings() == Settings()

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
    assert load_settings(target) == Settings()
    assert not default_config_path().exists()


def test_config_path_precedence(tmp_path: Path) -> None:
    from_env = str(tmp_path / "env.toml")
    from_flag = str(tmp_path / "flag.toml")

    assert run("config", "path").stdout.strip() == str(default_config_path())
    assert run("config", "path", env={"RUNCTL_TUI_CONFIG": from_env}).stdout.strip() == from_env
    with_both = {"RUNCTL_TUI_CONFIG": from_env}
    assert run("--config", from_flag, "config", "path", env=with_both).stdout.strip() == from_flag
    assert run("config", "path", "--config", from_flag, env=with_both).stdout.strip() == from_flag
