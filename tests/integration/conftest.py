"""A moto EC2 server on 127.0.0.1 for the whole session, reset before every test that uses it.

Also: a fleet whose names and tags are hostile text (:func:`hostile_fleet`), and a misbehaving
endpoint in front of moto that denies, rejects or hangs chosen actions (:func:`hostile_endpoint`).
"""

from __future__ import annotations

import http.client
import logging
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from runctl_tui.models import Ec2Details, Instance
from runctl_tui.providers.aws import AwsProvider, Ec2Clients

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

KEY = ("testing", "testing")
AMI = "ami-0a1b2c3d4e5f60718"
REGIONS = ["us-east-1", "eu-west-1"]


def details_of(instance: Instance) -> Ec2Details:
    """The EC2 details of ``instance``, which must be an EC2 instance."""
    assert isinstance(instance.details, Ec2Details), instance.kind
    return instance.details


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


HOSTILE_REGION = "us-east-1"
HOSTILE_LABEL_TAG = "runctl-test:label"
"""Every hostile instance carries its label (a key of :data:`HOSTILE_NAMES`) in this tag."""

HOSTILE_NAMES: dict[str, str] = {
    "close-markup": "[/]",
    "click-quit": "[@click=app.quit]quit[/]",
    "click-screenshot": "[@click=app.screenshot('/tmp/x')]see runbook[/]",
    "link": "[link=https://evil.example]ok[/link]",
    "newline": "first line\nsecond line",
    "bidi": "report\u202etxt.exe",
    "zero-width": "zero\u200bwidth",
    "long": "long-" + "0123456789" * 1000,
    "c1-csi": "c1\x9b31mred",
    "esc": "esc\x1b[31mred\x1b[0m",
    "bell": "bell\x07",
    "nul": "nul\x00byte",
    "delete": "del\x7fete",
    "carriage-return": "carriage\rreturn",
    "surrogate": "lone\ud800surrogate",
}
"""Name tags, by label. Those that EC2/moto refuses or alters are left out of the fleet."""

HOSTILE_TAGS: dict[str, str] = {
    "[b]owner[/b]": "[red]maria[/red]",
    "[@click=app.quit]": "[@click=app.quit]x[/]",
    "team[": "]",
    "note": "line one\nline two\u202e",
}
"""Tags with bracketed keys and hostile values, set on every hostile instance."""

HOSTILE_TYPE = "[@click=app.quit]x[/].large"
"""An instance type moto launches but DescribeInstanceTypes does not know."""
HOSTILE_KEY_NAME = "[@click=app.quit]key[/]"


@dataclass(frozen=True)
class HostileFleet:
    """Instances on the moto server whose names, tags, key name and one type are hostile text."""

    url: str
    """The moto endpoint URL."""
    region: str
    """The one region every hostile instance is in."""
    ids: dict[str, str]
    """Label to instance id, for every seeded instance (``hostile-type`` included)."""
    names: dict[str, str]
    """Label to the exact raw Name tag that instance carries."""
    tags: dict[str, dict[str, str]]
    """Label to the exact raw tags (Name included) that instance carries."""
    refused: dict[str, str]
    """Label to why that Name was not seeded: refused, breaking every later describe, or altered."""

    def clients(self, **kwargs: Any) -> Ec2Clients:
        """The app's client factory pointed at the server (keyword arguments passed on)."""
        return Ec2Clients(endpoint_url=self.url, access_key=KEY, **kwargs)

    def provider(self, **kwargs: Any) -> AwsProvider:
        """An :class:`AwsProvider` over the fleet's region (keyword arguments go to it)."""
        return AwsProvider(self.clients(), [self.region], **kwargs)


def _round_trips(client: EC2Client, instance_id: str, value: str) -> str | None:
    """``None`` if a Name of ``value`` survives create_tags and describe_instances, else why not."""
    try:
        client.create_tags(Resources=[instance_id], Tags=[{"Key": "Name", "Value": value}])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        return f"create_tags refused it: {type(exc).__name__}"
    except UnicodeError as exc:
        return f"boto3 cannot encode it: {type(exc).__name__}"
    try:
        answer = client.describe_instances(InstanceIds=[instance_id])
    except Exception as exc:
        return f"accepted, but every describe_instances then fails: {type(exc).__name__}"
    finally:
        client.delete_tags(Resources=[instance_id], Tags=[{"Key": "Name"}])
    tags = answer["Reservations"][0]["Instances"][0].get("Tags", [])
    got = next((t.get("Value") for t in tags if t["Key"] == "Name"), None)
    return None if got == value else f"altered in transit: came back as {got!r}"


_refusals: dict[str, dict[str, str]] = {}
"""What :func:`probe_refusals` found, by server URL: a server's behaviour does not change."""


def probe_refusals(url: str) -> dict[str, str]:
    """Label to why the server refuses or alters that hostile Name; empties the server after."""
    if url not in _refusals:
        found: dict[str, str] = {}
        client = boto3.client(
            "ec2",
            region_name=HOSTILE_REGION,
            endpoint_url=url,
            aws_access_key_id=KEY[0],
            aws_secret_access_key=KEY[1],
            # An unparsable answer is retried by default: once says enough here.
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        probe = client.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]
        for label, value in HOSTILE_NAMES.items():
            why = _round_trips(client, probe["InstanceId"], value)
            if why is not None:
                found[label] = why
        reset(url)
        _refusals[url] = found
    return dict(_refusals[url])


def seed_hostile_fleet(url: str) -> HostileFleet:
    """Seed the hostile Names the server keeps intact (see :func:`probe_refusals`)."""
    refused = probe_refusals(url)
    client = Ec2Admin(url).client(HOSTILE_REGION)
    client.create_key_pair(KeyName=HOSTILE_KEY_NAME)
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    tags: dict[str, dict[str, str]] = {}
    seeded = {k: v for k, v in HOSTILE_NAMES.items() if k not in refused}
    seeded["hostile-type"] = "hostile instance type"
    for label, name in seeded.items():
        instance_type = HOSTILE_TYPE if label == "hostile-type" else "g5.xlarge"
        answer = client.run_instances(
            ImageId=AMI,
            InstanceType=instance_type,  # type: ignore[arg-type]
            KeyName=HOSTILE_KEY_NAME,
            MinCount=1,
            MaxCount=1,
        )
        instance_id = answer["Instances"][0]["InstanceId"]
        all_tags = {**HOSTILE_TAGS, HOSTILE_LABEL_TAG: label, "Name": name}
        client.create_tags(
            Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in all_tags.items()]
        )
        ids[label], names[label], tags[label] = instance_id, name, all_tags
    return HostileFleet(url, HOSTILE_REGION, ids, names, tags, refused)


@pytest.fixture
def hostile_fleet(moto_url: str) -> HostileFleet:
    """A moto server seeded with instances whose text is hostile; returns a :class:`HostileFleet`.

    Every instance (``g5.xlarge``, running, in ``us-east-1``, key pair :data:`HOSTILE_KEY_NAME`)
    carries one Name from :data:`HOSTILE_NAMES` (markup like ``[/]`` and
    ``[@click=app.quit]quit[/]``, a ``[link=...]``, a newline, a bidi override, a zero-width
    space, a C1 control, a 10,005-character name), all of :data:`HOSTILE_TAGS` (bracketed keys)
    and its label in :data:`HOSTILE_LABEL_TAG`. One more, labelled ``hostile-type``, has the
    instance type :data:`HOSTILE_TYPE`, which DescribeInstanceTypes rejects: its GPU facts are
    unknown and the provider warns about it. Names the server refuses or alters (ESC, NUL, BEL,
    CR, lone surrogates: see ``refused``) are not seeded. Use ``hostile_fleet.url`` as the
    endpoint (``AWS_ENDPOINT_URL`` or ``Ec2Clients(endpoint_url=...)`` with :data:`KEY`),
    ``hostile_fleet.provider()`` for an :class:`AwsProvider`, ``ids``/``names``/``tags`` (by
    label) for what must come back byte for byte. The first use in a process also probes the
    server and empties it, so take this fixture before seeding anything else.
    """
    return seed_hostile_fleet(moto_url)


EC2_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    "<Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this "
    "operation. User: arn:aws:iam::123456789012:user/ml is not authorized to perform: "
    "ec2:{action} because no identity-based policy allows the ec2:{action} action. Encoded "
    "authorization failure message: QmFzZTY0IGJsb2IgdGhhdCBzaG91bGQgbm90IGJlIHNob3du</Message>"
    "</Error></Errors><RequestID>denied-by-test</RequestID></Response>"
)
QUERY_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
    "<Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ml is not "
    "authorized to perform: sts:{action}</Message></Error>"
    "<RequestId>denied-by-test</RequestId></ErrorResponse>"
)
INVALID_TYPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    "<Code>InvalidInstanceType</Code><Message>The instance type is not supported.</Message>"
    "</Error></Errors><RequestID>rejected-by-test</RequestID></Response>"
)
EC2_ACTIONS_PREFIXES = ("Describe", "Run", "Stop", "Start", "Terminate", "Create", "Cancel")
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "server", "date"}
)


@dataclass
class HostileEndpoint:
    """A proxy on 127.0.0.1 in front of moto that misbehaves on purpose, per API action.

    Set the attributes while it runs: each request reads them afresh.
    """

    upstream: str
    """The moto server the proxy forwards to."""
    deny: set[str] = field(default_factory=set)
    """Actions answered with 403 (EC2 ``UnauthorizedOperation``, STS ``AccessDenied``)."""
    hang: set[str] = field(default_factory=set)
    """Actions (``"*"``: every request) left unanswered for ``hang_seconds``, then dropped."""
    hang_seconds: float = 6.0
    reject_types: set[str] = field(default_factory=set)
    """DescribeInstanceTypes calls naming any of these get ``InvalidInstanceType`` without
    saying which name was wrong, as a stricter endpoint than moto might."""
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """Action to a raw (status, body) answer, e.g. an error whose text is hostile."""
    lifetime: float = 120.0
    """The proxy shuts itself down after this many seconds even if nobody stops it."""
    calls: Counter[str] = field(default_factory=Counter, init=False)
    """How often each action reached the proxy (answered, hung or forwarded)."""
    url: str = field(default="", init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _timer: threading.Timer | None = field(default=None, init=False)

    def start(self) -> HostileEndpoint:
        """Listen on a free port of 127.0.0.1; ``url`` says where."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        server.daemon_threads = True
        server.endpoint = self  # type: ignore[attr-defined]
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="hostile-endpoint", daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Release every hung request and stop listening (idempotent)."""
        self._stopping.set()
        with self._lock:
            server, self._server = self._server, None
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()

    def clients(self, **kwargs: Any) -> Ec2Clients:
        """The app's client factory pointed at the proxy (keyword arguments passed on)."""
        return Ec2Clients(endpoint_url=self.url, access_key=KEY, **kwargs)

    def record(self, action: str) -> None:
        """Count one request for ``action``."""
        with self._lock:
            self.calls[action] += 1

    def answer(self, action: str, params: dict[str, list[str]]) -> tuple[int, bytes] | None:
        """The proxy's own answer to ``action``; ``None`` to forward it to moto."""
        if action in self.answers:
            return self.answers[action]
        if action in self.deny:
            ec2 = action.startswith(EC2_ACTIONS_PREFIXES)
            template = EC2_DENIED if ec2 else QUERY_DENIED
            return 403, template.format(action=action).encode()
        named = {v for k, values in params.items() if k.startswith("InstanceType.") for v in values}
        if action == "DescribeInstanceTypes" and named & self.reject_types:
            return 400, INVALID_TYPE.encode()
        return None

    def hangs(self, action: str) -> bool:
        """Whether to leave ``action`` unanswered."""
        return "*" in self.hang or action in self.hang

    def wait_hung(self) -> None:
        """Hold a hung request until ``hang_seconds`` pass or the proxy stops."""
        self._stopping.wait(self.hang_seconds)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is for assertions."""

    def do_GET(self) -> None:
        """Handle a query-protocol GET."""
        self._handle()

    def do_POST(self) -> None:
        """Handle a query-protocol POST (what boto3 sends for EC2 and STS)."""
        self._handle()

    def _handle(self) -> None:
        endpoint: HostileEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        params = parse_qs(body.decode("utf-8", "replace"))
        params.update(parse_qs(urlsplit(self.path).query))
        action = (params.get("Action") or [""])[0]
        endpoint.record(action)
        if endpoint.hangs(action):
            endpoint.wait_hung()
            self.close_connection = True
            return
        own = endpoint.answer(action, params)
        if own is not None:
            status, data = own
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
        else:
            status, headers, data = self._forward(endpoint.upstream, body)
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, upstream: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(upstream)
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


@pytest.fixture
def hostile_endpoint(moto_url: str) -> Iterator[HostileEndpoint]:
    """A :class:`HostileEndpoint` in front of the (empty) moto server, stopped after the test.

    It forwards everything until told otherwise: add actions to ``deny`` or ``hang`` (``"*"`` for
    all), type names to ``reject_types``, raw answers to ``answers``. ``clients(read_timeout=1,
    max_attempts=1)`` gives app clients that go through it; seed through ``Ec2Admin(moto_url)``.
    """
    endpoint = HostileEndpoint(moto_url).start()
    yield endpoint
    endpoint.stop()
