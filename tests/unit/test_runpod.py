"""RunPod pods as data, the API key's discovery, and the stand-in's GraphQL reading: no network."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runctl_tui.models import (
    Action,
    GpuSpec,
    GpuUsage,
    Instance,
    InstanceState,
    OtherDetails,
    PodDetails,
)
from runctl_tui.providers.base import NamesLosses, Provider
from runctl_tui.providers.runpod import (
    PODS_QUERY,
    Explained,
    RunPodAnswerError,
    RunPodProvider,
    api_key_from_environment,
    find_api_key,
    pod_from_api,
    pod_query,
    pod_state,
    read_answer,
    redact,
    retry_after_seconds,
)
from runctl_tui.runpod_standin import (
    RunPodStandIn,
    make_pod,
    parse_operation,
)

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
SECRET = "rpa_UNITTESTSECRET0123456789ABCDEFGHIJ"

RUNNING_POD: dict[str, Any] = {
    # Shaped as the list query's answer, before per-GPU telemetry is added.
    "id": "x7k2m9q4w1e8r3",
    "containerDiskInGb": 20,
    "costPerHr": 0.69,
    "desiredStatus": "RUNNING",
    "dockerArgs": "",
    "dockerId": None,
    "env": ["JUPYTER_PASSWORD=abc"],
    "gpuCount": 2,
    "imageName": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
    "lastStatusChange": (
        "Rented by User: Fri Mar 14 2025 06:00:00 GMT+0000 (Coordinated Universal Time)"
    ),
    "machineId": "m0123456789",
    "memoryInGb": 62,
    "name": "llama3-8b-sft",
    "podType": "RESERVED",
    "port": None,
    "ports": "8888/http,22/tcp",
    "uptimeSeconds": 3 * 3600 + 5,
    "vcpuCount": 16,
    "volumeInGb": 50,
    "volumeMountPath": "/workspace",
    "runtime": {
        "ports": [
            {
                "ip": "100.65.14.7",
                "isIpPublic": False,
                "privatePort": 22,
                "publicPort": 22,
                "type": "tcp",
            },
            {
                "ip": "194.68.245.20",
                "isIpPublic": True,
                "privatePort": 8888,
                "publicPort": 60123,
                "type": "http",
            },
            {
                "ip": "194.68.245.20",
                "isIpPublic": True,
                "privatePort": 22,
                "publicPort": 22034,
                "type": "tcp",
            },
        ]
    },
    "machine": {"gpuDisplayName": "RTX 4090"},
}


def details_of(instance: Instance) -> PodDetails:
    """The pod details of ``instance``."""
    assert isinstance(instance.details, PodDetails)
    return instance.details


def test_a_running_on_demand_pod() -> None:
    instance = pod_from_api(RUNNING_POD, now=NOW)
    details = details_of(instance)

    assert (instance.provider, instance.id, instance.name) == (
        "runpod",
        "x7k2m9q4w1e8r3",
        "llama3-8b-sft",
    )
    assert instance.key == "runpod:x7k2m9q4w1e8r3"
    assert (instance.location, details.type_label) == ("runpod", "RTX 4090")
    assert instance.state is InstanceState.RUNNING
    assert details.market == "on-demand"
    assert instance.gpus == GpuSpec(count=2, model="RTX 4090")
    assert instance.launched_at == NOW - timedelta(hours=3, seconds=5)
    assert instance.uptime(NOW) == timedelta(hours=3, seconds=5)
    # The private mapping of port 22 is not how a user reaches the pod.
    assert details.address == "194.68.245.20:22034"
    assert (instance.protected, instance.protected_by) == (False, "")
    assert instance.hourly_usd == Decimal("0.69")
    assert instance.rate_source == "the pod's costPerHr"

    assert details.kind == "pod"
    assert details.desired_status == "RUNNING"
    assert details.status_reason is not None
    assert details.status_reason.startswith("Rented by User:")
    assert details.gpu_count == 2
    assert details.gpu_display_name == "RTX 4090"
    assert details.ssh_endpoint == "194.68.245.20:22034"
    assert (details.volume_gb, details.container_disk_gb) == (50, 20)
    assert details.image == "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
    assert details.interruptible is False
    assert (details.memory_gb, details.vcpu_count) == (62, 16)
    assert instance.gpu_usage == ()


def test_an_outbid_spot_pod_is_stopped_and_says_why() -> None:
    raw = {
        **RUNNING_POD,
        "desiredStatus": "EXITED",
        "podType": "INTERRUPTABLE",
        "lastStatusChange": "Outbid: your spot bid of $0.160/hr was outbid",
        "uptimeSeconds": 0,
        "runtime": None,
    }

    instance = pod_from_api(raw, now=NOW)
    details = details_of(instance)

    assert instance.state is InstanceState.STOPPED
    assert details.market == "spot"
    assert details.interruptible is True
    assert details.status_reason == "Outbid: your spot bid of $0.160/hr was outbid"
    assert instance.launched_at is None
    assert instance.uptime(NOW) is None
    assert details.ssh_endpoint is None
    assert instance.gpu_usage == ()


def test_telemetry_and_runtime_uptime_are_used_when_the_answer_has_them() -> None:
    raw = {
        **RUNNING_POD,
        "uptimeSeconds": 0,
        "dataCenterId": "EU-RO-1",
        "runtime": {
            **RUNNING_POD["runtime"],
            "uptimeInSeconds": 600,
            "gpus": [
                {"id": "GPU-a", "gpuUtilPercent": 97, "memoryUtilPercent": 80.5},
                {"id": "GPU-b", "gpuUtilPercent": None, "memoryUtilPercent": "x"},
            ],
        },
    }

    instance = pod_from_api(raw, now=NOW)

    assert instance.location == "EU-RO-1"
    assert instance.launched_at == NOW - timedelta(minutes=10)
    assert instance.gpu_usage == (
        GpuUsage(index=0, name="RTX 4090", utilization_percent=97, memory_percent=80),
        GpuUsage(index=1, name="RTX 4090"),
    )


def test_a_sparse_pod_still_maps() -> None:
    instance = pod_from_api({"id": "abc123"}, now=NOW)
    details = details_of(instance)

    assert (instance.id, instance.name, instance.location) == ("abc123", "", "runpod")
    assert instance.state is InstanceState.UNKNOWN
    assert details.type_label == "cpu"
    assert instance.gpus is None
    assert details.container_disk_gb is None
    assert instance.launched_at is None
    assert details.address is None
    assert details.desired_status == "UNKNOWN"
    assert instance.hourly_usd is None
    assert details.status_reason is None
    assert instance.gpu_usage == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"desiredStatus": "RUNNING"}, InstanceState.RUNNING),
        # Asked for the runtime and got none: the container is not up yet.
        ({"desiredStatus": "RUNNING", "runtime": None}, InstanceState.PENDING),
        ({"desiredStatus": "EXITED"}, InstanceState.STOPPED),
        ({"desiredStatus": "PAUSED"}, InstanceState.STOPPED),
        ({"desiredStatus": "CREATED"}, InstanceState.PENDING),
        ({"desiredStatus": "RESTARTING"}, InstanceState.PENDING),
        ({"desiredStatus": "TERMINATED"}, InstanceState.TERMINATED),
        ({"desiredStatus": "DEAD"}, InstanceState.TERMINATED),
        ({"desiredStatus": "MIGRATING"}, InstanceState.UNKNOWN),
        ({"desiredStatus": None}, InstanceState.UNKNOWN),
        ({}, InstanceState.UNKNOWN),
    ],
)
def test_states(raw: dict[str, Any], expected: InstanceState) -> None:
    assert pod_state(raw) is expected


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        (0.69, Decimal("0.69")),
        (21.52, Decimal("21.52")),
        (0, Decimal("0")),
        ("0.44", Decimal("0.44")),
        (-1, None),
        ("NaN", None),
        (float("inf"), None),
        ("cheap", None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_hourly_rate_comes_from_cost_per_hr(cost: Any, expected: Decimal | None) -> None:
    instance = pod_from_api({**RUNNING_POD, "costPerHr": cost}, now=NOW)
    assert instance.hourly_usd == expected


@pytest.mark.parametrize(
    "name",
    [
        "[/]",
        "[@click=app.quit]quit[/]",
        "[link=https://evil.example]ok[/link]",
        "two\nlines",
        "\x1b[31mred\x1b[0m",
        "\u202eevil",
        "x" * 10_000,
    ],
)
def test_hostile_names_are_kept_raw(name: str) -> None:
    instance = pod_from_api({**RUNNING_POD, "name": name}, now=NOW)
    assert instance.name == name


@pytest.mark.parametrize(
    ("name", "marker", "protected"),
    [
        ("[protect] pretrain-1b", "[protect]", True),
        ("pretrain-1b [PROTECT]", "[protect]", True),
        ("pretrain-1b", "[protect]", False),
        ("keep-me", "keep", True),
        ("[protect] anything", "", False),
    ],
)
def test_protection_marker(name: str, marker: str, protected: bool) -> None:
    instance = pod_from_api({**RUNNING_POD, "name": name}, protect_marker=marker, now=NOW)
    assert instance.protected is protected
    assert instance.protected_by == (f"name contains {marker}" if protected else "")


@pytest.mark.parametrize("raw", [{}, {"id": ""}, {"id": 7}, [], "pod", None])
def test_a_pod_without_an_id_is_refused(raw: Any) -> None:
    with pytest.raises(ValueError, match="pod"):
        pod_from_api(raw, now=NOW)


def test_odd_types_do_not_crash_the_mapping() -> None:
    raw = {
        "id": "odd1",
        "name": 42,
        "gpuCount": "3",
        "volumeInGb": 1.9,
        "containerDiskInGb": True,
        "machine": "not a mapping",
        "runtime": {"ports": "22/tcp", "gpus": {"id": "x"}},
        "desiredStatus": "running",
    }

    instance = pod_from_api(raw, now=NOW)
    details = details_of(instance)

    assert instance.name == ""
    assert instance.gpus == GpuSpec(count=3, model="GPU")
    assert details.type_label == "?"
    assert instance.state is InstanceState.RUNNING
    assert (details.volume_gb, details.container_disk_gb) == (1, None)
    assert details.ssh_endpoint is None
    assert instance.gpu_usage == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(97, 97), (80.5, 80), (0, 0), (100.4, 100), (250, 100), (-1, None), (None, None),
     ("50", None), (True, None), (float("nan"), None)],
)  # fmt: skip
def test_gpu_utilisation_figures(value: Any, expected: int | None) -> None:
    raw = {**RUNNING_POD, "runtime": {"gpus": [{"id": "GPU-a", "gpuUtilPercent": value}]}}
    (usage,) = pod_from_api(raw, now=NOW).gpu_usage
    assert usage.utilization_percent == expected


def pod(state: str, **extra: Any) -> Instance:
    """A pod row in RunPod's ``state``."""
    runtime = RUNNING_POD["runtime"] if state == "RUNNING" else None
    return pod_from_api({**RUNNING_POD, "desiredStatus": state, "runtime": runtime, **extra})


def test_a_pod_takes_stop_start_and_terminate() -> None:
    provider = RunPodProvider(SECRET)
    running, exited = pod("RUNNING"), pod("EXITED")

    assert isinstance(provider, Provider)
    assert isinstance(provider, NamesLosses)
    assert provider.actions(running) == {Action.STOP, Action.START, Action.TERMINATE}
    assert provider.refusal(Action.STOP, running) is None
    assert provider.refusal(Action.TERMINATE, running) is None
    assert provider.refusal(Action.START, exited) is None
    assert provider.refusal(Action.TERMINATE, exited) is None
    assert provider.refusal(Action.START, running) == (
        "only a stopped (exited) pod can be resumed; it is running"
    )
    assert provider.refusal(Action.STOP, exited) == (
        "only a running pod can be stopped; it is stopped"
    )
    assert provider.refusal(Action.TERMINATE, pod("TERMINATED")) == "already terminated"
    # Asked to run but not up yet: nothing to stop until it is.
    assert provider.refusal(Action.STOP, pod("RUNNING", runtime=None)) == (
        "only a running pod can be stopped; it is pending"
    )
    assert (
        provider.refusal(Action.KILL, running) == "kill is not something runpod does to this item"
    )


def test_nothing_is_offered_for_an_item_that_is_no_pod() -> None:
    provider = RunPodProvider(SECRET)
    foreign = pod("RUNNING").model_copy(update={"details": OtherDetails()})
    assert provider.actions(foreign) == frozenset()
    assert provider.refusal(Action.STOP, foreign) == (
        "stop is not something runpod does to this item"
    )


def test_what_stop_and_terminate_lose() -> None:
    provider = RunPodProvider(SECRET)
    running = pod("RUNNING")

    assert provider.losses(Action.STOP, running) == [
        "the container disk (20 GB) is wiped",
        "the volume (50 GB, /workspace) is kept and still billed",
        "the GPU is released: resuming may find none free on its machine",
    ]
    assert provider.losses(Action.TERMINATE, running) == [
        "the pod and its volume (50 GB) are deleted",
        "this cannot be undone",
    ]
    assert provider.losses(Action.START, running) == []


# -- reading an answer -------------------------------------------------------------------------


def failure(status: int, body: bytes, headers: dict[str, str] | None = None) -> Explained:
    """What :func:`read_answer` makes of an answer that is a failure."""
    with pytest.raises(RunPodAnswerError) as caught:
        read_answer(status, headers or {}, body, SECRET)
    return caught.value.explained


def test_an_answer_is_its_data() -> None:
    assert read_answer(200, {}, b'{"data": {"pod": null}}') == {"pod": None}


def test_the_status_decides_whatever_the_body_says() -> None:
    graphql_error = b'{"errors": [{"message": "rate limited"}]}'

    throttled = failure(429, graphql_error, {"Retry-After": "3"})
    assert (throttled.status, throttled.retry_after) == (429, 3.0)
    assert throttled.message == "RunPod is throttling requests (HTTP 429)"
    assert throttled.hint == "waiting 3 s as RunPod asked before calling again"
    assert failure(429, b"").retry_after == 10.0

    for status in (500, 502, 503):
        broken = failure(status, b'{"data": {"myself": null}}')
        assert broken.message == f"RunPod's API failed (HTTP {status})"
        assert broken.retry_after is None
    assert failure(503, b"", {"Retry-After": "30"}).retry_after == 30.0
    assert failure(401, b'{"data": {}}').message == "RunPod rejected the API key"
    assert failure(403, b"").message == "RunPod refused the API key access (HTTP 403)"
    assert failure(404, b"<html>").message == "RunPod sent an answer that is not JSON (HTTP 404)"
    assert failure(404, b'{"error": "x"}').message == "RunPod refused the request (HTTP 404)"


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>", b'{"data": ', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
)
def test_a_body_that_is_not_json(body: bytes) -> None:
    found = failure(200, body)
    assert found.message == "RunPod sent an answer that is not JSON (HTTP 200)"
    assert "<html>" not in (found.hint or "")


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"x"', b"{}", b'{"data": null}', b'{"data": []}'],
)
def test_an_answer_of_another_shape(body: bytes) -> None:
    assert failure(200, body).message == "RunPod sent an answer of an unexpected shape"


def test_a_graphql_error_is_one_redacted_line() -> None:
    body = json.dumps(
        {"errors": [{"message": f"bad\n\x1b[2Jtoken {SECRET}"}, {"message": "second"}]}
    ).encode()
    found = failure(200, body)
    assert found.message == "RunPod refused the request: bad ␛[2Jtoken ***"
    assert not found.not_found
    assert failure(200, b'{"errors": [{"message": "Pod not found."}]}').not_found
    assert failure(200, b'{"errors": [{}]}').message == "RunPod refused the request: no message"
    assert failure(200, b'{"errors": "odd"}').message == "RunPod refused the request: no message"


# -- the API key ---------------------------------------------------------------------------------


def write_config(home: Path, text: str) -> Path:
    """Write runpodctl's config file under ``home``."""
    path = home / ".runpod" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_environment_wins(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(isolated_environment, "apikey = 'from-file'\n")
    monkeypatch.setenv("RUNPOD_API_KEY", f"  {SECRET}\n")

    found = find_api_key()

    assert found.key is not None
    assert found.key.get_secret_value() == SECRET
    assert found.source == "RUNPOD_API_KEY"
    assert SECRET not in repr(found)
    assert api_key_from_environment() == SECRET


def test_another_variable_can_be_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("ML_RUNPOD_KEY", SECRET)

    assert api_key_from_environment("ML_RUNPOD_KEY") == SECRET
    assert api_key_from_environment() is None


@pytest.mark.parametrize(
    ("text", "source"),
    [
        # What runpodctl writes; viper reads its keys without regard to case.
        (
            f"apikey = '{SECRET}'\napiurl = 'https://api.runpod.io/graphql'\n",
            "~/.runpod/config.toml",
        ),
        (f'apiKey = "{SECRET}"\n', "~/.runpod/config.toml"),
        # What the runpod Python CLI writes into the same file.
        (f'[default]\napi_key = "{SECRET}"\n', "~/.runpod/config.toml [default]"),
    ],
)
def test_runpodctl_config(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch, text: str, source: str
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "   ")
    write_config(isolated_environment, text)

    found = find_api_key()

    assert found.key is not None
    assert found.key.get_secret_value() == SECRET
    assert (found.source, found.problem) == (source, None)


def test_no_key_anywhere(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    assert find_api_key().key is None
    assert find_api_key().problem is None
    # runpodctl writes an empty key until one is configured.
    write_config(isolated_environment, "apikey = ''\napiurl = 'https://api.runpod.io/graphql'\n")
    assert find_api_key().key is None
    assert find_api_key().problem is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"apikey = '{SECRET}\n",
            "~/.runpod/config.toml is not valid TOML (end of document); its key is not used",
        ),
        (
            f"x = 1\napikey = {SECRET}\n",
            "~/.runpod/config.toml is not valid TOML (line 2, column 10)",
        ),
        ("apikey = 12345\n", "apikey in ~/.runpod/config.toml is not a string"),
        ("[default]\napi_key = 1\n", "[default] api_key in ~/.runpod/config.toml is not a string"),
    ],
)
def test_a_malformed_config_gives_one_line_without_its_content(
    isolated_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    text: str,
    problem: str,
) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    write_config(isolated_environment, text)

    found = find_api_key()
    with caplog.at_level(logging.DEBUG):
        assert api_key_from_environment() is None

    assert found.key is None
    assert found.problem is not None
    assert found.problem.startswith(problem)
    assert "\n" not in found.problem
    assert SECRET not in found.problem
    assert [r.getMessage() for r in caplog.records] == [f"runpod: {found.problem}"]


def test_unreadable_or_odd_config_paths(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    folder = isolated_environment / "folder.toml"
    folder.mkdir()
    binary = isolated_environment / "binary.toml"
    binary.write_bytes(b"apikey = '\xff\xfe'\n")

    assert (
        find_api_key(runpodctl_config=folder).problem
        == "~/folder.toml is a directory, not runpodctl's config"
    )
    assert find_api_key(runpodctl_config=binary).problem == "~/binary.toml is not UTF-8 text"
    assert find_api_key(runpodctl_config=Path("~/absent.toml")).problem is None


# -- errors ------------------------------------------------------------------------------------


def test_redaction() -> None:
    text = (
        f"HTTPSConnectionPool: Max retries with url: /graphql?api_key={SECRET}&x=1 "
        f"(Authorization: Bearer {SECRET}) key {SECRET} apikey = 'other-secret'"
    )
    shown = redact(text, SECRET)
    assert SECRET not in shown
    assert "other-secret" not in shown
    assert "/graphql?api_key=***&x=1" in shown
    assert "Bearer ***" in shown
    assert redact("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 1.0),
        ("999999", 600.0),
        ("99999999999999999999", 10.0),
        (None, 10.0),
        ("soon", 10.0),
        ("-5", 10.0),
        ("Fri, 14 Mar 2025 12:00:30 GMT", 30.0),
        ("Fri, 14 Mar 2025 11:00:00 GMT", 1.0),
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


def test_the_provider_never_shows_its_key() -> None:
    provider = RunPodProvider(SECRET)
    assert SECRET not in repr(provider)
    assert SECRET not in repr(vars(provider))
    assert SECRET not in (provider.identity() or "")


# -- the stand-in, read without a socket ---------------------------------------------------------


def test_the_stand_in_answers_only_the_selected_fields() -> None:
    stand_in = RunPodStandIn([make_pod("abc123", "one", gpu_count=2)], lifetime=None)
    query = 'query pod { pod(input: {podId: "abc123"}) { id name machine { gpuDisplayName } } }'

    status, _, body = stand_in.answer(
        "/graphql",
        {"authorization": f"Bearer {stand_in.api_key}"},
        json.dumps({"query": query}).encode(),
    )

    assert status == 200
    assert json.loads(body) == {
        "data": {"pod": {"id": "abc123", "name": "one", "machine": {"gpuDisplayName": "RTX 4090"}}}
    }


def test_the_stand_in_answers_the_pod_queries_with_gpu_figures() -> None:
    stand_in = RunPodStandIn(
        [
            make_pod("abc123", "one", gpu_count=2, gpu_util=[(94, 81), (3, 1)]),
            make_pod("def456", "two", status="EXITED"),
        ],
        lifetime=None,
    )
    headers = {"Authorization": f"Bearer {stand_in.api_key}"}

    status, _, body = stand_in.answer(
        "/graphql", headers, json.dumps({"query": PODS_QUERY}).encode()
    )
    assert status == 200
    one, two = json.loads(body)["data"]["myself"]["pods"]
    assert one["runtime"]["gpus"] == [
        {"id": "GPU-abc123-0", "gpuUtilPercent": 94, "memoryUtilPercent": 81},
        {"id": "GPU-abc123-1", "gpuUtilPercent": 3, "memoryUtilPercent": 1},
    ]
    assert "env" not in one
    assert two["runtime"] is None
    instance = pod_from_api(one)
    assert [g.utilization_percent for g in instance.gpu_usage] == [94, 3]

    status, _, body = stand_in.answer(
        "/graphql", headers, json.dumps({"query": pod_query("abc123")}).encode()
    )
    assert status == 200
    assert json.loads(body)["data"]["pod"]["runtime"]["gpus"][0]["gpuUtilPercent"] == 94


def test_the_stand_in_reads_what_the_sdk_writes() -> None:
    operation = parse_operation(
        """
        mutation {
            podResume(input: { podId: "abc123", gpuCount: 2 }) {
                id
                desiredStatus
                machine { podHostId }
            }
        }
        """
    )

    assert operation.kind == "mutation"
    (field,) = operation.selections
    assert field.name == "podResume"
    assert field.arguments == {"input": {"podId": "abc123", "gpuCount": 2}}
    assert field.selections is not None
    assert [s.name for s in field.selections] == ["id", "desiredStatus", "machine"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("{ myself { pods { id nope } } }", 200, 'Cannot query field "nope" on type "Pod".'),
        ("{ myself { pods } }", 200, 'Field of type "Pod" must have a selection of subfields.'),
        ("{ gpuTypes { id } }", 200, 'Cannot query field "gpuTypes" on type "Query".'),
        ('mutation { podDelete(input: {podId: "abc123"}) }', 200, 'Cannot query field "podDelete"'),
        ("{ myself { pods { id }", 400, 'Syntax Error: Expected "}", found "<EOF>".'),
        ("query q($id: String) { pod(input: {podId: $id}) { id } }", 400, "Variables are not"),
    ],
)
def test_the_stand_in_rejects_what_a_graphql_server_rejects(
    query: str, status: int, message: str
) -> None:
    stand_in = RunPodStandIn([make_pod("abc123", "one")], lifetime=None)

    got, _, body = stand_in.answer(
        "/graphql",
        {"Authorization": f"Bearer {stand_in.api_key}"},
        json.dumps({"query": query}).encode(),
    )

    assert got == status
    errors = json.loads(body)["errors"]
    assert errors[0]["message"].startswith(message)
    assert stand_in.pods()["abc123"]["desiredStatus"] == "RUNNING"


def test_the_stand_in_wants_the_key() -> None:
    stand_in = RunPodStandIn([make_pod("abc123", "one")], lifetime=None)
    body = json.dumps({"query": "{ myself { pods { id } } }"}).encode()

    assert stand_in.answer("/graphql", {}, body)[0] == 401
    assert stand_in.answer("/graphql", {"Authorization": "Bearer wrong"}, body)[0] == 401
    assert stand_in.answer(f"/graphql?api_key={stand_in.api_key}", {}, body)[0] == 200
    assert [c.auth for c in stand_in.calls()] == ["none", "bearer", "query"]
    assert all(stand_in.api_key not in repr(c) for c in stand_in.calls())


def test_importing_the_provider_does_not_import_the_sdk() -> None:
    code = (
        "import json, sys\n"
        "import runctl_tui.providers.runpod, runctl_tui.runpod_standin\n"
        "heavy = {'runpod', 'requests', 'textual', 'urllib3'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
