"""RunPod pods through RunPod's GraphQL API, each call bounded by a deadline.

Requests are the runpod SDK's own: the same URL (``RUNPOD_API_BASE_URL``, read on every call,
which is how tests and the demo point it at :mod:`runctl_tui.runpod_standin`), headers, body
and mutation texts. They are sent here rather than through the SDK's ``run_graphql_query``,
because that function keeps neither the HTTP status nor ``Retry-After`` (only a 401 raises; a
429 or a 500 surfaces as a JSON or key error) and waits up to 30 s per socket read. Sending the
same request ourselves lets a 429, a 5xx, a GraphQL ``errors`` body and a malformed answer each
be told apart by what RunPod actually sent, and bounds every call in time and size.

The SDK (about 2 s to import) and requests are imported on the first call, in the caller's
worker thread: importing this module is free. The API key is held as a
:class:`~pydantic.SecretStr`; every text that reaches an error, a hint or a log record passes
through :func:`redact` first.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from runctl_tui.models import (
    Action,
    GpuSpec,
    GpuUsage,
    Instance,
    InstanceState,
    PodDetails,
    Rate,
    StorageItem,
)
from runctl_tui.providers.base import (
    NO_LOG_SEARCH,
    CheckpointLocation,
    LogLocation,
    LogSearch,
    NotConfiguredError,
    NotFoundError,
    ProviderError,
)
from runctl_tui.text import one_line
from runctl_tui.threads import import_sdk, submit

if TYPE_CHECKING:
    from runctl_tui.config import Settings
    from runctl_tui.remote.ssh import SshHub, SshTarget

log = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "RUNPOD_API_KEY"
DEFAULT_RUNPODCTL_CONFIG = Path("~/.runpod/config.toml")
DEFAULT_PROTECT_MARKER = "[protect]"
SSH_USER = "root"
"""The login of a pod's SSH endpoint."""
DEFAULT_TIMEOUT = 15.0
"""Seconds one call may take, from sending the request to the last byte of the answer."""
DEFAULT_API_BASE = "https://api.runpod.io"
DEFAULT_THROTTLE_SECONDS = 10.0
"""Wait after a 429 that carries no usable Retry-After."""
MAX_THROTTLE_SECONDS = 600.0
"""A Retry-After longer than this is not believed: a bad header must not silence the provider."""
DEFAULT_BACKOFF_SECONDS = 5.0
"""Polls held after a first 5xx; doubled after each further one."""
MAX_BACKOFF_SECONDS = 120.0
MAX_IN_FLIGHT = 4
"""Calls abandoned at their deadline keep a thread until their socket gives up; cap how many."""
MAX_ANSWER_BYTES = 16 << 20
"""An answer larger than this is not read to the end: no pod list comes near it."""
MAX_CONFIG_BYTES = 1 << 20
CONNECT_TIMEOUT = 5.0
THREAD_GRACE = 1.0
"""Seconds an abandoned call's thread outlives its caller's deadline before its socket gives up."""

KEY_HINT = "check RUNPOD_API_KEY (runpodctl config)"
SET_UP_HINT = "set RUNPOD_API_KEY, or run `runpodctl config --apiKey <key>`"
NOT_CONFIGURED = "not configured: no RunPod API key found"
SHAPE_HINT = "check RUNPOD_API_BASE_URL; the runpod SDK may need an update"
POD_ACTIONS = frozenset({Action.STOP, Action.START, Action.TERMINATE})

_POD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Ids are pasted into GraphQL text unescaped (as the SDK does): anything else is refused."""
_KEY_IN_TEXT = (
    re.compile(r"(?i)(api[_-]?key\s*[=:]\s*['\"]?)[^&\s'\",;)]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",;)]+"),
)

_POD_SELECTION = """
            id
            containerDiskInGb
            costPerHr
            desiredStatus
            gpuCount
            imageName
            lastStatusChange
            memoryInGb
            name
            podType
            uptimeSeconds
            vcpuCount
            volumeInGb
            runtime {
                uptimeInSeconds
                ports {
                    ip
                    isIpPublic
                    privatePort
                    publicPort
                    type
                }
                gpus {
                    id
                    gpuUtilPercent
                    memoryUtilPercent
                }
            }
            machine {
                gpuDisplayName
            }
"""
# The SDK's own pod queries select no runtime GPU figures, and do select ``env`` (which holds
# the pod's secrets): these select what the fleet shows, and nothing else.
PODS_QUERY = f"""
query myPods {{
    myself {{
        pods {{{_POD_SELECTION}        }}
    }}
}}
"""
"""Every pod of the account, with per-GPU utilisation while running."""


def pod_query(pod_id: str) -> str:
    """The query for one pod; ``pod_id`` must already be checked against :data:`_POD_ID`."""
    return f"""
query pod {{
    pod(input: {{podId: "{pod_id}"}}) {{{_POD_SELECTION}    }}
}}
"""


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
_GONE = {InstanceState.TERMINATED, InstanceState.SHUTTING_DOWN}


# ----------------------------------------------------------------------------------------------
# Pods as data.


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


def _percent(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(round(value), 100)


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


def gpu_usage(runtime: Mapping[str, Any], name: str | None) -> tuple[GpuUsage, ...]:
    """Per-GPU utilisation from ``runtime.gpus``, in the order RunPod lists them."""
    gpus = runtime.get("gpus")
    if not isinstance(gpus, list):
        return ()
    return tuple(
        GpuUsage(
            index=index,
            name=name or "",
            utilization_percent=_percent(_mapping(gpu).get("gpuUtilPercent")),
            memory_percent=_percent(_mapping(gpu).get("memoryUtilPercent")),
        )
        for index, gpu in enumerate(gpus)
        if isinstance(gpu, Mapping)
    )


def pod_from_api(
    raw: Mapping[str, Any],
    *,
    provider: str = "runpod",
    protect_marker: str = DEFAULT_PROTECT_MARKER,
    now: datetime | None = None,
) -> Instance:
    """The :class:`Instance` (with its :class:`PodDetails`) of one pod as the API sent it.

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
    # A runtime on a pod RunPod calls stopped is a pod still up (and billing): keep its uptime
    # and GPU figures, so that the contradiction shows.
    if (state in _LIVE or runtime) and uptime is not None and uptime >= 0:
        # Whole seconds: the same pod polled twice gets the same launch time.
        launched = (moment - timedelta(seconds=uptime)).replace(microsecond=0)
    ssh = ssh_endpoint(runtime.get("ports"))
    interruptible = str(raw.get("podType") or "").upper() in {"INTERRUPTABLE", "INTERRUPTIBLE"}
    hourly = _usd(raw.get("costPerHr"))
    protected = bool(protect_marker) and protect_marker.casefold() in name.casefold()
    location = _text(raw.get("dataCenterId")) or _text(machine.get("dataCenterId")) or "runpod"
    details = PodDetails(
        desired_status=str(raw.get("desiredStatus") or "UNKNOWN"),
        status_reason=_text(raw.get("lastStatusChange")),
        gpu_count=gpu_count,
        gpu_display_name=display,
        ssh_endpoint=ssh[1] if ssh else None,
        volume_gb=_int(raw.get("volumeInGb")),
        container_disk_gb=_int(raw.get("containerDiskInGb")),
        image=_text(raw.get("imageName")),
        interruptible=interruptible,
        memory_gb=_int(raw.get("memoryInGb")),
        vcpu_count=_int(raw.get("vcpuCount")),
    )
    return Instance(
        provider=provider,
        id=pod_id,
        name=name,
        location=location,
        state=state,
        gpus=GpuSpec(count=gpu_count, model=display or "GPU") if gpu_count else None,
        gpu_usage=gpu_usage(runtime, display) if state is InstanceState.RUNNING or runtime else (),
        launched_at=launched,
        rate=Rate(usd_per_hour=hourly, source="the pod's costPerHr", as_of=moment, region=location)
        if hourly is not None
        else None,
        protected=protected,
        protected_by=f"name contains {protect_marker}" if protected else "",
        details=details,
    )


def pod_details(instance: Instance) -> PodDetails | None:
    """The pod details of ``instance``, or ``None`` for any other kind of item."""
    return instance.details if isinstance(instance.details, PodDetails) else None


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


class RunPodRetryLaterError(ProviderError):
    """RunPod is not called again for ``retry_after`` seconds: it asked so, or it is failing."""

    def __init__(self, provider: str, message: str, *, hint: str, retry_after: float) -> None:
        """``retry_after``: seconds until RunPod may be called again."""
        super().__init__(provider, message, hint=hint)
        self.retry_after = retry_after


class RunPodThrottledError(RunPodRetryLaterError):
    """RunPod answered 429: nothing is sent to it again before ``retry_after`` seconds."""


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
class Explained:
    """One failed call, said in one line of cause and one of fix."""

    message: str
    hint: str | None
    status: int | None = None
    """The HTTP status RunPod answered with, when it answered at all."""
    retry_after: float | None = None
    """Seconds RunPod asked us to wait (``Retry-After``), if it did."""
    not_found: bool = False


class RunPodAnswerError(Exception):
    """What RunPod answered was a failure (status, ``errors`` body, malformed); never shown."""

    def __init__(self, explained: Explained) -> None:
        """Wraps the explanation, which is what the provider raises from."""
        super().__init__(explained.message)
        self.explained = explained


def _safe(text: object, secret: str | None, width: int = 160) -> str:
    return one_line(" ".join(redact(str(text), secret).split()), width)


def read_answer(
    status: int, headers: Mapping[str, str], body: bytes, secret: str | None = None
) -> Any:
    """The ``data`` of a GraphQL answer; :class:`RunPodAnswerError` for anything else.

    The status is read first: a 429 or a 500 is what it is whatever its body says. The body is
    never quoted (it is not ours and may be anything); a GraphQL error message is, redacted.
    """
    if status == 401:
        raise RunPodAnswerError(Explained("RunPod rejected the API key", KEY_HINT, status))
    if status == 403:
        raise RunPodAnswerError(
            Explained(
                "RunPod refused the API key access (HTTP 403)",
                "the key may be read-only: create one with read/write access in RunPod's settings",
                status,
            )
        )
    header = headers.get("Retry-After")
    if status == 429:
        wait = retry_after_seconds(header)
        asked = " as RunPod asked" if header else ""
        raise RunPodAnswerError(
            Explained(
                "RunPod is throttling requests (HTTP 429)",
                f"waiting {math.ceil(wait)} s{asked} before calling again",
                status,
                retry_after=wait,
            )
        )
    if status >= 500:
        raise RunPodAnswerError(
            Explained(
                f"RunPod's API failed (HTTP {status})",
                "see status.runpod.io if it persists",
                status,
                retry_after=retry_after_seconds(header) if header else None,
            )
        )
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise RunPodAnswerError(
            Explained(
                f"RunPod sent an answer that is not JSON (HTTP {status})",
                "check RUNPOD_API_BASE_URL and any proxy in between; retried on the next poll",
                status,
            )
        ) from None
    errors = document.get("errors") if isinstance(document, dict) else None
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else errors
        text = _mapping(first).get("message")
        text = text if isinstance(text, str) and text.strip() else "no message"
        raise RunPodAnswerError(
            Explained(
                f"RunPod refused the request: {_safe(text, secret)}",
                "retried on the next poll; see status.runpod.io if it persists",
                status,
                not_found=bool(re.search(r"not found|does not exist", text, re.IGNORECASE)),
            )
        )
    if status >= 300:
        raise RunPodAnswerError(
            Explained(
                f"RunPod refused the request (HTTP {status})",
                "check RUNPOD_API_BASE_URL and the runpod SDK version",
                status,
            )
        )
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise RunPodAnswerError(
            Explained("RunPod sent an answer of an unexpected shape", SHAPE_HINT, status)
        )
    return data


def _read_body(response: Any, deadline: float, timeout: float) -> bytes:
    """The whole body, unless it is too large or still arriving at ``deadline``."""
    import requests

    chunks: list[bytes] = []
    size = 0
    raw = response.raw
    # read1 returns whatever one socket read brought: reading a fixed amount would wait for
    # all of it, so a trickling body would never reach the deadline check.
    read1 = getattr(raw, "read1", None)
    while True:
        chunk = (
            read1(1 << 16, decode_content=True) if read1 else raw.read(1024, decode_content=True)
        )
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise RunPodAnswerError(
                Explained(
                    f"RunPod's answer is larger than {MAX_ANSWER_BYTES >> 20} MiB; not read",
                    "check RUNPOD_API_BASE_URL and any proxy in between",
                    response.status_code,
                )
            )
        chunks.append(chunk)
        if time.monotonic() > deadline:
            # A body trickling in byte by byte never trips the per-read timeout.
            raise requests.exceptions.ReadTimeout(f"answer still arriving after {timeout:g} s")
    return b"".join(chunks)


def post_graphql(
    query: str, api_key: str, *, timeout: float, user_agent: str, base: str | None = None
) -> Any:
    """Send ``query`` exactly as the SDK does and return the answer's ``data``.

    Bounded: connecting, each read and the whole body each within ``timeout`` seconds; an
    answer larger than :data:`MAX_ANSWER_BYTES` is refused. Raises :class:`RunPodAnswerError`
    for what RunPod answered, and requests' exceptions for what it did not.
    """
    import requests

    url = f"{base or os.environ.get('RUNPOD_API_BASE_URL', DEFAULT_API_BASE)}/graphql"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "Authorization": f"Bearer {api_key}",
    }
    deadline = time.monotonic() + timeout
    with requests.post(
        url,
        headers=headers,
        data=json.dumps({"query": query}),
        timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
        stream=True,
    ) as response:
        body = _read_body(response, deadline, timeout)
        return read_answer(response.status_code, response.headers, body, api_key)


def _explain(exc: BaseException, secret: str | None) -> Explained:
    """A failure that is not an answer from RunPod: the network, a timeout, a bad URL."""
    import requests

    if isinstance(exc, RunPodAnswerError):
        return exc.explained
    if isinstance(exc, requests.exceptions.Timeout):
        return Explained(
            f"RunPod did not answer in time: {_endpoint()}",
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
        return Explained(
            f"cannot reach RunPod at {_endpoint()} ({why})",
            "check the network, proxy or RUNPOD_API_BASE_URL",
        )
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return Explained(
            f"RUNPOD_API_BASE_URL is not a usable URL: {_endpoint()}",
            "set RUNPOD_API_BASE_URL to e.g. https://api.runpod.io, or unset it",
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return Explained(
            f"request to RunPod failed: {type(exc).__name__}",
            "check the network, proxy or RUNPOD_API_BASE_URL",
        )
    if isinstance(exc, KeyError | TypeError | IndexError | AttributeError | ValueError):
        return Explained("RunPod sent an answer of an unexpected shape", SHAPE_HINT)
    return Explained(f"{type(exc).__name__}: {_safe(exc, secret)}", None)


def explain(exc: BaseException, secret: str | None = None) -> tuple[str, str | None]:
    """One line of cause and one of fix for a failed call, the key redacted from both."""
    found = _explain(exc, secret)
    return found.message, found.hint


# ----------------------------------------------------------------------------------------------
# The provider.


@dataclass(frozen=True)
class _Sdk:
    mutations: Any
    """``runpod.api.mutations.pods``: the SDK's own mutation texts."""
    user_agent: str


STOPPED_VOLUME_USD_PER_GB_MONTH = Decimal("0.20")
"""RunPod's price of a stopped pod's volume disk, per GB and month (runpod.io/pricing, read
2025-06-05); a running pod's storage is left out, as its rate may include it."""
STOPPED_VOLUME_SOURCE = "RunPod stopped-pod volume price (bundled, $0.20/GB-month, 2025-06-05)"
HOURS_PER_MONTH = Decimal(730)


def stopped_pod_volume(pod: Instance) -> StorageItem | None:
    """The volume a stopped pod keeps (and pays for), as a disk; ``None`` for other pods."""
    details = pod.details
    if not isinstance(details, PodDetails) or not details.volume_gb:
        return None
    if pod.state not in {InstanceState.STOPPED, InstanceState.STOPPING}:
        return None
    monthly = STOPPED_VOLUME_USD_PER_GB_MONTH * details.volume_gb
    return StorageItem(
        provider=pod.provider,
        id=f"{pod.id}/volume",
        name=pod.name,
        location=pod.location,
        kind="pod-volume",
        volume_type="runpod",
        size_gb=details.volume_gb,
        attached_to=pod.id,
        attached_state=pod.state,
        rate=Rate(
            usd_per_hour=monthly / HOURS_PER_MONTH,
            source=STOPPED_VOLUME_SOURCE,
            region=pod.location,
        ),
        monthly_usd=monthly,
    )


class RunPodProvider:
    """Every pod of one RunPod account. Calls block; each is bounded by ``timeout``.

    After a 429 nothing is sent before its ``Retry-After``; after a 5xx, polls are held for a
    backoff that doubles with each further failure (up to ``backoff_cap``) and resets on the
    first success. A held call raises at once, saying when RunPod is called again.
    """

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        name: str = "runpod",
        protect_marker: str = DEFAULT_PROTECT_MARKER,
        timeout: float = DEFAULT_TIMEOUT,
        key_source: str | None = None,
        clock: Callable[[], datetime] | None = None,
        backoff: float = DEFAULT_BACKOFF_SECONDS,
        backoff_cap: float = MAX_BACKOFF_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        hub: SshHub | None = None,
        log_search: LogSearch | None = None,
        checkpoint_dirs: Sequence[str] = (),
    ) -> None:
        """``key_source`` names where the key came from, for :meth:`identity`; never the key.
        ``hub`` and ``log_search``: how a pod's logs are read over SSH (``hub``: made on first
        use when not given; ``log_search``: nowhere when not given)."""
        from runctl_tui.providers.ssh_hosts import CloudLogs

        self._name = name
        self.logs = CloudLogs(name, hub, log_search or NO_LOG_SEARCH, checkpoint_dirs)
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key.strip())
        self.protect_marker = protect_marker
        self.timeout = timeout
        self.key_source = key_source
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._in_flight = 0
        self._throttled_until = 0.0
        """Monotonic time before which nothing is sent (RunPod answered 429)."""
        self._backoff_until = 0.0
        """Monotonic time before which no poll is sent (RunPod answered 5xx)."""
        self._server_failures = 0
        self._server_status: int | None = None
        self._warnings: tuple[str, ...] = ()
        self._storage: tuple[StorageItem, ...] = ()

    @property
    def name(self) -> str:
        """Name shown in the UI."""
        return self._name

    def __repr__(self) -> str:
        """Name and timeout only: the key stays out of every debug dump."""
        return f"RunPodProvider(name={self._name!r}, timeout={self.timeout!r})"

    # -- logs, over SSH ---------------------------------------------------------------------------

    def ssh_target(self, instance: Instance) -> SshTarget:
        """Where a pod's shell is: ``root@`` its public SSH endpoint."""
        from runctl_tui.remote.ssh import parse_target

        details = pod_details(instance)
        endpoint = details.ssh_endpoint if details is not None else None
        if not endpoint:
            raise ProviderError(
                self.name,
                f"{one_line(instance.name or instance.id, 80)} has no public SSH port "
                "(expose TCP port 22 on the pod)",
            )
        try:
            return parse_target(f"{SSH_USER}@{endpoint}")
        except ValueError as exc:
            raise ProviderError(self.name, f"{one_line(instance.id, 64)}: {exc}") from None

    def hub_for(self, target: SshTarget) -> SshHub:
        """The hub that reaches pods."""
        return self.logs.hub

    async def log_locations(self, instance: Instance) -> list[LogLocation]:
        """The newest matches of the log globs in a running pod, then its recent ``*.log``
        files, over SSH in one round trip."""
        return await self.logs.locations(instance, self.ssh_target)

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """The configured checkpoint directories that exist on a running pod,
        newest-modified first, over SSH in one round trip."""
        return await self.logs.checkpoint_locations(instance, self.ssh_target)

    async def close(self) -> None:
        """Close the SSH connections logs were read through."""
        await self.logs.close()

    # -- what the rest of the app reads --------------------------------------------------------

    def actions(self, instance: Instance) -> frozenset[Action]:
        """Stop, start (resume) and terminate for a pod; nothing for any other item."""
        return POD_ACTIONS if pod_details(instance) is not None else frozenset()

    def refusal(self, action: Action, instance: Instance) -> str | None:
        """Why RunPod would not take ``action`` on the pod as it is now, or ``None``."""
        if pod_details(instance) is None or action not in POD_ACTIONS:
            return f"{action} is not something {self.name} does to this item"
        state = instance.state
        if action is Action.STOP and state is not InstanceState.RUNNING:
            return f"only a running pod can be stopped; it is {state}"
        if action is Action.START and state is not InstanceState.STOPPED:
            return f"only a stopped (exited) pod can be resumed; it is {state}"
        if action is Action.TERMINATE and state in _GONE:
            return f"already {state}"
        return None

    def losses(self, action: Action, instance: Instance) -> list[str]:
        """What stopping or terminating a pod loses, from the sizes shown."""
        details = pod_details(instance)
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
        """Every pod of the account, freshly described, with per-GPU utilisation."""
        data = self._call("list", lambda sdk: PODS_QUERY)
        pods = _mapping(data.get("myself")).get("pods")
        if not isinstance(pods, list):
            raise ProviderError(
                self.name, "RunPod sent an answer of an unexpected shape", hint=SHAPE_HINT
            )
        instances: list[Instance] = []
        skipped = 0
        now = self._clock()
        for raw in pods:
            try:
                instances.append(self._build(raw, now))
            except ValueError:
                skipped += 1
        self._warnings = (
            (f"skipped {skipped} pod(s) RunPod described without an id",) if skipped else ()
        )
        self._storage = tuple(v for i in instances if (v := stopped_pod_volume(i)) is not None)
        return instances

    def storage(self) -> tuple[StorageItem, ...]:
        """The volumes of the stopped pods the last :meth:`list_instances` found: billed
        while the pod exists, at RunPod's price for a stopped pod's volume."""
        return self._storage

    def describe(self, instance: Instance) -> Instance:
        """The pod as RunPod describes it now; :class:`NotFoundError` once it is gone."""
        pod_id = self._checked_id(instance.id)
        data = self._call("describe", lambda sdk: pod_query(pod_id), pod_id=pod_id)
        raw = data.get("pod")
        if raw is None:
            raise NotFoundError(self.name, f"{one_line(pod_id, 64)} no longer exists")
        try:
            return self._build(raw, self._clock())
        except ValueError:
            raise ProviderError(
                self.name, "RunPod sent an answer of an unexpected shape", hint=SHAPE_HINT
            ) from None

    def perform(self, action: Action, instance: Instance) -> InstanceState:
        """Stop, resume or terminate; returns the state RunPod reports right after."""
        if action is Action.STOP:
            return self.stop(instance)
        if action is Action.START:
            return self.start(instance)
        if action is Action.TERMINATE:
            return self.terminate(instance)
        raise ProviderError(self.name, f"{action} is not something {self.name} does")

    def stop(self, instance: Instance) -> InstanceState:
        """Stop the pod (``podStop``): the container disk is wiped, the volume kept."""
        pod_id = self._checked_id(instance.id)
        data = self._call(
            "stop", lambda sdk: sdk.mutations.generate_pod_stop_mutation(pod_id), pod_id=pod_id
        )
        return self._state_after(data.get("podStop"), InstanceState.STOPPED)

    def start(self, instance: Instance) -> InstanceState:
        """Resume the pod (``podResume``) with as many GPUs as RunPod says it has now."""
        pod_id = self._checked_id(instance.id)
        # Asked afresh: a pod described sparsely would otherwise resume with no GPU at all.
        details = pod_details(self.describe(instance))
        count = details.gpu_count if details is not None else 0
        data = self._call(
            "start",
            lambda sdk: sdk.mutations.generate_pod_resume_mutation(pod_id, count),
            pod_id=pod_id,
        )
        return self._state_after(data.get("podResume"), InstanceState.RUNNING)

    def terminate(self, instance: Instance) -> InstanceState:
        """Terminate the pod (``podTerminate``): its volume is deleted with it."""
        pod_id = self._checked_id(instance.id)
        self._call(
            "terminate",
            lambda sdk: sdk.mutations.generate_pod_terminate_mutation(pod_id),
            pod_id=pod_id,
        )
        return InstanceState.TERMINATED

    # -- helpers -------------------------------------------------------------------------------

    def _secret(self) -> str:
        return self._api_key.get_secret_value()

    def _build(self, raw: Any, now: datetime) -> Instance:
        return pod_from_api(raw, provider=self.name, protect_marker=self.protect_marker, now=now)

    def _checked_id(self, pod_id: str) -> str:
        if not _POD_ID.fullmatch(pod_id):
            raise ProviderError(
                self.name,
                f"refusing {one_line(pod_id, 40)!r}: not a RunPod pod id",
                hint="refresh the list and pick the pod again",
            )
        return pod_id

    def _state_after(self, answer: Any, expected: InstanceState) -> InstanceState:
        status = _mapping(answer).get("desiredStatus")
        return _STATES.get(str(status).upper(), expected) if status else expected

    def _sdk(self) -> _Sdk:
        try:
            import_sdk("requests", "runpod", "runpod.user_agent", "runpod.api.mutations.pods")
            from runpod.api.mutations import pods as mutations
            from runpod.user_agent import USER_AGENT
        except ImportError:
            raise NotConfiguredError(
                self.name,
                "the runpod package is not installed",
                hint="pip install runpod (it comes with runctl-tui)",
            ) from None
        return _Sdk(mutations, str(USER_AGENT))

    def _call(
        self, what: str, build: Callable[[_Sdk], str], *, pod_id: str | None = None
    ) -> Mapping[str, Any]:
        """Send the query ``build`` writes on its own thread; wait at most ``timeout`` seconds."""
        if not self._secret():
            raise NotConfiguredError(self.name, NOT_CONFIGURED, hint=SET_UP_HINT)
        self._check_held(poll=what == "list")
        # Imported here, before the clock starts: the 2 s import is not the API being slow.
        sdk = self._sdk()
        query = build(sdk)
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                raise ProviderError(
                    self.name,
                    f"{self._in_flight} earlier RunPod calls are still waiting for an answer",
                    hint="check the network or RUNPOD_API_BASE_URL; retried on the next poll",
                )
            self._in_flight += 1
        secret, timeout = self._secret(), self.timeout

        def run() -> Any:
            try:
                # A little longer than the caller waits: the caller's deadline decides what is
                # reported, and this one only ends an abandoned thread.
                return post_graphql(
                    query, secret, timeout=timeout + THREAD_GRACE, user_agent=sdk.user_agent
                )
            finally:
                with self._lock:
                    self._in_flight -= 1

        future = submit(run, name=f"runpod-{what}")
        started = time.monotonic()
        error: ProviderError
        try:
            data: Mapping[str, Any] = future.result(timeout=timeout)
        except FutureTimeout:
            hint = (
                "check the network or RUNPOD_API_BASE_URL; retried on the next poll"
                if pod_id is None
                else "it may still take effect: refresh before trying again"
            )
            error = ProviderError(
                self.name, f"RunPod did not answer within {timeout:g} s", hint=hint
            )
        except Exception as exc:
            error = self._failed(_explain(exc, secret), pod_id)
        else:
            with self._lock:
                self._server_failures = 0
                self._backoff_until = 0.0
            return data
        # Raised outside the handler: the error shown carries no exception (and no frame that
        # held the key) along with it.
        log.warning(
            "%s: %s failed after %.1f s: %s", self.name, what, time.monotonic() - started, error
        )
        raise error

    def _check_held(self, *, poll: bool) -> None:
        now = self._monotonic()
        with self._lock:
            throttled = self._throttled_until - now
            backing_off = self._backoff_until - now if poll else 0.0
            status = self._server_status
        if throttled > 0:
            raise RunPodThrottledError(
                self.name,
                f"rate limited; retrying in {math.ceil(throttled)} s",
                hint="waiting as RunPod asked (HTTP 429, Retry-After)",
                retry_after=throttled,
            )
        if backing_off > 0:
            raise RunPodRetryLaterError(
                self.name,
                f"RunPod's API failed (HTTP {status}); retrying in {math.ceil(backing_off)} s",
                hint="backing off after server errors; see status.runpod.io if it persists",
                retry_after=backing_off,
            )

    def _failed(self, found: Explained, pod_id: str | None) -> ProviderError:
        status = found.status
        if status == 429 and found.retry_after is not None:
            with self._lock:
                self._throttled_until = self._monotonic() + found.retry_after
            return RunPodThrottledError(
                self.name, found.message, hint=found.hint or "", retry_after=found.retry_after
            )
        if status is not None and status >= 500:
            with self._lock:
                self._server_failures += 1
                wait = min(self.backoff * 2 ** (self._server_failures - 1), self.backoff_cap)
                wait = max(wait, found.retry_after or 0.0)
                self._backoff_until = self._monotonic() + wait
                self._server_status = status
            return RunPodRetryLaterError(
                self.name,
                found.message,
                hint=f"next poll in {math.ceil(wait)} s; {found.hint}",
                retry_after=wait,
            )
        if found.not_found and pod_id is not None:
            return NotFoundError(self.name, f"{one_line(pod_id, 64)} no longer exists")
        return ProviderError(self.name, found.message, hint=found.hint)


def from_settings(settings: Settings) -> list[RunPodProvider]:
    """The ``runpod`` provider as the ``[runpod]`` table configures it (no I/O until polled).

    The key is read from the variable the table names, or runpodctl's config file, never from
    our own config. Without one the provider says it is not configured, and how to set it up.
    """
    from runctl_tui.providers.ssh_hosts import shared_hub

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
            hub=shared_hub(settings),
            log_search=settings.logs.search(table.logs),
            checkpoint_dirs=settings.checkpoints.dirs_for(table.checkpoints),
        )
    ]
