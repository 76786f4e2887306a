"""Credential and connection failures become one helpful line, and the fleet stays up."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.providers.base import NotConfiguredError, ProviderError
from runctl_tui.providers.runpod import RunPodProvider
from runctl_tui.runpod_standin import FaultKind, RunPodStandIn, demo_pods
from runctl_tui.services.fleet import Fleet

pytestmark = pytest.mark.integration


def failure(provider: AwsProvider) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.list_instances()
    return caught.value


def poll_status(provider: AwsProvider, tmp_path: Path) -> tuple[bool, str | None, str | None]:
    fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"))
    snapshot = fleet.poll()
    (status,) = snapshot.statuses
    assert snapshot.instances == ()
    assert status.refreshed_at is None
    assert not snapshot.all_ok
    return status.ok, status.error, status.hint


@pytest.mark.parametrize("regions", [["us-east-1", "eu-west-1"], []])
def test_unknown_profile(moto_url: str, tmp_path: Path, regions: list[str]) -> None:
    provider = AwsProvider(Ec2Clients("nope", endpoint_url=moto_url), regions)

    error = failure(provider)

    assert error.provider == "aws"
    assert error.message == "AWS profile 'nope' is not in ~/.aws/config"
    assert error.hint is not None
    assert "[aws] profile" in error.hint
    assert error.partial is None
    ok, message, hint = poll_status(provider, tmp_path)
    assert ok is False
    assert message == error.message
    assert hint == error.hint


@pytest.mark.usefixtures("no_credentials")
def test_no_credentials_at_all(moto_url: str, tmp_path: Path) -> None:
    provider = AwsProvider(Ec2Clients(endpoint_url=moto_url), ["us-east-1", "eu-west-1"])

    error = failure(provider)

    # Nothing set up at all is "not configured", which is no failure of the fleet.
    assert isinstance(error, NotConfiguredError)
    assert error.message == "not configured: no AWS credentials found"
    assert error.hint is not None
    assert "aws configure" in error.hint
    assert "aws sso login" in error.hint
    snapshot = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl")).poll()
    (status,) = snapshot.statuses
    assert (status.ok, status.configured, status.error) == (False, False, error.message)
    assert snapshot.all_ok


@pytest.mark.usefixtures("no_credentials")
def test_no_credentials_and_no_region_is_not_configured(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    provider = AwsProvider(Ec2Clients(endpoint_url=moto_url), [])

    error = failure(provider)

    assert isinstance(error, NotConfiguredError)


@pytest.mark.usefixtures("no_credentials")
def test_no_credentials_with_a_working_profile_file(
    moto_url: str, isolated_environment: Path
) -> None:
    """The control case: the same setup with a profile that has keys works."""
    (isolated_environment / "aws-credentials").write_text(
        "[ml]\naws_access_key_id = testing\naws_secret_access_key = testing\n", encoding="utf-8"
    )

    provider = AwsProvider(Ec2Clients("ml", endpoint_url=moto_url), ["us-east-1"])

    assert provider.list_instances() == []


@pytest.mark.usefixtures("no_credentials")
def test_no_region_anywhere(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    provider = AwsProvider(Ec2Clients(endpoint_url=moto_url, access_key=("testing", "testing")))

    error = failure(provider)

    assert error.message == "no AWS region configured"
    assert error.hint is not None
    assert "regions" in error.hint


def test_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now; one attempt keeps the test fast.
    clients = Ec2Clients(
        endpoint_url=f"http://127.0.0.1:{port}", access_key=("testing", "testing"), max_attempts=1
    )

    error = failure(AwsProvider(clients, ["us-east-1"]))

    assert error.message.startswith("cannot reach the EC2 endpoint: ")
    assert f"127.0.0.1:{port}" in error.message
    assert error.hint is not None
    assert "AWS_ENDPOINT_URL" in error.hint
    assert poll_status(AwsProvider(clients, ["us-east-1"]), tmp_path)[0] is False


@pytest.mark.parametrize(
    ("fault", "message", "hint"),
    [
        (FaultKind.UNAUTHORIZED, "RunPod rejected the API key", "RUNPOD_API_KEY"),
        (FaultKind.THROTTLED, "RunPod is throttling requests (HTTP 429)", "waiting 7 s"),
        (FaultKind.SERVER_ERROR, "RunPod's API failed (HTTP 500)", "status.runpod.io"),
        (FaultKind.GRAPHQL_ERROR, "RunPod refused the request: Something went wrong", "retried"),
        (FaultKind.MALFORMED, "RunPod sent an answer that is not JSON", "RUNPOD_API_BASE_URL"),
        (FaultKind.SLOW, "RunPod did not answer within 0.5 s", "retried on the next poll"),
    ],
)
def test_runpod_failures_are_one_status_line_and_the_fleet_stays_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: FaultKind, message: str, hint: str
) -> None:
    key = "rpa_CREDENTIALSTEST_0123456789abcdef"
    with RunPodStandIn(api_key=key, lifetime=60) as stand_in:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", stand_in.url)
        provider = RunPodProvider(key, timeout=3.0)
        fleet = Fleet([provider], journal=Journal(tmp_path / "journal.jsonl"))
        first = fleet.poll()
        assert len(first.instances) == len(demo_pods())
        provider.timeout = 0.5
        stand_in.inject(fault, delay=2.0)

        snapshot = fleet.poll()

    (status,) = snapshot.statuses
    assert status.ok is False
    assert status.error is not None
    assert status.error.startswith(message)
    assert hint in (status.hint or "")
    assert key not in f"{status.error} {status.hint}"
    # The rows of the last good poll stay on screen, marked by the status as old.
    assert len(snapshot.instances) == len(demo_pods())
    assert status.refreshed_at == first.statuses[0].refreshed_at
