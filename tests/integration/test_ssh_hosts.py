"""The SSH hosts provider over a real sshd on 127.0.0.1, through the fleet service and the TUI."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.providers.ssh_hosts import SshHost, SshHostsProvider, parse_facts
from runctl_tui.remote.ssh import SshHub, parse_target
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.widgets.instance_table import InstanceTable
from runctl_tui.tui.widgets.provider_bar import ProviderBar
from tests.integration.ssh_servers import Sshd, add_known_host, free_port

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration


def lab_box(sshd: Sshd, label: str = "lab-box") -> SshHost:
    """The real sshd as a configured host."""
    target = parse_target(f"{sshd.user}@127.0.0.1:{sshd.port}")
    return SshHost(target, label, Decimal("1.25"))


async def test_a_real_host_reports_its_facts(
    real_sshd: Sshd, ssh_hub: SshHub, isolated_environment: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    provider = SshHostsProvider([lab_box(real_sshd)], ssh_hub)

    (row,) = await provider.list_instances()

    facts = provider.facts("lab-box")
    assert facts is not None
    assert facts.cpus >= 1
    assert facts.memory_total > facts.memory_used > 0
    assert facts.up_seconds > 0
    assert (row.provider, row.id, row.state.value) == ("ssh", "lab-box", "running")
    assert row.hourly_usd == Decimal("1.25")


async def test_an_unreachable_host_fails_alone(
    real_sshd: Sshd, ssh_hub: SshHub, isolated_environment: Path, tmp_path: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    down = SshHost(parse_target(f"ml@127.0.0.1:{free_port()}"), "down-box")
    provider = SshHostsProvider([lab_box(real_sshd), down], ssh_hub)
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
    provider = SshHostsProvider([lab_box(real_sshd)])
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
    assert len(facts.gpus) == 2
    assert facts.up_seconds == 86400.5
