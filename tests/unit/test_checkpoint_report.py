"""The checkpoints report: locations, choosing what to inspect, the text and JSON forms, and
inspecting a shard set on this machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runctl_tui.checkpoints.listing import (
    Checkpoint,
    FileEntry,
    Listing,
    LocationKind,
    build_listing,
    failed_listing,
)
from runctl_tui.checkpoints.remote_read import inspect_local, split_s3
from runctl_tui.checkpoints.report import (
    SCHEMA,
    CheckpointReport,
    UnknownCheckpoint,
    find_checkpoint,
    human_age,
    local_report,
    parse_location,
    report_json,
    report_lines,
    select_checkpoints,
)
from runctl_tui.remote.ssh import SshTarget

FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def listing(*entries: tuple[str, int, float]) -> Listing:
    """A listing of files (name, size, minutes ago) under ``/ckpt``."""
    files = [
        FileEntry(tuple(name.split("/")), size, (NOW - timedelta(minutes=ago)).timestamp())
        for name, size, ago in entries
    ]
    return build_listing(
        files,
        directory="/ckpt",
        kind=LocationKind.LOCAL,
        where="this machine",
        join=lambda parts: "/ckpt/" + "/".join(parts),
        listed_at=NOW,
    )


SAMPLE = listing(
    ("epoch=1-step=200-val_loss=0.4123.ckpt", 2_000_000, 30),
    ("epoch=2-step=300-val_loss=0.5000.ckpt", 2_000_000, 10),
    ("run1/checkpoint-500/model.safetensors", 1_500_000, 5),
    ("run1/checkpoint-500/config.json", 500, 5),
)


@pytest.mark.parametrize(
    ("text", "kind", "path", "target"),
    [
        ("/data/ckpt", LocationKind.LOCAL, "/data/ckpt", None),
        ("~/train/checkpoints", LocationKind.LOCAL, "~/train/checkpoints", None),
        ("ckpts", LocationKind.LOCAL, "ckpts", None),
        ("gpu-1:~/train", LocationKind.SSH, "~/train", SshTarget("gpu-1")),
        (
            "ubuntu@10.0.0.5:/ws/ckpt",
            LocationKind.SSH,
            "/ws/ckpt",
            SshTarget("10.0.0.5", None, "ubuntu"),
        ),
        (
            "ssh://me@host:2222/ws/ckpt",
            LocationKind.SSH,
            "/ws/ckpt",
            SshTarget("host", 2222, "me"),
        ),
        ("s3://bucket/run1", LocationKind.S3, "s3://bucket/run1", None),
        ("S3://bucket", LocationKind.S3, "S3://bucket", None),
    ],
)
def test_locations(text: str, kind: LocationKind, path: str, target: SshTarget | None) -> None:
    location = parse_location(text)
    assert (location.kind, location.path, location.target) == (kind, path, target)
    assert location.text == text


@pytest.mark.parametrize("text", ["", "  ", "s3://", "s3://bad bucket/x", "ssh://host"])
def test_bad_locations_are_one_line(text: str) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        parse_location(text)


def test_split_s3() -> None:
    assert split_s3("s3://b/a/c.pt") == ("b", "a/c.pt")
    with pytest.raises(ValueError, match="not an S3 URL"):
        split_s3("/tmp/x")


def test_finding_a_checkpoint_by_name_last_part_or_path() -> None:
    hf = find_checkpoint(SAMPLE, "run1/checkpoint-500")
    assert hf is not None
    assert hf.is_dir
    assert find_checkpoint(SAMPLE, "checkpoint-500/") == hf
    assert find_checkpoint(SAMPLE, "/ckpt/run1/checkpoint-500") == hf
    assert find_checkpoint(SAMPLE, "nope") is None


def test_choosing_what_to_inspect() -> None:
    assert select_checkpoints(SAMPLE) == []
    assert select_checkpoints(SAMPLE, inspect_all=True) == list(SAMPLE.checkpoints)
    chosen = select_checkpoints(SAMPLE, ["checkpoint-500", "run1/checkpoint-500"])
    assert [c.name for c in chosen] == ["run1/checkpoint-500"]
    with pytest.raises(UnknownCheckpoint) as raised:
        select_checkpoints(SAMPLE, ["evil\n\x1b[2J.pt"])
    message = str(raised.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert message.startswith("no checkpoint named 'evil␤␛[2J.pt' in /ckpt (listed: ")


def test_ages() -> None:
    assert [human_age(s) for s in (-5, 0, 59, 60, 3599, 3600, 47 * 3600, 49 * 3600)] == [
        "future",
        "0 s",
        "59 s",
        "1 min",
        "59 min",
        "1 h",
        "47 h",
        "2 d",
    ]


def test_text_report() -> None:
    lines = report_lines(CheckpointReport(location="/ckpt", listing=SAMPLE))
    assert lines == [
        "/ckpt · this machine · 3 checkpoints · listed 2025-06-01 12:00:00 UTC",
        "    NAME                                     SIZE     AGE  STEP  EPOCH  METRIC",
        "*   run1/checkpoint-500/                   1.5 MB   5 min   500      -",
        "    epoch=2-step=300-val_loss=0.5000.ckpt  2.0 MB  10 min   300      2  val_loss=0.5",
        " B  epoch=1-step=200-val_loss=0.4123.ckpt  2.0 MB  30 min   200      1  val_loss=0.4123",
        "total: 5.5 MB in 3 checkpoint(s)",
        "best: epoch=1-step=200-val_loss=0.4123.ckpt (lowest val_loss=0.4123)",
    ]


def test_text_report_of_nothing_and_of_a_failure() -> None:
    empty = listing()
    assert report_lines(CheckpointReport(location="/ckpt", listing=empty))[1:] == [
        "no checkpoints found",
        "total: 0 B in 0 checkpoint(s)",
    ]
    failed = failed_listing("/x", LocationKind.LOCAL, "this machine", "/x: no such\ndirectory")
    assert report_lines(CheckpointReport(location="/x", listing=failed)) == [
        "error: /x: no such␤directory"
    ]


def test_json_report() -> None:
    document = report_json(CheckpointReport(location="/ckpt", listing=SAMPLE))
    json.dumps(document)
    assert document["schema"] == SCHEMA
    assert document["location"] == "/ckpt"
    assert document["listed_at"] == "2025-06-01T12:00:00+00:00"
    assert document["newest"] == "run1/checkpoint-500"
    assert document["best"] == "epoch=1-step=200-val_loss=0.4123.ckpt"
    assert document["total_size"] == 5_500_500
    assert document["error"] is None
    first, _, best = document["checkpoints"]
    assert first["age_seconds"] == 300
    assert first["inspection"] is None
    assert first["members"] == ["/ckpt/run1/checkpoint-500"]
    assert best["metrics"] == [{"name": "val_loss", "value": 0.4123, "lower_is_better": True}]
    assert best["best_reason"] == "lowest val_loss=0.4123"
    assert set(first) == set(best)


def shard_set(root: Path) -> Checkpoint:
    """The committed HF checkpoint's shards and index, loose in ``root``; their checkpoint."""
    root.mkdir()
    for name in (
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ):
        shutil.copy(FIXTURES / "checkpoint-500" / name, root / name)
    report = local_report(str(root), str(root), inspect_all=True)
    (checkpoint,) = report.listing.checkpoints
    return checkpoint


def test_a_shard_set_is_inspected_as_its_shards_and_index(tmp_path: Path) -> None:
    checkpoint = shard_set(tmp_path / "shards")
    assert checkpoint.name == "model-*-of-00002.safetensors"
    inspection = inspect_local(checkpoint)
    assert inspection.error is None
    assert inspection.shard_index is not None
    assert len(inspection.files) == 2
    assert inspection.parameter_count == 328


def test_a_shard_that_vanished_is_an_error_line(tmp_path: Path) -> None:
    checkpoint = shard_set(tmp_path / "shards")
    (tmp_path / "shards" / "model-00002-of-00002.safetensors").unlink()
    inspection = inspect_local(checkpoint)
    assert inspection.error is not None
    assert inspection.error.startswith("shards: not inspected: model-00002-of-00002.safetensors: ")


def test_the_report_modules_import_without_textual_or_sdks() -> None:
    code = (
        "import sys, json\n"
        "import runctl_tui.checkpoints.report, runctl_tui.checkpoints.remote_read\n"
        "heavy = {'textual', 'rich', 'boto3', 'botocore', 'asyncssh', 'moto'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
