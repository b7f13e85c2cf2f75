"""Ingestion validates a batch a column at a time and the timestamp data check is one regex: what a user
sees stays the same (reasons in field order, the input hash the router cache and audit log key on, the
timestamp check failing on text that is not a timestamp)."""

import json

import pandas as pd
import pytest

from checks.data_quality import record_checks
from checks.expectations import run_data_checks
from orchestration_assets.core.records import parse_bytes
from resources.providers.base import content_hash

HEADER = "ticket_id,account_id,customer_email,created_at,channel,priority,category,subject,body\n"


@pytest.fixture(scope="module")
def spec(families):
    return families["support_triage"].record


def _row(tid, email="jane@example.com", channel="email", subject="Invoice wrong", body="My invoice is wrong."):
    return f'{tid},ACC-0001,{email},2026-11-23T09:15:00+00:00,{channel},high,billing,{subject},"{body}"\n'


def test_every_problem_of_a_row_is_named_in_field_order_and_good_rows_stay(spec):
    rows = [_row(f"T-{i}") for i in range(40)]
    rows[7] = _row("T-7", email="not-an-address", channel="fax", subject="x" * 301, body="Hi")
    rows[20] = _row("T-20", body="Bad \x07 bell")
    result = parse_bytes((HEADER + "".join(rows)).encode(), "b.csv", spec)
    assert len(result.records) == 38 and result.rows_in == 40
    q = result.quarantined.set_index("source_row")
    assert list(q.index) == [8, 21]
    assert q.loc[8, "field"] == "customer_email,channel,subject,body"
    assert q.loc[8, "reason"] == ("customer_email: 'not-an-address' is not an e-mail address; "
                                  "channel: 'fax' is not one of email, chat, phone, web, social; "
                                  "subject: subject has 301 characters; at most 300 allowed; "
                                  "body: body has 2 characters; at least 5 required")
    assert q.loc[21, "reason"] == "body: contains the control character U+0007 at position 5; remove it"
    assert result.records["channel"].tolist() == ["email"] * 38


def test_input_hash_is_the_content_hash_of_id_and_text_for_any_text(spec):
    bodies = ['Quote "this" and \\ back', "Ünïcødé ✓ 😀 text", "tab\tand\nnewline here", "plain words only"]
    lines = [json.dumps({"ticket_id": f"T-{i}", "account_id": "A-1", "created_at": "2026-11-23T09:15:00Z",
                         "channel": "Chat", "subject": s, "body": b}, ensure_ascii=i % 2 == 0)
             for i, (s, b) in enumerate(zip(["Hi", "Säme", "x\u2028y", "s"], bodies))]
    records = parse_bytes("\n".join(lines).encode(), "b.jsonl", spec).records
    assert len(records) == 4
    for r in records.to_dict(orient="records"):
        assert r["input_hash"] == content_hash(r["ticket_id"], r["subject"] or "", r["body"] or "")
    assert records.loc[0, "input_hash"] == content_hash("T-0", "Hi", 'Quote "this" and \\ back')


def test_the_timestamp_check_passes_parsed_times_and_fails_text_that_is_no_timestamp(families):
    check = next(c for c in record_checks(families["support_triage"]) if c.name == "created_at_parseable")
    parsed = pd.DataFrame({"record_id": ["a", "b", "c"], "source_row": [1, 2, 3],
                           "created_at": pd.to_datetime(["2026-11-23T09:15:00.123456+00:00", None,
                                                         "2026-11-23T10:00:00Z"], utc=True, format="ISO8601")})
    assert run_data_checks(parsed, [check], id_columns=("record_id",))[check.name].success
    text = parsed.assign(created_at=["2026-11-23 09:15:00+00:00", "yesterday", "2026-13-45"])
    summary = run_data_checks(text, [check], id_columns=("record_id",))[check.name]
    assert not summary.success and summary.unexpected_count == 2
    assert summary.sample_unexpected == ["yesterday", "2026-13-45"]
    assert sorted(r["record_id"] for o in summary.failed for r in o.sample_rows) == ["b", "c"]
