"""The cost ledger: billing intervals in SQLite, so spend survives restarts and gone resources.

The ledger stores intervals, not samples: one row per resource and contiguous billing period at
one rate. Each poll extends the open interval of every resource still billing at an unchanged
rate; a change of rate, a restart or a gap that cannot be proven opens a new one. Intervals of a
resource never overlap, so nothing is counted twice, and each keeps the rate in force then, so a
price change never rewrites history. Times are stored as integer microseconds since the epoch
and rates as ``Decimal`` text: money is never a float.

Several processes may record at once (the TUI and ``runctl-tui status``): every write runs in a
``BEGIN IMMEDIATE`` transaction on a WAL database, and a writer reloads what it knows of open
intervals whenever another connection has committed since its own last write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path

import platformdirs

Clock = Callable[[], datetime]
"""Returns the current time, UTC-aware."""

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 10.0
_US = 1_000_000
_US_PER_HOUR = Decimal(3600 * _US)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

GAP_REASON = "may have run while runctl-tui was closed; not counted"

_SCHEMA = """
CREATE TABLE intervals (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    location TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    rate TEXT,
    rate_source TEXT NOT NULL,
    since INTEGER,
    off_at INTEGER
);
CREATE INDEX intervals_key ON intervals (key, id);
CREATE INDEX intervals_end ON intervals (end);
CREATE TABLE gaps (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX gaps_end ON gaps (end);
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS intervals_rate ON intervals (rate, end, start);
"""
"""Covering indexes for the totals query, added to ledgers of any version on opening."""
"""``end`` is the last sample seen billing; ``off_at``, when set, the last sample seen not
billing after it (the interval is then closed). ``rate`` is ``NULL`` when the price is unknown;
``since`` is the start of the billing period the provider reported when the interval opened."""


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def default_path() -> Path:
    """Where the ledger lives unless ``[costs] ledger`` says otherwise: the user data
    directory (``$XDG_DATA_HOME`` on Linux)."""
    return platformdirs.user_data_path("runctl-tui") / "ledger.sqlite3"


def merge_spend(earlier: Sequence[Spend], later: Sequence[Spend]) -> list[Spend]:
    """The spend of two adjacent ranges as one: times and money added per resource, its name
    and latest rate from the later range where it has one."""
    merged: dict[str, Spend] = {s.key: s for s in earlier}
    for spend in later:
        before = merged.get(spend.key)
        if before is None:
            merged[spend.key] = spend
            continue
        merged[spend.key] = replace(
            spend,
            seconds=before.seconds + spend.seconds,
            usd=before.usd + spend.usd,
            unpriced_seconds=before.unpriced_seconds + spend.unpriced_seconds,
        )
    return sorted(merged.values(), key=lambda s: (-s.usd, s.key))


def day_start(now: datetime, tz: tzinfo | None = None) -> datetime:
    """Midnight of ``now``'s day in ``tz`` (the system's local time when ``None``), in UTC."""
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return _local_to_utc(midnight, tz)


def month_start(now: datetime, tz: tzinfo | None = None) -> datetime:
    """Midnight of the first of ``now``'s month in ``tz`` (local when ``None``), in UTC."""
    local = now.astimezone(tz)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return _local_to_utc(first, tz)


def _local_to_utc(moment: datetime, tz: tzinfo | None) -> datetime:
    if tz is None:
        # The offset of ``now`` may not be midnight's (a DST change that day): ask again.
        moment = moment.replace(tzinfo=None).astimezone()
    return moment.astimezone(UTC)


class LedgerError(Exception):
    """The ledger file cannot be used: one line naming the file and why."""


@dataclass(frozen=True)
class Billable:
    """One thing that may cost money at this poll."""

    key: str
    """Unique across providers: ``aws:i-0abc``, ``aws:vol-1``, ``runpod:pod1``, ``ssh:lab-box``."""
    provider: str
    name: str
    kind: str
    """``ec2``, ``pod``, ``host``, ``volume``, ..."""
    location: str
    billing: bool
    """Paying right now (a running instance, an existing volume)."""
    usd_per_hour: Decimal | None
    """``None``: price unknown, so time is tracked but no cost counted."""
    rate_source: str
    """Shown with every figure; stored with each interval."""
    since: datetime | None
    """Start of the current billing period (EC2 LaunchTime, volume CreateTime, pod start): the
    proof it billed continuously since then."""


@dataclass(frozen=True)
class Spend:
    """What one resource cost within a time range."""

    key: str
    provider: str
    name: str
    kind: str
    location: str
    seconds: Decimal
    """Billing time in the range, priced or not."""
    usd: Decimal
    usd_per_hour: Decimal | None
    """The latest rate in the range (``None``: unknown)."""
    rate_source: str
    unpriced_seconds: Decimal
    """Billing time whose rate was unknown, not included in :attr:`usd`."""


@dataclass(frozen=True)
class Gap:
    """A stretch when a resource may have billed that the ledger could not prove."""

    key: str
    name: str
    start: datetime
    end: datetime
    reason: str


@dataclass
class _Latest:
    """The latest interval of one key, as the writer knows it."""

    id: int
    end: int
    rate: Decimal | None
    off_at: int | None
    since: int | None
    meta: tuple[str, str, str, str, str]
    """provider, name, kind, location, rate_source"""


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the ledger needs UTC-aware times")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _rate_text(rate: Decimal | None) -> str | None:
    return None if rate is None else str(rate)


def _same_rate(a: Decimal | None, b: Decimal | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b


def _reason(error: sqlite3.Error) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return "not a ledger database or corrupt (move it away or run costs --reset-ledger)"
    if "locked" in lowered or "busy" in lowered:
        return "locked by another process for too long"
    if "readonly" in lowered or "read-only" in lowered:
        return "read-only"
    if "unable to open" in lowered:
        return "cannot be opened (check the directory's permissions)"
    return text


class Ledger:
    """Billing intervals of every resource seen, in a SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        max_gap: timedelta = timedelta(minutes=5),
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._max_gap = int(max_gap.total_seconds() * _US)
        self._lock = threading.Lock()
        self._latest: dict[str, _Latest] | None = None
        self._changed_from: int | None = 0
        """The earliest time (microseconds) written since :meth:`changed_since_asked`."""
        self._data_version: int | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LedgerError(
                f"ledger {self._path}: cannot create its directory ({error.strerror})"
            ) from None
        try:
            self._db = sqlite3.connect(
                self._path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise self._error(error) from None
        try:
            self._open()
        except LedgerError:
            self._db.close()
            raise
        except sqlite3.Error as error:
            self._db.close()
            raise self._error(error) from None

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._path

    def _error(self, error: sqlite3.Error) -> LedgerError:
        return LedgerError(f"ledger {self._path}: {_reason(error)}")

    def _open(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise LedgerError(f"ledger {self._path}: cannot use write-ahead logging")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise LedgerError(f"ledger {self._path}: not a runctl-tui ledger")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self._path}: written by a newer runctl-tui (schema {version})"
                )
            for statement in _INDEXES.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success, rolled back on error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._latest = None
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._data_version = self._version()

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _known(self) -> dict[str, _Latest]:
        """The latest interval of every key, reloaded if another connection wrote since."""
        if self._latest is not None and self._version() == self._data_version:
            return self._latest
        # Another connection wrote (or this one starts): any time may have changed.
        self._touch(0)
        rows = self._db.execute(
            "SELECT id, key, end, rate, off_at, since, provider, name, kind, location,"
            " rate_source"
            " FROM intervals WHERE id IN (SELECT max(id) FROM intervals GROUP BY key)"
        )
        self._latest = {
            key: _Latest(
                id_,
                end,
                None if rate is None else Decimal(rate),
                off_at,
                since,
                (provider, name, kind, location, source),
            )
            for id_, key, end, rate, off_at, since, provider, name, kind, location, source in rows
        }
        return self._latest

    # Writing -----------------------------------------------------------------------------------

    def record(self, items: Sequence[Billable], at: datetime | None = None) -> None:
        """Note what is billing at ``at`` (default: now): extend, open or close intervals."""
        when = _us(at if at is not None else self._clock())
        with self._lock:
            try:
                with self._write():
                    self._record(items, when)
            except sqlite3.Error as error:
                raise self._error(error) from None

    def _record(self, items: Sequence[Billable], at: int) -> None:
        known = self._known()
        extend: list[int] = []
        off: list[int] = []
        renamed: list[tuple[str, str, str, str, str, int]] = []
        gaps: list[tuple[str, str, int, int, str]] = []
        max_gap = self._max_gap
        for item in items:
            latest = known.get(item.key)
            if not item.billing:
                last = (
                    None
                    if latest is None
                    else latest.end
                    if latest.off_at is None
                    else latest.off_at
                )
                if latest is not None and last is not None and at > last:
                    latest.off_at = at
                    off.append(latest.id)
                continue
            since = None if item.since is None else _us(item.since)
            if latest is None:
                self._open_interval(item, at if since is None else min(since, at), at, since)
                continue
            if latest.off_at is None:
                seen = latest.end
                if at <= seen:
                    continue
                if (since is None and at - seen <= max_gap) or (
                    since is not None and (since <= seen or since == latest.since)
                ):
                    latest.end = at
                    extend.append(latest.id)
                    self._touch(seen)
                    meta = (item.provider, item.name, item.kind, item.location, item.rate_source)
                    if not _same_rate(latest.rate, item.usd_per_hour):
                        self._open_interval(item, at, at, since)
                    elif meta != latest.meta:
                        latest.meta = meta
                        renamed.append((*meta, latest.id))
                    continue
            else:
                seen = latest.off_at
                if at <= seen:
                    continue
            start = at if since is None or since <= seen else min(since, at)
            if at - seen > max_gap and start > seen:
                gaps.append((item.key, item.name, seen, start, GAP_REASON))
            self._open_interval(item, start, at, since)
        db = self._db
        if extend:
            db.execute(
                "UPDATE intervals SET end = ? WHERE id IN (SELECT value FROM json_each(?))",
                (at, json.dumps(extend)),
            )
        if off:
            db.execute(
                "UPDATE intervals SET off_at = ? WHERE id IN (SELECT value FROM json_each(?))",
                (at, json.dumps(off)),
            )
        if renamed:
            db.executemany(
                "UPDATE intervals SET provider = ?, name = ?, kind = ?, location = ?,"
                " rate_source = ? WHERE id = ?",
                renamed,
            )
        if gaps:
            db.executemany(
                "INSERT INTO gaps (key, name, start, end, reason) VALUES (?, ?, ?, ?, ?)", gaps
            )

    def _open_interval(self, item: Billable, start: int, at: int, since: int | None) -> None:
        """Insert a new interval ``[start, at]`` for ``item`` and make it the key's latest."""
        assert self._latest is not None
        self._touch(start)
        meta = (item.provider, item.name, item.kind, item.location, item.rate_source)
        cursor = self._db.execute(
            "INSERT INTO intervals (key, provider, name, kind, location, start, end, rate,"
            " rate_source, since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.key, *meta[:4], start, at, _rate_text(item.usd_per_hour), meta[4], since),
        )
        assert cursor.lastrowid is not None
        self._latest[item.key] = _Latest(cursor.lastrowid, at, item.usd_per_hour, None, since, meta)

    def _touch(self, moment: int) -> None:
        """Note that spend from ``moment`` (microseconds) on may have changed."""
        if self._changed_from is None or moment < self._changed_from:
            self._changed_from = moment

    def changed_since_asked(self) -> datetime | None:
        """The earliest moment whose spend this connection's writes (or another connection's,
        seen when this one last wrote) may have changed since the last call; ``None`` if none.
        A reader that keeps the spend of earlier days uses it to know when to read them again."""
        with self._lock:
            moment, self._changed_from = self._changed_from, None
        return None if moment is None else _from_us(moment)

    def reset(self) -> None:
        """Forget every interval and gap."""
        with self._lock:
            try:
                with self._write():
                    self._db.execute("DELETE FROM intervals")
                    self._db.execute("DELETE FROM gaps")
                    self._latest = {}
                    self._touch(0)
            except sqlite3.Error as error:
                raise self._error(error) from None

    def close(self) -> None:
        """Close the database; the ledger cannot be used afterwards."""
        with self._lock:
            self._latest = None
            self._db.close()

    # Reading -----------------------------------------------------------------------------------

    def _read(
        self, sql: str, parameters: Sequence[object] | Mapping[str, object]
    ) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, parameters))
            except sqlite3.Error as error:
                raise self._error(error) from None

    def spend(self, start: datetime, end: datetime) -> list[Spend]:
        """Per resource, what its billing within ``[start, end)`` cost, each part at its rate."""
        lo, hi = _us(start), _us(end)
        rows = self._read(
            "SELECT key, rate, sum(max(0, min(end, :hi) - max(start, :lo))), max(id),"
            " provider, name, kind, location, rate_source"
            " FROM intervals WHERE start < :hi AND (end > :lo OR (end = start AND start >= :lo))"
            " GROUP BY key, rate",
            {"lo": lo, "hi": hi},
        )
        totals: dict[str, list[Decimal]] = {}
        latest: dict[str, tuple[int, tuple[object, ...]]] = {}
        for key, rate, micros, last_id, *meta in rows:
            assert isinstance(key, str)
            assert isinstance(micros, int)
            assert isinstance(last_id, int)
            seconds = Decimal(micros) / _US
            usd = Decimal(0)
            unpriced = Decimal(0)
            if rate is None:
                unpriced = seconds
            else:
                usd = Decimal(str(rate)) * micros / _US_PER_HOUR
            bucket = totals.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
            bucket[0] += seconds
            bucket[1] += usd
            bucket[2] += unpriced
            if key not in latest or last_id > latest[key][0]:
                latest[key] = (last_id, (rate, *meta))
        result = []
        for key, (seconds, usd, unpriced) in totals.items():
            rate, provider, name, kind, location, source = latest[key][1]
            result.append(
                Spend(
                    key=key,
                    provider=str(provider),
                    name=str(name),
                    kind=str(kind),
                    location=str(location),
                    seconds=seconds,
                    usd=usd,
                    usd_per_hour=None if rate is None else Decimal(str(rate)),
                    rate_source=str(source),
                    unpriced_seconds=unpriced,
                )
            )
        result.sort(key=lambda s: (-s.usd, s.key))
        return result

    def spend_since(self, starts: Mapping[str, datetime], end: datetime) -> dict[str, Decimal]:
        """What each resource cost from its own start (a launch) to ``end``, each part at its
        rate; resources without recorded billing are left out. One query for all of them."""
        if not starts:
            return {}
        pairs = json.dumps([[key, _us(moment)] for key, moment in starts.items()])
        rows = self._read(
            "WITH wanted(key, lo) AS (SELECT json_extract(value, '$[0]'),"
            " json_extract(value, '$[1]') FROM json_each(:pairs))"
            " SELECT i.key, i.rate, sum(min(i.end, :hi) - max(i.start, w.lo))"
            " FROM wanted w JOIN intervals i ON i.key = w.key"
            " WHERE i.end > w.lo AND i.start < :hi AND i.rate IS NOT NULL"
            " GROUP BY i.key, i.rate",
            {"pairs": pairs, "hi": _us(end)},
        )
        spent: dict[str, Decimal] = {}
        for key, rate, micros in rows:
            assert isinstance(key, str)
            assert isinstance(micros, int)
            spent[key] = spent.get(key, Decimal(0)) + Decimal(str(rate)) * micros / _US_PER_HOUR
        return spent

    def totals(self, start: datetime, end: datetime) -> Decimal:
        """Everything billed within ``[start, end)``, each interval at its own rate."""
        lo, hi = _us(start), _us(end)
        rows = self._read(
            "SELECT rate, sum(min(end, :hi) - max(start, :lo)) FROM intervals"
            " WHERE start < :hi AND end > :lo AND rate IS NOT NULL GROUP BY rate",
            {"lo": lo, "hi": hi},
        )
        total = Decimal(0)
        for rate, micros in rows:
            assert isinstance(micros, int)
            total += Decimal(str(rate)) * micros / _US_PER_HOUR
        return total

    def gaps(self, start: datetime, end: datetime) -> list[Gap]:
        """Stretches within ``[start, end)`` that may have cost money the ledger could not prove."""
        rows = self._read(
            "SELECT key, name, start, end, reason FROM gaps WHERE start < ? AND end > ?"
            " ORDER BY start, key",
            (_us(end), _us(start)),
        )
        gaps = []
        for key, name, lo, hi, reason in rows:
            assert isinstance(lo, int)
            assert isinstance(hi, int)
            gaps.append(Gap(str(key), str(name), _from_us(lo), _from_us(hi), str(reason)))
        return gaps
