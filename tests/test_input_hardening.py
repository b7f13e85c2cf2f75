"""Hostile batch files: odd line separators, missing headers, ambiguous times, control characters,
wrong encodings and wrong formats lose no row and say what is wrong once, for the whole file."""

from __future__ import annotations

import copy
import json

import dagster as dg
import pandas as pd
import pytest
import yaml

from orchestration_assets.core.records import BatchFileError, parse_bytes
from orchestration_assets.family import Family, SpecError
from orchestration_assets.spec import RecordSpec
from tests.workflow import DEFS

HEADER = "ticket_id,account_id,customer_email,created_at,channel,priority,category,subject,body\n"


@pytest.fixture(scope="module")
def spec(families) -> RecordSpec:
    return families["support_triage"].record


def _row(tid="T-1", created="2026-11-23T09:15:00+00:00", body="My invoice shows the wrong amount."):
    return f'{tid},ACC-0001,jane@example.com,{created},email,high,billing,Invoice wrong,"{body}"\n'


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(rows)).encode()


def _with_timestamps(spec: RecordSpec, **timestamps) -> RecordSpec:
    data = copy.deepcopy(spec.model_dump())
    data["timestamps"] = {**data["timestamps"], **timestamps}
    return RecordSpec.model_validate(data)


def _accounted(r):
    assert r.rows_in == r.rows_ok + r.rows_quarantined
    return r


def _good(**extra) -> dict:
    return {"ticket_id": "T-1", "account_id": "A", "created_at": "2026-11-24T10:00:00Z", "channel": "web",
            "subject": "Login", "body": "Cannot log in since this morning.", **extra}


# 7 -------------------------------------------------------------------------------------------

def test_jsonl_strings_may_hold_unicode_line_separators(spec):
    bodies = ["first\u2028second line", "para\u2029graph and a next\u0085line", "plain body text"]
    lines = [json.dumps(_good(ticket_id=f"T-{i}", body=b), ensure_ascii=False) for i, b in enumerate(bodies, 1)]
    raw = (lines[0] + "\r\n" + lines[1] + "\n" + lines[2] + "\n" + "{broken\n").encode()
    r = _accounted(parse_bytes(raw, "b.jsonl", spec))
    assert r.rows_in == 4 and r.rows_ok == 3
    assert list(r.records["body"]) == bodies
    assert list(r.records["source_row"]) == [1, 2, 3]
    assert r.quarantined.iloc[0]["source_row"] == 4 and "invalid JSON" in r.quarantined.iloc[0]["reason"]


# 8 -------------------------------------------------------------------------------------------

def test_a_csv_without_its_header_row_loses_no_row_and_says_why(spec):
    raw = (_row(tid="T-1") + _row(tid="T-2") + _row(tid="T-3")).encode()
    r = _accounted(parse_bytes(raw, "noheader.csv", spec))
    assert r.rows_in == 3 and r.rows_ok == 0
    assert list(r.quarantined["source_row"]) == [1, 2, 3] and set(r.quarantined["field"]) == {"<header>"}
    assert len(r.file_errors) == 1
    assert r.file_errors[0].startswith("noheader.csv: ") and "header" in r.file_errors[0]
    assert "ticket_id" in r.file_errors[0]  # says which columns a header must name


def test_a_header_naming_none_of_the_required_columns_is_a_file_level_reason(spec):
    r = _accounted(parse_bytes(b"id,text\nT-1,hello there team\nT-2,and again\n", "other.csv", spec))
    assert r.rows_in == 2 and r.rows_ok == 0  # a header of words is a header: not counted as a row
    assert len(r.file_errors) == 1 and "other.csv: " in r.file_errors[0]


# 13 ------------------------------------------------------------------------------------------

def test_an_ambiguous_day_month_date_is_quarantined_unless_the_order_is_declared(spec):
    raw = _csv(_row(tid="T-1", created="03/04/2026 10:00"), _row(tid="T-2", created="13/04/2026 10:00"),
               _row(tid="T-3", created="04/13/2026 10:00"))
    r = _accounted(parse_bytes(raw, "b.csv", spec))
    q = r.quarantined.set_index("source_row")
    assert q.loc[1, "field"] == "created_at" and "ambiguous" in q.loc[1, "reason"]
    assert "date_order" in q.loc[1, "reason"]  # says how to fix it
    assert r.rows_ok == 2  # only one reading is a date: not a guess

    day_first = _accounted(parse_bytes(raw, "b.csv", _with_timestamps(spec, date_order="day_first")))
    assert list(day_first.records["record_id"]) == ["T-1", "T-2"]
    assert list(day_first.records["created_at"].dt.strftime("%Y-%m-%d")) == ["2026-04-03", "2026-04-13"]
    assert day_first.quarantined.iloc[0]["record_id"] == "T-3"
    assert "day_first" in day_first.quarantined.iloc[0]["reason"]

    month_first = _accounted(parse_bytes(raw, "b.csv", _with_timestamps(spec, date_order="month_first")))
    assert list(month_first.records["record_id"]) == ["T-1", "T-3"]
    assert list(month_first.records["created_at"].dt.strftime("%Y-%m-%d")) == ["2026-03-04", "2026-04-13"]


def test_naive_times_are_read_in_the_declared_timezone_and_counted(spec):
    raw = _csv(_row(tid="T-1", created="2026-11-23T09:15:00"), _row(tid="T-2", created="2026-11-23T09:15:00Z"))
    utc = _accounted(parse_bytes(raw, "b.csv", spec))
    assert spec.timestamps.timezone == "UTC" and utc.naive_timestamps == 1
    assert list(utc.records["created_at"]) == [pd.Timestamp("2026-11-23T09:15:00Z")] * 2

    berlin = _accounted(parse_bytes(raw, "b.csv", _with_timestamps(spec, timezone="Europe/Berlin")))
    assert berlin.naive_timestamps == 1
    assert list(berlin.records["created_at"]) == [pd.Timestamp("2026-11-23T08:15:00Z"), pd.Timestamp("2026-11-23T09:15:00Z")]
    assert str(berlin.records["created_at"].dt.tz) == "UTC"


def test_a_naive_time_that_does_not_exist_in_the_timezone_is_quarantined(spec):
    raw = _csv(_row(tid="T-1", created="2026-03-29T02:30:00"))  # the clocks jump 02:00 -> 03:00
    r = _accounted(parse_bytes(raw, "b.csv", _with_timestamps(spec, timezone="Europe/Berlin")))
    assert r.rows_ok == 0 and r.quarantined.iloc[0]["field"] == "created_at"
    assert "Europe/Berlin" in r.quarantined.iloc[0]["reason"]


def test_years_outside_the_accepted_range_are_quarantined(spec):
    raw = _csv(_row(tid="T-1", created="0001-01-01T00:00:00Z"), _row(tid="T-2", created="9999-12-31T00:00:00Z"),
               _row(tid="T-3", created="2026-11-23T09:15:00Z"))
    r = _accounted(parse_bytes(raw, "b.csv", spec))
    assert list(r.records["record_id"]) == ["T-3"]
    q = r.quarantined.set_index("source_row")
    assert q.loc[1, "field"] == q.loc[2, "field"] == "created_at"
    assert "year 1 is outside" in q.loc[1, "reason"] and "year 9999 is outside" in q.loc[2, "reason"]


@pytest.mark.parametrize("timestamps, expected", [
    ({"timezone": "Mars/Olympus"}, "record.timestamps.timezone: 'Mars/Olympus' is not an IANA timezone"),
    ({"min_year": 2100, "max_year": 2000}, "record.timestamps.min_year: 2100 is after max_year 2000"),
    ({"date_order": "year_first"}, "record.timestamps.date_order: "),
])
def test_timestamp_settings_are_checked_with_the_spec(timestamps, expected):
    attrs = yaml.safe_load((DEFS / "support_triage" / "defs.yaml").read_text())["attributes"]
    attrs["record"]["timestamps"] = timestamps
    with pytest.raises(SpecError) as err:
        Family.from_attributes(attrs, DEFS / "support_triage", "defs/support_triage/defs.yaml")
    assert any(line.startswith("defs/support_triage/defs.yaml: ") and expected in line
               for line in str(err.value).splitlines()), str(err.value)


# 14 ------------------------------------------------------------------------------------------

def test_control_characters_in_ids_and_text_are_quarantined_naming_the_field(spec):
    lines = [json.dumps(_good(ticket_id="T-\u00001")), json.dumps(_good(ticket_id="T-2", body="bad \x1b[31m text")),
             json.dumps(_good(ticket_id="T-3", body="tabs\tand\r\nnewlines are fine")), json.dumps(_good(ticket_id="T-4"))]
    r = _accounted(parse_bytes("\n".join(lines).encode(), "b.jsonl", spec))
    assert list(r.records["record_id"]) == ["T-3", "T-4"]
    q = r.quarantined.set_index("source_row")
    assert q.loc[1, "field"] == "ticket_id" and "control character" in q.loc[1, "reason"]
    assert q.loc[2, "field"] == "body" and "control character" in q.loc[2, "reason"]
    # nothing the quarantine table stores carries the NUL (PostgreSQL rejects it in text)
    assert not r.quarantined.astype(str).apply(lambda c: c.str.contains("\x00", regex=False)).any().any()
    assert pd.isna(q.loc[1, "record_id"])


def test_a_raw_nul_in_a_csv_field_is_quarantined_naming_the_field(spec):
    r = _accounted(parse_bytes(_csv(_row(tid="T-1", body="a body with a \x00 byte"), _row(tid="T-2")), "b.csv", spec))
    assert list(r.records["record_id"]) == ["T-2"]
    assert r.quarantined.iloc[0]["field"] == "body" and "U+0000" in r.quarantined.iloc[0]["reason"]


def test_ids_longer_than_the_platform_tables_hold_are_quarantined(families):
    data = families["support_triage"].record.model_dump()
    data["fields"]["ticket_id"]["max_length"] = None  # the spec's own bound is not what protects the tables
    spec = RecordSpec.model_validate(data)
    r = _accounted(parse_bytes(_csv(_row(tid="T" * 65), _row(tid="T" * 64)), "b.csv", spec))
    assert list(r.records["record_id"]) == ["T" * 64]
    bad = r.quarantined.iloc[0]
    assert bad["field"] == "ticket_id" and "65 characters" in bad["reason"] and "64" in bad["reason"]
    assert pd.isna(bad["record_id"])


def test_a_spec_cannot_allow_ids_longer_than_the_platform_tables_hold(families):
    data = families["support_triage"].record.model_dump()
    data["fields"]["ticket_id"]["max_length"] = 200
    with pytest.raises(ValueError, match="at most 64"):
        RecordSpec.model_validate(data)


# 15 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded(spec, codec):
    text = HEADER + _row(tid="T-1", body="Caf\u00e9 bill is wrong") + _row(tid="T-2")
    raw = text.encode(codec)
    if codec == "utf-16-be":
        raw = b"\xfe\xff" + raw
    r = _accounted(parse_bytes(raw, "b.csv", spec))
    assert r.rows_ok == 2 and r.file_errors == []
    assert r.records.iloc[0]["body"] == "Caf\u00e9 bill is wrong"


def test_utf16_without_a_byte_order_mark_is_one_file_level_reason(spec):
    raw = (HEADER + _row()).encode("utf-16-le")
    with pytest.raises(BatchFileError, match=r"^b\.csv: .*UTF-16.*UTF-8"):
        parse_bytes(raw, "b.csv", spec)


@pytest.mark.parametrize("raw, what", [
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, "zip"),
    (bytes(range(256)) * 8, "binary"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 100, "gzip"),
])
def test_a_binary_file_is_one_file_level_reason(spec, raw, what):
    for name in ("b.csv", "b.jsonl"):
        with pytest.raises(BatchFileError) as err:
            parse_bytes(raw, name, spec)
        msg = str(err.value)
        assert msg.startswith(f"{name}: ") and what in msg and "export" in msg


@pytest.mark.parametrize("text", [
    json.dumps([_good(ticket_id="T-1"), _good(ticket_id="T-2")]),
    json.dumps([_good(ticket_id="T-1"), _good(ticket_id="T-2")], indent=2),
    json.dumps([_good(ticket_id="T-1"), _good(ticket_id="T-2")], indent=2)[:-40],  # cut off
])
def test_a_json_array_in_a_jsonl_file_is_one_file_level_reason(spec, text):
    with pytest.raises(BatchFileError, match=r"^b\.jsonl: .*JSON array.*one JSON object per line"):
        parse_bytes(text.encode(), "b.jsonl", spec)


def test_a_json_array_on_a_later_line_stays_a_row_problem(spec):
    r = _accounted(parse_bytes((json.dumps(_good()) + "\n[1, 2]\n").encode(), "b.jsonl", spec))
    assert r.rows_ok == 1 and r.quarantined.iloc[0]["source_row"] == 2 and r.file_errors == []


def test_duplicate_header_columns_are_one_file_level_reason(spec):
    header = HEADER.rstrip("\n") + ",Body\n"
    raw = (header + _row(tid="T-1").rstrip("\n") + ",other text\n" + _row(tid="T-2").rstrip("\n") + ",more\n").encode()
    r = _accounted(parse_bytes(raw, "dup.csv", spec))
    assert r.rows_in == 2 and r.rows_ok == 0 and set(r.quarantined["field"]) == {"<header>"}
    assert len(r.file_errors) == 1
    assert r.file_errors[0].startswith("dup.csv: ") and "body" in r.file_errors[0] and "twice" in r.file_errors[0]


def test_ingestion_turns_an_unreadable_file_into_a_clear_failure(families, tmp_path):
    from orchestration_assets.ingestion import read_batch

    family = families["support_triage"]
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(dg.Failure) as err:
        read_batch(path, family.spec)
    assert err.value.description.startswith("sheet.csv: ")
    assert "zip" in err.value.description and "Traceback" not in err.value.description


def test_two_jsonl_keys_naming_one_field_are_a_row_problem_not_a_silent_choice(families):
    spec = families["it_service_desk"].record
    line = json.dumps({"Ticket ID": "ITS-000001", "Opened": "2026-11-30T09:00:00Z", "Document": "printer jam again",
                       "document": "another text"})
    r = _accounted(parse_bytes(line.encode(), "b.jsonl", spec))
    assert r.rows_ok == 0 and r.quarantined.iloc[0]["field"] == "body"
    assert "'Document' and 'document' both name field body" in r.quarantined.iloc[0]["reason"]
