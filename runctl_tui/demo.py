"""The built-in demo backend: moto's EC2 server in-process on 127.0.0.1, seeded with a GPU fleet,
a stand-in of RunPod's API, a real training run on this machine, and a lab box reached over SSH
(asyncssh's server on 127.0.0.1, see :mod:`runctl_tui.demo_ssh`).

The app talks to each with exactly the code a real account or host uses; only the endpoints and
the (fake, generated) credentials differ. No server starts until the first poll needs it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl_tui.demo_ssh import DemoSshServer
from runctl_tui.models import Instance, ProcessDetails
from runctl_tui.providers.aws import AwsProvider, Ec2Clients
from runctl_tui.providers.base import (
    AnyProvider,
    CheckpointLocation,
    LogLocation,
    ProviderError,
)
from runctl_tui.providers.local import LocalProvider
from runctl_tui.providers.runpod import RunPodProvider
from runctl_tui.providers.ssh_hosts import SshHost, SshHostsProvider
from runctl_tui.remote.ssh import SshHub, SshTarget
from runctl_tui.threads import import_sdk

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

    from runctl_tui.costs.pricing import Ec2Prices
    from runctl_tui.runpod_standin import RunPodStandIn

DEMO_REGIONS = ("us-east-1", "eu-west-1")
DEMO_KEY = ("demo", "demo")
"""Fake credentials: the user's real ones are never sent to the demo server."""
DEMO_AMI = "ami-0a1b2c3d4e5f60718"
DEMO_PRICES = "the demo never asks the AWS Price List API"
"""Why the demo's EC2 rates come from the bundled table (spot ones as upper bounds)."""


@dataclass(frozen=True)
class DemoMachine:
    """One seeded instance."""

    name: str
    region: str
    zone: str
    instance_type: str
    age: timedelta
    spot: str | None = None
    """``one-time`` or ``persistent`` for spot instances."""
    stopped: bool = False
    tags: dict[str, str] = field(default_factory=dict)


DEMO_FLEET: tuple[DemoMachine, ...] = (
    DemoMachine(
        "llama3-70b-sft",
        "us-east-1",
        "us-east-1a",
        "p5.48xlarge",
        timedelta(days=2, hours=5),
        tags={"project": "llm-sft", "owner": "maria", "runctl:protect": "true"},
    ),
    DemoMachine(
        "dpo-sweep-lr3e-6",
        "us-east-1",
        "us-east-1b",
        "p4d.24xlarge",
        timedelta(hours=6, minutes=12),
        spot="persistent",
        tags={"project": "dpo-sweep", "owner": "kenji"},
    ),
    DemoMachine(
        "dpo-sweep-lr1e-5",
        "us-east-1",
        "us-east-1b",
        "p4d.24xlarge",
        timedelta(hours=6, minutes=11),
        spot="persistent",
        tags={"project": "dpo-sweep", "owner": "kenji"},
    ),
    DemoMachine(
        "sdxl-lora-finetune",
        "us-east-1",
        "us-east-1c",
        "g6e.12xlarge",
        timedelta(hours=19, minutes=3),
        tags={"project": "diffusion", "owner": "ana"},
    ),
    DemoMachine(
        "eval-harness",
        "us-east-1",
        "us-east-1a",
        "g5.xlarge",
        timedelta(minutes=47),
        tags={"project": "evals", "owner": "maria"},
    ),
    DemoMachine(
        "whisper-distill",
        "us-east-1",
        "us-east-1d",
        "g6e.xlarge",
        timedelta(hours=3, minutes=40),
        spot="one-time",
        tags={"project": "speech", "owner": "li"},
    ),
    DemoMachine(
        "notebook-ana",
        "us-east-1",
        "us-east-1a",
        "g5.2xlarge",
        timedelta(days=9),
        stopped=True,
        tags={"owner": "ana"},
    ),
    DemoMachine(
        "reward-model-7b",
        "eu-west-1",
        "eu-west-1a",
        "p4d.24xlarge",
        timedelta(days=1, hours=2),
        tags={"project": "rlhf", "owner": "tom"},
    ),
    DemoMachine(
        "tokenize-shards",
        "eu-west-1",
        "eu-west-1b",
        "c6i.xlarge",
        timedelta(hours=1, minutes=5),
        tags={"project": "data", "owner": "tom"},
    ),
    DemoMachine(
        "inference-smoke",
        "eu-west-1",
        "eu-west-1c",
        "g6.xlarge",
        timedelta(minutes=18),
        spot="one-time",
        tags={"project": "serving", "owner": "li"},
    ),
    DemoMachine(
        "vit-pretrain-2024",
        "eu-west-1",
        "eu-west-1a",
        "g5.12xlarge",
        timedelta(days=30),
        stopped=True,
        tags={"project": "vision", "owner": "kenji"},
    ),
)


def _launch(client: EC2Client, machine: DemoMachine) -> str:
    spec: dict[str, Any] = {
        "ImageId": DEMO_AMI,
        "InstanceType": machine.instance_type,
        "KeyName": "ml-team",
        "Placement": {"AvailabilityZone": machine.zone},
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/sda1",
                "Ebs": {"VolumeSize": 500, "VolumeType": "gp3", "DeleteOnTermination": True},
            }
        ],
    }
    if machine.spot:
        answer = client.request_spot_instances(
            InstanceCount=1,
            Type=machine.spot,  # type: ignore[arg-type]
            LaunchSpecification=spec,  # type: ignore[arg-type]
        )
        instance_id = answer["SpotInstanceRequests"][0]["InstanceId"]
    else:
        answer2 = client.run_instances(MinCount=1, MaxCount=1, **spec)
        instance_id = answer2["Instances"][0]["InstanceId"]
    tags = {"Name": machine.name, **machine.tags}
    client.create_tags(
        Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )
    if machine.stopped:
        client.stop_instances(InstanceIds=[instance_id])
    return instance_id


def seed(clients: Ec2Clients, fleet: tuple[DemoMachine, ...] = DEMO_FLEET) -> dict[str, str]:
    """Create ``fleet`` through the EC2 API; returns name to instance id."""
    ids: dict[str, str] = {}
    for region in {m.region for m in fleet}:
        clients.client(region).create_key_pair(KeyName="ml-team")
    for machine in fleet:
        ids[machine.name] = _launch(clients.client(machine.region), machine)
    return ids


def _backdate(ids: dict[str, str], fleet: tuple[DemoMachine, ...]) -> None:
    """Give the seeded instances varied launch times (moto launches everything 'now')."""
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
    from moto.ec2.models import ec2_backends

    now = datetime.now(UTC).replace(tzinfo=None)
    for machine in fleet:
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][machine.region]
        instance = backend.get_instance(ids[machine.name])
        instance.launch_time = now - machine.age


class DemoBackend:
    """Starts and seeds the in-process EC2 server on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self._url: str | None = None

    def endpoint(self) -> str:
        """The server's URL, starting and seeding it the first time."""
        with self._lock:
            if self._url is None:
                os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
                logging.getLogger("werkzeug").setLevel(logging.ERROR)
                try:
                    import_sdk("moto.server", "moto.core", "moto.ec2.models")
                    from moto.server import ThreadedMotoServer
                except ImportError:
                    raise ProviderError(
                        "aws",
                        "the demo backend needs moto, which is not installed",
                        hint="pip install 'runctl-tui[demo]' (or run `make demo` in a checkout)",
                    ) from None

                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                host, port = server.get_host_and_port()
                url = f"http://{host}:{port}"
                seeder = IsolatedClients(endpoint_url=url, access_key=DEMO_KEY)
                _backdate(seed(seeder), DEMO_FLEET)
                self._server, self._url = server, url
            return self._url

    def stop(self) -> None:
        """Shut the server down."""
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server, self._url = None, None


class IsolatedClients(Ec2Clients):
    """Clients with the fake demo key that ignore the user's AWS_PROFILE and ~/.aws files.

    A missing or broken profile in the user's environment must not stop the demo.
    """

    def _get_session(self) -> Any:
        if self._session is None:
            import_sdk("boto3.session", "botocore.session")
            import boto3.session
            import botocore.session

            core = botocore.session.Session(
                session_vars={
                    "profile": (None, None, None, None),
                    "config_file": (None, None, os.devnull, None),
                    "credentials_file": (None, None, os.devnull, None),
                }
            )
            key, secret = self._access_key or DEMO_KEY
            self._session = boto3.session.Session(
                aws_access_key_id=key, aws_secret_access_key=secret, botocore_session=core
            )
        return self._session

    def shown_profile(self) -> str | None:
        """None: these clients never use a profile, whatever AWS_PROFILE says."""
        return None


class DemoClients(IsolatedClients):
    """EC2 clients that point at the demo server, starting it on first use."""

    def __init__(self, backend: DemoBackend) -> None:
        super().__init__(access_key=DEMO_KEY)
        self._backend = backend

    def default_region(self) -> str | None:
        """The demo's first region."""
        return DEMO_REGIONS[0]

    @property
    def endpoint_url(self) -> str | None:
        """The demo server's URL, starting it on first use: EC2 and STS clients both use it."""
        return self._backend.endpoint()


DEMO_RUNPOD_KEY = "demo-runpod-key"
"""The stand-in's key: the user's own RunPod key is never sent to it."""


SIMULATED = (
    "a simulated machine of the demo: there is nothing to read over SSH "
    "(the lab box's and this machine's runs have logs and checkpoints)"
)
"""Why the demo's EC2 instances and pods have no logs or checkpoints to open."""


class DemoAws(AwsProvider):
    """EC2 in the demo: its instances are simulated, so nothing is read from them over SSH
    (their addresses are made up; the demo reaches no host but its own)."""

    @property
    def prices(self) -> Ec2Prices:
        """The bundled table only: the demo never asks the Price List API (made on the first
        poll, off the start-up path)."""
        if self._prices is None:
            from runctl_tui.costs.pricing import Ec2Prices

            self._prices = Ec2Prices.bundled_only(DEMO_PRICES)
        return self._prices

    async def log_locations(self, instance: Instance) -> list[LogLocation]:
        """None: say why in one line."""
        raise ProviderError(self.name, SIMULATED)

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """None: say why in one line."""
        raise ProviderError(self.name, SIMULATED)

    def ssh_target(self, instance: Instance) -> SshTarget:
        """None: its address is made up; say why in one line."""
        raise ProviderError(self.name, SIMULATED)


class DemoRunPod(RunPodProvider):
    """RunPod pods served by the in-process stand-in of RunPod's API, started on first poll."""

    def __init__(self) -> None:
        super().__init__(DEMO_RUNPOD_KEY, key_source="the demo")
        self._stand_in: RunPodStandIn | None = None
        self._start_lock = threading.Lock()

    def _serving(self) -> None:
        with self._start_lock:
            if self._stand_in is None:
                from runctl_tui.runpod_standin import RunPodStandIn

                self._stand_in = RunPodStandIn(api_key=DEMO_RUNPOD_KEY, lifetime=None).start()
                # The SDK reads the base URL on every call; the demo process talks to no other.
                os.environ["RUNPOD_API_BASE_URL"] = self._stand_in.url

    def list_instances(self) -> list[Instance]:
        """The stand-in's pods."""
        self._serving()
        return super().list_instances()

    async def log_locations(self, instance: Instance) -> list[LogLocation]:
        """None: the pods are simulated; say why in one line."""
        raise ProviderError(self.name, SIMULATED)

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """None: the pods are simulated; say why in one line."""
        raise ProviderError(self.name, SIMULATED)

    def ssh_target(self, instance: Instance) -> SshTarget:
        """None: the pods are simulated; say why in one line."""
        raise ProviderError(self.name, SIMULATED)


class DemoRun:
    """A real training process on this machine, started on first poll, stopped at exit.

    It also ends by itself when the process that started it is gone (killed, say), so that no
    demo run outlives its dashboard.
    """

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.directory: Path | None = None
        """The run's working directory, made when it starts: its log, and its checkpoints in
        ``checkpoints/``."""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    @property
    def pid(self) -> int | None:
        """The run's pid once started."""
        return None if self._process is None else self._process.pid

    def ensure_started(self) -> None:
        """Start the run unless it is running (or the user already stopped it)."""
        with self._lock:
            if self._process is not None:
                return
            script = Path(__file__).with_name("train_demo.py")
            self.directory = Path(tempfile.mkdtemp(prefix="runctl-demo-run-"))
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(self.directory),
                    "--seed",
                    str(self.seed),
                    "--parent",
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its working directory holds its checkpoints/, where `c` on its row looks first.
                cwd=self.directory,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Kill the run's process group if it is still there, and remove its directory."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=2)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def owns(self, instance: Instance) -> bool:
        """Whether ``instance`` is a machine's row or this run's, not another demo's run."""
        details = instance.details
        return not isinstance(details, ProcessDetails) or details.pid == self.pid


class DemoLocal(LocalProvider):
    """This machine with the demo's own training run (and no other process of the user's)."""

    def __init__(self, run: DemoRun) -> None:
        super().__init__(patterns=("train_demo.py",))
        self.run = run

    def list_instances(self) -> list[Instance]:
        """The host and the demo run."""
        self.run.ensure_started()
        return [i for i in super().list_instances() if self.run.owns(i)]


class DemoLabBox(SshHostsProvider):
    """The lab box over SSH, with a run of its own (the demo's other run on this machine)."""

    def __init__(self, hosts: list[SshHost], hub: SshHub, run: DemoRun) -> None:
        super().__init__(hosts, hub, patterns=("train_demo.py",))
        self.run = run

    async def list_instances(self) -> list[Instance]:
        """The host and its run."""
        self.run.ensure_started()
        return [i for i in await super().list_instances() if self.run.owns(i)]


DEMO_LAB_BOX = "lab-box"
"""The label of the demo's SSH host, as a ``[[ssh.hosts]]`` entry would name it."""
DEMO_LAB_BOX_HOURLY_USD = Decimal("0.00")
"""A box the lab owns: no hourly bill. A real host's entry may set an amortised figure."""


def demo_lab_box(server: DemoSshServer) -> DemoLabBox:
    """The lab box: ``server`` as one ``[[ssh.hosts]]`` host, over a hub of its own that trusts
    only the server's key and logs in with the demo's generated key (never the user's)."""
    host = SshHost(server.target, DEMO_LAB_BOX, DEMO_LAB_BOX_HOURLY_USD)
    return DemoLabBox([host], server.hub(), DemoRun(seed=11))


def demo_providers(
    backend: DemoBackend,
    protect_tag: str = "runctl:protect",
    *,
    ssh_server: DemoSshServer | None = None,
) -> list[AnyProvider]:
    """The providers the demo shows: EC2 in two regions, RunPod pods, this machine's run, and
    the lab box over SSH (``ssh_server``, else one made here and shut down at exit)."""
    return [
        DemoAws(DemoClients(backend), DEMO_REGIONS, protect_tag=protect_tag),
        DemoRunPod(),
        DemoLocal(DemoRun()),
        demo_lab_box(ssh_server or DemoSshServer()),
    ]
