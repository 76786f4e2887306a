"""A moto EC2 server on 127.0.0.1 for the whole session, reset before every test that uses it."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from runctl_tui.providers.aws import AwsProvider, Ec2Clients

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

KEY = ("testing", "testing")
AMI = "ami-0a1b2c3d4e5f60718"
REGIONS = ["us-east-1", "eu-west-1"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One server per xdist worker: port 0 lets the OS pick a free port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def reset(url: str) -> None:
    """Empty every account and region of the server."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.fixture
def moto_url(moto_server: str) -> Iterator[str]:
    """The server's URL, empty at the start of the test.

    moto keeps its state in process globals, which an in-process demo backend in a later test
    of this worker would share: empty it again afterwards too.
    """
    reset(moto_server)
    yield moto_server
    reset(moto_server)


class Ec2Admin:
    """Plain boto3, independent of the code under test: seeds instances and checks their state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[str, EC2Client] = {}

    def client(self, region: str) -> EC2Client:
        """A boto3 EC2 client for ``region`` on the moto server."""
        if region not in self._clients:
            self._clients[region] = boto3.client(
                "ec2",
                region_name=region,
                endpoint_url=self.url,
                aws_access_key_id=KEY[0],
                aws_secret_access_key=KEY[1],
            )
        return self._clients[region]

    def launch(
        self,
        region: str = "us-east-1",
        instance_type: str = "g5.xlarge",
        *,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        spot: str | None = None,
        zone: str | None = None,
        stopped: bool = False,
    ) -> str:
        """Start one instance (a spot request of type ``spot`` if given) and return its id."""
        client = self.client(region)
        spec: dict[str, Any] = {
            "ImageId": AMI,
            "InstanceType": instance_type,
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}}
            ],
        }
        if zone:
            spec["Placement"] = {"AvailabilityZone": zone}
        if spot:
            answer = client.request_spot_instances(
                InstanceCount=1,
                Type=spot,  # type: ignore[arg-type]
                LaunchSpecification=spec,  # type: ignore[arg-type]
            )
            instance_id = answer["SpotInstanceRequests"][0]["InstanceId"]
        else:
            instance_id = client.run_instances(MinCount=1, MaxCount=1, **spec)["Instances"][0][
                "InstanceId"
            ]
        all_tags = dict(tags or {})
        if name is not None:
            all_tags["Name"] = name
        if all_tags:
            client.create_tags(
                Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in all_tags.items()]
            )
        if stopped:
            client.stop_instances(InstanceIds=[instance_id])
        return instance_id

    def state(self, region: str, instance_id: str) -> str:
        """The instance's state as EC2 reports it now."""
        answer = self.client(region).describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]

    def tag(self, region: str, instance_id: str, key: str, value: str) -> None:
        """Set one tag."""
        self.client(region).create_tags(
            Resources=[instance_id], Tags=[{"Key": key, "Value": value}]
        )


@pytest.fixture
def ec2(moto_url: str) -> Ec2Admin:
    """Seeding and checking, through plain boto3."""
    return Ec2Admin(moto_url)


@pytest.fixture
def clients(moto_url: str) -> Ec2Clients:
    """The app's own client factory, pointed at moto."""
    return Ec2Clients(endpoint_url=moto_url, access_key=KEY)


@pytest.fixture
def provider(clients: Ec2Clients) -> AwsProvider:
    """The EC2 provider over two regions."""
    return AwsProvider(clients, REGIONS)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, isolated_environment: Path) -> None:
    """No credential source anywhere: no variables, empty AWS files, no instance metadata."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    config = isolated_environment / "aws-config"
    credentials = isolated_environment / "aws-credentials"
    config.write_text("", encoding="utf-8")
    credentials.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    # Off an EC2 host the metadata probe only costs time; on one it could find a real role.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
