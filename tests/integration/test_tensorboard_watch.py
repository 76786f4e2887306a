"""TensorBoard scalars beside a followed log: event files found where trainers write them, read
as they grow, on disk and over SFTP (asyncssh's server and a real OpenSSH sshd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from runctl_tui.logs.tensorboard import MAX_NOTES, TensorBoardWatch, kind
from runctl_tui.remote.ssh import SshHub, parse_target
from tests.integration.ssh_servers import ClientKey, Sshd, add_known_host, free_port, write_host_key
from tests.unit.test_tfevents import event_file, frame, simple_scalar, tensor_scalar

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration


def event_name(stamp: int) -> str:
    """An event file name as PyTorch's SummaryWriter makes it."""
    return f"events.out.tfevents.{stamp}.gpu-host.4242.0"


def losses(steps: range, tag: str = "train/loss") -> bytes:
    """Records of a falling loss at ``steps``."""
    return b"".join(frame(simple_scalar(tag, step, 1.0 / step)) for step in steps)


def age(path: Path, seconds: float) -> None:
    """Set ``path``'s modification time ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run's directory with its log, as a training script leaves it."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text("step 1 loss 1.0\n")
    return run


def test_tags_are_told_apart_and_the_losses_recognised() -> None:
    for tag in ("train/loss", "loss", "Loss/train", "epoch_loss", "train/loss_step", "train_loss"):
        assert kind(tag) == "loss", tag
    for tag in ("eval/loss", "val_loss", "Loss/val", "validation/epoch_loss", "valid/loss_epoch"):
        assert kind(tag) == "eval_loss", tag
    for tag in ("lr", "learning_rate", "train/learning_rate", "lr-Adam", "lr/pg0", "lr_0"):
        assert kind(tag) == "lr", tag
    for tag in ("kl_loss", "loss/aux", "eval/runtime", "grad_norm", "eval/lr", "accuracy"):
        assert kind(tag) is None, tag


async def test_a_local_run_is_found_and_read_as_it_grows(run_dir: Path) -> None:
    hf = run_dir / "runs" / "Nov23_12-00-00_gpu-host"
    hf.mkdir(parents=True)
    path = hf / event_name(1700000000)
    path.write_bytes(event_file(*(simple_scalar("train/loss", s, 1.0 / s) for s in range(1, 4))))
    watch = TensorBoardWatch(str(run_dir / "train.log"))

    assert await watch.scan()
    assert watch.files == [str(path)]
    assert watch.run_directory == str(hf)
    assert await watch.poll()
    assert watch.loss_tag() == "train/loss"
    assert [x for x, _ in watch.points("train/loss")] == [1.0, 2.0, 3.0]

    assert not await watch.poll()  # nothing new: nothing changed
    record = frame(simple_scalar("train/loss", 4, 0.25)) + frame(tensor_scalar("eval/loss", 4, 0.5))
    with path.open("ab", buffering=0) as file:
        file.write(record[:20])
        assert not await watch.poll()  # half a record waits
        file.write(record[20:])
    assert await watch.poll()
    assert watch.points("train/loss")[-1] == (4.0, 0.25)
    assert watch.eval_loss_tag() == "eval/loss"
    assert watch.points("eval/loss") == [(4.0, 0.5)]
    assert watch.latest("eval/loss") == 0.5
    assert watch.notes == []


async def test_a_restart_writes_a_new_file_found_at_the_next_search(run_dir: Path) -> None:
    first = run_dir / event_name(1700000000)
    first.write_bytes(event_file() + losses(range(1, 11)))
    age(first, 60)
    watch = TensorBoardWatch(str(run_dir / "train.log"))
    await watch.scan()
    await watch.poll()
    assert len(watch.points("train/loss")) == 10

    # Resumed from the checkpoint of step 6: steps 6 to 10 are written again, TensorBoard's way.
    second = run_dir / event_name(1700000600)
    second.write_bytes(event_file() + losses(range(6, 13)))
    assert await watch.scan()
    assert watch.files == [str(first), str(second)]
    await watch.poll()
    assert [x for x, _ in watch.points("train/loss")] == [float(s) for s in range(1, 13)]
    assert not await watch.scan()  # the same files: nothing changed


async def test_a_damaged_record_is_noted_and_the_rest_read(run_dir: Path) -> None:
    path = run_dir / event_name(1700000000)
    records = [frame(simple_scalar("loss", step, float(step))) for step in range(1, 4)]
    damaged = bytearray(records[1])
    damaged[-8] ^= 0x40
    path.write_bytes(event_file() + records[0] + bytes(damaged) + records[2])
    watch = TensorBoardWatch(str(run_dir / "train.log"))
    await watch.scan()

    assert await watch.poll()
    assert [x for x, _ in watch.points("loss")] == [1.0, 3.0]
    (note,) = watch.notes
    assert "checksum" in note
    assert path.name in note
    assert "\n" not in note


async def test_a_file_that_is_not_an_event_file_is_noted_once(run_dir: Path) -> None:
    (run_dir / event_name(1700000000)).write_bytes(b"\x1b[31m[red]not an event file\n" * 10)
    watch = TensorBoardWatch(str(run_dir / "train.log"))
    await watch.scan()
    await watch.poll()
    await watch.poll()

    (note,) = watch.notes
    assert "stopped reading" in note
    assert "\x1b" not in note
    assert watch.tags() == []


async def test_a_vanished_file_is_dropped_quietly(run_dir: Path) -> None:
    path = run_dir / event_name(1700000000)
    path.write_bytes(event_file() + losses(range(1, 3)))
    watch = TensorBoardWatch(str(run_dir / "train.log"))
    await watch.scan()
    await watch.poll()
    path.unlink()

    assert await watch.poll()
    assert watch.files == []
    assert watch.notes == []
    assert len(watch.points("train/loss")) == 2  # what was read stays shown


async def test_notes_are_bounded(run_dir: Path) -> None:
    blob = bytearray(event_file() + losses(range(1, 200)))
    for at in range(300, len(blob), 97):
        blob[at] ^= 0x01
    (run_dir / event_name(1700000000)).write_bytes(bytes(blob))
    watch = TensorBoardWatch(str(run_dir / "train.log"))
    await watch.scan()
    await watch.poll()
    assert 0 < len(watch.notes) <= MAX_NOTES


async def test_a_long_run_is_kept_to_a_bounded_even_series(run_dir: Path) -> None:
    (run_dir / event_name(1700000000)).write_bytes(event_file() + losses(range(1, 10_001)))
    watch = TensorBoardWatch(str(run_dir / "train.log"), capacity=2000)
    await watch.scan()
    await watch.poll()
    points = watch.points("train/loss")
    assert 1000 <= len(points) <= 2000
    steps = [x for x, _ in points]
    assert steps == sorted(steps)
    assert steps[-1] == 10_000.0
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    assert len(gaps) <= 2  # evenly spaced (the newest point may stand for fewer steps)


async def test_the_search_is_bounded_to_usual_places_and_given_ones(
    run_dir: Path, tmp_path: Path
) -> None:
    elsewhere = run_dir / "checkpoints" / "step-100"
    too_deep = run_dir / "runs" / "a" / "b" / "c"
    given = tmp_path / "tb-out" / "exp1"
    for directory in (elsewhere, too_deep, given):
        directory.mkdir(parents=True)
        (directory / event_name(1700000000)).write_bytes(event_file() + losses(range(1, 3)))
    log = str(run_dir / "train.log")

    assert not await TensorBoardWatch(log).scan()
    watch = TensorBoardWatch(log, dirs=["../tb-out"])
    assert await watch.scan()
    assert watch.files == [str(given / event_name(1700000000))]


async def test_keras_train_and_validation_directories_are_one_run(run_dir: Path) -> None:
    for phase, value in (("train", 0.9), ("validation", 1.1)):
        directory = run_dir / "logs" / "fit" / phase
        directory.mkdir(parents=True)
        path = directory / event_name(1700000000)
        path.write_bytes(event_file(tensor_scalar("epoch_loss", 1, value)))
    watch = TensorBoardWatch(str(run_dir / "train.log"))
    await watch.scan()
    await watch.poll()

    assert sorted(watch.tags()) == ["train/epoch_loss", "validation/epoch_loss"]
    assert watch.loss_tag() == "train/epoch_loss"
    assert watch.eval_loss_tag() == "validation/epoch_loss"


async def test_run_calls_back_on_change_until_closed(run_dir: Path) -> None:
    changed = asyncio.Event()
    watch = TensorBoardWatch(str(run_dir / "train.log"), poll_seconds=0.02, rescan_seconds=0.05)
    task = asyncio.create_task(watch.run(changed.set))
    await asyncio.sleep(0.1)
    assert not changed.is_set()

    path = run_dir / "lightning_logs" / "version_0" / event_name(1700000000)
    path.parent.mkdir(parents=True)
    path.write_bytes(event_file() + losses(range(1, 5), "train_loss_step"))
    await asyncio.wait_for(changed.wait(), 5)
    assert watch.loss_tag() == "train_loss_step"

    changed.clear()
    with path.open("ab") as file:
        file.write(losses(range(5, 7), "train_loss_step"))
    await asyncio.wait_for(changed.wait(), 5)
    assert len(watch.points("train_loss_step")) == 6

    await watch.close()
    await asyncio.wait_for(task, 5)


# -- over SFTP ---------------------------------------------------------------------------------


@pytest.fixture
async def asyncssh_sftp(
    ssh_client_key: ClientKey, isolated_environment: Path, tmp_path: Path
) -> AsyncIterator[int]:
    """asyncssh's server with its SFTP subsystem on 127.0.0.1, trusted; its port."""
    host_key = write_host_key(tmp_path / "host_key")
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=str(ssh_client_key.public_path),
        sftp_factory=True,
    )
    port: int = server.sockets[0].getsockname()[1]
    add_known_host(isolated_environment, port, host_key)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(params=["asyncssh", "sshd"])
def sftp_port(request: pytest.FixtureRequest, isolated_environment: Path) -> int:
    """An SFTP server on 127.0.0.1 the hub trusts: asyncssh's, then a real OpenSSH sshd."""
    if request.param == "asyncssh":
        port: int = request.getfixturevalue("asyncssh_sftp")
        return port
    sshd: Sshd = request.getfixturevalue("real_sshd")
    add_known_host(isolated_environment, sshd.port, sshd.host_key)
    return sshd.port


async def test_a_remote_run_read_over_sftp_as_it_grows(
    sftp_port: int, ssh_hub: SshHub, run_dir: Path
) -> None:
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{sftp_port}")
    tb = run_dir / "tb"
    tb.mkdir()
    old = tb / event_name(1700000000)
    old.write_bytes(event_file() + losses(range(1, 4)))
    age(old, 120)
    (run_dir / "tb" / "notes.txt").write_text("not an event file")
    watch = TensorBoardWatch(str(run_dir / "train.log"), target=target, hub=ssh_hub, timeout=10)
    try:
        assert await watch.scan()
        assert watch.files == [str(old)]
        assert await watch.poll()
        assert [x for x, _ in watch.points("train/loss")] == [1.0, 2.0, 3.0]

        new = tb / event_name(1700000600)
        new.write_bytes(event_file() + losses(range(4, 6)))
        record = frame(tensor_scalar("eval/loss", 5, 0.75))
        with new.open("ab", buffering=0) as file:
            file.write(record[:7])
            assert await watch.scan()
            await watch.poll()
            assert watch.eval_loss_tag() is None
            file.write(record[7:])
        assert await watch.poll()
        assert watch.points("eval/loss") == [(5.0, 0.75)]
        assert [x for x, _ in watch.points("train/loss")] == [1.0, 2.0, 3.0, 4.0, 5.0]

        damaged = bytearray(frame(simple_scalar("train/loss", 6, 0.1)))
        damaged[-8] ^= 0x40
        with new.open("ab") as file:
            file.write(bytes(damaged) + losses(range(7, 8)))
        assert await watch.poll()
        assert watch.points("train/loss")[-1][0] == 7.0
        assert any("checksum" in note for note in watch.notes)

        old.unlink()
        await watch.poll()
        assert watch.files == [str(new)]
    finally:
        await watch.close()


async def test_an_unreachable_host_is_a_note_not_an_exception(
    ssh_hub: SshHub, run_dir: Path
) -> None:
    target = parse_target(f"nobody@127.0.0.1:{free_port()}")
    watch = TensorBoardWatch("/srv/run/train.log", target=target, hub=ssh_hub, timeout=5)
    assert await watch.scan()
    (note,) = watch.notes
    assert "cannot look for event files" in note
    assert "\n" not in note
    await watch.close()
