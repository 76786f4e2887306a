"""Checkpoint names, grouping, newest and best, keep-last-N and the two warnings: pure parts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.checkpoints.listing import (
    FileEntry,
    Listing,
    LocationKind,
    Metric,
    TrainerState,
    build_listing,
    find_copy,
    is_checkpoint_dir,
    is_checkpoint_file,
    lower_is_better,
    parse_name,
    parse_trainer_state,
    pick_trainer_states,
    plan_keep_last,
    stale_warning,
)
from runctl_tui.checkpoints.listing_remote import sftp_path
from runctl_tui.checkpoints.listing_s3 import parse_s3_url

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T0 = NOW.timestamp() - 3600


def join(parts: tuple[str, ...]) -> str:
    return "/ckpt/" + "/".join(parts) if parts else "/ckpt"


def listing_of(entries: list[FileEntry], **states: TrainerState) -> Listing:
    """A local listing of ``entries`` under ``/ckpt``; ``states`` keyed by a directory path."""
    return build_listing(
        entries,
        directory="/ckpt",
        kind=LocationKind.LOCAL,
        where="this machine",
        join=join,
        listed_at=NOW,
        trainer_states={tuple(k.split("/")) if k else (): v for k, v in states.items()},
    )


def files(*names: str, size: int = 100) -> list[FileEntry]:
    """One entry per name, each a minute newer than the one before."""
    return [FileEntry(tuple(name.split("/")), size, T0 + 60 * i) for i, name in enumerate(names)]


# -- names


@pytest.mark.parametrize(
    ("name", "step", "epoch"),
    [
        ("checkpoint-500", 500, None),
        ("checkpoint_3", 3, None),
        ("global_step1200", 1200, None),
        ("iter_0001000", 1000, None),
        ("step_250", 250, None),
        ("epoch=3-step=1200.ckpt", 1200, 3),
        ("epoch=3-step=1200-val_loss=0.4123.ckpt", 1200, 3),
        ("epoch=3-step=1200-v1.ckpt", 1200, 3),
        ("epoch=03-val_acc=0.87.ckpt", None, 3),
        ("sample-mnist-epoch=02-val_loss=0.32.ckpt", None, 2),
        ("model_0005000.pt", 5000, None),
        ("model_final.pth", None, None),
        ("step_1000.pt", 1000, None),
        ("step-1000.pt", 1000, None),
        ("ckpt-12.pt", 12, None),
        ("checkpoint_epoch_5.pth", None, 5),
        ("epoch_10.pth", None, 10),
        ("iter_5000.pth", 5000, None),
        ("model_epoch3.pt", None, 3),
        ("weights_1500.pt", 1500, None),
        ("00500.pt", 500, None),
        ("best.pt", None, None),
        ("last.ckpt", None, None),
        ("model_best.pth.tar", None, None),
        ("pytorch_model.bin", None, None),
        ("model.safetensors", None, None),
        ("model-00001-of-00004.safetensors", None, None),
        ("3-0.87.ckpt", None, None),
    ],
)
def test_step_and_epoch_from_real_world_names(
    name: str, step: int | None, epoch: int | None
) -> None:
    info = parse_name(name)
    assert (info.step, info.epoch) == (step, epoch)


def test_metrics_in_lightning_names_with_their_direction() -> None:
    info = parse_name("epoch=3-step=1200-val_loss=0.4123-val_acc=0.91.ckpt")
    assert info.metrics == (
        Metric(name="val_loss", value=0.4123, lower_is_better=True),
        Metric(name="val_acc", value=0.91, lower_is_better=False),
    )
    assert parse_name("epoch=0-lr=1e-05.ckpt").metrics == (
        Metric(name="lr", value=1e-05, lower_is_better=None),
    )
    assert parse_name("reward=-1.5-epoch=3.ckpt").metrics[0].value == -1.5
    assert parse_name("epoch=1-val_loss=nan.ckpt").metrics == ()
    assert parse_name("epoch=1-val_loss=inf.ckpt").metrics == ()


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("val_loss", True),
        ("train/loss", True),
        ("eval_perplexity", True),
        ("val_wer", True),
        ("top1_error", True),
        ("fid", True),
        ("val_acc", False),
        ("val_accuracy", False),
        ("f1", False),
        ("bleu", False),
        ("rougeL", False),
        ("mAP", False),
        ("val_auc", False),
        ("lr", None),
        ("temperature", None),
    ],
)
def test_which_way_is_better(metric: str, lower: bool | None) -> None:
    assert lower_is_better(metric) is lower


def test_names_flag_best_last_and_shards() -> None:
    assert parse_name("best.pt").named_best
    assert parse_name("model_best.pth.tar").named_best
    assert parse_name("checkpoint-best").named_best
    assert parse_name("last.ckpt").named_last
    assert parse_name("last-v1.ckpt").named_last
    assert parse_name("latest.pt").named_last
    assert not parse_name("epoch=3-step=9.ckpt").named_best
    assert parse_name("model-00002-of-00004.safetensors").shard == ("model", 2, 4)
    assert parse_name("pytorch_model-00001-of-00002.bin").shard == ("pytorch_model", 1, 2)


@pytest.mark.parametrize(
    "name",
    [
        "model.safetensors",
        "pytorch_model.bin",
        "best.pt",
        "weights.pth",
        "last.ckpt",
        "model_best.pth.tar",
        "arrays.npz",
        "model.h5",
        "flax_model.msgpack",
        "optimizer.pt",
    ],
)
def test_checkpoint_files(name: str) -> None:
    assert is_checkpoint_file(name)


@pytest.mark.parametrize(
    "name",
    [
        "training_args.bin",
        "rng_state.pth",
        "rng_state_3.pth",
        "scheduler.pt",
        "config.json",
        "trainer_state.json",
        "events.out.tfevents.1700000000.host.1.0",
        "train.log",
        ".pt",
        "model.safetensors.index.json",
    ],
)
def test_not_checkpoint_files(name: str) -> None:
    assert not is_checkpoint_file(name)


def test_checkpoint_directories() -> None:
    for name in ("checkpoint-500", "checkpoint_3", "global_step12", "iter_0000100", "step_5"):
        assert is_checkpoint_dir(name), name
    for name in ("checkpoints", "lightning_logs", "runs", "version_0", "wandb", "step"):
        assert not is_checkpoint_dir(name), name


# -- trainer state


def test_trainer_state_fields() -> None:
    data = json.dumps(
        {
            "global_step": 1500,
            "epoch": 2.37,
            "best_metric": 0.3141,
            "best_model_checkpoint": "out/checkpoint-1000",
            "log_history": [{"loss": 1.0}],
        }
    ).encode()
    assert parse_trainer_state(data) == TrainerState(1500, 2.37, 0.3141, "out/checkpoint-1000")
    assert parse_trainer_state(b'{"best_metric": null, "global_step": true}') == TrainerState()


@pytest.mark.parametrize("data", [b"", b"{", b"[1]", b"\xff\xfe", b'"x"'])
def test_a_bad_trainer_state_is_one_line(data: bytes) -> None:
    with pytest.raises(ValueError, match="^not ") as caught:
        parse_trainer_state(data)
    assert "\n" not in str(caught.value)


def test_only_the_newest_trainer_states_are_read() -> None:
    entries = [
        FileEntry(("trainer_state.json",), 10, T0),
        *(FileEntry((f"checkpoint-{s}", "trainer_state.json"), 10, T0) for s in (5, 50, 500, 20)),
        FileEntry(("checkpoint-900", "trainer_state.json"), 10**9, T0),
    ]
    chosen = [e.parts for e in pick_trainer_states(entries)]
    assert chosen == [
        ("trainer_state.json",),
        ("checkpoint-500", "trainer_state.json"),
        ("checkpoint-50", "trainer_state.json"),
    ]


# -- grouping, newest, best


def test_files_newest_first_with_the_metric_best() -> None:
    listing = listing_of(
        files(
            "epoch=0-step=100-val_loss=0.90.ckpt",
            "epoch=1-step=200-val_loss=0.41.ckpt",
            "epoch=2-step=300-val_loss=0.55.ckpt",
            "last.ckpt",
            "train.log",
        )
    )
    names = [c.name for c in listing.checkpoints]
    assert names == [
        "last.ckpt",
        "epoch=2-step=300-val_loss=0.55.ckpt",
        "epoch=1-step=200-val_loss=0.41.ckpt",
        "epoch=0-step=100-val_loss=0.90.ckpt",
    ]
    assert listing.newest is not None
    assert listing.newest.name == "last.ckpt"
    assert [c.newest for c in listing.checkpoints] == [True, False, False, False]
    best = listing.best
    assert best is not None
    assert best.name == "epoch=1-step=200-val_loss=0.41.ckpt"
    assert best.best_reason == "lowest val_loss=0.41"
    assert listing.total_size == 400
    assert listing.checkpoints[1].path == "/ckpt/epoch=2-step=300-val_loss=0.55.ckpt"
    assert listing.checkpoints[1].members == ("/ckpt/epoch=2-step=300-val_loss=0.55.ckpt",)


def test_higher_is_better_metric_and_the_most_common_metric_wins() -> None:
    listing = listing_of(
        files(
            "epoch=0-val_acc=0.70.ckpt",
            "epoch=1-val_acc=0.91.ckpt",
            "epoch=2-val_acc=0.88.ckpt",
            "epoch=3-val_loss=0.01.ckpt",
        )
    )
    assert listing.best is not None
    assert listing.best.name == "epoch=1-val_acc=0.91.ckpt"
    assert listing.best.best_reason == "highest val_acc=0.91"


def test_best_by_name_when_no_metric() -> None:
    listing = listing_of(files("best.pt", "last.pt", "model_0000100.pt"))
    assert listing.best is not None
    assert listing.best.name == "best.pt"
    assert listing.best.best_reason == "named best"
    assert listing_of(files("a.pt", "b.pt")).best is None


def test_hugging_face_directories_are_summed_and_the_trainer_state_names_the_best() -> None:
    entries: list[FileEntry] = []
    for i, step in enumerate((500, 1000, 1500)):
        folder = f"checkpoint-{step}"
        entries.append(FileEntry((folder,), 0, T0 + i * 100, True))
        for j, (name, size) in enumerate(
            (("model.safetensors", 1000), ("optimizer.pt", 2000), ("trainer_state.json", 10))
        ):
            entries.append(FileEntry((folder, name), size, T0 + i * 100 + j))
        entries.append(FileEntry((folder, "global_step", "shard.pt"), 5, T0 + i * 100 + 9))
    state = TrainerState(1500, 3.0, 0.25, "/data/run/out/checkpoint-1000")
    listing = listing_of(entries, **{"checkpoint-1500": state})
    assert [c.name for c in listing.checkpoints] == [
        "checkpoint-1500",
        "checkpoint-1000",
        "checkpoint-500",
    ]
    newest = listing.checkpoints[0]
    assert newest.is_dir
    assert newest.size == 3015
    assert newest.files == 4
    assert newest.step == 1500
    assert newest.epoch == 3.0
    assert newest.modified == datetime.fromtimestamp(T0 + 209, UTC)
    assert newest.members == ("/ckpt/checkpoint-1500",)
    best = listing.best
    assert best is not None
    assert best.name == "checkpoint-1000"
    assert best.best_reason == "trainer_state.json names it best (best_metric 0.25)"
    assert listing.total_size == 3 * 3015


def test_trainer_state_best_beats_a_metric_in_names_and_prefers_its_own_run() -> None:
    entries = [
        FileEntry(("a", "checkpoint-10"), 0, T0, True),
        FileEntry(("b", "checkpoint-10"), 0, T0 + 1, True),
        FileEntry(("b", "checkpoint-20"), 0, T0 + 2, True),
        *files("epoch=1-val_loss=0.1.ckpt"),
    ]
    listing = listing_of(entries, **{"a": TrainerState(20, None, None, "checkpoint-10")})
    assert listing.best is not None
    assert listing.best.name == "a/checkpoint-10"


def test_a_trainer_state_naming_a_missing_checkpoint_falls_back() -> None:
    entries = files("epoch=1-val_loss=0.5.ckpt", "epoch=2-val_loss=0.3.ckpt")
    listing = listing_of(entries, **{"": TrainerState(20, None, 0.1, "checkpoint-999")})
    assert listing.best is not None
    assert listing.best.name == "epoch=2-val_loss=0.3.ckpt"


def test_shards_are_one_checkpoint_with_their_index() -> None:
    entries = [
        *files(*(f"final/model-0000{i}-of-00004.safetensors" for i in range(1, 5)), size=1000),
        FileEntry(("final", "model.safetensors.index.json"), 7, T0 + 500),
        FileEntry(("final", "config.json"), 3, T0 + 600),
    ]
    (checkpoint,) = listing_of(entries).checkpoints
    assert checkpoint.name == "final/model-*-of-00004.safetensors"
    assert checkpoint.path == "/ckpt/final"
    assert checkpoint.size == 4007
    assert checkpoint.files == 5
    assert checkpoint.shards == 4
    assert checkpoint.shards_present == 4
    assert checkpoint.complete
    assert checkpoint.members[-1] == "/ckpt/final/model.safetensors.index.json"
    assert len(checkpoint.members) == 5


def test_missing_shards_are_noted() -> None:
    listing = listing_of(
        files("pytorch_model-00001-of-00003.bin", "pytorch_model-00003-of-00003.bin")
    )
    (checkpoint,) = listing.checkpoints
    assert not checkpoint.complete
    assert listing.notes == ("pytorch_model-*-of-00003.bin: 2 of 3 shards present",)


def test_depth_limits_the_search_but_not_a_checkpoints_own_files() -> None:
    entries = [
        *files("a/b/c/deep.pt", "a/b/c/d/too-deep.pt"),
        FileEntry(("a", "b", "checkpoint-5"), 0, T0, True),
        FileEntry(("a", "b", "checkpoint-5", "x", "y", "z", "w.bin"), 9, T0),
    ]
    listing = listing_of(entries)
    assert sorted(c.name for c in listing.checkpoints) == ["a/b/c/deep.pt", "a/b/checkpoint-5"]
    assert next(c for c in listing.checkpoints if c.is_dir).size == 9


def test_hostile_names_are_shown_on_one_line() -> None:
    listing = listing_of(files("evil\n[red]x\x1b[31m.pt"))
    (checkpoint,) = listing.checkpoints
    assert "\n" not in checkpoint.name
    assert "\x1b" not in checkpoint.name
    assert checkpoint.members == ("/ckpt/evil\n[red]x\x1b[31m.pt",)


def test_same_as_ignores_when_it_was_listed() -> None:
    first = listing_of(files("a.pt"))
    again = first.model_copy(update={"listed_at": NOW + timedelta(minutes=1)})
    assert first.same_as(again)
    assert not first.same_as(listing_of(files("a.pt", "b.pt")))
    assert not first.same_as(None)


# -- keep the last N


def test_keep_last_deletes_the_oldest_and_keeps_the_best_and_open_ones() -> None:
    names = [f"epoch={i}-step={i * 100}-val_loss={1 - i / 10:.2f}.ckpt" for i in range(8)]
    names[1] = "epoch=1-step=100-val_loss=0.01.ckpt"
    listing = listing_of(files(*names))
    open_path = "/ckpt/" + names[2]
    plan = plan_keep_last(listing, 3, open_for_writing={open_path})
    assert [c.name for c in plan.delete] == [names[4], names[3], names[0]]
    assert plan.bytes_freed == 300
    reasons = {k.checkpoint.name: k.reasons for k in plan.keep}
    assert reasons[names[7]] == ("among the newest 3", "newest")
    assert reasons[names[6]] == reasons[names[5]] == ("among the newest 3",)
    assert reasons[names[1]] == ("best (lowest val_loss=0.01)",)
    assert reasons[names[2]] == ("open for writing",)
    assert plan.refusal is None


def test_keep_last_never_touches_an_open_directory_or_incomplete_shards() -> None:
    entries = [
        FileEntry(("checkpoint-1",), 0, T0, True),
        FileEntry(("checkpoint-1", "model.safetensors"), 10, T0),
        FileEntry(("checkpoint-2",), 0, T0 + 1, True),
        *files("part-00001-of-00002.safetensors"),
        FileEntry(("checkpoint-3",), 0, T0 + 500, True),
    ]
    listing = listing_of(entries)
    plan = plan_keep_last(listing, 1, open_for_writing={"/ckpt/checkpoint-1/model.safetensors.tmp"})
    assert [c.name for c in plan.delete] == ["checkpoint-2"]
    reasons = {k.checkpoint.name: k.reasons for k in plan.keep}
    assert reasons["checkpoint-1"] == ("open for writing",)
    assert reasons["part-*-of-00002.safetensors"] == ("incomplete (1 of 2 shards)",)


@pytest.mark.parametrize("n", [0, -1])
def test_keep_last_below_one_deletes_nothing(n: int) -> None:
    plan = plan_keep_last(listing_of(files("a.pt", "b.pt")), n, open_for_writing=set())
    assert plan.delete == ()
    assert plan.bytes_freed == 0
    assert plan.refusal is not None
    assert str(n) in plan.refusal


def test_keep_last_of_a_failed_listing_deletes_nothing() -> None:
    failed = Listing(
        directory="/x", kind=LocationKind.LOCAL, where="here", listed_at=NOW, error="boom"
    )
    plan = plan_keep_last(failed, 1, open_for_writing=set())
    assert plan.delete == ()
    assert plan.refusal is not None
    assert "boom" in plan.refusal


def test_keep_last_of_an_incomplete_listing_deletes_nothing() -> None:
    listing = listing_of(files("a.pt", "b.pt", "c.pt")).model_copy(update={"complete": False})
    plan = plan_keep_last(listing, 1, open_for_writing=set())
    assert plan.delete == ()
    assert plan.refusal == "the listing is incomplete (see its notes); nothing deleted"
    assert {k.reasons for k in plan.keep} == {("listing incomplete",)}


_names = st.sampled_from(
    ["epoch={e}-step={s}-val_loss={v}.ckpt", "checkpoint-{s}", "model_{s:07d}.pt", "best.pt"]
)


@st.composite
def listings(draw: st.DrawFn) -> tuple[Listing, set[str]]:
    count = draw(st.integers(0, 12))
    entries: list[FileEntry] = []
    used: set[str] = set()
    for index in range(count):
        name = draw(_names).format(
            e=index, s=draw(st.integers(0, 10**6)), v=draw(st.floats(0, 10, width=16))
        )
        if name in used:
            continue
        used.add(name)
        mtime = T0 + draw(st.integers(0, 5))  # ties on purpose
        if name.startswith("checkpoint-"):
            entries.append(FileEntry((name,), 0, mtime, True))
            entries.append(FileEntry((name, "model.bin"), draw(st.integers(0, 10**9)), mtime))
        else:
            entries.append(FileEntry((name,), draw(st.integers(0, 10**9)), mtime))
    listing = listing_of(entries)
    members = sorted(m for c in listing.checkpoints for m in c.members)
    opened = set(draw(st.lists(st.sampled_from(members), max_size=3))) if members else set()
    return listing, opened


@settings(max_examples=300, deadline=None)
@given(listings(), st.integers(-2, 14))
def test_keep_last_never_deletes_newest_best_or_open(
    drawn: tuple[Listing, set[str]], n: int
) -> None:
    listing, opened = drawn
    plan = plan_keep_last(listing, n, open_for_writing=opened)
    deleted = {c.name for c in plan.delete}
    kept = {k.checkpoint.name for k in plan.keep}
    assert plan.bytes_freed == sum(c.size for c in plan.delete)
    assert not deleted & kept
    assert deleted | kept == {c.name for c in listing.checkpoints}
    for checkpoint in plan.delete:
        assert not checkpoint.newest
        assert not checkpoint.best
        assert not {checkpoint.path, *checkpoint.members} & opened
    if n < 1:
        assert not plan.delete
    else:
        assert len(kept) >= min(n, len(listing.checkpoints))
    assert all(k.reasons for k in plan.keep)


# -- warnings


def test_stale_warning() -> None:
    threshold = timedelta(minutes=30)
    assert stale_warning(NOW - timedelta(minutes=29), NOW, threshold) is None
    assert (
        stale_warning(NOW - timedelta(minutes=47), NOW, threshold, name="checkpoint-500")
        == "no new checkpoint for 47 minutes (newest: checkpoint-500)"
    )
    assert (
        stale_warning(NOW - timedelta(hours=3, minutes=5), NOW, threshold)
        == "no new checkpoint for 3 h 5 min"
    )
    assert stale_warning(None, NOW, threshold) is None
    assert stale_warning(None, NOW, threshold, since=NOW - timedelta(minutes=10)) is None
    assert (
        stale_warning(None, NOW, threshold, since=NOW - timedelta(minutes=31))
        == "no checkpoint yet, 31 minutes after the run started"
    )
    shown = stale_warning(NOW - timedelta(minutes=31), NOW, threshold, name="a\nb[/]")
    assert shown is not None
    assert "\n" not in shown


def _remote(*entries: FileEntry, directory: str = "s3://bucket/run") -> Listing:
    return build_listing(
        entries,
        directory=directory,
        kind=LocationKind.S3,
        where="s3://bucket",
        join=lambda parts: directory + "/" + "/".join(parts),
        listed_at=NOW,
    )


def test_a_copy_is_found_by_name_and_size_or_by_step() -> None:
    s3 = _remote(
        FileEntry(("checkpoint-500",), 0, T0, True),
        FileEntry(("checkpoint-500", "model.safetensors"), 1234, T0),
    )
    found = find_copy("run/checkpoint-500", 500, 1234, [s3])
    assert found.copy is not None
    assert found.warning is None
    assert find_copy("checkpoint-500", None, 1234, [s3]).copy is not None
    by_step = find_copy("checkpoint-500", 500, 999, [s3])
    assert by_step.copy is not None
    assert find_copy("checkpoint-500", None, 999, [s3]).copy is None


def test_only_on_this_instance_warning() -> None:
    s3 = _remote(FileEntry(("checkpoint-100", "model.bin"), 5, T0))
    local = Listing(
        directory="/backups/run", kind=LocationKind.LOCAL, where="this machine", listed_at=NOW
    )
    check = find_copy("checkpoint-500", 500, 3 * 1024**3, [s3, local])
    assert check.copy is None
    assert check.warning == (
        "the newest checkpoint checkpoint-500 (step 500, 3.0 GiB) exists only on this "
        "instance's disk: no copy in s3://bucket/run, /backups/run"
    )
    broken = Listing(
        directory="s3://other/run",
        kind=LocationKind.S3,
        where="s3://other",
        listed_at=NOW,
        error="access denied",
    )
    check = find_copy("best.pt", None, 10, [broken])
    assert check.warning == (
        "the newest checkpoint best.pt (10 B) exists only on this instance's disk: "
        "could not check s3://other/run"
    )
    nowhere = find_copy("best.pt", None, 10, [])
    assert nowhere.warning is not None
    assert "no S3 prefix or local directory" in nowhere.warning


# -- locations


def test_s3_urls() -> None:
    assert parse_s3_url("s3://bucket/run/ckpts/") == ("bucket", "run/ckpts/")
    assert parse_s3_url("S3://bucket") == ("bucket", "")
    for bad in ("bucket/run", "s3://", "s3://bad bucket/x", "https://bucket/x"):
        with pytest.raises(ValueError, match="^not an S3") as caught:
            parse_s3_url(bad)
        assert "\n" not in str(caught.value)


def test_sftp_paths_are_relative_to_the_home() -> None:
    assert sftp_path("~") == "."
    assert sftp_path("~/train/checkpoints") == "train/checkpoints"
    assert sftp_path("~/") == "."
    assert sftp_path("/workspace/checkpoints") == "/workspace/checkpoints"
