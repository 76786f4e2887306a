"""The logs pane on a remote log over a real OpenSSH sshd on 127.0.0.1: an unknown host key is
shown with its fingerprint and trusted (written to known_hosts) only when the user says so;
keys typed ahead of the question never trust it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes.logs import LogsPane
from runctl_tui.tui.screens.trust import TrustHostKeyScreen
from tests.integration.ssh_servers import Sshd, ssh_keygen_fingerprint

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

SIZE = (120, 36)


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 20.0) -> None:
    """Pause until ``check()`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


def app_on(source: str, tmp_path: Path) -> RunctlApp:
    """The dashboard with no provider, opened on ``source``."""
    fleet = Fleet([], journal=Journal(tmp_path / "journal.jsonl"))
    return RunctlApp(Settings(poll_seconds=3600), fleet, open_log=source)


def pane(app: RunctlApp) -> LogsPane:
    """The logs pane."""
    return app.screen_stack[0].query_one(LogsPane)


def header(app: RunctlApp) -> str:
    """The shown log's header, plain."""
    tab = pane(app).tab
    return "" if tab is None else str(tab.query_one(".log-header").render())


@pytest.fixture
def remote_log(real_sshd: Sshd, isolated_environment: Path, tmp_path: Path) -> tuple[str, Path]:
    """A log on the sshd's machine, and the ``ssh://`` source that names it."""
    log = tmp_path / "remote.log"
    log.write_text("step 1 loss 0.9\nstep 2 loss 0.8\n")
    return f"ssh://{real_sshd.user}@127.0.0.1:{real_sshd.port}{log}", log


async def test_an_unknown_key_is_shown_then_trusted_and_the_log_followed(
    real_sshd: Sshd, isolated_environment: Path, tmp_path: Path, remote_log: tuple[str, Path]
) -> None:
    source, log = remote_log
    known_hosts = isolated_environment / ".ssh" / "known_hosts"
    app = app_on(source, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrustHostKeyScreen))
        shown = app.screen
        assert isinstance(shown, TrustHostKeyScreen)
        fingerprint = ssh_keygen_fingerprint(real_sshd.host_key_path.with_suffix(".pub"))
        assert shown.fingerprint == fingerprint
        assert shown.known_hosts == str(known_hosts)
        assert not known_hosts.exists()
        await pilot.pause(0.7)
        await pilot.press("y")
        logs = pane(app)
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 2)
        assert f"[127.0.0.1]:{real_sshd.port}" in known_hosts.read_text()
        with log.open("a") as handle:
            handle.write("step 3 loss 0.7\n")
        await until(pilot, lambda: logs.document is not None and len(logs.document) == 3)
        assert "following" in header(app)


async def test_declining_leaves_known_hosts_alone_and_says_why(
    isolated_environment: Path, tmp_path: Path, remote_log: tuple[str, Path]
) -> None:
    source, _ = remote_log
    app = app_on(source, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrustHostKeyScreen))
        await pilot.pause(0.2)
        # A cancel counts as soon as the dialog is on screen.
        await pilot.press("n")
        await until(pilot, lambda: "not trusted" in header(app))
        assert "trust it with" in header(app)
        assert not (isolated_environment / ".ssh" / "known_hosts").exists()


async def test_keys_typed_before_the_question_never_trust(
    isolated_environment: Path, tmp_path: Path, remote_log: tuple[str, Path]
) -> None:
    source, _ = remote_log
    app = app_on(source, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrustHostKeyScreen))
        # At once, as a burst typed ahead would arrive: ignored, and the dialog says so.
        await pilot.press("y", "y", "enter")
        screen = app.screen
        assert isinstance(screen, TrustHostKeyScreen)
        assert screen.ignored >= 2
        assert not (isolated_environment / ".ssh" / "known_hosts").exists()
