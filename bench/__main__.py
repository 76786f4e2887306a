"""``python -m bench [NAME...] [--quick]``: run benchmarks and summarise their figures.

Each benchmark runs in a fresh interpreter, so one's imports, threads and garbage cannot slow
another down; each prints its own section, and this prints the figures against their goals.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from bench.common import ROOT, Figure, heading, read_figures

BENCHMARKS = {
    "startup": "bench.startup",
    "scale": "bench.scale",
    "ui": "bench.ui_stall",
    "quit": "bench.quit",
    "first-row": "bench.first_row",
    "mixed": "bench.mixed_fleet",
    "logs": "bench.logs",
    "checkpoints": "bench.checkpoints",
    "costs": "bench.costs",
}


def versions() -> str:
    """The interpreter and the dependencies whose speed is being measured."""
    names = ("textual", "pydantic", "boto3", "moto", "runpod", "asyncssh")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def run_one(module: str, quick: bool) -> tuple[list[Figure], str | None]:
    """Run one benchmark module in a child interpreter; its figures, or why it failed."""
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        figures_path = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", module, "--json", str(figures_path)]
        if quick:
            command.append("--quick")
        done = subprocess.run(command, cwd=ROOT, check=False)
        if done.returncode != 0:
            return [], f"{module} failed with exit status {done.returncode}"
        if not figures_path.exists():
            return [], f"{module} wrote no figures"
        return read_figures(figures_path), None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default); exit 1 only if one could not run."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"runctl-tui benchmarks: {versions()}")
    print(f"{os.cpu_count()} CPUs, load average {load}; figures are ratios within this run")
    started = time.perf_counter()
    figures: list[Figure] = []
    failures: list[str] = []
    for name in names:
        found, failure = run_one(BENCHMARKS[name], args.quick)
        figures.extend(found)
        if failure:
            failures.append(failure)

    heading(f"Summary ({time.perf_counter() - started:.0f} s{', quick run' if args.quick else ''})")
    for figure in figures:
        print(f"  {figure.line()}")
    for failure in failures:
        print(f"  FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
