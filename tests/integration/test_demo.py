"""The demo backend: moto in-process, seeded with a GPU fleet, through the real code path."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from runctl_tui.demo import DEMO_FLEET, DEMO_REGIONS, DemoBackend, demo_providers
from runctl_tui.models import InstanceState, Lifecycle
from runctl_tui.providers.aws import AwsProvider

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(moto_url: str) -> Iterator[DemoBackend]:
    """A demo backend; ``moto_url`` first empties moto's in-process state it shares."""
    demo = DemoBackend()
    yield demo
    demo.stop()


def test_demo_starts_and_seeds_the_fleet(backend: DemoBackend) -> None:
    provider = demo_providers(backend)[0]
    assert isinstance(provider, AwsProvider)
    now = datetime.now(UTC)

    instances = provider.list_instances()

    assert backend.endpoint().startswith("http://127.0.0.1:")
    assert len(instances) == len(DEMO_FLEET) == 11
    assert {i.region for i in instances} == set(DEMO_REGIONS) == {"us-east-1", "eu-west-1"}
    by_name = {i.name: i for i in instances}
    assert set(by_name) == {m.name for m in DEMO_FLEET}
    assert [i.name for i in instances if i.protected] == ["llama3-70b-sft"]
    spot = Counter(i.spot_request_type for i in instances if i.lifecycle is Lifecycle.SPOT)
    assert spot == {"one-time": 2, "persistent": 2}
    assert Counter(i.state for i in instances) == {
        InstanceState.RUNNING: 9,
        InstanceState.STOPPED: 2,
    }
    assert {i.instance_type for i in instances} >= {
        "g5.xlarge",
        "g6e.12xlarge",
        "p4d.24xlarge",
        "p5.48xlarge",
    }
    assert all(i.gpus is not None for i in instances if i.instance_type != "c6i.xlarge")
    # Launch times are backdated, so uptimes look like a real fleet's.
    uptime = by_name["llama3-70b-sft"].uptime(now)
    assert uptime is not None
    assert timedelta(days=2) < uptime < timedelta(days=2, hours=6)
    assert by_name["llama3-70b-sft"].tags["project"] == "llm-sft"


def test_demo_shows_ec2_runpod_and_this_machine(backend: DemoBackend) -> None:
    assert [p.name for p in demo_providers(backend)] == ["aws", "runpod", "local"]


def test_endpoint_is_started_once(backend: DemoBackend) -> None:
    assert backend.endpoint() == backend.endpoint()


def test_demo_uses_fake_credentials_only(
    backend: DemoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's own credentials are never needed (nor sent) in demo mode."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")

    provider = demo_providers(backend)[0]
    assert isinstance(provider, AwsProvider)

    assert len(provider.list_instances()) == 11


def test_demo_without_moto_says_how_to_install_it() -> None:
    # moto is an optional extra: a plain `pip install .` has the command but not the demo.
    script = (
        "import sys\n"
        "sys.modules['moto'] = None\n"
        "sys.modules['moto.server'] = None\n"
        "from runctl_tui.cli import main\n"
        "sys.exit(main(['status', '--demo']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "the demo backend needs moto" in done.stdout
    assert "pip install 'runctl-tui[demo]'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
