"""Golden-set evaluation of model versions and the promotion gates. Plain Python, no Dagster.

- :mod:`.metrics`: accuracy, macro-F1 and per-class recall of a classify task;
- :mod:`.rubric`: the deterministic draft rubric, read from each draft task's spec;
- :mod:`.scores`: :class:`ModelScore`, one version's score on the golden set;
- :mod:`.gates`: :class:`PromotionThresholds` (from a family's ``promotion:``) and the gates.

An LLM judge of drafts is not part of this package: it will call a model through the router.
"""

from .gates import (
    GATE_DESCRIPTIONS,
    GATE_NAMES,
    Gate,
    PromotionThresholds,
    gates_passed,
    promotion_gates,
    refusal_reason,
)
from .metrics import classification_metrics
from .rubric import RUBRIC_CRITERIA, draft_checks, rubric_score
from .scores import DraftSource, ModelScore, golden_items, score_candidate

__all__ = [
    "GATE_DESCRIPTIONS", "GATE_NAMES", "RUBRIC_CRITERIA", "DraftSource", "Gate", "ModelScore",
    "PromotionThresholds", "classification_metrics", "draft_checks", "gates_passed", "golden_items",
    "promotion_gates", "refusal_reason", "rubric_score", "score_candidate",
]
