"""How one model version does on a task's golden set: :class:`ModelScore` and :func:`score_candidate`.

The candidate's provider answers the classify task for the golden rows; each draft task whose
rubric reads this task's label then drafts for the same rows, given the candidate's predicted
labels (a worse classifier retrieves worse documents and addresses the wrong topic), and the
deterministic rubric scores the drafts. Cost and latency cover every call made for the score.
"""

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from resources.providers.base import Item, ModelProvider, TaskResult, content_hash

from .metrics import classification_metrics
from .rubric import draft_checks, rubric_score

# (draft task, callback: predicted labels of the golden rows -> the draft items, in golden order)
DraftSource = tuple[Any, Callable[[Sequence[str | None]], list[Item]]]
GOLDEN_COLUMNS = ("record_id", "text", "label")


@dataclass
class ModelScore:
    """How one model version did on the golden set."""

    version: str
    rows: int
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    # the weakest draft task's rubric (None: no draft task uses this task's label)
    rubric_score: float | None
    rubric_breakdown: dict[str, float]
    # per draft task: {"score", "min_score", "breakdown", "rows", "errors"}
    drafts: dict[str, dict[str, Any]]
    cost_per_item_usd: float
    latency_ms_per_item: float
    errors: int
    predictions: list[str | None] = field(default_factory=list, repr=False)

    def as_metrics(self) -> dict[str, Any]:
        """Everything but the predictions: what the registry stores and the gates read."""
        out = asdict(self)
        out.pop("predictions")
        return out


def golden_items(task: Any, golden: pd.DataFrame) -> list[Item]:
    """The classify items of golden rows (``record_id``, ``text``, ``label`` and the task's features).

    Features come from a ``features`` column of mappings when there is one, else from the
    columns named like the task's declared features.
    """
    missing = [c for c in GOLDEN_COLUMNS if c not in golden.columns]
    if missing:
        raise ValueError(f"golden rows of {task.key} lack column(s) {missing}")
    declared = [f for f in getattr(task.spec, "features", []) if f in golden.columns]
    items = []
    for row in golden.to_dict(orient="records"):
        fields = row.get("features") if isinstance(row.get("features"), Mapping) else {f: row[f] for f in declared}
        text = "" if row["text"] is None else str(row["text"])
        items.append(Item(id=str(row["record_id"]), text=text, fields=dict(fields),
                          input_hash=content_hash(text, dict(fields))))
    return items


def _label(result: TaskResult) -> str | None:
    if not result.ok or not result.output:
        return None
    label = result.output.get("label")
    return None if label is None else str(label)


def _draft(result: TaskResult) -> tuple[str | None, list[str]]:
    if not result.ok or not result.output:
        return None, []
    return result.output.get("text"), [str(c) for c in result.output.get("cited_ids") or []]


def _run(provider: ModelProvider, task: Any, items: Sequence[Item], expected: int) -> tuple[list[TaskResult], float]:
    start = time.perf_counter()
    results = provider.run(task, items) if items else []
    elapsed_ms = (time.perf_counter() - start) * 1000
    if len(results) != expected:
        raise ValueError(f"{task.key}: the provider returned {len(results)} results for {expected} items")
    return results, elapsed_ms


def score_candidate(
    provider: ModelProvider, task: Any, golden: pd.DataFrame, *, version: str, drafts: Sequence[DraftSource] = ()
) -> ModelScore:
    """Score ``provider`` (one model version of the classify ``task``) on the golden rows."""
    items = golden_items(task, golden)
    labels = golden["label"].astype(str).tolist()
    n = len(items)
    results, wall_ms = _run(provider, task, items, n)
    preds = [_label(r) for r in results]
    metrics = classification_metrics(labels, preds)
    every = list(results)

    per_draft: dict[str, dict[str, Any]] = {}
    for draft_task, items_for in drafts:
        if draft_task.family != task.family or draft_task.spec.rubric.label_task != task.name:
            continue  # this draft's rubric reads another task's label
        d_items = list(items_for(preds))
        if len(d_items) != n:
            raise ValueError(f"{draft_task.key}: {len(d_items)} draft items for {n} golden rows")
        d_results, d_ms = _run(provider, draft_task, d_items, n)
        wall_ms += d_ms
        every.extend(d_results)
        checks = [draft_checks(draft_task, *_draft(r), item.documents, y)
                  for r, item, y in zip(d_results, d_items, labels)]
        score, breakdown = rubric_score(checks)
        per_draft[draft_task.name] = {"score": score, "min_score": draft_task.spec.rubric.min_score,
                                      "breakdown": breakdown, "rows": n, "errors": sum(not r.ok for r in d_results)}

    weakest = min(per_draft.values(), key=lambda d: d["score"]) if per_draft else None
    latency_ms = max(sum(r.latency_ms for r in every), wall_ms)
    return ModelScore(
        version=version,
        rows=n,
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        per_class_recall=metrics["per_class_recall"],
        rubric_score=weakest["score"] if weakest else None,
        rubric_breakdown=dict(weakest["breakdown"]) if weakest else {},
        drafts=per_draft,
        cost_per_item_usd=round(sum(r.cost_usd for r in every) / n, 8) if n else 0.0,
        latency_ms_per_item=round(latency_ms / n, 4) if n else 0.0,
        errors=sum(not r.ok for r in every),
        predictions=preds,
    )
