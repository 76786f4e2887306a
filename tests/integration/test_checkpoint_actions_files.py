"""Deleting and downloading real checkpoints: a temp directory, SFTP on 127.0.0.1 (asyncssh's
server and a real sshd) and S3 on moto's server."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
from pathlib import Path

import boto3
import pytest

from runctl_tui.audit import Journal
from runctl_tui.checkpoints.actions import Store, delete, download, keep_last
from runctl_tui.checkpoints.listing import Checkpoint, Listing, plan_keep_last
from runctl_tui.checkpoints.listing_local import list_local
from runctl_tui.checkpoints.listing_remote import list_sftp
from runctl_tui.checkpoints.listing_s3 import list_s3, s3_client
from runctl_tui.models import Outcome
from runctl_tui.providers.aws import Ec2Clients
from runctl_tui.remote.ssh import SshHub, SshTarget, parse_target
from tests.integration.conftest import KEY
from tests.integration.ssh_servers import Sshd, add_known_host
from tests.integration.test_checkpoint_listing_files import sftp_server

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

__all__ = ["sftp_server"]


def make_run(root: Path) -> None:
    """Three step files, a Hugging Face directory and a shard set, a minute apart."""
    base = time.time() - 3600
    files = {
        "step_100.pt": 100,
        "step_200.pt": 200,
        "checkpoint-300/model.safetensors": 300,
        "checkpoint-300/sub/optimizer.pt": 30,
        "final/model-00001-of-00002.safetensors": 40,
        "final/model-00002-of-00002.safetensors": 50,
        "final/model.safetensors.index.json": 5,
        "step_400.pt": 400,
    }
    for n, (name, size) in enumerate(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        os.utime(path, (base + 60 * n, base + 60 * n))


def by_name(listing: Listing, name: str) -> Checkpoint:
    return next(c for c in listing.checkpoints if c.name == name)


def journal_lines(journal: Journal) -> list[dict[str, str]]:
    return [json.loads(line) for line in journal.path.read_text().splitlines()]


# -- deleting on this machine


async def test_delete_is_journaled_before_and_after(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    journal = Journal(tmp_path / "journal.jsonl")
    listing = list_local(run)
    for name in ("step_100.pt", "checkpoint-300", "final/model-*-of-00002.safetensors"):
        result = await delete(by_name(listing, name), listing, Store.local(), journal)
        assert result.outcome is Outcome.DONE, result.message
        assert result.message.startswith("deleted ")
    assert not (run / "step_100.pt").exists()
    assert not (run / "checkpoint-300").exists()
    assert sorted(p.name for p in (run / "final").iterdir()) == []
    assert (run / "step_200.pt").exists()
    lines = journal_lines(journal)
    assert [(line["action"], line["result"]) for line in lines] == [
        ("delete-checkpoint", "attempted"),
        ("delete-checkpoint", "done"),
    ] * 3
    assert lines[0]["id"] == str(run / "step_100.pt")
    assert lines[1]["state_after"] == "deleted"


async def test_refused_when_changed_since_listed(tmp_path: Path) -> None:
    make_run(tmp_path)
    journal = Journal(tmp_path / "j" / "journal.jsonl")
    listing = list_local(tmp_path)
    (tmp_path / "step_200.pt").write_bytes(b"grown" * 100)
    (tmp_path / "checkpoint-300" / "sub" / "more.bin").write_bytes(b"x")
    for name in ("step_200.pt", "checkpoint-300"):
        result = await delete(by_name(listing, name), listing, Store.local(), journal)
        assert result.outcome is Outcome.REFUSED
        assert "changed since listed" in result.message
    assert (tmp_path / "step_200.pt").exists()
    assert (tmp_path / "checkpoint-300" / "model.safetensors").exists()
    assert [line["result"] for line in journal_lines(journal)] == ["refused", "refused"]
    (tmp_path / "step_100.pt").unlink()
    gone = await delete(by_name(listing, "step_100.pt"), listing, Store.local(), journal)
    assert gone.outcome is Outcome.REFUSED
    assert "gone since listed" in gone.message


async def test_refused_outside_the_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    outside = tmp_path / "precious.pt"
    outside.write_bytes(b"keep me")
    journal = Journal(tmp_path / "journal.jsonl")
    listing = list_local(run)
    real = by_name(listing, "step_100.pt")
    for forged in (str(outside), str(run / ".." / "precious.pt")):
        sneaky = real.model_copy(update={"members": (forged,)})
        hacked = listing.model_copy(update={"checkpoints": (sneaky,)})
        result = await delete(sneaky, hacked, Store.local(), journal)
        assert result.outcome is Outcome.REFUSED
        assert "outside the listed directory" in result.message
    assert outside.read_bytes() == b"keep me"
    not_listed = await delete(
        real.model_copy(update={"path": "/x"}), listing, Store.local(), journal
    )
    assert not_listed.outcome is Outcome.REFUSED
    assert "not in the listing" in not_listed.message


async def test_refused_through_an_escaping_link(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.pt").write_bytes(b"w" * 10)
    (run / "best.pt").symlink_to(elsewhere / "weights.pt")
    (run / "data").symlink_to(elsewhere)
    os.symlink(elsewhere, run / "checkpoint-9")
    journal = Journal(tmp_path / "journal.jsonl")
    listing = list_local(run)
    best = by_name(listing, "best.pt")
    result = await delete(best, listing, Store.local(), journal)
    assert result.outcome is Outcome.REFUSED
    assert "link leading outside" in result.message
    through = best.model_copy(update={"members": (str(run / "data" / "weights.pt"),)})
    hacked = listing.model_copy(update={"checkpoints": (through,)})
    result = await delete(through, hacked, Store.local(), journal)
    assert result.outcome is Outcome.REFUSED
    assert "outside the listed directory" in result.message
    assert (elsewhere / "weights.pt").read_bytes() == b"w" * 10


async def test_refused_while_open_for_writing(tmp_path: Path) -> None:
    make_run(tmp_path)
    journal = Journal(tmp_path / "j.jsonl")
    listing = list_local(tmp_path)
    target = tmp_path / "step_400.pt"
    with target.open("r+b"):
        result = await delete(by_name(listing, "step_400.pt"), listing, Store.local(), journal)
    assert result.outcome is Outcome.REFUSED
    assert "open for writing" in result.message
    assert target.exists()


async def test_keep_last_stops_at_the_first_failure(tmp_path: Path) -> None:
    make_run(tmp_path)
    journal = Journal(tmp_path / "j.jsonl")
    listing = list_local(tmp_path)
    plan = plan_keep_last(listing, 1, open_for_writing=set())
    assert [c.name for c in plan.delete] == [
        "final/model-*-of-00002.safetensors",
        "checkpoint-300",
        "step_200.pt",
        "step_100.pt",
    ]
    (tmp_path / "step_200.pt").write_bytes(b"changed")
    done = await keep_last(plan, listing, Store.local(), journal)
    assert [r.outcome for r in done.results] == [Outcome.DONE, Outcome.DONE, Outcome.REFUSED]
    assert done.message.startswith("kept the last 1: deleted 2 of 4, ")
    assert "stopped: " in done.message
    assert (tmp_path / "step_100.pt").exists()
    assert [line["result"] for line in journal_lines(journal)] == [
        "attempted",
        "done",
        "attempted",
        "done",
        "refused",
    ]


# -- SFTP


async def test_download_over_sftp(
    sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub, tmp_path: Path
) -> None:
    target, home = sftp_server
    make_run(home / "run")
    listing = await list_sftp(ssh_hub, target, "~/run", timeout=10)
    store = Store.sftp(ssh_hub, target)
    out = tmp_path / "downloads"
    out.mkdir()
    seen: list[tuple[int, int]] = []
    for name in ("step_400.pt", "checkpoint-300", "final/model-*-of-00002.safetensors"):
        checkpoint = by_name(listing, name)
        result = await download(checkpoint, out, store, progress=lambda d, t: seen.append((d, t)))
        assert result.outcome is Outcome.DONE, result.message
        assert "size verified" in result.message
    assert (out / "step_400.pt").read_bytes() == (home / "run" / "step_400.pt").read_bytes()
    assert (out / "checkpoint-300" / "sub" / "optimizer.pt").stat().st_size == 30
    assert sorted(p.name for p in (out / "final").iterdir()) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    assert seen[-1] == (95, 95)
    assert not list(out.glob("*.part"))
    again = await download(by_name(listing, "step_400.pt"), out, store)
    assert again.outcome is Outcome.DONE
    assert "already downloaded" in again.message
    (out / "step_400.pt").write_bytes(b"other")
    clash = await download(by_name(listing, "step_400.pt"), out, store)
    assert clash.outcome is Outcome.REFUSED
    assert "not overwriting" in clash.message
    assert (out / "step_400.pt").read_bytes() == b"other"
    (home / "run" / "step_200.pt").write_bytes(b"short")
    changed = await download(by_name(listing, "step_200.pt"), out, store)
    assert changed.outcome is Outcome.FAILED
    assert "changed since listed" in changed.message
    assert not (out / "step_200.pt.part").exists()


async def test_delete_over_sftp(
    sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub, tmp_path: Path
) -> None:
    target, home = sftp_server
    make_run(home / "run")
    listing = await list_sftp(ssh_hub, target, "~/run", timeout=10)
    journal = Journal(tmp_path / "j.jsonl")
    store = Store.sftp(ssh_hub, target)
    result = await delete(by_name(listing, "checkpoint-300"), listing, store, journal)
    assert result.outcome is Outcome.DONE, result.message
    assert "open files on the host are not checked" in result.message
    assert not (home / "run" / "checkpoint-300").exists()
    (home / "run" / "step_100.pt").write_bytes(b"new")
    refused = await delete(by_name(listing, "step_100.pt"), listing, store, journal)
    assert refused.outcome is Outcome.REFUSED
    assert "changed since listed" in refused.message


async def test_cancelled_sftp_download_leaves_nothing(
    sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub, tmp_path: Path
) -> None:
    target, home = sftp_server
    (home / "big").mkdir()
    (home / "big" / "huge.pt").write_bytes(os.urandom(64 * 1024 * 1024))
    listing = await list_sftp(ssh_hub, target, "~/big", timeout=10)
    out = tmp_path / "out"
    out.mkdir()
    started = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done > 0:
            started.set()

    task = asyncio.create_task(
        download(listing.checkpoints[0], out, Store.sftp(ssh_hub, target), progress=progress)
    )
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(out.iterdir()) == []


async def test_download_over_a_real_sshd(
    real_sshd: Sshd, isolated_environment: Path, ssh_hub: SshHub, tmp_path: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{real_sshd.port}")
    make_run(tmp_path / "run")
    listing = await list_sftp(ssh_hub, target, str(tmp_path / "run"), timeout=10)
    out = tmp_path / "out"
    out.mkdir()
    result = await download(by_name(listing, "checkpoint-300"), out, Store.sftp(ssh_hub, target))
    assert result.outcome is Outcome.DONE, result.message
    assert (out / "checkpoint-300" / "model.safetensors").read_bytes() == (
        tmp_path / "run" / "checkpoint-300" / "model.safetensors"
    ).read_bytes()


# -- S3


BUCKET = "ckpts"


def upload_run(url: str, root: Path) -> None:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=KEY[0],
        aws_secret_access_key=KEY[1],
    )
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = f"exp/{path.relative_to(root).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    client.put_object(Bucket=BUCKET, Key="other/step_1.pt", Body=b"keep")


@pytest.fixture
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[object, Path]:
    make_run(tmp_path / "src")
    upload_run(moto_url, tmp_path / "src")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return s3_client(Ec2Clients(access_key=KEY)), tmp_path / "src"


async def test_download_from_s3(s3: tuple[object, Path], tmp_path: Path) -> None:
    client, src = s3
    listing = await asyncio.to_thread(list_s3, client, f"s3://{BUCKET}/exp")
    out = tmp_path / "out"
    out.mkdir()
    store = Store.s3_client(client)
    seen: list[tuple[int, int]] = []
    for name in ("step_400.pt", "checkpoint-300", "final/model-*-of-00002.safetensors"):
        result = await download(
            by_name(listing, name), out, store, progress=lambda d, t: seen.append((d, t))
        )
        assert result.outcome is Outcome.DONE, result.message
    await asyncio.sleep(0.05)
    assert (out / "step_400.pt").read_bytes() == (src / "step_400.pt").read_bytes()
    assert (out / "checkpoint-300" / "sub" / "optimizer.pt").read_bytes() == (
        src / "checkpoint-300" / "sub" / "optimizer.pt"
    ).read_bytes()
    assert len(list((out / "final").iterdir())) == 3
    assert (400, 400) in seen
    stale = by_name(listing, "step_200.pt").model_copy(update={"size": 999})
    result = await download(stale, out, store)
    assert result.outcome is Outcome.FAILED
    assert "changed since listed" in result.message
    assert not list(out.glob("*.part"))


async def test_cancelled_s3_download_leaves_nothing(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    client = s3_client(Ec2Clients(access_key=KEY))
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="big/huge.pt", Body=os.urandom(48 * 1024 * 1024))
    listing = await asyncio.to_thread(list_s3, client, f"s3://{BUCKET}/big")
    out = tmp_path / "out"
    out.mkdir()
    started = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done > 0:
            started.set()

    task = asyncio.create_task(
        download(listing.checkpoints[0], out, Store.s3_client(client), progress=progress)
    )
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not list(out.iterdir()):
            break
        await asyncio.sleep(0.05)
    assert list(out.iterdir()) == []


async def test_delete_on_s3(s3: tuple[object, Path], tmp_path: Path) -> None:
    client, _ = s3
    listing = await asyncio.to_thread(list_s3, client, f"s3://{BUCKET}/exp")
    journal = Journal(tmp_path / "j.jsonl")
    store = Store.s3_client(client)
    result = await delete(by_name(listing, "checkpoint-300"), listing, store, journal)
    assert result.outcome is Outcome.DONE, result.message
    sneaky = by_name(listing, "step_100.pt").model_copy(
        update={"members": (f"s3://{BUCKET}/other/step_1.pt",)}
    )
    hacked = listing.model_copy(update={"checkpoints": (sneaky,)})
    refused = await delete(sneaky, hacked, store, journal)
    assert refused.outcome is Outcome.REFUSED
    assert "outside the listed prefix" in refused.message
    after = await asyncio.to_thread(list_s3, client, f"s3://{BUCKET}/exp")
    assert "checkpoint-300" not in {c.name for c in after.checkpoints}
    keys = client.list_objects_v2(Bucket=BUCKET, Prefix="other/")  # type: ignore[attr-defined]
    assert [o["Key"] for o in keys["Contents"]] == ["other/step_1.pt"]
