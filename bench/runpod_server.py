"""The RunPod stand-in in its own process: serves N pods, prints its port, stops when stdin closes.

``python -m bench.runpod_server COUNT KEY``. A separate process, as RunPod's API is another
machine: the stand-in's work must not compete with the measured app for its GIL.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from runctl_tui.runpod_standin import RunPodStandIn, make_pod

GPUS = ("RTX 4090", "H100 80GB HBM3", "RTX A6000", "A40", "L40S")


def bench_pods(count: int) -> list[dict[str, Any]]:
    """``count`` pods named ``pod-NNN``: mixed GPUs, one in five spot, one in seven exited."""
    return [
        make_pod(
            f"bp{n:012d}",
            f"pod-{n:03d}",
            gpu=GPUS[n % len(GPUS)],
            gpu_count=1 + n % 4,
            cost_per_hr=0.39 + (n % 9) * 0.25,
            interruptible=n % 5 == 0,
            status="EXITED" if n % 7 == 0 else "RUNNING",
            uptime_seconds=600 + 97 * n,
            ssh=(f"38.147.{n // 250}.{n % 250}", 20000 + n),
        )
        for n in range(count)
    ]


def main(argv: Sequence[str]) -> int:
    """Serve until stdin reaches end of file."""
    count, key = int(argv[0]), argv[1]
    stand_in = RunPodStandIn(bench_pods(count), api_key=key, lifetime=None).start()
    print(stand_in.url.rsplit(":", 1)[1], flush=True)
    sys.stdin.read()
    stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
