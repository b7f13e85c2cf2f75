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

from typing import Any, Callable, Hashable

import numpy as np
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


def input_columns(family: Family) -> list[str]:
    """The enriched columns :func:`decide` reads: those behind a name some rule reads, status and violations."""
    read = {name for rule in family.policy for name in rule.condition.names}
    cols = ["record_id", "status", "guardrail_violations"]
    cols += [c for name, (columns, _) in _sources(family).items() if name in read for c in columns]
    return list(dict.fromkeys(cols))


def decide(family: Family, enriched: pd.DataFrame) -> pd.DataFrame:
    """One decision per enriched record: record_id, decision, reasons, policy_version, policy_errors.

    Each rule runs once per distinct combination of the values it reads: most rules read a label,
    a lookup or the flags, which a batch repeats, so only the rules that read a score run for most
    records. The combinations are found column by column (codes of each column the rule reads), and
    a row's values are built for CEL only for one row of each combination.
    """
    version = policy_version(family)
    guard = family.spec.guardrails
    n = len(enriched)
    status = enriched["status"].tolist() if "status" in enriched else [None] * n
    violations = enriched["guardrail_violations"].tolist() if "guardrail_violations" in enriched else [None] * n
    ok = np.fromiter((s == "enriched" for s in status), dtype=bool, count=n)
    rows = np.flatnonzero(ok)
    sources = _sources(family)
    columns = {c: enriched[c] for c in input_columns(family) if c in enriched.columns}
    cells: dict[str, list[Any]] = {}  # the enriched rows' values of each column a rule reads
    codes: dict[str, np.ndarray] = {}
    # per rule and per enriched row: the index of its outcome in outcomes[rule] (fires, error)
    outcome_of: list[np.ndarray] = []
    outcomes: list[list[tuple[bool, str | None]]] = []
    for rule in family.policy:
        names = rule.condition.names
        used = [c for c in dict.fromkeys(c for name in names for c in sources.get(name, ([], None))[0]) if c in columns]
        for c in used:
            if c not in codes:
                part = columns[c].iloc[rows]
                cells[c] = part.tolist()
                codes[c] = _codes(part, cells[c])
        group, first = _combinations([codes[c] for c in used], len(rows))
        seen: dict[tuple, int] = {}
        results: list[tuple[bool, str | None]] = []
        index = np.empty(len(first), dtype=np.int64)
        for g, i in enumerate(first):
            row = {c: cells[c][i] for c in used}
            cel = {name: to_cel(_value(sources, name, row)) for name in names}
            key = tuple(_key(cel[name]) for name in names)
            if key not in seen:
                seen[key] = len(results)
                results.append(evaluate_rule(rule, cel))
            index[g] = seen[key]
        outcome_of.append(index[group] if len(first) else np.zeros(0, dtype=np.int64))
        outcomes.append(results)

    failed = [("ENRICHMENT_FAILED", guard.failure_action)]
    patterns = list(zip(*(o.tolist() for o in outcome_of))) if outcome_of else [()] * len(rows)
    memo: dict[tuple, tuple[str, list[str], list[str]]] = {}
    decided: list[tuple[str, list[str], list[str]] | None] = [None] * n
    for i, pattern in zip(rows.tolist(), patterns):
        raised = tuple(violations[i] or [])
        key = (raised, pattern)
        if key not in memo:
            memo[key] = _decision(family, rules=list(zip(family.policy, pattern, outcomes)), raised=raised)
        decided[i] = memo[key]
    if not n:
        return pd.DataFrame([], columns=DECISION_COLUMNS)
    failure = _outcome(family, failed, [])
    decision, reasons, errors = zip(*[d if d is not None else failure for d in decided])
    return pd.DataFrame({
        "record_id": enriched["record_id"].tolist(),
        "decision": list(decision),
        "reasons": [list(r) for r in reasons],  # each row its own list: a caller may change one
        "policy_version": [version] * n,
        "policy_errors": [list(e) for e in errors],
    }, columns=DECISION_COLUMNS)


def _decision(family: Family, rules: list, raised: tuple) -> tuple[str, list[str], list[str]]:
    """What an enriched row gets from its guardrail violations and the outcome of each rule."""
    guard = family.spec.guardrails
    fired = [(f"GUARDRAIL:{violation}", guard.output_action) for violation in raised]
    errors: list[str] = []
    for rule, index, results in rules:
        fires, error = results[index]
        if error is not None:
            errors.append(error)
            fired.append((f"POLICY_ERROR:{rule.reason}", max(rule.action, "human_review", key=SEVERITY.get)))
        elif fires:
            fired.append((rule.reason, rule.action))
    return _outcome(family, fired, errors)


def _outcome(family: Family, fired: list[tuple[str, str]], errors: list[str]) -> tuple[str, list[str], list[str]]:
    decision = max((a for _, a in fired), key=SEVERITY.__getitem__, default=family.spec.default_action)
    return decision, list(dict.fromkeys(code for code, _ in fired)), errors


def _sources(family: Family) -> dict[str, tuple[list[str], Callable[[dict], Any]]]:
    """Each name a condition may read -> (the enriched columns it is built from, how it is built from them):
    a record field, else a lookup's alias (its joined columns as a map), else a task's value; a later source
    wins a name two share."""
    out: dict[str, tuple[list[str], Callable[[dict], Any]]] = {}
    for name in family.spec.record.fields:
        out[name] = ([name], lambda row, name=name: row.get(name))
    for n, lk in family.spec.context.items():
        if lk.join_on is not None:
            alias = lk.alias(n)
            out[alias] = ([f"{alias}__{c}" for c in lk.columns], lambda row, a=alias, lk=lk: row_values(row, {a: lk})[a])
    for task in family.tasks.values():
        # the columns a task's values read are those its own cel_values asks the row for
        asked = _Asked()
        for name in task.cel_values(asked):
            out[name] = (list(asked.keys_asked), lambda row, task=task, name=name: task.cel_values(row)[name])
    return out


def _value(sources: dict, name: str, row: dict) -> Any:
    source = sources.get(name)
    return None if source is None else source[1](row)


class _Asked(dict):
    """An empty row that remembers which columns were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_asked: list[str] = []

    def get(self, key, default=None):  # noqa: D401 - the Mapping.get a row reader calls
        self.keys_asked.append(key)
        return default


def _codes(column: pd.Series, values: list[Any]) -> np.ndarray:
    """One integer per value (``values``: the column's); equal values, as CEL sees them, get equal codes."""
    if column.dtype != object:
        return pd.factorize(column, use_na_sentinel=True)[0]
    seen: dict[Hashable, int] = {}
    return np.fromiter((seen.setdefault(_cell_key(v), len(seen)) for v in values), dtype=np.int64, count=len(values))


def _cell_key(value: Any) -> Hashable:
    """:func:`frozen`, with the scalars of an object column (most of its cells) keyed without converting them."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return (kind.__name__, value)
    if kind is float:
        return ("NoneType", None) if value != value else ("float", value)
    return _key(to_cel(value))


def _combinations(codes: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, first row of each group) for the combinations of these columns' codes."""
    if not codes:
        return np.zeros(n, dtype=np.int64), np.zeros(1 if n else 0, dtype=np.int64)
    combined = np.zeros(n, dtype=np.int64)
    for c in codes:
        combined = pd.factorize(combined * (int(c.max(initial=0)) + 2) + (c + 1))[0]
    _, first, group = np.unique(combined, return_index=True, return_inverse=True)
    return group.reshape(-1), first


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
