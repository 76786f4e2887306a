"""Checkpoints under an S3 prefix, listed with paginated ``list_objects_v2``.

S3 has no directories: every key below the prefix is listed (no delimiter), and keys under a
``checkpoint-500/`` part make one checkpoint directory, its size their sum. The client comes
from the same :class:`~runctl_tui.providers.aws.Ec2Clients` as EC2's (profile, endpoint from
``AWS_ENDPOINT_URL``, timeouts, adaptive retries). boto3 blocks, and is imported by that factory
on first use: call :func:`list_s3` from a thread, as :func:`watch_s3` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl_tui.checkpoints.listing import (
    DEFAULT_DEPTH,
    MAX_ENTRIES,
    TRAINER_STATE_MAX_BYTES,
    Listing,
    LocationKind,
    TrainerState,
    Walk,
    checkpoint_dir_index,
    failed_listing,
    parse_trainer_state,
    pick_trainer_states,
    wanted_outside,
)
from runctl_tui.checkpoints.listing_remote import watch_by_polling
from runctl_tui.text import one_line
from runctl_tui.threads import run_blocking

if TYPE_CHECKING:
    from runctl_tui.providers.aws import Ec2Clients

POLL_SECONDS = 60.0
"""How often :func:`watch_s3` lists the prefix again (each listing is a paid request per
1,000 keys)."""
DEFAULT_REGION = "us-east-1"
"""Used when neither the profile nor the environment names a region; S3 redirects as needed."""


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as (``bucket``, ``some/prefix/``); ``ValueError`` (one line)
    for anything else. An empty prefix stands for the whole bucket."""
    text = url.strip()
    if text[:5].lower() != "s3://":
        raise ValueError(
            f"not an S3 location: {one_line(repr(url), 80)} (expected s3://bucket/prefix)"
        )
    bucket, _, prefix = text[5:].partition("/")
    if not bucket or not all(c.isalnum() or c in ".-_" for c in bucket):
        raise ValueError(
            f"not an S3 bucket name: {one_line(repr(bucket), 80)} in {one_line(url, 120)}"
        )
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_client(clients: Ec2Clients, region: str | None = None) -> Any:
    """An S3 client built like the EC2 ones: same session, endpoint, timeouts and retries."""
    chosen = region or clients.default_region() or DEFAULT_REGION
    return clients.s3(chosen)


def _error_line(exc: BaseException, bucket: str, location: str) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = str(error.get("Code", "") or "")
        message = " ".join(str(error.get("Message", "") or "").split())
        if code == "NoSuchBucket":
            return f"s3://{bucket}: no such bucket"
        if code in {"AccessDenied", "AllAccessDisabled", "403"}:
            return f"{location}: access denied (needs s3:ListBucket on {bucket})"
        return f"{location}: {code or 'error'}{': ' + message if message else ''}"
    return f"{location}: {' '.join(str(exc).split()) or type(exc).__name__}"


def _read_state(client: Any, bucket: str, key: str, shown: str) -> TrainerState | str:
    try:
        answer = client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes=0-{TRAINER_STATE_MAX_BYTES}"
        )
        data = answer["Body"].read()
    except Exception as exc:  # noqa: BLE001 - botocore's errors of every kind become a note
        return one_line(_error_line(exc, bucket, shown), 300)
    if len(data) > TRAINER_STATE_MAX_BYTES:
        return f"{shown}: too big to read"
    try:
        return parse_trainer_state(data)
    except ValueError as exc:
        return f"{shown}: {exc}"


def list_s3(
    client: Any,
    url: str,
    *,
    max_depth: int = DEFAULT_DEPTH,
    max_entries: int = MAX_ENTRIES,
    page_size: int | None = None,
    now: datetime | None = None,
) -> Listing:
    """The checkpoints under the S3 prefix ``url`` and up to ``max_depth`` levels below.

    Blocks. Never raises for a bucket or network problem: the listing's ``error`` says it.
    ``page_size`` sets the keys per request (S3's own default and maximum is 1,000).
    """
    listed_at = now or datetime.now(UTC)
    try:
        bucket, prefix = parse_s3_url(url)
    except ValueError as exc:
        return failed_listing(url, LocationKind.S3, "s3", str(exc), now=listed_at)
    where = f"s3://{bucket}"
    location = f"s3://{bucket}/{prefix}"
    walk = Walk(max_depth, max_entries)
    seen = 0
    try:
        paging = {"PageSize": page_size} if page_size else {}
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig=paging
        )
        for page in pages:
            for item in page.get("Contents", ()):
                seen += 1
                relative = str(item["Key"])[len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue  # the prefix itself, or a console "folder" marker
                parts = tuple(relative.split("/"))
                inside = checkpoint_dir_index(parts[:-1], max_depth) is not None
                if not inside and (len(parts) - 1 > max_depth or not wanted_outside(parts[-1])):
                    continue
                modified = item.get("LastModified")
                mtime = modified.timestamp() if isinstance(modified, datetime) else 0.0
                walk.file(parts, int(item.get("Size", 0)), mtime)
            if seen >= max_entries:
                walk.notes.append(f"stopped after {seen} objects; the listing is incomplete")
                walk.complete = False
                break
    except Exception as exc:  # noqa: BLE001 - botocore's errors of every kind become the error line
        return failed_listing(
            url, LocationKind.S3, where, _error_line(exc, bucket, location), now=listed_at
        )
    if seen == 0:
        walk.notes.append(f"{location}: no objects under this prefix")
    for entry in pick_trainer_states(walk.states):
        shown = "/".join(entry.parts)
        walk.read(entry, _read_state(client, bucket, prefix + shown, shown))

    def join(parts: tuple[str, ...]) -> str:
        return f"{location}{'/'.join(parts)}" if parts else location.rstrip("/") or where

    return walk.listing(
        directory=url, kind=LocationKind.S3, where=where, join=join, listed_at=listed_at
    )


def watch_s3(
    client: Any, url: str, *, interval: float = POLL_SECONDS, max_depth: int = DEFAULT_DEPTH
) -> AsyncIterator[Listing]:
    """New checkpoints under an S3 prefix: :func:`list_s3` on a daemon thread every
    ``interval`` seconds, yielding each listing that differs from the last."""

    async def once() -> Listing:
        return await run_blocking(
            lambda: list_s3(client, url, max_depth=max_depth), name="runctl-checkpoints-s3"
        )

    return watch_by_polling(once, interval=interval)
