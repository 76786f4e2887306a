"""EC2 hourly rates: on-demand from the AWS Price List API (cached on disk for 7 days), spot from
the spot price history, the bundled price table when neither can be read.

Nothing here imports boto3: the clients come in from :mod:`runctl_tui.providers.aws`, and the
calls run on the polling threads that already wait on EC2.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from runctl_tui.models import Rate
from runctl_tui.text import one_line
from runctl_tui.threads import map_all, submit

log = logging.getLogger(__name__)

LIVE_SOURCE = "AWS Price List API"
BUNDLED_SOURCE = "bundled price table"
SPOT_SOURCE = "spot price history"
FALLBACK_REGION = "us-east-1"
"""The bundled table's reference region: other regions missing from it are estimated from it."""
PRICING_REGION = "us-east-1"
"""The Price List API answers from us-east-1 (and two other regions) for every region."""

FETCH_WAIT_SECONDS = 4.0
"""How long a poll waits for the Price List API before it shows the bundled price."""

CACHE_FILE = "ec2_on_demand.json"
CACHE_VERSION = 1

ON_DEMAND_TTL = timedelta(days=7)
"""A price read from the Price List API is kept this long (on disk, across restarts)."""
FAILURE_RETRY = timedelta(minutes=5)
"""After a failed call (denied, offline, throttled) the API is asked again after this long."""
NOT_LISTED_RETRY = timedelta(hours=6)
"""After the API answered but listed no price for a type in a region."""
SPOT_TTL = timedelta(minutes=10)
"""Spot prices move slowly: one look per zone and type this often is enough."""

DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})

PRODUCT_FILTERS = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("licenseModel", "No License required"),
)
"""The on-demand Linux price, as the EC2 console shows it."""


def now_utc() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def cache_dir() -> Path:
    """Where fetched prices are kept: the platform's user cache directory of runctl-tui
    (``$XDG_CACHE_HOME`` on Linux)."""
    import platformdirs

    return platformdirs.user_cache_path("runctl-tui") / "prices"


@dataclass(frozen=True)
class BundledTable:
    """The on-demand price table shipped with the package."""

    as_of: datetime
    """The day the prices were read (midnight UTC)."""
    prices: Mapping[str, Mapping[str, Decimal]]
    """Region to instance type to USD per hour."""

    def rate(self, region: str, instance_type: str, note: str) -> Rate | None:
        """The table's price for ``instance_type`` in ``region`` (estimated from
        :data:`FALLBACK_REGION` when the table lacks the region); ``None`` when absent."""
        price = self.prices.get(region, {}).get(instance_type)
        if price is not None:
            return Rate(
                usd_per_hour=price,
                source=BUNDLED_SOURCE,
                as_of=self.as_of,
                region=region,
                note=note,
            )
        price = self.prices.get(FALLBACK_REGION, {}).get(instance_type)
        if price is None:
            return None
        return Rate(
            usd_per_hour=price,
            source=BUNDLED_SOURCE,
            as_of=self.as_of,
            region=FALLBACK_REGION,
            estimate=True,
            note=f"{note}; {FALLBACK_REGION} price used for {region}",
        )


@cache
def bundled_table() -> BundledTable:
    """The bundled table, read once."""
    raw = json.loads(
        resources.files("runctl_tui.costs").joinpath("ec2_on_demand_usd.json").read_text("utf-8")
    )
    regions: dict[str, dict[str, Decimal]] = {}
    aliases: dict[str, str] = {}
    for region, table in raw["regions"].items():
        if isinstance(table, str):
            aliases[region] = table
        else:
            regions[region] = {name: Decimal(value) for name, value in table.items()}
    for region, same_as in aliases.items():
        regions[region] = regions[same_as]
    as_of = datetime.fromisoformat(raw["as_of"]).replace(tzinfo=UTC)
    return BundledTable(as_of=as_of, prices=regions)


def product_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """``get_products`` filters for the on-demand Linux price of one type in one region."""
    pairs = [("instanceType", instance_type), ("regionCode", region), *PRODUCT_FILTERS]
    return [{"Type": "TERM_MATCH", "Field": name, "Value": value} for name, value in pairs]


def on_demand_price(price_list: Iterable[str]) -> Decimal | None:
    """The hourly on-demand USD price in a ``get_products`` ``PriceList`` (JSON strings);
    ``None`` when it holds none. The plain ``RunInstances`` product wins over any other."""
    found: list[tuple[bool, Decimal]] = []
    for document in price_list:
        try:
            product = json.loads(document)
        except (TypeError, ValueError):
            continue
        if not isinstance(product, dict):
            continue
        attributes = product.get("product", {}).get("attributes", {})
        plain = attributes.get("operation") == "RunInstances"
        for term in (product.get("terms", {}).get("OnDemand") or {}).values():
            for dimension in (term.get("priceDimensions") or {}).values():
                usd = (dimension.get("pricePerUnit") or {}).get("USD")
                unit = str(dimension.get("unit", "Hrs"))
                if usd is None or not unit.lower().startswith("hr"):
                    continue
                try:
                    price = Decimal(str(usd))
                except InvalidOperation:
                    continue
                if price.is_finite() and price >= 0:
                    found.append((plain, price))
    if not found:
        return None
    plain_prices = [price for plain, price in found if plain]
    return plain_prices[0] if plain_prices else found[0][1]


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", "") or "")
    return ""


def why_failed(exc: BaseException, what: str, permission: str) -> str:
    """One line: why a price call failed, naming the permission when it was denied."""
    if _error_code(exc) in DENIED_CODES:
        return f"no permission to read the {what} ({permission})"
    from runctl_tui.providers.aws import explain

    try:
        message, _ = explain(exc, None)
    except Exception:
        message = f"{type(exc).__name__}: {exc}"
    return f"the {what} could not be read: {one_line(' '.join(message.split()), 160)}"


@dataclass
class _Entry:
    usd_per_hour: Decimal
    fetched_at: datetime


@dataclass
class _Miss:
    note: str
    retry_at: datetime


@dataclass
class PriceReport:
    """Rates found for one region, and what could not be priced."""

    rates: dict[str, Rate] = field(default_factory=dict)
    """Instance type (on-demand) or ``type@zone`` (spot) to rate."""
    warnings: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    """Instance types with no price anywhere (each has its warning)."""


def unpriced_warning(region: str, instance_type: str) -> str:
    """The poll warning for a type priced nowhere."""
    return (
        f"no price for instance type '{one_line(instance_type, 60)}' in {one_line(region, 40)}:"
        " not in the AWS Price List or the bundled table"
    )


class OnDemandCache:
    """Prices read from the Price List API, on disk as JSON, one entry per region and type."""

    def __init__(self, directory: Path | None = None) -> None:
        """``directory``: :func:`cache_dir` when not given (looked up on first use)."""
        self._directory = directory
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] | None = None

    @property
    def path(self) -> Path:
        """The cache file."""
        return (self._directory or cache_dir()) / CACHE_FILE

    def _load(self) -> dict[str, _Entry]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self, *, quiet: bool = False) -> dict[str, _Entry]:
        path = self.path
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            if not quiet:
                log.warning("price cache %s unreadable, ignored: %s", path, exc)
            return {}
        try:
            raw = json.loads(text)
            if raw.get("version") != CACHE_VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            entries = {}
            for key, value in raw["entries"].items():
                fetched = datetime.fromisoformat(value["fetched_at"])
                if fetched.tzinfo is None:
                    raise ValueError(f"{key}: fetched_at without a time zone")
                price = Decimal(value["usd_per_hour"])
                if not price.is_finite() or price < 0:
                    raise ValueError(f"{key}: bad price {value['usd_per_hour']!r}")
                entries[str(key)] = _Entry(price, fetched.astimezone(UTC))
        except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation) as exc:
            if not quiet:
                log.warning("price cache %s is corrupt, ignored: %s", path, one_line(str(exc), 160))
            return {}
        return entries

    def get(self, region: str, instance_type: str) -> _Entry | None:
        """The cached entry, fresh or not."""
        with self._lock:
            return self._load().get(f"{region}/{instance_type}")

    def put(self, region: str, found: Mapping[str, Decimal], fetched_at: datetime) -> None:
        """Record prices of ``region`` and write the file atomically (merged with what another
        process may have written meanwhile)."""
        with self._lock:
            entries = self._load()
            for name, price in found.items():
                entries[f"{region}/{name}"] = _Entry(price, fetched_at)
            merged = {**self._read(quiet=True), **entries}
            self._entries = merged
            self._write(merged)

    def _write(self, entries: Mapping[str, _Entry]) -> None:
        path = self.path
        document = {
            "version": CACHE_VERSION,
            "entries": {
                key: {"usd_per_hour": str(e.usd_per_hour), "fetched_at": e.fetched_at.isoformat()}
                for key, e in sorted(entries.items())
            },
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".prices-", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(document, handle, indent=1)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # Prices are then fetched again after a restart: a cost, not a failure.
            log.warning("price cache %s not written: %s", path, exc)


class Ec2Prices:
    """Hourly rates of EC2 instances, on-demand and spot, per region.

    ``pricing``: returns the Price List API client, or ``None`` when there is none to ask (a
    stand-in EC2 endpoint, the demo); then the bundled table is used, saying ``offline_note``.
    """

    def __init__(
        self,
        pricing: Callable[[], Any] | None,
        *,
        cache: OnDemandCache | None = None,
        clock: Callable[[], datetime] = now_utc,
        table: BundledTable | None = None,
        offline_note: str = "no AWS Price List API endpoint to ask",
        live_spot: bool = True,
        fetch_wait: float = FETCH_WAIT_SECONDS,
    ) -> None:
        """``live_spot``: look spot prices up in the spot price history (else counted at the
        on-demand price, as an upper bound); ``fetch_wait``: how long a poll waits for the
        Price List API before it shows the bundled price (the answer is kept for the next)."""
        self._fetch_wait = fetch_wait
        self._pricing = pricing
        self._cache = cache or OnDemandCache()
        self._clock = clock
        self._table = table
        self._offline_note = offline_note
        self._live_spot = live_spot
        self._lock = threading.Lock()
        self._misses: dict[str, _Miss] = {}
        self._in_flight: dict[str, threading.Event] = {}
        self._blocked: _Miss | None = None
        """A denial or outage that makes every call pointless until it expires."""
        self._spot: dict[tuple[str, str], tuple[Rate | None, datetime]] = {}
        self._spot_blocked: dict[str, _Miss] = {}

    @classmethod
    def bundled_only(cls, note: str, *, table: BundledTable | None = None) -> Ec2Prices:
        """Rates from the bundled table only, spot included (as an upper bound): never a call."""
        return cls(None, offline_note=note, live_spot=False, table=table)

    @property
    def table(self) -> BundledTable:
        """The bundled table in use."""
        return self._table or bundled_table()

    # On-demand

    def on_demand(self, region: str, types: Iterable[str]) -> PriceReport:
        """The on-demand rate of each of ``types`` in ``region``: from the cache while fresh,
        else the Price List API (types fetched concurrently), else the bundled table."""
        wanted = sorted({t for t in types if t})
        report = PriceReport()
        now = self._clock()
        fetch: list[str] = []
        waits: list[threading.Event] = []
        with self._lock:
            for name in wanted:
                key = f"{region}/{name}"
                if self._fresh(region, name, now) is not None:
                    continue
                if key in self._in_flight:
                    waits.append(self._in_flight[key])
                elif self._pricing is not None and not self._waiting(key, now):
                    self._in_flight[key] = threading.Event()
                    fetch.append(name)
        if fetch:
            done = threading.Event()

            def fetching() -> None:
                try:
                    self._fetch(region, fetch)
                finally:
                    with self._lock:
                        for name in fetch:
                            self._done(f"{region}/{name}")
                    done.set()

            # On a daemon thread: a slow or hung price list never holds the poll for longer
            # than ``fetch_wait``; what it answers later is in the cache for the next poll.
            submit(fetching, name="runctl-prices-fetch")
            waits.append(done)
        deadline = time.monotonic() + self._fetch_wait
        for event in waits:
            event.wait(max(deadline - time.monotonic(), 0))
        now = self._clock()
        for name in wanted:
            rate = self._on_demand_rate(region, name, now)
            if rate is None:
                report.unpriced.append(name)
                report.warnings.append(unpriced_warning(region, name))
            else:
                report.rates[name] = rate
        return report

    def _fresh(self, region: str, name: str, now: datetime) -> _Entry | None:
        if self._pricing is None:
            # Nothing is fetched, so nothing fetched by another process is shown either.
            return None
        entry = self._cache.get(region, name)
        if entry is None or now - entry.fetched_at >= ON_DEMAND_TTL or entry.fetched_at > now:
            return None
        return entry

    def _waiting(self, key: str, now: datetime) -> bool:
        """Whether a recent failure says not to ask about ``key`` yet."""
        if self._blocked is not None and self._blocked.retry_at > now:
            return True
        miss = self._misses.get(key)
        return miss is not None and miss.retry_at > now

    def _on_demand_rate(self, region: str, name: str, now: datetime) -> Rate | None:
        entry = self._fresh(region, name, now)
        if entry is not None:
            return Rate(
                usd_per_hour=entry.usd_per_hour,
                source=LIVE_SOURCE,
                as_of=entry.fetched_at,
                region=region,
            )
        with self._lock:
            miss = self._misses.get(f"{region}/{name}")
            blocked = self._blocked
            asking = f"{region}/{name}" in self._in_flight
        if self._pricing is None:
            note = self._offline_note
        elif asking:
            note = "the AWS Price List API has not answered yet"
        elif blocked is not None and blocked.retry_at > now:
            note = blocked.note
        elif miss is not None:
            note = miss.note
        else:
            note = "the AWS Price List API was not asked yet"
        return self.table.rate(region, name, note)

    def _fetch(self, region: str, names: Sequence[str]) -> None:
        try:
            client = self._pricing() if self._pricing is not None else None
        except Exception as exc:
            self._failed(region, names, why_failed(exc, "AWS Price List", "pricing:GetProducts"))
            return
        if client is None:
            self._failed(region, names, self._offline_note)
            return
        futures = map_all(
            lambda name: self._fetch_one(client, region, name), names, name="runctl-prices"
        )
        found: dict[str, Decimal] = {}
        for name, future in zip(names, futures, strict=True):
            try:
                price = future.result()
            except Exception as exc:
                note = why_failed(exc, "AWS Price List", "pricing:GetProducts")
                log.warning("prices: %s %s: %s", region, name, note)
                self._failed(region, [name], note, block=True)
                continue
            with self._lock:
                # The API answered: whatever blocked it has passed.
                self._blocked = None
            if price is None:
                self._failed(
                    region,
                    [name],
                    f"the AWS Price List has no on-demand Linux price for {name} in {region}",
                    retry=NOT_LISTED_RETRY,
                )
            else:
                found[name] = price
        if found:
            self._cache.put(region, found, self._clock())
            with self._lock:
                for name in found:
                    self._misses.pop(f"{region}/{name}", None)
                    self._done(f"{region}/{name}")

    def _fetch_one(self, client: Any, region: str, name: str) -> Decimal | None:
        documents: list[str] = []
        token: str | None = None
        for _ in range(10):
            kwargs: dict[str, Any] = {
                "ServiceCode": "AmazonEC2",
                "Filters": product_filters(region, name),
                "FormatVersion": "aws_v1",
                "MaxResults": 100,
            }
            if token:
                kwargs["NextToken"] = token
            answer = client.get_products(**kwargs)
            documents.extend(str(d) for d in answer.get("PriceList", []))
            token = answer.get("NextToken")
            if not token:
                break
        return on_demand_price(documents)

    def _failed(
        self,
        region: str,
        names: Iterable[str],
        note: str,
        *,
        retry: timedelta = FAILURE_RETRY,
        block: bool = False,
    ) -> None:
        retry_at = self._clock() + retry
        with self._lock:
            if block:
                self._blocked = _Miss(note, retry_at)
            for name in names:
                key = f"{region}/{name}"
                self._misses[key] = _Miss(note, retry_at)
                self._done(key)

    def _done(self, key: str) -> None:
        event = self._in_flight.pop(key, None)
        if event is not None:
            event.set()

    # Spot

    def spot(
        self,
        ec2: Any,
        region: str,
        pairs: Iterable[tuple[str, str | None]],
        on_demand: Mapping[str, Rate],
    ) -> PriceReport:
        """The rate of spot instances of ``(type, zone)`` pairs, keyed ``type@zone``: the zone's
        current spot price (one ``describe_spot_price_history`` call for the region, kept
        :data:`SPOT_TTL`), else the on-demand rate as an upper bound, saying why."""
        report = PriceReport()
        wanted = sorted({(t, z) for t, z in pairs if t}, key=lambda p: (p[0], p[1] or ""))
        if not wanted:
            return report
        now = self._clock()
        notes: dict[tuple[str, str | None], str] = {}
        if not self._live_spot:
            notes = dict.fromkeys(wanted, "")
        else:
            missing = [
                (t, z) for t, z in wanted if z is not None and not self._spot_known(z, t, now)
            ]
            with self._lock:
                blocked = self._spot_blocked.get(region)
            if missing and (blocked is None or blocked.retry_at <= now):
                self._look_up_spot(ec2, region, missing)
            with self._lock:
                blocked = self._spot_blocked.get(region)
            if blocked is not None:
                report.warnings.append(
                    f"{blocked.note}; spot instances counted at on-demand prices"
                )
            for instance_type, zone in wanted:
                if zone is None:
                    notes[instance_type, zone] = "zone unknown, so no spot price"
                    continue
                cached = self._spot.get((zone, instance_type))
                if cached is not None and cached[0] is not None:
                    report.rates[spot_key(instance_type, zone)] = cached[0]
                elif blocked is not None and cached is None:
                    notes[instance_type, zone] = blocked.note
                else:
                    notes[instance_type, zone] = f"no spot price for {instance_type} in {zone}"
        for (instance_type, zone), note in notes.items():
            base = on_demand.get(instance_type)
            if base is None:
                continue
            if not note:
                text = "; ".join(filter(None, [base.note, "spot counted at its on-demand price"]))
            else:
                text = f"{note}; counted at its on-demand price" + (
                    f" ({base.note})" if base.note else ""
                )
            report.rates[spot_key(instance_type, zone)] = base.model_copy(
                update={"upper_bound": True, "note": text}
            )
        return report

    def _spot_known(self, zone: str, instance_type: str, now: datetime) -> bool:
        with self._lock:
            cached = self._spot.get((zone, instance_type))
        return cached is not None and now - cached[1] < SPOT_TTL

    def _look_up_spot(self, ec2: Any, region: str, pairs: Sequence[tuple[str, str | None]]) -> None:
        types = sorted({t for t, _ in pairs})
        zones = sorted({z for _, z in pairs if z is not None})
        now = self._clock()
        try:
            pages = ec2.get_paginator("describe_spot_price_history").paginate(
                InstanceTypes=types,
                ProductDescriptions=["Linux/UNIX"],
                StartTime=now,
                Filters=[{"Name": "availability-zone", "Values": zones}],
            )
            records = [r for page in pages for r in page.get("SpotPriceHistory", [])]
        except Exception as exc:
            note = why_failed(exc, "spot price history", "ec2:DescribeSpotPriceHistory")
            log.warning("prices: %s: %s", region, note)
            with self._lock:
                self._spot_blocked[region] = _Miss(note, now + FAILURE_RETRY)
            return
        latest: dict[tuple[str, str], tuple[Decimal, datetime]] = {}
        for record in records:
            try:
                key = (str(record["AvailabilityZone"]), str(record["InstanceType"]))
                price = Decimal(str(record["SpotPrice"]))
                stamp = record.get("Timestamp")
            except (KeyError, InvalidOperation):
                continue
            if not isinstance(stamp, datetime) or not price.is_finite() or price < 0:
                continue
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
            if key not in latest or stamp > latest[key][1]:
                latest[key] = (price, stamp)
        with self._lock:
            self._spot_blocked.pop(region, None)
            for instance_type, zone in pairs:
                if zone is None:
                    continue
                found = latest.get((zone, instance_type))
                rate = (
                    None
                    if found is None
                    else Rate(
                        usd_per_hour=found[0], source=SPOT_SOURCE, as_of=found[1], region=zone
                    )
                )
                self._spot[zone, instance_type] = (rate, now)


def spot_key(instance_type: str, zone: str | None) -> str:
    """How a spot rate is keyed in :attr:`PriceReport.rates`."""
    return f"{instance_type}@{zone or '?'}"
