"""Promotion gates: blocking checks on each classify task's ``<task>_evaluation``.

Each gate is its own check so the UI says which one stopped a promotion, and why, in the check's
description ("challenger macro-F1 0.412 is 0.451 below the champion's 0.863; the tolerance is
0.010"). When one fails, ``<task>_champion`` does not run in that run and the champion stays;
``<task>_champion`` evaluates the same gates itself before it moves the alias, so materializing it
alone cannot bypass them.
"""

import dagster as dg
import pandas as pd

from orchestration_assets.family import Family
from orchestration_assets.models import thresholds
from resources.providers.definition import TaskDefinition
from resources.registry.resource import ModelRegistryResource

from resources.evaluation.gates import GATE_DESCRIPTIONS, GATE_NAMES, promotion_gates


def _metadata(gate, frame: pd.DataFrame) -> dict:
    meta: dict = {"reason": dg.MetadataValue.text(gate.reason)}
    for key, value in gate.details.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            meta[key] = dg.MetadataValue.float(float(value))
        elif isinstance(value, dict):
            meta[key] = dg.MetadataValue.json(value)
    if len(frame):
        meta["evaluation_id"] = dg.MetadataValue.text(str(frame["evaluation_id"].iloc[-1]))
        for role in ("challenger", "champion"):
            rows = frame[frame["role"] == role]
            meta[f"{role}_version"] = dg.MetadataValue.text(str(rows["version"].iloc[-1]) if len(rows) else "none")
    return meta


def _gate_check(family: Family, task: TaskDefinition, gate_name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(name=gate_name, asset=dg.AssetKey(family.key(f"{task.name}_evaluation")), blocking=True,
                    description=GATE_DESCRIPTIONS[gate_name])
    def _check(registry: ModelRegistryResource) -> dg.AssetCheckResult:
        reg = registry.get()
        record = reg.latest_evaluation(family.name, task.name)
        frame = pd.DataFrame()
        if record is None:
            gate = next(g for g in promotion_gates(None, None, thresholds(family, task)) if g.name == gate_name)
        else:
            metrics = record.metrics
            gate = next(g for g in promotion_gates(metrics.get(record.challenger_version or ""),
                                                   metrics.get(record.champion_version or ""),
                                                   thresholds(family, task)) if g.name == gate_name)
            frame = pd.DataFrame([{"evaluation_id": record.evaluation_id, "role": role, "version": v}
                                  for role, v in (("challenger", record.challenger_version),
                                                  ("champion", record.champion_version)) if v])
        return dg.AssetCheckResult(passed=gate.passed, severity=dg.AssetCheckSeverity.ERROR, description=gate.reason,
                                   metadata=_metadata(gate, frame))

    return _check


def promotion_checks(family: Family) -> list[dg.AssetChecksDefinition]:
    return [_gate_check(family, t, g) for t in family.tasks_of("classify") for g in GATE_NAMES]
