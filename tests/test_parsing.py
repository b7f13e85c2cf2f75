"""Parsing and quarantine of ticket batch files: exact reasons, and no row lost."""

from __future__ import annotations

import json

import pytest

from orchestration_assets.core.parsing import (
    TicketFileError,
    parse_ticket_bytes,
    parse_ticket_file,
    quarantine_ids_seen_elsewhere,
)

HEADER = "ticket_id,account_id,customer_email,created_at,channel,priority,category,subject,body\n"


def _row(tid="T-1", acc="ACC-0001", created="2026-11-23T09:15:00+00:00", channel="email", body="My invoice shows the wrong amount."):
    return f'{tid},{acc},jane@example.com,{created},{channel},high,billing,Invoice wrong,"{body}"\n'


def _accounting(result):
    assert result.rows_in == result.rows_ok + result.rows_quarantined


def test_valid_csv_rows_are_normalised():
    raw = (HEADER + _row() + _row(tid="T-2", channel="CHAT")).encode()
    r = parse_ticket_bytes(raw, "batch.csv")
    _accounting(r)
    assert r.rows_ok == 2 and r.rows_quarantined == 0
    assert list(r.tickets["channel"]) == ["email", "chat"]
    assert str(r.tickets["created_at"].dt.tz) == "UTC"
    assert list(r.tickets["source_row"]) == [1, 2]
    assert r.tickets["input_hash"].str.len().eq(16).all()


def test_malformed_csv_rows_are_quarantined_with_file_row_and_field():
    raw = (
        HEADER
        + _row(tid="T-1")
        + _row(tid="T-2", created="yesterday")
        + _row(tid="T-3", channel="fax")
        + _row(tid="T-1")  # duplicate
        + _row(tid="T-5", acc="")
        + _row(tid="T-6", body="   ")
        + "T-7,ACC-1,only,four\n"
        + _row(tid="T-8", body="x" * 10_001)
    ).encode()
    r = parse_ticket_bytes(raw, "batch-2026-11-23.csv")
    _accounting(r)
    assert r.rows_in == 8 and r.rows_ok == 1
    q = r.quarantined.set_index("source_row")
    assert set(q["source_file"]) == {"batch-2026-11-23.csv"}
    assert q.loc[2, "field"] == "created_at" and "unparseable timestamp 'yesterday'" in q.loc[2, "reason"]
    assert q.loc[3, "field"] == "channel" and "'fax' is not one of" in q.loc[3, "reason"]
    assert q.loc[4, "field"] == "ticket_id" and "first seen at row 1" in q.loc[4, "reason"]
    assert q.loc[5, "field"] == "account_id" and "missing or empty" in q.loc[5, "reason"]
    assert q.loc[6, "field"] == "body" and "missing or empty" in q.loc[6, "reason"]
    assert q.loc[7, "field"] == "<row>" and "expected 9 fields, found 4" in q.loc[7, "reason"]
    assert q.loc[8, "field"] == "body" and "at most 10000" in q.loc[8, "reason"]
    assert q.loc[4, "ticket_id"] == "T-1"


def test_bad_encoding_is_quarantined_not_crashing():
    raw = HEADER.encode() + _row().encode() + b"T-2,ACC-1,a@b.c,2026-11-23,email,low,billing,Caf\xe9 bill,Latin-1 body here\n"
    r = parse_ticket_bytes(raw, "b.csv")
    _accounting(r)
    assert r.rows_ok == 1
    bad = r.quarantined.iloc[0]
    assert bad["source_row"] == 2 and bad["field"] == "subject"
    assert "invalid UTF-8" in bad["reason"]


def test_missing_header_column_quarantines_every_row_with_the_column_named():
    raw = b"ticket_id,account_id,created_at,subject,body\nT-1,A,2026-11-23,Hi,Hello there team\n"
    r = parse_ticket_bytes(raw, "b.csv")
    _accounting(r)
    assert r.rows_ok == 0 and r.rows_quarantined == 1
    assert r.quarantined.iloc[0]["field"] == "channel"
    assert "header" in r.quarantined.iloc[0]["reason"]
    assert r.file_errors and "channel" in r.file_errors[0]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"   "])
def test_empty_file_has_no_rows_and_says_so(content):
    for name in ("empty.csv", "empty.jsonl"):
        r = parse_ticket_bytes(content, name)
        assert r.rows_in == r.rows_ok == r.rows_quarantined == 0
        assert r.file_errors == [f"{name}: file is empty"]


def test_jsonl_bad_lines_are_quarantined_with_line_numbers():
    good = {"ticket_id": "T-1", "account_id": "A", "created_at": "2026-11-24T10:00:00Z", "channel": "web",
            "subject": "Login", "body": "Cannot log in since this morning."}
    lines = [json.dumps(good), "{not json", json.dumps([1, 2]), "", json.dumps({**good, "ticket_id": "T-2", "body": {"x": 1}})]
    r = parse_ticket_bytes("\n".join(lines).encode(), "b.jsonl")
    _accounting(r)
    assert r.rows_ok == 1 and r.rows_in == 4
    q = r.quarantined.set_index("source_row")
    assert "invalid JSON" in q.loc[2, "reason"]
    assert "expected a JSON object, got list" in q.loc[3, "reason"]
    assert q.loc[5, "field"] == "body" and "expected text, got dict" in q.loc[5, "reason"]


def test_ids_already_ingested_from_another_batch_are_quarantined():
    r = parse_ticket_bytes((HEADER + _row(tid="T-1") + _row(tid="T-2")).encode(), "b2.csv")
    r2 = quarantine_ids_seen_elsewhere(r, {"T-1": "b1.csv"})
    _accounting(r2)
    assert list(r2.tickets["ticket_id"]) == ["T-2"]
    assert "already ingested from batch 'b1.csv'" in r2.quarantined.iloc[0]["reason"]


def test_unsupported_file_type_is_a_clear_error(tmp_path):
    p = tmp_path / "tickets.xlsx"
    p.write_bytes(b"x")
    with pytest.raises(TicketFileError, match="tickets.xlsx: unsupported file type"):
        parse_ticket_file(p)


def test_bundled_batches_quarantine_exactly_the_rows_the_manifest_lists():
    """The sample inbox's MANIFEST.md lists every deliberately malformed row; parsing finds exactly those."""
    from pathlib import Path

    inbox = Path(__file__).resolve().parent.parent / "orchestration_assets" / "sample_data" / "inbox"
    expected: dict[str, set[tuple[int, str]]] = {}
    for line in (inbox / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("batch-") and cells[1].isdigit():
            expected.setdefault(cells[0], set()).add((int(cells[1]), cells[3]))
    assert len(expected) == 4
    for name, rows in expected.items():
        r = parse_ticket_file(inbox / name)
        _accounting(r)
        assert set(zip(r.quarantined["source_row"], r.quarantined["field"])) == rows, name
