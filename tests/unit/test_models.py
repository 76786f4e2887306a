"""The pure models: formatting, GPU labels, uptime and spot rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from runctl_tui.models import (
    Action,
    ActionResult,
    Ec2Details,
    FleetSnapshot,
    GpuSpec,
    InstanceState,
    Lifecycle,
    Outcome,
    ProviderStatus,
    format_duration,
    format_usd,
)
from tests.fakes import T0, make_instance


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (None, "-"),
        (timedelta(0), "0s"),
        (timedelta(seconds=42.9), "42s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(minutes=17, seconds=59), "17m"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=1), "1h00m"),
        (timedelta(hours=3, minutes=12, seconds=30), "3h12m"),
        (timedelta(hours=23, minutes=59), "23h59m"),
        (timedelta(days=1), "1d00h"),
        (timedelta(days=5, hours=4, minutes=59), "5d04h"),
        (timedelta(days=400), "400d00h"),
    ],
)
def test_format_duration(delta: timedelta | None, text: str) -> None:
    assert format_duration(delta) == text


@pytest.mark.parametrize(
    ("amount", "per_hour", "text"),
    [
        (None, False, "?"),
        (None, True, "?"),
        (Decimal(0), False, "$0.00"),
        (Decimal("1.006"), False, "$1.01"),
        (Decimal("1.006"), True, "$1.01/h"),
        (Decimal("55.04"), True, "$55.04/h"),
        (Decimal("0.0104"), False, "$0.010"),
        (Decimal("0.5262"), False, "$0.526"),
        (Decimal("1234.5"), False, "$1,234.50"),
    ],
)
def test_format_usd(amount: Decimal | None, per_hour: bool, text: str) -> None:
    assert format_usd(amount, per_hour=per_hour) == text


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        (GpuSpec(count=8, model="H100", memory_mib=81920), "8x H100 80G"),
        (GpuSpec(count=8, model="A100", memory_mib=40960), "8x A100 40G"),
        (GpuSpec(count=1, model="A10G", memory_mib=22888), "1x A10G 22G"),
        (GpuSpec(count=4, model="L40S", memory_mib=45776), "4x L40S 45G"),
        (GpuSpec(count=1, model="Inferentia2"), "1x Inferentia2"),
        (GpuSpec(count=2, model="T4", memory_mib=0), "2x T4"),
    ],
)
def test_gpu_label(spec: GpuSpec, label: str) -> None:
    assert spec.label() == label


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (InstanceState.RUNNING, timedelta(hours=1)),
        (InstanceState.PENDING, timedelta(hours=1)),
        (InstanceState.STOPPING, timedelta(hours=1)),
        (InstanceState.STOPPED, None),
        (InstanceState.SHUTTING_DOWN, None),
        (InstanceState.TERMINATED, None),
        (InstanceState.UNKNOWN, None),
    ],
)
def test_uptime_only_while_up(state: InstanceState, expected: timedelta | None) -> None:
    instance = make_instance(state=state, launched_at=T0 - timedelta(hours=1))

    assert instance.uptime(T0) == expected


def test_uptime_without_launch_time() -> None:
    assert make_instance(launched_at=None).uptime(T0) is None


def test_uptime_never_negative_when_clocks_disagree() -> None:
    instance = make_instance(launched_at=T0 + timedelta(minutes=5))

    assert instance.uptime(T0) == timedelta(0)


@pytest.mark.parametrize(
    ("spot", "one_time"),
    [(None, False), ("one-time", True), ("persistent", False)],
)
def test_one_time_spot(spot: str | None, one_time: bool) -> None:
    details = make_instance(spot=spot).details
    assert isinstance(details, Ec2Details)
    assert details.one_time_spot is one_time


def test_spot_request_type_on_an_on_demand_instance_is_not_one_time_spot() -> None:
    instance = make_instance(lifecycle=Lifecycle.ON_DEMAND, spot_request_type="one-time")

    assert isinstance(instance.details, Ec2Details)
    assert instance.details.one_time_spot is False


def test_key_and_immutability() -> None:
    instance = make_instance("i-42", provider="aws")

    assert instance.key == "aws:i-42"
    with pytest.raises(ValidationError):
        instance.state = InstanceState.STOPPED  # type: ignore[misc]


def test_provider_status_age() -> None:
    status = ProviderStatus(provider="aws", ok=True, refreshed_at=T0)

    assert status.age(T0 + timedelta(seconds=90)) == timedelta(seconds=90)
    assert status.age(T0 - timedelta(seconds=5)) == timedelta(0)
    assert ProviderStatus(provider="aws", ok=False).age(T0) is None


def test_snapshot_all_ok() -> None:
    ok = ProviderStatus(provider="a", ok=True)
    failed = ProviderStatus(provider="b", ok=False, error="boom")

    assert FleetSnapshot(instances=(), statuses=(ok,), taken_at=T0).all_ok
    assert not FleetSnapshot(instances=(), statuses=(ok, failed), taken_at=T0).all_ok


def test_action_result_summary() -> None:
    instance = make_instance("i-7", name="trainer")

    done = ActionResult(
        action=Action.STOP,
        instance=instance,
        outcome=Outcome.DONE,
        new_state=InstanceState.STOPPING,
    )
    refused = ActionResult(
        action=Action.TERMINATE, instance=instance, outcome=Outcome.REFUSED, detail="protected"
    )

    assert done.summary() == "stop: i-7 (trainer): now stopping"
    assert refused.summary() == "terminate refused: i-7 (trainer): protected"


def test_action_result_summary_escapes_what_the_provider_sent() -> None:
    instance = make_instance("i-7", name="[b]x[/b]\n\x1b]0;pwned\x07")

    summary = ActionResult(
        action=Action.STOP, instance=instance, outcome=Outcome.FAILED, detail="bad\rthing"
    ).summary()

    assert "\n" not in summary
    assert "\x1b" not in summary
    assert "\r" not in summary
    assert summary.startswith("stop failed: i-7 ([b]x[/b]␤␛]0;pwned␇)")


def test_instance_launch_time_must_be_a_datetime() -> None:
    with pytest.raises(ValidationError):
        make_instance(launched_at="yesterday")
    assert make_instance(launched_at=datetime(2026, 1, 1, tzinfo=UTC)).launched_at is not None


def test_details_round_trip_by_kind() -> None:
    """The details union is told apart by ``kind``, so a dumped item loads back as itself."""
    from runctl_tui.models import Instance, ProcessDetails
    from tests.fakes import make_run

    for item in (make_instance(zone="us-east-1a"), make_run(77)):
        again = Instance.model_validate(item.model_dump())
        assert again == item
        assert type(again.details) is type(item.details)
    assert isinstance(make_run(77).details, ProcessDetails)
    assert make_run(77).kind == "process"
    assert make_instance().kind == "ec2"


def test_every_kind_has_a_type_label_and_facts() -> None:
    from runctl_tui.models import HostDetails, OtherDetails, PodDetails

    kinds = [
        make_instance().details,
        PodDetails(gpu_count=2, gpu_display_name="RTX 4090", volume_gb=50),
        HostDetails(hostname="box", cpus=8, load_average=(0.5, 0.4, 0.3)),
        OtherDetails(type_label="vm", rows=(("Flavour", "big"),)),
    ]
    labels = [d.type_label for d in kinds]
    assert labels == ["g5.xlarge", "RTX 4090", "host · 8 CPU · load 0.50", "vm"]
    assert all(d.facts() for d in kinds)
