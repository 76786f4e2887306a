"""RunPod pods through the runpod SDK, each call bounded by a deadline.

The SDK costs about 2 s to import (its package import pulls in the serverless worker), so it
is imported on the first call, in the caller's worker thread: importing this module is free.
The SDK is synchronous (requests) and reads ``RUNPOD_API_BASE_URL`` on every call, which is how
tests and the demo point it at :mod:`runctl_tui.runpod_standin`.

The API key is held as a :class:`~pydantic.SecretStr` and handed only to the SDK; every text
that reaches an error, a hint or a log record passes through :func:`redact` first.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from runctl_tui.models import Action, GpuSpec, Instance, InstanceState, Lifecycle
from runctl_tui.providers.base import (
    Capabilities,
    NotConfiguredError,
    NotFoundError,
    ProviderError,
)
from runctl_tui.text import one_line
from runctl_tui.threads import import_sdk, submit

if TYPE_CHECKING:
    from runctl_tui.config import Settings

log = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_API_KEY_ENV = "RUNPOD_API_KEY"
DEFAULT_RUNPODCTL_CONFIG = Path("~/.runpod/config.toml")
DEFAULT_PROTECT_MARKER = "[protect]"
DEFAULT_TIMEOUT = 15.0
"""Seconds one SDK call may take; the SDK's own limit is 30 s per socket read, per call."""
DEFAULT_API_BASE = "https://api.runpod.io"
DEFAULT_THROTTLE_SECONDS = 10.0
"""Backoff after a 429 that carries no usable Retry-After."""
MAX_THROTTLE_SECONDS = 600.0
"""A Retry-After longer than this is not believed: a bad header must not silence the provider."""
MAX_IN_FLIGHT = 4
"""Calls abandoned at their deadline keep a thread until the SDK gives up; cap how many."""
MAX_CONFIG_BYTES = 1 << 20

KEY_HINT = "check RUNPOD_API_KEY (runpodctl config)"
SET_UP_HINT = "set RUNPOD_API_KEY, or run `runpodctl config --apiKey <key>`"
NOT_CONFIGURED = "not configured: no RunPod API key found"

_POD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""The SDK pastes ids into its GraphQL text unescaped: anything else is refused before sending."""
_KEY_IN_TEXT = (
    re.compile(r"(?i)(api[_-]?key\s*[=:]\s*['\"]?)[^&\s'\",;)]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",;)]+"),
)

_STATES = {
    "RUNNING": InstanceState.RUNNING,
    "EXITED": InstanceState.STOPPED,
    "PAUSED": InstanceState.STOPPED,
    "CREATED": InstanceState.PENDING,
    "RESTARTING": InstanceState.PENDING,
    "TERMINATED": InstanceState.TERMINATED,
    "DEAD": InstanceState.TERMINATED,
}
_LIVE = {InstanceState.RUNNING, InstanceState.PENDING}


# ----------------------------------------------------------------------------------------------
# Pods as data.


class GpuUse(BaseModel):
    """One GPU of a running pod, as RunPod's telemetry reports it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    util_percent: float | None = None
    memory_percent: float | None = None


class PodDetails(BaseModel):
    """What RunPod tells about a pod beyond what every provider has."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["pod"] = "pod"
    desired_status: str
    """RunPod's own word: ``RUNNING``, ``EXITED``, ``CREATED``, ``TERMINATED``..."""
    status_reason: str | None = None
    """``lastStatusChange`` as sent, e.g. ``Exited by user: ...`` or an outbid notice."""
    gpu_count: int = 0
    gpu_display_name: str | None = None
    hourly_usd: Decimal | None = None
    """The pod's own ``costPerHr``."""
    uptime_seconds: int | None = None
    ssh_endpoint: str | None = None
    """``ip:port`` of the public mapping of the pod's port 22."""
    volume_gb: int | None = None
    """The pod volume (``/workspace``): kept when stopped, billed while it exists."""
    container_disk_gb: int | None = None
    """Wiped when the pod stops."""
    image: str | None = None
    interruptible: bool = False
    """A spot pod (``podType`` INTERRUPTABLE): it can be taken away when outbid."""
    memory_gb: int | None = None
    vcpu_count: int | None = None
    gpu_util: tuple[GpuUse, ...] = ()
    """Per GPU, when the answer carried telemetry (the SDK's own queries do not ask for it)."""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _usd(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # str() first: Decimal(0.69) would carry the float's binary noise into every sum.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_state(raw: Mapping[str, Any]) -> InstanceState:
    """The neutral state of a pod: ``desiredStatus``, and whether its container is up yet."""
    state = _STATES.get(str(raw.get("desiredStatus") or "").upper(), InstanceState.UNKNOWN)
    # RunPod says RUNNING from the moment it is asked to start; until the container is up the
    # pod has no runtime. Only an answer that asked for the runtime can tell.
    if state is InstanceState.RUNNING and "runtime" in raw and raw["runtime"] is None:
        return InstanceState.PENDING
    return state


def ssh_endpoint(ports: Any) -> tuple[str, str] | None:
    """``(ip, "ip:port")`` of the public mapping of port 22, if the pod has one."""
    if not isinstance(ports, list):
        return None
    for port in ports:
        entry = _mapping(port)
        ip = _text(entry.get("ip"))
        public = _int(entry.get("publicPort"))
        public_ssh = _int(entry.get("privatePort")) == 22 and entry.get("isIpPublic") is True
        if public_ssh and ip and public is not None and 0 < public < 65536:
            return ip, f"{ip}:{public}"
    return None


def pod_from_api(
    raw: Mapping[str, Any],
    *,
    provider: str = "runpod",
    protect_marker: str = DEFAULT_PROTECT_MARKER,
    now: datetime | None = None,
) -> tuple[Instance, PodDetails]:
    """Build the neutral :class:`Instance` and the :class:`PodDetails` of one API pod.

    Text is kept as RunPod sent it (names included): making it safe to show is the view's job.
    Raises ``ValueError`` when ``raw`` is not a pod with an id.
    """
    if not isinstance(raw, Mapping):
        raise ValueError("a pod must be a JSON object")
    pod_id = raw.get("id")
    if not isinstance(pod_id, str) or not pod_id:
        raise ValueError("a pod without an id")
    moment = now or datetime.now(UTC)
    name = raw.get("name")
    name = name if isinstance(name, str) else ""
    state = pod_state(raw)
    machine = _mapping(raw.get("machine"))
    runtime = _mapping(raw.get("runtime"))
    gpu_count = max(_int(raw.get("gpuCount")) or 0, 0)
    display = _text(machine.get("gpuDisplayName"))
    uptime = _int(runtime.get("uptimeInSeconds"))
    if uptime is None:
        uptime = _int(raw.get("uptimeSeconds"))
    launched: datetime | None = None
    if state in _LIVE and uptime is not None and uptime >= 0:
        # Whole seconds: the same pod polled twice gets the same launch time.
        launched = (moment - timedelta(seconds=uptime)).replace(microsecond=0)
    ssh = ssh_endpoint(runtime.get("ports"))
    interruptible = str(raw.get("podType") or "").upper() in {"INTERRUPTABLE", "INTERRUPTIBLE"}
    container_disk = _int(raw.get("containerDiskInGb"))
    gpus = runtime.get("gpus")
    usage = tuple(
        GpuUse(
            id=str(_mapping(g).get("id") or index),
            util_percent=_float(_mapping(g).get("gpuUtilPercent")),
            memory_percent=_float(_mapping(g).get("memoryUtilPercent")),
        )
        for index, g in enumerate(gpus if isinstance(gpus, list) else [])
    )
    region = _text(raw.get("dataCenterId")) or _text(machine.get("dataCenterId")) or "runpod"
    details = PodDetails(
        desired_status=str(raw.get("desiredStatus") or "UNKNOWN"),
        status_reason=_text(raw.get("lastStatusChange")),
        gpu_count=gpu_count,
        gpu_display_name=display,
        hourly_usd=_usd(raw.get("costPerHr")),
        uptime_seconds=uptime if state in _LIVE else None,
        ssh_endpoint=ssh[1] if ssh else None,
        volume_gb=_int(raw.get("volumeInGb")),
        container_disk_gb=container_disk,
        image=_text(raw.get("imageName")),
        interruptible=interruptible,
        memory_gb=_int(raw.get("memoryInGb")),
        vcpu_count=_int(raw.get("vcpuCount")),
        gpu_util=usage,
    )
    instance = Instance(
        provider=provider,
        id=pod_id,
        region=region,
        name=name,
        instance_type=display or ("cpu" if gpu_count == 0 else "?"),
        state=state,
        lifecycle=Lifecycle.SPOT if interruptible else Lifecycle.ON_DEMAND,
        gpus=GpuSpec(count=gpu_count, model=display or "GPU") if gpu_count else None,
        # The container disk is what a stop wipes, as an instance store is on EC2.
        instance_store_gb=container_disk,
        launched_at=launched,
        public_ip=ssh[0] if ssh else None,
        protected=bool(protect_marker) and protect_marker.casefold() in name.casefold(),
        hourly_usd=details.hourly_usd,
        rate_source="the pod's costPerHr" if details.hourly_usd is not None else None,
    )
    return instance, details


# ----------------------------------------------------------------------------------------------
# The API key.


@dataclass(frozen=True)
class ApiKeyLookup:
    """Where a RunPod key was found, or why the config file could not say."""

    key: SecretStr | None
    source: str | None = None
    """``RUNPOD_API_KEY``, ``~/.runpod/config.toml``...: never the key."""
    problem: str | None = None
    """One line when the config file exists but could not be used."""


def _shown_path(path: Path) -> str:
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except (ValueError, RuntimeError):
        return one_line(str(path), 120)


def _config_key(path: Path) -> ApiKeyLookup:
    shown = _shown_path(path)
    try:
        if path.is_dir():
            return ApiKeyLookup(None, problem=f"{shown} is a directory, not runpodctl's config")
        if not path.exists():
            return ApiKeyLookup(None)
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        return ApiKeyLookup(None, problem=f"cannot read {shown}: {reason}")
    if len(data) > MAX_CONFIG_BYTES:
        return ApiKeyLookup(None, problem=f"{shown} is too large to be runpodctl's config")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return ApiKeyLookup(None, problem=f"{shown} is not UTF-8 text")
    except tomllib.TOMLDecodeError as exc:
        # The parser's message can quote the file; keep only where it stopped.
        where = re.search(r"\(at (line \d+, column \d+|end of document)\)", str(exc))
        at = f" ({where.group(1)})" if where else ""
        return ApiKeyLookup(None, problem=f"{shown} is not valid TOML{at}; its key is not used")
    # runpodctl writes ``apikey`` (viper ignores case); the runpod Python CLI writes
    # ``[default] api_key`` into the same file.
    for name, value in table.items():
        if name.casefold() == "apikey":
            if not isinstance(value, str):
                return ApiKeyLookup(None, problem=f"apikey in {shown} is not a string")
            if value.strip():
                return ApiKeyLookup(SecretStr(value.strip()), source=shown)
    profile = table.get("default")
    if isinstance(profile, Mapping):
        value = profile.get("api_key")
        if isinstance(value, str) and value.strip():
            return ApiKeyLookup(SecretStr(value.strip()), source=f"{shown} [default]")
        if value is not None and not isinstance(value, str):
            return ApiKeyLookup(None, problem=f"[default] api_key in {shown} is not a string")
    return ApiKeyLookup(None)


def find_api_key(
    api_key_env: str = DEFAULT_API_KEY_ENV,
    runpodctl_config: Path = DEFAULT_RUNPODCTL_CONFIG,
) -> ApiKeyLookup:
    """The key from ``api_key_env``, else from runpodctl's config file, with its source."""
    from_env = os.environ.get(api_key_env, "").strip()
    if from_env:
        return ApiKeyLookup(SecretStr(from_env), source=api_key_env)
    return _config_key(runpodctl_config.expanduser())


def api_key_from_environment(
    api_key_env: str = DEFAULT_API_KEY_ENV,
    runpodctl_config: Path = DEFAULT_RUNPODCTL_CONFIG,
) -> str | None:
    """The RunPod API key from the environment or runpodctl's config; ``None`` if none.

    A config file that cannot be used is logged as one line (never its content).
    """
    found = find_api_key(api_key_env, runpodctl_config)
    if found.problem:
        log.warning("runpod: %s", found.problem)
    return found.key.get_secret_value() if found.key is not None else None


# ----------------------------------------------------------------------------------------------
# Errors.


class RunPodThrottledError(ProviderError):
    """RunPod answered 429: nothing is sent to it again before ``retry_after`` seconds."""

    def __init__(self, provider: str, message: str, *, hint: str, retry_after: float) -> None:
        """``retry_after``: seconds until RunPod may be called again."""
        super().__init__(provider, message, hint=hint)
        self.retry_after = retry_after


def redact(text: str, secret: str | None = None) -> str:
    """``text`` with the key, any ``api_key=...`` value and any bearer token replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
    for pattern in _KEY_IN_TEXT:
        text = pattern.sub(r"\1***", text)
    return text


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date), within bounds."""
    seconds = DEFAULT_THROTTLE_SECONDS
    text = (value or "").strip()
    if text.isdigit() and len(text) < 10:
        seconds = float(text)
    elif text:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 1.0), MAX_THROTTLE_SECONDS)


def _sdk_response(exc: BaseException) -> Any:
    """The HTTP response the SDK held when it failed, if it got that far.

    The SDK turns every answer but a 401 into JSON without looking at the status, so a 429 or
    a 500 surfaces as a JSON or GraphQL error; the response is still in its frame.
    """
    import requests

    trace = exc.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code.co_name == "run_graphql_query":
            response = frame.f_locals.get("response")
            if isinstance(response, requests.Response):
                return response
        trace = trace.tb_next
    return None


def _endpoint() -> str:
    """Where the SDK sends requests now: scheme, host and port only."""
    base = os.environ.get("RUNPOD_API_BASE_URL", DEFAULT_API_BASE)
    try:
        parts = urlsplit(base)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an unparsable RUNPOD_API_BASE_URL"
    return one_line(f"{parts.scheme}://{host}{port}", 120)


@dataclass(frozen=True)
class _Explained:
    message: str
    hint: str | None
    retry_after: float | None = None
    not_found: bool = False


def explain(exc: BaseException, secret: str | None = None) -> tuple[str, str | None]:
    """One line of cause and one of fix for a failed SDK call, the key redacted from both."""
    found = _explain(exc, secret)
    return found.message, found.hint


def _explain(exc: BaseException, secret: str | None) -> _Explained:
    import requests
    import runpod.error

    def safe(text: object, width: int = 160) -> str:
        return one_line(" ".join(redact(str(text), secret).split()), width)

    response = _sdk_response(exc)
    status = response.status_code if response is not None else None
    if isinstance(exc, runpod.error.AuthenticationError) or status == 401:
        return _Explained("RunPod rejected the API key", KEY_HINT)
    if status == 403:
        return _Explained(
            "RunPod refused the API key access (HTTP 403)",
            "the key may be read-only: create one with read/write access in RunPod's settings",
        )
    if status == 429:
        header = response.headers.get("Retry-After") if response is not None else None
        wait = retry_after_seconds(header)
        asked = " as RunPod asked" if header else ""
        return _Explained(
            "RunPod is throttling requests (HTTP 429)",
            f"waiting {math.ceil(wait)} s{asked} before calling again",
            retry_after=wait,
        )
    if status is not None and status >= 500:
        return _Explained(
            f"RunPod's API failed (HTTP {status})",
            "retried on the next poll; see status.runpod.io if it persists",
        )
    if status is not None and status >= 400:
        return _Explained(
            f"RunPod refused the request (HTTP {status})",
            "check RUNPOD_API_BASE_URL and the runpod SDK version",
        )
    if isinstance(exc, runpod.error.QueryError):
        text = exc.message or "no message"
        return _Explained(
            f"RunPod refused the request: {safe(text)}",
            "retried on the next poll; see status.runpod.io if it persists",
            not_found=bool(re.search(r"not found|does not exist", text, re.IGNORECASE)),
        )
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # Never quote the answer: it is not ours and may be anything.
        shown = f" (HTTP {status})" if status is not None else ""
        return _Explained(
            f"RunPod sent an answer that is not JSON{shown}",
            "check RUNPOD_API_BASE_URL and any proxy in between; retried on the next poll",
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return _Explained(
            f"RunPod did not answer in time (the SDK's own limit): {_endpoint()}",
            "check the network, proxy or RUNPOD_API_BASE_URL",
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc).lower()
        why = (
            "connection refused"
            if "refused" in text
            else "name not resolved"
            if "resolve" in text or "name or service" in text
            else "connection failed"
        )
        return _Explained(
            f"cannot reach RunPod at {_endpoint()} ({why})",
            "check the network, proxy or RUNPOD_API_BASE_URL",
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return _Explained(f"request to RunPod failed: {type(exc).__name__}", None)
    if isinstance(exc, KeyError | TypeError | IndexError | AttributeError):
        return _Explained(
            "RunPod sent an answer of an unexpected shape",
            "check RUNPOD_API_BASE_URL; the runpod SDK may need an update",
        )
    return _Explained(f"{type(exc).__name__}: {safe(exc)}", None)


# ----------------------------------------------------------------------------------------------
# The provider.


class RunPodProvider:
    """Every pod of one RunPod account. Calls block; each is bounded by ``timeout``."""

    capabilities = Capabilities()

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        name: str = "runpod",
        protect_marker: str = DEFAULT_PROTECT_MARKER,
        timeout: float = DEFAULT_TIMEOUT,
        key_source: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``key_source`` names where the key came from, for :meth:`identity`; never the key."""
        self._name = name
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key.strip())
        self.protect_marker = protect_marker
        self.timeout = timeout
        self.key_source = key_source
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._in_flight = 0
        self._not_before = 0.0
        """``time.monotonic()`` before which a throttled provider sends nothing."""
        self._details: dict[str, PodDetails] = {}
        self._warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Name shown in the UI."""
        return self._name

    def __repr__(self) -> str:
        """Name and timeout only: the key stays out of every debug dump."""
        return f"RunPodProvider(name={self._name!r}, timeout={self.timeout!r})"

    # -- what the rest of the app reads --------------------------------------------------------

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """What stopping or terminating a pod loses, from the last poll's sizes."""
        details = self.details(instance.id)
        disk = details.container_disk_gb if details else None
        volume = details.volume_gb if details else None
        if action is Action.STOP:
            lines = [
                f"the container disk ({disk} GB) is wiped"
                if disk
                else "the container disk is wiped"
            ]
            if volume:
                lines.append(f"the volume ({volume} GB, /workspace) is kept and still billed")
            lines.append("the GPU is released: resuming may find none free on its machine")
            return lines
        if action is Action.TERMINATE:
            gone = (
                f"the pod and its volume ({volume} GB) are deleted"
                if volume
                else "the pod is deleted"
            )
            return [gone, "this cannot be undone"]
        return []

    def details(self, instance_id: str) -> PodDetails | None:
        """What the last list or describe said about a pod beyond its :class:`Instance`."""
        with self._lock:
            return self._details.get(instance_id)

    def hourly_usd(self, instance_id: str) -> Decimal | None:
        """The pod's own ``costPerHr`` as last seen; ``None`` if unknown."""
        found = self.details(instance_id)
        return found.hourly_usd if found is not None else None

    def poll_warnings(self) -> tuple[str, ...]:
        """Pods the last ``list_instances`` had to skip, one line each."""
        return self._warnings

    def identity(self) -> str | None:
        """``endpoint https://api.runpod.io · key from RUNPOD_API_KEY`` (never the key)."""
        parts = [f"endpoint {_endpoint()}"]
        if self.key_source:
            parts.append(f"key from {one_line(redact(self.key_source, self._secret()), 80)}")
        return " · ".join(parts)

    # -- the protocol --------------------------------------------------------------------------

    def list_instances(self) -> list[Instance]:
        """Every pod of the account, freshly described."""
        answer = self._call("list", lambda sdk, key: sdk.get_pods(api_key=key.get_secret_value()))
        if not isinstance(answer, list):
            raise ProviderError(
                self.name,
                "RunPod sent an answer of an unexpected shape",
                hint="check RUNPOD_API_BASE_URL; the runpod SDK may need an update",
            )
        instances: list[Instance] = []
        details: dict[str, PodDetails] = {}
        skipped = 0
        now = self._clock()
        for raw in answer:
            try:
                instance, more = self._build(raw, now)
            except ValueError:
                skipped += 1
                continue
            instances.append(instance)
            details[instance.id] = more
        warnings = (f"skipped {skipped} pod(s) RunPod described without an id",) if skipped else ()
        with self._lock:
            self._details = details
            self._warnings = warnings
        return instances

    def describe(self, instance: Instance) -> Instance:
        """The pod as RunPod describes it now; :class:`NotFoundError` once it is gone."""
        pod_id = self._checked_id(instance.id)
        raw = self._call(
            "describe",
            lambda sdk, key: sdk.get_pod(pod_id, api_key=key.get_secret_value()),
            pod_id=pod_id,
        )
        if raw is None:
            self._forget(pod_id)
            raise NotFoundError(self.name, f"{one_line(pod_id, 64)} no longer exists")
        try:
            found, more = self._build(raw, self._clock())
        except ValueError:
            raise ProviderError(
                self.name,
                "RunPod sent an answer of an unexpected shape",
                hint="check RUNPOD_API_BASE_URL; the runpod SDK may need an update",
            ) from None
        with self._lock:
            self._details[found.id] = more
        return found

    def stop(self, instance: Instance) -> InstanceState:
        """Stop the pod (``podStop``): the container disk is wiped, the volume kept."""
        pod_id = self._checked_id(instance.id)
        answer = self._call("stop", lambda sdk, key: sdk.stop_pod(pod_id), pod_id=pod_id)
        return self._state_after(answer, InstanceState.STOPPED)

    def start(self, instance: Instance) -> InstanceState:
        """Resume the pod (``podResume``) with as many GPUs as it had."""
        pod_id = self._checked_id(instance.id)
        count = self._gpu_count(instance)
        answer = self._call("start", lambda sdk, key: sdk.resume_pod(pod_id, count), pod_id=pod_id)
        return self._state_after(answer, InstanceState.RUNNING)

    def terminate(self, instance: Instance) -> InstanceState:
        """Terminate the pod (``podTerminate``): its volume is deleted with it."""
        pod_id = self._checked_id(instance.id)
        self._call("terminate", lambda sdk, key: sdk.terminate_pod(pod_id), pod_id=pod_id)
        self._forget(pod_id)
        return InstanceState.TERMINATED

    # -- helpers -------------------------------------------------------------------------------

    def _secret(self) -> str:
        return self._api_key.get_secret_value()

    def _build(self, raw: Any, now: datetime) -> tuple[Instance, PodDetails]:
        return pod_from_api(raw, provider=self.name, protect_marker=self.protect_marker, now=now)

    def _forget(self, pod_id: str) -> None:
        with self._lock:
            self._details.pop(pod_id, None)

    def _checked_id(self, pod_id: str) -> str:
        if not _POD_ID.fullmatch(pod_id):
            raise ProviderError(
                self.name,
                f"refusing {one_line(pod_id, 40)!r}: not a RunPod pod id",
                hint="refresh the list and pick the pod again",
            )
        return pod_id

    def _gpu_count(self, instance: Instance) -> int:
        known = self.details(instance.id)
        if known is not None:
            return known.gpu_count
        if instance.gpus is not None:
            return instance.gpus.count
        self.describe(instance)
        known = self.details(instance.id)
        return known.gpu_count if known is not None else 0

    def _state_after(self, answer: Any, expected: InstanceState) -> InstanceState:
        status = _mapping(answer).get("desiredStatus")
        return _STATES.get(str(status).upper(), expected) if status else expected

    def _sdk(self) -> Any:
        try:
            import_sdk("runpod", "runpod.error")
            import runpod
        except ImportError:
            raise NotConfiguredError(
                self.name,
                "the runpod package is not installed",
                hint="pip install runpod (it comes with runctl-tui)",
            ) from None
        return runpod

    def _call(
        self,
        what: str,
        fn: Callable[[Any, SecretStr], R],
        *,
        pod_id: str | None = None,
    ) -> R:
        """Run ``fn(runpod, key)`` on its own thread and wait at most ``timeout`` seconds."""
        if not self._secret():
            raise NotConfiguredError(self.name, NOT_CONFIGURED, hint=SET_UP_HINT)
        self._check_throttle()
        # Imported here, before the clock starts: the 2 s import is not the API being slow.
        sdk = self._sdk()
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                raise ProviderError(
                    self.name,
                    f"{self._in_flight} earlier RunPod calls are still waiting for an answer",
                    hint="check the network or RUNPOD_API_BASE_URL; retried on the next poll",
                )
            self._in_flight += 1
        secret = self._api_key

        def run() -> R:
            try:
                # stop_pod, resume_pod and terminate_pod take no key: they read this module
                # global. Listing and describing pass the key explicitly, so only the actions
                # of two providers with different keys in one process could cross.
                sdk.api_key = secret.get_secret_value()
                return fn(sdk, secret)
            finally:
                with self._lock:
                    self._in_flight -= 1

        future = submit(run, name=f"runpod-{what}")
        started = time.monotonic()
        error: ProviderError
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            hint = (
                "check the network or RUNPOD_API_BASE_URL; retried on the next poll"
                if pod_id is None
                else "it may still take effect: refresh before trying again"
            )
            error = ProviderError(
                self.name, f"RunPod did not answer within {self.timeout:g} s", hint=hint
            )
        except ProviderError as exc:
            error = exc
        except Exception as exc:
            error = self._error(exc, pod_id)
        # Raised outside the handler so the SDK's exception, whose frames hold the key, is
        # neither chained nor kept alive by the error shown to the user.
        log.warning(
            "%s: %s failed after %.1f s: %s", self.name, what, time.monotonic() - started, error
        )
        raise error

    def _check_throttle(self) -> None:
        with self._lock:
            remaining = self._not_before - time.monotonic()
        if remaining > 0:
            wait = math.ceil(remaining)
            raise RunPodThrottledError(
                self.name,
                f"RunPod is throttling requests; next call in {wait} s",
                hint="waiting as RunPod asked (HTTP 429, Retry-After)",
                retry_after=remaining,
            )

    def _error(self, exc: BaseException, pod_id: str | None) -> ProviderError:
        found = _explain(exc, self._secret())
        if found.retry_after is not None:
            with self._lock:
                self._not_before = time.monotonic() + found.retry_after
            return RunPodThrottledError(
                self.name,
                found.message,
                hint=found.hint or "",
                retry_after=found.retry_after,
            )
        if found.not_found and pod_id is not None:
            self._forget(pod_id)
            return NotFoundError(self.name, f"{one_line(pod_id, 64)} no longer exists")
        return ProviderError(self.name, found.message, hint=found.hint)


def from_settings(settings: Settings) -> list[RunPodProvider]:
    """The ``runpod`` provider as the ``[runpod]`` table configures it (no I/O until polled).

    The key is read from the variable the table names, or runpodctl's config file, never from
    our own config. Without one the provider says it is not configured, and how to set it up.
    """
    table = settings.runpod
    if not table.enabled:
        return []
    found = find_api_key(table.api_key_env)
    if found.problem:
        log.warning("runpod: %s", found.problem)
    key = found.key if found.key is not None else SecretStr("")
    return [
        RunPodProvider(
            key,
            protect_marker=table.protect_marker,
            timeout=table.timeout,
            key_source=found.source,
        )
    ]
