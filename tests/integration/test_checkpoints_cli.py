"""``runctl-tui checkpoints`` in a subprocess: the committed checkpoints in a temp directory,
the same files over a real OpenSSH sshd (unknown host key refused, then listed and inspected
over SFTP) and under an S3 prefix on moto's server; a missing location is one line and exit 1."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.conftest import KEY
from tests.integration.ssh_servers import Sshd, add_known_host, ssh_keygen_fingerprint

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_ssh"]

COMMAND = [sys.executable, "-m", "runctl_tui", "checkpoints"]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
BIG_TENSOR_BYTES = 4 * 1024 * 1024

ORDER = [
    "arrays.npz",
    "legacy.pt",
    "checkpoint-500",
    "linear_state_dict.pt",
    "epoch=3-step=1200.ckpt",
    "big.safetensors",
    "tiny.safetensors",
]
"""Oldest first: each is dated a minute after the one before."""


def big_safetensors(path: Path) -> int:
    """A safetensors file with 4 MB of tensor data; the length of its header."""
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "weight": {
                "dtype": "F32",
                "shape": [BIG_TENSOR_BYTES // 4],
                "data_offsets": [0, BIG_TENSOR_BYTES],
            },
        }
    ).encode()
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(header)) + header)
        file.truncate(8 + len(header) + BIG_TENSOR_BYTES)
    return len(header)


def make_directory(root: Path) -> Path:
    """The committed checkpoints plus a big safetensors file, dated in :data:`ORDER`."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ORDER:
        source = FIXTURES / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        elif source.exists():
            shutil.copy(source, root / name)
    big_safetensors(root / "big.safetensors")
    start = time.time() - 3600
    for position, name in enumerate(ORDER):
        stamp = start + 60 * position
        target = root / name
        for path in [*target.rglob("*"), target] if target.is_dir() else [target]:
            os.utime(path, (stamp, stamp))
    return root


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command, finished, with its output."""
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The JSON document's checkpoints by name."""
    return {c["name"]: c for c in document["checkpoints"]}


def check_document(document: dict[str, Any], *, newest_known: bool = True) -> None:
    """What every listing of :func:`make_directory`'s files shows, wherever they are."""
    assert document["schema"] == "runctl-tui/checkpoints/v1"
    assert document["error"] is None
    checkpoints = by_name(document)
    assert set(checkpoints) == set(ORDER)
    assert document["total_size"] == sum(c["size"] for c in checkpoints.values())
    if newest_known:
        assert [c["name"] for c in document["checkpoints"]] == ORDER[::-1]
        assert document["newest"] == "tiny.safetensors"
        assert checkpoints["tiny.safetensors"]["newest"] is True
    assert [c["name"] for c in document["checkpoints"] if c["newest"]] == [document["newest"]]
    assert document["best"] == "checkpoint-500"
    hf = checkpoints["checkpoint-500"]
    assert hf["best"] is True
    assert hf["is_dir"] is True
    assert hf["step"] == 500
    lightning = checkpoints["epoch=3-step=1200.ckpt"]
    assert (lightning["step"], lightning["epoch"]) == (1200, 3)


def check_inspections(document: dict[str, Any]) -> None:
    """The inspections of every checkpoint, as ``--inspect-all`` gives them."""
    checkpoints = by_name(document)
    lightning = checkpoints["epoch=3-step=1200.ckpt"]["inspection"]
    assert lightning["format"] == "pytorch"
    assert lightning["error"] is None
    tensors = {t["name"]: t for t in lightning["tensors"]}
    assert tensors["state_dict.model.0.weight"]["shape"] == [4, 8]
    assert tensors["state_dict.model.0.weight"]["dtype"] == "float32"
    assert {"name": "global_step", "value": "1200", "kind": "int"} in lightning["scalars"]
    hf = checkpoints["checkpoint-500"]["inspection"]
    assert hf["format"] == "huggingface"
    assert hf["trainer_state"]["global_step"] == 500
    assert hf["shard_index"]["shards"] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert hf["parameter_count"] == 328
    # training_args.bin pickles a class of the training script: flagged, never run.
    assert hf["unsafe"] == ["training_args.bin: __main__.TrainingArguments"]
    legacy = checkpoints["legacy.pt"]["inspection"]
    assert legacy["format"] == "pytorch-legacy"
    assert "not inspected" in legacy["notes"][0]
    big = checkpoints["big.safetensors"]["inspection"]
    assert big["format"] == "safetensors"
    assert big["tensors"][0]["shape"] == [BIG_TENSOR_BYTES // 4]
    # Only the header was read, not the 4 MB of tensor data.
    assert 0 < big["bytes_read"] < 4096
    assert big["size"] > BIG_TENSOR_BYTES


# -- this machine


def test_text_lists_newest_first_with_markers_and_total(tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    done = run(str(root), "--no-tui")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{root} · this machine · 7 checkpoints · listed ")
    assert lines[1].split() == ["NAME", "SIZE", "AGE", "STEP", "EPOCH", "METRIC"]
    rows = lines[2:9]
    assert [row[4:].split()[0] for row in rows] == [
        "tiny.safetensors",
        "big.safetensors",
        "epoch=3-step=1200.ckpt",
        "linear_state_dict.pt",
        "checkpoint-500/",
        "legacy.pt",
        "arrays.npz",
    ]
    assert rows[0].startswith("*   tiny.safetensors")
    assert rows[4].startswith(" B  checkpoint-500/")
    assert rows[2].split()[-3:] == ["min", "1200", "3"]
    assert lines[9].startswith("total: 4.2 MB in 7 checkpoint(s)")
    assert lines[10].startswith("best: checkpoint-500/ (trainer_state.json names it best")


def test_json_with_every_inspection(tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    done = run(str(root), "--json", "--inspect-all")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["location"] == str(root)
    assert document["kind"] == "local"
    check_document(document)
    check_inspections(document)


def test_json_inspects_only_the_named_checkpoint(tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    done = run(str(root), "--json", "--inspect", "epoch=3-step=1200.ckpt")
    assert done.returncode == 0, done.stderr
    checkpoints = by_name(json.loads(done.stdout))
    inspected = [name for name, c in checkpoints.items() if c["inspection"] is not None]
    assert inspected == ["epoch=3-step=1200.ckpt"]
    tensors = checkpoints["epoch=3-step=1200.ckpt"]["inspection"]["tensors"]
    assert len(tensors) == 17


def test_text_inspection_follows_the_listing(tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    done = run(str(root), "--inspect", "checkpoint-500/")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"{root}/checkpoint-500 · Hugging Face checkpoint" in text
    assert "UNSAFE: loading it would call training_args.bin: __main__.TrainingArguments" in text
    assert "trainer state: step 500" in text


def test_hostile_names_are_shown_escaped_one_line_each(tmp_path: Path) -> None:
    root = tmp_path / "ckpts"
    root.mkdir()
    hostile = "evil\x1b]0;pwned\x07[bold]\nrm -rf.pt"
    shutil.copy(FIXTURES / "linear_state_dict.pt", root / hostile)
    done = run(str(root), "--inspect-all")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "\x07" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[2].startswith("*   evil␛]0;pwned␇[bold]␤rm -rf.pt  ")
    assert any(
        line.startswith(f"{root}/evil␛]0;pwned␇[bold]␤rm -rf.pt · PyTorch") for line in lines
    )
    document = json.loads(run(str(root), "--json").stdout)
    assert document["checkpoints"][0]["name"] == "evil␛]0;pwned␇[bold]␤rm -rf.pt"
    # The path stays exact, for scripts that act on it.
    assert document["checkpoints"][0]["path"] == str(root / hostile)


def test_a_missing_directory_is_one_line_and_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = run(str(missing), "--no-tui")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"runctl-tui: {missing}: no such directory"]
    as_json = run(str(missing), "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"] == f"{missing}: no such directory"
    assert as_json.stderr.splitlines() == [f"runctl-tui: {missing}: no such directory"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    unknown = run(str(root), "--inspect", "nope.pt")
    assert unknown.returncode == 2
    (line,) = unknown.stderr.splitlines()
    assert line.startswith("runctl-tui: no checkpoint named 'nope.pt' in ")
    for args in (["--depth", "-1"], ["--depth", "x"], ["--inspect", "a", "--inspect-all"], []):
        done = run(*([str(root)] if args else []), *args)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr
    empty = run("")
    assert empty.returncode == 2
    assert empty.stderr.startswith("runctl-tui: no location given")


# -- an SSH host


def test_over_ssh_unknown_key_refused_then_listed_and_inspected(
    real_sshd: Sshd, isolated_environment: Path, tmp_path: Path
) -> None:
    root = make_directory(tmp_path / "remote-ckpts")
    location = f"ssh://{real_sshd.user}@127.0.0.1:{real_sshd.port}{root}"
    refused = run(location, "--json")
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert ssh_keygen_fingerprint(real_sshd.host_key_path.with_suffix(".pub")) in line
    assert "trust it with" in line
    assert "Traceback" not in refused.stderr

    add_known_host(isolated_environment, real_sshd.port, real_sshd.host_key)
    done = run(location, "--json", "--inspect-all")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["kind"] == "ssh"
    assert document["where"] == f"{real_sshd.user}@127.0.0.1:{real_sshd.port}"
    check_document(document)
    check_inspections(document)
    inspection = by_name(document)["tiny.safetensors"]["inspection"]
    assert inspection["name"] == f"{document['where']}:{root}/tiny.safetensors"

    text = run(location, "--inspect", "epoch=3-step=1200.ckpt")
    assert text.returncode == 0, text.stderr
    assert "*   tiny.safetensors" in text.stdout
    assert "state_dict.model.0.weight  float32  [4, 8]" in text.stdout


# -- S3


BUCKET = "runs"


def upload(url: str, root: Path, prefix: str) -> None:
    """Every file under ``root`` to ``s3://runs/prefix/...``, oldest first."""
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=KEY[0],
        aws_secret_access_key=KEY[1],
    )
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(root.rglob("*"), key=lambda p: p.stat().st_mtime):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(root).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())


def test_on_s3_listed_and_inspected_with_ranged_reads(moto_url: str, tmp_path: Path) -> None:
    root = make_directory(tmp_path / "ckpts")
    upload(moto_url, root, "exp1/ckpts")
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_url}
    done = run(f"s3://{BUCKET}/exp1/ckpts", "--json", "--inspect-all", env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["kind"] == "s3"
    assert document["where"] == "s3://runs"
    # S3 dates objects by upload, to the second: which is newest depends on the clock.
    check_document(document, newest_known=False)
    check_inspections(document)
    big = by_name(document)["big.safetensors"]
    assert big["path"] == "s3://runs/exp1/ckpts/big.safetensors"
    assert big["inspection"]["name"] == big["path"]

    missing = run(f"s3://{BUCKET}/exp1/ckpts", "--inspect", "nope", env=env)
    assert missing.returncode == 2
    no_bucket = run("s3://no-such-bucket/x", "--no-tui", env=env)
    assert no_bucket.returncode == 1
    assert no_bucket.stderr.splitlines() == ["runctl-tui: s3://no-such-bucket: no such bucket"]
    bad = run("s3://", env=env)
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1
