"""The checkpoints pane over a real directory: listing, new checkpoints appearing, inspection,
hostile names, a missing directory, opening at start, and a snapshot."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from runctl_tui.audit import Journal
from runctl_tui.config import Settings
from runctl_tui.services.fleet import Fleet
from runctl_tui.tui.app import RunctlApp
from runctl_tui.tui.panes.checkpoints import HOW_TO_OPEN, CheckpointsPane, row_cells
from runctl_tui.tui.screens.main import MainScreen

from .conftest import NOW, AppFactory

SIZE = (120, 36)
SnapCompare = Callable[..., bool]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"

ORDER = [
    "arrays.npz",
    "legacy.pt",
    "checkpoint-500",
    "linear_state_dict.pt",
    "mixed_dtypes.pth",
    "epoch=3-step=1200.ckpt",
    "tiny.safetensors",
]
"""Oldest first: each dated ten minutes after the one before, the newest 5 minutes before NOW."""


def make_directory(root: Path) -> Path:
    """The committed checkpoints, copied and dated in :data:`ORDER`."""
    shutil.copytree(FIXTURES, root)
    (root / "compressed.npz").unlink()
    for n, name in enumerate(ORDER):
        when = (NOW - timedelta(minutes=5 + 10 * (len(ORDER) - 1 - n))).timestamp()
        path = root / name
        targets = [*path.iterdir(), path] if path.is_dir() else [path]
        for target in targets:
            os.utime(target, (when, when))
    return root


def pane(app: RunctlApp) -> CheckpointsPane:
    """The checkpoints pane."""
    return app.screen_stack[0].query_one(CheckpointsPane)


def text_of(app: RunctlApp, selector: str) -> str:
    """A Static of the pane, as plain text."""
    return str(pane(app).query_one(selector, Static).render())


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Pause until ``check()`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


async def open_dir(pilot: Pilot[None], location: str, count: int) -> CheckpointsPane:
    """Show the pane, open ``location`` and wait for ``count`` checkpoints."""
    await pilot.press("4")
    checkpoints = pane(pilot.app)  # type: ignore[arg-type]
    checkpoints.open_location(location)
    await until(
        pilot,
        lambda: checkpoints.listing is not None and len(checkpoints.listing.checkpoints) == count,
    )
    await pilot.pause(0.05)
    return checkpoints


def names(checkpoints: CheckpointsPane) -> list[str]:
    """The names in the table, top to bottom."""
    return [c.name for c in checkpoints.table.rows]


async def test_without_a_location_the_pane_says_how_to_open_one(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause()
        assert text_of(app, "#ckpt-empty") == HOW_TO_OPEN
        assert pane(app).selected is None
        assert not pane(app).table.display


async def test_lists_newest_first_with_markers_and_header(
    make_app: AppFactory, tmp_path: Path
) -> None:
    root = make_directory(tmp_path / "ckpts")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), len(ORDER))
        assert names(checkpoints) == ORDER[::-1]
        listing = checkpoints.listing
        assert listing is not None
        assert listing.newest is not None
        assert listing.newest.name == "tiny.safetensors"
        header = text_of(app, "#ckpt-header")
        assert str(root) in header
        assert "this machine" in header
        assert f"{len(ORDER)} checkpoints" in header
        assert "listed 0 s ago" in header
        assert not pane(app).query_one("#ckpt-flag").display
        rendered = checkpoints.table.render_line(1).text
        assert rendered.startswith("*")
        assert "tiny.safetensors" in rendered
        assert "5 min" in rendered
        assert "NAME" in checkpoints.table.render_line(0).text

        assert checkpoints.selected is not None
        assert checkpoints.selected.name == "tiny.safetensors"
        await pilot.press("down", "down")
        assert checkpoints.selected.name == "mixed_dtypes.pth"
        await pilot.press("G")
        assert checkpoints.selected.name == "arrays.npz"
        await pilot.press("g")
        assert checkpoints.selected.name == "tiny.safetensors"


async def test_new_checkpoints_appear_while_open(make_app: AppFactory, tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), len(ORDER))
        await pilot.press("down")
        shutil.copy(FIXTURES / "linear_state_dict.pt", root / "model_0009000.pt")
        await until(pilot, lambda: "model_0009000.pt" in names(checkpoints))
        assert names(checkpoints)[0] == "model_0009000.pt"
        # The cursor stays on the checkpoint it was on.
        assert checkpoints.selected is not None
        assert checkpoints.selected.name == "epoch=3-step=1200.ckpt"


async def test_enter_inspects_and_escape_closes(make_app: AppFactory, tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), len(ORDER))
        await pilot.press("down")
        assert checkpoints.selected is not None
        assert checkpoints.selected.name == "epoch=3-step=1200.ckpt"
        await pilot.press("enter")
        await until(pilot, lambda: checkpoints.inspection is not None)
        await pilot.pause(0.05)
        panel = checkpoints.query_one("#ckpt-inspection")
        assert panel.display
        shown = text_of(app, "#ckpt-inspection-text")
        inspection = checkpoints.inspection
        assert inspection is not None
        assert inspection.tensor_count > 0
        assert "tensors:" in shown
        assert inspection.tensors[0].name in shown
        assert "UNSAFE" not in shown

        await pilot.press("escape")
        assert not panel.display
        assert app.focused is checkpoints.table


async def test_hostile_names_are_shown_literally(make_app: AppFactory, tmp_path: Path) -> None:
    root = tmp_path / "ckpts"
    root.mkdir()
    hostile = "evil\x1b]0;pwned\x07[bold]\nrm -rf[red].pt"
    shutil.copy(FIXTURES / "linear_state_dict.pt", root / hostile)
    shutil.copy(FIXTURES / "tiny.safetensors", root / "[@click=app.quit]best.safetensors")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), 2)
        lines = [checkpoints.table.render_line(y).text for y in (1, 2)]
        joined = "\n".join(lines)
        assert "evil␛]0;pwned␇[bold]␤rm -rf[red].pt" in joined
        assert "[@click=app.quit]best.safetensors" in joined
        assert "\x1b" not in joined
        await pilot.press("enter")
        await until(pilot, lambda: checkpoints.inspection is not None)
        assert app.is_running


async def test_a_missing_directory_gives_a_one_line_error(
    make_app: AppFactory, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        checkpoints = pane(app)
        checkpoints.open_location(str(missing))
        await until(pilot, lambda: checkpoints.failure is not None)
        await pilot.pause(0.05)
        error = text_of(app, "#ckpt-error")
        assert "\n" not in error
        assert f"{missing}: no such directory" in error
        assert "check the path" in error
        assert checkpoints.listing is None


async def test_a_stale_directory_is_flagged(make_app: AppFactory, tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    when = (NOW - timedelta(hours=2)).timestamp()
    for path in root.rglob("*"):
        os.utime(path, (when, when))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), len(ORDER))
        flag = checkpoints.query_one("#ckpt-flag")
        assert flag.display
        assert "no new checkpoint for" in text_of(app, "#ckpt-flag")


async def test_the_app_can_start_on_checkpoints(tmp_path: Path, journal_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    fleet = Fleet([], journal=Journal(journal_path))
    app = RunctlApp(Settings(poll_seconds=3600), fleet, open_checkpoints=str(root))
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = pane(app)
        await until(pilot, lambda: checkpoints.listing is not None)
        screen = app.screen_stack[0]
        assert isinstance(screen, MainScreen)
        assert screen.current_pane.id == "checkpoints"
        assert app.focused is checkpoints.table


def test_row_cells_are_plain_text(tmp_path: Path) -> None:
    from runctl_tui.checkpoints.listing_local import list_local

    root = make_directory(tmp_path / "ckpts")
    listing = list_local(root)
    newest = listing.checkpoints[0]
    cells = row_cells(newest, NOW)
    assert cells[0].startswith("*")
    assert cells[1] == "tiny.safetensors"
    assert cells[3] == "5 min"
    assert cells[7] == "this machine"


def open_snapshot(location: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Open ``location``, wait for the listing, inspect the Lightning checkpoint."""

    async def run_before(pilot: Pilot[None]) -> None:
        checkpoints = await open_dir(pilot, location, len(ORDER))
        await pilot.press("down", "enter")
        await until(pilot, lambda: checkpoints.inspection is not None)
        await pilot.pause(0.1)

    return run_before


def test_snapshot_checkpoint_pane(
    snap_compare: SnapCompare,
    make_app: AppFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A relative path, so that the header names the same directory on every machine.
    monkeypatch.chdir(tmp_path)
    make_directory(tmp_path / "ckpts")
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_snapshot("ckpts"))


# Actions -----------------------------------------------------------------------------------------


def journal_lines(path: Path) -> list[str]:
    """The audit journal's lines."""
    return path.read_text().splitlines()


async def test_y_copies_the_resume_command_for_the_row(
    make_app: AppFactory, tmp_path: Path
) -> None:
    root = make_directory(tmp_path / "my ckpts")
    app = make_app()
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
    async with app.run_test(size=SIZE) as pilot:
        await open_dir(pilot, str(root), len(ORDER))
        await pilot.press("y")
        assert copied == [f"python train.py --resume '{root}/tiny.safetensors'"]


async def test_D_deletes_only_after_the_name_is_typed_and_journals_it(
    make_app: AppFactory, tmp_path: Path, journal_path: Path
) -> None:
    from runctl_tui.tui.screens.checkpoint_confirm import ConfirmDelete

    root = make_directory(tmp_path / "ckpts")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), len(ORDER))
        await pilot.press("down", "down")
        assert checkpoints.selected is not None
        assert checkpoints.selected.name == "mixed_dtypes.pth"
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete))
        await pilot.pause(0.7)
        await pilot.press(*"mixed_dtypes.pth", "enter")
        await until(pilot, lambda: not (root / "mixed_dtypes.pth").exists())
        await until(
            pilot,
            lambda: (
                checkpoints.listing is not None
                and len(checkpoints.listing.checkpoints) == len(ORDER) - 1
            ),
        )
        lines = journal_lines(journal_path)
        assert any('"delete-checkpoint"' in line and '"attempted"' in line for line in lines)
        assert any('"delete-checkpoint"' in line and '"done"' in line for line in lines)


async def test_K_keeps_the_newest_and_the_best_and_deletes_the_rest(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from runctl_tui.tui.screens.checkpoint_confirm import ConfirmKeep

    root = make_directory(tmp_path / "ckpts")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        checkpoints = await open_dir(pilot, str(root), len(ORDER))
        listing = checkpoints.listing
        assert listing is not None
        best = listing.best
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmKeep))
        await pilot.pause(0.7)
        await pilot.press("y")
        await until(
            pilot,
            lambda: (
                checkpoints.listing is not None
                and len(checkpoints.listing.checkpoints) < len(ORDER)
            ),
            seconds=20,
        )
        after = checkpoints.listing
        assert after is not None
        left = {c.name for c in after.checkpoints}
        assert "tiny.safetensors" in left
        if best is not None:
            assert best.name in left
        assert len(left) >= 3


async def test_K_leaves_out_a_checkpoint_open_for_writing(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from runctl_tui.tui.screens.checkpoint_confirm import ConfirmKeep

    root = make_directory(tmp_path / "ckpts")
    app = make_app()
    with open_for_append(root / "arrays.npz"):
        async with app.run_test(size=SIZE) as pilot:
            await open_dir(pilot, str(root), len(ORDER))
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmKeep))
            screen = app.screen
            assert isinstance(screen, ConfirmKeep)
            going = {c.name for c in screen.plan.delete}
            assert going
            assert "arrays.npz" not in going
            await pilot.press("escape")


def open_for_append(path: Path) -> IO[bytes]:
    """``path`` held open for writing, as a run still saving it would."""
    return path.open("ab")


def test_the_download_line_draws_a_bar() -> None:
    from runctl_tui.tui.panes.checkpoints import BAR_WIDTH, download_text

    text = download_text("model.pt", 512, 1024)
    assert text.plain.startswith("downloading model.pt ")
    assert text.plain.count("━") == BAR_WIDTH
    assert "50%" in text.plain
    assert download_text("model.pt", 0, 0).plain.endswith("0% · 0 B of 0 B")
