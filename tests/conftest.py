"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

ISOLATED_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    # The machine running the tests is not part of any test's fleet (tests of the local
    # provider build it themselves).
    "RUNCTL_TUI_LOCAL__ENABLED": "false",
    # Each test that wants RunPod turns it on and points it at the local stand-in.
    "RUNCTL_TUI_RUNPOD__ENABLED": "false",
}


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's config, state, logs and AWS credentials out of every test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(home / name.lower()))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_PRICING",
        "RUNCTL_TUI_CONFIG",
        "RUNPOD_API_KEY",
        "RUNPOD_API_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in ISOLATED_ENV.items():
        monkeypatch.setenv(name, value)
    return home
