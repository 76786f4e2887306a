"""AWS EC2 through boto3, every configured region polled concurrently.

boto3 is imported by :class:`Ec2Clients` on first use, which happens in a polling
worker thread: importing this module costs nothing at start-up.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl_tui.models import GpuSpec, Instance, InstanceState, Lifecycle, Volume
from runctl_tui.providers.base import Capabilities, NotFoundError, ProviderError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

    from runctl_tui.config import Settings

log = logging.getLogger(__name__)

ALL_REGIONS = "all"
MAX_REGION_THREADS = 16
TYPE_BATCH = 100
"""describe_instance_types accepts at most 100 names per call."""


class Ec2Clients:
    """Thread-safe, cached EC2 clients per region for one credential source."""

    def __init__(
        self,
        profile: str | None = None,
        *,
        endpoint_url: str | None = None,
        access_key: tuple[str, str] | None = None,
        max_attempts: int = 6,
    ) -> None:
        self.profile = profile
        self._endpoint_url = endpoint_url
        self._access_key = access_key
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, EC2Client] = {}

    def _get_session(self) -> Any:
        if self._session is None:
            import boto3.session

            kwargs: dict[str, Any] = {"profile_name": self.profile}
            if self._access_key is not None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = self._access_key
            self._session = boto3.session.Session(**kwargs)
        return self._session

    def default_region(self) -> str | None:
        """The region the profile or environment names, if any."""
        with self._lock:
            region: str | None = self._get_session().region_name
            return region

    def client(self, region: str) -> EC2Client:
        """The EC2 client for ``region``, created once."""
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                from botocore.config import Config

                config = Config(
                    retries={"mode": "adaptive", "max_attempts": self._max_attempts},
                    connect_timeout=5,
                    read_timeout=30,
                    max_pool_connections=20,
                    user_agent_extra="runctl-tui",
                )
                client = self._get_session().client(
                    "ec2", region_name=region, endpoint_url=self._endpoint_url, config=config
                )
                self._clients[region] = client
            return client


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def explain(exc: BaseException, profile: str | None) -> tuple[str, str | None]:
    """Turn a boto3/botocore failure into one line of cause and one line of fix."""
    import botocore.exceptions as bex

    if isinstance(exc, ProviderError):
        return exc.message, exc.hint
    login = f"aws sso login --profile {profile}" if profile else "aws sso login"
    if isinstance(exc, bex.ProfileNotFound):
        missing = getattr(exc, "kwargs", {}).get("profile", profile)
        return (
            f"AWS profile {missing!r} is not in ~/.aws/config",
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
    if isinstance(
        exc, bex.EndpointConnectionError | bex.ConnectTimeoutError | bex.ReadTimeoutError
    ):
        return (
            f"cannot reach the EC2 endpoint: {_one_line(str(exc), 160)}",
            "check the network or AWS_ENDPOINT_URL; retried automatically",
        )
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = _one_line(error.get("Message", "") or str(exc), 160)
        # Authorization failures carry a long encoded blob after the first sentence.
        message = re.sub(r"Encoded authorization failure message:.*", "", message).strip()
        if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
            return f"AWS credentials expired ({code})", f"refresh them: `{login}`"
        if code in {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException"}:
            return (
                f"AWS rejected the credentials ({code})",
                "the key may be revoked: check `aws sts get-caller-identity`",
            )
        if code in {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}:
            return f"not permitted: {message}", "grant the IAM permission named above"
        if code in {"Throttling", "RequestLimitExceeded", "ThrottlingException"}:
            return (
                f"AWS is throttling requests ({code})",
                "already retried with backoff; raise poll_seconds in the config",
            )
        return f"{code}: {message}" if code else message, None
    if isinstance(exc, bex.BotoCoreError):
        return _one_line(str(exc)), None
    return f"{type(exc).__name__}: {_one_line(str(exc))}", None


def _state(raw: Mapping[str, Any]) -> InstanceState:
    try:
        return InstanceState(raw.get("State", {}).get("Name", "unknown"))
    except ValueError:
        return InstanceState.UNKNOWN


def instance_from_ec2(
    raw: Mapping[str, Any],
    *,
    provider: str,
    region: str,
    protect_tag: str,
    type_info: Mapping[str, tuple[GpuSpec | None, int]],
    spot_types: Mapping[str, str],
) -> Instance:
    """Build an :class:`Instance` from one ``describe_instances`` entry."""
    tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", [])}
    launched = raw.get("LaunchTime")
    if isinstance(launched, datetime):
        launched = (
            launched.replace(tzinfo=UTC) if launched.tzinfo is None else launched.astimezone(UTC)
        )
    else:
        launched = None
    lifecycle = Lifecycle.SPOT if raw.get("InstanceLifecycle") == "spot" else Lifecycle.ON_DEMAND
    gpus, store_gb = type_info.get(raw.get("InstanceType", ""), (None, 0))
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
    return Instance(
        provider=provider,
        id=instance_id,
        region=region,
        zone=raw.get("Placement", {}).get("AvailabilityZone") or None,
        name=tags.get("Name", ""),
        instance_type=raw.get("InstanceType", "?"),
        state=_state(raw),
        lifecycle=lifecycle,
        spot_request_type=(spot_types.get(instance_id) or None)
        if lifecycle is Lifecycle.SPOT
        else None,
        gpus=gpus,
        instance_store_gb=store_gb,
        launched_at=launched,
        public_ip=raw.get("PublicIpAddress") or None,
        private_ip=raw.get("PrivateIpAddress") or None,
        image_id=raw.get("ImageId") or None,
        key_name=raw.get("KeyName") or None,
        tags=tags,
        volumes=volumes,
        protected=tags.get(protect_tag, "").strip().lower() in {"true", "yes", "1"},
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


class AwsProvider:
    """EC2 instances across one account's regions."""

    capabilities = Capabilities()

    def __init__(
        self,
        clients: Ec2Clients,
        regions: Sequence[str] = (),
        *,
        name: str = "aws",
        protect_tag: str = "runctl:protect",
    ) -> None:
        self._name = name
        self._clients = clients
        self._regions = list(regions)
        self.protect_tag = protect_tag
        self._lock = threading.Lock()
        self._types_lock = threading.Lock()
        self._resolved: list[str] | None = None
        self._type_info: dict[str, tuple[GpuSpec | None, int]] = {}
        self._spot_types: dict[str, str] = {}

    @property
    def name(self) -> str:
        """Name shown in the UI."""
        return self._name

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
                    import botocore.exceptions

                    raise botocore.exceptions.NoRegionError()
                resolved = [default]
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        self._resolved = resolved
        return resolved

    def list_instances(self) -> list[Instance]:
        """Describe every instance in every region, regions in parallel."""
        regions = self.regions()
        found: dict[str, list[Instance]] = {}
        failed: dict[str, BaseException] = {}
        workers = max(1, min(MAX_REGION_THREADS, len(regions)))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-poll") as pool:
            futures = {region: pool.submit(self._list_region, region) for region in regions}
            for region, future in futures.items():
                try:
                    found[region] = future.result()
                except Exception as exc:
                    log.warning("%s: listing %s failed: %s", self.name, region, exc)
                    failed[region] = exc
        instances = [i for region in regions for i in found.get(region, [])]
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

    def _list_region(self, region: str) -> list[Instance]:
        client = self._clients.client(region)
        paginator = client.get_paginator("describe_instances")
        raw = [
            entry
            for page in paginator.paginate(PaginationConfig={"PageSize": 1000})
            for reservation in page.get("Reservations", [])
            for entry in reservation.get("Instances", [])
        ]
        self._learn_types(client, {r.get("InstanceType", "") for r in raw})
        self._learn_spot_types(
            client, [r["InstanceId"] for r in raw if r.get("InstanceLifecycle") == "spot"]
        )
        return [self._build(entry, region) for entry in raw]

    def _build(self, raw: Mapping[str, Any], region: str) -> Instance:
        return instance_from_ec2(
            raw,
            provider=self.name,
            region=region,
            protect_tag=self.protect_tag,
            type_info=self._type_info,
            spot_types=self._spot_types,
        )

    def _learn_types(self, client: EC2Client, types: Iterable[str]) -> None:
        wanted = {t for t in types if t}
        if wanted <= self._type_info.keys():
            return
        # One region fetches while the others wait: types are the same in every region.
        with self._types_lock:
            missing = sorted(wanted - self._type_info.keys())
            self._fetch_types(client, missing)

    def _fetch_types(self, client: EC2Client, missing: Sequence[str]) -> None:
        for start in range(0, len(missing), TYPE_BATCH):
            batch = missing[start : start + TYPE_BATCH]
            try:
                answer = client.describe_instance_types(InstanceTypes=batch)  # type: ignore[arg-type]
            except Exception as exc:
                # GPU columns stay blank rather than failing the whole poll.
                log.warning("%s: describe_instance_types failed: %s", self.name, exc)
                return
            with self._lock:
                for entry in answer.get("InstanceTypes", []):
                    self._type_info[entry["InstanceType"]] = type_info_from_ec2(entry)
                for name in batch:
                    self._type_info.setdefault(name, (None, 0))

    def _learn_spot_types(self, client: EC2Client, instance_ids: Sequence[str]) -> None:
        with self._lock:
            missing = [i for i in instance_ids if i not in self._spot_types]
        if not missing:
            return
        try:
            pages = client.get_paginator("describe_spot_instance_requests").paginate(
                Filters=[{"Name": "instance-id", "Values": missing}]
            )
            requests = [r for page in pages for r in page.get("SpotInstanceRequests", [])]
        except Exception as exc:
            log.warning("%s: describe_spot_instance_requests failed: %s", self.name, exc)
            return
        with self._lock:
            for request in requests:
                if request.get("InstanceId") and request.get("Type"):
                    self._spot_types[request["InstanceId"]] = request["Type"]
            # Remember what has no request on record, so it is not asked for on every poll.
            for instance_id in missing:
                self._spot_types.setdefault(instance_id, "")

    def describe(self, instance: Instance) -> Instance:
        """Describe one instance again, right now."""
        client = self._clients.client(instance.region)
        try:
            answer = client.describe_instances(InstanceIds=[instance.id])
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code.startswith("InvalidInstanceID"):
                raise NotFoundError(self.name, f"{instance.id} no longer exists") from exc
            raise self._error(exc) from exc
        entries = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
        if not entries:
            raise NotFoundError(self.name, f"{instance.id} no longer exists")
        self._learn_types(client, {entries[0].get("InstanceType", "")})
        if entries[0].get("InstanceLifecycle") == "spot":
            self._learn_spot_types(client, [instance.id])
        return self._build(entries[0], instance.region)

    def _act(self, instance: Instance, operation: str, result_key: str) -> InstanceState:
        client = self._clients.client(instance.region)
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


def from_settings(settings: Settings) -> list[AwsProvider]:
    """The ``aws`` provider as the ``[aws]`` table configures it (no I/O until polled)."""
    if not settings.aws.enabled:
        return []
    return [
        AwsProvider(
            Ec2Clients(settings.aws.profile),
            settings.aws.regions,
            protect_tag=settings.protect_tag,
        )
    ]
