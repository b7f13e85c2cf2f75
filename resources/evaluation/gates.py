"""The promotion gates: a challenger's golden-set scores against the champion's, each gate with a readable reason.

A challenger becomes champion only when every gate passes:

- ``macro_f1_not_worse_than_champion``: its macro-F1 is not below the champion's by more than
  the family's ``macro_f1_tolerance``;
- ``no_class_recall_collapse``: no class recall is below ``min_class_recall`` or fell by more
  than ``max_class_recall_drop`` from the champion's;
- ``draft_rubric_at_threshold``: the drafts written with its labels score at least their
  rubric's ``min_score`` (passes when no draft task uses the label);
- ``cost_per_item_within_budget``: its cost per golden item is within ``max_cost_per_item_usd``.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, Field

GATE_NAMES = (
    "macro_f1_not_worse_than_champion",
    "no_class_recall_collapse",
    "draft_rubric_at_threshold",
    "cost_per_item_within_budget",
)
# a reason names at most this many classes: it is a sentence, not a report (details hold them all)
_MAX_LISTED = 5
GATE_DESCRIPTIONS = {
    "macro_f1_not_worse_than_champion":
        "The challenger's golden-set macro-F1 is not below the champion's by more than the tolerance.",
    "no_class_recall_collapse":
        "No class recall of the challenger falls below the floor or drops too far from the champion's.",
    "draft_rubric_at_threshold":
        "Drafts written with the challenger's labels score at least the threshold on the deterministic rubric.",
    "cost_per_item_within_budget": "The challenger's model cost per golden item is within the budget.",
}


class PromotionThresholds(BaseModel):
    """The numbers the gates compare against; a family declares them under ``promotion:``."""

    macro_f1_tolerance: float = Field(0.01, ge=0, le=1)
    max_class_recall_drop: float = Field(0.10, ge=0, le=1)
    min_class_recall: float = Field(0.30, ge=0, le=1)
    max_cost_per_item_usd: float = Field(0.01, ge=0)
    # None: each draft task's own rubric.min_score; a number overrides every draft task's
    min_rubric_score: float | None = Field(None, ge=0, le=1)

    @classmethod
    def from_spec(cls, promotion: Any, min_rubric_score: float | None = None) -> "PromotionThresholds":
        """From a family's ``PromotionSpec`` (and, optionally, one rubric threshold for every draft task)."""
        data = promotion.model_dump() if hasattr(promotion, "model_dump") else dict(promotion)
        return cls(**{k: v for k, v in data.items() if k in cls.model_fields}, min_rubric_score=min_rubric_score)


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def promotion_gates(
    challenger: Mapping[str, Any] | None, champion: Mapping[str, Any] | None, t: PromotionThresholds
) -> list[Gate]:
    """The gates for a challenger's metrics (``ModelScore.as_metrics()``) against the champion's (None: no champion)."""
    if challenger is None:
        return [Gate(n, True, "no challenger to promote; nothing to gate") for n in GATE_NAMES]
    return [_macro_f1(challenger, champion, t), _recall(challenger, champion, t), _rubric(challenger, t),
            _cost(challenger, t)]


def _macro_f1(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None, t: PromotionThresholds) -> Gate:
    name, f1 = GATE_NAMES[0], float(challenger["macro_f1"])
    if champion is None:
        return Gate(name, True, f"no champion yet; challenger macro-F1 {f1:.3f}", {"challenger": f1})
    base = float(champion["macro_f1"])
    delta = f1 - base
    ok = f1 >= base - t.macro_f1_tolerance
    reason = (
        f"challenger macro-F1 {f1:.3f} vs champion {base:.3f} "
        f"(delta {delta:+.3f}, tolerance {t.macro_f1_tolerance:.3f})"
        if ok else
        f"challenger macro-F1 {f1:.3f} is {base - f1:.3f} below the champion's {base:.3f}; "
        f"the tolerance is {t.macro_f1_tolerance:.3f}"
    )
    return Gate(name, ok, reason, {"challenger": f1, "champion": base, "delta": round(delta, 4),
                                   "tolerance": t.macro_f1_tolerance})


def _recall(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None, t: PromotionThresholds) -> Gate:
    recall = dict(challenger.get("per_class_recall") or {})
    base = dict((champion or {}).get("per_class_recall") or {})
    collapsed = []
    for label, r in sorted(recall.items()):
        if r < t.min_class_recall:
            collapsed.append(f"{label} recall {r:.2f} is below the floor {t.min_class_recall:.2f}")
        elif label in base and r < base[label] - t.max_class_recall_drop:
            collapsed.append(f"{label} recall {r:.2f} fell {base[label] - r:.2f} from the champion's {base[label]:.2f} "
                             f"(allowed drop {t.max_class_recall_drop:.2f})")
    shown = collapsed[:_MAX_LISTED]
    if len(collapsed) > _MAX_LISTED:
        shown.append(f"and {len(collapsed) - _MAX_LISTED} more classes")
    reason = "; ".join(shown) if collapsed else (
        f"every class recall >= {t.min_class_recall:.2f}"
        + (f" and within {t.max_class_recall_drop:.2f} of the champion's" if base else "")
    )
    return Gate(GATE_NAMES[1], not collapsed, reason, {"challenger_recall": recall, "champion_recall": base})


def _rubric(challenger: Mapping[str, Any], t: PromotionThresholds) -> Gate:
    name = GATE_NAMES[2]
    drafts: Mapping[str, Mapping[str, Any]] = challenger.get("drafts") or {}
    if not drafts:
        return Gate(name, True, "no draft task uses this label; no rubric to meet", {})
    parts, failed, details = [], [], {}
    for draft, d in sorted(drafts.items()):
        score = float(d.get("score") or 0.0)
        threshold = t.min_rubric_score if t.min_rubric_score is not None else float(d.get("min_score", 0.75))
        breakdown = d.get("breakdown") or {}
        details[draft] = {"score": score, "threshold": threshold, "breakdown": dict(breakdown)}
        if score >= threshold:
            parts.append(f"{draft} rubric {score:.3f} >= {threshold:.3f}")
        else:
            weakest = min(breakdown, key=breakdown.get) if breakdown else None
            failed.append(f"{draft} rubric {score:.3f} is below the threshold {threshold:.3f}"
                          + (f"; weakest criterion: {weakest} ({breakdown[weakest]:.2f})" if weakest else ""))
    lowest = min(d["score"] for d in details.values())
    return Gate(name, not failed, "; ".join(failed or parts), {"rubric_score": lowest, "drafts": details})


def _cost(challenger: Mapping[str, Any], t: PromotionThresholds) -> Gate:
    cost = float(challenger.get("cost_per_item_usd") or 0.0)
    ok = cost <= t.max_cost_per_item_usd
    reason = (f"cost per item ${cost:.6f} within the budget ${t.max_cost_per_item_usd:.6f}" if ok else
              f"cost per item ${cost:.6f} exceeds the budget ${t.max_cost_per_item_usd:.6f}")
    return Gate(GATE_NAMES[3], ok, reason, {"cost_per_item_usd": cost, "budget_usd": t.max_cost_per_item_usd})


def gates_passed(gates: Sequence[Gate | Mapping[str, Any]]) -> bool:
    return all(g.passed if isinstance(g, Gate) else bool(g["passed"]) for g in gates)


def refusal_reason(gates: Sequence[Gate | Mapping[str, Any]]) -> str:
    """The failed gates and their reasons, one sentence each (empty when every gate passed)."""
    rows = [g.as_dict() if isinstance(g, Gate) else dict(g) for g in gates]
    return "; ".join(f"{g['name']}: {g['reason']}" for g in rows if not g["passed"])
