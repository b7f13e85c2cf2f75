"""Parse and validate a batch of records (CSV or JSONL) against a family's record spec. No Dagster.

Every data row of a file ends either in ``records`` (valid, normalised, named by the spec's
fields) or in ``quarantined`` with the file, the row number, the field(s) at fault and a reason,
so ``rows_in == len(records) + len(quarantined)`` always holds. Source columns are matched to
fields by the spec's ``columns`` mapping (source name -> field), then by field name, ignoring case
and surrounding spaces: a helpdesk export never uses our names.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from resources.providers.base import content_hash

from ..spec_inputs import FieldSpec, RecordSpec

SUFFIXES = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}
QUARANTINE_COLUMNS = ["source_file", "source_row", "record_id", "field", "reason", "raw_record"]
EXTRA_COLUMNS = ["record_id", "source_file", "source_row", "input_hash"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}
MAX_RAW_CHARS = 2000


@dataclass
class ParseResult:
    source_file: str
    records: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int
    file_errors: list[str] = field(default_factory=list)

    @property
    def rows_ok(self) -> int:
        return len(self.records)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantined)


@dataclass
class _Problem:
    field: str
    reason: str


class BatchFileError(ValueError):
    """The file as a whole cannot be read (unsupported type, unreadable)."""


def suffixes(formats: Iterable[str]) -> tuple[str, ...]:
    return tuple(s for f in formats for s in SUFFIXES[f])


def parse_file(path: str | Path, spec: RecordSpec, formats: Iterable[str] = ("csv", "jsonl")) -> ParseResult:
    """Read one batch file and split its rows into valid records and quarantined rows."""
    path = Path(path)
    allowed = suffixes(formats)
    if path.suffix.lower() not in allowed:
        raise BatchFileError(f"{path.name}: unsupported file type {path.suffix!r}; expected one of {allowed}")
    return parse_bytes(path.read_bytes(), path.name, spec)


def parse_bytes(raw: bytes, source_file: str, spec: RecordSpec) -> ParseResult:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", errors="surrogateescape")
    resolve = _column_resolver(spec)
    if source_file.lower().endswith(".csv"):
        rows, file_errors = _csv_rows(text, source_file, spec, resolve)
    else:
        rows, file_errors = _jsonl_rows(text, source_file, resolve)

    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    for row_no, record, problems in rows:
        if not problems:
            normalised, problems = validate(record, spec)
        if not problems:
            rid = normalised[spec.id]
            if rid in first_seen:
                problems = [_Problem(spec.id, f"duplicate {spec.id} {rid!r} (first seen at row {first_seen[rid]})")]
            else:
                first_seen[rid] = row_no
        if problems:
            bad.append(_quarantine_row(source_file, row_no, record, problems, spec.id))
        else:
            normalised.update(
                record_id=normalised[spec.id], source_file=source_file, source_row=row_no,
                input_hash=content_hash(normalised[spec.id], *(normalised.get(f) or "" for f in spec.text)),
            )
            good.append(normalised)
    return ParseResult(source_file, records_frame(good, spec), quarantine_frame(bad), len(rows), file_errors)


def records_frame(rows: list[dict[str, Any]], spec: RecordSpec) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[*spec.fields, *EXTRA_COLUMNS])
    for name, f in spec.fields.items():
        if f.type == "timestamp":
            df[name] = pd.to_datetime(df[name], utc=True)
    df["source_row"] = df["source_row"].astype("int64")
    return df


def quarantine_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)
    df["source_row"] = df["source_row"].astype("int64")
    return df


def _column_resolver(spec: RecordSpec):
    """source column name -> field name (or None for a column the spec does not use)."""
    by_name = {k.strip().lower(): v for k, v in spec.columns.items()}
    mapped_targets = set(spec.columns.values())
    fields = {f.lower(): f for f in spec.fields}

    def resolve(column: str) -> str | None:
        key = str(column).strip().lower()
        if key in by_name:
            return by_name[key]
        target = fields.get(key)
        # a field reached through the mapping is not also read from a same-named column
        return target if target is not None and target not in mapped_targets else None

    return resolve


def _csv_rows(text: str, source_file: str, spec: RecordSpec, resolve) -> tuple[list[tuple[int, Any, list[_Problem]]], list[str]]:
    if not text.strip():
        return [], [f"{source_file}: file is empty"]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        return [], [f"{source_file}: unreadable CSV header: {exc}"]
    names = [resolve(h) for h in header]
    missing = [f for f, fs in spec.fields.items() if fs.required and f not in names]
    rows: list[tuple[int, Any, list[_Problem]]] = []
    row_no = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row_no += 1
            rows.append((row_no, None, [_Problem("<row>", f"unreadable CSV row: {exc}")]))
            continue
        if not values or all(not v.strip() for v in values):
            continue  # a blank line is not a data row
        row_no += 1
        record = {n: v for n, v in zip(names, values) if n is not None}
        if len(values) != len(header):
            rows.append((row_no, dict(zip(header, values)),
                         [_Problem("<row>", f"expected {len(header)} fields, found {len(values)}")]))
            continue
        rows.append((row_no, record, [_Problem(f, "column missing from the file's header") for f in missing]))
    errors = [f"{source_file}: header lacks required column(s) {missing}"] if missing else []
    return rows, errors


def _jsonl_rows(text: str, source_file: str, resolve) -> tuple[list[tuple[int, Any, list[_Problem]]], list[str]]:
    if not text.strip():
        return [], [f"{source_file}: file is empty"]
    rows: list[tuple[int, Any, list[_Problem]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((line_no, line, [_Problem("<line>", f"invalid JSON: {exc.msg} at column {exc.colno}")]))
            continue
        if not isinstance(obj, dict):
            rows.append((line_no, obj, [_Problem("<line>", f"expected a JSON object, got {type(obj).__name__}")]))
            continue
        record: dict[str, Any] = {}
        for key, value in obj.items():
            name = resolve(key)
            if name is not None:
                record[name] = value
        rows.append((line_no, record, []))
    return rows, []


def _has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def validate(record: dict[str, Any], spec: RecordSpec) -> tuple[dict[str, Any], list[_Problem]]:
    """The record's fields normalised and typed, and what is wrong with them."""
    problems: list[_Problem] = []
    out: dict[str, Any] = {}
    for name, f in spec.fields.items():
        value = record.get(name)
        if value is None or (isinstance(value, float) and pd.isna(value)):
            out[name] = None
        elif isinstance(value, (dict, list)):
            problems.append(_Problem(name, f"expected a value, got {type(value).__name__}"))
            continue
        else:
            text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
            if _has_bad_bytes(text):
                problems.append(_Problem(name, "invalid UTF-8 byte sequence"))
                continue
            text = text.strip()
            out[name] = text.lower() if f.normalize == "lower" else text.upper() if f.normalize == "upper" else text
            out[name] = out[name] or None
        if out[name] is None:
            if f.required:
                problems.append(_Problem(name, "required field is missing or empty"))
            continue
        problem = _check_value(name, f, out)
        if problem:
            problems.append(problem)
    return out, problems


def _check_value(name: str, f: FieldSpec, out: dict[str, Any]) -> _Problem | None:
    value = out[name]
    if f.type == "timestamp":
        ts = pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601")
        if pd.isna(ts):
            ts = pd.to_datetime(value, utc=True, errors="coerce", format="mixed")
        if pd.isna(ts):
            return _Problem(name, f"unparseable timestamp {value!r}")
        out[name] = ts
        return None
    if f.type in ("integer", "number"):
        try:
            num = float(value.replace(",", "")) if isinstance(value, str) else float(value)
        except ValueError:
            return _Problem(name, f"{value!r} is not a number")
        if f.type == "integer" and not num.is_integer():
            return _Problem(name, f"{value!r} is not a whole number")
        out[name] = int(num) if f.type == "integer" else num
        return None
    if f.type == "boolean":
        low = str(value).lower()
        if low not in _TRUE | _FALSE:
            return _Problem(name, f"{value!r} is not true or false")
        out[name] = low in _TRUE
        return None
    if f.type == "email" and not _EMAIL.match(value):
        return _Problem(name, f"{value!r} is not an e-mail address")
    if f.values is not None and value not in f.values:
        return _Problem(name, f"{value!r} is not one of {', '.join(f.values)}")
    if f.pattern is not None and not re.fullmatch(f.pattern, value):
        return _Problem(name, f"{value!r} does not match the pattern {f.pattern}")
    if f.min_length is not None and len(value) < f.min_length:
        return _Problem(name, f"{name} has {len(value)} characters; at least {f.min_length} required")
    if f.max_length is not None and len(value) > f.max_length:
        return _Problem(name, f"{name} has {len(value)} characters; at most {f.max_length} allowed")
    return None


def _quarantine_row(source_file: str, row_no: int, record: Any, problems: list[_Problem], id_field: str) -> dict[str, Any]:
    record_id = None
    if isinstance(record, dict):
        rid = record.get(id_field)
        if isinstance(rid, (str, int)) and str(rid).strip() and not _has_bad_bytes(str(rid)):
            record_id = str(rid).strip()
    raw = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False, default=str)
    raw = raw.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    if len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS] + "…"
    return {
        "source_file": source_file,
        "source_row": row_no,
        "record_id": record_id,
        "field": ",".join(dict.fromkeys(p.field for p in problems)),
        "reason": "; ".join(f"{p.field}: {p.reason}" for p in problems),
        "raw_record": raw,
    }


def quarantine_ids_seen_elsewhere(result: ParseResult, seen: dict[str, str], id_field: str) -> ParseResult:
    """Move records whose id was already ingested from another batch (``seen``: id -> batch) to quarantine.

    Such a record would otherwise be enriched, paid for and dispatched twice.
    """
    if result.records.empty or not seen:
        return result
    dup = result.records["record_id"].isin(seen.keys())
    if not dup.any():
        return result
    extra = quarantine_frame([
        {
            "source_file": result.source_file,
            "source_row": int(r["source_row"]),
            "record_id": r["record_id"],
            "field": id_field,
            "reason": f"{id_field}: {r['record_id']!r} was already ingested from batch {seen[r['record_id']]!r}",
            "raw_record": json.dumps({k: str(v) for k, v in r.items() if k not in EXTRA_COLUMNS}, ensure_ascii=False),
        }
        for r in result.records[dup].to_dict(orient="records")
    ])
    quarantined = pd.concat([result.quarantined, extra], ignore_index=True)
    return ParseResult(
        result.source_file,
        result.records[~dup].reset_index(drop=True),
        quarantined.sort_values("source_row", kind="stable").reset_index(drop=True),
        result.rows_in,
        result.file_errors,
    )
