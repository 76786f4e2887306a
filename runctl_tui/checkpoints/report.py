"""The ``runctl-tui checkpoints`` report: a listing and the inspections asked for, as text
lines for people and as a JSON document (schema ``runctl-tui/checkpoints/v1``) for scripts.

:func:`parse_location` tells a local path, an SSH location and an S3 prefix apart;
:func:`local_report`, :func:`s3_report` and :func:`sftp_report` list and inspect on each;
:func:`report_lines` and :func:`report_json` render the result. Text from the storage (names,
metrics, notes, errors) goes through :func:`runctl_tui.text.one_line` before it becomes text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from runctl_tui.checkpoints.inspect_model import Inspection, human_bytes
from runctl_tui.checkpoints.listing import DEFAULT_DEPTH, Checkpoint, Listing, LocationKind
from runctl_tui.text import cell_width, one_line

if TYPE_CHECKING:
    from runctl_tui.remote.ssh import SshHub, SshTarget

SCHEMA = "runctl-tui/checkpoints/v1"
NAME_WIDTH = 80
"""Widest name column in the text report; longer names are clipped with an ellipsis."""
CONCURRENT_INSPECTIONS = 4
"""Checkpoints inspected at once over SFTP."""


# ---------------------------------------------------------------------------------------------
# Locations


@dataclass(frozen=True)
class Location:
    """Where to list: a local directory, a directory on an SSH host, or an S3 prefix."""

    text: str
    """As the user gave it."""
    kind: LocationKind
    path: str
    """The directory (local or on the host), or the ``s3://`` URL."""
    target: SshTarget | None = None


def parse_location(text: str) -> Location:
    """``PATH``, ``[user@]host:PATH``, ``ssh://user@host:port/PATH`` or ``s3://bucket/prefix``;
    ``ValueError`` (one line) for anything else."""
    if not text.strip():
        raise ValueError(
            "no location given (expected PATH, [user@]host:PATH, ssh://host/PATH or "
            "s3://bucket/prefix)"
        )
    if text[:5].lower() == "s3://":
        from runctl_tui.checkpoints.listing_s3 import parse_s3_url

        parse_s3_url(text)
        return Location(text, LocationKind.S3, text)
    from runctl_tui.logs.remote import parse_log_source

    target, path = parse_log_source(text)
    if target is None:
        return Location(text, LocationKind.LOCAL, path)
    return Location(text, LocationKind.SSH, path, target)


# ---------------------------------------------------------------------------------------------
# Choosing what to inspect


class UnknownCheckpoint(ValueError):
    """``--inspect NAME`` names no checkpoint of the listing; the message is one line."""


def find_checkpoint(listing: Listing, name: str) -> Checkpoint | None:
    """The checkpoint called ``name``: its name in the listing (``run1/checkpoint-500``), its
    last part (``checkpoint-500``) or its full path; the newest of several."""
    wanted = name.rstrip("/") or name
    keys: tuple[Callable[[Checkpoint], str], ...] = (
        lambda c: c.name.rstrip("/"),
        lambda c: c.path.rstrip("/"),
        Checkpoint.basename,
    )
    for key in keys:
        found = [c for c in listing.checkpoints if key(c) == wanted]
        if found:
            return found[0]
    return None


def select_checkpoints(
    listing: Listing, names: Sequence[str] = (), inspect_all: bool = False
) -> list[Checkpoint]:
    """The checkpoints to inspect, newest first; :class:`UnknownCheckpoint` for a name that
    is not in the listing."""
    if inspect_all:
        return list(listing.checkpoints)
    chosen: list[Checkpoint] = []
    for name in names:
        found = find_checkpoint(listing, name)
        if found is None:
            known = ", ".join(one_line(c.name, 60) for c in listing.checkpoints[:5])
            more = ", ..." if len(listing.checkpoints) > 5 else ""
            listed = f" (listed: {known}{more})" if known else " (none listed)"
            raise UnknownCheckpoint(
                one_line(
                    f"no checkpoint named {one_line(name, 80)!r} in "
                    f"{one_line(listing.directory, 120)}{listed}",
                    400,
                )
            )
        if found not in chosen:
            chosen.append(found)
    return chosen


# ---------------------------------------------------------------------------------------------
# The report


class CheckpointReport(BaseModel):
    """A listing and the inspections made of some of its checkpoints."""

    model_config = ConfigDict(frozen=True)

    location: str
    """As the user gave it."""
    listing: Listing
    inspections: dict[str, Inspection] = {}
    """Keyed by :attr:`Checkpoint.name`."""

    @property
    def ok(self) -> bool:
        """Whether the location could be listed."""
        return self.listing.error is None


def local_report(
    location: str,
    directory: str,
    *,
    depth: int = DEFAULT_DEPTH,
    names: Sequence[str] = (),
    inspect_all: bool = False,
) -> CheckpointReport:
    """List a local directory and inspect the checkpoints asked for. Blocks."""
    from runctl_tui.checkpoints.listing_local import list_local
    from runctl_tui.checkpoints.remote_read import inspect_local

    listing = list_local(directory, max_depth=depth)
    inspections: dict[str, Inspection] = {}
    if listing.error is None:
        for checkpoint in select_checkpoints(listing, names, inspect_all):
            inspections[checkpoint.name] = inspect_local(checkpoint)
    return CheckpointReport(location=location, listing=listing, inspections=inspections)


def s3_report(
    client: Any,
    location: str,
    *,
    depth: int = DEFAULT_DEPTH,
    names: Sequence[str] = (),
    inspect_all: bool = False,
) -> CheckpointReport:
    """List an S3 prefix and inspect the checkpoints asked for with ranged reads. Blocks."""
    from runctl_tui.checkpoints.listing_s3 import list_s3
    from runctl_tui.checkpoints.remote_read import inspect_s3

    listing = list_s3(client, location, max_depth=depth)
    inspections: dict[str, Inspection] = {}
    if listing.error is None:
        for checkpoint in select_checkpoints(listing, names, inspect_all):
            inspections[checkpoint.name] = inspect_s3(client, checkpoint)
    return CheckpointReport(location=location, listing=listing, inspections=inspections)


async def sftp_report(
    hub: SshHub,
    target: SshTarget,
    location: str,
    directory: str,
    *,
    depth: int = DEFAULT_DEPTH,
    names: Sequence[str] = (),
    inspect_all: bool = False,
    timeout: float = 20.0,  # noqa: ASYNC109 - each SFTP call has its own bound
) -> CheckpointReport:
    """List a directory on an SSH host over the hub's SFTP, and inspect the checkpoints asked
    for with ranged reads."""
    from runctl_tui.checkpoints.listing_remote import list_sftp
    from runctl_tui.checkpoints.remote_read import inspect_sftp

    listing = await list_sftp(hub, target, directory, timeout=timeout, max_depth=depth)
    inspections: dict[str, Inspection] = {}
    if listing.error is not None:
        return CheckpointReport(location=location, listing=listing)
    chosen = select_checkpoints(listing, names, inspect_all)
    if not chosen:
        return CheckpointReport(location=location, listing=listing)
    try:
        conn = await asyncio.wait_for(hub.connection(target), timeout)
        sftp = await asyncio.wait_for(conn.start_sftp_client(), timeout)
    except Exception as exc:  # noqa: BLE001 - any SSH failure becomes each inspection's error
        why = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else str(exc)
        for checkpoint in chosen:
            inspections[checkpoint.name] = Inspection(
                name=f"{target}:{checkpoint.path}",
                error=one_line(
                    f"{checkpoint.basename()}: not inspected: no SFTP session: {why}", 300
                ),
            )
        return CheckpointReport(location=location, listing=listing, inspections=inspections)
    gate = asyncio.Semaphore(CONCURRENT_INSPECTIONS)

    async def one(checkpoint: Checkpoint) -> Inspection:
        async with gate:
            return await inspect_sftp(
                sftp, checkpoint, name=f"{target}:{checkpoint.path}", timeout=timeout
            )

    try:
        found = await asyncio.gather(*(one(c) for c in chosen))
    finally:
        sftp.exit()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sftp.wait_closed(), timeout)
    for checkpoint, inspection in zip(chosen, found, strict=True):
        inspections[checkpoint.name] = inspection
    return CheckpointReport(location=location, listing=listing, inspections=inspections)


# ---------------------------------------------------------------------------------------------
# Rendering


def human_age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``12 d``: how long ago, roughly."""
    if seconds < 0:
        return "future"
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _age_seconds(checkpoint: Checkpoint, now: datetime) -> float:
    return (now - checkpoint.modified).total_seconds()


def _shown_name(checkpoint: Checkpoint) -> str:
    name = one_line(checkpoint.name, NAME_WIDTH)
    return name + "/" if checkpoint.is_dir and not name.endswith("/") else name


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - cell_width(text))
    return gap + text if right else text + gap


def report_lines(report: CheckpointReport) -> list[str]:
    """The report as plain text lines, newest checkpoint first; every line safe to print."""
    listing = report.listing
    now = listing.listed_at
    place = one_line(report.location, 200)
    if listing.error is not None:
        return [f"error: {one_line(listing.error, 400)}"]
    count = len(listing.checkpoints)
    lines = [
        f"{place} · {one_line(listing.where, 80)} · {count} checkpoint{'s' if count != 1 else ''}"
        f" · listed {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    ]
    if count:
        rows = [
            (
                ("*" if c.newest else " ") + ("B" if c.best else " "),
                _shown_name(c),
                human_bytes(c.size),
                human_age(_age_seconds(c, now)),
                _number(c.step),
                _number(c.epoch),
                one_line(c.metric.label(), 60) if c.metric is not None else "",
            )
            for c in listing.checkpoints
        ]
        header = ("", "NAME", "SIZE", "AGE", "STEP", "EPOCH", "METRIC")
        widths = [max(cell_width(row[i]) for row in [header, *rows]) for i in range(7)]
        right = (False, False, True, True, True, True, False)
        for row in [header, *rows]:
            cells = [_pad(cell, widths[i], right[i]) for i, cell in enumerate(row)]
            lines.append("  ".join(cells).rstrip())
    else:
        lines.append("no checkpoints found")
    lines.append(f"total: {human_bytes(listing.total_size)} in {count} checkpoint(s)")
    best = listing.best
    if best is not None:
        reason = f" ({one_line(best.best_reason, 120)})" if best.best_reason else ""
        lines.append(f"best: {_shown_name(best)}{reason}")
    if not listing.complete:
        lines.append("note: the listing is incomplete")
    lines.extend(f"note: {one_line(note, 300)}" for note in listing.notes)
    for checkpoint in listing.checkpoints:
        inspection = report.inspections.get(checkpoint.name)
        if inspection is not None:
            lines.append("")
            lines.extend(inspection.summary_lines())
    return lines


def _metric(metric: Any) -> dict[str, Any]:
    return {
        "name": metric.name,
        "value": metric.value,
        "lower_is_better": metric.lower_is_better,
    }


def checkpoint_json(
    checkpoint: Checkpoint, now: datetime, inspection: Inspection | None
) -> dict[str, Any]:
    """One checkpoint in the ``v1`` schema."""
    return {
        "name": checkpoint.name,
        "path": checkpoint.path,
        "kind": checkpoint.kind.value,
        "where": checkpoint.where,
        "is_dir": checkpoint.is_dir,
        "size": checkpoint.size,
        "files": checkpoint.files,
        "modified": checkpoint.modified.isoformat(),
        "age_seconds": round(_age_seconds(checkpoint, now), 3),
        "step": checkpoint.step,
        "epoch": checkpoint.epoch,
        "metrics": [_metric(m) for m in checkpoint.metrics],
        "newest": checkpoint.newest,
        "best": checkpoint.best,
        "best_reason": checkpoint.best_reason or None,
        "named_best": checkpoint.named_best,
        "named_last": checkpoint.named_last,
        "shards": checkpoint.shards,
        "shards_present": checkpoint.shards_present,
        "members": list(checkpoint.members),
        "inspection": inspection.to_dict() if inspection is not None else None,
    }


def report_json(report: CheckpointReport) -> dict[str, Any]:
    """The report as the ``runctl-tui/checkpoints/v1`` JSON document."""
    listing = report.listing
    now = listing.listed_at
    newest = listing.newest
    best = listing.best
    return {
        "schema": SCHEMA,
        "location": report.location,
        "kind": listing.kind.value,
        "where": listing.where,
        "listed_at": now.isoformat(),
        "total_size": listing.total_size,
        "complete": listing.complete,
        "newest": newest.name if newest is not None else None,
        "best": best.name if best is not None else None,
        "checkpoints": [
            checkpoint_json(c, now, report.inspections.get(c.name)) for c in listing.checkpoints
        ],
        "notes": list(listing.notes),
        "error": listing.error,
    }
