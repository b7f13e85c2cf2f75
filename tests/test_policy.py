"""The policy: CEL rules over a record's answers decide auto_send, human review or escalation."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

from orchestration_assets.core.policy import decide, policy_version
from orchestration_assets.family import Family
from tests.workflow import DEFS


@pytest.fixture(scope="module")
def family(families) -> Family:
    return families["support_triage"]


def row(**overrides) -> dict:
    base = {
        "record_id": "R-1", "status": "enriched", "guardrail_violations": [], "channel": "email",
        "category": "billing", "category_confidence": 0.9, "priority": "medium", "priority_confidence": 0.8,
        "sentiment": "neutral", "sentiment_score": 0.0, "compliance": [], "refund_amount_usd": None,
        "account__is_vip": False, "account__tier": "pro",
    }
    return {**base, **overrides}


def decision(family: Family, **overrides) -> dict:
    return decide(family, pd.DataFrame([row(**overrides)])).iloc[0].to_dict()


def test_a_confident_ordinary_record_is_sent_automatically(family):
    d = decision(family)
    assert d["decision"] == "auto_send" and d["reasons"] == [] and d["policy_errors"] == []
    assert d["policy_version"] == policy_version(family)


@pytest.mark.parametrize("overrides, outcome, reason", [
    ({"category_confidence": 0.4}, "human_review", "LOW_CONFIDENCE"),
    ({"category": "security"}, "escalate", "SENSITIVE_CATEGORY:security"),
    ({"compliance": ["legal"]}, "escalate", "SENSITIVE_FLAG:legal"),
    ({"compliance": ["refund_request"], "refund_amount_usd": 650.0}, "human_review", "SENSITIVE_FLAG:refund_over_threshold"),
    ({"account__is_vip": True}, "human_review", "VIP_ACCOUNT"),
    ({"sentiment_score": -0.6, "priority": "urgent"}, "escalate", "NEGATIVE_HIGH_PRIORITY"),
])
def test_each_rule_adds_its_reason_and_the_most_severe_action_wins(family, overrides, outcome, reason):
    d = decision(family, **overrides)
    assert d["decision"] == outcome and reason in d["reasons"]


def test_a_refund_request_under_the_limit_or_without_an_amount_passes(family):
    assert decision(family, compliance=["refund_request"], refund_amount_usd=120.0)["decision"] == "auto_send"
    assert decision(family, compliance=["refund_request"], refund_amount_usd=None)["decision"] == "auto_send"


def test_several_rules_record_every_reason(family):
    d = decision(family, category_confidence=0.3, account__is_vip=True, compliance=["security"])
    assert d["decision"] == "escalate"
    assert set(d["reasons"]) == {"LOW_CONFIDENCE", "VIP_ACCOUNT", "SENSITIVE_FLAG:security"}


def test_a_failed_record_goes_to_review_without_evaluating_its_empty_answers(family):
    d = decision(family, status="failed", category=None, category_confidence=None)
    assert d["decision"] == "human_review" and d["reasons"] == ["ENRICHMENT_FAILED"] and d["policy_errors"] == []


def test_a_guardrail_violation_sends_the_record_to_a_human(family):
    d = decision(family, guardrail_violations=["reply:pii_in_output"])
    assert d["decision"] == "human_review" and d["reasons"] == ["GUARDRAIL:reply:pii_in_output"]


def test_an_undecidable_rule_never_lets_a_record_through(family):
    # a null confidence cannot be ordered: the rule errs, and the record goes to a human saying why
    d = decision(family, category_confidence=None)
    assert d["decision"] == "human_review"
    assert d["reasons"] == ["POLICY_ERROR:LOW_CONFIDENCE"]
    assert d["policy_errors"] and "LOW_CONFIDENCE" in d["policy_errors"][0]


def test_a_record_without_a_matching_lookup_row_reads_nulls(family):
    d = decision(family, account__is_vip=None, account__tier=None)
    assert d["decision"] == "auto_send" and d["policy_errors"] == []


def test_the_default_action_applies_when_no_rule_fires_and_rules_can_lower_it():
    doc = yaml.safe_load((DEFS / "support_triage" / "defs.yaml").read_text())
    attrs = copy.deepcopy(doc["attributes"])
    attrs["default_action"] = "human_review"
    attrs["policy"] = [{"when": "category == 'billing' && category_confidence >= 0.95", "action": "auto_send",
                        "reason": "CONFIDENT_BILLING"}]
    fam = Family.from_attributes(attrs, DEFS / "support_triage", "defs.yaml")
    assert decision(fam, category_confidence=0.9)["decision"] == "human_review"
    sure = decision(fam, category_confidence=0.97)
    assert sure["decision"] == "auto_send" and sure["reasons"] == ["CONFIDENT_BILLING"]
    # a guardrail still wins over a rule that lowers the action
    assert decision(fam, category_confidence=0.97, guardrail_violations=["reply:no_citation"])["decision"] == "human_review"
    assert policy_version(fam) != policy_version(Family.load(DEFS / "support_triage"))
