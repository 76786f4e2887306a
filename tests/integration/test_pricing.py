"""EC2 rates through the real boto3 path: the Price List API stand-in, moto's spot price
history, the disk cache and the bundled table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from runctl_tui.costs.pricing import (
    BUNDLED_SOURCE,
    LIVE_SOURCE,
    SPOT_SOURCE,
    Ec2Prices,
    OnDemandCache,
    bundled_table,
    cache_dir,
    on_demand_price,
)
from runctl_tui.demo import DEMO_PRICES, DEMO_REGIONS, DemoAws, DemoBackend, DemoClients
from runctl_tui.models import Ec2Details, Instance, Lifecycle
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from tests.integration.conftest import KEY, Ec2Admin, HostileEndpoint
from tests.integration.pricing_server import PriceListServer, product_document, serving_prices

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def price_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PriceListServer]:
    """The Price List API stand-in, g5.xlarge priced in us-east-1 and eu-west-1."""
    with serving_prices(monkeypatch, tmp_path / "cache") as server:
        server.prices[("us-east-1", "g5.xlarge")] = "1.0060000000"
        server.prices[("eu-west-1", "g5.xlarge")] = "1.1230000000"
        yield server


def pricing_clients(**kwargs: float) -> Ec2Clients:
    """App clients with no explicit endpoint: the pricing one follows AWS_ENDPOINT_URL_PRICING."""
    return Ec2Clients(access_key=KEY, **kwargs)  # type: ignore[arg-type]


def prices_with(clock: Clock, clients: Ec2Clients | None = None) -> Ec2Prices:
    """Live prices through ``clients``' pricing client, cached where the environment says."""
    return Ec2Prices((clients or pricing_clients()).pricing, clock=clock)


def test_the_price_comes_from_the_price_list_api(price_list: PriceListServer) -> None:
    report = prices_with(Clock()).on_demand("us-east-1", ["g5.xlarge"])

    rate = report.rates["g5.xlarge"]
    assert rate.usd_per_hour == Decimal("1.006")
    assert (rate.source, rate.as_of, rate.region) == (LIVE_SOURCE, T0, "us-east-1")
    assert not rate.estimate
    assert not rate.upper_bound
    assert rate.note == ""
    assert report.warnings == []
    sent = {f["Field"]: (f["Type"], f["Value"]) for f in price_list.filters}
    assert sent == {
        "instanceType": ("TERM_MATCH", "g5.xlarge"),
        "regionCode": ("TERM_MATCH", "us-east-1"),
        "operatingSystem": ("TERM_MATCH", "Linux"),
        "tenancy": ("TERM_MATCH", "Shared"),
        "preInstalledSw": ("TERM_MATCH", "NA"),
        "capacitystatus": ("TERM_MATCH", "Used"),
        "licenseModel": ("TERM_MATCH", "No License required"),
    }


def test_each_region_gets_its_own_price(price_list: PriceListServer) -> None:
    prices = prices_with(Clock())

    east = prices.on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]
    west = prices.on_demand("eu-west-1", ["g5.xlarge"]).rates["g5.xlarge"]

    assert (east.usd_per_hour, east.region) == (Decimal("1.006"), "us-east-1")
    assert (west.usd_per_hour, west.region) == (Decimal("1.123"), "eu-west-1")


def test_types_are_fetched_once_and_concurrently(price_list: PriceListServer) -> None:
    types = ["g5.xlarge", "g5.2xlarge", "p4d.24xlarge", "p5.48xlarge"]
    for name in types[1:]:
        price_list.prices[("us-east-1", name)] = "9.5"
    prices = prices_with(Clock())

    first = prices.on_demand("us-east-1", [*types, "g5.xlarge", ""])
    second = prices.on_demand("us-east-1", types)

    assert set(first.rates) == set(types)
    assert first.rates == second.rates
    assert price_list.calls == {("us-east-1", name): 1 for name in types}


def test_the_disk_cache_serves_a_restart_and_expires_after_7_days(
    price_list: PriceListServer,
) -> None:
    clock = Clock()
    prices_with(clock).on_demand("us-east-1", ["g5.xlarge"])
    assert price_list.total_calls() == 1
    assert (cache_dir() / "ec2_on_demand.json").is_file()
    price_list.prices[("us-east-1", "g5.xlarge")] = "1.2"

    clock.now = T0 + timedelta(days=7) - timedelta(seconds=1)
    restarted = prices_with(clock).on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]
    assert price_list.total_calls() == 1
    assert (restarted.usd_per_hour, restarted.as_of) == (Decimal("1.006"), T0)

    clock.now = T0 + timedelta(days=7)
    refreshed = prices_with(clock).on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]
    assert price_list.total_calls() == 2
    assert (refreshed.usd_per_hour, refreshed.as_of) == (Decimal("1.2"), clock.now)


def test_a_corrupt_cache_file_is_ignored(
    price_list: PriceListServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = cache_dir() / "ec2_on_demand.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        '{"version": 1, "entries": {"us-east-1/g5.xlarge": {"usd_per_hour": "x', "utf-8"
    )

    rate = prices_with(Clock()).on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]

    assert (rate.source, rate.usd_per_hour) == (LIVE_SOURCE, Decimal("1.006"))
    assert any("corrupt, ignored" in r.getMessage() for r in caplog.records)
    written = json.loads(path.read_text("utf-8"))
    assert Decimal(written["entries"]["us-east-1/g5.xlarge"]["usd_per_hour"]) == Decimal("1.006")


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        ("denied", "no permission to read the AWS Price List (pricing:GetProducts)"),
        ("500", "the AWS Price List could not be read: "),
        ("throttled", "the AWS Price List could not be read: AWS is throttling requests"),
        ("hang", "the AWS Price List could not be read: the AWS endpoint did not answer in time"),
    ],
)
def test_the_bundled_table_is_used_only_when_the_call_fails(
    price_list: PriceListServer, failure: str, said: str
) -> None:
    price_list.fail = failure  # type: ignore[assignment]
    price_list.hang_seconds = 3
    clock = Clock()
    prices = prices_with(clock, pricing_clients(read_timeout=1, max_attempts=1))

    report = prices.on_demand("us-east-1", ["g5.xlarge"])

    rate = report.rates["g5.xlarge"]
    table = bundled_table()
    assert rate.usd_per_hour == table.prices["us-east-1"]["g5.xlarge"] == Decimal("1.006")
    assert (rate.source, rate.as_of, rate.region) == (BUNDLED_SOURCE, table.as_of, "us-east-1")
    assert rate.note.startswith(said)
    assert "\n" not in rate.note
    assert report.warnings == []

    # Failures are asked about again after a few minutes, not on every poll.
    calls = price_list.total_calls()
    clock.now += timedelta(minutes=4)
    assert prices.on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"] == rate
    assert price_list.total_calls() == calls
    price_list.fail = None
    clock.now += timedelta(minutes=1)
    live = prices.on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]
    assert price_list.total_calls() == calls + 1
    assert (live.source, live.usd_per_hour, live.note) == (LIVE_SOURCE, Decimal("1.006"), "")


def test_a_failure_stops_the_other_regions_asking_too(price_list: PriceListServer) -> None:
    price_list.fail = "denied"
    prices = prices_with(Clock())

    prices.on_demand("us-east-1", ["g5.xlarge"])
    west = prices.on_demand("eu-west-1", ["g5.xlarge"]).rates["g5.xlarge"]

    assert price_list.total_calls() == 1
    assert west.source == BUNDLED_SOURCE
    assert west.note.startswith("no permission")


def test_a_region_missing_from_the_table_is_an_estimate(price_list: PriceListServer) -> None:
    price_list.fail = "denied"

    rate = prices_with(Clock()).on_demand("ap-south-1", ["g5.xlarge"]).rates["g5.xlarge"]

    assert (rate.source, rate.region, rate.estimate) == (BUNDLED_SOURCE, "us-east-1", True)
    assert rate.note.endswith("us-east-1 price used for ap-south-1")


def test_a_type_in_neither_list_has_no_rate_and_warns(price_list: PriceListServer) -> None:
    report = prices_with(Clock()).on_demand("us-east-1", ["x9.mega", "g5.xlarge"])

    assert set(report.rates) == {"g5.xlarge"}
    assert report.warnings == [
        "no price for instance type 'x9.mega' in us-east-1: "
        "not in the AWS Price List or the bundled table"
    ]


def test_a_type_only_the_table_knows_says_the_list_lacks_it(price_list: PriceListServer) -> None:
    rate = prices_with(Clock()).on_demand("us-east-1", ["p5.48xlarge"]).rates["p5.48xlarge"]

    assert rate.source == BUNDLED_SOURCE
    assert rate.note == (
        "the AWS Price List has no on-demand Linux price for p5.48xlarge in us-east-1"
    )


def test_the_on_demand_hourly_term_is_read_not_the_reserved_one() -> None:
    document = product_document("us-east-1", "g5.xlarge", "1.0060000000")

    assert on_demand_price([document]) == Decimal("1.006")
    assert on_demand_price([]) is None
    assert on_demand_price(["not json", "[]"]) is None


def test_a_stand_in_ec2_endpoint_never_asks_the_real_price_list(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_PRICING", raising=False)
    clients = Ec2Clients(endpoint_url=moto_url, access_key=KEY)
    assert clients.pricing() is None

    rate = Ec2Prices(clients.pricing).on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]

    assert rate.source == BUNDLED_SOURCE
    assert rate.note.startswith("no AWS Price List API endpoint")


def test_bundled_only_prices_read_no_cache(tmp_path: Path) -> None:
    cache = OnDemandCache(tmp_path)
    cache.put("us-east-1", {"g5.xlarge": Decimal("9")}, T0)

    prices = Ec2Prices.bundled_only("offline on purpose")
    rate = prices.on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]

    assert (rate.source, rate.usd_per_hour, rate.note) == (
        BUNDLED_SOURCE,
        Decimal("1.006"),
        "offline on purpose",
    )


def ec2_of(instance: Instance) -> Ec2Details:
    assert isinstance(instance.details, Ec2Details)
    return instance.details


def test_the_provider_prices_on_demand_and_spot_instances(
    price_list: PriceListServer, ec2: Ec2Admin, moto_url: str
) -> None:
    on_demand = ec2.launch("us-east-1", "g5.xlarge", zone="us-east-1a")
    spot = ec2.launch("us-east-1", "g5.xlarge", spot="persistent")
    west = ec2.launch("eu-west-1", "g5.xlarge", stopped=True)
    clients = Ec2Clients(endpoint_url=moto_url, access_key=KEY)
    provider = AwsProvider(clients, ["us-east-1", "eu-west-1"])

    found = {i.id: i for i in provider.list_instances()}

    assert provider.poll_warnings() == ()
    on_demand_rate, west_rate = found[on_demand].rate, found[west].rate
    assert on_demand_rate is not None
    assert on_demand_rate.source == LIVE_SOURCE
    assert found[on_demand].hourly_usd == Decimal("1.006")
    assert west_rate is not None
    assert (west_rate.usd_per_hour, west_rate.region) == (Decimal("1.123"), "eu-west-1")
    spot_rate = found[spot].rate
    assert spot_rate is not None
    # moto's spot price history is placeholder data: one price for every type and zone.
    assert (spot_rate.source, spot_rate.region) == (SPOT_SOURCE, ec2_of(found[spot]).zone)
    assert spot_rate.usd_per_hour == Decimal("0.00001")
    assert spot_rate.as_of is not None
    assert spot_rate.as_of.tzinfo is not None
    assert not spot_rate.upper_bound
    assert price_list.calls == {("us-east-1", "g5.xlarge"): 1, ("eu-west-1", "g5.xlarge"): 1}

    provider.list_instances()
    assert price_list.total_calls() == 2
    assert provider.describe(found[spot]).rate == spot_rate


def test_spot_without_its_price_history_is_an_upper_bound(
    price_list: PriceListServer, ec2: Ec2Admin, hostile_endpoint: HostileEndpoint
) -> None:
    ec2.launch("us-east-1", "g5.xlarge", spot="one-time")
    hostile_endpoint.deny.add("DescribeSpotPriceHistory")
    provider = AwsProvider(hostile_endpoint.clients(max_attempts=1), ["us-east-1"])

    (instance,) = provider.list_instances()
    provider.list_instances()

    rate = instance.rate
    assert rate is not None
    assert (rate.source, rate.usd_per_hour, rate.upper_bound) == (
        LIVE_SOURCE,
        Decimal("1.006"),
        True,
    )
    assert rate.note == (
        "no permission to read the spot price history (ec2:DescribeSpotPriceHistory); "
        "counted at its on-demand price"
    )
    assert rate.marker == "≤"
    assert provider.poll_warnings() == (
        "no permission to read the spot price history (ec2:DescribeSpotPriceHistory); "
        "spot instances counted at on-demand prices",
    )
    # Asked again after a few minutes, not on every poll.
    assert hostile_endpoint.calls["DescribeSpotPriceHistory"] == 1


def test_the_demo_never_asks_the_price_list(price_list: PriceListServer, moto_url: str) -> None:
    backend = DemoBackend()
    try:
        aws = DemoAws(
            DemoClients(backend),
            DEMO_REGIONS,
            prices=Ec2Prices.bundled_only(DEMO_PRICES),
        )
        instances = aws.list_instances()
    finally:
        backend.stop()

    assert price_list.total_calls() == 0
    assert instances
    for instance in instances:
        assert instance.rate is not None, instance.name
        assert instance.rate.source == BUNDLED_SOURCE
        assert instance.rate.note.startswith(DEMO_PRICES)
        assert instance.rate.upper_bound is (ec2_of(instance).lifecycle is Lifecycle.SPOT)
    assert aws.storage()
    assert all(v.monthly_usd is not None for v in aws.storage())
    assert aws.poll_warnings() == ()


def test_a_slow_price_list_never_holds_the_poll(price_list: PriceListServer) -> None:
    price_list.fail = "hang"
    price_list.hang_seconds = 1.5
    clock = Clock()
    prices = Ec2Prices(
        pricing_clients(read_timeout=5.0).pricing,
        clock=clock,
        cache=OnDemandCache(),
        fetch_wait=0.2,
    )

    first = prices.on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]

    # The poll went on with the bundled price, saying why; the answer is kept for the next.
    assert first.source == BUNDLED_SOURCE
    assert first.note == "the AWS Price List API has not answered yet"
    price_list.fail = None
    clock.now += timedelta(minutes=6)
    for _ in range(100):
        rate = prices.on_demand("us-east-1", ["g5.xlarge"]).rates["g5.xlarge"]
        if rate.source == LIVE_SOURCE:
            break
    assert rate.source == LIVE_SOURCE
    assert rate.usd_per_hour == Decimal("1.006")
