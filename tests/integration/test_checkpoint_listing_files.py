"""Checkpoint listings of real trees: a temp directory, the same tree over SFTP (asyncssh's
server and a real OpenSSH sshd on 127.0.0.1) and under an S3 prefix on moto's server."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import posixpath
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import boto3
import pytest

from runctl_tui.checkpoints.listing import Listing, LocationKind, find_copy, plan_keep_last
from runctl_tui.checkpoints.listing_local import list_local, watch_local
from runctl_tui.checkpoints.listing_remote import list_sftp, watch_sftp
from runctl_tui.checkpoints.listing_s3 import list_s3, s3_client, watch_s3
from runctl_tui.providers.aws import Ec2Clients
from runctl_tui.remote.ssh import SshHub, SshTarget, parse_target
from tests.integration.conftest import KEY
from tests.integration.ssh_servers import ClientKey, Sshd, add_known_host, free_port, write_host_key

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

BASE = time.time() - 10 * 3600
"""Every file of the tree is dated from here, a minute apart in the order written."""

TREE: list[tuple[str, int]] = [
    ("train.log", 50),
    ("events.out.tfevents.1700000000.gpu.1.0", 70),
    ("lightning_logs/version_0/checkpoints/epoch=0-step=100-val_loss=0.9000.ckpt", 1100),
    ("lightning_logs/version_0/checkpoints/epoch=1-step=200-val_loss=0.4123.ckpt", 1200),
    ("lightning_logs/version_0/checkpoints/epoch=2-step=300-val_loss=0.5000.ckpt", 1300),
    ("lightning_logs/version_0/hparams.yaml", 10),
    ("out/checkpoint-500/model.safetensors", 5000),
    ("out/checkpoint-500/optimizer.pt", 10000),
    ("out/checkpoint-500/trainer_state.json", 0),
    ("out/checkpoint-1000/model.safetensors", 5000),
    ("out/checkpoint-1000/optimizer.pt", 10000),
    ("out/checkpoint-1000/global_step1000/mp_rank_00_model_states.pt", 300),
    ("out/checkpoint-1000/trainer_state.json", 0),
    ("out/checkpoint-1500/model.safetensors", 5000),
    ("out/checkpoint-1500/optimizer.pt", 10000),
    ("out/checkpoint-1500/trainer_state.json", 0),
    ("out/final/model-00001-of-00002.safetensors", 4000),
    ("out/final/model-00002-of-00002.safetensors", 2000),
    ("out/final/model.safetensors.index.json", 100),
    ("out/final/config.json", 20),
    ("model_0005000.pt", 700),
    ("a/b/c/d/too-deep.pt", 1),
]


def trainer_state(step: int) -> bytes:
    """A Hugging Face trainer state at ``step``; the best so far is checkpoint-1000."""
    best = "out/checkpoint-1000" if step >= 1000 else "out/checkpoint-500"
    return json.dumps(
        {
            "global_step": step,
            "epoch": step / 500,
            "best_metric": 0.3125,
            "best_model_checkpoint": best,
            "log_history": [{"loss": 1.0 / (i + 1), "step": i} for i in range(step // 100)],
        }
    ).encode()


def contents() -> list[tuple[str, bytes, float]]:
    """The tree's files: relative path, bytes, modification time."""
    found: list[tuple[str, bytes, float]] = []
    for index, (name, size) in enumerate(TREE):
        if name.endswith("trainer_state.json"):
            data = trainer_state(int(name.split("/")[1].removeprefix("checkpoint-")))
        else:
            data = bytes(size)
        found.append((name, data, BASE + 60 * index))
    return found


def make_tree(root: Path) -> None:
    """Write the tree under ``root`` with its modification times, and a link loop."""
    for name, data, mtime in contents():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
    (root / "out" / "loop").symlink_to(root)


def size_of(*prefixes: str) -> int:
    return sum(len(data) for name, data, _ in contents() if name.startswith(prefixes))


def check_tree_listing(listing: Listing) -> None:
    """What every source must find in the tree."""
    assert listing.error is None
    assert listing.notes == ()
    names = [c.name for c in listing.checkpoints]
    assert names == [
        "model_0005000.pt",
        "out/final/model-*-of-00002.safetensors",
        "out/checkpoint-1500",
        "out/checkpoint-1000",
        "out/checkpoint-500",
        "lightning_logs/version_0/checkpoints/epoch=2-step=300-val_loss=0.5000.ckpt",
        "lightning_logs/version_0/checkpoints/epoch=1-step=200-val_loss=0.4123.ckpt",
        "lightning_logs/version_0/checkpoints/epoch=0-step=100-val_loss=0.9000.ckpt",
    ]
    by_name = {c.name: c for c in listing.checkpoints}
    assert listing.newest is by_name["model_0005000.pt"]
    assert by_name["model_0005000.pt"].step == 5000
    hf = by_name["out/checkpoint-1000"]
    assert hf.is_dir
    assert hf.size == size_of("out/checkpoint-1000/")
    assert hf.files == 4
    assert hf.step == 1000
    assert hf.epoch == 2.0  # from trainer_state.json: only the newest ones are read
    assert by_name["out/checkpoint-1500"].epoch == 3.0
    assert by_name["out/checkpoint-500"].epoch is None
    best = listing.best
    assert best is hf
    assert best.best_reason == "trainer_state.json names it best (best_metric 0.3125)"
    shards = by_name["out/final/model-*-of-00002.safetensors"]
    assert shards.size == 6100
    assert shards.complete
    assert len(shards.members) == 3
    lightning = by_name[
        "lightning_logs/version_0/checkpoints/epoch=1-step=200-val_loss=0.4123.ckpt"
    ]
    assert (lightning.epoch, lightning.step, lightning.size) == (1.0, 200, 1200)
    assert lightning.metric is not None
    assert lightning.metric.lower_is_better is True
    assert listing.total_size == sum(c.size for c in listing.checkpoints)
    assert abs(hf.modified.timestamp() - (BASE + 60 * 12)) < 1


# -- local


def test_a_local_tree(tmp_path: Path) -> None:
    make_tree(tmp_path)
    listing = list_local(tmp_path)
    check_tree_listing(listing)
    assert listing.kind is LocationKind.LOCAL
    hf = next(c for c in listing.checkpoints if c.name == "out/checkpoint-1000")
    assert hf.path == str(tmp_path / "out" / "checkpoint-1000")
    assert hf.members == (hf.path,)
    plan = plan_keep_last(listing, 2, open_for_writing=set())
    assert [c.name for c in plan.delete] == [
        "out/checkpoint-1500",
        "out/checkpoint-500",
        "lightning_logs/version_0/checkpoints/epoch=2-step=300-val_loss=0.5000.ckpt",
        "lightning_logs/version_0/checkpoints/epoch=1-step=200-val_loss=0.4123.ckpt",
        "lightning_logs/version_0/checkpoints/epoch=0-step=100-val_loss=0.9000.ckpt",
    ]
    assert plan.bytes_freed == sum(c.size for c in plan.delete)


def test_a_missing_directory_or_a_file_is_an_error_line(tmp_path: Path) -> None:
    missing = list_local(tmp_path / "nope")
    assert missing.error == f"{tmp_path / 'nope'}: no such directory"
    assert missing.checkpoints == ()
    (tmp_path / "file.pt").write_bytes(b"x")
    assert list_local(tmp_path / "file.pt").error == f"{tmp_path / 'file.pt'}: not a directory"


def test_a_tilde_path_is_the_home(isolated_environment: Path) -> None:
    (isolated_environment / "ckpts").mkdir()
    (isolated_environment / "ckpts" / "best.pt").write_bytes(b"1234")
    listing = list_local("~/ckpts")
    assert listing.directory == "~/ckpts"
    assert [c.path for c in listing.checkpoints] == [str(isolated_environment / "ckpts/best.pt")]


def test_ten_thousand_checkpoint_files(tmp_path: Path) -> None:
    for step in range(10_000):
        (tmp_path / f"step_{step:06d}.pt").touch()
    (tmp_path / "step_000042.pt").write_bytes(b"newest")
    os.utime(tmp_path / "step_000042.pt", (time.time() + 60, time.time() + 60))
    started = time.perf_counter()
    listing = list_local(tmp_path)
    print(f"\n10,000 checkpoint files listed in {time.perf_counter() - started:.3f} s")
    assert len(listing.checkpoints) == 10_000
    assert listing.newest is not None
    assert listing.newest.name == "step_000042.pt"
    assert listing.total_size == 6


def test_a_listing_cut_short_is_incomplete(tmp_path: Path) -> None:
    make_tree(tmp_path)
    listing = list_local(tmp_path, max_entries=5)
    assert not listing.complete
    assert listing.notes[-1] == "stopped after 5 files; the listing is incomplete"
    assert plan_keep_last(listing, 1, open_for_writing=set()).delete == ()
    assert list_local(tmp_path).complete


async def next_listing(listings: AsyncIterator[Listing], timeout: float = 15) -> Listing:  # noqa: ASYNC109
    return await asyncio.wait_for(anext(listings), timeout)


async def test_watching_sees_a_new_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "epoch=0-step=10.ckpt").write_bytes(b"a")
    listings = watch_local(tmp_path, debounce_ms=20)
    try:
        first = await next_listing(listings)
        assert [c.name for c in first.checkpoints] == ["epoch=0-step=10.ckpt"]
        folder = tmp_path / "checkpoint-20"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"bb")
        later = await next_listing(listings)
        while len(later.checkpoints) < 2 or later.checkpoints[0].size < 2:
            later = await next_listing(listings)
        assert later.newest is not None
        assert later.newest.name == "checkpoint-20"
    finally:
        await listings.aclose()  # type: ignore[attr-defined]


async def test_watching_a_directory_that_appears_later(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    listings = watch_local(folder, poll_seconds=0.05, debounce_ms=20)
    try:
        first = await next_listing(listings)
        assert first.error is not None
        folder.mkdir()
        (folder / "last.ckpt").write_bytes(b"x")
        later = await next_listing(listings)
        while not later.checkpoints:
            later = await next_listing(listings)
        assert later.error is None
    finally:
        await listings.aclose()  # type: ignore[attr-defined]


# -- SFTP


class HomeSftp(asyncssh.SFTPServer):
    """The real file system, with relative paths (and ``.``) starting at ``home``."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], home: Path) -> None:
        super().__init__(chan)
        self._home = os.fsencode(home)

    def map_path(self, path: bytes) -> bytes:
        """Relative paths are relative to the home, as on a real server."""
        return path if path.startswith(b"/") else posixpath.join(self._home, path)


@pytest.fixture
async def sftp_server(
    ssh_client_key: ClientKey, isolated_environment: Path, tmp_path: Path
) -> AsyncIterator[tuple[SshTarget, Path]]:
    """asyncssh's server with SFTP on 127.0.0.1 and the target reaching it; the SFTP home."""
    home = tmp_path / "remote-home"
    home.mkdir()
    host_key = write_host_key(tmp_path / "sftp_host_key")
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=str(ssh_client_key.public_path),
        sftp_factory=lambda chan: HomeSftp(chan, home),
    )
    port: int = server.sockets[0].getsockname()[1]
    add_known_host(isolated_environment, port, host_key)
    try:
        yield parse_target(f"{getpass.getuser()}@127.0.0.1:{port}"), home
    finally:
        server.close()
        await server.wait_closed()


async def test_a_tree_over_sftp(sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub) -> None:
    target, home = sftp_server
    make_tree(home / "train")
    listing = await list_sftp(ssh_hub, target, "~/train", timeout=10)
    check_tree_listing(listing)
    assert listing.kind is LocationKind.SSH
    assert listing.where == str(target)
    assert listing.directory == "~/train"
    hf = next(c for c in listing.checkpoints if c.name == "out/checkpoint-1000")
    assert hf.path == str(home / "train" / "out" / "checkpoint-1000")
    local = list_local(home / "train")
    assert [(c.name, c.size, c.step, c.best) for c in listing.checkpoints] == [
        (c.name, c.size, c.step, c.best) for c in local.checkpoints
    ]


async def test_sftp_errors_are_lines(sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub) -> None:
    target, home = sftp_server
    (home / "file.pt").write_bytes(b"x")
    missing = await list_sftp(ssh_hub, target, "~/nope", timeout=10)
    assert missing.error == "~/nope: no such directory"
    not_dir = await list_sftp(ssh_hub, target, "~/file.pt", timeout=10)
    assert not_dir.error == "~/file.pt: not a directory"
    nobody = parse_target(f"{getpass.getuser()}@127.0.0.1:{free_port()}")
    refused = await list_sftp(ssh_hub, nobody, "~/x", timeout=10)
    assert refused.error is not None
    assert "connection refused" in refused.error
    assert refused.kind is LocationKind.SSH


async def test_watching_over_sftp(sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub) -> None:
    target, home = sftp_server
    run = home / "run"
    run.mkdir()
    (run / "step_1.pt").write_bytes(b"1")
    listings = watch_sftp(ssh_hub, target, "~/run", interval=0.05, timeout=10)
    try:
        first = await next_listing(listings)
        assert [c.name for c in first.checkpoints] == ["step_1.pt"]
        (run / "step_2.pt").write_bytes(b"22")
        os.utime(run / "step_2.pt", (time.time() + 5, time.time() + 5))
        later = await next_listing(listings)
        assert later.newest is not None
        assert later.newest.name == "step_2.pt"
    finally:
        await listings.aclose()  # type: ignore[attr-defined]


async def test_a_tree_over_a_real_sshd(
    real_sshd: Sshd, isolated_environment: Path, ssh_hub: SshHub, tmp_path: Path
) -> None:
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{real_sshd.port}")
    make_tree(tmp_path / "tree")
    listing = await list_sftp(ssh_hub, target, str(tmp_path / "tree"), timeout=10)
    check_tree_listing(listing)


# -- S3


BUCKET = "runs"


def upload_tree(url: str, prefix: str) -> None:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=KEY[0],
        aws_secret_access_key=KEY[1],
    )
    client.create_bucket(Bucket=BUCKET)
    # Uploaded in order, so S3's own modification times keep the tree's order.
    for name, data, _ in contents():
        client.put_object(Bucket=BUCKET, Key=f"{prefix}{name}", Body=data)
        time.sleep(0.002)
    client.put_object(Bucket=BUCKET, Key=f"{prefix}out/", Body=b"")
    client.put_object(Bucket=BUCKET, Key="elsewhere/best.pt", Body=b"x")


def check_s3_order_insensitive(listing: Listing) -> None:
    """S3 dates objects by upload, to the second: compare what does not depend on order."""
    assert listing.error is None
    assert listing.notes == ()
    by_name = {c.name: c for c in listing.checkpoints}
    assert set(by_name) == {
        "model_0005000.pt",
        "out/final/model-*-of-00002.safetensors",
        "out/checkpoint-1500",
        "out/checkpoint-1000",
        "out/checkpoint-500",
        "lightning_logs/version_0/checkpoints/epoch=2-step=300-val_loss=0.5000.ckpt",
        "lightning_logs/version_0/checkpoints/epoch=1-step=200-val_loss=0.4123.ckpt",
        "lightning_logs/version_0/checkpoints/epoch=0-step=100-val_loss=0.9000.ckpt",
    }
    hf = by_name["out/checkpoint-1000"]
    assert hf.size == size_of("out/checkpoint-1000/")
    assert hf.files == 4
    assert hf.epoch == 2.0
    assert listing.best is hf
    assert by_name["out/final/model-*-of-00002.safetensors"].size == 6100


def test_an_s3_prefix_on_moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    upload_tree(moto_url, "exp1/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    client = s3_client(Ec2Clients(access_key=KEY))
    listing = list_s3(client, f"s3://{BUCKET}/exp1", page_size=4)
    check_s3_order_insensitive(listing)
    assert listing.kind is LocationKind.S3
    assert listing.where == "s3://runs"
    hf = next(c for c in listing.checkpoints if c.name == "out/checkpoint-1000")
    assert hf.path == "s3://runs/exp1/out/checkpoint-1000"
    whole = list_s3(client, f"s3://{BUCKET}", max_depth=4)
    assert "elsewhere/best.pt" in {c.name for c in whole.checkpoints}
    assert "exp1/out/checkpoint-1000" in {c.name for c in whole.checkpoints}


def test_s3_errors_are_lines(moto_url: str) -> None:
    client = s3_client(Ec2Clients(endpoint_url=moto_url, access_key=KEY))
    missing = list_s3(client, "s3://no-such-bucket/run")
    assert missing.error == "s3://no-such-bucket: no such bucket"
    client.create_bucket(Bucket="empty")
    empty = list_s3(client, "s3://empty/run")
    assert empty.error is None
    assert empty.notes == ("s3://empty/run/: no objects under this prefix",)
    bad = list_s3(client, "gs://bucket/x")
    assert bad.error is not None
    assert bad.error.startswith("not an S3 location")
    down = Ec2Clients(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key=KEY,
        connect_timeout=1,
        read_timeout=1,
        max_attempts=1,
    )
    unreachable = list_s3(s3_client(down), "s3://runs/x")
    assert unreachable.error is not None
    assert unreachable.error.startswith("s3://runs/x/: ")
    assert "\n" not in unreachable.error


async def test_watching_s3(moto_url: str) -> None:
    client = s3_client(Ec2Clients(endpoint_url=moto_url, access_key=KEY))
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="w/step_1.pt", Body=b"1")
    listings = watch_s3(client, f"s3://{BUCKET}/w", interval=0.05)
    try:
        first = await next_listing(listings)
        assert [c.name for c in first.checkpoints] == ["step_1.pt"]
        client.put_object(Bucket=BUCKET, Key="w/step_2.pt", Body=b"22")
        later = await next_listing(listings)
        assert {c.name for c in later.checkpoints} == {"step_1.pt", "step_2.pt"}
    finally:
        await listings.aclose()  # type: ignore[attr-defined]


async def test_the_newest_checkpoint_on_an_instance_is_found_on_s3(
    sftp_server: tuple[SshTarget, Path], ssh_hub: SshHub, moto_url: str
) -> None:
    target, home = sftp_server
    make_tree(home / "train")
    on_instance = await list_sftp(ssh_hub, target, "~/train", timeout=10)
    newest = on_instance.newest
    assert newest is not None
    client = s3_client(Ec2Clients(endpoint_url=moto_url, access_key=KEY))
    client.create_bucket(Bucket=BUCKET)
    s3_url = f"s3://{BUCKET}/backup"
    before = find_copy(newest.name, newest.step, newest.size, [list_s3(client, s3_url)])
    assert before.copy is None
    assert before.warning == (
        "the newest checkpoint model_0005000.pt (step 5000, 700 B) exists only on this "
        "instance's disk: no copy in s3://runs/backup"
    )
    client.put_object(Bucket=BUCKET, Key="backup/model_0005000.pt", Body=bytes(700))
    after = find_copy(newest.name, newest.step, newest.size, [list_s3(client, s3_url)])
    assert after.copy is not None
    assert after.copy.path == "s3://runs/backup/model_0005000.pt"
    assert after.warning is None
