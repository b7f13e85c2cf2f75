"""Read one timestamp value the way the record spec declares: one reading for every row, never a guess.

ISO 8601 first; then numeric day/month dates (``03/04/2026``) in the declared ``date_order``
(a value that reads both ways without one is refused, so row 7 and row 8 of a file are never
read differently); then the textual forms pandas knows (``Mon, 23 Nov 2026 14:05:00 +0000``).
A time without an offset is in the declared timezone; the year must be in the declared range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ..spec_inputs import TimestampSpec

# day and month in either order, then the year, anywhere in the value ("Tue 03/04/2026 10:00")
_NUMERIC_DATE = re.compile(r"(?<![\d.:/-])(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?![\d.:/-])")


@dataclass(frozen=True)
class ReadTimestamp:
    value: pd.Timestamp | None = None  # in UTC
    problem: str | None = None
    naive: bool = False  # written without an offset: read in the declared timezone


def read_timestamp(text: str, rules: TimestampSpec) -> ReadTimestamp:
    ts = _parse(text, "ISO8601")
    if ts is None:
        rewritten = _numeric_date_as_iso(text, rules)
        if isinstance(rewritten, ReadTimestamp):
            return rewritten
        ts = _parse(rewritten or text, "ISO8601", "mixed")
    if ts is None:
        return ReadTimestamp(problem=f"unparseable timestamp {text!r}")
    naive = ts.tzinfo is None
    if naive:
        try:
            ts = ts.tz_localize(rules.timezone, ambiguous="raise", nonexistent="raise")
        except (ValueError, OverflowError) as exc:
            kind = "does not exist" if "nonexistent" in str(exc) else "is ambiguous"
            return ReadTimestamp(problem=f"{text!r} {kind} in {rules.timezone} (a daylight-saving change); "
                                         "write it with a UTC offset")
    ts = ts.tz_convert("UTC")
    if not rules.min_year <= ts.year <= rules.max_year:
        return ReadTimestamp(problem=f"{text!r}: year {ts.year} is outside the accepted range "
                                     f"{rules.min_year}-{rules.max_year} (record.timestamps)")
    return ReadTimestamp(ts, naive=naive)


def _parse(text: str, *formats: str) -> pd.Timestamp | None:
    for fmt in formats:
        try:
            ts = pd.to_datetime(text, errors="coerce", format=fmt)
        except (ValueError, OverflowError, TypeError):
            continue
        if not pd.isna(ts):
            return ts
    return None


def _numeric_date_as_iso(text: str, rules: TimestampSpec) -> str | ReadTimestamp | None:
    """``text`` with its day/month date rewritten year first; a problem; or None (not such a date)."""
    m = _NUMERIC_DATE.search(text)
    if m is None:
        return None
    first, second, year = int(m.group(1)), int(m.group(3)), m.group(4)
    if len(year) == 2:
        if m.group(2) != "/":
            return None  # 10.30.45 is a time
        return ReadTimestamp(problem=f"{text!r} has a two-digit year; write the year in full")
    order = rules.date_order
    if order is None:
        if first <= 12 and second <= 12 and first != second:
            return ReadTimestamp(problem=f"ambiguous date {text!r}: day and month could be either way round; "
                                         "declare record.timestamps.date_order (day_first or month_first)")
        if first > 12 and second > 12:
            return ReadTimestamp(problem=f"unparseable timestamp {text!r}")
        order = "month_first" if second > 12 else "day_first"  # the only reading that is a date
    elif not 1 <= (second if order == "day_first" else first) <= 12:
        return ReadTimestamp(problem=f"{text!r} is not a date in the declared order "
                                     f"(record.timestamps.date_order: {order})")
    day, month = (first, second) if order == "day_first" else (second, first)
    return f"{text[:m.start()]}{year}-{month:02d}-{day:02d}{text[m.end():]}"
