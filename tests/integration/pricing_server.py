"""A stand-in of the AWS Price List API's GetProducts on 127.0.0.1 (moto has no Pricing API).

It speaks the JSON 1.1 protocol boto3 uses (``X-Amz-Target: AWSPriceListService.GetProducts``)
and answers with the real response shape: ``PriceList`` is a list of JSON strings, each a
product document with its ``product`` attributes and ``terms``. It can fail on demand.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest

TARGET = "AWSPriceListService.GetProducts"
Failure = Literal["500", "denied", "throttled", "hang"]

LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
}

DENIED = {
    "__type": "AccessDeniedException",
    "Message": "User: arn:aws:iam::123456789012:user/ml is not authorized to perform: "
    "pricing:GetProducts because no identity-based policy allows the pricing:GetProducts action",
}
THROTTLED = {"__type": "ThrottlingException", "Message": "Rate exceeded"}


def product_document(region: str, instance_type: str, usd: str) -> str:
    """One ``PriceList`` entry as the API sends it: a JSON string with OnDemand and Reserved
    terms (only the OnDemand hourly price is the one wanted)."""
    sku = f"SKU{abs(hash((region, instance_type))) % 10**12:012d}"
    on_demand_term = f"{sku}.JRTCKXETXF"
    reserved_term = f"{sku}.4NA7Y494T4"
    document: dict[str, Any] = {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "servicecode": "AmazonEC2",
                "servicename": "Amazon Elastic Compute Cloud",
                "location": LOCATIONS.get(region, region),
                "locationType": "AWS Region",
                "regionCode": region,
                "instanceType": instance_type,
                "instanceFamily": "GPU instance",
                "currentGeneration": "Yes",
                "vcpu": "4",
                "memory": "16 GiB",
                "storage": "1 x 250 NVMe SSD",
                "gpu": "1",
                "gpuMemory": "24 GB",
                "networkPerformance": "Up to 10 Gigabit",
                "processorArchitecture": "64-bit",
                "tenancy": "Shared",
                "operatingSystem": "Linux",
                "licenseModel": "No License required",
                "usagetype": f"BoxUsage:{instance_type}",
                "operation": "RunInstances",
                "capacitystatus": "Used",
                "preInstalledSw": "NA",
                "marketoption": "OnDemand",
                "availabilityzone": "NA",
                "normalizationSizeFactor": "8",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                on_demand_term: {
                    "priceDimensions": {
                        f"{on_demand_term}.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": (
                                f"${usd} per On Demand Linux {instance_type} Instance Hour"
                            ),
                            "appliesTo": [],
                            "rateCode": f"{on_demand_term}.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": usd},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            },
            "Reserved": {
                reserved_term: {
                    "priceDimensions": {
                        f"{reserved_term}.2TG2D8R56U": {
                            "unit": "Quantity",
                            "description": "Upfront Fee",
                            "appliesTo": [],
                            "rateCode": f"{reserved_term}.2TG2D8R56U",
                            "pricePerUnit": {"USD": "4511"},
                        },
                        f"{reserved_term}.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": "USD 0.0 per Linux/UNIX (Amazon VPC) Hour",
                            "appliesTo": [],
                            "rateCode": f"{reserved_term}.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": "0.0000000000"},
                        },
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "4NA7Y494T4",
                    "termAttributes": {
                        "LeaseContractLength": "1yr",
                        "OfferingClass": "standard",
                        "PurchaseOption": "All Upfront",
                    },
                }
            },
        },
        "version": "20261120150914",
        "publicationDate": "2026-11-20T15:09:14Z",
    }
    return json.dumps(document)


@dataclass
class PriceListServer:
    """GetProducts on a free port of 127.0.0.1. Set the attributes while it runs."""

    prices: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(region, instance type)`` to the hourly USD price as the API writes it."""
    fail: Failure | None = None
    """Answer every request with a server error, an AccessDenied, throttling, or not at all."""
    hang_seconds: float = 5.0
    calls: Counter[tuple[str, str]] = field(default_factory=Counter, init=False)
    """Requests per ``(region, instance type)``, failed ones included."""
    filters: list[dict[str, str]] = field(default_factory=list, init=False)
    """The filters of the last request, as sent."""
    url: str = field(default="", init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    def start(self) -> PriceListServer:
        """Listen; ``url`` says where."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.price_list = self  # type: ignore[attr-defined]
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="price-list", daemon=True).start()
        return self

    def stop(self) -> None:
        """Release hung requests and stop listening."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def total_calls(self) -> int:
        """Every GetProducts request so far."""
        with self._lock:
            return sum(self.calls.values())

    def answer(self, request: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Status and body for one request; ``None`` body: leave it unanswered."""
        filters = {f.get("Field"): f.get("Value") for f in request.get("Filters", [])}
        key = (str(filters.get("regionCode")), str(filters.get("instanceType")))
        with self._lock:
            self.calls[key] += 1
            self.filters = list(request.get("Filters", []))
        if self.fail == "hang":
            self._stopping.wait(self.hang_seconds)
            return 0, None
        if self.fail == "500":
            return 500, {"__type": "InternalServerException", "Message": "internal error"}
        if self.fail == "denied":
            return 400, DENIED
        if self.fail == "throttled":
            return 400, THROTTLED
        if request.get("ServiceCode") != "AmazonEC2":
            return 400, {"__type": "InvalidParameterException", "Message": "bad service code"}
        usd = self.prices.get(key)
        documents = [] if usd is None else [product_document(*key, usd)]
        return 200, {"FormatVersion": "aws_v1", "PriceList": documents}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        """Handle one JSON 1.1 call."""
        server: PriceListServer = self.server.price_list  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        answer: dict[str, Any] | None
        if self.headers.get("X-Amz-Target") != TARGET:
            status, answer = 400, {"__type": "UnknownOperationException", "Message": "unknown"}
        else:
            status, answer = server.answer(json.loads(body or b"{}"))
        if answer is None:
            self.close_connection = True
            return
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", "price-list-test")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serving_prices(monkeypatch: pytest.MonkeyPatch, cache_root: Path) -> Iterator[PriceListServer]:
    """A running :class:`PriceListServer` that boto3's ``pricing`` clients reach through
    ``AWS_ENDPOINT_URL_PRICING``, with the price cache under ``cache_root``."""
    server = PriceListServer().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", server.url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_root))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def price_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PriceListServer]:
    """A Price List API stand-in on 127.0.0.1 (``AWS_ENDPOINT_URL_PRICING`` points at it), and
    an empty price cache (under ``XDG_CACHE_HOME``). Import it into a test module to use it."""
    with serving_prices(monkeypatch, tmp_path / "cache") as server:
        yield server
