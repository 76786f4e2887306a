"""The cost service: records every poll in the ledger and says what the fleet costs.

The fleet service hands it each finished poll, so the TUI, ``runctl-tui status`` and
``runctl-tui costs`` accrue spend alike. It keeps the trackers that need more than one poll:
idle GPUs, budgets crossed, and resources that still bill after they were stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from runctl_tui.config import CostsSettings
from runctl_tui.models import ActionResult, FleetSnapshot, GpuUsage, Instance
from runctl_tui.text import one_line

if TYPE_CHECKING:
    from runctl_tui.costs.budget import BudgetWatch
    from runctl_tui.costs.gpu_probe import GpuProbeCache
    from runctl_tui.costs.idle import IdleTracker
    from runctl_tui.costs.ledger import Gap, Ledger, Spend
    from runctl_tui.costs.report import Alert, CostReport
    from runctl_tui.costs.verify import EffectChecker, Leak

# The ledger, the report and the trackers are imported where first used (in the poll worker):
# starting the dashboard does not wait for them.

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MAX_PROBES = 16
"""GPU probes started after one poll, at most: a large fleet is probed a slice at a time."""

EARLIER_DAYS_KEPT = timedelta(hours=1)
"""How long this month's spend before today is kept between reads, at most."""

MIN_GAP = timedelta(minutes=5)
"""Polls further apart than this (or three poll intervals) leave a gap the ledger must prove."""


def ledger_path(settings: CostsSettings) -> Path:
    """Where the ledger is: ``[costs] ledger``, else the platform's data directory."""
    if settings.ledger:
        return Path(settings.ledger).expanduser()
    from runctl_tui.costs.ledger import default_path

    return default_path()


class CostService:
    """The ledger and the trackers behind the cost pane and ``runctl-tui costs``."""

    def __init__(
        self,
        settings: CostsSettings | None = None,
        *,
        path: Path | None = None,
        clock: Clock | None = None,
        poll_seconds: float = 10.0,
        tz: tzinfo | None = None,
        record: bool = True,
    ) -> None:
        """``path``: the ledger (``[costs] ledger`` or the data directory when not given);
        ``tz``: where days and months end (the local zone when ``None``); ``record``: whether
        polls are written to the ledger (``False`` only reads it)."""
        self.settings = settings or CostsSettings()
        self._path = path
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tz = tz
        self.recording = record
        self.max_gap = max(MIN_GAP, timedelta(seconds=3 * poll_seconds))
        self.report: CostReport | None = None
        """The last report built."""
        self._ledger: Ledger | None = None
        self._ledger_error: str | None = None
        self._lock = threading.Lock()
        self._earlier: tuple[tuple[datetime, datetime], datetime, list[Spend]] | None = None
        """This month's spend before today, as last read: (month, day), when, spend."""

    @property
    def path(self) -> Path:
        """The ledger's file."""
        if self._path is None:
            self._path = ledger_path(self.settings)
        return self._path

    @cached_property
    def idle(self) -> IdleTracker:
        """Which GPU machines have stayed idle, and since when."""
        from runctl_tui.costs.idle import IdleTracker

        return IdleTracker(self.settings.idle_gpu_percent, self.settings.idle_minutes)

    @cached_property
    def effects(self) -> EffectChecker:
        """What was stopped or terminated, watched until it stops billing."""
        from runctl_tui.costs.verify import EffectChecker

        return EffectChecker()

    @cached_property
    def budgets(self) -> BudgetWatch:
        """Each budget's level, to announce every rise once."""
        from runctl_tui.costs.budget import BudgetWatch

        return BudgetWatch()

    @cached_property
    def probes(self) -> GpuProbeCache:
        """GPU figures read over SSH for machines whose provider sends none (EC2)."""
        from runctl_tui.costs.gpu_probe import GpuProbeCache

        return GpuProbeCache()

    # The ledger ------------------------------------------------------------------------------

    def ledger(self) -> Ledger | None:
        """The ledger, opened on first use; ``None`` when it cannot be (:attr:`ledger_error`)."""
        from runctl_tui.costs.ledger import Ledger, LedgerError

        if self._ledger is None:
            try:
                self._ledger = Ledger(self.path, clock=self.clock, max_gap=self.max_gap)
            except LedgerError as exc:
                self._ledger_error = one_line(str(exc), 300)
                log.error("%s", self._ledger_error)
                return None
            self._ledger_error = None
        return self._ledger

    @property
    def ledger_error(self) -> str | None:
        """Why the ledger could not be opened or written, on the last try."""
        return self._ledger_error

    def reset_ledger(self) -> None:
        """Forget every recorded interval; raises :class:`LedgerError`."""
        from runctl_tui.costs.ledger import LedgerError

        ledger = self.ledger()
        if ledger is None:
            raise LedgerError(self._ledger_error or f"ledger {self.path}: cannot be opened")
        ledger.reset()

    def close(self) -> None:
        """Close the ledger."""
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None

    # Polls -------------------------------------------------------------------------------------

    def observe(self, snapshot: FleetSnapshot) -> CostReport:
        """Record ``snapshot`` in the ledger and report what the fleet costs (blocking)."""
        from runctl_tui.costs.budget import BudgetLevel
        from runctl_tui.costs.ledger import LedgerError
        from runctl_tui.costs.report import Alert, billables

        with self._lock:
            now = snapshot.taken_at
            ledger = self.ledger()
            if ledger is not None and self.recording:
                try:
                    ledger.record(billables(snapshot), now)
                    self._ledger_error = None
                except LedgerError as exc:
                    self._ledger_error = one_line(str(exc), 300)
                    log.error("%s", self._ledger_error)
            self.probes.prune(snapshot.instances)
            self.idle.update(self.probes.apply(snapshot.instances, now), now)
            leaks = self.effects.observe(snapshot)
            report = self._report(snapshot, now, ledger, leaks=leaks)
            alerts = [
                Alert("error" if c.level is BudgetLevel.OVER else "warning", c.describe(), True)
                for c in self.budgets.update(report.budgets)
            ]
            alerts.extend(
                Alert("error", f"{leak.describe()}; check it at its provider", True)
                for leak in self.effects.new_leaks()
            )
            report = _with_alerts(report, alerts)
            self.report = report
            return report

    def read(self, snapshot: FleetSnapshot, since: datetime | None = None) -> CostReport:
        """The report of ``snapshot`` without recording it (a report of past spend)."""
        with self._lock:
            return self._report(snapshot, snapshot.taken_at, self.ledger(), since=since)

    def _report(
        self,
        snapshot: FleetSnapshot,
        now: datetime,
        ledger: Ledger | None,
        *,
        leaks: Sequence[Leak] = (),
        since: datetime | None = None,
    ) -> CostReport:
        from runctl_tui.costs.ledger import LedgerError, day_start, merge_spend, month_start
        from runctl_tui.costs.report import build_report

        day = day_start(now, self.tz)
        month = month_start(now, self.tz)
        today: list[Spend] = []
        this_month: list[Spend] = []
        gaps: list[Gap] = []
        calendar_month: Decimal | None = None
        since_launch: dict[str, Decimal] | None = None
        error = self._ledger_error
        if ledger is not None:
            try:
                today = ledger.spend(day, now)
                if since is None:
                    this_month = merge_spend(self._earlier_days(ledger, month, day, now), today)
                else:
                    this_month = ledger.spend(since, now)
                gaps = ledger.gaps(since or month, now)
                since_launch = ledger.spend_since(_running_since(snapshot), now)
                if since is not None:
                    # The monthly budget is the calendar month's, whatever period is shown.
                    calendar_month = ledger.totals(month, now)
            except LedgerError as exc:
                error = one_line(str(exc), 300)
        return build_report(
            snapshot,
            now=now,
            day_start=day,
            month_start=since or month,
            today=today,
            month=this_month,
            since_launch=since_launch,
            idle=self.idle.all(),
            gpu_notes=self._gpu_notes(snapshot),
            leaks=leaks,
            gaps=gaps,
            daily_budget=self.settings.daily_budget,
            monthly_budget=self.settings.monthly_budget,
            budget_month_usd=calendar_month,
            ledger_path=str(self.path),
            ledger_error=error,
            tz=self.tz,
        )

    def _gpu_notes(self, snapshot: FleetSnapshot) -> dict[str, str]:
        """Why each running GPU machine's load could not be read, by key."""
        notes = {}
        for instance in snapshot.instances:
            error = self.probes.error(instance.key)
            if error and not instance.gpu_usage:
                notes[instance.key] = f"GPU load not read over SSH: {one_line(error, 200)}"
        return notes

    # GPU figures over SSH ----------------------------------------------------------------------

    def probes_due(self, instances: Sequence[Instance], limit: int = MAX_PROBES) -> list[Instance]:
        """Running GPU machines without figures whose probe is due; marked as being probed."""
        with self._lock:
            now = self.clock()
            due = self.probes.due(instances, now)[:limit]
            for instance in due:
                self.probes.begin(instance.key, now)
            return due

    def probed(self, key: str, gpus: Sequence[GpuUsage] | None, error: str | None = None) -> None:
        """What a probe found (``gpus``), or why it failed."""
        with self._lock:
            if gpus is None:
                self.probes.record_failure(key, error or "failed", self.clock())
            else:
                self.probes.record(key, gpus, self.clock())

    def _earlier_days(
        self, ledger: Ledger, month: datetime, day: datetime, now: datetime
    ) -> list[Spend]:
        """This month's spend before today: read again only when a write reached back before
        today, the day changed, or an hour passed; each poll reads just today."""
        changed = ledger.changed_since_asked()
        kept = self._earlier
        if (
            kept is None
            or kept[0] != (month, day)
            or (changed is not None and changed < day)
            or now - kept[1] > EARLIER_DAYS_KEPT
        ):
            kept = ((month, day), now, ledger.spend(month, day))
            self._earlier = kept
        return kept[2]

    # Actions -----------------------------------------------------------------------------------

    def expect(self, results: Sequence[ActionResult]) -> None:
        """Watch that what was just stopped or terminated stops billing."""
        with self._lock:
            for result in results:
                self.effects.expect(result, self.clock())

    def idle_stops(self, report: CostReport) -> tuple[list[Instance], list[tuple[Instance, str]]]:
        """What ``on_budget_exceeded = "stop-idle"`` stops now: idle GPU items, once a budget
        is exceeded; nothing when the setting is off. Also the idle items it leaves, and why."""
        from runctl_tui.costs.budget import BudgetLevel, plan_idle_stops

        if self.settings.on_budget_exceeded != "stop-idle":
            return [], []
        if not any(b.level is BudgetLevel.OVER for b in report.budgets):
            return [], []
        instances = [line.instance for line in report.lines if line.instance is not None]
        return plan_idle_stops(instances, self.idle.all())


def _with_alerts(report: CostReport, alerts: Sequence[Alert]) -> CostReport:
    return replace(report, alerts=tuple(alerts)) if alerts else report


def _running_since(snapshot: FleetSnapshot) -> dict[str, datetime]:
    """Each running machine's start of its current running period, by key."""
    from runctl_tui.costs.report import billing

    return {
        instance.key: instance.launched_at
        for instance in snapshot.instances
        if instance.launched_at is not None and billing(instance)
    }
