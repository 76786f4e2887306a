"""The audit journal: one valid JSON object per line, appended, never fatal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from runctl_tui.audit import Journal, JournalError, default_journal_path
from runctl_tui.models import Action, ActionResult, InstanceState, Outcome
from tests.fakes import make_instance

FIELDS = {
    "time",
    "user",
    "provider",
    "region",
    "kind",
    "id",
    "name",
    "action",
    "result",
    "detail",
    "state_seen",
    "state_after",
}


def test_default_journal_is_under_the_user_state_dir(isolated_environment: Path) -> None:
    path = default_journal_path()

    assert path.name == "journal.jsonl"
    assert path.is_relative_to(isolated_environment / "xdg_state_home")
    assert Journal().path == path


def test_record_writes_the_documented_fields(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "deep" / "journal.jsonl")
    instance = make_instance("i-0abc", provider="aws", name="trainer", region="eu-west-1")
    result = ActionResult(
        action=Action.STOP,
        instance=instance,
        outcome=Outcome.DONE,
        new_state=InstanceState.STOPPING,
    )

    journal.record(result, at=datetime(2026, 3, 1, 12, 0, 5, 123456, tzinfo=UTC))

    (line,) = journal.path.read_text("utf-8").splitlines()
    entry = json.loads(line)
    assert set(entry) == FIELDS
    assert entry == {
        "time": "2026-03-01T12:00:05+00:00",
        "user": entry["user"],
        "provider": "aws",
        "region": "eu-west-1",
        "kind": "ec2",
        "id": "i-0abc",
        "name": "trainer",
        "action": "stop",
        "result": "done",
        "detail": "",
        "state_seen": "running",
        "state_after": "stopping",
    }
    assert isinstance(entry["user"], str)
    assert entry["user"]


def test_records_are_appended_one_per_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    instance = make_instance("i-1", name='quote " and newline\n and ünïcode')
    outcomes = [Outcome.REFUSED, Outcome.FAILED, Outcome.CANCELLED]

    for outcome in outcomes:
        journal.record(
            ActionResult(action=Action.TERMINATE, instance=instance, outcome=outcome, detail="why")
        )
    # A second Journal on the same file appends too.
    Journal(journal.path).record(
        ActionResult(action=Action.START, instance=instance, outcome=Outcome.DONE)
    )

    entries = [json.loads(line) for line in journal.path.read_text("utf-8").splitlines()]
    assert [e["result"] for e in entries] == ["refused", "failed", "cancelled", "done"]
    assert all(set(e) == FIELDS for e in entries)
    assert entries[0]["name"] == 'quote " and newline\n and ünïcode'
    assert entries[0]["state_after"] is None
    assert entries[0]["detail"] == "why"


def test_time_defaults_to_now_in_utc(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    before = datetime.now(UTC).replace(microsecond=0)

    journal.record(ActionResult(action=Action.STOP, instance=make_instance(), outcome=Outcome.DONE))

    stamp = datetime.fromisoformat(json.loads(journal.path.read_text("utf-8"))["time"])
    assert stamp.utcoffset() == timedelta(0)
    assert before <= stamp <= datetime.now(UTC)


def test_non_utc_time_keeps_its_offset(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    at = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    journal.record(
        ActionResult(action=Action.STOP, instance=make_instance(), outcome=Outcome.DONE), at=at
    )

    assert datetime.fromisoformat(json.loads(journal.path.read_text("utf-8"))["time"]) == at


def test_unwritable_journal_raises_one_line_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    journal = Journal(blocker / "journal.jsonl")

    with pytest.raises(JournalError) as caught:
        journal.record(
            ActionResult(action=Action.STOP, instance=make_instance(), outcome=Outcome.DONE)
        )
    with pytest.raises(JournalError):
        journal.check()

    message = str(caught.value)
    assert str(blocker / "journal.jsonl") in message
    assert "\n" not in message
