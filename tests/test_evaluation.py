"""The evaluation package: classification metrics, the deterministic draft rubric and the promotion gates."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration_assets.spec import PromotionSpec
from resources.evaluation import (
    GATE_NAMES,
    PromotionThresholds,
    classification_metrics,
    draft_checks,
    promotion_gates,
    refusal_reason,
    rubric_score,
)
from tests.test_promotion_logic import DOCS, THRESHOLDS, classify_task, draft_task

# ---- metrics ----------------------------------------------------------------------------------


def test_metrics_count_a_missing_prediction_as_wrong():
    m = classification_metrics(["a", "a", "b", "b"], ["a", None, "b", "a"])
    assert m["accuracy"] == 0.5
    assert m["per_class_recall"] == {"a": 0.5, "b": 0.5}
    assert m["macro_f1"] == pytest.approx(0.5833, abs=1e-4)  # a: P 1/2 R 1/2; b: P 1 R 1/2
    assert classification_metrics([], [])["accuracy"] == 0.0
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        classification_metrics(["a", "b", "c"], ["a", "b"])


def test_macro_f1_is_over_the_classes_present_only():
    m = classification_metrics(["a", "a"], ["a", "zzz"])
    assert set(m["per_class_recall"]) == {"a"} and m["macro_f1"] == pytest.approx(0.6667, abs=1e-4)


# ---- the draft rubric ---------------------------------------------------------------------------


def test_rubric_criteria_apply_from_the_draft_spec():
    cited = draft_checks(draft_task(), "Your invoice was corrected; see the article kb-1.", ["kb-1"], DOCS, "billing")
    assert cited == {"cites_document": True, "no_pii": True, "addresses_label": True, "length_ok": True}

    wrong = draft_checks(draft_task(), "Write to ana@example.com about it, please.", ["kb-9"], DOCS, "refund")
    assert wrong == {"cites_document": False, "no_pii": False, "addresses_label": False, "length_ok": True}

    # no retrieval: no citation is required; no terms for the label: the label criterion is left out
    loose = draft_checks(draft_task(retrieval=False, terms={}), "Short", [], [], "billing")
    assert loose == {"no_pii": True, "length_ok": False}
    assert draft_checks(draft_task(), None, [], DOCS, "billing") == {
        "cites_document": False, "no_pii": False, "addresses_label": False, "length_ok": False}
    with pytest.raises(TypeError, match="draft tasks"):
        draft_checks(classify_task(), "x", [], [], "billing")


def test_rubric_score_does_not_count_criteria_that_do_not_apply():
    score, breakdown = rubric_score([{"no_pii": True, "length_ok": False},
                                     {"no_pii": True, "length_ok": True, "addresses_label": True}])
    assert score == pytest.approx((0.5 + 1.0) / 2)
    assert breakdown == {"no_pii": 1.0, "addresses_label": 1.0, "length_ok": 0.5}
    assert rubric_score([]) == (0.0, {})


# ---- the gates --------------------------------------------------------------------------------


def _metrics(f1: float, recall: dict, cost: float = 0.0, drafts: dict | None = None) -> dict[str, Any]:
    return {"macro_f1": f1, "per_class_recall": recall, "cost_per_item_usd": cost, "drafts": drafts or {}}


def test_thresholds_come_from_the_family_promotion_spec():
    t = PromotionThresholds.from_spec(PromotionSpec(macro_f1_tolerance=0.05, max_cost_per_item_usd=0.002), 0.9)
    assert (t.macro_f1_tolerance, t.max_cost_per_item_usd, t.min_rubric_score, t.min_class_recall) == (
        0.05, 0.002, 0.9, 0.30)
    assert PromotionThresholds.from_spec(PromotionSpec()).min_rubric_score is None


def test_a_worse_challenger_fails_with_readable_reasons():
    champion = _metrics(0.863, {"billing": 0.9, "refund": 0.85})
    challenger = _metrics(0.412, {"billing": 0.95, "refund": 0.2}, cost=0.02)
    gates = {g.name: g for g in promotion_gates(challenger, champion, THRESHOLDS)}
    assert list(gates) == list(GATE_NAMES)
    assert not gates["macro_f1_not_worse_than_champion"].passed
    assert gates["macro_f1_not_worse_than_champion"].reason == (
        "challenger macro-F1 0.412 is 0.451 below the champion's 0.863; the tolerance is 0.010")
    assert not gates["no_class_recall_collapse"].passed
    assert gates["no_class_recall_collapse"].reason == "refund recall 0.20 is below the floor 0.30"
    assert gates["draft_rubric_at_threshold"].passed
    assert gates["draft_rubric_at_threshold"].reason.startswith("no draft task uses this label")
    assert not gates["cost_per_item_within_budget"].passed
    assert gates["cost_per_item_within_budget"].reason == "cost per item $0.020000 exceeds the budget $0.010000"
    assert refusal_reason(list(gates.values())).startswith("macro_f1_not_worse_than_champion: challenger macro-F1")


def test_recall_drop_and_rubric_gates():
    champion = _metrics(0.8, {"billing": 0.9, "refund": 0.9})
    drafts = {"reply": {"score": 0.6, "min_score": 0.75, "breakdown": {"no_pii": 1.0, "cites_document": 0.2}}}
    gates = {g.name: g for g in promotion_gates(_metrics(0.8, {"billing": 0.9, "refund": 0.7}, drafts=drafts),
                                                 champion, THRESHOLDS)}
    assert gates["macro_f1_not_worse_than_champion"].passed
    assert gates["no_class_recall_collapse"].reason == (
        "refund recall 0.70 fell 0.20 from the champion's 0.90 (allowed drop 0.10)")
    assert gates["draft_rubric_at_threshold"].reason == (
        "reply rubric 0.600 is below the threshold 0.750; weakest criterion: cites_document (0.20)")
    lenient = PromotionThresholds.from_spec(PromotionSpec(), min_rubric_score=0.5)
    rubric = next(g for g in promotion_gates(_metrics(0.8, {}, drafts=drafts), None, lenient)
                  if g.name == "draft_rubric_at_threshold")
    assert rubric.passed and rubric.reason == "reply rubric 0.600 >= 0.500"


def test_gates_without_champion_or_challenger():
    first = promotion_gates(_metrics(0.7, {"billing": 0.8}), None, THRESHOLDS)
    assert all(g.passed for g in first) and first[0].reason == "no champion yet; challenger macro-F1 0.700"
    nothing = promotion_gates(None, _metrics(0.7, {}), THRESHOLDS)
    assert all(g.passed and "no challenger" in g.reason for g in nothing)


def test_a_recall_reason_names_a_few_classes_and_counts_the_rest():
    recall = {f"label_{i}": 0.1 for i in range(8)}
    gate = next(g for g in promotion_gates(_metrics(0.1, recall), None, THRESHOLDS) if g.name == "no_class_recall_collapse")
    assert not gate.passed and gate.reason.endswith("; and 3 more classes")
    assert gate.reason.count("below the floor") == 5 and len(gate.details["challenger_recall"]) == 8
