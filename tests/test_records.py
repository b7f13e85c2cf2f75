"""Parsing and quarantine of batch files against a family's record spec: exact reasons, no row lost."""

from __future__ import annotations

import json

import pytest

from orchestration_assets.core.records import BatchFileError, parse_bytes, parse_file, quarantine_ids_seen_elsewhere
from orchestration_assets.spec import RecordSpec
from tests.manifest import load_manifest
from tests.workflow import sample_files

HEADER = "ticket_id,account_id,customer_email,created_at,channel,priority,category,subject,body\n"


@pytest.fixture(scope="module")
def spec(families) -> RecordSpec:
    return families["support_triage"].record


def _row(tid="T-1", acc="ACC-0001", created="2026-11-23T09:15:00+00:00", channel="email",
         body="My invoice shows the wrong amount."):
    return f'{tid},{acc},jane@example.com,{created},{channel},high,billing,Invoice wrong,"{body}"\n'


def _accounting(result):
    assert result.rows_in == result.rows_ok + result.rows_quarantined


def test_valid_rows_are_normalised_typed_and_mapped(spec):
    r = parse_bytes((HEADER + _row() + _row(tid="T-2", channel="CHAT")).encode(), "batch.csv", spec)
    _accounting(r)
    assert r.rows_ok == 2 and r.rows_quarantined == 0
    assert list(r.records["channel"]) == ["email", "chat"]
    assert str(r.records["created_at"].dt.tz) == "UTC"
    assert list(r.records["record_id"]) == ["T-1", "T-2"] == list(r.records["ticket_id"])
    # the export's `category` column lands in the field the spec maps it to
    assert list(r.records["labelled_category"]) == ["billing", "billing"]
    assert list(r.records["source_row"]) == [1, 2]
    assert r.records["input_hash"].str.len().eq(16).all()


def test_malformed_rows_are_quarantined_with_file_row_and_field(spec):
    raw = (
        HEADER + _row(tid="T-1") + _row(tid="T-2", created="yesterday") + _row(tid="T-3", channel="fax")
        + _row(tid="T-1") + _row(tid="T-5", acc="") + _row(tid="T-6", body="   ") + "T-7,ACC-1,only,four\n"
        + _row(tid="T-8", body="x" * 10_001)
        + "T-9,ACC-1,not-an-address,2026-11-23T09:15:00Z,email,high,billing,Hi,Body of the message here\n"
    ).encode()
    r = parse_bytes(raw, "batch-2026-11-23.csv", spec)
    _accounting(r)
    assert r.rows_in == 9 and r.rows_ok == 1
    q = r.quarantined.set_index("source_row")
    assert set(q["source_file"]) == {"batch-2026-11-23.csv"}
    assert q.loc[2, "field"] == "created_at" and "unparseable timestamp 'yesterday'" in q.loc[2, "reason"]
    assert q.loc[3, "field"] == "channel" and "'fax' is not one of" in q.loc[3, "reason"]
    assert q.loc[4, "field"] == "ticket_id" and "first seen at row 1" in q.loc[4, "reason"]
    assert q.loc[4, "record_id"] == "T-1"
    assert q.loc[5, "field"] == "account_id" and "missing or empty" in q.loc[5, "reason"]
    assert q.loc[6, "field"] == "body" and "missing or empty" in q.loc[6, "reason"]
    assert q.loc[7, "field"] == "<row>" and "expected 9 fields, found 4" in q.loc[7, "reason"]
    assert q.loc[8, "field"] == "body" and "at most 10000" in q.loc[8, "reason"]
    assert q.loc[9, "field"] == "customer_email" and "not an e-mail address" in q.loc[9, "reason"]


def test_bad_encoding_is_quarantined_not_crashing(spec):
    raw = HEADER.encode() + _row().encode() + b"T-2,ACC-1,a@b.co,2026-11-23,email,low,billing,Caf\xe9 bill,Latin-1 body here\n"
    r = parse_bytes(raw, "b.csv", spec)
    _accounting(r)
    bad = r.quarantined.iloc[0]
    assert r.rows_ok == 1 and bad["source_row"] == 2 and bad["field"] == "subject"
    assert "invalid UTF-8" in bad["reason"]


def test_a_header_missing_a_required_column_quarantines_every_row_naming_it(spec):
    r = parse_bytes(b"ticket_id,account_id,created_at,subject,body\nT-1,A,2026-11-23,Hi,Hello there team\n", "b.csv", spec)
    _accounting(r)
    assert r.rows_ok == 0 and r.quarantined.iloc[0]["field"] == "channel"
    assert "header" in r.quarantined.iloc[0]["reason"] and "channel" in r.file_errors[0]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"   "])
def test_an_empty_file_has_no_rows_and_says_so(spec, content):
    for name in ("empty.csv", "empty.jsonl"):
        r = parse_bytes(content, name, spec)
        assert r.rows_in == r.rows_ok == r.rows_quarantined == 0
        assert r.file_errors == [f"{name}: file is empty"]


def test_jsonl_bad_lines_are_quarantined_with_line_numbers(spec):
    good = {"ticket_id": "T-1", "account_id": "A", "created_at": "2026-11-24T10:00:00Z", "channel": "web",
            "subject": "Login", "body": "Cannot log in since this morning."}
    lines = [json.dumps(good), "{not json", json.dumps([1, 2]), "",
             json.dumps({**good, "ticket_id": "T-2", "body": {"x": 1}})]
    r = parse_bytes("\n".join(lines).encode(), "b.jsonl", spec)
    _accounting(r)
    assert r.rows_ok == 1 and r.rows_in == 4
    q = r.quarantined.set_index("source_row")
    assert "invalid JSON" in q.loc[2, "reason"]
    assert "expected a JSON object, got list" in q.loc[3, "reason"]
    assert q.loc[5, "field"] == "body" and "expected a value, got dict" in q.loc[5, "reason"]


def test_source_column_names_are_mapped_ignoring_case_and_spaces(families):
    spec = families["it_service_desk"].record
    raw = b" TICKET ID ,Opened,Requester,Document\nITS-000001,2026-11-30T09:00:00Z,ana@example.org,printer jam floor three\n"
    r = parse_bytes(raw, "export.csv", spec)
    assert r.rows_ok == 1, r.quarantined.to_dict(orient="records")
    assert r.records.iloc[0]["body"] == "printer jam floor three"


def test_ids_already_ingested_from_another_batch_are_quarantined(spec):
    r = parse_bytes((HEADER + _row(tid="T-1") + _row(tid="T-2")).encode(), "b2.csv", spec)
    r2 = quarantine_ids_seen_elsewhere(r, {"T-1": "b1.csv"}, spec.id)
    _accounting(r2)
    assert list(r2.records["record_id"]) == ["T-2"]
    assert "already ingested from batch 'b1.csv'" in r2.quarantined.iloc[0]["reason"]


def test_an_unsupported_file_type_is_a_clear_error(spec, tmp_path):
    p = tmp_path / "records.xlsx"
    p.write_bytes(b"x")
    with pytest.raises(BatchFileError, match="records.xlsx: unsupported file type"):
        parse_file(p, spec)


@pytest.mark.parametrize("name", ["support_triage", "it_service_desk", "refund_requests"])
def test_sample_batches_quarantine_exactly_the_rows_their_manifest_lists(families, name):
    family = families[name]
    expected: dict[str, set[tuple[int, str]]] = {}
    for m in load_manifest(family.root):
        expected.setdefault(m.file, set()).add((m.row, m.field))
    files = sample_files(family)
    assert files and set(expected) <= {f.name for f in files}
    for path in files:
        r = parse_file(path, family.record, family.spec.source.formats)
        _accounting(r)
        assert set(zip(r.quarantined["source_row"], r.quarantined["field"])) == expected.get(path.name, set()), path.name


def test_a_field_pattern_quarantines_values_that_do_not_match(families):
    import copy

    from orchestration_assets.spec import RecordSpec

    data = families["it_service_desk"].record.model_dump()
    data["fields"]["ticket_id"]["pattern"] = r"ITS-\d{6}"
    spec = RecordSpec.model_validate(copy.deepcopy(data))
    raw = (b"Ticket ID,Opened,Requester,Document\nITS-000001,2026-11-30T09:00:00Z,,printer jam on floor three\n"
           b"its 2,2026-11-30T09:00:00Z,,printer jam on floor four\n")
    r = parse_bytes(raw, "export.csv", spec)
    assert r.rows_ok == 1
    assert r.quarantined.iloc[0]["field"] == "ticket_id" and "does not match the pattern" in r.quarantined.iloc[0]["reason"]
