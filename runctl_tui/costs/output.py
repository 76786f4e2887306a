"""``runctl-tui costs`` output: the cost report as text, JSON (a stable schema) or CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from runctl_tui.costs.rates import money
from runctl_tui.costs.report import CostLine, CostReport, Totals
from runctl_tui.models import format_duration, format_usd
from runctl_tui.text import cell_width, clean, clip

COSTS_SCHEMA = "runctl-tui/costs/v1"

CENT = Decimal("0.01")


def cents(amount: Decimal | None) -> str:
    """``12.35``: rounded to the cent, for display only; ``-`` when unknown."""
    if amount is None:
        return "-"
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


def rate_text(line: CostLine) -> str:
    """``$32.77/h``, ``≤$21.96/h``; ``?`` when unknown."""
    if line.rate is None:
        return "?"
    return line.rate.marker + format_usd(line.rate.usd_per_hour, per_hour=True)


def hours_text(hours: Decimal) -> str:
    """``12.3``: hours, one decimal."""
    return str(hours.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def gaps_summary(report: CostReport) -> str | None:
    """``not counted: 2 gaps, 4h12m in all, while runctl-tui was closed``; ``None`` if none."""
    if not report.gaps:
        return None
    seconds = sum((g.end - g.start).total_seconds() for g in report.gaps)
    count = len(report.gaps)
    length = format_duration(timedelta(seconds=seconds))
    return (
        f"not counted: {count} gap{'s' * (count != 1)}, {length} in all, when resources may "
        "have billed while runctl-tui was closed"
    )


def _totals_row(totals: Totals) -> list[str]:
    name = "TOTAL" if totals.provider == "total" else clean(totals.provider)
    unpriced = f" (+{totals.unpriced} unpriced)" if totals.unpriced else ""
    return [
        name,
        totals.marker + format_usd(totals.burn_usd_per_hour, per_hour=True) + unpriced,
        format_usd(totals.today_usd),
        format_usd(totals.month_usd),
        format_usd(totals.projected_today_usd),
        format_usd(totals.projected_month_usd),
    ]


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [
        max([cell_width(h), *(cell_width(r[n]) for r in rows)]) for n, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        parts = []
        for n, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            pad = " " * (width - cell_width(cell))
            parts.append(pad + cell if n in right else cell + pad)
        return "  ".join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def text_costs(report: CostReport, *, period: str = "this month") -> str:
    """The report for people: one line per resource, then totals, budgets and what is missing."""
    headers = ["PROVIDER", "ID", "NAME", "KIND", "WHERE", "STATE", "RATE", "SOURCE", "HOURS"]
    headers += ["TODAY", period.upper(), "FLAG"]
    rows = []
    for line in report.lines:
        source = clip(clean(line.rate.describe()), 48) if line.rate else "-"
        flags = "; ".join(clean(f.text) for f in line.flags)
        rows.append(
            [
                clean(line.provider),
                clip(clean(line.id), 24),
                clip(clean(line.name), 28) or "-",
                clean(line.kind),
                clip(clean(line.location), 16),
                clip(clean(line.state), 20),
                rate_text(line),
                source,
                hours_text(line.month_hours),
                format_usd(line.today_usd),
                format_usd(line.month_usd),
                clip(flags, 60),
            ]
        )
    out = _table(headers, rows, {6, 8, 9, 10}) if rows else ["No resources and no recorded spend."]
    out.append("")
    totals_headers = [
        "PROVIDER",
        "BURN NOW",
        "TODAY",
        period.upper(),
        "BY MIDNIGHT",
        "BY MONTH END",
    ]
    totals = [_totals_row(t) for t in report.providers] + [_totals_row(report.total)]
    out.extend(_table(totals_headers, totals, {1, 2, 3, 4, 5}))
    for budget in report.budgets:
        out.append(f"budget: {budget.describe()} [{budget.level}]")
    if (gaps := gaps_summary(report)) is not None:
        out.append(gaps)
    if report.ledger_error:
        out.append(f"ledger: {clean(report.ledger_error)}: figures cover this poll only")
    else:
        out.append(f"ledger: {clean(report.ledger_path)}")
    return "\n".join(out)


def _line_json(line: CostLine) -> dict[str, Any]:
    rate = line.rate
    return {
        "key": line.key,
        "provider": line.provider,
        "id": line.id,
        "name": line.name,
        "kind": line.kind,
        "location": line.location,
        "state": line.state,
        "billing": line.billing,
        "usd_per_hour": money(rate.usd_per_hour) if rate else None,
        "rate_source": rate.source if rate else None,
        "rate_as_of": rate.as_of.isoformat() if rate and rate.as_of else None,
        "rate_region": rate.region if rate else None,
        "rate_estimate": rate.estimate if rate else None,
        "rate_upper_bound": rate.upper_bound if rate else None,
        "rate_note": rate.note or None if rate else None,
        "burn_usd_per_hour": money(line.burn_usd_per_hour)
        if line.burn_usd_per_hour is not None
        else None,
        "since_launch_usd": money(line.since_launch_usd)
        if line.since_launch_usd is not None
        else None,
        "today_usd": money(line.today_usd),
        "period_usd": money(line.month_usd),
        "period_hours": str(line.month_hours),
        "monthly_usd": money(line.monthly_usd) if line.monthly_usd is not None else None,
        "flags": [{"kind": f.kind, "text": f.text} for f in line.flags],
        "gpu_note": line.gpu_note,
    }


def _totals_json(totals: Totals) -> dict[str, Any]:
    return {
        "provider": totals.provider,
        "burn_usd_per_hour": money(totals.burn_usd_per_hour),
        "today_usd": money(totals.today_usd),
        "period_usd": money(totals.month_usd),
        "projected_today_usd": money(totals.projected_today_usd),
        "projected_month_usd": money(totals.projected_month_usd),
        "unpriced": totals.unpriced,
        "upper_bound": totals.marker == "≤",
        "estimate": totals.marker == "~",
    }


def json_costs(report: CostReport) -> dict[str, Any]:
    """The report in the stable ``runctl-tui/costs/v1`` schema: money as decimal strings."""
    return {
        "schema": COSTS_SCHEMA,
        "generated_at": report.generated_at.isoformat(),
        "day_start": report.day_start.isoformat(),
        "period_start": report.month_start.isoformat(),
        "resources": [_line_json(line) for line in report.lines],
        "providers": [_totals_json(t) for t in report.providers],
        "totals": _totals_json(report.total),
        "budgets": [
            {
                "period": str(b.period),
                "limit_usd": money(b.limit),
                "spent_usd": money(b.spent),
                "projected_usd": money(b.projected),
                "level": str(b.level),
            }
            for b in report.budgets
        ],
        "gaps": [
            {
                "key": g.key,
                "name": g.name,
                "start": g.start.isoformat(),
                "end": g.end.isoformat(),
                "reason": g.reason,
            }
            for g in report.gaps
        ],
        "ledger": {"path": report.ledger_path, "error": report.ledger_error},
    }


CSV_COLUMNS = (
    "provider",
    "id",
    "name",
    "kind",
    "location",
    "state",
    "usd_per_hour",
    "rate_source",
    "rate_as_of",
    "hours",
    "today_usd",
    "period_usd",
    "flags",
)


def safe_cell(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ``=``, ``+``, ``-``, ``@`` (a formula
    when opened) gets a quote in front; control characters are escaped."""
    text = clean(text)
    return "'" + text if text[:1] in {"=", "+", "-", "@"} else text


def csv_costs(report: CostReport) -> str:
    """One CSV row per resource (money unrounded, as decimal strings), then a TOTAL row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in report.lines:
        rate = line.rate
        writer.writerow(
            [
                safe_cell(line.provider),
                safe_cell(line.id),
                safe_cell(line.name),
                safe_cell(line.kind),
                safe_cell(line.location),
                safe_cell(line.state),
                money(rate.usd_per_hour) if rate else "",
                safe_cell(rate.describe()) if rate else "",
                rate.as_of.isoformat() if rate and rate.as_of else "",
                str(line.month_hours),
                money(line.today_usd),
                money(line.month_usd),
                safe_cell("; ".join(f.text for f in line.flags)),
            ]
        )
    total = report.total
    writer.writerow(
        [
            "TOTAL",
            "",
            "",
            "",
            "",
            "",
            money(total.burn_usd_per_hour),
            "",
            "",
            "",
            money(total.today_usd),
            money(total.month_usd),
            "",
        ]
    )
    return buffer.getvalue().rstrip("\n")
