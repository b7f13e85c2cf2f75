"""A batch file's bytes as rows: its encoding, whether it is the format its name says, its CSV header.

A file that is not text of its format at all (binary, UTF-16 without a byte-order mark, a JSON
array in a ``.jsonl`` file) is one :class:`BatchFileError` naming the file, what is wrong and
what to do, rather than hundreds of meaningless row errors. A CSV header that cannot be trusted
(no header at all, a field named twice) quarantines every row under one file-level reason, so
no row is lost and no value lands in the wrong field. No Dagster.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..spec_inputs import RecordSpec

HEADER_FIELD = "<header>"
_SNIFF_BYTES = 8192
_BOMS = [  # UTF-32 first: its little-endian mark starts with UTF-16's
    (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
]
_MAGIC = [
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?)"), (b"\xd0\xcf\x11\xe0", "an old Excel/Office (.xls) file"),
    (b"%PDF", "a PDF document"), (b"\x1f\x8b", "gzip-compressed data"), (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"), (b"SQLite format 3\x00", "an SQLite database"),
]
_TEXT_CONTROLS = {9, 10, 12, 13}  # tab, newline, form feed, carriage return occur in real text files
_NAME_LIKE = re.compile(r"[A-Za-z_][\w .()#/-]*")


@dataclass
class Problem:
    field: str
    reason: str


Row = tuple[int, Any, list[Problem]]


class BatchFileError(ValueError):
    """The file as a whole cannot be read (unsupported type, not text of its format)."""


def kind(source_file: str) -> str:
    return "CSV" if source_file.lower().endswith(".csv") else "JSON Lines"


def decode(raw: bytes, source_file: str) -> str:
    """The file's text; bytes that are not UTF-8 stay as surrogates, so the row and field holding them are named."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            if codec == "utf-8":
                return raw[len(bom):].decode("utf-8", errors="surrogateescape")
            try:
                return raw[len(bom):].decode(codec)
            except UnicodeDecodeError as exc:
                raise BatchFileError(
                    f"{source_file}: starts with a {codec.upper()} byte-order mark but is not valid {codec.upper()} "
                    f"(at byte {exc.start + len(bom)}); re-export it as UTF-8") from None
    _refuse_binary(raw[:_SNIFF_BYTES], source_file)
    return raw.decode("utf-8", errors="surrogateescape")


def _refuse_binary(sample: bytes, source_file: str) -> None:
    what = kind(source_file)
    for magic, described in _MAGIC:
        if sample.startswith(magic):
            raise BatchFileError(f"{source_file}: this is {described}, not {what} text; "
                                 f"export the data as UTF-8 {what} and drop that file instead")
    if len(sample) < 4:
        return
    # UTF-16 without a mark: ASCII text has a NUL in every other byte
    even, odd = sample[0::2].count(0) / len(sample[0::2]), sample[1::2].count(0) / len(sample[1::2])
    if max(even, odd) > 0.3 and min(even, odd) < 0.05:
        endian = "little" if odd > even else "big"
        raise BatchFileError(f"{source_file}: looks like UTF-16 ({endian}-endian) text without a byte-order mark; "
                             "re-export it as UTF-8 (or as UTF-16 with a byte-order mark)")
    controls = sum(1 for b in sample if b < 32 and b not in _TEXT_CONTROLS)
    if controls > 0.05 * len(sample):  # one stray NUL is a row's problem; this many is not text
        raise BatchFileError(f"{source_file}: binary content ({controls} control bytes in the first {len(sample)}), "
                             f"not {what} text; export the data as UTF-8 {what} and drop that file instead")


def csv_rows(text: str, source_file: str, spec: RecordSpec, resolve: Callable[[str], str | None]) -> tuple[list[Row], list[str]]:
    if not text.strip():
        return [], [f"{source_file}: file is empty"]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        return [], [f"{source_file}: unreadable CSV header: {exc}"]
    names = [resolve(h) for h in header]
    missing = [f for f, fs in spec.fields.items() if fs.required and f not in names]
    refused, header_is_data = _header_problem(header, names, missing, source_file, spec)
    lines: Iterator[tuple[list[str] | None, csv.Error | None]] = _read(reader)
    if header_is_data:
        lines = itertools.chain([(header, None)], lines)
    rows: list[Row] = []
    row_no = 0
    used = [(i, n) for i, n in enumerate(names) if n is not None]
    width = len(header)
    for values, error in lines:
        if error is not None:
            row_no += 1
            rows.append((row_no, None, [Problem("<row>", f"unreadable CSV row: {error}")]))
            continue
        if not "".join(values).strip():
            continue  # a blank line is not a data row
        row_no += 1
        if refused:
            rows.append((row_no, values, [Problem(HEADER_FIELD, refused[1])]))
            continue
        if len(values) != width:
            rows.append((row_no, dict(zip(header, values)),
                         [Problem("<row>", f"expected {len(header)} fields, found {len(values)}")]))
            continue
        record = {n: values[i] for i, n in used}
        rows.append((row_no, record, [Problem(f, "column missing from the file's header") for f in missing]))
    if refused:
        return rows, [refused[0]]
    return rows, [f"{source_file}: header lacks required column(s) {missing}"] if missing else []


def _read(reader) -> Iterator[tuple[list[str] | None, csv.Error | None]]:
    while True:
        try:
            yield next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:
            yield None, exc


def _header_problem(header: list[str], names: list[str | None], missing: list[str], source_file: str,
                    spec: RecordSpec) -> tuple[tuple[str, str] | None, bool]:
    """(file-level reason, row reason) when no row can be trusted, and whether the header line is really data."""
    twice = {n: [h for h, m in zip(header, names) if m == n] for n in names if n is not None and names.count(n) > 1}
    if twice:
        detail = "; ".join(f"{field} from {', '.join(repr(h) for h in cols)}" for field, cols in twice.items())
        return ((f"{source_file}: the header names field(s) twice ({detail}); a row's value would depend on "
                 "column order, so no row is read: keep one column per field and drop the file again",
                 f"the header names {', '.join(twice)} twice"), False)
    required = [f for f, fs in spec.fields.items() if fs.required]
    if len(missing) < len(required):
        return None, False  # a header naming some required columns: each row names the missing ones
    by_field = {v: k for k, v in spec.columns.items()}
    expected = ", ".join(by_field.get(f, f) for f in required)
    first = ", ".join(repr(h) for h in header[:4]) + (", ..." if len(header) > 4 else "")
    if any(_looks_like_value(h) for h in header):  # a record, not names: counted and quarantined, not lost
        return ((f"{source_file}: the first line ({first}) is not a header naming the record's columns; the file "
                 f"seems to have no header row, so every line is quarantined: add a first line naming the columns "
                 f"(at least {expected}) and drop the file again", "the file has no header row"), True)
    return ((f"{source_file}: the header ({first}) names none of the required columns ({expected}), so every row "
             "is quarantined: rename the columns, or map them to the record's fields in record.columns",
             "the header names none of the required columns"), False)


def _looks_like_value(cell: str) -> bool:
    """A header cell that is an e-mail, a number, a date or an id, not a column name."""
    cell = cell.strip()
    return "@" in cell or (any(c.isdigit() for c in cell) and not _NAME_LIKE.fullmatch(cell))


def jsonl_rows(text: str, source_file: str, resolve: Callable[[str], str | None]) -> tuple[list[Row], list[str]]:
    if not text.strip():
        return [], [f"{source_file}: file is empty"]
    _refuse_json_document(text, source_file)
    rows: list[Row] = []
    # JSON Lines are separated by \n alone: str.splitlines() would also split inside strings (U+2028, U+0085 ...)
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((line_no, line, [Problem("<line>", f"invalid JSON: {exc.msg} at column {exc.colno}")]))
            continue
        if not isinstance(obj, dict):
            rows.append((line_no, obj, [Problem("<line>", f"expected a JSON object, got {type(obj).__name__}")]))
            continue
        record: dict[str, Any] = {}
        keys: dict[str, str] = {}
        problems: list[Problem] = []
        for key, value in obj.items():
            name = resolve(key)
            if name in keys:  # "Body" and "body": which one is meant is a guess
                problems.append(Problem(name, f"keys {keys[name]!r} and {key!r} both name field {name}"))
            elif name is not None:
                record[name], keys[name] = value, key
        rows.append((line_no, record, problems))
    return rows, []


def _refuse_json_document(text: str, source_file: str) -> None:
    """A JSON array, or one object spread over many lines, is not JSON Lines: say so once."""
    body = text.strip()
    first_line = body.split("\n", 1)[0].strip()
    one_line = "\n" not in body
    if body.startswith("[") and (one_line or not _is_json(first_line)):
        raise BatchFileError(f"{source_file}: the file is a JSON array, not JSON Lines; "
                             f"write one JSON object per line (e.g. jq -c '.[]' {source_file})")
    if body.startswith("{") and not one_line and not _is_json(first_line) and _is_json(body):
        raise BatchFileError(f"{source_file}: the file is one JSON object spread over several lines, not JSON "
                             f"Lines; write one JSON object per line (e.g. jq -c . {source_file})")


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True
