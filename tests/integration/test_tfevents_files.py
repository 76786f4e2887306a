"""TensorBoard event files on disk and over SFTP from a real OpenSSH sshd on 127.0.0.1: appends
between polls, records cut mid-write, a 150 MB file read in bounded polls, newest files first."""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

import pytest

from runctl_tui.logs.tfevents import (
    ScalarPoint,
    find_event_files,
    find_event_files_sftp,
    local_reader,
    sftp_reader,
)
from runctl_tui.remote.ssh import SshHub, parse_target
from tests.integration.ssh_servers import Sshd, add_known_host
from tests.unit.test_tfevents import (
    event_file,
    frame,
    image_event,
    simple_scalar,
    tensor_scalar,
    version_event,
)

pytest_plugins = ["tests.integration.conftest_ssh"]
pytestmark = pytest.mark.integration

NAME = "events.out.tfevents.1700000000.gpu-host.4242.0"


def test_a_local_file_read_as_a_training_run_appends_to_it(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(event_file())
    reader = local_reader(path)
    assert reader.poll() == []
    assert reader.file_version == "brain.Event:2"
    got: list[ScalarPoint] = []
    with path.open("ab", buffering=0) as file:
        for step in range(1, 50):
            record = frame(simple_scalar("train/loss", step, 1.0 / step))
            record += frame(tensor_scalar("train/lr", step, 0.001))
            half = len(record) // 2 + step % 7
            file.write(record[:half])
            got += reader.poll()
            file.write(record[half:])
            got += reader.poll()
    assert [(p.tag, p.step) for p in got] == [
        (tag, step) for step in range(1, 50) for tag in ("train/loss", "train/lr")
    ]
    assert reader.offset == path.stat().st_size
    assert reader.take_notes() == []


def test_a_missing_file_is_an_error_line_not_an_exception(tmp_path: Path) -> None:
    reader = local_reader(tmp_path / NAME)
    assert reader.poll() == []
    assert reader.error is not None
    assert NAME in reader.error
    assert "\n" not in reader.error


def _image_heavy_file(path: Path, target_bytes: int) -> int:
    """A file like those of a run that logs many images: ~100 KB image records with scalars
    between them. Twenty image records are reused so that writing it stays quick."""
    images = [frame(image_event("samples", step, 100_000)) for step in range(20)]
    steps = 0
    with path.open("wb") as file:
        written = file.write(frame(version_event()))
        while written < target_bytes:
            steps += 1
            written += file.write(frame(simple_scalar("train/loss", steps, 1.0 / steps)))
            written += file.write(frame(tensor_scalar("train/acc", steps, 0.5)))
            written += file.write(images[steps % len(images)])
    return steps


def test_a_150_mb_file_is_read_in_bounded_polls(tmp_path: Path) -> None:
    path = tmp_path / NAME
    steps = _image_heavy_file(path, 150 * 1024 * 1024)
    reader = local_reader(path)
    started = time.perf_counter()
    polls = 0
    points = 0
    last_step = 0
    while reader.offset < path.stat().st_size and polls < 100:
        batch = reader.poll()
        polls += 1
        points += len(batch)
        if batch:
            assert batch[0].step >= last_step
            last_step = batch[-1].step
    elapsed = time.perf_counter() - started
    print(f"\n150 MB image-heavy event file: {elapsed:.2f} s in {polls} polls, {points} points")
    assert points == 2 * steps
    assert polls > 1  # bounded per poll, never the whole file at once
    assert reader.take_notes() == []
    assert elapsed < 60  # loose: the speed itself is measured in bench/


def test_scalar_only_files_report_their_rate(tmp_path: Path) -> None:
    path = tmp_path / NAME
    with path.open("wb") as file:
        file.write(frame(version_event()))
        for step in range(1, 100_001):
            file.write(frame(simple_scalar("train/loss", step, 1.0 / step, 1.7e9 + step)))
    size = path.stat().st_size
    reader = local_reader(path)
    started = time.perf_counter()
    points = reader.poll()
    elapsed = time.perf_counter() - started
    print(f"\nscalar-only: {size / 1e6:.1f} MB, {len(points)} points in {elapsed:.2f} s")
    assert len(points) == 100_000
    assert points[-1] == ScalarPoint("train/loss", 100_000, 1.7e9 + 100_000, points[-1].value)


def test_newest_event_files_first(tmp_path: Path) -> None:
    (tmp_path / "train.log").write_text("not an event file")
    (tmp_path / "events.out.tfevents.sub").mkdir()
    names = [f"events.out.tfevents.{1700000000 + i}.host.1.0" for i in range(3)]
    for age, name in zip((300, 100, 200), names, strict=True):
        (tmp_path / name).write_bytes(event_file())
        os.utime(tmp_path / name, (time.time() - age, time.time() - age))
    nested = tmp_path / "run2" / "events.out.tfevents.1800000000.host.1.0"
    nested.parent.mkdir()
    nested.write_bytes(event_file())
    assert [p.name for p in find_event_files(tmp_path)] == [names[1], names[2], names[0]]
    assert find_event_files(tmp_path, recursive=True)[0] == nested
    assert find_event_files(tmp_path / "missing") == []


@pytest.fixture
def sshd_hub(real_sshd: Sshd, isolated_environment: Path, ssh_hub: SshHub) -> SshHub:
    """The hub, trusting the local sshd."""
    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    return ssh_hub


async def test_a_remote_file_read_over_sftp_as_it_grows(
    real_sshd: Sshd, sshd_hub: SshHub, tmp_path: Path
) -> None:
    target = parse_target(f"{getpass.getuser()}@127.0.0.1:{real_sshd.port}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / NAME
    path.write_bytes(event_file(simple_scalar("loss", 1, 1.0)))
    older = run_dir / "events.out.tfevents.1600000000.gpu-host.1.0"
    older.write_bytes(event_file())
    os.utime(older, (time.time() - 3600, time.time() - 3600))

    connection = await sshd_hub.connection(target)
    async with connection.start_sftp_client() as sftp:
        assert await find_event_files_sftp(sftp, str(run_dir)) == [str(path), str(older)]
        assert await find_event_files_sftp(sftp, str(tmp_path / "missing")) == []

        reader = sftp_reader(sftp, str(path), timeout=10)
        assert [(p.tag, p.step) for p in await reader.poll()] == [("loss", 1)]
        record = frame(simple_scalar("loss", 2, 0.5))
        with path.open("ab", buffering=0) as file:
            file.write(record[:9])
            assert await reader.poll() == []
            file.write(record[9:] + frame(image_event("img", 2, 10_000)))
        assert [(p.tag, p.step, p.value) for p in await reader.poll()] == [("loss", 2, 0.5)]
        assert reader.offset == path.stat().st_size

        missing = sftp_reader(sftp, str(run_dir / "gone"), timeout=10)
        assert await missing.poll() == []
        assert missing.error is not None
        assert "gone" in missing.error
