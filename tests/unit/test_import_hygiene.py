"""Start-up stays lazy: the core never imports Textual, and nothing the app imports before its
first frame imports boto3, botocore, moto or asyncssh (STYLE.md sections 1 and 10)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = [
    "runctl_tui.models",
    "runctl_tui.config",
    "runctl_tui.audit",
    "runctl_tui.costs.rates",
    "runctl_tui.costs.pricing",
    "runctl_tui.costs.ebs",
    "runctl_tui.costs.ledger",
    "runctl_tui.costs.report",
    "runctl_tui.costs.output",
    "runctl_tui.costs.budget",
    "runctl_tui.costs.idle",
    "runctl_tui.costs.verify",
    "runctl_tui.costs.gpu_probe",
    "runctl_tui.services.costs",
    "runctl_tui.providers.base",
    "runctl_tui.providers.aws",
    "runctl_tui.providers.registry",
    "runctl_tui.services.fleet",
    "runctl_tui.views",
    "runctl_tui.actions",
    "runctl_tui.providers.ssh_hosts",
    "runctl_tui.providers.local",
    "runctl_tui.remote.ssh",
    "runctl_tui.keys",
    "runctl_tui.text",
    "runctl_tui.demo",
    "runctl_tui.cli",
    "runctl_tui.remote.procs",
    "runctl_tui.logs.source",
    "runctl_tui.logs.decode",
    "runctl_tui.logs.index",
    "runctl_tui.logs.local",
    "runctl_tui.logs.remote",
    "runctl_tui.logs.metrics",
    "runctl_tui.logs.errors",
    "runctl_tui.logs.chart",
    "runctl_tui.logs.filter",
    "runctl_tui.logs.tensorboard",
    "runctl_tui.checkpoints.inspect",
    "runctl_tui.checkpoints.listing",
    "runctl_tui.checkpoints.listing_local",
    "runctl_tui.checkpoints.listing_remote",
    "runctl_tui.checkpoints.listing_s3",
    "runctl_tui.checkpoints.report",
    "runctl_tui.checkpoints.remote_read",
    "runctl_tui.checkpoints.actions",
    "runctl_tui.checkpoints.copies",
    "runctl_tui.checkpoints.writer",
]
HEAVY_SDKS = ["boto3", "botocore", "moto", "asyncssh", "runpod"]


def imported_after(module: str, watched: list[str]) -> list[str]:
    """Which ``watched`` top-level packages a fresh interpreter holds after importing ``module``."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"watched = {watched!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(watched))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_imports_neither_textual_nor_cloud_sdks(module: str) -> None:
    # cli, providers.aws, providers.registry and demo defer boto3 and moto to first use.
    assert imported_after(module, ["textual", "rich", *HEAVY_SDKS]) == []


def test_the_app_imports_textual_but_no_cloud_sdk() -> None:
    # Seeing textual here also proves the check notices what it looks for.
    assert imported_after("runctl_tui.tui.app", ["textual", *HEAVY_SDKS]) == ["textual"]
