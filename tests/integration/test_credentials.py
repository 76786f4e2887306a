"""Credential and connection failures become one helpful line, and the fleet stays up."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runctl_tui.audit import Journal
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.providers.base import NotConfiguredError, ProviderError
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
