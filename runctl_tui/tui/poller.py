"""The one poller of the app: its timer, the poll in flight, "poll now" and the GC policy.

Screens and panes never poll: they ask :meth:`Poller.poll_now` and react to the
:class:`~runctl_tui.tui.messages.FleetPolled` and :class:`~runctl_tui.tui.messages.PollFailed`
messages it posts to the node it was started on.
"""

from __future__ import annotations

import gc
from datetime import datetime
from functools import partial

from textual.message import Message
from textual.widget import Widget

from runctl_tui.models import FleetSnapshot
from runctl_tui.services.fleet import Clock, Fleet
from runctl_tui.text import clean
from runctl_tui.threads import run_blocking
from runctl_tui.tui.messages import FleetPolled, PollFailed
from runctl_tui.tui.widgets.instance_table import prepare


class Poller:
    """Polls the fleet every ``poll_seconds`` and on request, one poll at a time."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        clock: Clock,
        poll_seconds: float,
    ) -> None:
        self.fleet = fleet
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.polls_finished = 0
        """Polls that ended, well or not: how tests and benchmarks wait for one."""
        self._node: Widget | None = None
        self._polling = False
        self._again = False
        self._first = True

    @property
    def polling(self) -> bool:
        """Whether a poll is in flight."""
        return self._polling

    @property
    def polling_since(self) -> datetime | None:
        """When the poll in flight started, if one is."""
        return self.fleet.polling_since if self._polling else None

    def start(self, node: Widget) -> None:
        """Poll once ``node`` has been painted, then every ``poll_seconds``; post to ``node``.

        The worker and the timer belong to ``node``: they end with it, and quitting cancels
        the poll in flight without waiting for any provider.
        """
        self._node = node
        # The first frame goes out before the poll worker starts importing SDKs beside it.
        node.call_after_refresh(self.poll_now)
        node.set_interval(self.poll_seconds, self.poll_now, name="poll")

    def poll_now(self) -> None:
        """Poll unless a poll is in flight, in which case poll once more right after it."""
        node = self._node
        if node is None or not node.is_attached:
            return
        if self._polling:
            self._again = True
            return
        self._polling = True
        node.run_worker(self._poll(node), name="poll_fleet", group="poll", exit_on_error=False)

    async def _poll(self, node: Widget) -> None:
        """Ask every provider for its items and render the rows, off the event loop."""
        try:
            message = await self._poll_once()
        finally:
            # Also when cancelled: a later poll_now must not think this one still runs.
            self._polling = False
        self.polls_finished += 1
        self._collect_after(message)
        node.post_message(message)
        if self._again:
            self._again = False
            self.poll_now()

    async def _poll_once(self) -> Message:
        # Blocking providers run on daemon threads, not in a thread worker: the executor of
        # thread workers is joined on exit, so a poll stuck on a hung endpoint would hold up
        # quitting. Cancelling this worker abandons them.
        try:
            # Until the first poll ends, each provider's rows are shown as soon as they come:
            # a slow one (an SDK still loading) does not hold back the others.
            progress = self._show_progress if self._first else None
            snapshot = await self.fleet.poll_async(on_progress=progress)
            return await self._polled(snapshot)
        except Exception as exc:
            return PollFailed(clean(f"{type(exc).__name__}: {exc}"))

    async def _polled(self, snapshot: FleetSnapshot, *, final: bool = True) -> FleetPolled:
        """``snapshot`` with its rows sorted and rendered, off the event loop; a ``final``
        poll carries what the fleet costs as the ledger recorded it."""
        costs = self.fleet.cost_report if final else None
        spent = (
            {line.key: line.since_launch_usd for line in costs.lines if line.since_launch_usd}
            if costs is not None
            else None
        )
        rows = partial(prepare, snapshot.instances, self.clock(), spent)
        return FleetPolled(snapshot, await run_blocking(rows, name="runctl-rows"), costs)

    async def _show_progress(self, snapshot: FleetSnapshot) -> None:
        """Show what the providers that answered so far found."""
        node = self._node
        if node is not None and node.is_attached:
            node.post_message(await self._polled(snapshot, final=False))

    def _collect_after(self, message: Message) -> None:
        """The GC policy: collection is held off from start-up until the first poll ends."""
        if isinstance(message, FleetPolled) and self._first:
            self._first = False
            # What start-up and the first poll (boto3 included) built lives as long as the app:
            # keep it out of every later collection, whose pauses would stall the UI.
            gc.freeze()
        gc.enable()
