"""AwsProvider against moto's EC2 server: listing, describing and really changing state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from runctl_tui.models import Action, GpuSpec, InstanceState, Lifecycle
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.providers.base import NotFoundError, ProviderError
from tests.integration.conftest import KEY, Ec2Admin, HostileEndpoint, details_of

pytestmark = pytest.mark.integration


def test_lists_two_regions_with_gpus_spot_types_and_tags(
    ec2: Ec2Admin, provider: AwsProvider
) -> None:
    protected = ec2.launch(
        "us-east-1",
        "p5.48xlarge",
        name="llama3-70b-sft",
        tags={"owner": "maria", "runctl:protect": "true"},
        zone="us-east-1b",
    )
    one_time = ec2.launch("us-east-1", "g6e.xlarge", name="whisper", spot="one-time")
    persistent = ec2.launch("us-east-1", "p4d.24xlarge", name="dpo-sweep", spot="persistent")
    cpu = ec2.launch("eu-west-1", "c6i.xlarge", name="tokenize")
    stopped = ec2.launch("eu-west-1", "g5.12xlarge", name="vit", stopped=True)
    before = datetime.now(UTC) - timedelta(minutes=1)

    instances = {i.id: i for i in provider.list_instances()}

    assert set(instances) == {protected, one_time, persistent, cpu, stopped}
    p5 = instances[protected]
    p5_ec2 = details_of(p5)
    assert (p5.provider, p5.location, p5_ec2.zone) == ("aws", "us-east-1", "us-east-1b")
    assert p5.name == "llama3-70b-sft"
    assert p5.tags == {"Name": "llama3-70b-sft", "owner": "maria", "runctl:protect": "true"}
    assert p5.protected is True
    assert p5.protected_by == "tag runctl:protect=true"
    assert p5.gpus == GpuSpec(count=8, model="H100", memory_mib=81920)
    assert p5_ec2.instance_type == "p5.48xlarge"
    assert p5_ec2.instance_store_gb is not None
    assert p5_ec2.instance_store_gb > 0
    assert p5_ec2.type_facts_missing is None
    assert p5_ec2.lifecycle is Lifecycle.ON_DEMAND
    assert p5_ec2.spot_request_type is None
    assert p5_ec2.spot_request_id is None
    assert p5.state is InstanceState.RUNNING
    assert p5_ec2.image_id is not None
    assert p5_ec2.image_id.startswith("ami-")
    assert p5.launched_at is not None
    assert p5.launched_at.tzinfo is not None
    assert p5.launched_at >= before
    assert [v.device for v in p5_ec2.volumes] == ["/dev/sda1"]
    assert p5_ec2.volumes[0].id.startswith("vol-")

    spot = instances[one_time]
    spot_ec2 = details_of(spot)
    assert spot_ec2.lifecycle is Lifecycle.SPOT
    assert spot_ec2.spot_request_type == "one-time"
    assert spot_ec2.one_time_spot
    assert not spot_ec2.persistent_spot
    assert spot_ec2.spot_request_id is not None
    assert spot_ec2.spot_request_id.startswith("sir-")
    assert spot.gpus is not None
    assert spot.gpus.label() == "1x L40S 45G"
    assert spot.protected is False
    assert spot.protected_by == ""
    kept = details_of(instances[persistent])
    assert kept.spot_request_type == "persistent"
    assert kept.persistent_spot
    assert not kept.one_time_spot
    assert kept.spot_request_id not in {None, spot_ec2.spot_request_id}
    assert instances[persistent].gpus == GpuSpec(count=8, model="A100", memory_mib=40960)

    assert instances[cpu].location == "eu-west-1"
    assert instances[cpu].gpus is None
    assert details_of(instances[cpu]).instance_store_gb == 0
    assert details_of(instances[cpu]).type_facts_missing is None
    assert instances[stopped].state is InstanceState.STOPPED
    assert instances[stopped].uptime(datetime.now(UTC)) is None


def test_results_keep_region_order(ec2: Ec2Admin, clients: Ec2Clients) -> None:
    west = ec2.launch("eu-west-1")
    east = ec2.launch("us-east-1")

    listed = AwsProvider(clients, ["eu-west-1", "us-east-1"]).list_instances()

    assert [i.id for i in listed] == [west, east]


def test_empty_account(provider: AwsProvider) -> None:
    assert provider.list_instances() == []


def test_custom_protect_tag(ec2: Ec2Admin, clients: Ec2Clients) -> None:
    keep = ec2.launch(tags={"team:keep": "yes"})
    other = ec2.launch(tags={"runctl:protect": "true"})

    listed = {
        i.id: i
        for i in AwsProvider(clients, ["us-east-1"], protect_tag="team:keep").list_instances()
    }

    assert listed[keep].protected is True
    assert listed[other].protected is False


def test_describe_sees_changes_made_elsewhere(ec2: Ec2Admin, provider: AwsProvider) -> None:
    instance_id = ec2.launch("eu-west-1", "g5.xlarge", name="before")
    (seen,) = provider.list_instances()
    ec2.client("eu-west-1").stop_instances(InstanceIds=[instance_id])
    ec2.tag("eu-west-1", instance_id, "runctl:protect", "true")

    fresh = provider.describe(seen)

    assert fresh.id == instance_id
    assert fresh.location == "eu-west-1"
    assert fresh.state is InstanceState.STOPPED
    assert fresh.protected is True
    assert fresh.gpus == seen.gpus


def test_describe_of_a_spot_instance_knows_its_request_type(
    ec2: Ec2Admin, clients: Ec2Clients
) -> None:
    instance_id = ec2.launch(spot="one-time")
    (seen,) = AwsProvider(clients, ["us-east-1"]).list_instances()

    # A new provider has no cache: describe() must learn the request type itself.
    fresh = AwsProvider(clients, ["us-east-1"]).describe(seen)

    assert fresh.id == instance_id
    assert details_of(fresh).one_time_spot
    assert details_of(fresh).spot_request_id == details_of(seen).spot_request_id
    assert fresh.gpus == seen.gpus


def test_describe_of_a_missing_instance(provider: AwsProvider, ec2: Ec2Admin) -> None:
    ec2.launch()
    (seen,) = provider.list_instances()
    ghost = seen.model_copy(update={"id": "i-0123456789abcdef0"})

    with pytest.raises(NotFoundError, match="i-0123456789abcdef0 no longer exists"):
        provider.describe(ghost)


def test_stop_start_terminate_really_change_state(ec2: Ec2Admin, provider: AwsProvider) -> None:
    instance_id = ec2.launch("eu-west-1", "g5.xlarge")
    (instance,) = provider.list_instances()

    assert provider.perform(Action.STOP, instance) is InstanceState.STOPPING
    assert ec2.state("eu-west-1", instance_id) == "stopped"

    assert provider.perform(Action.START, instance) is InstanceState.PENDING
    assert ec2.state("eu-west-1", instance_id) == "running"

    assert provider.perform(Action.TERMINATE, instance) is InstanceState.SHUTTING_DOWN
    assert ec2.state("eu-west-1", instance_id) == "terminated"
    assert provider.describe(instance).state is InstanceState.TERMINATED


def test_actions_touch_only_their_instance(ec2: Ec2Admin, provider: AwsProvider) -> None:
    target = ec2.launch("us-east-1", name="target")
    bystander = ec2.launch("us-east-1", name="bystander")
    instance = next(i for i in provider.list_instances() if i.id == target)

    provider.perform(Action.TERMINATE, instance)

    assert ec2.state("us-east-1", target) == "terminated"
    assert ec2.state("us-east-1", bystander) == "running"


def test_refusal_and_losses_follow_the_fresh_state(ec2: Ec2Admin, provider: AwsProvider) -> None:
    instance_id = ec2.launch("us-east-1", "g5.xlarge", spot="one-time")
    (seen,) = provider.list_instances()

    assert provider.actions(seen) == {Action.STOP, Action.START, Action.TERMINATE}
    assert provider.refusal(Action.STOP, seen) == (
        "a one-time spot instance cannot be stopped; terminate it instead"
    )
    assert provider.refusal(Action.START, seen) == (
        "only a stopped instance can be started; it is running"
    )
    assert provider.refusal(Action.TERMINATE, seen) is None
    assert provider.losses(Action.TERMINATE, seen) == [
        f"EBS volumes deleted: {details_of(seen).volumes[0].id}",
        "instance-store data (250 GB local NVMe) is gone",
        "this cannot be undone",
    ]

    provider.perform(Action.TERMINATE, seen)
    fresh = provider.describe(seen)

    assert ec2.state("us-east-1", instance_id) == "terminated"
    assert provider.refusal(Action.TERMINATE, fresh) == "already terminated"


def test_all_regions_are_resolved_with_describe_regions(ec2: Ec2Admin, clients: Ec2Clients) -> None:
    east = ec2.launch("us-east-1")
    sydney = ec2.launch("ap-southeast-2")
    provider = AwsProvider(clients, ["all"])

    regions = provider.regions()
    listed = {i.id: i.location for i in provider.list_instances()}

    known = {
        r["RegionName"]: r.get("OptInStatus")
        for r in ec2.client("us-east-1").describe_regions()["Regions"]
    }
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= set(regions)
    assert regions == sorted(r for r, status in known.items() if status != "not-opted-in")
    assert len(regions) > 10
    assert listed == {east: "us-east-1", sydney: "ap-southeast-2"}


def test_no_regions_means_the_default_region(
    ec2: Ec2Admin, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    west = ec2.launch("eu-west-1")
    ec2.launch("us-east-1")
    provider = AwsProvider(Ec2Clients(endpoint_url=moto_url, access_key=KEY))

    assert provider.regions() == ["eu-west-1"]
    assert [i.id for i in provider.list_instances()] == [west]


def test_one_failing_region_keeps_the_others(ec2: Ec2Admin, moto_url: str) -> None:
    east = ec2.launch("us-east-1", name="east")
    # moto answers 500 for a region it does not know; one attempt keeps the test fast.
    clients = Ec2Clients(endpoint_url=moto_url, access_key=KEY, max_attempts=1)
    provider = AwsProvider(clients, ["us-east-1", "xx-nowhere-1"])

    with pytest.raises(ProviderError) as caught:
        provider.list_instances()

    error = caught.value
    assert error.failed_regions == ("xx-nowhere-1",)
    assert error.partial is not None
    assert [i.id for i in error.partial] == [east]
    # The fleet keeps stale rows per location: the failed region's, not the answering one's.
    assert [i.location for i in error.partial] == ["us-east-1"]
    assert error.message.startswith("xx-nowhere-1: ")
    assert "\n" not in error.message


def test_a_clean_poll_has_no_warnings(ec2: Ec2Admin, provider: AwsProvider) -> None:
    ec2.launch("us-east-1", "g5.xlarge", spot="persistent")
    ec2.launch("eu-west-1", "c6i.xlarge")

    provider.list_instances()

    assert provider.poll_warnings() == ()


def test_a_second_poll_gives_the_same_facts(ec2: Ec2Admin, provider: AwsProvider) -> None:
    first_id = ec2.launch("us-east-1", "g5.xlarge", spot="one-time")
    first = {i.id: i for i in provider.list_instances()}
    ec2.launch("eu-west-1", "g5.xlarge")

    second = {i.id: i for i in provider.list_instances()}

    assert second[first_id] == first[first_id]
    assert all(i.gpus is not None for i in second.values())


def test_storage_lists_every_volume_with_its_monthly_cost(
    ec2: Ec2Admin, provider: AwsProvider
) -> None:
    running = ec2.launch("us-east-1", "g5.xlarge", name="train")
    stopped = ec2.launch("eu-west-1", "g5.12xlarge", name="vit", stopped=True)
    east = ec2.client("us-east-1")
    orphan = east.create_volume(
        AvailabilityZone="us-east-1a",
        Size=200,
        VolumeType="gp3",
        Iops=4000,
        Throughput=250,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "old-dataset"}]}
        ],
    )["VolumeId"]
    fast = east.create_volume(AvailabilityZone="us-east-1a", Size=100, VolumeType="io2", Iops=40000)
    before = datetime.now(UTC) - timedelta(minutes=1)

    assert provider.storage() == ()
    instances = {i.id: i for i in provider.list_instances()}
    volumes = {v.id: v for v in provider.storage()}

    assert provider.poll_warnings() == ()
    root_of = {i: details_of(instances[i]).volumes[0].id for i in (running, stopped)}
    assert set(volumes) == {root_of[running], root_of[stopped], orphan, fast["VolumeId"]}
    kept = volumes[orphan]
    assert (kept.provider, kept.location, kept.kind, kept.name) == (
        "aws",
        "us-east-1",
        "ebs",
        "old-dataset",
    )
    assert (kept.volume_type, kept.size_gb, kept.iops, kept.throughput_mibps) == (
        "gp3",
        200,
        4000,
        250,
    )
    assert kept.orphaned
    assert kept.attached_state is None
    # 200 GB x 0.08 + 1,000 IOPS over the free 3,000 x 0.005 + 125 MiB/s over 125 x 0.04
    assert kept.monthly_usd == Decimal("26.00")
    assert kept.rate is not None
    assert kept.rate.usd_per_hour == Decimal("26.00") / 730
    assert (kept.rate.source, kept.rate.region) == ("bundled EBS price table", "us-east-1")
    assert kept.created_at is not None
    assert kept.created_at >= before
    # 100 GB x 0.125 + 32,000 IOPS x 0.065 + 8,000 x 0.0455
    assert volumes[fast["VolumeId"]].monthly_usd == Decimal("2456.50")

    parked = volumes[root_of[stopped]]
    assert (parked.attached_to, parked.attached_state) == (stopped, InstanceState.STOPPED)
    assert parked.location == "eu-west-1"
    assert not parked.orphaned
    # moto's default volume type is gp2: 100 GB x 0.11 in Ireland
    assert (parked.volume_type, parked.size_gb) == ("gp2", 100)
    assert parked.monthly_usd == Decimal("11.00")
    live = volumes[root_of[running]]
    assert (live.attached_to, live.attached_state) == (running, InstanceState.RUNNING)
    assert live.monthly_usd == Decimal("10.00")


def test_every_instance_has_a_rate(ec2: Ec2Admin, provider: AwsProvider) -> None:
    on_demand = ec2.launch("us-east-1", "p5.48xlarge")
    spot = ec2.launch("eu-west-1", "g5.xlarge", spot="one-time")

    instances = {i.id: i for i in provider.list_instances()}

    # moto has no Price List API: the bundled table, saying why.
    listed = instances[on_demand].rate
    assert listed is not None
    assert (listed.source, listed.usd_per_hour, listed.region) == (
        "bundled price table",
        Decimal("55.04"),
        "us-east-1",
    )
    assert listed.note
    market = instances[spot].rate
    assert market is not None
    assert (market.source, market.region) == (
        "spot price history",
        details_of(instances[spot]).zone,
    )


def test_volumes_not_permitted_are_a_warning_not_a_failure(
    ec2: Ec2Admin, hostile_endpoint: HostileEndpoint
) -> None:
    instance_id = ec2.launch("us-east-1")
    hostile_endpoint.deny.add("DescribeVolumes")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    assert [i.id for i in provider.list_instances()] == [instance_id]
    assert provider.storage() == ()
    assert provider.poll_warnings() == (
        "not permitted: ec2:DescribeVolumes; EBS volumes not counted",
    )
