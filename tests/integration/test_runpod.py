"""RunPodProvider through the real runpod SDK against the stand-in of RunPod's GraphQL API."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from runctl_tui.models import Action, GpuUsage, Instance, InstanceState, PodDetails
from runctl_tui.providers.base import NotConfiguredError, NotFoundError, ProviderError
from runctl_tui.providers.runpod import (
    RunPodProvider,
    RunPodRetryLaterError,
    RunPodThrottledError,
    pod_from_api,
)
from runctl_tui.runpod_standin import (
    MALFORMED_BODY,
    FaultKind,
    RunPodStandIn,
    demo_pods,
    make_pod,
)

pytestmark = pytest.mark.integration

KEY = "rpa_INTEGRATIONSECRET_5f1d0c9a7b3e4d2c8a6f"
TIMEOUT = 3.0
RUNNING_2X = "x7k2m9q4w1e8r3"
"""``llama3-8b-sft``: on demand, running, 2x RTX 4090, public SSH."""
SPOT_EXITED = "b9v3c6x1z4a7s2"
"""``whisper-eval``: spot, outbid."""


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunPodStandIn]:
    """The demo fleet served on 127.0.0.1, with the SDK pointed at it."""
    server = RunPodStandIn(api_key=KEY, lifetime=120).start()
    monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
    yield server
    server.stop()


@pytest.fixture
def provider(stand_in: RunPodStandIn) -> RunPodProvider:
    """A provider holding the stand-in's key."""
    return RunPodProvider(KEY, timeout=TIMEOUT, key_source="RUNPOD_API_KEY")


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, the SDK's HTTP library's debug lines included."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    return caplog


def assert_key_hidden(error: ProviderError, logs: pytest.LogCaptureFixture) -> None:
    """The key is in no part of the error and in no log record."""
    for text in (str(error), error.message, error.hint or "", repr(error)):
        assert KEY not in text
    for record in logs.records:
        assert KEY not in record.getMessage()
        assert KEY not in (record.exc_text or "")


def assert_one_line(error: ProviderError) -> None:
    """A message and a hint, one line each, and no SDK exception chained to them."""
    assert error.message
    assert "\n" not in error.message
    assert error.hint
    assert "\n" not in error.hint
    # The SDK's frames hold the key: an error that is shown must not carry them along.
    assert error.__cause__ is None
    assert error.__context__ is None


def by_id(provider: RunPodProvider) -> dict[str, Instance]:
    """One poll, keyed by pod id."""
    return {i.id: i for i in provider.list_instances()}


def details_of(instance: Instance) -> PodDetails:
    """The pod details of ``instance``."""
    assert isinstance(instance.details, PodDetails)
    return instance.details


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The current reading."""
        return self.now


def test_lists_every_pod_through_the_sdk(stand_in: RunPodStandIn, provider: RunPodProvider) -> None:
    instances = by_id(provider)

    assert set(instances) == {p["id"] for p in demo_pods()}
    sft = instances[RUNNING_2X]
    details = details_of(sft)
    assert (sft.provider, sft.name, details.type_label) == ("runpod", "llama3-8b-sft", "RTX 4090")
    assert sft.state is InstanceState.RUNNING
    assert sft.gpus is not None
    assert (sft.gpus.count, sft.gpus.model) == (2, "RTX 4090")
    # Per-GPU load comes from the runtime figures the provider's own query asks for.
    assert sft.gpu_usage == (
        GpuUsage(index=0, name="RTX 4090", utilization_percent=94, memory_percent=81),
        GpuUsage(index=1, name="RTX 4090", utilization_percent=91, memory_percent=79),
    )
    assert sft.launched_at is not None
    assert details.ssh_endpoint == details.address == "194.68.245.20:22034"
    assert (details.volume_gb, details.container_disk_gb) == (50, 20)
    assert sft.hourly_usd == Decimal("1.38")

    outbid = instances[SPOT_EXITED]
    assert outbid.state is InstanceState.STOPPED
    assert outbid.gpu_usage == ()
    outbid_details = details_of(outbid)
    assert outbid_details.market == "spot"
    assert outbid_details.status_reason == "Outbid: your spot bid of $0.160/hr was outbid"
    protected = [i for i in instances.values() if i.protected]
    assert [(i.name, i.protected_by) for i in protected] == [
        ("[protect] pretrain-1b", "name contains [protect]")
    ]
    assert provider.poll_warnings() == ()

    (call,) = stand_in.calls()
    assert (call.method, call.path, call.operation, call.fields) == (
        "POST",
        "/graphql",
        "query",
        ("myself",),
    )
    assert (call.auth, call.authorized, call.status) == ("bearer", True, 200)
    assert call.content_type == "application/json"
    assert call.user_agent.startswith("RunPod-Python-SDK/1.12")


def test_describe_and_a_pod_that_is_gone(stand_in: RunPodStandIn, provider: RunPodProvider) -> None:
    sft = by_id(provider)[RUNNING_2X]

    again = provider.describe(sft)
    # The rate is dated when it was read.
    assert again.model_copy(update={"launched_at": None, "rate": None}) == sft.model_copy(
        update={"launched_at": None, "rate": None}
    )
    assert again.rate is not None
    assert sft.rate is not None
    assert again.rate.usd_per_hour == sft.rate.usd_per_hour
    assert again.launched_at is not None
    assert sft.launched_at is not None
    # Uptime comes in whole seconds: two answers may round a second apart.
    assert abs((again.launched_at - sft.launched_at).total_seconds()) <= 2
    assert stand_in.calls()[-1].fields == ("pod",)
    assert stand_in.calls()[-1].arguments == {"podId": RUNNING_2X}

    gone = sft.model_copy(update={"id": "zzzzzzzzzzzzzz"})
    with pytest.raises(NotFoundError, match="zzzzzzzzzzzzzz no longer exists"):
        provider.describe(gone)


def test_stop_resume_terminate(stand_in: RunPodStandIn, provider: RunPodProvider) -> None:
    sft = by_id(provider)[RUNNING_2X]
    assert provider.refusal(Action.STOP, sft) is None

    assert provider.perform(Action.STOP, sft) is InstanceState.STOPPED
    pod = stand_in.pods()[RUNNING_2X]
    assert (pod["desiredStatus"], pod["runtime"]) == ("EXITED", None)
    stopped = provider.describe(sft)
    assert stopped.state is InstanceState.STOPPED
    assert details_of(stopped).address is None
    assert (details_of(stopped).status_reason or "").startswith("Exited by user: ")
    assert provider.refusal(Action.STOP, stopped) is not None
    assert provider.refusal(Action.START, stopped) is None

    assert provider.perform(Action.START, stopped) is InstanceState.RUNNING
    resume = stand_in.calls()[-1]
    assert (resume.operation, resume.fields) == ("mutation", ("podResume",))
    assert resume.arguments == {"podId": RUNNING_2X, "gpuCount": 2}
    again = provider.describe(sft)
    assert again.state is InstanceState.RUNNING
    assert details_of(again).address == "194.68.245.20:22034"

    assert provider.perform(Action.TERMINATE, again) is InstanceState.TERMINATED
    assert RUNNING_2X not in stand_in.pods()
    with pytest.raises(NotFoundError):
        provider.describe(again)
    assert [c.fields[0] for c in stand_in.calls()] == [
        "myself",
        "podStop",
        "pod",
        "pod",  # resuming asks for the GPU count afresh
        "podResume",
        "pod",
        "podTerminate",
        "pod",
    ]
    assert all(c.user_agent.startswith("RunPod-Python-SDK/1.12") for c in stand_in.calls())


def test_resume_learns_the_gpu_count_when_it_is_not_known(
    stand_in: RunPodStandIn,
) -> None:
    stand_in.add_pod(make_pod("q1w2e3r4t5y6u7", "sweep", gpu_count=4, status="EXITED"))
    fresh = RunPodProvider(KEY, timeout=TIMEOUT)
    raw = {"id": "q1w2e3r4t5y6u7", "desiredStatus": "EXITED"}
    instance = pod_from_api(raw)

    assert fresh.start(instance) is InstanceState.RUNNING

    assert [c.fields[0] for c in stand_in.calls()] == ["pod", "podResume"]
    assert stand_in.calls()[-1].arguments["gpuCount"] == 4
    assert stand_in.pods()["q1w2e3r4t5y6u7"]["gpuCount"] == 4


def test_acting_on_a_pod_that_is_gone(stand_in: RunPodStandIn, provider: RunPodProvider) -> None:
    sft = by_id(provider)[RUNNING_2X]
    # Someone else terminates it between the poll and the action.
    provider_elsewhere = RunPodProvider(KEY, timeout=TIMEOUT)
    provider_elsewhere.terminate(sft)

    with pytest.raises(NotFoundError, match=f"{RUNNING_2X} no longer exists"):
        provider.stop(sft)


@pytest.mark.parametrize(
    ("kind", "message", "hint"),
    [
        (
            FaultKind.UNAUTHORIZED,
            "RunPod rejected the API key",
            "RUNPOD_API_KEY (runpodctl config)",
        ),
        (
            FaultKind.THROTTLED,
            "RunPod is throttling requests (HTTP 429)",
            "waiting 7 s as RunPod asked",
        ),
        (
            FaultKind.SERVER_ERROR,
            "RunPod's API failed (HTTP 500)",
            "next poll in 5 s; see status.runpod.io",
        ),
        (
            FaultKind.GRAPHQL_ERROR,
            "RunPod refused the request: Something went wrong. Please try again later",
            "retried on the next poll",
        ),
        (
            FaultKind.MALFORMED,
            "RunPod sent an answer that is not JSON (HTTP 200)",
            "RUNPOD_API_BASE_URL",
        ),
    ],
)
def test_each_fault_is_one_line_with_a_hint_and_no_key(
    stand_in: RunPodStandIn,
    provider: RunPodProvider,
    all_logs: pytest.LogCaptureFixture,
    kind: FaultKind,
    message: str,
    hint: str,
) -> None:
    stand_in.inject(kind)

    with pytest.raises(ProviderError) as caught:
        provider.list_instances()

    error = caught.value
    assert error.provider == "runpod"
    assert error.message.startswith(message)
    assert hint in (error.hint or "")
    assert_one_line(error)
    assert_key_hidden(error, all_logs)
    # Never the answer itself: it is not ours to quote.
    assert MALFORMED_BODY.decode()[:20] not in str(error)
    assert "<html>" not in str(error)
    assert any(r.name == "runctl_tui.providers.runpod" for r in all_logs.records)


def test_a_wrong_key_is_rejected_and_not_shown(
    stand_in: RunPodStandIn, all_logs: pytest.LogCaptureFixture
) -> None:
    wrong = "rpa_WRONGKEY_0000000000000000000000000000"
    provider = RunPodProvider(wrong, timeout=TIMEOUT)

    with pytest.raises(ProviderError) as caught:
        provider.list_instances()

    assert caught.value.message == "RunPod rejected the API key"
    assert caught.value.hint == "check RUNPOD_API_KEY (runpodctl config)"
    assert stand_in.calls()[0].status == 401
    for record in all_logs.records:
        assert wrong not in record.getMessage()
    assert wrong not in str(caught.value)


def test_a_graphql_error_echoing_the_key_is_redacted(
    stand_in: RunPodStandIn, provider: RunPodProvider, all_logs: pytest.LogCaptureFixture
) -> None:
    stand_in.inject(
        FaultKind.GRAPHQL_ERROR,
        message=f"bad token {KEY} for POST https://api.runpod.io/graphql?api_key={KEY}",
        operations=frozenset({"podStop"}),
    )
    sft = by_id(provider)[RUNNING_2X]

    with pytest.raises(ProviderError) as caught:
        provider.stop(sft)

    assert caught.value.message == (
        "RunPod refused the request: bad token *** for POST https://api.runpod.io/graphql?api_key=***"
    )
    assert_one_line(caught.value)
    assert_key_hidden(caught.value, all_logs)
    assert stand_in.pods()[RUNNING_2X]["desiredStatus"] == "RUNNING"


def test_a_429_holds_every_call_for_retry_after(
    stand_in: RunPodStandIn, provider: RunPodProvider
) -> None:
    stand_in.inject(FaultKind.THROTTLED, retry_after="1", times=1)

    with pytest.raises(RunPodThrottledError) as first:
        provider.list_instances()
    assert first.value.retry_after == 1.0
    assert first.value.hint == "waiting 1 s as RunPod asked before calling again"

    sent = len(stand_in.calls())
    with pytest.raises(RunPodThrottledError, match="rate limited; retrying in 1 s") as held:
        provider.list_instances()
    assert 0 < held.value.retry_after <= 1.0
    assert len(stand_in.calls()) == sent  # held back: nothing was sent

    time.sleep(held.value.retry_after + 0.05)
    assert len(provider.list_instances()) == len(demo_pods())


def test_a_slow_answer_is_bounded_by_the_timeout(
    stand_in: RunPodStandIn, all_logs: pytest.LogCaptureFixture
) -> None:
    provider = RunPodProvider(KEY, timeout=TIMEOUT)
    instances = by_id(provider)
    provider.timeout = 0.5
    stand_in.inject(FaultKind.SLOW, delay=5.0)

    started = time.monotonic()
    with pytest.raises(ProviderError) as listing:
        provider.list_instances()
    waited = time.monotonic() - started

    assert listing.value.message == "RunPod did not answer within 0.5 s"
    assert 0.45 < waited < 2.5
    assert "retried on the next poll" in (listing.value.hint or "")
    assert_one_line(listing.value)
    assert_key_hidden(listing.value, all_logs)

    with pytest.raises(ProviderError) as stopping:
        provider.stop(instances[RUNNING_2X])
    assert stopping.value.message == "RunPod did not answer within 0.5 s"
    assert stopping.value.hint == "it may still take effect: refresh before trying again"


def test_hung_calls_do_not_pile_up_threads(stand_in: RunPodStandIn) -> None:
    provider = RunPodProvider(KEY, timeout=TIMEOUT)
    provider.list_instances()  # the SDK imported before anything hangs
    provider.timeout = 0.1
    stand_in.inject(FaultKind.SLOW, delay=10.0)

    for _ in range(4):
        with pytest.raises(ProviderError, match="did not answer within 0.1 s"):
            provider.list_instances()
    with pytest.raises(ProviderError, match="4 earlier RunPod calls are still waiting"):
        provider.list_instances()

    stand_in.stop()  # releases the held answers; the threads end
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            provider.list_instances()
        except ProviderError as exc:
            if "still waiting" not in exc.message:
                break
        time.sleep(0.05)
    else:
        pytest.fail("the abandoned calls never ended")


def test_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RUNPOD_API_BASE_URL", f"http://127.0.0.1:{port}")

    with pytest.raises(ProviderError) as caught:
        RunPodProvider(KEY, timeout=TIMEOUT).list_instances()

    assert (
        caught.value.message
        == f"cannot reach RunPod at http://127.0.0.1:{port} (connection refused)"
    )
    assert caught.value.hint == "check the network, proxy or RUNPOD_API_BASE_URL"
    assert_one_line(caught.value)


def test_the_base_url_is_read_on_every_call(
    stand_in: RunPodStandIn, provider: RunPodProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RunPodStandIn([make_pod("o1o1o1o1o1o1o1", "other")], api_key=KEY, lifetime=60) as other:
        first = {i.id for i in provider.list_instances()}
        monkeypatch.setenv("RUNPOD_API_BASE_URL", other.url)
        second = {i.id for i in provider.list_instances()}
        assert provider.identity() == f"endpoint {other.url} · key from RUNPOD_API_KEY"

    assert first == {p["id"] for p in demo_pods()}
    assert second == {"o1o1o1o1o1o1o1"}


def test_text_from_runpod_arrives_unchanged(
    stand_in: RunPodStandIn, provider: RunPodProvider
) -> None:
    hostile = "[@click=app.quit]quit[/]\n\x1b[2J\u202eevil [protect]"
    stand_in.add_pod(make_pod("h0st1l3h0st1l3", hostile))

    instance = by_id(provider)["h0st1l3h0st1l3"]

    assert instance.name == hostile
    assert instance.protected is True


def test_an_id_that_could_rewrite_the_query_is_never_sent(
    stand_in: RunPodStandIn, provider: RunPodProvider
) -> None:
    sft = by_id(provider)[RUNNING_2X]
    forged = sft.model_copy(
        update={"id": RUNNING_2X + '" }) { id } podTerminate(input: { podId: "' + RUNNING_2X}
    )
    sent = len(stand_in.calls())

    for act in (provider.stop, provider.start, provider.terminate, provider.describe):
        with pytest.raises(ProviderError, match="not a RunPod pod id"):
            act(forged)

    assert len(stand_in.calls()) == sent
    assert stand_in.pods()[RUNNING_2X]["desiredStatus"] == "RUNNING"


def test_no_key_means_not_configured(stand_in: RunPodStandIn) -> None:
    with pytest.raises(NotConfiguredError) as caught:
        RunPodProvider("  ").list_instances()

    assert caught.value.message == "not configured: no RunPod API key found"
    assert stand_in.calls() == []


def test_server_errors_back_off_exponentially_up_to_a_cap(stand_in: RunPodStandIn) -> None:
    clock = Clock()
    provider = RunPodProvider(KEY, timeout=TIMEOUT, backoff=5, backoff_cap=30, monotonic=clock)
    stand_in.inject(FaultKind.SERVER_ERROR)

    waits = []
    for _ in range(5):
        sent = len(stand_in.calls())
        with pytest.raises(RunPodRetryLaterError) as failed:
            provider.list_instances()
        assert len(stand_in.calls()) == sent + 1
        assert failed.value.message == "RunPod's API failed (HTTP 500)"
        waits.append(failed.value.retry_after)
        # A poll before the wait is over sends nothing and says when the next one will.
        clock.now += failed.value.retry_after - 0.5
        with pytest.raises(RunPodRetryLaterError) as held:
            provider.list_instances()
        assert held.value.message == "RunPod's API failed (HTTP 500); retrying in 1 s"
        assert "backing off" in (held.value.hint or "")
        assert len(stand_in.calls()) == sent + 1
        clock.now += 0.5
    assert waits == [5, 10, 20, 30, 30]

    stand_in.clear()
    assert len(provider.list_instances()) == len(demo_pods())
    stand_in.inject(FaultKind.SERVER_ERROR, times=1)
    with pytest.raises(RunPodRetryLaterError) as again:
        provider.list_instances()
    assert again.value.retry_after == 5  # a success starts the backoff over


def test_a_backoff_does_not_hold_what_the_user_asks_for(stand_in: RunPodStandIn) -> None:
    clock = Clock()
    provider = RunPodProvider(KEY, timeout=TIMEOUT, monotonic=clock)
    sft = by_id(provider)[RUNNING_2X]
    stand_in.inject(FaultKind.SERVER_ERROR, times=1)
    with pytest.raises(RunPodRetryLaterError):
        provider.list_instances()

    with pytest.raises(RunPodRetryLaterError, match="retrying in 5 s"):
        provider.list_instances()

    # The fresh look before an action, and the action itself, still go out; and RunPod
    # answering them ends the backoff.
    assert provider.describe(sft).state is InstanceState.RUNNING
    assert provider.perform(Action.STOP, sft) is InstanceState.STOPPED
    assert by_id(provider)[RUNNING_2X].state is InstanceState.STOPPED


def test_a_503_with_retry_after_waits_as_long_as_asked(stand_in: RunPodStandIn) -> None:
    clock = Clock()
    provider = RunPodProvider(KEY, timeout=TIMEOUT, monotonic=clock)
    stand_in.inject(FaultKind.SERVER_ERROR, status=503, headers=(("Retry-After", "45"),), times=1)

    with pytest.raises(RunPodRetryLaterError) as failed:
        provider.list_instances()
    assert failed.value.message == "RunPod's API failed (HTTP 503)"
    assert failed.value.retry_after == 45
    assert failed.value.hint == "next poll in 45 s; see status.runpod.io if it persists"


def test_the_status_is_read_whatever_the_body_says(stand_in: RunPodStandIn) -> None:
    # What the SDK's own request function would report as a GraphQL error and a missing key.
    clock = Clock()
    provider = RunPodProvider(KEY, timeout=TIMEOUT, monotonic=clock)
    stand_in.inject(
        FaultKind.THROTTLED,
        body=b'{"errors": [{"message": "Too many requests"}]}',
        retry_after="2",
        times=1,
    )
    with pytest.raises(RunPodThrottledError) as throttled:
        provider.list_instances()
    assert throttled.value.message == "RunPod is throttling requests (HTTP 429)"
    assert throttled.value.retry_after == 2

    clock.now += 2
    stand_in.inject(FaultKind.SERVER_ERROR, body=b'{"message": "upstream failed"}', times=1)
    with pytest.raises(RunPodRetryLaterError) as broken:
        provider.list_instances()
    assert broken.value.message == "RunPod's API failed (HTTP 500)"


def test_a_throttled_provider_holds_actions_too(stand_in: RunPodStandIn) -> None:
    clock = Clock()
    provider = RunPodProvider(KEY, timeout=TIMEOUT, monotonic=clock)
    sft = by_id(provider)[RUNNING_2X]
    stand_in.inject(FaultKind.THROTTLED, retry_after="30", times=1)
    with pytest.raises(RunPodThrottledError):
        provider.list_instances()
    sent = len(stand_in.calls())

    clock.now += 10
    with pytest.raises(RunPodThrottledError, match="rate limited; retrying in 20 s") as held:
        provider.perform(Action.STOP, sft)
    assert held.value.hint == "waiting as RunPod asked (HTTP 429, Retry-After)"
    assert len(stand_in.calls()) == sent
    assert stand_in.pods()[RUNNING_2X]["desiredStatus"] == "RUNNING"

    clock.now += 20
    assert provider.perform(Action.STOP, sft) is InstanceState.STOPPED


def test_an_answer_that_trickles_in_is_cut_off(
    stand_in: RunPodStandIn, all_logs: pytest.LogCaptureFixture
) -> None:
    provider = RunPodProvider(KEY, timeout=TIMEOUT)
    provider.list_instances()  # the SDK imported before anything is slow
    provider.timeout = 0.5
    # Every read gets a byte well within any per-read timeout: only a deadline ends it.
    stand_in.inject(FaultKind.TRICKLE, delay=0.05)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider.list_instances()
    assert time.monotonic() - started < 2.0
    assert caught.value.message == "RunPod did not answer within 0.5 s"
    assert_one_line(caught.value)
    assert_key_hidden(caught.value, all_logs)

    # The abandoned call's own thread ends too, soon after: nothing holds a thread forever.
    deadline = time.monotonic() + 5
    while any(t.name == "runpod-list" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the abandoned call never ended"
        time.sleep(0.05)


def test_the_stand_in_answers_the_sdks_own_calls(stand_in: RunPodStandIn) -> None:
    import runpod

    pods = runpod.get_pods(api_key=KEY)
    assert {p["id"] for p in pods} == {p["id"] for p in demo_pods()}
    assert runpod.get_pod(RUNNING_2X, api_key=KEY)["name"] == "llama3-8b-sft"
    previous = runpod.api_key
    runpod.api_key = KEY
    try:
        assert runpod.stop_pod(RUNNING_2X)["desiredStatus"] == "EXITED"
        assert runpod.resume_pod(RUNNING_2X, 2)["desiredStatus"] == "RUNNING"
        assert runpod.terminate_pod(RUNNING_2X) is None
    finally:
        runpod.api_key = previous
    assert RUNNING_2X not in stand_in.pods()
    assert all(c.status == 200 for c in stand_in.calls())
