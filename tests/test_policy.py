"""Routing policy: one test per reason code, and readable errors for invalid policy files."""

from __future__ import annotations

import pandas as pd
import pytest

from resources.policy import DEFAULT_POLICY_PATH, PolicyError, RoutingPolicy, route

POLICY = RoutingPolicy.from_file(DEFAULT_POLICY_PATH)


def _ticket(**over):
    base = dict(
        ticket_id="T-1", status="enriched", category="shipping", category_confidence=0.93, priority="medium",
        sentiment_score=0.1, is_vip=False, guardrail_violations=[], legal_flag=False, security_flag=False,
        data_deletion_flag=False, refund_over_threshold=False, prompt_injection_flag=False,
    )
    base.update(over)
    return base


def _decide(**over):
    out = route(pd.DataFrame([_ticket(**over)]), POLICY).iloc[0]
    return out["decision"], out["reasons"]


def test_clean_confident_ticket_is_auto_sent_with_no_reason():
    assert _decide() == ("auto_send", [])


def test_low_confidence_goes_to_review():
    assert _decide(category_confidence=0.31) == ("human_review", ["LOW_CONFIDENCE"])


def test_sensitive_category_escalates_or_reviews_as_configured():
    assert _decide(category="security") == ("escalate", ["SENSITIVE_CATEGORY:security"])
    assert _decide(category="privacy") == ("human_review", ["SENSITIVE_CATEGORY:privacy"])


@pytest.mark.parametrize(
    "flag,decision",
    [("legal_flag", "escalate"), ("security_flag", "escalate"), ("data_deletion_flag", "human_review"),
     ("refund_over_threshold", "human_review"), ("prompt_injection_flag", "human_review")],
)
def test_compliance_flags(flag, decision):
    assert _decide(**{flag: True}) == (decision, [f"SENSITIVE_FLAG:{flag}"])


def test_vip_account_is_never_auto_sent():
    assert _decide(is_vip=True) == ("human_review", ["VIP_ACCOUNT"])


def test_negative_sentiment_on_high_priority_escalates_but_not_on_low():
    assert _decide(sentiment_score=-0.8, priority="urgent") == ("escalate", ["NEGATIVE_HIGH_PRIORITY"])
    assert _decide(sentiment_score=-0.8, priority="low") == ("auto_send", [])


def test_draft_guardrail_failure_goes_to_review():
    assert _decide(guardrail_violations=["pii_in_draft"]) == ("human_review", ["DRAFT_GUARDRAIL:pii_in_draft"])


def test_failed_enrichment_goes_to_review_with_reason():
    assert _decide(status="failed") == ("human_review", ["ENRICHMENT_FAILED"])


def test_most_severe_action_wins_and_every_reason_is_kept():
    decision, reasons = _decide(is_vip=True, category_confidence=0.2, legal_flag=True)
    assert decision == "escalate"
    assert reasons == ["LOW_CONFIDENCE", "SENSITIVE_FLAG:legal_flag", "VIP_ACCOUNT"]


def test_policy_hash_is_recorded_and_changes_with_the_policy(tmp_path):
    out = route(pd.DataFrame([_ticket()]), POLICY)
    assert out["policy_hash"].iloc[0] == POLICY.policy_hash and len(POLICY.policy_hash) == 16
    changed = tmp_path / "p.yaml"
    changed.write_text(DEFAULT_POLICY_PATH.read_text().replace("confidence_threshold: 0.55", "confidence_threshold: 0.7"))
    assert RoutingPolicy.from_file(changed).policy_hash != POLICY.policy_hash


def test_invalid_policy_names_file_key_and_reason(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "version: 1\nconfidence_threshold: 1.4\nsensitive_categories:\n  biling: escalate\n"
        "flag_actions:\n  legal_flag: shout\nvip_actoin: escalate\n"
    )
    with pytest.raises(PolicyError) as err:
        RoutingPolicy.from_file(bad)
    msg = str(err.value)
    assert f"{bad}: key 'confidence_threshold': Input should be less than or equal to 1" in msg
    assert "key 'sensitive_categories': unknown category ['biling']" in msg
    assert "key 'flag_actions.legal_flag': Input should be 'auto_send', 'human_review' or 'escalate'" in msg
    assert "key 'vip_actoin': unknown key (typo?)" in msg


def test_unparseable_yaml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nconfidence_threshold: [0.5\n")
    with pytest.raises(PolicyError, match=r"policy.yaml: not valid YAML at line \d+, column \d+"):
        RoutingPolicy.from_file(bad)
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        RoutingPolicy.from_file(tmp_path / "nope.yaml")
