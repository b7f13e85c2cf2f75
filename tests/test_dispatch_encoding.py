"""Dispatch's one-pass encodings give exactly what the standard library gives: the same file bytes, ledger
text, payload hash, payloads and audit events as the per-record code they replace."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from orchestration_assets.core.dispatch import dispatch_audit_events
from resources.audit import record_events
from resources.outbox import Outbox, payload_of, payloads_of
from resources.outbox_channels import delivery_texts
from resources.outbox_ledger import payload_hash, read_ledger
from resources.warehouse import Warehouse

TRICKY = ['say "hi"', "back\\slash", "line\nbreak\ttab", "zero \x00 and \x1f", "naïve – 日本語 😀", "", "\u2028",
          'a",\n    "b', '", "']


def standard(payload):
    return (json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str), payload_hash(payload),
            json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, default=str))


@pytest.mark.parametrize("payload", [
    {"record_id": "R-1", "text": t, "n": 3, "x": 0.1, "ok": True, "none": None, "dispatched_at": "2026-12-01",
     "reasons": [t, 1, None, 2.5, float("nan")], "empty": [], "family": "fam"} for t in TRICKY
] + [
    {"nested": {"z": 1, "y": [True]}, "a": [1, [2]]},  # deeper than a list of scalars: the standard library
    {"pair": ("a", "b")}, {1: "int key"}, {"when": dt.date(2026, 12, 1)}, {}, {"dispatched_at": "only"},
    {"inf": float("inf"), "neg": -0.0, "big": 1e300},
])
def test_a_payload_is_encoded_once_into_the_ledger_text_hash_and_file_text_of_the_standard_library(payload):
    assert delivery_texts(payload) == standard(payload)


def test_a_frame_becomes_the_payloads_its_rows_would_give_one_at_a_time():
    frame = pd.DataFrame({
        "record_id": ["a", "b", "c"], "f": [1.5, np.nan, np.inf], "i": [1, 2, 3], "flag": [True, False, True],
        "F": pd.array([1.5, None, 2], dtype="Float64"), "I": pd.array([1, None, 2], dtype="Int64"),
        "t": pd.to_datetime(["2026-01-01T00:00:00", None, "2026-01-02T03:04:05"], utc=True),
        "s": pd.array(["x", None, "z"], dtype="string"), "o": [np.int64(4), ["l", 1], np.float64("nan")],
        "cat": pd.Categorical(["u", None, "u"]), "d64": [np.datetime64("2026-01-01T00:00"), None, "x"],
    })
    one_by_one = [payload_of("fam", row) for row in frame.to_dict(orient="records")]
    at_once = payloads_of("fam", frame)
    assert at_once == one_by_one
    assert [{k: type(v) for k, v in p.items()} for p in at_once] == [{k: type(v) for k, v in p.items()}
                                                                       for p in one_by_one]
    assert at_once[1]["F"] is None and at_once[1]["I"] is None and at_once[1]["t"] is None
    assert at_once[2]["t"] == "2026-01-02T03:04:05+00:00" and at_once[1]["delivery_id"] == "dispatch:fam:b"
    assert payloads_of("fam", frame.head(0)) == []


def test_a_chunk_writes_each_file_byte_for_byte_as_the_indented_standard_json_of_its_ledger_payload(tmp_path):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    dispatcher = Outbox(folder=str(tmp_path / "out")).dispatcher(warehouse, "fam")
    items = pd.DataFrame({"record_id": [f"R-{i}" for i in range(30)], "text": [TRICKY[i % len(TRICKY)] for i in range(30)],
                          "reasons": [["model:x", TRICKY[i % len(TRICKY)]] if i % 3 else [] for i in range(30)],
                          "confidence": [i / 7 if i % 4 else np.nan for i in range(30)], "source": "auto_send"})
    audited = []
    report = dispatcher.deliver(items, run_id="run-1", on_delivered_many=audited.extend)
    assert len(report.delivered) == 30
    folder = tmp_path / "out" / "fam"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"R-{i}.json" for i in range(30))  # no temp file left
    for _, row in read_ledger(warehouse.engine, family="fam").iterrows():
        sent = json.loads(row["payload"])
        text, digest, file_text = standard(sent)
        assert row["payload"] == text and row["payload_hash"] == digest
        assert (folder / f"{row['record_id']}.json").read_bytes() == file_text.encode("utf-8")

    # the audit events built from the deliveries equal those built from the dispatches rows
    assert record_events(warehouse, dispatch_audit_events("fam", audited)) == 30
    log = warehouse.query("SELECT record_id, decision, actor, details, natural_key FROM audit_log ORDER BY audit_id")
    assert list(log["decision"].unique()) == ["auto_send"] and list(log["actor"].unique()) == ["dispatcher"]
    assert json.loads(log["details"][0]) == {"approved_by": None, "attempts": "1", "webhook_status": None,
                                             "file": str(folder / f"{log['record_id'][0]}.json")}
    rows = pd.DataFrame(audited)
    assert record_events(warehouse, dispatch_audit_events("fam", rows)) == 0  # the same natural keys
    by_rows, by_dicts = dispatch_audit_events("fam", rows), dispatch_audit_events("fam", audited)
    assert by_rows.astype(object).where(by_rows.notna(), None).to_dict(orient="records") == \
        by_dicts.astype(object).where(by_dicts.notna(), None).to_dict(orient="records")


def test_a_dispatches_row_with_a_nullable_gap_is_audited_with_no_value_not_a_placeholder():
    rows = pd.DataFrame({"record_id": ["a", "b"], "source": ["approve", None], "delivered_at": ["t1", "t2"],
                         "webhook_status": pd.array([200, None], dtype="Int64"), "attempts": [1, 2],
                         "file_path": ["/out/a.json", None], "approved_by": ["ann", "policy"]})
    events = dispatch_audit_events("fam", rows)
    assert [d["webhook_status"] for d in events["details"]] == ["200", None]
    assert list(events["decision"]) == ["approve", "unknown"] and events["details"][1]["file"] is None
    assert [k.rsplit(":", 1)[0] for k in events["natural_key"]] == ["fam:dispatch:a:delivered", "fam:dispatch:b:delivered"]
