"""The newest checkpoint of an instance, and whether a copy of it is kept elsewhere."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

from runctl_tui.checkpoints.copies import check_copies, default_lister, newest_checkpoint
from runctl_tui.checkpoints.writer import Model, write_checkpoint
from runctl_tui.models import Instance
from runctl_tui.providers.base import CheckpointLocation
from tests.fakes import make_instance

SMALL = Model(vocab=16, hidden=8, intermediate=8, layers=1, kv_hidden=8)


class Places:
    """A fleet whose every instance keeps its checkpoints in ``dirs``."""

    def __init__(self, *dirs: Path) -> None:
        self.dirs = dirs

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        return [CheckpointLocation(str(d)) for d in self.dirs]


def save(directory: Path, step: int, seconds_ago: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"model_{step:07d}.pt"
    write_checkpoint(path, SMALL, global_step=step)
    moment = time.time() - seconds_ago
    os.utime(path, (moment, moment))
    return path


def test_the_newest_across_every_directory(tmp_path: Path) -> None:
    save(tmp_path / "a", 100, 300)
    save(tmp_path / "b", 200, 60)
    save(tmp_path / "b", 150, 120)

    found = asyncio.run(
        newest_checkpoint(Places(tmp_path / "a", tmp_path / "b"), make_instance(), default_lister())
    )

    assert found.checkpoint is not None
    assert found.checkpoint.basename() == "model_0000200.pt"
    assert len(found.listings) == 2


def test_no_copy_gives_the_warning_and_a_copy_silences_it(tmp_path: Path) -> None:
    newest = save(tmp_path / "disk", 200, 10)
    save(tmp_path / "disk", 100, 100)
    backup = tmp_path / "backup"
    save(backup, 100, 100)
    fleet = Places(tmp_path / "disk")

    check = asyncio.run(check_copies(fleet, make_instance(), [str(backup)], default_lister()))

    assert check is not None
    assert check.copy is None
    assert check.warning is not None
    assert "model_0000200.pt" in check.warning
    assert "exists only on this instance's disk" in check.warning

    shutil.copy(newest, backup / newest.name)
    check = asyncio.run(check_copies(fleet, make_instance(), [str(backup)], default_lister()))
    assert check is not None
    assert check.warning is None
    assert check.copy is not None
    assert check.copy.basename() == newest.name


def test_nothing_to_lose_and_nowhere_configured(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    fleet = Places(tmp_path / "empty")
    assert asyncio.run(check_copies(fleet, make_instance(), [], default_lister())) is None

    save(tmp_path / "disk", 5, 0)
    check = asyncio.run(
        check_copies(Places(tmp_path / "disk"), make_instance(), [], default_lister())
    )
    assert check is not None
    assert check.warning is not None
    assert "no S3 prefix or local directory is configured" in check.warning


def test_unreachable_copies_are_named_not_raised(tmp_path: Path) -> None:
    save(tmp_path / "disk", 5, 0)
    copies = ["s3://bucket/prefix", "ssh://me@127.0.0.1:1/x", str(tmp_path / "missing")]

    check = asyncio.run(
        check_copies(Places(tmp_path / "disk"), make_instance(), copies, default_lister())
    )

    assert check is not None
    assert check.warning is not None
    assert "could not check" in check.warning
    assert "\n" not in check.warning
