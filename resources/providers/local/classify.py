"""Answering a ``classify`` task locally: calibrated probabilities, then the ordered-label rules.

The trained classifier scores the whole batch at once (its side features come from
``item.fields[<feature>]``). For an ``ordered`` task, each rule that fires (a regex ``pattern``
searched case-insensitively in the item's text, or a CEL ``when`` over the item's fields, lookups
nested: ``crm.is_active``) adds its ``reason`` and raises the answer to at least ``at_least``
with confidence 1.0: a deterministic business rule, not a guess. A CEL rule that cannot be
decided for an item (e.g. it orders a null) does not fire and records ``<reason>:undecidable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from resources.expressions import Condition, ConditionError, compile_condition
from resources.providers.base import Item

from .patterns import Pattern
from .values import feature_value

if TYPE_CHECKING:  # pragma: no cover
    from resources.providers.definition import TaskDefinition

    from .classifier import TrainedClassifier


@dataclass(frozen=True)
class CompiledRule:
    reason: str
    at_least: str
    pattern: Pattern | None
    condition: Condition | None


def compile_rules(task: "TaskDefinition", conditions: Sequence[Condition | None] | None) -> list[CompiledRule]:
    """A task's label rules with their regexes and CEL programs (compiled here when not given)."""
    rules = list(getattr(task.spec, "rules", []) or [])
    given = list(conditions or [])
    out = []
    for i, rule in enumerate(rules):
        condition = given[i] if i < len(given) else None
        if rule.when is not None and condition is None:
            # a task built in code, not by a family: its names are not checked here
            condition = compile_condition(rule.when)
        pattern = Pattern(rule.pattern) if rule.pattern is not None else None
        out.append(CompiledRule(rule.reason, rule.at_least, pattern, condition if rule.when is not None else None))
    return out


def side_features(model: "TrainedClassifier", items: Sequence[Item]) -> pd.DataFrame | None:
    """The model's side feature columns from the items' fields (values as training saw them)."""
    if not model.feature_columns:
        return None
    return pd.DataFrame({c: [feature_value(it.fields.get(c)) for it in items] for c in model.feature_columns})


def _values(names: Sequence[str], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``names`` from flat fields: ``crm`` gathers the ``crm.*`` fields (a lookup's row)."""
    out: dict[str, Any] = {}
    for name in names:
        if name in fields:
            out[name] = fields[name]
        else:
            prefix = name + "."
            out[name] = {k[len(prefix):]: v for k, v in fields.items() if k.startswith(prefix)}
    return out


def _key(values: Mapping[str, Any]) -> Any:
    """A hashable key of a condition's values, or None (then the condition is evaluated uncached)."""
    try:
        # insertion order, not sorted: items built alike give equal keys; others only miss the memo
        key = tuple((n, tuple(v.items()) if isinstance(v, dict) else v) for n, v in values.items())
        hash(key)
        return key
    except TypeError:  # a list or nested map among the values
        return None


class RuleEvaluator:
    """Evaluates one batch's rules; a CEL condition is evaluated once per distinct set of values it
    reads (a pure function of them), so 10,000 records joined to 300 lookup rows cost 300 evaluations."""

    def __init__(self, rules: Sequence[CompiledRule]):
        self.rules = rules
        self._memo: dict[tuple[int, Any], bool | None] = {}

    def fired(self, item: Item) -> list[tuple[CompiledRule, bool | None]]:
        low = (item.text or "").lower()
        out = []
        for i, rule in enumerate(self.rules):
            if rule.pattern is not None:
                out.append((rule, rule.pattern.search(item.text or "", low)))
                continue
            values = _values(rule.condition.names, item.fields)  # type: ignore[union-attr]
            key = _key(values)
            if key is not None and (i, key) in self._memo:
                out.append((rule, self._memo[(i, key)]))
                continue
            try:
                result: bool | None = rule.condition(values)  # type: ignore[misc]
            except ConditionError:
                result = None
            if key is not None:
                self._memo[(i, key)] = result
            out.append((rule, result))
        return out


def classify(task: "TaskDefinition", model: "TrainedClassifier", items: Sequence[Item],
             rules: Sequence[CompiledRule] = ()) -> list[tuple[dict[str, Any], float]]:
    """(output, confidence) per item: ``label``, ``confidence``, ``probabilities``, ``reasons``."""
    proba = model.predict_proba([it.text for it in items], side_features(model, items))
    labels = list(model.labels)
    best = proba.argmax(axis=1)
    rounded = np.round(proba, 4).tolist()
    order = list(task.labels) or labels
    rank = {label: i for i, label in enumerate(order)}
    out = []
    evaluator = RuleEvaluator(rules)
    for i, item in enumerate(items):
        label = labels[best[i]]
        confidence = float(min(1.0, max(0.0, proba[i, best[i]])))
        reasons = [f"model:{label}"]
        for rule, fired in (evaluator.fired(item) if rules else ()):
            if fired is None:
                reasons.append(f"{rule.reason}:undecidable")
            elif fired:
                reasons.append(rule.reason)
                if rank.get(rule.at_least, -1) >= rank.get(label, -1):
                    label, confidence = rule.at_least, 1.0  # set (or confirmed) by a deterministic rule
        out.append(({"label": label, "confidence": confidence, "probabilities": dict(zip(labels, rounded[i])),
                     "reasons": reasons}, confidence))
    return out
