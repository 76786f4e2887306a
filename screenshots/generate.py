"""Regenerate the README's screenshots from the demo backend: ``make screenshots``."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

SIZE = (160, 45)


async def capture(out: Path) -> list[Path]:
    """Drive the demo headless and save an SVG of each view: fleet, dialogs, journal."""
    from runctl_tui.cli import _build_fleet
    from runctl_tui.config import Settings
    from runctl_tui.tui.app import RunctlApp
    from runctl_tui.tui.widgets.instance_table import InstanceTable

    settings = Settings(poll_seconds=3600)
    fleet, _ = _build_fleet(settings, demo=True)
    app = RunctlApp(settings, fleet, demo=True)
    saved: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(InstanceTable)
        # Rows come provider by provider: wait until every provider has answered, and the lab
        # box's run is listed too (it starts on the first poll).
        for _ in range(300):
            await pilot.pause(0.1)
            polled = fleet.snapshot()
            kinds = {(i.provider, i.kind) for i in polled.instances}
            if polled.all_ok and ("ssh", "process") in kinds and len(table.keys) >= 20:
                break
        else:
            raise SystemExit("the demo fleet did not appear within 30 s")

        def by_name(name: str) -> str:
            return next(k for k in table.keys if table.instance(k).name == name)  # type: ignore[union-attr]

        async def shot(name: str) -> None:
            await pilot.pause(0.3)
            saved.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

        table.move_to_key(by_name("dpo-sweep-lr1e-5"))
        await pilot.press("space", "space")
        await shot("dashboard")
        await pilot.press("s")
        await shot("confirm-stop")
        await pilot.press("escape", "escape")
        table.move_to_key(by_name("reward-model-7b"))
        await pilot.press("enter")
        await shot("details")
        await pilot.press("escape")
        # The persistent spot request's lookup fills in the dialog; then the confirmation's
        # type-ahead guard has to pass before typed keys count.
        table.move_to_key(by_name("dpo-sweep-lr3e-6"))
        await pilot.press("T")
        await pilot.pause(1.0)
        await pilot.press(*"i-0")
        await shot("confirm-terminate")
        # Backing out is journaled too: the journal pane lists it.
        await pilot.press("escape")
        await pilot.pause(0.5)
        # On a training run the stop key interrupts it; here the lab box's, over SSH.
        run = next(k for k in table.keys if k.startswith("ssh:") and ":" in k[4:])
        table.move_to_key(run)
        await pilot.press("s")
        await pilot.pause(0.5)
        await shot("confirm-interrupt")
        await pilot.press("escape")
        await pilot.pause(0.5)
        await pilot.press("2")
        await shot("journal")
        # The lab box's training log, tailed over SSH, with its loss curve.
        await pilot.press("1")
        table.move_to_key(run)
        await pilot.press("l")
        await pilot.pause(6.0)
        await shot("logs")
        # A second log in a tab of its own, this machine's run, filtered to its checkpoints.
        await pilot.press("1")
        local = next(k for k in table.keys if k.startswith("local:") and "@" in k)
        table.move_to_key(local)
        await pilot.press("l")
        await pilot.pause(3.0)
        await pilot.press("ampersand", *"checkpoint", "enter")
        await pilot.pause(1.0)
        await shot("logs-filter")
        # The lab box's checkpoints, listed over SFTP, one of them inspected.
        await pilot.press("1")
        table.move_to_key(run)
        await pilot.press("c")
        await pilot.pause(3.0)
        await pilot.press("down", "enter")
        await pilot.pause(2.0)
        await shot("checkpoints")
        # What it all costs: burn rate, today, this month, the demo's daily budget.
        await pilot.press("escape", "5")
        await pilot.pause(1.0)
        await shot("costs")
    return saved


def main() -> None:
    """Write the SVGs into the folder named on the command line (default: screenshots/)."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    # asyncssh says every connection at INFO: the dashboard logs to its file, this to nowhere.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        # The demo must not read the user's config or write to their journal.
        for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            os.environ[name] = str(Path(scratch) / name)
        for path in asyncio.run(capture(out)):
            print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    main()
