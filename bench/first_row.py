"""Benchmark 5: launch to the first data row on screen, on a real-account path and in the demo.

Real account: ``runctl-tui`` with ``[aws] regions`` set, against a moto server through
``AWS_ENDPOINT_URL`` with fake keys (this machine stays on, as by default; RunPod has no key),
until the first EC2 row is on the pty, as a ratio to ``bench/bare_boto3.py`` listing the same
regions of the same server until its first line is. Demo: ``runctl-tui --demo`` until any row
of the demo fleet is on the pty, in milliseconds.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.accounts import EC2_NAME, local_accounts
from bench.common import (
    Figure,
    alternate,
    child_arguments,
    heading,
    isolated_env,
    median,
    round_ratios,
    spread,
    write_figures,
)
from bench.startup import COLUMNS, ROWS, Launch, runctl_script, seconds_until_shown

RUNS, QUICK_RUNS = 5, 2
REAL_GOAL = 1.0
DEMO_GOAL_MS = 1500.0
REGIONS = ("us-east-1", "eu-west-1")
PER_REGION = 10
DEMO_ROWS = (
    b"llama3-70b-sft",
    b"dpo-sweep-lr",
    b"eval-harness",
    b"reward-model-7b",
    b"llama3-8b-sft",
    b"sdxl-lora-sweep",
    b"train_demo",
)
"""Names of the demo's EC2 instances, pods and training run: any one is a data row."""


def launches() -> dict[str, Launch]:
    """The real-account app, its boto3 baseline and the demo, all on this interpreter."""
    script = str(runctl_script())
    row = (EC2_NAME.encode(),)
    bare = Path(__file__).with_name("bare_boto3.py")
    host = socket.gethostname().encode()
    return {
        "ours": Launch("runctl-tui, real-account path", (script,), (), row),
        "boto3": Launch("bare boto3 script", (sys.executable, str(bare), *REGIONS), (), row),
        "demo": Launch("runctl-tui --demo", (script, "--demo"), (), (*DEMO_ROWS, host)),
    }


def measure(runs: int) -> dict[str, list[float]]:
    """One untimed launch each, then ``runs`` rounds: app and script interleaved, then demo."""
    contenders = launches()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        base = isolated_env(os.environ, Path(tmp) / "servers-home")
        with local_accounts(
            Path(tmp) / "accounts", base, regions=REGIONS, ec2_per_region=PER_REGION
        ) as accounts:
            for n in range(runs + 1):
                for name in (*alternate(n, "ours", "boto3"), "demo"):
                    env = isolated_env(os.environ, Path(tmp) / f"{name}-{n}")
                    env["TERM"] = "xterm-256color"
                    if name != "demo":
                        env.update(accounts.env)
                    seconds = seconds_until_shown(contenders[name], env)
                    if n:
                        times[name].append(seconds)
    return times


def report(times: Mapping[str, Sequence[float]]) -> list[Figure]:
    """Print the samples and the ratio; return the real-account ratio and the demo's time."""
    labels = {name: launch.label for name, launch in launches().items()}
    for name in ("ours", "boto3", "demo"):
        print(f"  {labels[name]:<30} {spread(times[name])}")
    ours, bare = median(times["ours"]), median(times["boto3"])
    ratio = ours / bare
    per_round = round_ratios(times["ours"], times["boto3"])
    print(f"  {'ratio app / boto3 script':<30} {ratio:.2f}x  ({per_round}; goal <= {REAL_GOAL}x)")
    demo = median(times["demo"]) * 1000
    return [
        Figure(
            "first row: real account / boto3 script",
            ratio,
            "x",
            REAL_GOAL,
            f"{ours * 1000:.0f} vs {bare * 1000:.0f} ms",
        ),
        Figure(
            "first row: runctl-tui --demo",
            demo,
            "ms",
            DEMO_GOAL_MS,
            f"worst {max(times['demo']) * 1000:.0f} ms",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the first-row benchmark and print its report."""
    args = child_arguments(__doc__ or "", argv)
    runs = QUICK_RUNS if args.quick else RUNS
    heading(
        f"5. First data row: launch to a row on a {COLUMNS}x{ROWS} pty, {runs} runs each "
        f"({PER_REGION * len(REGIONS)} instances in {len(REGIONS)} regions of one moto server)"
    )
    write_figures(args.json, report(measure(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
