"""Parse and validate ticket batch files (CSV or JSONL). Plain logic, no Dagster.

Every data row of a file ends either in ``tickets`` (valid, normalised) or in
``quarantined`` with the file, the row number, the field(s) at fault and a reason.
``rows_in == len(tickets) + len(quarantined)`` always holds.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from resources.providers.base import content_hash
from .tickets import (
    BODY_MAX_CHARS,
    BODY_MIN_CHARS,
    CATEGORIES,
    CHANNELS,
    PRIORITIES,
    REQUIRED_FIELDS,
    SUBJECT_MAX_CHARS,
    TICKET_FIELDS,
)

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".ndjson")

TICKET_COLUMNS = list(TICKET_FIELDS) + ["source_file", "source_row", "input_hash"]
QUARANTINE_COLUMNS = ["source_file", "source_row", "ticket_id", "field", "reason", "raw_record"]


@dataclass
class ParseResult:
    source_file: str
    tickets: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int
    file_errors: list[str] = field(default_factory=list)

    @property
    def rows_ok(self) -> int:
        return len(self.tickets)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantined)


@dataclass
class _Problem:
    field: str
    reason: str


class TicketFileError(ValueError):
    """The file as a whole cannot be read (unsupported type, unreadable)."""


def parse_ticket_file(path: str | Path) -> ParseResult:
    """Read one batch file and split its rows into valid tickets and quarantined rows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise TicketFileError(f"{path.name}: unsupported file type {suffix!r}; expected one of {SUPPORTED_SUFFIXES}")
    raw = path.read_bytes()
    return parse_ticket_bytes(raw, path.name)


def parse_ticket_bytes(raw: bytes, source_file: str) -> ParseResult:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", errors="surrogateescape")
    if source_file.lower().endswith(".csv"):
        records, file_errors = _csv_records(text, source_file)
    else:
        records, file_errors = _jsonl_records(text, source_file)

    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    for row_no, record, problems in records:
        if not problems:
            normalised, problems = _validate(record)
        if not problems:
            tid = normalised["ticket_id"]
            if tid in first_seen:
                problems = [_Problem("ticket_id", f"duplicate ticket_id {tid!r} (first seen at row {first_seen[tid]})")]
            else:
                first_seen[tid] = row_no
        if problems:
            bad.append(_quarantine_row(source_file, row_no, record, problems))
        else:
            normalised["source_file"] = source_file
            normalised["source_row"] = row_no
            normalised["input_hash"] = content_hash(normalised["ticket_id"], normalised["subject"], normalised["body"])
            good.append(normalised)

    tickets = pd.DataFrame(good, columns=TICKET_COLUMNS)
    if not tickets.empty:
        tickets["created_at"] = pd.to_datetime(tickets["created_at"], utc=True)
        tickets["source_row"] = tickets["source_row"].astype("int64")
    else:
        tickets["created_at"] = pd.to_datetime(tickets["created_at"], utc=True)
    quarantined = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS)
    quarantined["source_row"] = quarantined["source_row"].astype("int64")
    return ParseResult(
        source_file=source_file,
        tickets=tickets,
        quarantined=quarantined,
        rows_in=len(records),
        file_errors=file_errors,
    )


def _csv_records(text: str, source_file: str) -> tuple[list[tuple[int, Any, list[_Problem]]], list[str]]:
    if not text.strip():
        return [], [f"{source_file}: file is empty"]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:  # pragma: no cover - malformed header
        return [], [f"{source_file}: unreadable CSV header: {exc}"]
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    records: list[tuple[int, Any, list[_Problem]]] = []
    row_no = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row_no += 1
            records.append((row_no, None, [_Problem("<row>", f"unreadable CSV row: {exc}")]))
            continue
        if not values or all(not v.strip() for v in values):
            continue  # blank line: not a data row
        row_no += 1
        if len(values) != len(header):
            rec = dict(zip(header, values))
            records.append(
                (row_no, rec, [_Problem("<row>", f"expected {len(header)} fields, found {len(values)}")])
            )
            continue
        rec = dict(zip(header, values))
        problems = [_Problem(f, "column missing from the file's header") for f in missing]
        records.append((row_no, rec, problems))
    errors = [f"{source_file}: header lacks required column(s) {missing}"] if missing else []
    return records, errors


def _jsonl_records(text: str, source_file: str) -> tuple[list[tuple[int, Any, list[_Problem]]], list[str]]:
    if not text.strip():
        return [], [f"{source_file}: file is empty"]
    records: list[tuple[int, Any, list[_Problem]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append((line_no, line, [_Problem("<line>", f"invalid JSON: {exc.msg} at column {exc.colno}")]))
            continue
        if not isinstance(obj, dict):
            records.append((line_no, obj, [_Problem("<line>", f"expected a JSON object, got {type(obj).__name__}")]))
            continue
        records.append((line_no, {str(k).strip().lower(): v for k, v in obj.items()}, []))
    return records, []


def _has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _validate(record: dict[str, Any]) -> tuple[dict[str, Any], list[_Problem]]:
    problems: list[_Problem] = []
    out: dict[str, Any] = {}
    for name in TICKET_FIELDS:
        value = record.get(name)
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, str):
            if isinstance(value, (dict, list)):
                problems.append(_Problem(name, f"expected text, got {type(value).__name__}"))
                continue
            value = str(value)
        if _has_bad_bytes(value):
            problems.append(_Problem(name, "invalid UTF-8 byte sequence"))
            continue
        value = value.strip()
        out[name] = value or None

    for name in REQUIRED_FIELDS:
        if name in out and out[name] is None and not any(p.field == name for p in problems):
            problems.append(_Problem(name, "required field is missing or empty"))

    created = out.get("created_at")
    if created:
        ts = pd.to_datetime(created, utc=True, errors="coerce", format="ISO8601")
        if pd.isna(ts):
            ts = pd.to_datetime(created, utc=True, errors="coerce", format="mixed")
        if pd.isna(ts):
            problems.append(_Problem("created_at", f"unparseable timestamp {created!r}"))
        else:
            out["created_at"] = ts

    for name, allowed in (("channel", CHANNELS), ("priority", PRIORITIES), ("category", CATEGORIES)):
        value = out.get(name)
        if value:
            value = value.lower()
            if value not in allowed:
                problems.append(_Problem(name, f"{value!r} is not one of {', '.join(allowed)}"))
            out[name] = value

    body = out.get("body")
    if body is not None:
        if len(body) < BODY_MIN_CHARS:
            problems.append(_Problem("body", f"body has {len(body)} characters; at least {BODY_MIN_CHARS} required"))
        elif len(body) > BODY_MAX_CHARS:
            problems.append(_Problem("body", f"body has {len(body)} characters; at most {BODY_MAX_CHARS} allowed"))
    subject = out.get("subject")
    if subject is not None and len(subject) > SUBJECT_MAX_CHARS:
        problems.append(_Problem("subject", f"subject has {len(subject)} characters; at most {SUBJECT_MAX_CHARS}"))
    return out, problems


def _quarantine_row(source_file: str, row_no: int, record: Any, problems: list[_Problem]) -> dict[str, Any]:
    ticket_id = None
    if isinstance(record, dict):
        tid = record.get("ticket_id")
        if isinstance(tid, str) and tid.strip() and not _has_bad_bytes(tid):
            ticket_id = tid.strip()
    raw = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False, default=str)
    raw = raw.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    if len(raw) > 2000:
        raw = raw[:2000] + "…"
    return {
        "source_file": source_file,
        "source_row": row_no,
        "ticket_id": ticket_id,
        "field": ",".join(dict.fromkeys(p.field for p in problems)),
        "reason": "; ".join(f"{p.field}: {p.reason}" for p in problems),
        "raw_record": raw,
    }


def quarantine_ids_seen_elsewhere(
    result: ParseResult, seen: dict[str, str]
) -> ParseResult:
    """Move tickets whose id was already ingested from another batch (``seen``: id -> partition) to quarantine."""
    if result.tickets.empty or not seen:
        return result
    dup_mask = result.tickets["ticket_id"].isin(seen.keys())
    if not dup_mask.any():
        return result
    dups = result.tickets[dup_mask]
    extra = pd.DataFrame(
        [
            {
                "source_file": result.source_file,
                "source_row": int(r.source_row),
                "ticket_id": r.ticket_id,
                "field": "ticket_id",
                "reason": f"ticket_id: {r.ticket_id!r} was already ingested from batch {seen[r.ticket_id]!r}",
                "raw_record": json.dumps({k: str(getattr(r, k)) for k in TICKET_FIELDS}, ensure_ascii=False),
            }
            for r in dups.itertuples(index=False)
        ],
        columns=QUARANTINE_COLUMNS,
    )
    return ParseResult(
        source_file=result.source_file,
        tickets=result.tickets[~dup_mask].reset_index(drop=True),
        quarantined=pd.concat([result.quarantined, extra], ignore_index=True).sort_values("source_row", kind="stable").reset_index(drop=True),
        rows_in=result.rows_in,
        file_errors=result.file_errors,
    )
