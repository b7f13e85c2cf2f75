"""The lifecycle of a routed task's LLM configuration: score through the router -> gate -> pick -> promote.

Plain functions, no Dagster. Every candidate is scored on the same golden items through a router
session forced to that configuration (cache, spend ledger, family budget, retries all apply: the
caller gives the session a run id of its own), so what the gates see is what live traffic would
do. The baseline a candidate must not fall below is the LLM champion, or, with none yet, the task's
local answers on the same items. Among the candidates that pass every gate the cheapest (measured
cost per golden item) is chosen; the choice and each candidate's cost and failures are the reason
recorded with the promotion.
"""

from typing import Any, Callable, Mapping, Sequence

from resources.evaluation.gates import Gate, refusal_reason
from resources.evaluation.llm_gates import LlmPromotionSpec, llm_gates, p95
from resources.evaluation.metrics import classification_metrics
from resources.providers.base import TaskResult

from .llm_configs import LlmConfig, LlmConfigRegistry, config_key
from .records import EvaluationRecord, PromotionConflict, PromotionDecision

SELECTION = "selection"  # the evaluation's metrics entry that holds the choice (not a version)
REMOTE_PATHS = ("llm", "cascade:llm")


def _norm(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def field_accuracy(results: Sequence[TaskResult], truths: Sequence[Mapping[str, Any]] | None) -> float | None:
    """Share of (item, golden field) pairs answered exactly (case and spaces ignored); None: no golden fields."""
    if not truths or not any(truths):
        return None
    hits = total = 0
    for r, truth in zip(results, truths):
        out = r.output or {} if r.ok else {}
        for name, expected in truth.items():
            total += 1
            hits += int(_norm(out.get(name)) == _norm(expected))
    return round(hits / total, 6) if total else None


def score_results(task: Any, results: Sequence[TaskResult], *, labels: Sequence[str] | None = None,
                  truths: Sequence[Mapping[str, Any]] | None = None,
                  judge: Callable[[Sequence[TaskResult]], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The metrics the gates read, from one configuration's answers to the golden items."""
    n = len(results)
    fallbacks: dict[str, int] = {}
    for r in results:
        if (r.path or "").startswith("fallback:"):
            reason = r.path.split(":", 1)[1]
            fallbacks[reason] = fallbacks.get(reason, 0) + 1
    timed = [r.latency_ms for r in results if r.path in REMOTE_PATHS]
    out: dict[str, Any] = {
        "rows": n, "errors": sum(not r.ok for r in results), "fallbacks": fallbacks,
        "paths": _counts(r.path or "" for r in results),
        "cost_per_item_usd": round(sum(r.cost_usd for r in results) / n, 10) if n else 0.0,
        "p95_latency_ms": p95(timed), "calls_timed": len(timed),
    }
    if task.type == "classify" and labels is not None:
        preds = [None if not r.ok or not r.output else r.output.get("label") for r in results]
        m = classification_metrics([str(y) for y in labels], [None if p is None else str(p) for p in preds])
        out.update(accuracy=m["accuracy"], macro_f1=m["macro_f1"], per_class_recall=m["per_class_recall"])
    if task.type == "extract":
        out["field_accuracy"] = field_accuracy(results, truths)
        if out["field_accuracy"] is None:
            out["quality_note"] = "no golden fields: the golden set holds none of this task's fields"
    if judge is not None and task.type in ("draft", "summarize"):
        out.update(judge(results))
    return out


def _counts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def gates_of(task_type: str, candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None,
             t: LlmPromotionSpec) -> list[Gate]:
    return llm_gates(task_type, candidate, baseline, t)


def choose(task_type: str, scored: Sequence[tuple[LlmConfig, dict[str, Any]]], baseline: Mapping[str, Any] | None,
           t: LlmPromotionSpec) -> tuple[LlmConfig | None, list[Gate], str]:
    """The cheapest candidate that passes every gate (else the first one, refused), its gates, and why."""
    if not scored:
        return None, [], "no candidate configuration to evaluate"
    judged = [(cfg, m, gates_of(task_type, m, baseline, t)) for cfg, m in scored]
    passing = [(cfg, m, g) for cfg, m, g in judged if all(x.passed for x in g)]
    costs = "; ".join(f"{cfg.model} ${float(m['cost_per_item_usd']):.6f}/item" for cfg, m, _ in judged)
    failed = "; ".join(f"{cfg.model} refused ({refusal_reason(g)})" for cfg, m, g in judged
                       if not all(x.passed for x in g))
    if not passing:
        cfg, _, gates = judged[0]
        return cfg, gates, f"no candidate passed every gate: {failed}" if len(judged) > 1 else \
            f"{cfg.model}: {refusal_reason(gates)}"
    cfg, m, gates = min(passing, key=lambda x: float(x[1]["cost_per_item_usd"]))
    if len(judged) == 1:
        return cfg, gates, f"{cfg.model} passed every gate at ${float(m['cost_per_item_usd']):.6f}/item"
    why = f"cheapest adequate: {cfg.model} (costs per golden item: {costs})"
    return cfg, gates, why + (f"; {failed}" if failed else "")


def record(reg: LlmConfigRegistry, *, family: str, task: Any, candidates: Sequence[tuple[LlmConfig, dict]],
           champion: LlmConfig | None, baseline_key: str | None, baseline: dict[str, Any] | None,
           thresholds: LlmPromotionSpec, golden_set_hash: str, actor: str, run_id: str | None) -> EvaluationRecord:
    """Choose among the scored candidates and store the evaluation (every candidate's metrics and gates)."""
    chosen, gates, why = choose(task.type, candidates, baseline, thresholds)
    if chosen is not None and champion is not None and chosen.version == champion.version:
        gates = [Gate(g.name, True, f"{chosen.model} is the champion already; nothing to promote") for g in gates]
        why = f"{why}; it is the champion already"
    metrics: dict[str, dict[str, Any]] = {}
    for cfg, m in candidates:
        g = gates_of(task.type, m, baseline, thresholds)
        metrics[cfg.version] = {**m, "model": cfg.model, "prompt_version": cfg.prompt_version,
                                "passed": all(x.passed for x in g), "gates": [x.as_dict() for x in g]}
    if baseline_key and baseline is not None:
        metrics.setdefault(baseline_key, dict(baseline))
    metrics[SELECTION] = {"chosen": chosen.version if chosen else None, "reason": why, "task_type": task.type,
                          "baseline": baseline_key, "thresholds": thresholds.model_dump()}
    rows = max((int(m.get("rows") or 0) for _, m in candidates), default=0)
    return reg.registry.record_evaluation(
        family=family, task=config_key(task.name), challenger_version=chosen.version if chosen else None,
        champion_version=champion.version if champion else None, golden_set_hash=golden_set_hash,
        golden_rows=rows, metrics=metrics, gates=[g.as_dict() for g in gates],
        passed=bool(gates) and all(g.passed for g in gates), run_id=run_id, created_by=actor,
    )


def evaluation_gates(ev: EvaluationRecord, thresholds: LlmPromotionSpec) -> list[Gate]:
    """The chosen challenger's gates, recomputed from the stored metrics (what the checks and the promotion read)."""
    sel = ev.metrics.get(SELECTION) or {}
    ch = ev.challenger_version
    if ch is None or ch not in ev.metrics:
        return [Gate(n, True, "no challenger to promote; nothing to gate") for n in _names()]
    if ch == ev.champion_version:
        return [Gate(n, True, "the challenger is the champion already; nothing to promote") for n in _names()]
    baseline = ev.metrics.get(sel.get("baseline") or "")
    return gates_of(sel.get("task_type", ""), ev.metrics[ch], baseline, thresholds)


def _names() -> tuple[str, ...]:
    from resources.evaluation.llm_gates import LLM_GATE_NAMES

    return LLM_GATE_NAMES


def promote_if_passed(reg: LlmConfigRegistry, ev: EvaluationRecord, thresholds: LlmPromotionSpec, *,
                      actor: str) -> PromotionDecision:
    """Move the champion alias to the chosen challenger only if its gates pass (re-checked here)."""
    family, task = ev.family, ev.task.removesuffix("@llm")
    current = reg.champion(family, task)
    now = current.version if current else None
    ch = ev.challenger_version
    why = (ev.metrics.get(SELECTION) or {}).get("reason", "")

    def decision(promoted: bool, champion: str | None, previous: str | None, reason: str) -> PromotionDecision:
        return PromotionDecision(family, task, promoted, champion, previous, ch, reason, ev.evaluation_id)

    if ch is None:
        return decision(False, now, None, "kept: no candidate configuration was evaluated")
    if now == ch:
        return decision(False, ch, None, f"kept: {ch} is the champion already ({why})")
    gates = evaluation_gates(ev, thresholds)
    if not all(g.passed for g in gates):
        failed = "; ".join(g.reason for g in gates if not g.passed)
        kept = f"; champion stays {now}" if now else "; no LLM champion: the task stays on the local provider"
        return decision(False, now, None, f"refused: {failed}{kept}")
    cfg = reg.get(family, task, ch)
    try:
        previous = reg.promote(cfg, actor=actor, evaluation_id=ev.evaluation_id, expected_champion=ev.champion_version,
                               reason=f"passed the LLM gates ({ev.evaluation_id}): {why}")
    except PromotionConflict as exc:
        after = reg.champion(family, task)
        return decision(False, after.version if after else None, None, str(exc))
    return decision(True, ch, previous, f"promoted {ch} over {previous or 'none'}: {why}")
