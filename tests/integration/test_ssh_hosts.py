"""The SSH hosts provider over a real sshd on 127.0.0.1, through the fleet service and the TUI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.models import Action, HostDetails, Instance, InstanceState
from runctl_tui.providers.ssh_hosts import (
    POLL_COMMAND,
    SshHost,
    SshHostsProvider,
    from_settings,
    parse_facts,
    parse_process_id,
    process_id,
)
from runctl_tui.remote.ssh import SshHub, parse_target
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.widgets.instance_table import InstanceTable
from runctl_tui.tui.widgets.provider_bar import ProviderBar
from tests.integration.ssh_servers import Sshd, add_known_host, free_port

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

QUIET = ["runctl-test-no-such-run-*"]
"""Patterns no process matches: these tests look at hosts, not at the runs on this machine."""


def lab_box(sshd: Sshd, label: str = "lab-box") -> SshHost:
    """The real sshd as a configured host."""
    target = parse_target(f"{sshd.user}@127.0.0.1:{sshd.port}")
    return SshHost(target, label, Decimal("1.25"))


async def test_a_real_host_reports_its_facts(
    real_sshd: Sshd, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    provider = SshHostsProvider([lab_box(real_sshd)], ssh_hub, patterns=QUIET)

    (row,) = await provider.list_instances()

    facts = provider.facts("lab-box")
    assert facts is not None
    assert facts.cpus >= 1
    assert facts.memory_total > facts.memory_used > 0
    assert facts.up_seconds > 0
    assert (row.provider, row.id, row.state.value) == ("ssh", "lab-box", "running")
    assert (row.location, row.hourly_usd) == ("lab-box", Decimal("1.25"))
    assert isinstance(row.details, HostDetails)
    assert row.details.ssh_target == f"{real_sshd.user}@127.0.0.1:{real_sshd.port}"
    assert row.details.load_average is not None
    assert row.details.gpu_note == "no nvidia-smi on the host"
    assert row.launched_at is not None
    assert provider.actions(row) == frozenset()
    assert (await provider.describe(row)).id == "lab-box"


async def test_an_unreachable_host_fails_alone(
    real_sshd: Sshd, ssh_hub: SshHub, isolated_environment: Path, tmp_path: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    down = SshHost(parse_target(f"ml@127.0.0.1:{free_port()}"), "down-box")
    provider = SshHostsProvider([lab_box(real_sshd), down], ssh_hub, patterns=QUIET)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), poll_deadline=30)

    snapshot = await fleet.poll_async()

    (status,) = snapshot.statuses
    assert not status.ok
    assert status.error is not None
    assert status.error.startswith("down-box: ml@127.0.0.1:")
    assert [i.id for i in snapshot.instances] == ["lab-box"]


async def test_an_unknown_host_key_is_shown_with_its_fingerprint(
    real_sshd: Sshd, ssh_hub: SshHub, tmp_path: Path
) -> None:
    provider = SshHostsProvider([lab_box(real_sshd)], ssh_hub)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"), poll_deadline=30)

    (status,) = (await fleet.poll_async()).statuses

    assert status.error is not None
    assert "unknown host key SHA256:" in status.error
    assert status.hint is not None
    assert "known_hosts" in status.hint


async def test_the_dashboard_lists_the_host(
    real_sshd: Sshd, isolated_environment: Path, tmp_path: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    provider = SshHostsProvider([lab_box(real_sshd)], patterns=QUIET)
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"))
    app = RunctlApp(Settings(poll_seconds=3600), fleet)
    async with app.run_test(size=(160, 45)) as pilot:
        for _ in range(50):
            await pilot.pause(0.1)
            if app.screen.query_one(InstanceTable).row_count:
                break
        table = app.screen.query_one(InstanceTable)
        assert table.keys == ["ssh:lab-box"]
        assert "ssh  1 instances" in app.screen.query_one(ProviderBar).text.plain
        assert "$1.25" in table.render_line(1).text
    await provider.close()


def test_parse_facts_tolerates_a_host_without_proc_or_gpus() -> None:
    facts = parse_facts("box\n\n\n\n\n--runctl-gpus--\n")

    assert (facts.hostname, facts.cpus, facts.memory_total, facts.gpus) == ("box", 0, 0, ())


def test_parse_facts_reads_gpus() -> None:
    text = (
        "gpu-box\n64\n3.52 2.10 1.00 4/900 1234\n540000000000 120000000000\n86400.5 100.0\n"
        "--runctl-gpus--\n0, NVIDIA A100-SXM4-80GB, 97, 70000, 81920\n"
        "1, NVIDIA A100-SXM4-80GB, 0, 1, 81920\n"
    )

    facts = parse_facts(text)

    assert (facts.hostname, facts.cpus, facts.load_1m) == ("gpu-box", 64, 3.52)
    assert facts.load_average == (3.52, 2.1, 1.0)
    assert len(facts.gpus) == 2
    assert facts.gpus[0].utilization_percent == 97
    assert facts.up_seconds == 86400.5
    assert facts.gpu_note is None


def test_parse_facts_reads_per_process_gpu_memory_and_stops_at_the_process_table() -> None:
    text = (
        "gpu-box\n8\n0.50 0.25 0.10 1/200 99\n100 50\n10 5\n"
        "--runctl-gpus--\n0, NVIDIA L4, 40, 2000, 23034\n"
        "--runctl-apps--\n4242, 1500\n4242, 500\n77, [N/A]\n"
        "--runctl-procs--\nH ticks 100\n"
    )

    facts = parse_facts(text)

    assert facts.load_average == (0.5, 0.25, 0.1)
    assert facts.gpu_memory == {4242: 2000}


@pytest.mark.parametrize(
    ("gpu_section", "note"),
    [
        ("!missing\n", "no nvidia-smi on the host"),
        ("!failed 124\n", "nvidia-smi did not answer within 5 s"),
        ("!failed 9\n", "nvidia-smi failed (exit 9)"),
    ],
)
def test_parse_facts_says_why_gpu_figures_are_missing(gpu_section: str, note: str) -> None:
    facts = parse_facts(f"box\n1\n0 0 0\n0 0\n0\n--runctl-gpus--\n{gpu_section}")

    assert (facts.gpus, facts.gpu_note) == ((), note)


def test_the_poll_is_one_command_run_by_sh() -> None:
    assert POLL_COMMAND.startswith("sh -c '")
    assert "--runctl-procs--" in POLL_COMMAND


def test_process_ids_round_trip_and_never_take_a_second_spelling() -> None:
    assert parse_process_id(process_id("lab:a100", 4242, 99)) == ("lab:a100", 4242, 99)
    for bad in ("lab-box", "lab:4242", "lab:4242@", "lab:04242@99", "lab:0@1", "lab:1@²", ":x@1"):
        assert parse_process_id(bad) is None


def test_the_settings_give_the_patterns_and_grace_period_of_this_machine() -> None:
    settings = Settings.model_validate(
        {
            "local": {"patterns": ["torchrun"], "grace_seconds": 12},
            "ssh": {"hosts": [{"host": "ml@gpu-box:2222", "label": "lab"}]},
        }
    )

    (provider,) = from_settings(settings)

    assert (provider.patterns, provider.grace_seconds) == (("torchrun",), 12)
    assert [(str(h.target), h.label) for h in provider.hosts] == [("ml@gpu-box:2222", "lab")]
    assert from_settings(Settings()) == []
    assert provider.losses(Action.KILL, _host_row()) == []


def _host_row() -> Instance:
    return Instance(
        provider="ssh",
        id="lab",
        location="lab",
        state=InstanceState.RUNNING,
        details=HostDetails(hostname="gpu-box"),
    )
