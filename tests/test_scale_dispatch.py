"""Dispatch at scale writes what the per-item path writes: the same file text, the same ledger rows."""

import json

import pytest

from resources.outbox import Outbox, payload_hash
from resources.outbox_channels import file_json
from resources.warehouse import Warehouse
from resources.outbox_ledger import read_ledger

TRICKY = ['say "hi"', "back\\slash", "line\nbreak\ttab", "zero \x00 and \x1f", "naïve – 日本語 😀", "", "\u2028"]


@pytest.mark.parametrize("payload", [
    {"record_id": "R-1", "text": t, "n": 3, "x": 0.1, "big": 1e300, "ok": True, "none": None} for t in TRICKY
] + [
    {"b": 1, "a": [1, "two", None], "c": {"z": 1, "y": [True]}},  # nested: the standard library lays it out
    {},
    {"when": __import__("datetime").date(2026, 12, 1), "record_id": "R-2"},  # default=str
    {"nan": float("nan"), "inf": float("inf"), "neg": -0.0},
])
def test_a_delivery_file_is_laid_out_exactly_as_the_indented_standard_json(payload):
    expected = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, default=str)
    assert file_json(payload) == expected


def test_each_record_of_a_chunk_keeps_its_own_payload_in_its_file_and_its_ledger_row(tmp_path):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")
    dispatcher = Outbox(folder=str(tmp_path / "out")).dispatcher(warehouse, "fam")
    items = [{"record_id": f"R-{i}", "text": f"reply {i} " + TRICKY[i % len(TRICKY)], "source": "auto_send"}
             for i in range(40)]
    report = dispatcher.deliver(items, run_id="run-1")
    assert sorted(report.delivered) == sorted(i["record_id"] for i in items)
    ledger = read_ledger(warehouse.engine, family="fam").set_index("record_id")
    for item in items:
        path = tmp_path / "out" / "fam" / f"{item['record_id']}.json"
        sent = json.loads(path.read_text(encoding="utf-8"))
        assert sent["text"] == item["text"] and sent["record_id"] == item["record_id"]
        row = ledger.loc[item["record_id"]]
        assert row["status"] == "delivered"
        assert json.loads(row["payload"]) == sent  # the ledger keeps what the file says
        assert row["payload_hash"] == payload_hash(sent)
    again = dispatcher.deliver(items, run_id="run-2")
    assert again.delivered == [] and again.already_delivered == len(items)
