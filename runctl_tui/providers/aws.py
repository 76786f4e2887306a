"""AWS EC2 through boto3, every configured region polled concurrently.

boto3 is imported by :class:`Ec2Clients` on first use, which happens in a polling
worker thread: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl_tui.models import (
    Action,
    Ec2Details,
    GpuSpec,
    Instance,
    InstanceState,
    Lifecycle,
    Rate,
    StorageItem,
    Volume,
)
from runctl_tui.providers.base import (
    NO_LOG_SEARCH,
    CheckpointLocation,
    LogLocation,
    LogSearch,
    NotConfiguredError,
    NotFoundError,
    ProviderError,
    SpotRequest,
)
from runctl_tui.text import clean, one_line
from runctl_tui.threads import import_sdk, map_all

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

    from runctl_tui.config import AwsSettings, Settings
    from runctl_tui.costs.pricing import Ec2Prices
    from runctl_tui.remote.ssh import SshHub, SshTarget

log = logging.getLogger(__name__)

ALL_REGIONS = "all"
NOT_CONFIGURED = "not configured: no AWS credentials found"
SET_UP_HINT = (
    "set AWS_PROFILE or run `aws configure` (or `aws sso login`); "
    "set enabled = false under [aws] to hide it"
)
TYPE_BATCH = 100
"""describe_instance_types accepts at most 100 names per call."""
DENIED_RETRY_SECONDS = 300.0
"""A missing permission is asked about again after this long, not on every poll."""
UNKNOWN_TYPE_RETRY_SECONDS = 3600.0
"""A type EC2 said it does not know is asked about again after this long."""
FAILED_RETRY_SECONDS = 30.0
"""After a network or throttling failure: long enough that the other regions of the same poll
do not each wait for the same failure again."""
ACCOUNT_RETRY_SECONDS = 300.0
"""After get_caller_identity failed; an account learned once is kept."""

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 3

DENIED_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
BAD_TYPE_CODES = frozenset({"InvalidInstanceType", "InvalidParameterValue"})

TYPES_DENIED = "no permission to describe instance types (ec2:DescribeInstanceTypes)"
TYPES_DENIED_WARNING = (
    "not permitted: ec2:DescribeInstanceTypes; GPU and instance-store facts unknown"
)
SPOT_DENIED_WARNING = "not permitted: ec2:DescribeSpotInstanceRequests; spot request types unknown"
VOLUMES_DENIED_WARNING = "not permitted: ec2:DescribeVolumes; EBS volumes not counted"
PRICING_ENDPOINT_ENV = "AWS_ENDPOINT_URL_PRICING"
STAND_IN_PRICES = (
    "EC2 is reached through an explicit endpoint with no AWS Price List API beside it "
    f"({PRICING_ENDPOINT_ENV} would name one)"
)


class Ec2Clients:
    """Thread-safe, cached EC2 (and STS) clients per region for one credential source."""

    def __init__(
        self,
        profile: str | None = None,
        *,
        endpoint_url: str | None = None,
        access_key: tuple[str, str] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        """``max_attempts`` counts every try of a call, the first included."""
        self.profile = profile
        self._endpoint_url = endpoint_url
        self._access_key = access_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._session: Any = None
        self._config: Any = None
        self._clients: dict[tuple[str, str], Any] = {}

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint given explicitly, if any (else botocore's own resolution applies)."""
        return self._endpoint_url

    def _get_session(self) -> Any:
        if self._session is None:
            import_sdk(
                "boto3.session", "botocore.config", "botocore.exceptions", "botocore.parsers"
            )
            import boto3.session

            kwargs: dict[str, Any] = {"profile_name": self.profile}
            if self._access_key is not None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = self._access_key
            self._session = boto3.session.Session(**kwargs)
        return self._session

    def _get_config(self) -> Any:
        if self._config is None:
            from botocore.config import Config

            # botocore's defaults (60 s each, times every attempt) let one hung endpoint hold
            # a poll for minutes. Its own ``max_attempts`` counts retries only; the total, as
            # AWS_MAX_ATTEMPTS and ~/.aws/config count it, is what bounds a hung call.
            self._config = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries={"mode": "adaptive", "total_max_attempts": self.max_attempts},
                max_pool_connections=20,
                user_agent_extra="runctl-tui",
            )
        return self._config

    def has_credentials(self) -> bool:
        """Whether the credential chain finds any credentials at all (may ask IMDS)."""
        with self._lock:
            return self._get_session().get_credentials() is not None

    def default_region(self) -> str | None:
        """The region the profile or environment names, if any."""
        with self._lock:
            region: str | None = self._get_session().region_name
            return region

    @classmethod
    def from_settings(cls, aws: AwsSettings | None) -> Ec2Clients:
        """Clients as the ``[aws]`` table sets them up (profile, timeouts, attempts); the
        standard ones without it."""
        if aws is None:
            return cls()
        return cls(
            aws.profile,
            connect_timeout=aws.connect_timeout,
            read_timeout=aws.read_timeout,
            max_attempts=aws.max_attempts,
        )

    def s3(self, region: str) -> Any:
        """An S3 client like the EC2 ones: the same session, endpoint, timeouts and retries."""
        return self._client("s3", region)

    def _client(self, service: str, region: str, *, own_endpoint: bool = True) -> Any:
        """``own_endpoint``: use the explicit endpoint (else botocore resolves one, honouring
        ``AWS_ENDPOINT_URL_<SERVICE>``)."""
        endpoint_url = self.endpoint_url if own_endpoint else None
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = self._get_session().client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint_url,
                    config=self._get_config(),
                )
                self._clients[service, region] = client
            return client

    def client(self, region: str) -> EC2Client:
        """The EC2 client for ``region``, created once."""
        client: EC2Client = self._client("ec2", region)
        return client

    def sts(self, region: str) -> Any:
        """The STS client for ``region``, created once, with the same timeouts and retries."""
        return self._client("sts", region)

    def pricing(self) -> Any | None:
        """The Price List API client (us-east-1), with the same timeouts and retries.

        ``None`` when EC2 is reached through an explicit endpoint, or ``AWS_ENDPOINT_URL`` sends
        every service to one (a stand-in such as moto), and ``AWS_ENDPOINT_URL_PRICING`` names no
        Price List endpoint: such a stand-in has no price list, and the real one must not be
        asked on its behalf."""
        stand_in = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if not os.environ.get(PRICING_ENDPOINT_ENV) and stand_in:
            return None
        from runctl_tui.costs.pricing import PRICING_REGION

        return self._client("pricing", PRICING_REGION, own_endpoint=False)

    def shown_profile(self) -> str | None:
        """The named profile in use: the one given, else AWS_PROFILE."""
        return self.profile or os.environ.get("AWS_PROFILE") or None

    def shown_endpoint(self) -> str | None:
        """The endpoint to name to the user: one set explicitly or through the environment."""
        if self.endpoint_url:
            return self.endpoint_url
        ec2 = os.environ.get("AWS_ENDPOINT_URL_EC2") or os.environ.get("AWS_ENDPOINT_URL")
        sts = os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL")
        if ec2 and sts and ec2 != sts:
            return f"{ec2} (sts {sts})"
        if ec2:
            return ec2
        return f"sts {sts}" if sts else None


def _line(text: object, limit: int = 240) -> str:
    """Untrusted text as one visible line: whitespace runs folded, controls escaped, clipped."""
    return one_line(" ".join(str(text).split()), limit)


def _error_field(exc: BaseException, name: str) -> str:
    """``Code`` or ``Message`` of an AWS error answer; empty for any other failure."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return ""
    return str(response.get("Error", {}).get(name, "") or "")


def _endpoint_of(exc: BaseException) -> str:
    url = getattr(exc, "kwargs", {}).get("endpoint_url")
    return _line(url, 120) if url else "?"


def explain(exc: BaseException, profile: str | None) -> tuple[str, str | None]:
    """Turn a boto3/botocore failure into one line of cause and one line of fix."""
    import botocore.exceptions as bex
    import botocore.parsers

    if isinstance(exc, ProviderError):
        return exc.message, exc.hint
    login = f"aws sso login --profile {_line(profile, 60)}" if profile else "aws sso login"
    if isinstance(exc, bex.ProfileNotFound):
        missing = getattr(exc, "kwargs", {}).get("profile", profile)
        return (
            f"AWS profile {_line(missing, 60)!r} is not in ~/.aws/config",
            "check AWS_PROFILE and [aws] profile, or create it with `aws configure sso`",
        )
    if isinstance(exc, bex.NoCredentialsError):
        return (
            "no AWS credentials found",
            "set AWS_PROFILE, run `aws configure`, or `aws sso login`; try `--demo` meanwhile",
        )
    if isinstance(
        exc, bex.UnauthorizedSSOTokenError | bex.SSOTokenLoadError | bex.TokenRetrievalError
    ):
        return "AWS SSO session expired or missing", f"run `{login}`"
    if isinstance(exc, bex.NoRegionError):
        return (
            "no AWS region configured",
            'set regions = ["us-east-1"] under [aws] in the config, or AWS_DEFAULT_REGION',
        )
    if isinstance(exc, bex.ConnectTimeoutError):
        return (
            f"the AWS endpoint did not answer (connect timeout): {_endpoint_of(exc)}",
            "check the network, VPN or proxy, and AWS_ENDPOINT_URL; [aws] connect_timeout "
            "sets the wait",
        )
    if isinstance(exc, bex.ReadTimeoutError):
        return (
            f"the AWS endpoint did not answer in time (read timeout): {_endpoint_of(exc)}",
            "check the network, VPN or proxy, and AWS_ENDPOINT_URL; raise [aws] read_timeout "
            "if the endpoint is only slow",
        )
    if isinstance(exc, bex.ConnectionClosedError):
        return (
            f"the AWS endpoint closed the connection without answering: {_endpoint_of(exc)}",
            "check the network, VPN or proxy, and AWS_ENDPOINT_URL; retried automatically",
        )
    if isinstance(exc, bex.EndpointConnectionError):
        return (
            f"cannot reach the EC2 endpoint: {_line(exc, 160)}",
            "check the network or AWS_ENDPOINT_URL; retried automatically",
        )
    if isinstance(exc, botocore.parsers.ResponseParserError):
        # The rest of the text quotes the whole answer: the endpoint's bytes, not ours.
        first = str(exc).partition("\n")[0].removesuffix("Further retries may succeed:")
        return (
            f"unreadable answer from the AWS endpoint: {_line(first, 120)}",
            "check AWS_ENDPOINT_URL and any proxy in between; retried automatically",
        )
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code = _line(error.get("Code", ""), 60)
        # Authorization failures carry a long encoded blob after the first sentence.
        raw = re.sub(
            r"Encoded authorization failure message:.*",
            "",
            " ".join(str(error.get("Message", "") or exc).split()),
        )
        message = _line(raw.strip(), 160)
        if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
            return f"AWS credentials expired ({code})", f"refresh them: `{login}`"
        if code in {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException"}:
            return (
                f"AWS rejected the credentials ({code})",
                "the key may be revoked: check `aws sts get-caller-identity`",
            )
        if code in DENIED_CODES:
            return f"not permitted: {message}", "grant the IAM permission named above"
        if code in {"Throttling", "RequestLimitExceeded", "ThrottlingException"}:
            return (
                f"AWS is throttling requests ({code})",
                "already retried with backoff; raise poll_seconds in the config",
            )
        return f"{code}: {message}" if code else message, None
    if isinstance(exc, bex.BotoCoreError):
        return _line(exc), None
    return f"{type(exc).__name__}: {_line(exc)}", None


def _state(raw: Mapping[str, Any]) -> InstanceState:
    try:
        return InstanceState(raw.get("State", {}).get("Name", "unknown"))
    except ValueError:
        return InstanceState.UNKNOWN


def _quoted_type(name: str) -> str:
    return f"'{one_line(name, 60)}'"


def unknown_type_reason(name: str) -> str:
    """Why an instance of type ``name`` has no GPU or instance-store facts: EC2 did not know it."""
    return f"instance type {_quoted_type(name)} unknown to DescribeInstanceTypes"


def instance_from_ec2(
    raw: Mapping[str, Any],
    *,
    provider: str,
    region: str,
    protect_tag: str,
    type_info: Mapping[str, tuple[GpuSpec | None, int]],
    spot_types: Mapping[str, str],
    type_problems: Mapping[str, str] | None = None,
    spot_request_ids: Mapping[str, str] | None = None,
    rate: Rate | None = None,
) -> Instance:
    """Build an :class:`Instance` from one ``describe_instances`` entry.

    A type missing from ``type_info`` leaves its GPU and instance-store facts unknown, with the
    reason from ``type_problems`` (or a generic one) in ``type_facts_missing``.
    """
    tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", [])}
    launched = raw.get("LaunchTime")
    if isinstance(launched, datetime):
        launched = (
            launched.replace(tzinfo=UTC) if launched.tzinfo is None else launched.astimezone(UTC)
        )
    else:
        launched = None
    lifecycle = Lifecycle.SPOT if raw.get("InstanceLifecycle") == "spot" else Lifecycle.ON_DEMAND
    instance_type = raw.get("InstanceType", "")
    facts = type_info.get(instance_type)
    missing: str | None = None
    gpus: GpuSpec | None = None
    store_gb: int | None = None
    if facts is not None:
        gpus, store_gb = facts
    elif not instance_type:
        missing = "instance type not reported by EC2"
    else:
        missing = (type_problems or {}).get(instance_type) or (
            f"instance type {_quoted_type(instance_type)} not described yet"
        )
    volumes = tuple(
        Volume(
            id=m["Ebs"].get("VolumeId", "?"),
            device=m.get("DeviceName", "?"),
            delete_on_termination=bool(m["Ebs"].get("DeleteOnTermination", False)),
        )
        for m in raw.get("BlockDeviceMappings", [])
        if "Ebs" in m
    )
    instance_id = raw["InstanceId"]
    spot = lifecycle is Lifecycle.SPOT
    request_id = raw.get("SpotInstanceRequestId") or (spot_request_ids or {}).get(instance_id)
    protected = tags.get(protect_tag, "").strip().lower() in {"true", "yes", "1"}
    details = Ec2Details(
        instance_type=instance_type or "?",
        zone=raw.get("Placement", {}).get("AvailabilityZone") or None,
        lifecycle=lifecycle,
        spot_request_type=(spot_types.get(instance_id) or None) if spot else None,
        spot_request_id=(request_id or None) if spot else None,
        instance_store_gb=store_gb,
        type_facts_missing=missing,
        public_ip=raw.get("PublicIpAddress") or None,
        private_ip=raw.get("PrivateIpAddress") or None,
        image_id=raw.get("ImageId") or None,
        key_name=raw.get("KeyName") or None,
        volumes=volumes,
    )
    return Instance(
        provider=provider,
        id=instance_id,
        name=tags.get("Name", ""),
        location=region,
        state=_state(raw),
        gpus=gpus,
        launched_at=launched,
        rate=rate,
        protected=protected,
        protected_by=f"tag {protect_tag}=true" if protected else "",
        tags=tags,
        details=details,
    )


def type_info_from_ec2(raw: Mapping[str, Any]) -> tuple[GpuSpec | None, int]:
    """GPUs and instance-store size from one ``describe_instance_types`` entry."""
    gpus = None
    gpu_list = raw.get("GpuInfo", {}).get("Gpus") or []
    if gpu_list:
        first = gpu_list[0]
        gpus = GpuSpec(
            count=sum(int(g.get("Count", 0)) for g in gpu_list),
            model=str(first.get("Name", "GPU")),
            memory_mib=first.get("MemoryInfo", {}).get("SizeInMiB"),
        )
    else:
        accel = raw.get("NeuronInfo", {}).get("NeuronDevices") or []
        if accel:
            gpus = GpuSpec(
                count=sum(int(a.get("Count", 0)) for a in accel),
                model=str(accel[0].get("Name", "Neuron")),
            )
    store = int(raw.get("InstanceStorageInfo", {}).get("TotalSizeInGB", 0) or 0)
    return gpus, store


def named_types(message: str, batch: Iterable[str]) -> set[str]:
    """The names of ``batch`` that an error message lists, as in ``... do not exist: [a, b]``."""
    named = {
        name.strip().strip("'\"")
        for group in re.findall(r"\[([^\]]*)\]", message)
        for name in group.split(",")
    }
    return named & set(batch)


@dataclass(frozen=True)
class _TypeProblem:
    reason: str
    """For ``Instance.type_facts_missing``."""
    warning: str
    """For ``poll_warnings``."""
    retry_at: float
    """``time.monotonic()`` after which the type is described again."""


def _problem(reason: str, warning: str, retry_seconds: float) -> _TypeProblem:
    return _TypeProblem(reason, warning, time.monotonic() + retry_seconds)


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def storage_item_from_ec2(
    raw: Mapping[str, Any],
    *,
    provider: str,
    region: str,
    states: Mapping[str, InstanceState],
) -> StorageItem | None:
    """A :class:`StorageItem` from one ``describe_volumes`` entry, priced from the bundled EBS
    table; ``None`` for a volume already deleted. ``states``: instance id to its state."""
    if raw.get("State") in {"deleting", "deleted"} or not raw.get("VolumeId"):
        return None
    tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) if "Key" in t}
    attachments = [
        a
        for a in raw.get("Attachments", [])
        if a.get("InstanceId") and a.get("State", "attached") in {"attached", "attaching"}
    ]
    attached_to = str(attachments[0]["InstanceId"]) if attachments else None
    volume_type = str(raw.get("VolumeType", "") or "")
    size = _int_or_none(raw.get("Size")) or 0
    iops = _int_or_none(raw.get("Iops"))
    throughput = _int_or_none(raw.get("Throughput"))
    from runctl_tui.costs.ebs import volume_cost

    cost = volume_cost(volume_type, size, iops=iops, throughput_mibps=throughput, region=region)
    return StorageItem(
        provider=provider,
        id=str(raw["VolumeId"]),
        name=tags.get("Name", ""),
        location=region,
        kind="ebs",
        volume_type=volume_type,
        size_gb=size,
        iops=iops,
        throughput_mibps=throughput,
        attached_to=attached_to,
        attached_state=states.get(attached_to) if attached_to else None,
        created_at=_utc(raw.get("CreateTime")),
        rate=None if cost is None else cost.rate(),
        monthly_usd=None if cost is None else cost.monthly_usd,
        tags=tags,
    )


STOPPABLE = frozenset({InstanceState.RUNNING, InstanceState.PENDING})
"""States a stop request is accepted in."""
GONE = frozenset({InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN})
"""States in which terminating again would do nothing."""
LIVE_STATES = STOPPABLE
"""States in which the instance store still holds data: stopping or terminating wipes it."""
EC2_ACTIONS = frozenset({Action.STOP, Action.START, Action.TERMINATE})
"""What every EC2 instance takes, state permitting."""


def ec2_details(instance: Instance) -> Ec2Details | None:
    """The EC2 part of ``instance``; ``None`` for any other kind of item."""
    details = instance.details
    return details if isinstance(details, Ec2Details) else None


def store_loss(instance: Instance, details: Ec2Details, verb: str) -> str | None:
    """What happens to the instance store, when the instance has data in it now."""
    if instance.state not in LIVE_STATES:
        # A stopped instance's store was already wiped when it stopped.
        return None
    if details.instance_store_gb is None:
        why = details.type_facts_missing or "the instance type could not be described"
        return f"instance-store data: unknown ({one_line(why, 120)})"
    if details.instance_store_gb:
        return f"instance-store data ({details.instance_store_gb} GB local NVMe) {verb}"
    return None


def volume_list(ids: Sequence[str]) -> str:
    """Volume ids, each made safe, the whole cut to one line."""
    return one_line(", ".join(one_line(i, 40) for i in ids), 160)


def ec2_losses(action: Action, instance: Instance) -> list[str]:
    """What stopping or terminating an EC2 instance loses or keeps billing, as shown.

    A persistent spot request that would relaunch it is looked up live by the dialog."""
    details = ec2_details(instance)
    if details is None:
        return []
    lost: list[str] = []
    if action is Action.STOP:
        store = store_loss(instance, details, "is wiped")
        if store:
            lost.append(store)
        kept = "EBS volumes are kept (and still billed)"
        if details.public_ip and instance.state in LIVE_STATES:
            kept += "; the public IP is released"
        lost.append(kept)
        if details.lifecycle is Lifecycle.SPOT and not details.spot_request_type:
            lost.append("spot: AWS refuses to stop it unless its request is persistent")
    elif action is Action.TERMINATE:
        deleted = [v.id for v in details.volumes if v.delete_on_termination]
        kept_ids = [v.id for v in details.volumes if not v.delete_on_termination]
        if deleted:
            lost.append(f"EBS volumes deleted: {volume_list(deleted)}")
        if kept_ids:
            lost.append(f"EBS volumes kept (still billed): {volume_list(kept_ids)}")
        store = store_loss(instance, details, "is gone")
        if store:
            lost.append(store)
        lost.append("this cannot be undone")
    return lost


class AwsProvider:
    """EC2 instances across one account's regions."""

    def __init__(
        self,
        clients: Ec2Clients,
        regions: Sequence[str] = (),
        *,
        name: str = "aws",
        protect_tag: str = "runctl:protect",
        ssh_user: str = "ubuntu",
        hub: SshHub | None = None,
        log_search: LogSearch | None = None,
        checkpoint_dirs: Sequence[str] = (),
        prices: Ec2Prices | None = None,
    ) -> None:
        """``ssh_user``, ``hub`` and ``log_search``: how an instance's logs are read over SSH
        (``hub``: made on first use when not given; ``log_search``: nowhere when not given).
        ``prices``: where rates come from; the Price List API through ``clients`` when not
        given."""
        from runctl_tui.providers.ssh_hosts import CloudLogs

        self._name = name
        self.ssh_user = ssh_user
        self.logs = CloudLogs(name, hub, log_search or NO_LOG_SEARCH, checkpoint_dirs)
        self._clients = clients
        self._regions = list(regions)
        self.protect_tag = protect_tag
        self._lock = threading.Lock()
        self._types_lock = threading.Lock()
        self._account_lock = threading.Lock()
        self._resolved: list[str] | None = None
        self._type_info: dict[str, tuple[GpuSpec | None, int]] = {}
        self._type_problems: dict[str, _TypeProblem] = {}
        self._types_blocked: _TypeProblem | None = None
        """A denial or outage that makes describing any type pointless until it expires."""
        self._spot_types: dict[str, str] = {}
        self._spot_request_ids: dict[str, str] = {}
        self._warnings: tuple[str, ...] = ()
        self._account: str | None = None
        self._account_retry_at = 0.0
        self._prices = prices
        self._storage: dict[str, tuple[StorageItem, ...]] = {}

    @property
    def prices(self) -> Ec2Prices:
        """The rate source of the instances: made on the first poll, off the start-up path."""
        if self._prices is None:
            from runctl_tui.costs.pricing import Ec2Prices

            self._prices = Ec2Prices(self._clients.pricing, offline_note=STAND_IN_PRICES)
        return self._prices

    @property
    def name(self) -> str:
        """Name shown in the UI."""
        return self._name

    def ssh_target(self, instance: Instance) -> SshTarget:
        """Where an instance's shell is: ``{ssh_user}@{public or private ip}``."""
        from runctl_tui.remote.ssh import parse_target

        details = ec2_details(instance)
        address = details.address if details is not None else None
        if address is None:
            raise ProviderError(self.name, f"{instance.id} has no IP address to reach over SSH")
        try:
            return parse_target(f"{self.ssh_user}@{address}")
        except ValueError as exc:
            raise ProviderError(self.name, f"{instance.id}: {exc}") from None

    def hub_for(self, target: SshTarget) -> SshHub:
        """The hub that reaches instances (with ``[aws] ssh_key``, when set)."""
        return self.logs.hub

    async def log_locations(self, instance: Instance) -> list[LogLocation]:
        """The newest matches of the log globs on a running instance, then its recent
        ``*.log`` files, over SSH in one round trip."""
        return await self.logs.locations(instance, self.ssh_target)

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """The configured checkpoint directories that exist on a running instance,
        newest-modified first, over SSH in one round trip."""
        return await self.logs.checkpoint_locations(instance, self.ssh_target)

    async def close(self) -> None:
        """Close the SSH connections logs were read through."""
        await self.logs.close()

    def _error(self, exc: BaseException, **kwargs: Any) -> ProviderError:
        message, hint = explain(exc, self._clients.profile)
        return ProviderError(self.name, message, hint=hint, **kwargs)

    def regions(self) -> list[str]:
        """The regions polled, resolving ``all`` and the default once."""
        if self._resolved is not None:
            return self._resolved
        try:
            if ALL_REGIONS in self._regions:
                seed = self._clients.default_region() or "us-east-1"
                answer = self._clients.client(seed).describe_regions()
                resolved = sorted(
                    r["RegionName"]
                    for r in answer["Regions"]
                    if r.get("OptInStatus") != "not-opted-in"
                )
            elif self._regions:
                resolved = list(dict.fromkeys(self._regions))
            else:
                default = self._clients.default_region()
                if not default:
                    if self._unset():
                        raise NotConfiguredError(self.name, NOT_CONFIGURED, hint=SET_UP_HINT)
                    import botocore.exceptions

                    raise botocore.exceptions.NoRegionError()
                resolved = [default]
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        self._resolved = resolved
        return resolved

    def _unset(self) -> bool:
        """No profile was asked for and the credential chain finds nothing: AWS is not set up."""
        return not self._clients.profile and not self._clients.has_credentials()

    def _nothing_but_missing_credentials(self, failed: Mapping[str, BaseException]) -> bool:
        import botocore.exceptions

        missing = all(
            isinstance(e, botocore.exceptions.NoCredentialsError) for e in failed.values()
        )
        return missing and not self._clients.profile

    def poll_warnings(self) -> tuple[str, ...]:
        """Problems the last :meth:`list_instances` met without failing, one line each."""
        return self._warnings

    def list_instances(self) -> list[Instance]:
        """Describe every instance in every region, regions in parallel on daemon threads."""
        regions = self.regions()
        futures = map_all(self._list_region, regions, name=f"{self.name}-poll")
        found: dict[str, list[Instance]] = {}
        failed: dict[str, BaseException] = {}
        warnings: dict[str, None] = {}
        for region, future in zip(regions, futures, strict=True):
            try:
                found[region], region_warnings = future.result()
            except Exception as exc:
                message, _ = explain(exc, self._clients.profile)
                log.warning("%s: listing %s failed: %s", self.name, region, message)
                failed[region] = exc
                continue
            warnings.update(dict.fromkeys(region_warnings))
        self._warnings = tuple(warnings)
        with self._lock:
            self._storage = {r: v for r, v in self._storage.items() if r in regions}
        instances = [i for region in regions for i in found.get(region, [])]
        if failed and len(failed) == len(regions) and self._nothing_but_missing_credentials(failed):
            raise NotConfiguredError(self.name, NOT_CONFIGURED, hint=SET_UP_HINT)
        if failed:
            explained = {r: explain(e, self._clients.profile) for r, e in failed.items()}
            messages = {m for m, _ in explained.values()}
            first_region, (message, hint) = next(iter(explained.items()))
            if len(messages) > 1 or len(regions) > 1 and len(failed) < len(regions):
                others = len(failed) - 1
                message = f"{first_region}: {message}" + (
                    f" (+{others} more region{'s' * (others > 1)})" if others else ""
                )
            raise ProviderError(
                self.name,
                message,
                hint=hint,
                partial=instances if found else None,
                failed_regions=list(failed),
            )
        return instances

    def _list_region(self, region: str) -> tuple[list[Instance], list[str]]:
        client = self._clients.client(region)
        paginator = client.get_paginator("describe_instances")
        raw = [
            entry
            for page in paginator.paginate(PaginationConfig={"PageSize": 1000})
            for reservation in page.get("Reservations", [])
            for entry in reservation.get("Instances", [])
        ]
        types = {r.get("InstanceType", "") for r in raw}
        self._learn_types(client, types)
        warnings = self._learn_spot_types(
            client, [r["InstanceId"] for r in raw if r.get("InstanceLifecycle") == "spot"]
        )
        warnings.extend(self._type_warnings(types))
        rates, price_warnings = self._rates(client, region, raw)
        warnings.extend(price_warnings)
        instances = [self._build(entry, region, rates.get(entry["InstanceId"])) for entry in raw]
        volumes, volume_warnings = self._volumes(client, region, instances)
        warnings.extend(volume_warnings)
        if volumes is not None:
            with self._lock:
                self._storage[region] = volumes
        return instances, warnings

    def _rates(
        self, client: EC2Client, region: str, raw: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, Rate], list[str]]:
        """Instance id to its hourly rate (on-demand or spot), and what could not be priced."""
        from runctl_tui.costs.pricing import PriceReport, spot_key, unpriced_warning

        on_demand = self.prices.on_demand(region, {r.get("InstanceType", "") for r in raw})
        spot_pairs = {
            r["InstanceId"]: (
                r.get("InstanceType", ""),
                r.get("Placement", {}).get("AvailabilityZone") or None,
            )
            for r in raw
            if r.get("InstanceLifecycle") == "spot"
        }
        spot = (
            self.prices.spot(client, region, spot_pairs.values(), on_demand.rates)
            if spot_pairs
            else PriceReport()
        )
        rates: dict[str, Rate] = {}
        for entry in raw:
            instance_id = entry["InstanceId"]
            pair = spot_pairs.get(instance_id)
            rate = (
                spot.rates.get(spot_key(*pair))
                if pair is not None
                else on_demand.rates.get(entry.get("InstanceType", ""))
            )
            if rate is not None:
                rates[instance_id] = rate
        # A type EC2 itself does not know already has its warning; its price is unknown too.
        unknown = {
            unpriced_warning(region, name)
            for name in on_demand.unpriced
            if (problem := self._type_problems.get(name)) is not None
            and problem.reason == unknown_type_reason(name)
        }
        warnings = [w for w in on_demand.warnings if w not in unknown]
        return rates, [*warnings, *spot.warnings]

    def storage(self) -> tuple[StorageItem, ...]:
        """The EBS volumes the last :meth:`list_instances` found, region by region (a region
        whose volumes could not be listed keeps the ones seen before)."""
        with self._lock:
            by_region = dict(self._storage)
        order = self._resolved or list(by_region)
        return tuple(v for region in order for v in by_region.get(region, ()))

    def _volumes(
        self, client: EC2Client, region: str, instances: Sequence[Instance]
    ) -> tuple[tuple[StorageItem, ...] | None, list[str]]:
        """Every EBS volume of ``region`` with its cost; ``None`` and a warning on failure."""
        try:
            pages = client.get_paginator("describe_volumes").paginate(
                PaginationConfig={"PageSize": 500}
            )
            raw = [v for page in pages for v in page.get("Volumes", [])]
        except Exception as exc:
            message, _ = explain(exc, self._clients.profile)
            log.warning("%s: describe_volumes in %s failed: %s", self.name, region, message)
            if _error_field(exc, "Code") in DENIED_CODES:
                return None, [VOLUMES_DENIED_WARNING]
            return None, [f"could not describe EBS volumes ({message}); volumes not counted"]
        states = {i.id: i.state for i in instances}
        items: list[StorageItem] = []
        unpriced: set[str] = set()
        for volume in raw:
            item = storage_item_from_ec2(volume, provider=self.name, region=region, states=states)
            if item is None:
                continue
            if item.rate is None:
                unpriced.add(item.volume_type)
            items.append(item)
        warnings = [
            f"no price for EBS volume type '{one_line(t, 40)}'; its cost is unknown"
            for t in sorted(unpriced)
        ]
        return tuple(items), warnings

    def _type_warnings(self, types: Iterable[str]) -> list[str]:
        problems = (self._type_problems.get(t) for t in sorted(types))
        return list(dict.fromkeys(p.warning for p in problems if p is not None))

    def _build(self, raw: Mapping[str, Any], region: str, rate: Rate | None = None) -> Instance:
        instance_type = raw.get("InstanceType", "")
        problem = self._type_problems.get(instance_type)
        return instance_from_ec2(
            raw,
            provider=self.name,
            region=region,
            protect_tag=self.protect_tag,
            type_info=self._type_info,
            spot_types=self._spot_types,
            type_problems={instance_type: problem.reason} if problem else None,
            spot_request_ids=self._spot_request_ids,
            rate=rate,
        )

    def _wanted_types(self, types: Iterable[str]) -> list[str]:
        now = time.monotonic()
        return sorted(
            t
            for t in types
            if t
            and t not in self._type_info
            and not (t in self._type_problems and self._type_problems[t].retry_at > now)
        )

    def _learn_types(self, client: EC2Client, types: Iterable[str]) -> None:
        types = set(types)
        if not self._wanted_types(types):
            return
        # One region fetches while the others wait: types are the same in every region.
        with self._types_lock:
            wanted = self._wanted_types(types)
            blocked = self._types_blocked
            if blocked is not None and blocked.retry_at > time.monotonic():
                self._mark(wanted, blocked)
                return
            for start in range(0, len(wanted), TYPE_BATCH):
                stopped = self._describe_types(client, wanted[start : start + TYPE_BATCH])
                if stopped is not None:
                    # Other types would meet the same denial or outage: not worth a call each.
                    self._types_blocked = stopped
                    self._mark(wanted[start + TYPE_BATCH :], stopped)
                    return
            self._types_blocked = None

    def _describe_types(self, client: EC2Client, batch: Sequence[str]) -> _TypeProblem | None:
        """Learn ``batch``; the problem when describing types is impossible for now."""
        import botocore.exceptions

        try:
            answer = client.describe_instance_types(InstanceTypes=list(batch))  # type: ignore[arg-type]
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in DENIED_CODES:
                log.warning("%s: describe_instance_types not permitted", self.name)
                problem = _problem(TYPES_DENIED, TYPES_DENIED_WARNING, DENIED_RETRY_SECONDS)
                self._mark(batch, problem)
                return problem
            if code in BAD_TYPE_CODES:
                return self._describe_around_bad_types(client, batch, exc)
            return self._failed_types(batch, exc)
        except Exception as exc:
            return self._failed_types(batch, exc)
        learned: dict[str, tuple[GpuSpec | None, int]] = {
            entry["InstanceType"]: type_info_from_ec2(entry)
            for entry in answer.get("InstanceTypes", [])
        }
        with self._lock:
            self._type_info.update(learned)
            for name in learned:
                self._type_problems.pop(name, None)
        self._mark_unknown([name for name in batch if name not in learned])
        return None

    def _describe_around_bad_types(
        self, client: EC2Client, batch: Sequence[str], exc: Exception
    ) -> _TypeProblem | None:
        # One unknown type fails the whole call: set it aside and still learn the rest.
        message = _error_field(exc, "Message")
        bad = named_types(message, batch)
        if bad:
            self._mark_unknown(sorted(bad))
            rest = [name for name in batch if name not in bad]
            return self._describe_types(client, rest) if rest else None
        if len(batch) == 1:
            self._mark_unknown(batch)
            return None
        middle = len(batch) // 2
        stopped = self._describe_types(client, batch[:middle])
        if stopped is not None:
            self._mark(batch[middle:], stopped)
            return stopped
        return self._describe_types(client, batch[middle:])

    def _mark_unknown(self, names: Sequence[str]) -> None:
        for name in names:
            reason = unknown_type_reason(name)
            warning = f"{reason}; its GPU and instance-store facts unknown"
            self._mark([name], _problem(reason, warning, UNKNOWN_TYPE_RETRY_SECONDS))

    def _failed_types(self, batch: Sequence[str], exc: BaseException) -> _TypeProblem:
        message, _ = explain(exc, self._clients.profile)
        log.warning("%s: describe_instance_types failed: %s", self.name, message)
        problem = _problem(
            f"could not describe instance types: {message}",
            f"could not describe instance types ({message}); GPU and instance-store facts unknown",
            FAILED_RETRY_SECONDS,
        )
        self._mark(batch, problem)
        return problem

    def _mark(self, names: Iterable[str], problem: _TypeProblem) -> None:
        with self._lock:
            for name in names:
                self._type_problems[name] = problem

    def _learn_spot_types(self, client: EC2Client, instance_ids: Sequence[str]) -> list[str]:
        with self._lock:
            missing = [i for i in instance_ids if i not in self._spot_types]
        if not missing:
            return []
        try:
            pages = client.get_paginator("describe_spot_instance_requests").paginate(
                Filters=[{"Name": "instance-id", "Values": missing}]
            )
            requests = [r for page in pages for r in page.get("SpotInstanceRequests", [])]
        except Exception as exc:
            message, _ = explain(exc, self._clients.profile)
            log.warning("%s: describe_spot_instance_requests failed: %s", self.name, message)
            if _error_field(exc, "Code") in DENIED_CODES:
                return [SPOT_DENIED_WARNING]
            return [f"could not describe spot requests ({message}); spot request types unknown"]
        with self._lock:
            for request in requests:
                instance_id = request.get("InstanceId")
                if instance_id and request.get("Type"):
                    self._spot_types[instance_id] = request["Type"]
                if instance_id and request.get("SpotInstanceRequestId"):
                    self._spot_request_ids[instance_id] = request["SpotInstanceRequestId"]
            # Remember what has no request on record, so it is not asked for on every poll.
            for instance_id in missing:
                self._spot_types.setdefault(instance_id, "")
        return []

    def describe(self, instance: Instance) -> Instance:
        """Describe one instance again, right now."""
        client = self._clients.client(instance.location)
        try:
            answer = client.describe_instances(InstanceIds=[instance.id])
        except Exception as exc:
            if _error_field(exc, "Code").startswith("InvalidInstanceID"):
                raise NotFoundError(self.name, f"{instance.id} no longer exists") from exc
            raise self._error(exc) from exc
        entries = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
        if not entries:
            raise NotFoundError(self.name, f"{instance.id} no longer exists")
        self._learn_types(client, {entries[0].get("InstanceType", "")})
        if entries[0].get("InstanceLifecycle") == "spot":
            self._learn_spot_types(client, [instance.id])
        rates, _ = self._rates(client, instance.location, entries[:1])
        return self._build(entries[0], instance.location, rates.get(instance.id))

    def _act(self, instance: Instance, operation: str, result_key: str) -> InstanceState:
        client = self._clients.client(instance.location)
        try:
            answer = getattr(client, operation)(InstanceIds=[instance.id])
        except Exception as exc:
            raise self._error(exc) from exc
        changes = answer.get(result_key) or [{}]
        return _state({"State": changes[0].get("CurrentState", {})})

    def stop(self, instance: Instance) -> InstanceState:
        """Stop the instance."""
        return self._act(instance, "stop_instances", "StoppingInstances")

    def start(self, instance: Instance) -> InstanceState:
        """Start the stopped instance."""
        return self._act(instance, "start_instances", "StartingInstances")

    def terminate(self, instance: Instance) -> InstanceState:
        """Terminate the instance."""
        return self._act(instance, "terminate_instances", "TerminatingInstances")

    def actions(self, instance: Instance) -> frozenset[Action]:
        """Stop, start and terminate for an EC2 instance; nothing for any other item."""
        return EC2_ACTIONS if ec2_details(instance) is not None else frozenset()

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Why EC2 would not take ``action`` on ``instance`` in its current state, or ``None``."""
        details = ec2_details(instance)
        if details is None or action not in EC2_ACTIONS:
            return f"{action} is not something {self.name} does to this item"
        state = instance.state
        if action is Action.STOP:
            if details.one_time_spot:
                return "a one-time spot instance cannot be stopped; terminate it instead"
            if state not in STOPPABLE:
                return f"cannot stop an instance that is {state}"
        elif action is Action.START:
            if state is not InstanceState.STOPPED:
                return f"only a stopped instance can be started; it is {state}"
        elif state in GONE:
            return f"already {state}"
        return None

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Stop, start or terminate; returns the state EC2 reports right after."""
        if action is Action.STOP:
            return self.stop(instance)
        if action is Action.START:
            return self.start(instance)
        if action is Action.TERMINATE:
            return self.terminate(instance)
        raise ProviderError(self.name, f"{action} is not something {self.name} does")

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """What stopping or terminating loses or keeps billing, given the state as shown."""
        return ec2_losses(action, instance)

    def spot_request(self, instance: Instance) -> SpotRequest | None:
        """The spot request behind ``instance``, looked up now; ``None`` if it has none."""
        details = ec2_details(instance)
        client = self._clients.client(instance.location)
        try:
            answer = client.describe_spot_instance_requests(
                Filters=[{"Name": "instance-id", "Values": [instance.id]}]
            )
            requests = list(answer.get("SpotInstanceRequests", []))
            known = details.spot_request_id if details is not None else None
            if not requests and known:
                # A cancelled request may no longer name its instance; its id still finds it.
                answer = client.describe_spot_instance_requests(SpotInstanceRequestIds=[known])
                requests = list(answer.get("SpotInstanceRequests", []))
        except Exception as exc:
            if _error_field(exc, "Code").startswith("InvalidSpotInstanceRequestID"):
                return None
            raise self._error(exc) from exc
        if not requests:
            return None
        live = [r for r in requests if r.get("State") in {"open", "active"}]
        chosen = (live or requests)[0]
        return SpotRequest(
            id=str(chosen.get("SpotInstanceRequestId", "?")),
            type=str(chosen.get("Type", "?")),
            state=str(chosen.get("State", "?")),
        )

    def cancel_spot_request(self, instance: Instance, request_id: str) -> str:
        """Cancel the spot request ``request_id``; returns its state right after."""
        client = self._clients.client(instance.location)
        try:
            answer = client.cancel_spot_instance_requests(SpotInstanceRequestIds=[request_id])
        except Exception as exc:
            raise self._error(exc) from exc
        for cancelled in answer.get("CancelledSpotInstanceRequests", []):
            if cancelled.get("SpotInstanceRequestId") == request_id:
                return str(cancelled.get("State", "unknown"))
        return "unknown"

    def identity(self) -> str | None:
        """``profile ml · account 123456789012 · us-east-1 · endpoint URL``: what is shown."""
        parts: list[str] = []
        profile = self._clients.shown_profile()
        if profile:
            parts.append(f"profile {clean(profile)}")
        try:
            regions: list[str] = self.regions()
        except ProviderError:
            regions = []
        parts.append(f"account {self._account_id(regions)}")
        parts.append(_regions_text(regions or self._regions))
        try:
            endpoint = self._clients.shown_endpoint()
        except Exception as exc:
            endpoint = "?"
            log.warning("%s: endpoint unknown: %s", self.name, _line(exc))
        if endpoint:
            parts.append(f"endpoint {clean(endpoint)}")
        return " · ".join(parts)

    def _account_id(self, regions: Sequence[str]) -> str:
        with self._account_lock:
            if self._account is not None or time.monotonic() < self._account_retry_at:
                return self._account or "?"
            try:
                region = regions[0] if regions else self._clients.default_region() or "us-east-1"
                answer = self._clients.sts(region).get_caller_identity()
                self._account = clean(answer.get("Account") or "?")
            except Exception as exc:
                message, _ = explain(exc, self._clients.profile)
                log.warning("%s: get_caller_identity failed: %s", self.name, message)
                self._account_retry_at = time.monotonic() + ACCOUNT_RETRY_SECONDS
                return "?"
            return self._account


def _regions_text(regions: Sequence[str]) -> str:
    if not regions:
        return "region ?"
    shown = [clean(r) for r in regions[:4]]
    more = len(regions) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more else "")


def from_settings(settings: Settings) -> list[AwsProvider]:
    """The ``aws`` provider as the ``[aws]`` table configures it (no I/O until polled)."""
    aws = settings.aws
    if not aws.enabled:
        return []
    clients = Ec2Clients.from_settings(aws)
    from runctl_tui.providers.ssh_hosts import shared_hub

    hub = shared_hub(settings, [aws.ssh_key] if aws.ssh_key else [])
    return [
        AwsProvider(
            clients,
            aws.regions,
            protect_tag=settings.protect_tag,
            ssh_user=aws.ssh_user,
            hub=hub,
            log_search=settings.logs.search(aws.logs),
            checkpoint_dirs=settings.checkpoints.dirs_for(aws.checkpoints),
        )
    ]
