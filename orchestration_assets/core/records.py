"""Parse and validate a batch of records (CSV or JSONL) against a family's record spec. No Dagster.

Every data row of a file ends either in ``records`` (valid, normalised, named by the spec's
fields) or in ``quarantined`` with the file, the row number, the field(s) at fault and a reason,
so ``rows_in == len(records) + len(quarantined)`` always holds. Source columns are matched to
fields by the spec's ``columns`` mapping (source name -> field), then by field name, ignoring case
and surrounding spaces: a helpdesk export never uses our names. How a file's bytes become rows
(encoding, format, header) is :mod:`.record_files`; how a timestamp is read, :mod:`.timestamps`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from resources.providers.base import content_hash

from ..spec_inputs import MAX_ID_LENGTH, FieldSpec, RecordSpec
from .record_files import BatchFileError, Problem, csv_rows, decode, jsonl_rows
from .iso_timestamps import read_record_timestamp

SUFFIXES = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}
QUARANTINE_COLUMNS = ["source_file", "source_row", "record_id", "field", "reason", "raw_record"]
EXTRA_COLUMNS = ["record_id", "source_file", "source_row", "input_hash"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}
MAX_RAW_CHARS = 2000
# control characters but tab, newline, carriage return and NEL (a line break, like U+2028): PostgreSQL
# refuses NUL in text, and the others are binary debris, never meant in an id or a message
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x84\x86-\x9f]")
_SURROGATE = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8, kept by decode()
_DEBRIS = re.compile(f"{_SURROGATE.pattern}|{_CONTROL.pattern}")
_json_string = json.encoder.encode_basestring  # json.dumps' own string encoder (C), ensure_ascii=False


@dataclass
class ParseResult:
    source_file: str
    records: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int
    file_errors: list[str] = field(default_factory=list)
    naive_timestamps: int = 0  # valid records' timestamps written without an offset, read in record.timestamps.timezone

    @property
    def rows_ok(self) -> int:
        return len(self.records)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantined)


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
    """Raises BatchFileError when the bytes are not text of the file's format at all."""
    text = decode(raw, source_file)
    resolve = _column_resolver(spec)
    if source_file.lower().endswith(".csv"):
        rows, file_errors = csv_rows(text, source_file, spec, resolve)
    else:
        rows, file_errors = jsonl_rows(text, source_file, resolve)

    rules = _rules(spec)
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    naive_total = 0
    checked = iter(_validate_rows([record for _, record, problems in rows if not problems], rules))
    for row_no, record, problems in rows:
        naive = 0
        if not problems:
            normalised, problems, naive = next(checked)
        if not problems:
            rid = normalised[spec.id]
            if rid in first_seen:
                problems = [Problem(spec.id, f"duplicate {spec.id} {rid!r} (first seen at row {first_seen[rid]})")]
            else:
                first_seen[rid] = row_no
        if problems:
            bad.append(_quarantine_row(source_file, row_no, record, problems, spec.id))
        else:
            normalised.update(record_id=normalised[spec.id], source_file=source_file, source_row=row_no)
            good.append(normalised)
            naive_total += naive
    hashes = input_hashes([[r[spec.id], *(r.get(f) or "" for f in spec.text)] for r in good])
    for r, h in zip(good, hashes):
        r["input_hash"] = h
    return ParseResult(source_file, records_frame(good, spec), quarantine_frame(bad), len(rows), file_errors,
                       naive_total)


def input_hashes(parts: list[list[Any]]) -> list[str]:
    """``content_hash(*p)`` for each ``p``: the key the router cache and the audit log use for a record.

    Text parts are laid out as ``json.dumps`` would (a list of JSON strings joined by ", ") by the C
    string encoder, without building an encoder per row; any other value goes through content_hash.
    """
    out = []
    for p in parts:
        if all(v.__class__ is str for v in p):
            payload = "[" + ", ".join(map(_json_string, p)) + "]"
            out.append(hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16])
        else:
            out.append(content_hash(*p))
    return out


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


def _has_bad_bytes(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def _control_character(text: str) -> str | None:
    m = _CONTROL.search(text)
    if m is None:
        return None
    return f"contains the control character U+{ord(m.group()):04X} at position {m.start() + 1}; remove it"


@dataclass(frozen=True)
class _Rule:
    """One field's checks, resolved once per file rather than once per row."""

    name: str
    required: bool
    normalize: str
    kind: str  # "id", "timestamp", "number", "boolean" or "text"
    spec: FieldSpec
    timestamps: Any = None
    values: frozenset[str] | None = None
    pattern: re.Pattern | None = None
    # a text field with nothing to check beyond presence
    plain: bool = False


def _rules(spec: RecordSpec) -> list[_Rule]:
    rules = []
    for name, f in spec.fields.items():
        kind = ("id" if name == spec.id else "timestamp" if f.type == "timestamp"
                else "number" if f.type in ("integer", "number") else "boolean" if f.type == "boolean" else "text")
        plain = (kind == "text" and f.type != "email" and f.values is None and f.pattern is None
                 and f.min_length is None and f.max_length is None)
        rules.append(_Rule(name, f.required, f.normalize, kind, f, spec.timestamps,
                           None if f.values is None else frozenset(f.values),
                           None if f.pattern is None else re.compile(f.pattern), plain))
    return rules


def validate(record: dict[str, Any], spec: RecordSpec) -> tuple[dict[str, Any], list[Problem], int]:
    """The record's fields normalised and typed, what is wrong with them, and how many timestamps had no offset."""
    return _validate_rows([record], _rules(spec))[0]


def _validate_rows(records: list[dict[str, Any]], rules: list[_Rule]) -> list[tuple[dict[str, Any], list[Problem], int]]:
    """Each record's fields normalised and typed, its problems (in field order) and its naive timestamps.

    Worked out a field (column) at a time: a column of plain strings without debris (one regex over
    the whole column) is stripped and normalised by list comprehension; any other column goes value
    by value through :func:`_text`.
    """
    outs: list[dict[str, Any]] = [{} for _ in records]
    problems: list[list[Problem]] = [[] for _ in records]
    naive = [0] * len(records)
    for rule in rules:
        name = rule.name
        column = [r.get(name) for r in records]
        if set(map(type, column)) <= {str} and _DEBRIS.search("\n".join(column)) is None:
            column = [v.strip() for v in column]
            if rule.normalize == "lower":
                column = [v.lower() for v in column]
            elif rule.normalize == "upper":
                column = [v.upper() for v in column]
            values = [v or None for v in column]
        else:
            values = [_text(v, rule, problems[i]) for i, v in enumerate(column)]
        if rule.plain:
            for i, (out, v) in enumerate(zip(outs, values)):
                if v is not _SKIP:
                    out[name] = v
                    if v is None and rule.required:
                        problems[i].append(Problem(name, "required field is missing or empty"))
            continue
        suspects = _suspects(rule, values)
        for i, (out, v) in enumerate(zip(outs, values)):
            if v is _SKIP:
                continue
            out[name] = v
            if i not in suspects:
                continue
            problem, naive_i = _check(rule, out, v)
            if problem is not None:
                problems[i].append(problem)
            naive[i] += naive_i
    return list(zip(outs, problems, naive))


_SKIP = object()  # the field's value already has its problem


def _suspects(rule: _Rule, values: list[Any]) -> set[int] | range:
    """Rows whose value :func:`_check` must see: for a text or id field, those failing a column-wide test."""
    if rule.kind not in ("text", "id"):
        return range(len(values))
    f = rule.spec
    ok = [v is not None and v is not _SKIP for v in values]
    if rule.kind == "id":
        ok = [k and len(v) <= MAX_ID_LENGTH for k, v in zip(ok, values)]
    if f.type == "email":
        ok = [k and _EMAIL.match(v) is not None for k, v in zip(ok, values)]
    if rule.values is not None:
        ok = [k and v in rule.values for k, v in zip(ok, values)]
    if rule.pattern is not None:
        ok = [k and rule.pattern.fullmatch(v) is not None for k, v in zip(ok, values)]
    if f.min_length is not None:
        ok = [k and len(v) >= f.min_length for k, v in zip(ok, values)]
    if f.max_length is not None:
        ok = [k and len(v) <= f.max_length for k, v in zip(ok, values)]
    return {i for i, k in enumerate(ok) if not k}


def _text(value: Any, rule: _Rule, problems: list[Problem]) -> Any:
    """One raw value as normalised text, None when absent, or _SKIP with its problem added."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (dict, list)):
        problems.append(Problem(rule.name, f"expected a value, got {type(value).__name__}"))
        return _SKIP
    text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if _DEBRIS.search(text) is not None:  # rare: then say which kind, bad bytes first
        problems.append(Problem(rule.name, "invalid UTF-8 byte sequence" if _has_bad_bytes(text)
                                else _control_character(text)))
        return _SKIP
    text = text.strip()
    if rule.normalize == "lower":
        text = text.lower()
    elif rule.normalize == "upper":
        text = text.upper()
    return text or None


def _check(rule: _Rule, out: dict[str, Any], value: Any) -> tuple[Problem | None, int]:
    """The problem with one present (or missing) normalised value, typing it in ``out``; and 1 for a naive time."""
    name = rule.name
    if value is None:
        return (Problem(name, "required field is missing or empty") if rule.required else None), 0
    if rule.kind == "id" and len(value) > MAX_ID_LENGTH:
        return Problem(name, f"{name} has {len(value)} characters; an id holds at most "
                             f"{MAX_ID_LENGTH} (the platform's audit and ledger columns)"), 0
    if rule.kind == "timestamp":
        read = read_record_timestamp(value, rule.timestamps)
        out[name] = read.value
        return (Problem(name, read.problem) if read.problem else None), int(read.naive)
    return _check_value(rule, out), 0


def _check_value(rule: _Rule, out: dict[str, Any]) -> Problem | None:
    name, f = rule.name, rule.spec
    value = out[name]
    if f.type in ("integer", "number"):
        try:
            num = float(value.replace(",", "")) if isinstance(value, str) else float(value)
        except ValueError:
            return Problem(name, f"{value!r} is not a number")
        if f.type == "integer" and not num.is_integer():
            return Problem(name, f"{value!r} is not a whole number")
        out[name] = int(num) if f.type == "integer" else num
        return None
    if f.type == "boolean":
        low = str(value).lower()
        if low not in _TRUE | _FALSE:
            return Problem(name, f"{value!r} is not true or false")
        out[name] = low in _TRUE
        return None
    if f.type == "email" and not _EMAIL.match(value):
        return Problem(name, f"{value!r} is not an e-mail address")
    if rule.values is not None and value not in rule.values:
        return Problem(name, f"{value!r} is not one of {', '.join(f.values)}")
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        return Problem(name, f"{value!r} does not match the pattern {f.pattern}")
    if f.min_length is not None and len(value) < f.min_length:
        return Problem(name, f"{name} has {len(value)} characters; at least {f.min_length} required")
    if f.max_length is not None and len(value) > f.max_length:
        return Problem(name, f"{name} has {len(value)} characters; at most {f.max_length} allowed")
    return None


def _quarantine_row(source_file: str, row_no: int, record: Any, problems: list[Problem], id_field: str) -> dict[str, Any]:
    record_id = None
    if isinstance(record, dict):
        rid = str(record.get(id_field) if isinstance(record.get(id_field), (str, int)) else "").strip()
        # only an id the platform's tables can hold names the row; the raw record shows the rest
        if rid and len(rid) <= MAX_ID_LENGTH and not _has_bad_bytes(rid) and not _CONTROL.search(rid):
            record_id = rid
    raw = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False, default=str)
    raw = raw.encode("utf-8", errors="replace").decode("utf-8", errors="replace")
    raw = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", raw)
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
    return dataclasses.replace(
        result,
        records=result.records[~dup].reset_index(drop=True),
        quarantined=quarantined.sort_values("source_row", kind="stable").reset_index(drop=True),
    )
