"""Benchmark 6: a poll of a mixed fleet, 1,000 EC2 instances, 200 pods and 2 SSH hosts.

The real ``RunctlApp`` runs headless at 160x45 with the providers the registry builds from a
config: RunPod against its stand-in serving 200 pods, two ``[[ssh.hosts]]`` served by asyncssh
(both in their own processes, see ``bench/accounts.py``), plus 1,000 synthetic EC2 rows from
``MemoryProvider``. Each round is a fresh interpreter, so the first poll pays what a real
launch pays (the runpod SDK and asyncssh imports, the SSH handshakes). A 5 ms ticker on the
app's loop records the longest stall of the first poll, until every row is in the table, and
of the next poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.accounts import local_accounts
from bench.common import (
    ROOT,
    Figure,
    child_arguments,
    heading,
    isolated_env,
    median,
    write_figures,
)

EC2_ROWS, PODS, SSH_HOSTS = 1000, 200, 2
TOTAL = EC2_ROWS + PODS + SSH_HOSTS
ROUNDS, QUICK_ROUNDS = 5, 1
GOAL_MS = 50.0
ROUND_TIMEOUT = 120.0
PHASES = {
    "first_stall": "first poll: longest stall",
    "first_rows": "first poll: launch to all rows",
    "next_stall": "next poll: longest stall",
    "next_rows": "next poll: asked to shown",
    "idle": "idle afterwards, for reference",
}


async def one_round(journal: Path) -> dict[str, float]:
    """One app from launch to its second poll; seconds per :data:`PHASES` key."""
    from bench.fake_fleet import MemoryProvider, synthetic_fleet
    from bench.ui_stall import SIZE, StallMeter, idle_gap, settle, wait_until
    from runctl_tui.audit import Journal
    from runctl_tui.config import load_settings
    from runctl_tui.providers.registry import load_providers
    from runctl_tui.services.fleet import Fleet
    from runctl_tui.tui.app import RunctlApp
    from runctl_tui.tui.screens.main import MainScreen

    # SSH hosts may add rows of their own (their training runs): at least TOTAL are awaited.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    now = datetime.now(UTC)
    started = time.perf_counter()
    settings = load_settings(None, poll_seconds=3600.0)
    providers, problems = load_providers(settings)
    if problems:
        raise RuntimeError(f"providers: {'; '.join(problems)}")
    ec2 = MemoryProvider(synthetic_fleet(EC2_ROWS, now))
    fleet = Fleet([ec2, *providers], journal=Journal(journal), poll_deadline=60.0)
    app = RunctlApp(settings, fleet)
    meter = StallMeter()
    result: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        meter.start()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await wait_until(lambda: screen.table.row_count >= TOTAL, f"{TOTAL} rows")
        result["first_rows"] = time.perf_counter() - started
        await settle(pilot)
        result["first_stall"] = meter.take()
        ec2.instances = synthetic_fleet(EC2_ROWS, now, generation=1)
        before, asked = screen.snapshot, time.perf_counter()
        screen.poll_now()
        await wait_until(lambda: screen.snapshot is not before, "the next poll")
        result["next_rows"] = time.perf_counter() - asked
        await settle(pilot)
        result["next_stall"] = meter.take()
        await meter.stop()
        result["idle"] = await idle_gap(meter)
        await meter.stop()
        result["rows"] = screen.table.row_count
    return result


def run_round(env: Mapping[str, str], workdir: Path) -> dict[str, float]:
    """One round in a fresh interpreter; its figures."""
    out = workdir / "round.json"
    command = [sys.executable, "-m", "bench.mixed_fleet", "--round", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=dict(env), timeout=ROUND_TIMEOUT, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"a mixed-fleet round failed with exit status {done.returncode}")
    figures: dict[str, float] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def measure(rounds: int) -> list[dict[str, float]]:
    """One untimed round (bytecode caches), then ``rounds`` rounds against the same servers."""
    results = []
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        base = isolated_env(os.environ, Path(tmp) / "servers-home")
        with local_accounts(
            Path(tmp) / "accounts",
            base,
            ec2_per_region=0,
            pods=PODS,
            ssh_hosts=SSH_HOSTS,
            local=False,
        ) as accounts:
            for n in range(rounds + 1):
                workdir = Path(tmp) / f"round-{n}"
                env = {**isolated_env(os.environ, workdir), **accounts.env}
                figures = run_round(env, workdir)
                if n:
                    results.append(figures)
    return results


def report(results: Sequence[Mapping[str, float]]) -> list[Figure]:
    """Print the median and worst of each phase; return the stall and the time to all rows."""
    for key, label in PHASES.items():
        values = [r[key] * 1000 for r in results]
        print(f"  {label:<34} {median(values):6.0f} ms (worst {max(values):.0f})")
    stall_phase = max(("first_stall", "next_stall"), key=lambda k: median(r[k] for r in results))
    stall = median(r[stall_phase] for r in results) * 1000
    rows = median(r["first_rows"] for r in results) * 1000
    print(f"  {'rows in the table':<34} {int(max(r['rows'] for r in results)):6d}")
    return [
        Figure(
            "mixed-fleet poll: longest UI stall",
            stall,
            "ms",
            GOAL_MS,
            f"{PHASES[stall_phase].split(':')[0]}; {int(max(r['rows'] for r in results)):,} rows",
        ),
        Figure(
            "mixed-fleet poll: launch to all rows",
            rows,
            "ms",
            None,
            f"next poll {median(r['next_rows'] for r in results) * 1000:.0f} ms",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mixed-fleet benchmark (or, with ``--round PATH``, one round of it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--round"]:
        out = Path(args_list[1])
        figures = asyncio.run(one_round(out.with_name("journal.jsonl")))
        out.write_text(json.dumps(figures), encoding="utf-8")
        return 0
    args = child_arguments(__doc__ or "", args_list)
    rounds = QUICK_ROUNDS if args.quick else ROUNDS
    heading(
        f"6. Mixed fleet: {EC2_ROWS:,} EC2 rows, {PODS} RunPod pods (stand-in), "
        f"{SSH_HOSTS} SSH hosts (asyncssh), headless 160x45, {rounds} rounds"
    )
    write_figures(args.json, report(measure(rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
