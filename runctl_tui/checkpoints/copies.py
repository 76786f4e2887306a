"""Is an instance's newest checkpoint kept anywhere but on its own disk?

Before an instance is terminated, its checkpoint directories (as its provider finds them) are
listed, the newest checkpoint among them is picked, and the configured ``[checkpoints] copies``
(S3 prefixes, directories on this machine) are listed to find a copy of it
(:func:`runctl_tui.checkpoints.listing.find_copy`). Listing goes through a :data:`Lister`, so
the caller decides how S3 and SSH are reached (the app's hub and S3 client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runctl_tui.checkpoints.listing import Checkpoint, CopyCheck, Listing, find_copy

if TYPE_CHECKING:
    from runctl_tui.models import Instance
    from runctl_tui.providers.base import CheckpointLocation
    from runctl_tui.remote.ssh import SshHub

Lister = Callable[[str], Awaitable[Listing]]
"""Lists a location: a local path, ``ssh://user@host:port/path`` or ``s3://bucket/prefix``."""


class FindsCheckpoints(Protocol):
    """What is needed of the fleet service: where an instance's checkpoints are."""

    async def checkpoint_locations(self, instance: Instance) -> list[CheckpointLocation]:
        """The instance's checkpoint directories, likeliest first."""
        ...


@dataclass(frozen=True)
class NewestCheckpoint:
    """The newest checkpoint found on an instance, and what was listed to find it."""

    checkpoint: Checkpoint | None
    listings: tuple[Listing, ...]


async def newest_checkpoint(
    fleet: FindsCheckpoints, instance: Instance, lister: Lister
) -> NewestCheckpoint:
    """The most recently written checkpoint in any of ``instance``'s checkpoint directories;
    ``None`` when none holds one. Raises what the provider raises (:class:`ProviderError`)."""
    locations = await fleet.checkpoint_locations(instance)
    listings = tuple([await lister(location.source) for location in locations])
    candidates = [listing.newest for listing in listings if listing.newest is not None]
    newest = max(candidates, key=lambda c: c.modified, default=None)
    return NewestCheckpoint(newest, listings)


async def check_copies(
    fleet: FindsCheckpoints, instance: Instance, copies: Sequence[str], lister: Lister
) -> CopyCheck | None:
    """Whether ``instance``'s newest checkpoint has a copy in one of ``copies``; ``None`` when
    the instance has no checkpoint to lose. ``CopyCheck.warning`` is the one line for the
    terminate confirmation when no copy was found."""
    found = await newest_checkpoint(fleet, instance, lister)
    newest = found.checkpoint
    if newest is None:
        return None
    elsewhere = [await lister(copy) for copy in copies]
    return find_copy(newest.name, newest.step, newest.size, elsewhere)


def default_lister(hub: SshHub | None = None, s3_client: Callable[[], Any] | None = None) -> Lister:
    """A :data:`Lister` that lists local paths in a thread, SSH locations over ``hub``'s SFTP
    and S3 prefixes with ``s3_client()`` (in a thread); a location it cannot reach gives a
    listing whose ``error`` says why."""
    from runctl_tui.checkpoints.listing import failed_listing
    from runctl_tui.checkpoints.report import parse_location
    from runctl_tui.text import one_line

    async def lister(source: str) -> Listing:
        from runctl_tui.checkpoints.listing import LocationKind

        try:
            location = parse_location(source)
        except ValueError as exc:
            return failed_listing(source, LocationKind.LOCAL, "this machine", one_line(exc, 300))
        if location.kind is LocationKind.S3:
            if s3_client is None:
                return failed_listing(source, location.kind, source, "S3 is not configured")
            from runctl_tui.checkpoints.listing_s3 import list_s3

            client = s3_client
            return await asyncio.to_thread(lambda: list_s3(client(), location.path))
        if location.kind is LocationKind.SSH:
            where = str(location.target)
            if hub is None or location.target is None:
                return failed_listing(source, location.kind, where, "no SSH connection to it")
            from runctl_tui.checkpoints.listing_remote import list_sftp

            return await list_sftp(hub, location.target, location.path)
        from runctl_tui.checkpoints.listing_local import list_local

        return await asyncio.to_thread(list_local, location.path)

    return lister
