"""Fleet.act end to end against moto: the guards hold on a real EC2 API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from runctl_tui.audit import Journal
from runctl_tui.models import Action, Instance, InstanceState, Outcome
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.services.fleet import Fleet
from tests.integration.conftest import KEY, Ec2Admin, HostileEndpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


@pytest.fixture
def fleet(provider: AwsProvider, journal: Journal) -> Fleet:
    return Fleet([provider], journal=journal)


def entries(journal: Journal) -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal.path.read_text("utf-8").splitlines()]


def shown(fleet: Fleet, instance_id: str) -> Instance:
    """The instance as the dashboard would show it after a poll."""
    return next(i for i in fleet.poll().instances if i.id == instance_id)


def test_poll_reports_every_region(ec2: Ec2Admin, fleet: Fleet) -> None:
    ec2.launch("us-east-1")
    ec2.launch("eu-west-1")

    snapshot = fleet.poll()

    assert snapshot.all_ok
    assert sorted(i.location for i in snapshot.instances) == ["eu-west-1", "us-east-1"]
    assert snapshot.statuses[0].instance_count == 2


def test_poll_with_a_failing_region_shows_the_rest(
    ec2: Ec2Admin, moto_url: str, journal: Journal
) -> None:
    east = ec2.launch("us-east-1")
    clients = Ec2Clients(endpoint_url=moto_url, access_key=KEY, max_attempts=1)
    fleet = Fleet([AwsProvider(clients, ["us-east-1", "xx-nowhere-1"])], journal=journal)

    snapshot = fleet.poll()

    assert [i.id for i in snapshot.instances] == [east]
    (status,) = snapshot.statuses
    assert status.ok is False
    assert status.error is not None
    assert status.error.startswith("xx-nowhere-1: ")
    assert status.instance_count == 1


def test_stop_end_to_end(ec2: Ec2Admin, fleet: Fleet, journal: Journal) -> None:
    instance_id = ec2.launch("eu-west-1", name="trainer")
    seen = shown(fleet, instance_id)

    (result,) = fleet.act_now(Action.STOP, [seen])

    assert result.outcome is Outcome.DONE
    assert result.new_state is InstanceState.STOPPING
    assert ec2.state("eu-west-1", instance_id) == "stopped"
    attempted, entry = entries(journal)
    assert attempted["result"] == "attempted"
    assert entry["provider"] == "aws"
    assert entry["region"] == "eu-west-1"
    assert entry["id"] == instance_id
    assert entry["name"] == "trainer"
    assert (entry["action"], entry["result"], entry["state_after"]) == ("stop", "done", "stopping")


def test_start_end_to_end(ec2: Ec2Admin, fleet: Fleet) -> None:
    instance_id = ec2.launch(stopped=True)

    (result,) = fleet.act_now(Action.START, [shown(fleet, instance_id)])

    assert result.outcome is Outcome.DONE
    assert ec2.state("us-east-1", instance_id) == "running"


def test_terminate_of_a_protected_instance_is_refused(
    ec2: Ec2Admin, fleet: Fleet, journal: Journal
) -> None:
    instance_id = ec2.launch(name="precious", tags={"runctl:protect": "true"})
    seen = shown(fleet, instance_id)
    assert seen.protected

    (result,) = fleet.act_now(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert "runctl:protect=true" in result.detail
    assert ec2.state("us-east-1", instance_id) == "running"
    assert entries(journal)[0]["result"] == "refused"


def test_protection_added_after_the_poll_still_refuses(ec2: Ec2Admin, fleet: Fleet) -> None:
    instance_id = ec2.launch()
    seen = shown(fleet, instance_id)
    assert not seen.protected
    ec2.tag("us-east-1", instance_id, "runctl:protect", "true")

    (result,) = fleet.act_now(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert ec2.state("us-east-1", instance_id) == "running"


def test_terminate_after_the_state_changed_under_us_is_refused(
    ec2: Ec2Admin, fleet: Fleet, journal: Journal
) -> None:
    instance_id = ec2.launch(name="moving")
    seen = shown(fleet, instance_id)
    # Someone else stops it between the poll and the confirmation.
    ec2.client("us-east-1").stop_instances(InstanceIds=[instance_id])

    (result,) = fleet.act_now(Action.TERMINATE, [seen])

    assert result.outcome is Outcome.REFUSED
    assert "state changed from running to stopped" in result.detail
    assert ec2.state("us-east-1", instance_id) == "stopped"
    entry = entries(journal)[0]
    assert (entry["result"], entry["state_seen"]) == ("refused", "running")


def test_one_time_spot_is_never_stopped(ec2: Ec2Admin, fleet: Fleet) -> None:
    instance_id = ec2.launch(spot="one-time")

    (result,) = fleet.act_now(Action.STOP, [shown(fleet, instance_id)])

    assert result.outcome is Outcome.REFUSED
    assert "one-time spot" in result.detail
    assert ec2.state("us-east-1", instance_id) == "running"


def test_terminated_elsewhere_is_refused(ec2: Ec2Admin, fleet: Fleet) -> None:
    instance_id = ec2.launch()
    seen = shown(fleet, instance_id)
    ec2.client("us-east-1").terminate_instances(InstanceIds=[instance_id])

    (result,) = fleet.act_now(Action.STOP, [seen])

    assert result.outcome is Outcome.REFUSED
    assert "terminated" in result.detail


def test_marked_rows_are_each_checked(ec2: Ec2Admin, fleet: Fleet, journal: Journal) -> None:
    plain = ec2.launch("us-east-1", name="plain")
    guarded = ec2.launch("eu-west-1", name="guarded", tags={"runctl:protect": "true"})
    targets = [shown(fleet, plain), shown(fleet, guarded)]

    results = fleet.act_now(Action.TERMINATE, targets)

    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.REFUSED]
    assert ec2.state("us-east-1", plain) == "terminated"
    assert ec2.state("eu-west-1", guarded) == "running"
    assert [e["result"] for e in entries(journal)] == ["attempted", "done", "refused"]


def test_readonly_fleet_changes_nothing(
    ec2: Ec2Admin, provider: AwsProvider, journal: Journal
) -> None:
    instance_id = ec2.launch()
    fleet = Fleet([provider], journal=journal, readonly=True)

    (result,) = fleet.act_now(Action.TERMINATE, [shown(fleet, instance_id)])

    assert result.outcome is Outcome.REFUSED
    assert ec2.state("us-east-1", instance_id) == "running"
    assert entries(journal)[0]["result"] == "refused"


def test_terminate_with_its_spot_request_cancelled(
    ec2: Ec2Admin, fleet: Fleet, journal: Journal
) -> None:
    instance_id = ec2.launch("us-east-1", "g5.xlarge", spot="persistent")
    seen = shown(fleet, instance_id)
    requests = fleet.spot_requests([seen])
    assert list(requests) == [seen.key]

    cancel, terminate = fleet.act_now(Action.TERMINATE, [seen], cancel_spot_requests=True)

    assert (cancel.action, cancel.outcome) == (Action.CANCEL_SPOT_REQUEST, Outcome.DONE)
    assert requests[seen.key].id in cancel.detail
    assert terminate.outcome is Outcome.DONE
    assert ec2.state("us-east-1", instance_id) in {"shutting-down", "terminated"}
    active = ec2.client("us-east-1").describe_spot_instance_requests(
        Filters=[{"Name": "state", "Values": ["open", "active"]}]
    )["SpotInstanceRequests"]
    assert active == []
    assert [(e["action"], e["result"]) for e in entries(journal)] == [
        ("cancel-spot-request", "attempted"),
        ("cancel-spot-request", "done"),
        ("terminate", "attempted"),
        ("terminate", "done"),
    ]


def test_a_hung_endpoint_is_abandoned_at_the_poll_deadline(
    moto_url: str, hostile_endpoint: HostileEndpoint, journal: Journal
) -> None:
    hostile_endpoint.hang.add("*")
    provider = AwsProvider(hostile_endpoint.clients(read_timeout=30), ["us-east-1"])
    fleet = Fleet([provider], journal=journal, poll_deadline=1.0)

    started = time.monotonic()
    (status,) = fleet.poll().statuses
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert not status.ok
    assert status.error == "no answer within 1 s"
