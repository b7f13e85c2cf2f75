"""Promotion gates: blocking checks on ``model_evaluation``.

Each gate is its own check so the UI says which one stopped a promotion, and why, in the check's
metadata (e.g. "challenger macro-F1 0.139 is 0.724 below the champion's 0.863; the tolerance is
0.010"). The checks are blocking: when one fails, ``champion_model`` does not run in that run and
the champion stays in place. ``champion_model`` evaluates the same gates itself before it moves
the alias, so materializing it on its own cannot bypass them.
"""


import dagster as dg
import pandas as pd

from orchestration_assets.models import model_evaluation, scores_from_frame
from resources.evaluation import GATE_NAMES, Gate, promotion_gates
from resources.registry import ModelRegistryResource

_DESCRIPTIONS = {
    "macro_f1_not_worse_than_champion": "The challenger's golden-set macro-F1 is not below the champion's by more than the tolerance.",
    "no_class_recall_collapse": "No class recall of the challenger falls below the floor or drops too far from the champion's.",
    "draft_rubric_at_threshold": "The challenger's drafts score at least the threshold on the deterministic rubric.",
    "cost_per_ticket_within_budget": "The challenger's model cost per golden ticket is within the budget.",
}


def _metadata(gate: Gate, frame: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {"reason": dg.MetadataValue.text(gate.reason)}
    for key, value in gate.details.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            meta[key] = dg.MetadataValue.float(float(value))
        elif isinstance(value, dict):
            meta[key] = dg.MetadataValue.json(value)
    if len(frame):
        first = frame.iloc[0]
        meta["evaluation_id"] = dg.MetadataValue.text(str(first.get("evaluation_id")))
        for role in ("challenger", "champion"):
            rows = frame[frame["role"] == role]
            meta[f"{role}_version"] = dg.MetadataValue.text(str(rows["version"].iloc[0]) if len(rows) else "none")
    return meta


def _gate_check(gate_name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        name=gate_name,
        asset=model_evaluation,
        blocking=True,
        description=_DESCRIPTIONS[gate_name],
    )
    def _check(model_evaluation: pd.DataFrame, registry: ModelRegistryResource) -> dg.AssetCheckResult:
        challenger, champion = scores_from_frame(model_evaluation)
        gate = next(g for g in promotion_gates(challenger, champion, registry.thresholds()) if g.name == gate_name)
        return dg.AssetCheckResult(
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=gate.reason,
            metadata=_metadata(gate, model_evaluation),
        )

    return _check


promotion_checks = [_gate_check(name) for name in GATE_NAMES]
