"""The pure parts of the EC2 provider: parsing describe_* answers and explaining failures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.exceptions as bex
import pytest

from runctl_tui.models import (
    Action,
    Ec2Details,
    GpuSpec,
    HostDetails,
    Instance,
    InstanceState,
    Lifecycle,
    Volume,
)
from runctl_tui.providers.aws import (
    AwsProvider,
    Ec2Clients,
    explain,
    from_settings,
    instance_from_ec2,
    named_types,
    type_info_from_ec2,
    unknown_type_reason,
)
from runctl_tui.providers.base import ProviderError
from runctl_tui.text import is_safe

LAUNCH = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
TYPES: dict[str, tuple[GpuSpec | None, int]] = {
    "p4d.24xlarge": (GpuSpec(count=8, model="A100", memory_mib=40960), 8000),
    "c6i.xlarge": (None, 0),
}


def raw_instance(**overrides: Any) -> dict[str, Any]:
    """A describe_instances entry shaped like botocore's parsed answer."""
    raw: dict[str, Any] = {
        "InstanceId": "i-0abc",
        "InstanceType": "p4d.24xlarge",
        "State": {"Code": 16, "Name": "running"},
        "LaunchTime": LAUNCH,
        "Placement": {"AvailabilityZone": "us-east-1b", "Tenancy": "default"},
        "PublicIpAddress": "54.1.2.3",
        "PrivateIpAddress": "10.0.0.5",
        "ImageId": "ami-0123",
        "KeyName": "ml-team",
        "Tags": [
            {"Key": "Name", "Value": "dpo-sweep"},
            {"Key": "owner", "Value": "kenji"},
        ],
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/sda1",
                "Ebs": {"VolumeId": "vol-1", "DeleteOnTermination": True, "Status": "attached"},
            },
            {
                "DeviceName": "/dev/sdf",
                "Ebs": {"VolumeId": "vol-2", "DeleteOnTermination": False, "Status": "attached"},
            },
        ],
    }
    raw.update(overrides)
    return raw


def build(
    raw: Mapping[str, Any],
    *,
    protect_tag: str = "runctl:protect",
    spot_types: Mapping[str, str] | None = None,
    type_problems: Mapping[str, str] | None = None,
    spot_request_ids: Mapping[str, str] | None = None,
) -> Instance:
    return instance_from_ec2(
        raw,
        provider="aws",
        region="us-east-1",
        protect_tag=protect_tag,
        type_info=TYPES,
        spot_types=spot_types or {},
        type_problems=type_problems,
        spot_request_ids=spot_request_ids,
    )


def details_of(instance: Instance) -> Ec2Details:
    """The EC2 details of ``instance``, which must be an EC2 instance."""
    assert isinstance(instance.details, Ec2Details)
    return instance.details


def test_instance_from_ec2_maps_every_field() -> None:
    instance = build(raw_instance())

    assert instance.provider == "aws"
    assert instance.id == "i-0abc"
    assert instance.location == "us-east-1"
    assert details_of(instance).zone == "us-east-1b"
    assert instance.name == "dpo-sweep"
    assert details_of(instance).instance_type == "p4d.24xlarge"
    assert instance.state is InstanceState.RUNNING
    assert details_of(instance).lifecycle is Lifecycle.ON_DEMAND
    assert details_of(instance).spot_request_type is None
    assert instance.gpus == GpuSpec(count=8, model="A100", memory_mib=40960)
    assert details_of(instance).instance_store_gb == 8000
    assert details_of(instance).type_facts_missing is None
    assert details_of(instance).spot_request_id is None
    assert instance.launched_at == LAUNCH
    assert details_of(instance).public_ip == "54.1.2.3"
    assert details_of(instance).private_ip == "10.0.0.5"
    assert details_of(instance).image_id == "ami-0123"
    assert details_of(instance).key_name == "ml-team"
    assert instance.tags == {"Name": "dpo-sweep", "owner": "kenji"}
    assert details_of(instance).volumes == (
        Volume(id="vol-1", device="/dev/sda1", delete_on_termination=True),
        Volume(id="vol-2", device="/dev/sdf", delete_on_termination=False),
    )
    assert instance.protected is False


def test_minimal_entry() -> None:
    instance = build({"InstanceId": "i-min", "State": {"Name": "stopped"}})

    assert instance.name == ""
    assert details_of(instance).instance_type == "?"
    assert instance.state is InstanceState.STOPPED
    assert details_of(instance).zone is None
    assert instance.gpus is None
    assert details_of(instance).instance_store_gb is None
    assert details_of(instance).type_facts_missing == "instance type not reported by EC2"
    assert instance.launched_at is None
    assert details_of(instance).public_ip is None
    assert instance.tags == {}
    assert details_of(instance).volumes == ()


def test_empty_strings_become_none() -> None:
    instance = build(raw_instance(PublicIpAddress="", KeyName="", Placement={}))

    assert details_of(instance).public_ip is None
    assert details_of(instance).key_name is None
    assert details_of(instance).zone is None


def test_unknown_state_and_type() -> None:
    instance = build(raw_instance(State={"Name": "hibernating"}, InstanceType="z9.huge"))

    assert instance.state is InstanceState.UNKNOWN
    assert details_of(instance).instance_type == "z9.huge"
    assert instance.gpus is None
    assert details_of(instance).instance_store_gb is None
    assert details_of(instance).type_facts_missing == "instance type 'z9.huge' not described yet"


def test_a_known_type_without_gpus_or_local_disks_is_zero_not_unknown() -> None:
    instance = build(raw_instance(InstanceType="c6i.xlarge"))

    assert instance.gpus is None
    assert details_of(instance).instance_store_gb == 0
    assert details_of(instance).type_facts_missing is None


def test_type_facts_missing_carries_the_reason_given() -> None:
    reason = "no permission to describe instance types (ec2:DescribeInstanceTypes)"
    instance = build(raw_instance(InstanceType="g5.xlarge"), type_problems={"g5.xlarge": reason})

    assert (instance.gpus, details_of(instance).instance_store_gb) == (None, None)
    assert details_of(instance).type_facts_missing == reason


def test_a_known_type_ignores_a_stale_problem() -> None:
    instance = build(raw_instance(), type_problems={"p4d.24xlarge": "denied earlier"})

    assert details_of(instance).instance_store_gb == 8000
    assert details_of(instance).type_facts_missing is None


def test_unknown_type_reason_is_one_safe_line() -> None:
    assert (
        unknown_type_reason("x1.big") == "instance type 'x1.big' unknown to DescribeInstanceTypes"
    )
    reason = unknown_type_reason("evil\n\x1b[2J\u202e" + "x" * 500)
    assert is_safe(reason)
    assert len(reason) < 140


@pytest.mark.parametrize(
    ("message", "batch", "expected"),
    [
        (
            "The following supplied instance types do not exist: [z9.huge]",
            ["g5.xlarge", "z9.huge"],
            {"z9.huge"},
        ),
        (
            "The following supplied instance types do not exist: [z9.huge, y8.big]",
            ["g5.xlarge", "y8.big", "z9.huge"],
            {"y8.big", "z9.huge"},
        ),
        ("The instance type is not supported.", ["g5.xlarge", "z9.huge"], set()),
        ("do not exist: [c6i.xlarge]", ["g5.xlarge"], set()),
        ("do not exist: ['z9.huge']", ["z9.huge"], {"z9.huge"}),
    ],
)
def test_named_types(message: str, batch: list[str], expected: set[str]) -> None:
    assert named_types(message, batch) == expected


def test_tag_without_value_and_non_ebs_devices() -> None:
    raw = raw_instance(
        Tags=[{"Key": "Name", "Value": "x"}, {"Key": "flag"}],
        BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}],
    )

    instance = build(raw)

    assert instance.tags == {"Name": "x", "flag": ""}
    assert details_of(instance).volumes == ()


def test_naive_launch_time_is_taken_as_utc() -> None:
    instance = build(raw_instance(LaunchTime=datetime(2026, 3, 1, 9, 30)))

    assert instance.launched_at == LAUNCH
    assert instance.launched_at is not None
    assert instance.launched_at.utcoffset() == timedelta(0)


def test_aware_launch_time_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    instance = build(raw_instance(LaunchTime=datetime(2026, 3, 1, 11, 30, tzinfo=paris)))

    assert instance.launched_at == LAUNCH
    assert instance.launched_at is not None
    assert instance.launched_at.tzinfo is UTC
    assert instance.launched_at.hour == 9


def test_launch_time_that_is_not_a_datetime_is_dropped() -> None:
    assert build(raw_instance(LaunchTime="2026-03-01T09:30:00Z")).launched_at is None


@pytest.mark.parametrize(
    ("spot_type", "expected"), [("one-time", "one-time"), ("persistent", "persistent")]
)
def test_spot_instance_with_known_request_type(spot_type: str, expected: str) -> None:
    instance = build(raw_instance(InstanceLifecycle="spot"), spot_types={"i-0abc": spot_type})

    assert details_of(instance).lifecycle is Lifecycle.SPOT
    assert details_of(instance).spot_request_type == expected
    assert details_of(instance).one_time_spot is (expected == "one-time")


def test_spot_instance_whose_request_is_unknown() -> None:
    instance = build(raw_instance(InstanceLifecycle="spot"), spot_types={"i-other": "one-time"})

    assert details_of(instance).lifecycle is Lifecycle.SPOT
    assert details_of(instance).spot_request_type is None
    assert not details_of(instance).one_time_spot


def test_on_demand_ignores_a_stray_spot_type() -> None:
    instance = build(
        raw_instance(), spot_types={"i-0abc": "one-time"}, spot_request_ids={"i-0abc": "sir-1"}
    )

    assert details_of(instance).lifecycle is Lifecycle.ON_DEMAND
    assert details_of(instance).spot_request_type is None
    assert details_of(instance).spot_request_id is None


def test_spot_request_id_from_the_instance_itself_wins() -> None:
    raw = raw_instance(InstanceLifecycle="spot", SpotInstanceRequestId="sir-own")

    instance = build(raw, spot_types={"i-0abc": "persistent"}, spot_request_ids={"i-0abc": "sir-x"})

    assert details_of(instance).spot_request_id == "sir-own"
    assert details_of(instance).persistent_spot


def test_spot_request_id_from_the_request_lookup() -> None:
    raw = raw_instance(InstanceLifecycle="spot", SpotInstanceRequestId="")

    instance = build(raw, spot_types={"i-0abc": "persistent"}, spot_request_ids={"i-0abc": "sir-x"})

    assert details_of(instance).spot_request_id == "sir-x"


@pytest.mark.parametrize(
    ("value", "protected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        (" true ", True),
        ("yes", True),
        ("1", True),
        ("false", False),
        ("", False),
        ("no", False),
        ("0", False),
        ("truthy", False),
    ],
)
def test_protect_tag_values(value: str, protected: bool) -> None:
    raw = raw_instance(Tags=[{"Key": "runctl:protect", "Value": value}])

    assert build(raw).protected is protected


def test_protect_tag_key_is_configurable() -> None:
    raw = raw_instance(Tags=[{"Key": "team:keep", "Value": "true"}])

    assert build(raw, protect_tag="team:keep").protected is True
    assert build(raw).protected is False


def test_protected_by_names_the_tag() -> None:
    raw = raw_instance(Tags=[{"Key": "team:keep", "Value": "yes"}])

    assert build(raw, protect_tag="team:keep").protected_by == "tag team:keep=true"
    assert build(raw).protected_by == ""


def test_details_feed_the_provider_neutral_columns() -> None:
    instance = build(raw_instance(InstanceLifecycle="spot"), spot_types={"i-0abc": "persistent"})

    assert instance.kind == "ec2"
    assert instance.details.type_label == "p4d.24xlarge"
    assert instance.details.sublocation == "us-east-1b"
    assert instance.details.market == "spot persist"
    assert instance.details.address == "54.1.2.3"


# The action protocol: what EC2 takes, refuses and loses


def aws_provider() -> AwsProvider:
    """A provider that never calls out: these methods only read the instance."""
    return AwsProvider(Ec2Clients(access_key=("testing", "testing")), ["us-east-1"])


def ec2_instance(state: InstanceState = InstanceState.RUNNING, **details: Any) -> Instance:
    """An EC2 instance as a poll would show it, with ``details`` overriding the EC2 part."""
    fields: dict[str, Any] = {"instance_type": "g5.xlarge", "zone": "us-east-1a"}
    fields.update(details)
    return Instance(
        provider="aws",
        id="i-0abc",
        name="sweep",
        location="us-east-1",
        state=state,
        details=Ec2Details(**fields),
    )


def host_item() -> Instance:
    """An item of another kind, as a misrouted call might hand it over."""
    return Instance(
        provider="aws",
        id="h-1",
        location="lab",
        state=InstanceState.RUNNING,
        details=HostDetails(hostname="lab"),
    )


def test_actions_of_an_ec2_instance() -> None:
    provider = aws_provider()

    assert provider.actions(ec2_instance()) == {Action.STOP, Action.START, Action.TERMINATE}
    assert provider.actions(ec2_instance(InstanceState.TERMINATED)) == {
        Action.STOP,
        Action.START,
        Action.TERMINATE,
    }
    assert provider.actions(host_item()) == frozenset()


@pytest.mark.parametrize(
    ("action", "state", "reason"),
    [
        (Action.STOP, InstanceState.RUNNING, None),
        (Action.STOP, InstanceState.PENDING, None),
        (Action.STOP, InstanceState.STOPPED, "cannot stop an instance that is stopped"),
        (Action.STOP, InstanceState.STOPPING, "cannot stop an instance that is stopping"),
        (Action.STOP, InstanceState.TERMINATED, "cannot stop an instance that is terminated"),
        (Action.START, InstanceState.STOPPED, None),
        (
            Action.START,
            InstanceState.RUNNING,
            "only a stopped instance can be started; it is running",
        ),
        (
            Action.START,
            InstanceState.STOPPING,
            "only a stopped instance can be started; it is stopping",
        ),
        (Action.TERMINATE, InstanceState.RUNNING, None),
        (Action.TERMINATE, InstanceState.STOPPED, None),
        (Action.TERMINATE, InstanceState.UNKNOWN, None),
        (Action.TERMINATE, InstanceState.TERMINATED, "already terminated"),
        (Action.TERMINATE, InstanceState.SHUTTING_DOWN, "already shutting-down"),
    ],
)
def test_refusal_by_state(action: Action, state: InstanceState, reason: str | None) -> None:
    assert aws_provider().refusal(action, ec2_instance(state)) == reason


def test_a_one_time_spot_instance_cannot_be_stopped_but_can_be_terminated() -> None:
    provider = aws_provider()
    spot = ec2_instance(lifecycle=Lifecycle.SPOT, spot_request_type="one-time")

    assert provider.refusal(Action.STOP, spot) == (
        "a one-time spot instance cannot be stopped; terminate it instead"
    )
    assert provider.refusal(Action.TERMINATE, spot) is None


def test_a_one_time_spot_refusal_wins_over_the_state() -> None:
    stopped = ec2_instance(
        InstanceState.STOPPED, lifecycle=Lifecycle.SPOT, spot_request_type="one-time"
    )

    assert aws_provider().refusal(Action.STOP, stopped) == (
        "a one-time spot instance cannot be stopped; terminate it instead"
    )


@pytest.mark.parametrize("request_type", ["persistent", None])
def test_other_spot_instances_may_be_stopped(request_type: str | None) -> None:
    spot = ec2_instance(lifecycle=Lifecycle.SPOT, spot_request_type=request_type)

    assert aws_provider().refusal(Action.STOP, spot) is None


def test_refusal_of_what_ec2_does_not_do() -> None:
    provider = aws_provider()

    assert provider.refusal(Action.INTERRUPT, ec2_instance()) == (
        "interrupt is not something aws does to this item"
    )
    assert provider.refusal(Action.STOP, host_item()) == (
        "stop is not something aws does to this item"
    )


def test_perform_refuses_what_ec2_does_not_do() -> None:
    with pytest.raises(ProviderError, match="kill is not something aws does"):
        aws_provider().perform(Action.KILL, ec2_instance())


def test_stop_losses_of_a_running_instance_with_local_disks_and_a_public_ip() -> None:
    instance = ec2_instance(instance_store_gb=3800, public_ip="54.1.2.3")

    assert aws_provider().losses(Action.STOP, instance) == [
        "instance-store data (3800 GB local NVMe) is wiped",
        "EBS volumes are kept (and still billed); the public IP is released",
    ]


def test_stop_losses_without_local_disks_or_public_ip() -> None:
    assert aws_provider().losses(Action.STOP, ec2_instance(private_ip="10.0.0.5")) == [
        "EBS volumes are kept (and still billed)"
    ]


def test_stop_losses_when_the_instance_store_is_unknown() -> None:
    instance = ec2_instance(
        instance_store_gb=None,
        type_facts_missing="no permission to describe instance types (ec2:DescribeInstanceTypes)",
    )

    assert aws_provider().losses(Action.STOP, instance)[0] == (
        "instance-store data: unknown "
        "(no permission to describe instance types (ec2:DescribeInstanceTypes))"
    )
    bare = ec2_instance(instance_store_gb=None)
    assert aws_provider().losses(Action.STOP, bare)[0] == (
        "instance-store data: unknown (the instance type could not be described)"
    )


def test_a_stopped_instance_has_no_store_or_ip_left_to_lose() -> None:
    instance = ec2_instance(InstanceState.STOPPED, instance_store_gb=None, public_ip="54.1.2.3")

    assert aws_provider().losses(Action.STOP, instance) == [
        "EBS volumes are kept (and still billed)"
    ]
    assert aws_provider().losses(Action.TERMINATE, instance) == ["this cannot be undone"]


def test_stop_losses_of_a_spot_instance_whose_request_is_unknown() -> None:
    spot = ec2_instance(lifecycle=Lifecycle.SPOT)

    assert aws_provider().losses(Action.STOP, spot)[-1] == (
        "spot: AWS refuses to stop it unless its request is persistent"
    )
    persistent = ec2_instance(lifecycle=Lifecycle.SPOT, spot_request_type="persistent")
    assert aws_provider().losses(Action.STOP, persistent) == [
        "EBS volumes are kept (and still billed)"
    ]


def test_terminate_losses_name_deleted_and_kept_volumes() -> None:
    instance = ec2_instance(
        instance_store_gb=250,
        volumes=(
            Volume(id="vol-1", device="/dev/sda1", delete_on_termination=True),
            Volume(id="vol-2", device="/dev/sdf", delete_on_termination=False),
            Volume(id="vol-3", device="/dev/sdg", delete_on_termination=True),
        ),
    )

    assert aws_provider().losses(Action.TERMINATE, instance) == [
        "EBS volumes deleted: vol-1, vol-3",
        "EBS volumes kept (still billed): vol-2",
        "instance-store data (250 GB local NVMe) is gone",
        "this cannot be undone",
    ]


def test_terminate_losses_leave_the_spot_request_to_the_live_lookup() -> None:
    """The dialog looks the request up when it opens; a line from the poll could be stale."""
    provider = aws_provider()
    found = ec2_instance(
        lifecycle=Lifecycle.SPOT, spot_request_type="persistent", spot_request_id="sir-1"
    )
    one_time = ec2_instance(lifecycle=Lifecycle.SPOT, spot_request_type="one-time")

    assert provider.losses(Action.TERMINATE, found) == ["this cannot be undone"]
    assert provider.losses(Action.TERMINATE, one_time) == ["this cannot be undone"]


def test_start_and_other_items_lose_nothing() -> None:
    provider = aws_provider()

    assert provider.losses(Action.START, ec2_instance(InstanceState.STOPPED)) == []
    assert provider.losses(Action.TERMINATE, host_item()) == []


def test_losses_make_hostile_ids_and_reasons_safe() -> None:
    hostile = "vol-\x1b[2J\n[@click=app.quit]\u202e" + "x" * 300
    instance = ec2_instance(
        instance_store_gb=None,
        type_facts_missing="denied\x1b]52;c;x\x07\nsecond line",
        lifecycle=Lifecycle.SPOT,
        spot_request_type="persistent",
        spot_request_id="sir-\x1b[31m\n" + "y" * 300,
        volumes=(Volume(id=hostile, device="/dev/sda1", delete_on_termination=True),),
    )

    lines = aws_provider().losses(Action.TERMINATE, instance)

    assert len(lines) == 3
    assert all(is_safe(line) and "\n" not in line and len(line) < 250 for line in lines)


def test_type_info_with_gpus() -> None:
    entry = {
        "InstanceType": "p5.48xlarge",
        "GpuInfo": {
            "Gpus": [
                {
                    "Name": "H100",
                    "Manufacturer": "NVIDIA",
                    "Count": 8,
                    "MemoryInfo": {"SizeInMiB": 81920},
                }
            ],
            "TotalGpuMemoryInMiB": 655360,
        },
        "InstanceStorageInfo": {"TotalSizeInGB": 30400},
    }

    gpus, store = type_info_from_ec2(entry)

    assert gpus == GpuSpec(count=8, model="H100", memory_mib=81920)
    assert gpus is not None
    assert gpus.label() == "8x H100 80G"
    assert store == 30400


def test_type_info_sums_mixed_gpu_entries() -> None:
    entry = {
        "GpuInfo": {
            "Gpus": [
                {"Name": "T4", "Count": 1, "MemoryInfo": {"SizeInMiB": 16384}},
                {"Name": "T4", "Count": 3, "MemoryInfo": {"SizeInMiB": 16384}},
            ]
        }
    }

    assert type_info_from_ec2(entry) == (GpuSpec(count=4, model="T4", memory_mib=16384), 0)


def test_type_info_with_neuron_devices() -> None:
    entry = {
        "NeuronInfo": {"NeuronDevices": [{"Count": 16, "Name": "Trainium", "MemoryInfo": {}}]},
        "InstanceStorageInfo": {"TotalSizeInGB": 7600},
    }

    assert type_info_from_ec2(entry) == (GpuSpec(count=16, model="Trainium"), 7600)


@pytest.mark.parametrize(
    "entry",
    [
        {"InstanceType": "c6i.xlarge"},
        {"GpuInfo": {"Gpus": []}},
        {"GpuInfo": {}, "InstanceStorageInfo": {}},
    ],
)
def test_type_info_without_gpus(entry: dict[str, Any]) -> None:
    assert type_info_from_ec2(entry) == (None, 0)


def client_error(code: str, message: str = "details", operation: str = "DescribeInstances") -> Any:
    return bex.ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_explain_no_credentials() -> None:
    message, hint = explain(bex.NoCredentialsError(), None)

    assert message == "no AWS credentials found"
    assert hint is not None
    assert "aws configure" in hint
    assert "--demo" in hint


def test_explain_unknown_profile() -> None:
    message, hint = explain(bex.ProfileNotFound(profile="nope"), "nope")

    assert "'nope'" in message
    assert hint is not None
    assert "[aws] profile" in hint


def test_explain_unknown_profile_from_aws_profile_names_it() -> None:
    """With no profile configured, botocore took the name from AWS_PROFILE."""
    message, hint = explain(bex.ProfileNotFound(profile="work"), None)

    assert message == "AWS profile 'work' is not in ~/.aws/config"
    assert hint is not None
    assert "AWS_PROFILE" in hint


@pytest.mark.parametrize(
    "exc",
    [
        bex.UnauthorizedSSOTokenError(),
        bex.SSOTokenLoadError(error_msg="Token for ml does not exist"),
        bex.TokenRetrievalError(provider="sso", error_msg="Token has expired and refresh failed"),
    ],
)
def test_explain_sso_names_the_login_command(exc: Exception) -> None:
    message, hint = explain(exc, "ml")

    assert message == "AWS SSO session expired or missing"
    assert hint == "run `aws sso login --profile ml`"


def test_explain_sso_without_a_profile() -> None:
    assert explain(bex.UnauthorizedSSOTokenError(), None)[1] == "run `aws sso login`"


def test_explain_no_region() -> None:
    message, hint = explain(bex.NoRegionError(), None)

    assert message == "no AWS region configured"
    assert hint is not None
    assert "regions" in hint
    assert "AWS_DEFAULT_REGION" in hint


@pytest.mark.parametrize("code", ["RequestLimitExceeded", "Throttling", "ThrottlingException"])
def test_explain_throttling(code: str) -> None:
    message, hint = explain(client_error(code, "Request limit exceeded."), None)

    assert message == f"AWS is throttling requests ({code})"
    assert hint is not None
    assert "poll_seconds" in hint


@pytest.mark.parametrize("code", ["ExpiredToken", "ExpiredTokenException", "RequestExpired"])
def test_explain_expired_credentials(code: str) -> None:
    message, hint = explain(client_error(code, "The security token included is expired"), "ml")

    assert message == f"AWS credentials expired ({code})"
    assert hint == "refresh them: `aws sso login --profile ml`"


@pytest.mark.parametrize(
    "code", ["AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException"]
)
def test_explain_rejected_credentials(code: str) -> None:
    message, hint = explain(
        client_error(code, "AWS was not able to validate the credentials"), None
    )

    assert message == f"AWS rejected the credentials ({code})"
    assert hint is not None
    assert "sts get-caller-identity" in hint


def test_explain_unauthorized_operation_drops_the_encoded_blob() -> None:
    blob = "Qm9ndXMgZW5jb2RlZCBtZXNzYWdl" * 40
    exc = client_error(
        "UnauthorizedOperation",
        "You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/ml "
        "is not authorized to perform: ec2:StopInstances on resource: "
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc because no identity-based policy "
        f"allows the ec2:StopInstances action. Encoded authorization failure message: {blob}",
        "StopInstances",
    )

    message, hint = explain(exc, None)

    assert message.startswith("not permitted: You are not authorized to perform this operation.")
    assert "Encoded authorization failure message" not in message
    assert blob[:20] not in message
    assert "\n" not in message
    assert hint == "grant the IAM permission named above"


def test_explain_endpoint_connection_error() -> None:
    exc = bex.EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com/")

    message, hint = explain(exc, None)

    assert message.startswith("cannot reach the EC2 endpoint: ")
    assert "https://ec2.us-east-1.amazonaws.com/" in message
    assert hint is not None
    assert "AWS_ENDPOINT_URL" in hint


def test_explain_other_client_error_keeps_code_and_one_line() -> None:
    message, hint = explain(client_error("InvalidParameterValue", "bad\n  value\tthere"), None)

    assert message == "InvalidParameterValue: bad value there"
    assert hint is None


def test_explain_long_messages_are_cut() -> None:
    message, _ = explain(client_error("Weird", "x" * 1000), None)

    assert len(message) < 200
    assert message.endswith("…")


def test_explain_unexpected_exception() -> None:
    assert explain(RuntimeError("boom\nagain"), None) == ("RuntimeError: boom again", None)


def test_a_provider_error_raised_inside_a_region_keeps_its_message_and_hint() -> None:
    error = ProviderError("aws", "the demo backend needs moto", hint="pip install it")

    assert explain(error, None) == ("the demo backend needs moto", "pip install it")


def test_explain_read_timeout_says_the_endpoint_did_not_answer() -> None:
    exc = bex.ReadTimeoutError(endpoint_url="http://127.0.0.1:9/")

    message, hint = explain(exc, None)

    assert message == "the AWS endpoint did not answer in time (read timeout): http://127.0.0.1:9/"
    assert hint is not None
    assert "read_timeout" in hint
    assert "AWS_ENDPOINT_URL" in hint


def test_explain_connect_timeout() -> None:
    message, hint = explain(bex.ConnectTimeoutError(endpoint_url="https://ec2.example/"), None)

    assert message == "the AWS endpoint did not answer (connect timeout): https://ec2.example/"
    assert hint is not None
    assert "connect_timeout" in hint


def test_explain_connection_closed() -> None:
    message, hint = explain(bex.ConnectionClosedError(endpoint_url="http://127.0.0.1:9/"), None)

    assert message.startswith("the AWS endpoint closed the connection without answering")
    assert hint is not None


def test_explain_unparsable_answer_does_not_quote_the_body() -> None:
    from botocore.parsers import ResponseParserError

    body = b"<?xml version='1.0'?><R>\x1b]52;c;c2VjcmV0\x07[@click=app.quit]secret-marker</R>"
    exc = ResponseParserError(
        "Unable to parse response (not well-formed (invalid token): line 1, column 26), "
        f"invalid XML received. Further retries may succeed:\n{body!r}"
    )

    message, hint = explain(exc, None)

    assert message.startswith("unreadable answer from the AWS endpoint: Unable to parse response")
    assert "secret-marker" not in message
    assert is_safe(message)
    assert hint is not None


@pytest.mark.parametrize(
    "text",
    [
        "line one\nline two",
        "bidi \u202eevil",
        "c1 \x9b31m red",
        "esc \x1b[2J clear",
        "zero\u200bwidth",
        "[@click=app.quit]quit[/]",
    ],
)
def test_explain_error_text_from_the_endpoint_is_one_safe_line(text: str) -> None:
    message, _ = explain(client_error(f"Weird{text}", f"before {text} after"), None)

    assert is_safe(message)
    assert "\n" not in message


def test_explain_denied_message_is_safe() -> None:
    exc = client_error("UnauthorizedOperation", "not allowed\x1b[31m: ec2:Foo\u202e")

    message, _ = explain(exc, None)

    assert message.startswith("not permitted: not allowed")
    assert is_safe(message)


def test_explain_hostile_profile_names_are_safe() -> None:
    profile = "ml\x1b[2J\n[@click=app.quit]"

    missing, _ = explain(bex.ProfileNotFound(profile=profile), profile)
    _, login = explain(bex.UnauthorizedSSOTokenError(), profile)

    assert is_safe(missing)
    assert login is not None
    assert is_safe(login)


def test_clients_carry_timeouts_and_adaptive_retries() -> None:
    clients = Ec2Clients(
        endpoint_url="http://127.0.0.1:9",
        access_key=("testing", "testing"),
        connect_timeout=2.5,
        read_timeout=4.0,
        max_attempts=2,
    )

    for client in (clients.client("us-east-1"), clients.sts("us-east-1")):
        config: Any = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (2.5, 4.0)
        assert config.retries == {"mode": "adaptive", "total_max_attempts": 2}
        assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert clients.client("us-east-1") is clients.client("us-east-1")


def test_clients_default_timeouts() -> None:
    config: Any = Ec2Clients(access_key=("testing", "testing")).client("us-east-1").meta.config

    assert (config.connect_timeout, config.read_timeout) == (5.0, 10.0)
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 3}


def test_from_settings_passes_the_timeouts() -> None:
    from runctl_tui.config import Settings

    settings = Settings()
    (provider,) = from_settings(settings)
    config: Any = provider._clients.client("us-east-1").meta.config

    aws = settings.aws
    assert config.connect_timeout == getattr(aws, "connect_timeout", 5.0)
    assert config.read_timeout == getattr(aws, "read_timeout", 10.0)
    assert config.retries["total_max_attempts"] == getattr(aws, "max_attempts", 3)


@pytest.mark.parametrize(
    ("variables", "shown"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "http://127.0.0.1:5000"),
        ({"AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:5001"}, "http://127.0.0.1:5001"),
        ({"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5002"}, "sts http://127.0.0.1:5002"),
        (
            {"AWS_ENDPOINT_URL_EC2": "http://a:1", "AWS_ENDPOINT_URL_STS": "http://b:2"},
            "http://a:1 (sts http://b:2)",
        ),
        (
            {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_STS": "http://a:1"},
            "http://a:1",
        ),
    ],
)
def test_shown_endpoint_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], shown: str | None
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    assert Ec2Clients().shown_endpoint() == shown
    assert Ec2Clients(endpoint_url="http://x:9").shown_endpoint() == "http://x:9"
