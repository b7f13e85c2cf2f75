"""The family's policy applied to enriched records: one decision per record, with reason codes. No Dagster.

Rules are CEL conditions compiled at load (:mod:`orchestration_assets.family`). The decision is
the most severe action any rule asks for (``auto_send`` < ``human_review`` < ``escalate``), else
the family's ``default_action``; every rule that fires adds its reason code. Built in, for every
family: a record whose enrichment failed gets ``ENRICHMENT_FAILED`` (``guardrails.failure_action``)
and the user rules are not evaluated on its empty answers; a generated text that broke a
guardrail gets ``GUARDRAIL:<task>:<violation>`` (``guardrails.output_action``). A rule that cannot
be evaluated on a record (e.g. ordering a null) gets ``POLICY_ERROR:<reason>`` and at least
human review: an undecidable rule never lets a record through unseen.
"""

from __future__ import annotations

from typing import Any, Hashable

import pandas as pd

from resources.expressions import ConditionError, evaluate_converted, to_cel
from resources.providers.base import content_hash

from ..family import Family, PolicyRuleProgram
from ..spec import SEVERITY
from .lookups import row_values

DECISION_COLUMNS = ["record_id", "decision", "reasons", "policy_version", "policy_errors"]


def policy_version(family: Family) -> str:
    """A hash of everything that decides: rules, default action and guardrail actions."""
    spec = family.spec
    return content_hash([r.model_dump() for r in spec.policy], spec.default_action,
                        spec.guardrails.output_action, spec.guardrails.failure_action)


def values_of(family: Family, row: dict[str, Any]) -> dict[str, Any]:
    """The names a condition reads, from one enriched row."""
    values = {name: row.get(name) for name in family.spec.record.fields}
    aliases = {lk.alias(n): lk for n, lk in family.spec.context.items() if lk.join_on is not None}
    values.update(row_values(row, aliases))
    for task in family.tasks.values():
        values.update(task.cel_values(row))
    return values


def input_columns(family: Family) -> list[str]:
    """The enriched columns :func:`decide` reads: those behind a name some rule reads, status and violations."""
    read = {name for rule in family.policy for name in rule.condition.names}
    cols = ["record_id", "status", "guardrail_violations", *(f for f in family.spec.record.fields if f in read)]
    for n, lk in family.spec.context.items():
        if lk.join_on is not None and lk.alias(n) in read:
            cols += [f"{lk.alias(n)}__{c}" for c in lk.columns]
    for task in family.tasks.values():
        if read & set(task.value_names()):
            cols += list(task.answer_columns())
    return list(dict.fromkeys(cols))


def decide(family: Family, enriched: pd.DataFrame) -> pd.DataFrame:
    """One decision per enriched record: record_id, decision, reasons, policy_version, policy_errors.

    Each rule runs once per distinct combination of the values it reads: most rules read a label,
    a lookup or the flags, which a batch repeats, so only the rules that read a score run for most
    records. Each record's values are converted for CEL once, not once per rule.
    """
    version = policy_version(family)
    guard = family.spec.guardrails
    read = sorted({name for rule in family.policy for name in rule.condition.names})
    cols = [c for c in input_columns(family) if c in enriched.columns]
    outcomes: list[dict[tuple, tuple[bool, str | None]]] = [{} for _ in family.policy]
    out = []
    for row in enriched[cols].to_dict(orient="records"):
        fired: list[tuple[str, str]] = []
        errors: list[str] = []
        if row.get("status") != "enriched":
            fired.append(("ENRICHMENT_FAILED", guard.failure_action))
        else:
            for violation in row.get("guardrail_violations") or []:
                fired.append((f"GUARDRAIL:{violation}", guard.output_action))
            values = values_of(family, row)
            cel = {name: to_cel(values.get(name)) for name in read}
            for rule, seen in zip(family.policy, outcomes):
                names = rule.condition.names
                key = tuple(_key(cel[n]) for n in names)
                outcome = seen.get(key)
                if outcome is None:
                    outcome = seen[key] = evaluate_rule(rule, {n: cel[n] for n in names})
                fires, error = outcome
                if error is not None:
                    errors.append(error)
                    fired.append((f"POLICY_ERROR:{rule.reason}", max(rule.action, "human_review", key=SEVERITY.get)))
                elif fires:
                    fired.append((rule.reason, rule.action))
        decision = max((a for _, a in fired), key=SEVERITY.__getitem__, default=family.spec.default_action)
        out.append({
            "record_id": row["record_id"],
            "decision": decision,
            "reasons": list(dict.fromkeys(code for code, _ in fired)),
            "policy_version": version,
            "policy_errors": list(errors),
        })
    return pd.DataFrame(out, columns=DECISION_COLUMNS)


def evaluate_rule(rule: PolicyRuleProgram, activation: dict[str, Any]) -> tuple[bool, str | None]:
    """(fires, error) of one rule on values already converted for CEL; error names the rule when it cannot be evaluated."""
    try:
        return evaluate_converted(rule.condition, activation), None
    except ConditionError as exc:
        return False, f"policy[{rule.index}] ({rule.reason}): {exc}"


def _key(value: Any) -> Hashable:
    """:func:`frozen` of a value :func:`to_cel` already converted; scalars, the common case, directly."""
    kind = type(value)
    if kind is str or kind is float or kind is int or kind is bool or value is None:
        return (kind.__name__, value)
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, _key(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", tuple(_key(v) for v in value))
    return (kind.__name__, value)


def frozen(value: Any) -> Hashable:
    """A hashable key for a value as CEL sees it; the type is part of it, so ``1``, ``1.0`` and ``true`` differ."""
    return _key(to_cel(value))
