"""AwsProvider against endpoints that deny, reject, hang or send hostile text, through real boto3.

The misbehaving endpoint is a small proxy on 127.0.0.1 in front of moto (``hostile_endpoint``);
everything it does not intercept is moto's real answer.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runctl_tui.models import GpuSpec, Lifecycle
from runctl_tui.providers import aws
from runctl_tui.providers.aws import (
    TYPES_DENIED,
    TYPES_DENIED_WARNING,
    AwsProvider,
    Ec2Clients,
    unknown_type_reason,
)
from runctl_tui.providers.base import ProviderError, SpotRequest
from runctl_tui.text import is_safe
from runctl_tui.threads import submit
from tests.integration.conftest import KEY, REGIONS, Ec2Admin, HostileEndpoint, details_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
A10G = GpuSpec(count=1, model="A10G", memory_mib=22888)
GENEROUS = 30.0
"""Seconds within which a bounded call must have finished: only ever an upper bound."""


@pytest.fixture(autouse=True)
def no_endpoint_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint shown by ``identity()`` is the one each test sets, nothing inherited."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)


def failure(provider: AwsProvider) -> ProviderError:
    """The error a poll of ``provider`` raises."""
    with pytest.raises(ProviderError) as caught:
        provider.list_instances()
    return caught.value


# Denied DescribeInstanceTypes


def test_denied_instance_types_list_instances_with_facts_unknown(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    seeder = Ec2Admin(moto_url)
    east = seeder.launch("us-east-1", "g5.xlarge")
    west = seeder.launch("eu-west-1", "c6i.xlarge")
    hostile_endpoint.deny.add("DescribeInstanceTypes")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), REGIONS)

    listed = {i.id: i for i in provider.list_instances()}

    assert set(listed) == {east, west}
    for instance in listed.values():
        assert instance.gpus is None
        assert details_of(instance).instance_store_gb is None
        assert details_of(instance).type_facts_missing == TYPES_DENIED
    assert TYPES_DENIED == "no permission to describe instance types (ec2:DescribeInstanceTypes)"
    assert provider.poll_warnings() == (
        "not permitted: ec2:DescribeInstanceTypes; GPU and instance-store facts unknown",
    )
    # The second region waited for the first one's answer instead of asking again.
    assert hostile_endpoint.calls["DescribeInstanceTypes"] == 1


def test_a_denial_is_not_asked_about_on_every_poll(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    Ec2Admin(moto_url).launch("us-east-1", "g5.xlarge")
    hostile_endpoint.deny.add("DescribeInstanceTypes")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])
    provider.list_instances()

    hostile_endpoint.deny.clear()
    (again,) = provider.list_instances()

    assert hostile_endpoint.calls["DescribeInstanceTypes"] == 1
    assert details_of(again).type_facts_missing == TYPES_DENIED
    assert provider.poll_warnings() == (TYPES_DENIED_WARNING,)


def test_a_granted_permission_is_noticed_on_a_later_poll(
    moto_url: str, hostile_endpoint: HostileEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws, "DENIED_RETRY_SECONDS", 0.0)
    Ec2Admin(moto_url).launch("us-east-1", "g5.xlarge")
    hostile_endpoint.deny.add("DescribeInstanceTypes")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])
    (denied,) = provider.list_instances()
    assert denied.gpus is None

    hostile_endpoint.deny.clear()
    (granted,) = provider.list_instances()

    assert granted.gpus == A10G
    assert details_of(granted).instance_store_gb == 250
    assert details_of(granted).type_facts_missing is None
    assert provider.poll_warnings() == ()


def test_denied_spot_requests_keep_the_poll_and_warn(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    spot = Ec2Admin(moto_url).launch("us-east-1", "g5.xlarge", spot="persistent")
    hostile_endpoint.deny.add("DescribeSpotInstanceRequests")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    (instance,) = provider.list_instances()

    assert instance.id == spot
    assert details_of(instance).lifecycle is Lifecycle.SPOT
    assert details_of(instance).spot_request_type is None
    assert instance.gpus == A10G
    assert provider.poll_warnings() == (
        "not permitted: ec2:DescribeSpotInstanceRequests; spot request types unknown",
    )


# Unknown instance types


def test_one_unknown_type_does_not_blank_the_others(ec2: Ec2Admin, clients: Ec2Clients) -> None:
    """moto launches any type name but, like EC2, fails the whole describe for an unknown one."""
    good = ec2.launch("us-east-1", "g5.xlarge")
    p5 = ec2.launch("us-east-1", "p5.48xlarge")
    odd = ec2.launch("us-east-1", "z9.huge")
    provider = AwsProvider(clients, ["us-east-1"])

    listed = {i.id: i for i in provider.list_instances()}

    assert listed[good].gpus == A10G
    assert details_of(listed[good]).type_facts_missing is None
    assert listed[p5].gpus == GpuSpec(count=8, model="H100", memory_mib=81920)
    assert listed[odd].gpus is None
    assert details_of(listed[odd]).instance_store_gb is None
    assert details_of(listed[odd]).type_facts_missing == (
        "instance type 'z9.huge' unknown to DescribeInstanceTypes"
    )
    assert provider.poll_warnings() == (
        "instance type 'z9.huge' unknown to DescribeInstanceTypes; "
        "its GPU and instance-store facts unknown",
    )


def test_an_error_that_does_not_name_the_bad_type_is_bisected(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    seeder = Ec2Admin(moto_url)
    types = ["c6i.xlarge", "g5.xlarge", "g6e.xlarge", "p4d.24xlarge", "p5.48xlarge"]
    ids = {t: seeder.launch("us-east-1", t) for t in types}
    hostile_endpoint.reject_types.add("g6e.xlarge")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    listed = {details_of(i).instance_type: i for i in provider.list_instances()}

    assert set(listed) == set(types)
    assert listed["g6e.xlarge"].id == ids["g6e.xlarge"]
    assert details_of(listed["g6e.xlarge"]).type_facts_missing == unknown_type_reason("g6e.xlarge")
    assert details_of(listed["g6e.xlarge"]).instance_store_gb is None
    assert listed["c6i.xlarge"].gpus is None
    assert details_of(listed["c6i.xlarge"]).instance_store_gb == 0
    assert details_of(listed["c6i.xlarge"]).type_facts_missing is None
    assert listed["g5.xlarge"].gpus == A10G
    assert listed["p4d.24xlarge"].gpus == GpuSpec(count=8, model="A100", memory_mib=40960)
    assert listed["p5.48xlarge"].gpus is not None
    calls = hostile_endpoint.calls["DescribeInstanceTypes"]
    assert 1 < calls <= 2 * len(types)

    provider.list_instances()

    # Learned and unknown types alike are remembered: the next poll describes none.
    assert hostile_endpoint.calls["DescribeInstanceTypes"] == calls


# A hung endpoint


def test_a_hung_endpoint_fails_the_poll_within_the_timeouts(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    hostile_endpoint.hang.add("*")
    provider = AwsProvider(hostile_endpoint.clients(read_timeout=1, max_attempts=1), REGIONS)

    started = time.monotonic()
    error = failure(provider)
    elapsed = time.monotonic() - started

    assert elapsed < GENEROUS
    assert error.message.startswith("the AWS endpoint did not answer in time (read timeout): ")
    assert hostile_endpoint.url in error.message
    assert error.hint is not None
    assert "read_timeout" in error.hint
    assert sorted(error.failed_regions) == sorted(REGIONS)
    assert error.partial is None


def test_a_hung_describe_instance_types_still_lists(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    east = Ec2Admin(moto_url).launch("us-east-1", "g5.xlarge")
    hostile_endpoint.hang.add("DescribeInstanceTypes")
    provider = AwsProvider(hostile_endpoint.clients(read_timeout=1, max_attempts=1), ["us-east-1"])

    (instance,) = provider.list_instances()

    assert instance.id == east
    assert instance.gpus is None
    missing = details_of(instance).type_facts_missing
    assert missing is not None
    assert missing.startswith("could not describe instance types: ")
    assert "did not answer" in missing
    (warning,) = provider.poll_warnings()
    assert warning.startswith("could not describe instance types (the AWS endpoint did not")
    assert warning.endswith("; GPU and instance-store facts unknown")


def test_region_threads_never_hold_up_quitting(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    hostile_endpoint.hang.add("*")
    hostile_endpoint.hang_seconds = 60.0
    provider = AwsProvider(hostile_endpoint.clients(read_timeout=60, max_attempts=1), REGIONS)
    pending = submit(provider.list_instances, name="test-poll")
    deadline = time.monotonic() + GENEROUS
    while hostile_endpoint.calls["DescribeInstances"] < len(REGIONS):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    polling = [t for t in threading.enumerate() if t.name == "aws-poll"]

    assert len(polling) >= len(REGIONS)
    assert all(t.daemon for t in polling)
    assert not pending.done()


def test_a_process_polling_a_hung_endpoint_exits_at_once(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    hostile_endpoint.hang.add("*")
    hostile_endpoint.hang_seconds = 120.0
    script = (
        "import sys\n"
        "from runctl_tui.providers.aws import AwsProvider, Ec2Clients\n"
        "from runctl_tui.threads import submit\n"
        f"clients = Ec2Clients(endpoint_url={hostile_endpoint.url!r}, access_key={KEY!r},\n"
        "                     read_timeout=120, max_attempts=1)\n"
        f"submit(AwsProvider(clients, {REGIONS!r}).list_instances)\n"
        "sys.stdin.readline()\n"
        "print('leaving', flush=True)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + GENEROUS
        while hostile_endpoint.calls["DescribeInstances"] < len(REGIONS):
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)

        # Both regions' requests now hang; quitting must not wait for them.
        started = time.monotonic()
        out, err = child.communicate("quit\n", timeout=90)
        elapsed = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()

    assert child.returncode == 0, err
    assert out.strip() == "leaving"
    # Joined worker threads would have waited out the 120 s read timeout.
    assert elapsed < 60


# Hostile text from the endpoint


def test_hostile_error_text_becomes_one_safe_line(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        "<Code>Weird[/]\u202e</Code><Message>first line\nsecond \u009b31m line "
        "[@click=app.quit]quit[/] \u200b</Message></Error></Errors>"
        "<RequestID>x</RequestID></Response>"
    )
    hostile_endpoint.answers["DescribeInstances"] = (400, body.encode())
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    error = failure(provider)

    assert is_safe(error.message)
    assert "\n" not in error.message
    assert error.message.startswith("Weird[/]\\u202e: first line second")
    assert "[@click=app.quit]quit[/]" in error.message


def test_an_unparsable_answer_is_one_safe_line_that_does_not_quote_it(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    body = b"<?xml version='1.0'?><R>\x1b]52;c;c2VjcmV0\x07 secret-marker\n\x1b[2J</R>"
    hostile_endpoint.answers["DescribeInstances"] = (200, body)
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    error = failure(provider)

    assert error.message.startswith("unreadable answer from the AWS endpoint: ")
    assert "secret-marker" not in error.message
    assert is_safe(error.message)
    assert error.hint is not None


# Identity


def test_identity_names_account_regions_and_endpoint(clients: Ec2Clients, moto_url: str) -> None:
    provider = AwsProvider(clients, REGIONS)

    assert provider.identity() == (
        f"account 123456789012 · us-east-1, eu-west-1 · endpoint {moto_url}"
    )


def test_identity_with_a_profile_and_the_endpoint_from_the_environment(
    moto_url: str, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated_environment / "aws-credentials").write_text(
        "[ml]\naws_access_key_id = testing\naws_secret_access_key = testing\n", encoding="utf-8"
    )
    monkeypatch.setenv("AWS_PROFILE", "ml")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)

    provider = AwsProvider(Ec2Clients(), ["eu-west-1"])

    assert (
        provider.identity()
        == f"profile ml · account 123456789012 · eu-west-1 · endpoint {moto_url}"
    )


def test_identity_asks_sts_once(hostile_endpoint: HostileEndpoint) -> None:
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    first = provider.identity()
    second = provider.identity()

    assert first == second
    assert first is not None
    assert "account 123456789012" in first
    assert f"endpoint {hostile_endpoint.url}" in first
    assert hostile_endpoint.calls["GetCallerIdentity"] == 1


def test_identity_without_sts_says_account_unknown(hostile_endpoint: HostileEndpoint) -> None:
    hostile_endpoint.deny.add("GetCallerIdentity")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    shown = provider.identity()
    provider.identity()

    assert shown == f"account ? · us-east-1 · endpoint {hostile_endpoint.url}"
    assert hostile_endpoint.calls["GetCallerIdentity"] == 1


def test_identity_with_a_hung_sts_says_account_unknown(
    hostile_endpoint: HostileEndpoint,
) -> None:
    hostile_endpoint.hang.add("GetCallerIdentity")
    provider = AwsProvider(hostile_endpoint.clients(read_timeout=1, max_attempts=1), ["us-east-1"])

    assert provider.identity() == f"account ? · us-east-1 · endpoint {hostile_endpoint.url}"


def test_identity_without_any_region_does_not_raise(moto_url: str) -> None:
    provider = AwsProvider(Ec2Clients("nope", endpoint_url=moto_url), [])

    assert provider.identity() == f"profile nope · account ? · region ? · endpoint {moto_url}"


# Spot requests


def test_spot_request_and_cancel_on_a_persistent_spot_instance(
    ec2: Ec2Admin, provider: AwsProvider
) -> None:
    instance_id = ec2.launch("us-east-1", "g5.xlarge", spot="persistent")
    (instance,) = provider.list_instances()
    assert details_of(instance).persistent_spot
    request_id = details_of(instance).spot_request_id
    assert request_id is not None
    assert request_id.startswith("sir-")

    request = provider.spot_request(instance)

    assert request == SpotRequest(id=request_id, type="persistent", state="active")

    assert provider.cancel_spot_request(instance, request.id) == "cancelled"

    answer = ec2.client("us-east-1").describe_spot_instance_requests()
    assert request.id not in {
        r["SpotInstanceRequestId"]
        for r in answer["SpotInstanceRequests"]
        if r["State"] in {"open", "active"}
    }
    # EC2 keeps a cancelled request on record for a while; moto forgets it at once.
    after = provider.spot_request(instance)
    assert after is None or (after.id, after.state) == (request.id, "cancelled")
    assert ec2.state("us-east-1", instance_id) == "running"


def test_spot_request_found_without_a_poll(ec2: Ec2Admin, clients: Ec2Clients) -> None:
    ec2.launch("eu-west-1", spot="one-time")
    (seen,) = AwsProvider(clients, ["eu-west-1"]).list_instances()
    details = details_of(seen).model_copy(update={"spot_request_id": None})
    bare = seen.model_copy(update={"details": details})

    request = AwsProvider(clients, ["eu-west-1"]).spot_request(bare)

    assert request is not None
    assert request.id == details_of(seen).spot_request_id
    assert (request.type, request.state) == ("one-time", "active")


def test_an_on_demand_instance_has_no_spot_request(ec2: Ec2Admin, provider: AwsProvider) -> None:
    ec2.launch("us-east-1")
    (instance,) = provider.list_instances()

    assert details_of(instance).spot_request_id is None
    assert provider.spot_request(instance) is None


def test_a_denied_cancel_is_a_provider_error(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    Ec2Admin(moto_url).launch("us-east-1", spot="persistent")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])
    (instance,) = provider.list_instances()
    request = provider.spot_request(instance)
    assert request is not None
    hostile_endpoint.deny.add("CancelSpotInstanceRequests")

    with pytest.raises(ProviderError) as caught:
        provider.cancel_spot_request(instance, request.id)

    assert caught.value.message.startswith("not permitted: You are not authorized")
    assert "ec2:CancelSpotInstanceRequests" in caught.value.message
    assert "Encoded authorization failure message" not in caught.value.message
    assert caught.value.hint == "grant the IAM permission named above"
    live = provider.spot_request(instance)
    assert live is not None
    assert live.state == "active"


def test_a_hung_spot_lookup_is_a_provider_error(
    moto_url: str, hostile_endpoint: HostileEndpoint
) -> None:
    Ec2Admin(moto_url).launch("us-east-1", spot="persistent")
    provider = AwsProvider(hostile_endpoint.clients(read_timeout=1, max_attempts=1), ["us-east-1"])
    (instance,) = provider.list_instances()
    hostile_endpoint.hang.add("DescribeSpotInstanceRequests")

    with pytest.raises(ProviderError, match="did not answer"):
        provider.spot_request(instance)


def test_identity_of_isolated_clients_names_no_profile(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's clients ignore AWS_PROFILE, so what they show must not name it either."""
    from runctl_tui.demo import IsolatedClients

    monkeypatch.setenv("AWS_PROFILE", "ml")
    provider = AwsProvider(IsolatedClients(endpoint_url=moto_url, access_key=KEY), ["us-east-1"])

    assert provider.identity() == f"account 123456789012 · us-east-1 · endpoint {moto_url}"
