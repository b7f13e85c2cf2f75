"""The promotion gates of an LLM configuration: its golden-set score through the router against a baseline.

A configuration (catalog model + model id + params + prompt version) of one routed task becomes
champion only when every gate passes:

- ``llm_answered_by_candidate``: every golden item was answered by the candidate's route (no
  fallback to the local provider because of budget, timeouts, invalid output ...); an evaluation
  the budget cut short proves nothing;
- ``llm_quality_not_worse_than_baseline``: classify: macro-F1 (and accuracy) not below the
  baseline's minus ``quality_tolerance``; extract: field accuracy on the golden fields, when the
  golden set has them; the baseline is the LLM champion, or the task's local champion when there
  is none yet;
- ``llm_judge_score_at_threshold``: drafts: the judge's mean score
  (:func:`resources.evaluation.judge.judge_drafts`) is at least ``min_judge_score``; summaries have
  no judge yet and say so;
- ``llm_cost_per_item_within_limit`` and ``llm_p95_latency_within_limit``.
"""

from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from .gates import Gate

LLM_GATE_NAMES = (
    "llm_answered_by_candidate",
    "llm_quality_not_worse_than_baseline",
    "llm_judge_score_at_threshold",
    "llm_cost_per_item_within_limit",
    "llm_p95_latency_within_limit",
)
LLM_GATE_DESCRIPTIONS = {
    "llm_answered_by_candidate": "Every golden item was answered by the candidate configuration, none by a fallback.",
    "llm_quality_not_worse_than_baseline":
        "The candidate's golden-set quality (macro-F1 / field accuracy) is not below the baseline's minus the tolerance.",
    "llm_judge_score_at_threshold": "Generated text scores at least the threshold with the family's judge.",
    "llm_cost_per_item_within_limit": "The candidate's measured cost per golden item is within the limit.",
    "llm_p95_latency_within_limit": "The candidate's p95 latency per call is within the limit.",
}
GENERATED = ("draft", "summarize")
JUDGED = ("draft",)  # the judge scores drafts (resources.evaluation.judge)
QUALITY_METRIC = {"classify": "macro_f1", "extract": "field_accuracy"}


class LlmPromotionSpec(BaseModel):
    """``promotion.llm`` of a family spec: the thresholds an LLM configuration must meet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quality_tolerance: float = Field(0.01, ge=0, le=1, description="allowed drop of macro-F1 / field accuracy")
    min_judge_score: float = Field(0.6, ge=0, le=1, description="judge score generated text must reach")
    max_cost_per_item_usd: float = Field(0.01, ge=0)
    max_p95_latency_ms: float = Field(10_000.0, gt=0)
    golden_rows: int = Field(50, ge=1, le=10_000, description="golden items evaluated per configuration")
    golden_file: str | None = Field(
        None, description="records (CSV/JSONL, relative to the family folder) that evaluate LLM configurations of a "
                          "family without a classify task; an 'expected' object per row holds an extract task's fields")


def llm_gates(task_type: str, candidate: Mapping[str, Any], baseline: Mapping[str, Any] | None,
              t: LlmPromotionSpec) -> list[Gate]:
    """The gates of one candidate's metrics (see ``llm_configs_lifecycle.score_config``) against the baseline's."""
    return [_answered(candidate), _quality(task_type, candidate, baseline, t), _judge(task_type, candidate, t),
            _cost(candidate, t), _latency(candidate, t)]


def _answered(c: Mapping[str, Any]) -> Gate:
    name, rows, off = LLM_GATE_NAMES[0], int(c.get("rows") or 0), dict(c.get("fallbacks") or {})
    missing = sum(off.values())
    if rows == 0:
        return Gate(name, False, "no golden item was evaluated", {"rows": 0})
    if missing:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(off.items()))
        return Gate(name, False, f"{missing} of {rows} golden items were not answered by the candidate ({why})",
                    {"rows": rows, "fallbacks": off})
    return Gate(name, True, f"all {rows} golden items answered by the candidate", {"rows": rows})


def _quality(task_type: str, c: Mapping[str, Any], base: Mapping[str, Any] | None, t: LlmPromotionSpec) -> Gate:
    name, metric = LLM_GATE_NAMES[1], QUALITY_METRIC.get(task_type)
    if metric is None:
        what = "judged below" if task_type in GENERATED else "the golden set holds no answers to compare"
        return Gate(name, True, f"no golden quality measure for {task_type} tasks ({what})", {})
    value = c.get(metric)
    if value is None:
        return Gate(name, True, c.get("quality_note") or f"no golden fields to measure {metric}", {})
    value = float(value)
    if base is None or base.get(metric) is None:
        return Gate(name, True, f"no baseline; challenger {metric} {value:.3f}", {"challenger": value})
    ref = float(base[metric])
    ok = value >= ref - t.quality_tolerance
    label = base.get("label", "baseline")
    reason = (f"challenger {metric} {value:.3f} >= {label} {ref:.3f} - tolerance {t.quality_tolerance:g}" if ok else
              f"challenger {metric} {value:.3f} < {label} {ref:.3f} - tolerance {t.quality_tolerance:g}")
    if task_type == "classify" and c.get("accuracy") is not None and base.get("accuracy") is not None:
        reason += f" (accuracy {float(c['accuracy']):.3f} vs {float(base['accuracy']):.3f})"
    return Gate(name, ok, reason, {"challenger": value, "baseline": ref, "tolerance": t.quality_tolerance})


def _judge(task_type: str, c: Mapping[str, Any], t: LlmPromotionSpec) -> Gate:
    name = LLM_GATE_NAMES[2]
    if task_type not in JUDGED:
        what = "the judge scores drafts only" if task_type in GENERATED else "not generated text"
        return Gate(name, True, f"{task_type} answers are not judged ({what})", {})
    score = c.get("judge_score")
    judge = c.get("judge") or "judge"
    if score is None:
        return Gate(name, False, f"no judge score for generated text ({c.get('judge_note') or 'nothing judged'})", {})
    score = float(score)
    ok = score >= t.min_judge_score
    op = ">=" if ok else "<"
    return Gate(name, ok, f"{judge} score {score:.3f} {op} threshold {t.min_judge_score:g}",
                {"judge_score": score, "threshold": t.min_judge_score, "judge": judge})


def _cost(c: Mapping[str, Any], t: LlmPromotionSpec) -> Gate:
    cost = float(c.get("cost_per_item_usd") or 0.0)
    ok = cost <= t.max_cost_per_item_usd
    op = "<=" if ok else ">"
    return Gate(LLM_GATE_NAMES[3], ok, f"cost per item ${cost:.6f} {op} limit ${t.max_cost_per_item_usd:.6f}",
                {"cost_per_item_usd": cost, "limit_usd": t.max_cost_per_item_usd})


def _latency(c: Mapping[str, Any], t: LlmPromotionSpec) -> Gate:
    p95 = c.get("p95_latency_ms")
    if p95 is None:
        return Gate(LLM_GATE_NAMES[4], True, "no call was timed (every answer came from the cache or the local "
                                             "model)", {})
    p95 = float(p95)
    ok = p95 <= t.max_p95_latency_ms
    op = "<=" if ok else ">"
    return Gate(LLM_GATE_NAMES[4], ok, f"p95 latency {p95:.0f} ms {op} limit {t.max_p95_latency_ms:.0f} ms",
                {"p95_latency_ms": p95, "limit_ms": t.max_p95_latency_ms})


def p95(values: Sequence[float]) -> float | None:
    """The 95th percentile (nearest rank), None for no value."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    rank = max(1, -(-95 * len(xs) // 100))  # ceil(0.95 n)
    return xs[rank - 1]
