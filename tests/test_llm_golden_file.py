"""A family without a classify task evaluates its LLM configurations on the records it declares.

refund_requests has no golden labels; ``promotion.llm.golden_file`` names its labelled e-mails, whose
``expected`` objects are the refund task's fields. Without the declaration nothing can be evaluated
(the gate refuses, saying so); a declared file that is missing fails the load naming the key path.
"""

import yaml

import pytest

from orchestration_assets.family import Family, SpecError
from orchestration_assets.llm_models import _declared_golden
from resources.warehouse import Warehouse
from tests.workflow import DEFS

FAMILY = "refund_requests"


def _attributes() -> dict:
    return yaml.safe_load((DEFS / FAMILY / "defs.yaml").read_text(encoding="utf-8"))["attributes"]


def _load(attrs: dict) -> Family:
    return Family.from_attributes(attrs, DEFS / FAMILY, f"defs/{FAMILY}/defs.yaml", None)


def test_the_declared_records_are_the_golden_set_with_their_expected_fields(tmp_path):
    family = _load(_attributes())
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    items, labels, truths, golden = _declared_golden(family, family.tasks["refund"], wh, 5)
    assert [i.id for i in items] == [f"msg-lab-000{k}" for k in range(1, 6)]
    assert "ORD-597121" in items[0].text  # the record's text fields, as live traffic sends them
    assert truths[0]["order_id"] == "ORD-597121" and truths[0]["currency"] == "GBP"
    assert len(golden) == 5 and labels == [None] * 5
    # a summary has no truths: the records alone (answered, cost and latency gates)
    items, _, truths, _ = _declared_golden(family, family.tasks["summary"], wh, 3)
    assert len(items) == 3 and truths is None


def test_without_the_declaration_there_is_no_golden_set(tmp_path):
    attrs = _attributes()
    attrs.pop("promotion")
    family = _load(attrs)
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    assert _declared_golden(family, family.tasks["summary"], wh, 5) == ([], [], None, None)


def test_a_missing_golden_file_fails_the_load_naming_the_key_path():
    attrs = _attributes()
    attrs["promotion"] = {"llm": {"golden_file": "data/nowhere.jsonl"}}
    with pytest.raises(SpecError) as err:
        _load(attrs)
    assert str(err.value).splitlines() == [
        f"defs/{FAMILY}/defs.yaml: promotion.llm.golden_file: file 'data/nowhere.jsonl' not found in "
        f"orchestration_assets/defs/{FAMILY}"]
