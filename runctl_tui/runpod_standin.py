"""A local stand-in of the RunPod GraphQL API, for tests and the demo.

It answers, on 127.0.0.1, the requests the runpod SDK (1.12) sends for pods: ``POST
{RUNPOD_API_BASE_URL}/graphql`` with ``Authorization: Bearer <key>`` (``?api_key=`` is accepted
too, as older clients and the RunPod docs use it) and a JSON body ``{"query": "..."}`` holding
``myself { pods {...} }``, ``pod(input: {podId})``, ``podStop``, ``podResume`` (with
``gpuCount``) or ``podTerminate``; pods also answer the ``runtime { uptimeInSeconds gpus { id
gpuUtilPercent memoryUtilPercent } }`` the provider's own queries select. The query text is
parsed and each answer carries only the fields selected, as a GraphQL server does; anything
else gets a GraphQL ``errors`` body.

Faults (401, 429 with Retry-After, 500, a GraphQL error, malformed JSON, a slow answer, an
answer that trickles in byte by byte) are injected per test with :meth:`RunPodStandIn.inject`;
a fault's ``status`` and ``body`` can be overridden (e.g. a 503, or a 429 with a JSON body).
Only the standard library is used, so starting it costs nothing at import time.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_API_KEY = "rp-standin-0123456789abcdef"
MAX_DELAY = 30.0
"""No injected delay holds a request longer than this."""
MAX_BODY = 1 << 20
SERVER_ERROR_PAGE = b"<html><body><h1>500 Internal Server Error</h1></body></html>"
MALFORMED_BODY = b'{"data": {"myself": {"pods": [{"id": "truncated-answer", "name": '
GENERIC_GRAPHQL_ERROR = "Something went wrong. Please try again later or contact support."
_TRICKLE_HEADER = "X-Stand-In-Trickle"
"""Internal: tells the handler to send the body slowly; never sent to the client."""

POD_FIELDS = frozenset(
    {
        "id",
        "name",
        "containerDiskInGb",
        "costPerHr",
        "adjustedCostPerHr",
        "desiredStatus",
        "dockerArgs",
        "dockerId",
        "env",
        "gpuCount",
        "imageName",
        "lastStatusChange",
        "machineId",
        "memoryInGb",
        "podType",
        "port",
        "ports",
        "uptimeSeconds",
        "vcpuCount",
        "volumeInGb",
        "volumeMountPath",
        "runtime",
        "machine",
    }
)
"""The Pod fields a query may select; selecting another is a GraphQL validation error."""


class FaultKind(StrEnum):
    """A way the stand-in misbehaves on purpose."""

    UNAUTHORIZED = "unauthorized"
    """401, as for a revoked key."""
    THROTTLED = "throttled"
    """429 with a ``Retry-After`` header and a plain-text body."""
    SERVER_ERROR = "server-error"
    """500 with an HTML page, as a gateway in front of the API sends."""
    GRAPHQL_ERROR = "graphql-error"
    """200 with a GraphQL ``errors`` body."""
    MALFORMED = "malformed"
    """200 with a body that is cut off in the middle of the JSON."""
    SLOW = "slow"
    """The normal answer, after ``delay`` seconds."""
    TRICKLE = "trickle"
    """The normal answer's headers at once, then its body one byte every ``delay`` seconds."""


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour and which requests it hits."""

    kind: FaultKind
    times: int | None = None
    """How many requests it hits; ``None``: every request until :meth:`RunPodStandIn.clear`."""
    operations: frozenset[str] = frozenset()
    """Root fields it applies to (``myself``, ``pod``, ``podStop``...); empty: every request."""
    retry_after: str | None = "7"
    """The ``Retry-After`` header of a 429, sent as given (seconds or an HTTP date)."""
    delay: float = 5.0
    """Seconds a slow answer waits, at most :data:`MAX_DELAY`."""
    message: str = GENERIC_GRAPHQL_ERROR
    """The ``errors[0].message`` of a GraphQL error."""
    status: int | None = None
    """Sent instead of the kind's own status (e.g. 503 for a server error)."""
    body: bytes | None = None
    """Sent instead of the kind's own body (e.g. a JSON body on a 429)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Sent on top of the kind's own headers (e.g. a ``Retry-After`` on a 503)."""


@dataclass(frozen=True)
class Call:
    """One request as the stand-in received it (never the key itself)."""

    method: str
    path: str
    operation: str
    """``query`` or ``mutation``; empty when the body could not be parsed."""
    fields: tuple[str, ...]
    """Root fields the operation selected, e.g. ``("podResume",)``."""
    arguments: dict[str, Any]
    """The ``input`` argument of the first root field, e.g. ``{"podId": "...", "gpuCount": 2}``."""
    auth: str
    """How the key came: ``bearer``, ``query`` (``?api_key=``) or ``none``."""
    authorized: bool
    user_agent: str
    content_type: str
    status: int = 0


class GraphQLError(Exception):
    """A request the stand-in answers with a GraphQL ``errors`` body."""


# ----------------------------------------------------------------------------------------------
# A small GraphQL reader: enough of the language for the documents the SDK sends.

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,]+|\#[^\n]*)
    |(?P<punct>\.\.\.|[{}()\[\]:!$=@])
    |(?P<string>"(?:[^"\\\n]|\\.)*")
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Selection:
    """One field of a selection set, with its arguments and sub-selection."""

    name: str
    alias: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    selections: tuple[Selection, ...] | None = None

    @property
    def key(self) -> str:
        """The name the answer uses for this field."""
        return self.alias or self.name


@dataclass(frozen=True)
class Operation:
    """A parsed GraphQL document holding one operation."""

    kind: str
    """``query`` or ``mutation``."""
    name: str | None
    selections: tuple[Selection, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise GraphQLError(f'Syntax Error: Unexpected character "{text[position]}".')
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "skip":
            found.append((kind, match.group()))
    return found


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        got_kind, got = self.peek()
        if (value is not None and got != value) or (kind is not None and got_kind != kind):
            wanted = value or kind
            shown = got or "<EOF>"
            raise GraphQLError(f'Syntax Error: Expected "{wanted}", found "{shown}".')
        self.at += 1
        return got

    def document(self) -> Operation:
        kind, value = self.peek()
        operation, name = "query", None
        if kind == "name" and value in {"query", "mutation", "subscription"}:
            operation = self.take()
            if self.peek()[0] == "name":
                name = self.take()
            if self.peek()[1] == "(":
                raise GraphQLError("Variables are not supported by this stand-in.")
        selections = self.selection_set()
        if self.peek()[0] != "end":
            raise GraphQLError("This stand-in answers one operation per request.")
        if operation == "subscription":
            raise GraphQLError("Subscriptions are not supported.")
        return Operation(operation, name, selections)

    def selection_set(self) -> tuple[Selection, ...]:
        self.take("{")
        found: list[Selection] = []
        while self.peek()[1] != "}":
            if self.peek()[0] == "end":
                raise GraphQLError('Syntax Error: Expected "}", found "<EOF>".')
            found.append(self.selection())
        self.take("}")
        if not found:
            raise GraphQLError('Syntax Error: Expected Name, found "}".')
        return tuple(found)

    def selection(self) -> Selection:
        if self.peek()[1] == "...":
            raise GraphQLError("Fragments are not supported by this stand-in.")
        name = self.take(kind="name")
        alias = None
        if self.peek()[1] == ":":
            self.take(":")
            alias, name = name, self.take(kind="name")
        arguments: dict[str, Any] = {}
        if self.peek()[1] == "(":
            self.take("(")
            while self.peek()[1] != ")":
                key = self.take(kind="name")
                self.take(":")
                arguments[key] = self.value()
            self.take(")")
        selections = self.selection_set() if self.peek()[1] == "{" else None
        return Selection(name, alias, arguments, selections)

    def value(self) -> Any:
        kind, token = self.peek()
        if kind == "string":
            self.take()
            return json.loads(token)
        if kind == "number":
            self.take()
            return float(token) if any(c in token for c in ".eE") else int(token)
        if token == "{":
            self.take("{")
            entries: dict[str, Any] = {}
            while self.peek()[1] != "}":
                key = self.take(kind="name")
                self.take(":")
                entries[key] = self.value()
            self.take("}")
            return entries
        if token == "[":
            self.take("[")
            items: list[Any] = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        if token == "$":
            raise GraphQLError("Variables are not supported by this stand-in.")
        if kind == "name":
            self.take()
            return {"true": True, "false": False, "null": None}.get(token, token)
        raise GraphQLError(f'Syntax Error: Unexpected "{token or "<EOF>"}".')


def parse_operation(text: str) -> Operation:
    """Parse a GraphQL document of one query or mutation; raises :class:`GraphQLError`."""
    return _Reader(text).document()


_CHILD_TYPES = {
    "pods": "Pod",
    "runtime": "PodRuntime",
    "machine": "PodMachine",
    "ports": "PodRuntimePorts",
    "gpus": "PodRuntimeGpus",
    "container": "PodRuntimeContainer",
}


def project(value: Any, selections: tuple[Selection, ...] | None, type_name: str) -> Any:
    """Keep only the selected fields of ``value``, as a GraphQL server answers."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, selections, type_name) for item in value]
    if isinstance(value, dict):
        if selections is None:
            raise GraphQLError(f'Field of type "{type_name}" must have a selection of subfields.')
        answer: dict[str, Any] = {}
        for selection in selections:
            if selection.name == "__typename":
                answer[selection.key] = type_name
                continue
            if selection.name not in value:
                raise GraphQLError(f'Cannot query field "{selection.name}" on type "{type_name}".')
            child = _CHILD_TYPES.get(selection.name) or f"{type_name}{selection.name.title()}"
            answer[selection.key] = project(value[selection.name], selection.selections, child)
        return answer
    if selections is not None:
        raise GraphQLError(f'Field of type "{type_name}" must not have a selection of subfields.')
    return value


# ----------------------------------------------------------------------------------------------
# Pods as the API describes them.


def status_date(moment: datetime) -> str:
    """A timestamp as RunPod writes it into ``lastStatusChange`` (JavaScript's Date string)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


def make_pod(
    pod_id: str,
    name: str,
    *,
    gpu: str | None = "RTX 4090",
    gpu_count: int = 1,
    cost_per_hr: float = 0.69,
    status: str = "RUNNING",
    interruptible: bool = False,
    uptime_seconds: int = 3600,
    ssh: tuple[str, int] | None = ("194.68.245.20", 22034),
    image: str = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
    volume_gb: int = 50,
    container_disk_gb: int = 20,
    memory_gb: int = 62,
    vcpu_count: int = 16,
    last_status_change: str | None = None,
    gpu_util: Sequence[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """A pod with every field the API has, shaped as RunPod returns it.

    ``gpu_util`` gives (utilisation %, memory %) per GPU while running; ``ssh`` the public
    ip and port mapped to the pod's port 22 (``None``: no public SSH).
    """
    running = status == "RUNNING"
    reason = last_status_change or (
        f"Rented by User: {status_date(datetime.now(UTC))}"
        if running
        else f"Exited by user: {status_date(datetime.now(UTC))}"
    )
    machine_id = f"m{zlib.crc32(pod_id.encode()):010d}"
    ports: list[dict[str, Any]] = [
        {
            "ip": "100.65.14.7",
            "isIpPublic": False,
            "privatePort": 8888,
            "publicPort": 60123,
            "type": "http",
        }
    ]
    if ssh is not None:
        ports.insert(
            0,
            {
                "ip": ssh[0],
                "isIpPublic": True,
                "privatePort": 22,
                "publicPort": ssh[1],
                "type": "tcp",
            },
        )
    usage = list(gpu_util) if gpu_util is not None else [(87, 71)] * gpu_count
    runtime = {
        "uptimeInSeconds": uptime_seconds,
        "ports": ports,
        "gpus": [
            {"id": f"GPU-{pod_id}-{index}", "gpuUtilPercent": util, "memoryUtilPercent": memory}
            for index, (util, memory) in enumerate(usage)
        ],
        "container": {"cpuPercent": 12, "memoryPercent": 34},
    }
    return {
        "id": pod_id,
        "name": name,
        "containerDiskInGb": container_disk_gb,
        "costPerHr": cost_per_hr,
        "adjustedCostPerHr": cost_per_hr,
        "desiredStatus": status,
        "dockerArgs": "",
        "dockerId": None,
        "env": ["JUPYTER_PASSWORD=stand-in"],
        "gpuCount": gpu_count,
        "imageName": image,
        "lastStatusChange": reason,
        "machineId": machine_id,
        "memoryInGb": memory_gb,
        "podType": "INTERRUPTABLE" if interruptible else "RESERVED",
        "port": None,
        "ports": "8888/http,22/tcp",
        "uptimeSeconds": uptime_seconds if running else 0,
        "vcpuCount": vcpu_count,
        "volumeInGb": volume_gb,
        "volumeMountPath": "/workspace",
        "runtime": runtime if running else None,
        "machine": {"gpuDisplayName": gpu, "podHostId": f"{pod_id}-64410a1b"},
    }


def demo_pods() -> list[dict[str, Any]]:
    """A small, realistic fleet: on-demand and spot, running and stopped, one protected."""
    return [
        make_pod(
            "x7k2m9q4w1e8r3",
            "llama3-8b-sft",
            gpu="RTX 4090",
            gpu_count=2,
            cost_per_hr=1.38,
            uptime_seconds=5 * 3600 + 17 * 60,
            gpu_util=[(94, 81), (91, 79)],
        ),
        make_pod(
            "p3n8v5c2z6t1y9",
            "[protect] pretrain-1b",
            gpu="H100 80GB HBM3",
            gpu_count=8,
            cost_per_hr=21.52,
            uptime_seconds=2 * 86400 + 3 * 3600,
            ssh=("213.173.109.81", 14022),
            volume_gb=500,
            container_disk_gb=100,
            memory_gb=1000,
            vcpu_count=128,
        ),
        make_pod(
            "s4d7f1g8h2j5k0",
            "sdxl-lora-sweep",
            gpu="RTX A6000",
            cost_per_hr=0.39,
            interruptible=True,
            uptime_seconds=47 * 60,
            ssh=("38.147.83.12", 41022),
            # Its sweep ended; the GPU sits idle with the model still loaded.
            gpu_util=[(0, 40)],
        ),
        make_pod(
            "b9v3c6x1z4a7s2",
            "whisper-eval",
            gpu="RTX A5000",
            cost_per_hr=0.16,
            interruptible=True,
            status="EXITED",
            last_status_change="Outbid: your spot bid of $0.160/hr was outbid",
        ),
        make_pod(
            "e5r8t2y6u9i3o1",
            "dataset-prep",
            gpu="A40",
            cost_per_hr=0.44,
            status="EXITED",
        ),
    ]


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None


@dataclass
class _Pod:
    data: dict[str, Any]
    started_at: float | None
    """``time.time()`` at which the pod's uptime began, while it runs."""
    stopped_runtime: dict[str, Any] | None = None
    """The runtime to bring back on resume (RunPod keeps the port mappings of a pod)."""

    def view(self, now: float) -> dict[str, Any]:
        data = copy.deepcopy(self.data)
        if self.started_at is not None:
            uptime = max(int(now - self.started_at), 0)
            data["uptimeSeconds"] = uptime
            if isinstance(data.get("runtime"), dict):
                data["runtime"]["uptimeInSeconds"] = uptime
        return data


def _pod_record(data: Mapping[str, Any], now: float) -> _Pod:
    pod = copy.deepcopy(dict(data))
    if not isinstance(pod.get("id"), str) or not pod["id"]:
        raise ValueError("a stand-in pod needs a non-empty string id")
    for name in POD_FIELDS:
        pod.setdefault(name, None)
    running = pod.get("desiredStatus") == "RUNNING" and pod.get("runtime") is not None
    uptime = pod.get("uptimeSeconds") or (pod.get("runtime") or {}).get("uptimeInSeconds") or 0
    return _Pod(pod, now - float(uptime) if running else None)


# ----------------------------------------------------------------------------------------------
# The server.


class RunPodStandIn:
    """The RunPod GraphQL API for pods, served from memory on 127.0.0.1.

    Point the SDK at it with ``RUNPOD_API_BASE_URL=stand_in.url`` (the SDK appends
    ``/graphql``) and ``runpod.api_key = stand_in.api_key``. Thread-safe; it stops itself after
    ``lifetime`` seconds even if nobody calls :meth:`stop`.
    """

    def __init__(
        self,
        pods: Iterable[Mapping[str, Any]] | None = None,
        *,
        api_key: str = DEFAULT_API_KEY,
        lifetime: float | None = 600.0,
    ) -> None:
        """``pods`` defaults to :func:`demo_pods`; ``lifetime=None`` serves until stopped."""
        self.api_key = api_key
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        now = time.time()
        records = [_pod_record(p, now) for p in (demo_pods() if pods is None else pods)]
        self._pods: dict[str, _Pod] = {p.data["id"]: p for p in records}
        self._faults: list[_Armed] = []
        """Injected faults in order; the first that matches a request answers it."""
        self._calls: list[Call] = []
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None
        self.url = ""

    def __enter__(self) -> RunPodStandIn:
        """Start serving for the ``with`` block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self.stop()

    def start(self) -> RunPodStandIn:
        """Listen on a free port of 127.0.0.1; :attr:`url` is the base URL to give the SDK."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.stand_in = self  # type: ignore[attr-defined]
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="runpod-stand-in", daemon=True).start()
        if self.lifetime is not None:
            self._timer = threading.Timer(self.lifetime, self.stop)
            self._timer.daemon = True
            self._timer.start()
        return self

    def stop(self) -> None:
        """Release delayed answers and stop listening (idempotent)."""
        self._stopping.set()
        with self._lock:
            server, self._server = self._server, None
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def running(self) -> bool:
        """Whether it still listens."""
        return self._server is not None

    # -- state, for tests and the demo ---------------------------------------------------------

    def pods(self) -> dict[str, dict[str, Any]]:
        """Every pod by id, as the API would describe it now (a copy)."""
        now = time.time()
        with self._lock:
            return {pod_id: pod.view(now) for pod_id, pod in self._pods.items()}

    def add_pod(self, pod: Mapping[str, Any]) -> None:
        """Add or replace a pod (see :func:`make_pod`)."""
        record = _pod_record(pod, time.time())
        with self._lock:
            self._pods[record.data["id"]] = record

    def interrupt(self, pod_id: str, reason: str = "Outbid") -> None:
        """Take a running spot pod away, as RunPod does when it is outbid or reclaimed."""
        with self._lock:
            pod = self._pods[pod_id]
            self._exit(pod, f"{reason}: {status_date(datetime.now(UTC))}")

    def calls(self) -> list[Call]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._calls)

    def inject(self, kind: FaultKind | Fault, **options: Any) -> Fault:
        """Misbehave from now on: ``inject(FaultKind.THROTTLED, retry_after="3", times=1)``."""
        fault = kind if isinstance(kind, Fault) else Fault(kind, **options)
        if fault.kind in {FaultKind.SLOW, FaultKind.TRICKLE} and not 0 <= fault.delay <= MAX_DELAY:
            raise ValueError(f"a slow answer waits between 0 and {MAX_DELAY:g} s")
        with self._lock:
            self._faults.append(_Armed(fault, fault.times))
        return fault

    def clear(self) -> None:
        """Drop every injected fault."""
        with self._lock:
            self._faults.clear()

    # -- answering -----------------------------------------------------------------------------

    def _fault_for(self, fields: Sequence[str]) -> Fault | None:
        with self._lock:
            for armed in self._faults:
                if armed.fault.operations and not armed.fault.operations & set(fields):
                    continue
                if armed.remaining is not None:
                    if armed.remaining <= 0:
                        continue
                    armed.remaining -= 1
                return armed.fault
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def answer(
        self, path: str, headers: Mapping[str, str], body: bytes, method: str = "POST"
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one HTTP request (the handler's whole job)."""
        headers = {name.lower(): value for name, value in headers.items()}
        parts = urlsplit(path)
        query_key = (parse_qs(parts.query).get("api_key") or [""])[0]
        bearer = headers.get("authorization", "")
        if bearer.startswith("Bearer "):
            auth, given = "bearer", bearer.removeprefix("Bearer ")
        elif query_key:
            auth, given = "query", query_key
        else:
            auth, given = "none", ""
        authorized = bool(given) and given == self.api_key

        operation: Operation | None = None
        problem: str | None = None
        if method != "POST":
            problem = "method"
        elif parts.path.rstrip("/") != "/graphql":
            problem = "path"
        else:
            try:
                document = json.loads(body.decode("utf-8"))
                query = document.get("query") if isinstance(document, dict) else None
                if not isinstance(query, str):
                    raise GraphQLError("Must provide query string.")
                operation = parse_operation(query)
            except (ValueError, UnicodeDecodeError):
                problem = "POST body sent invalid JSON."
            except GraphQLError as exc:
                problem = str(exc)

        fields = tuple(s.name for s in operation.selections) if operation else ()
        first = operation.selections[0] if operation else None
        arguments = dict(first.arguments.get("input") or {}) if first else {}
        call = Call(
            method=method,
            path=parts.path,
            operation=operation.kind if operation else "",
            fields=fields,
            arguments=arguments,
            auth=auth,
            authorized=authorized,
            user_agent=headers.get("user-agent", ""),
            content_type=headers.get("content-type", ""),
        )
        status, extra, data = self._respond(operation, problem, authorized, fields)
        self._record(replace(call, status=status))
        return status, extra, data

    def _respond(
        self,
        operation: Operation | None,
        problem: str | None,
        authorized: bool,
        fields: Sequence[str],
    ) -> tuple[int, dict[str, str], bytes]:
        if problem == "method":
            return 405, {"Allow": "POST"}, _errors("Only POST is supported.")
        if problem == "path":
            return 404, {}, b'{"error": "not found"}'
        if not authorized:
            return 401, {}, b"401 Unauthorized"
        fault = self._fault_for(fields)
        trickle: dict[str, str] = {}
        if fault is not None and fault.kind is FaultKind.SLOW:
            self._stopping.wait(min(max(fault.delay, 0.0), MAX_DELAY))
            fault = None
        elif fault is not None and fault.kind is FaultKind.TRICKLE:
            trickle = {_TRICKLE_HEADER: str(fault.delay)}
            fault = None
        if fault is not None:
            status, headers, body = _faulty(fault)
            headers.update(fault.headers)
            return fault.status or status, headers, body if fault.body is None else fault.body
        if problem is not None or operation is None:
            return 400, {}, _errors(problem or "Must provide query string.")
        try:
            data = self._execute(operation)
        except GraphQLError as exc:
            return 200, trickle, _errors(str(exc), path=list(fields[:1]))
        return 200, trickle, json.dumps({"data": data}).encode()

    def _execute(self, operation: Operation) -> dict[str, Any]:
        now = time.time()
        answer: dict[str, Any] = {}
        with self._lock:
            for selection in operation.selections:
                if operation.kind == "query":
                    value, type_name = self._query_field(selection, now)
                else:
                    value, type_name = self._mutation_field(selection, now)
                answer[selection.key] = project(value, selection.selections, type_name)
        return answer

    def _query_field(self, selection: Selection, now: float) -> tuple[Any, str]:
        if selection.name == "myself":
            pods = [pod.view(now) for pod in self._pods.values()]
            return {"id": "user_2stand1n", "email": "ml@example.com", "pods": pods}, "User"
        if selection.name == "pod":
            pod = self._pods.get(_pod_id(selection))
            return (pod.view(now) if pod else None), "Pod"
        raise GraphQLError(f'Cannot query field "{selection.name}" on type "Query".')

    def _mutation_field(self, selection: Selection, now: float) -> tuple[Any, str]:
        name = selection.name
        if name not in {"podStop", "podResume", "podTerminate"}:
            raise GraphQLError(f'Cannot query field "{name}" on type "Mutation".')
        pod_id = _pod_id(selection)
        pod = self._pods.get(pod_id)
        if pod is None:
            raise GraphQLError("Pod not found.")
        if name == "podTerminate":
            if selection.selections is not None:
                raise GraphQLError('Field "podTerminate" must not have a selection of subfields.')
            del self._pods[pod_id]
            return None, "Void"
        if name == "podStop":
            self._exit(pod, f"Exited by user: {status_date(datetime.now(UTC))}")
            return pod.view(now), "Pod"
        count = (selection.arguments.get("input") or {}).get("gpuCount")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise GraphQLError(
                'Field "PodResumeInput.gpuCount" of required type "Int!" was not provided.'
            )
        if pod.data.get("desiredStatus") == "RUNNING":
            raise GraphQLError("Pod is already running.")
        pod.data["gpuCount"] = count
        pod.data["desiredStatus"] = "RUNNING"
        pod.data["lastStatusChange"] = f"Resumed by user: {status_date(datetime.now(UTC))}"
        runtime = pod.stopped_runtime or {"uptimeInSeconds": 0, "ports": [], "gpus": []}
        gpus = [
            {"id": f"GPU-{pod_id}-{index}", "gpuUtilPercent": 0, "memoryUtilPercent": 0}
            for index in range(count)
        ]
        pod.data["runtime"] = {**runtime, "uptimeInSeconds": 0, "gpus": gpus}
        pod.started_at = now
        return pod.view(now), "Pod"

    @staticmethod
    def _exit(pod: _Pod, reason: str) -> None:
        if pod.data.get("runtime") is not None:
            pod.stopped_runtime = copy.deepcopy(pod.data["runtime"])
        pod.data["desiredStatus"] = "EXITED"
        pod.data["lastStatusChange"] = reason
        pod.data["runtime"] = None
        pod.data["uptimeSeconds"] = 0
        pod.started_at = None


def _pod_id(selection: Selection) -> str:
    given = selection.arguments.get("input")
    pod_id = given.get("podId") if isinstance(given, dict) else None
    if not isinstance(pod_id, str):
        raise GraphQLError(f'Field "{selection.name}" argument "input" needs a podId.')
    return pod_id


def _errors(message: str, path: list[str] | None = None) -> bytes:
    error: dict[str, Any] = {"message": message}
    if path:
        error["path"] = path
        error["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return json.dumps({"errors": [error], "data": None}).encode()


def _faulty(fault: Fault) -> tuple[int, dict[str, str], bytes]:
    if fault.kind is FaultKind.UNAUTHORIZED:
        return 401, {}, b"401 Unauthorized"
    if fault.kind is FaultKind.THROTTLED:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return 429, {**headers, "Content-Type": "text/plain"}, b"Too Many Requests"
    if fault.kind is FaultKind.SERVER_ERROR:
        return 500, {"Content-Type": "text/html"}, SERVER_ERROR_PAGE
    if fault.kind is FaultKind.MALFORMED:
        return 200, {}, MALFORMED_BODY
    return 200, {}, _errors(fault.message, path=list(fault.operations)[:1] or None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RunPodStandIn/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request line could hold ``?api_key=...``."""

    def do_POST(self) -> None:
        """Answer a GraphQL request."""
        self._handle("POST")

    def do_GET(self) -> None:
        """GraphQL over GET is not what the SDK sends: 405."""
        self._handle("GET")

    def _handle(self, method: str) -> None:
        stand_in: RunPodStandIn = self.server.stand_in  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {}, b"request too large")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = {name: value for name, value in self.headers.items()}
        status, extra, data = stand_in.answer(self.path, headers, body, method)
        trickle = extra.pop(_TRICKLE_HEADER, None)
        self._send(status, extra, data, None if trickle is None else float(trickle))

    def _send(
        self, status: int, headers: Mapping[str, str], data: bytes, trickle: float | None = None
    ) -> None:
        self.send_response(status)
        if "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if trickle is None:
            self.wfile.write(data)
            return
        stand_in: RunPodStandIn = self.server.stand_in  # type: ignore[attr-defined]
        self.close_connection = True
        try:
            for index in range(len(data)):
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                if stand_in._stopping.wait(trickle):
                    return
        except OSError:
            # The client gave up on the answer: what a trickle is there to provoke.
            return
