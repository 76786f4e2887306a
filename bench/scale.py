"""Benchmark 2: one AwsProvider poll of 1,000 instances over 4 regions, against a bare boto3 loop.

Each region is its own moto server process on 127.0.0.1 holding 250 instances. The baseline pages
``describe_instances`` (PageSize 1000) through the regions one after the other; the candidate is
``AwsProvider.list_instances()``, cold (a fresh provider, so it also calls
``describe_instance_types``) and warm (the same provider's second poll).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from bench.common import (
    LOOPBACK,
    ROOT,
    Figure,
    alternate,
    child_arguments,
    heading,
    isolate_this_process,
    median,
    ms,
    round_ratios,
    spread,
    write_figures,
)
from runctl_tui.providers.aws import AwsProvider, Ec2Clients, instance_from_ec2

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1")
PER_REGION = 250
BATCH = 25
"""Instances per run_instances call: a fleet is many launches, not one 250-instance reservation."""
PAGE_SIZE = 1000
AMI = "ami-0b1e2c3d4e5f60718"
KEY = ("bench", "bench")
"""Fake credentials; only moto on 127.0.0.1 ever sees them."""
FLEET_TYPES = (
    "g5.xlarge",
    "p4d.24xlarge",
    "g6e.12xlarge",
    "c6i.xlarge",
    "p5.48xlarge",
    "g5.12xlarge",
    "m7i.2xlarge",
    "g6.xlarge",
    "t3.medium",
    "g6e.xlarge",
)
PROJECTS = ("llm-sft", "dpo-sweep", "diffusion", "evals", "speech", "rlhf", "data", "vision")
ROUNDS, QUICK_ROUNDS = 5, 1
GOAL = 0.5

Found = TypeVar("Found", bound=Sized)


class RegionalClients(Ec2Clients):
    """The app's own cached, retrying EC2 clients, each region pointed at its own moto server."""

    def __init__(self, endpoints: Mapping[str, str]) -> None:
        super().__init__(access_key=KEY)
        self._by_region = {
            region: Ec2Clients(endpoint_url=url, access_key=KEY)
            for region, url in endpoints.items()
        }

    def default_region(self) -> str | None:
        """The first region."""
        return next(iter(self._by_region), None)

    def client(self, region: str) -> EC2Client:
        """The client for ``region``'s server, created once (by its own thread-safe cache)."""
        return self._by_region[region].client(region)


@contextmanager
def region_servers(regions: Sequence[str], env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """One moto server process per region, started together; yields region to endpoint URL."""
    with ExitStack() as stack:
        started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        for region in regions:
            errors: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())
            server = subprocess.Popen(
                [sys.executable, "-m", "bench.moto_server"],
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
            stack.callback(stop_server, server)
            started.append((region, server, errors))
        endpoints: dict[str, str] = {}
        for region, server, errors in started:
            assert server.stdout is not None
            port = server.stdout.readline().strip()
            if not port.isdigit():
                errors.seek(0)
                raise RuntimeError(f"moto server for {region} failed: {errors.read()[-800:]!r}")
            endpoints[region] = f"http://{LOOPBACK}:{int(port)}"
        yield endpoints


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (its signal to stop) and reap it."""
    if server.stdin is not None:
        server.stdin.close()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def launch_spec(region: str, zones: Sequence[str], batch: int) -> dict[str, Any]:
    """The run_instances arguments of one batch: a type, a zone and a named project."""
    project = PROJECTS[batch % len(PROJECTS)]
    tags = {"Name": f"{project}-{region}-{batch:02d}", "project": project, "owner": "bench"}
    return {
        "ImageId": AMI,
        "MinCount": BATCH,
        "MaxCount": BATCH,
        "InstanceType": FLEET_TYPES[batch % len(FLEET_TYPES)],
        "Placement": {"AvailabilityZone": zones[batch % len(zones)]},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    }


def seed_region(client: EC2Client, region: str) -> None:
    """Launch ``PER_REGION`` instances in batches; every fifth batch is stopped."""
    zones = sorted(z["ZoneName"] for z in client.describe_availability_zones()["AvailabilityZones"])
    for batch in range(PER_REGION // BATCH):
        answer = client.run_instances(**launch_spec(region, zones, batch))
        if batch % 5 == 4:
            client.stop_instances(InstanceIds=[i["InstanceId"] for i in answer["Instances"]])


def bare_clients(endpoints: Mapping[str, str]) -> list[EC2Client]:
    """Plain boto3 clients, one per region, as a script without runctl-tui would make them."""
    import boto3.session

    session = boto3.session.Session(aws_access_key_id=KEY[0], aws_secret_access_key=KEY[1])
    return [session.client("ec2", region_name=r, endpoint_url=u) for r, u in endpoints.items()]


def raw_instances(clients: Sequence[EC2Client]) -> list[Any]:
    """Every ``describe_instances`` entry, region after region: the baseline's whole job."""
    return [
        entry
        for client in clients
        for page in client.get_paginator("describe_instances").paginate(
            PaginationConfig={"PageSize": PAGE_SIZE}
        )
        for reservation in page.get("Reservations", [])
        for entry in reservation.get("Instances", [])
    ]


@dataclass
class Sample:
    """Wall-clock and this process's CPU seconds (all threads) of each timed poll."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, call: Callable[[], Found]) -> Found:
        """Time ``call``; return what it returned."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        return result


def expect_fleet(found: Sized, who: str) -> None:
    """Stop at once if a poll did not see the whole seeded fleet: its time would mean nothing."""
    expected = PER_REGION * len(REGIONS)
    if len(found) != expected:
        raise RuntimeError(f"{who} saw {len(found)} instances, expected {expected}")


def measure(endpoints: Mapping[str, str], rounds: int) -> tuple[dict[str, Sample], list[Any]]:
    """Warm both sides up once, then ``rounds`` interleaved rounds of baseline, cold and warm.

    Returns the samples and the raw entries of the last baseline poll.
    """
    clients = RegionalClients(endpoints)
    for region in REGIONS:
        clients.client(region)
    baseline = bare_clients(endpoints)
    # Untimed: botocore loads its models and paginators lazily, on each session's first calls.
    raw = raw_instances(baseline)
    expect_fleet(raw, "baseline")
    expect_fleet(AwsProvider(clients, REGIONS).list_instances(), "AwsProvider")
    samples = {"bare": Sample(), "cold": Sample(), "warm": Sample()}
    for n in range(rounds):
        for who in alternate(n, "bare", "ours"):
            if who == "bare":
                raw = samples["bare"].add(lambda: raw_instances(baseline))
                expect_fleet(raw, "baseline")
                continue
            provider = AwsProvider(clients, REGIONS)
            for phase in ("cold", "warm"):
                expect_fleet(samples[phase].add(provider.list_instances), f"AwsProvider {phase}")
    return samples, raw


def model_building_seconds(raw: Sequence[Any]) -> float:
    """Context: seconds to turn the raw entries into Instance models on one thread."""
    start = time.perf_counter()
    for entry in raw:
        instance_from_ec2(
            entry,
            provider="aws",
            region="us-east-1",
            protect_tag="runctl:protect",
            type_info={},
            spot_types={},
        )
    return time.perf_counter() - start


def report(samples: Mapping[str, Sample], building: float) -> list[Figure]:
    """Print medians and ratios; return the two headline figures."""
    base = median(samples["bare"].wall)
    labels = {
        "bare": "bare boto3 loop (serial)",
        "cold": "AwsProvider, cold",
        "warm": "AwsProvider, warm",
    }
    for name, label in labels.items():
        sample = samples[name]
        cpu = median(sample.cpu) * 1000
        print(f"  {label:<26} {spread(sample.wall)}  client CPU {cpu:.0f} ms")
    figures = []
    for phase in ("cold", "warm"):
        ratio = median(samples[phase].wall) / base
        per_round = round_ratios(samples[phase].wall, samples["bare"].wall)
        label = f"ratio {phase} / bare"
        print(f"  {label:<26} {ratio:.2f}x  ({per_round}; goal <= {GOAL:.1f}x)")
        figures.append(
            Figure(
                f"1,000-instance poll, {phase} / bare boto3",
                ratio,
                "x",
                GOAL,
                f"{median(samples[phase].wall) * 1000:.0f} vs {base * 1000:.0f} ms",
            )
        )
    print(f"  context: building the 1,000 Instance models alone takes {ms(building)}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scale benchmark and print its report."""
    args = child_arguments(__doc__ or "", argv)
    rounds = QUICK_ROUNDS if args.quick else ROUNDS
    total = PER_REGION * len(REGIONS)
    heading(
        f"2. Scale: one poll of {total:,} instances in {len(REGIONS)} regions "
        f"(a moto server each), {rounds} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        isolate_this_process(Path(tmp))
        with region_servers(REGIONS, os.environ) as endpoints:
            seeding = RegionalClients(endpoints)
            started = time.perf_counter()
            with ThreadPoolExecutor(len(REGIONS)) as pool:
                list(pool.map(lambda r: seed_region(seeding.client(r), r), REGIONS))
            print(f"  seeded {total:,} instances in {time.perf_counter() - started:.1f} s")
            samples, raw = measure(endpoints, rounds)
    write_figures(args.json, report(samples, model_building_seconds(raw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
