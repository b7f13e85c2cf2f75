"""The model lifecycle of a classify task: train -> register -> evaluate -> promote. Plain functions, no Dagster.

``store`` is a :class:`resources.providers.local.store.LocalModelStore` (``train``, ``path_for``,
``provider``); ``training`` a :class:`resources.providers.local.training.TrainingSet`; ``task`` a
:class:`resources.providers.definition.TaskDefinition` (its ``family`` and ``name`` key the
registry). Assets call these with what they read and write what they return.
"""

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from resources.evaluation import (
    DraftSource,
    ModelScore,
    PromotionThresholds,
    promotion_gates,
    refusal_reason,
    score_candidate,
)
from resources.providers.base import content_hash

from .api import ModelRegistry
from .records import CHALLENGER, EvaluationRecord, PromotionConflict, PromotionDecision, RegistryError, VersionInfo

LOCAL_PROVIDER = "local"


@dataclass(frozen=True)
class TrainingOutcome:
    family: str
    task: str
    version: str
    created: bool  # False: this data + params were already registered; no alias moved
    alias: str | None
    training_rows: int
    feedback_rows: int
    training_data_hash: str
    params: dict[str, Any]
    fit_s: float
    reason: str
    report: dict[str, Any] | None


def _plain(params: Any) -> dict[str, Any]:
    if hasattr(params, "model_dump"):
        return params.model_dump(mode="json")
    return dict(params or {})


def _classifier_metrics(trained: Any) -> dict[str, Any]:
    """What the classifier says of its own fit; the training report has a column of its own."""
    metrics = dict(getattr(trained, "metrics", None) or {})
    return {k: v for k, v in metrics.items() if k not in ("training", "task")}


def _feedback_rows(rows: pd.DataFrame) -> int:
    if "source" not in rows.columns:
        return 0
    return int(rows["source"].astype(str).str.startswith("feedback").sum())


def train_and_register(
    registry: ModelRegistry, store: Any, task: Any, training: Any, *, alias: str | None = CHALLENGER,
    actor: str, reason: str | None = None,
) -> TrainingOutcome:
    """Train the task's local classifier on ``training``, save it, register it (with ``alias``).

    The version is the classifier's own content version (data + params), so retraining unchanged
    data with unchanged params registers nothing new and moves no alias. The training report
    (rows per source, dropped rows, rare classes ...) is stored with the version.
    """
    start = time.perf_counter()
    trained = store.train(task, training)
    fit_s = time.perf_counter() - start
    rows = training.rows
    n_rows, n_feedback = len(rows), _feedback_rows(rows)
    report = training.report.as_dict() if training.report is not None else None
    why = reason or f"trained on {n_rows} rows ({n_feedback} reviewed); data {training.data_hash}"
    info, created = registry.register(
        family=task.family, task=task.name, version=trained.version, provider=LOCAL_PROVIDER,
        model_id=getattr(trained, "model_id", None) or LOCAL_PROVIDER, params=_plain(trained.params),
        training_data_hash=training.data_hash, training_rows=n_rows, artifact=str(store.path_for(trained.version)),
        metrics={"training_rows": n_rows, "feedback_rows": n_feedback, "fit_s": round(fit_s, 3),
                 "classifier": _classifier_metrics(trained)},
        training_report=report,
        description=f"local classifier of {task.key} on {n_rows} rows ({n_feedback} from reviewed feedback)",
        created_by=actor, alias=alias, reason=why,
    )
    if created:
        outcome_reason = f"new version {info.version} registered" + (f" as {alias}" if alias else "")
    else:
        outcome_reason = (f"training data and params unchanged: version {info.version} is already registered "
                          f"({info.alias or 'no alias'}); no alias moved")
    return TrainingOutcome(
        family=task.family, task=task.name, version=info.version, created=created, alias=info.alias,
        training_rows=n_rows, feedback_rows=n_feedback, training_data_hash=training.data_hash, params=info.params,
        fit_s=fit_s, reason=outcome_reason, report=report,
    )


def ensure_champion(
    registry: ModelRegistry, store: Any, task: Any, training_fn: Callable[[], Any], *, actor: str
) -> VersionInfo:
    """The task's champion; with none yet, bootstrap one: train the default model, register it, promote it.

    ``training_fn()`` returns the :class:`TrainingSet` (or ``prepare_training_set``'s
    ``(training, golden)`` pair); it is only called when there is no champion. Safe under
    concurrency: parallel bootstraps train the same deterministic version, registration is
    idempotent and only one promotion can win (the others read the winner).
    """
    champ = registry.champion(task.family, task.name)
    if champ is not None:
        return champ
    training = training_fn()
    if isinstance(training, tuple):
        training = training[0]
    outcome = train_and_register(registry, store, task, training, alias=None, actor=actor,
                                 reason=f"bootstrap: {task.key} had no champion")
    try:
        registry.promote(
            task.family, task.name, outcome.version, actor=actor, expected_champion=None,
            reason=f"bootstrap: {task.key} had no champion; the default local model was trained and promoted",
        )
    except PromotionConflict:
        pass  # another run bootstrapped at the same moment: its champion stands
    champ = registry.champion(task.family, task.name)
    if champ is None:  # pragma: no cover - promote() either succeeded or another promotion did
        raise RegistryError(f"bootstrap failed: {task.key} still has no champion")
    return champ


def golden_hash(golden: pd.DataFrame) -> str:
    """A hash of the golden rows (ids, labels, texts), independent of their order."""
    rows = sorted(zip(golden["record_id"].astype(str), golden["label"].astype(str), golden["text"].astype(str)))
    return content_hash(rows)


def _provider(store: Any, task: Any, version: str, label_rules: Mapping[str, Any] | None) -> Any:
    if label_rules is None:
        return store.provider({task.name: version})
    return store.provider({task.name: version}, label_rules=label_rules)


def evaluate_candidates(
    registry: ModelRegistry, store: Any, task: Any, golden: pd.DataFrame, thresholds: PromotionThresholds, *,
    actor: str, run_id: str | None = None, drafts: Sequence[DraftSource] = (),
    label_rules: Mapping[str, Any] | None = None,
) -> tuple[EvaluationRecord, dict[str, ModelScore]]:
    """Score the challenger and the champion on the golden rows; record the evaluation and its gates.

    ``golden``: rows with ``record_id``, ``text``, ``label`` and the task's features. ``drafts``:
    ``(draft task, items_for)`` pairs; for each draft task whose rubric reads this task's label,
    ``items_for(predicted labels)`` gives the draft items of the golden rows, which the candidate's
    provider drafts and the rubric scores. ``label_rules``: the family's label rules, passed to the
    provider so a candidate is scored as it would answer in production.

    Returns (the recorded evaluation, {role: score}). With no challenger only the champion is
    scored; the gates then pass with "nothing to promote".
    """
    if golden is None or golden.empty:  # every gate would compare 0 with 0 and pass
        raise RegistryError(f"the golden set of {task.key} is empty: there is nothing to evaluate a model on")
    champion = registry.champion(task.family, task.name)
    challenger = registry.challenger(task.family, task.name)
    if champion is None and challenger is None:
        raise RegistryError(f"no {task.key} model is registered yet: train the task's classifier first")
    scores: dict[str, ModelScore] = {}
    for role, info in (("challenger", challenger), ("champion", champion)):
        if info is not None:
            provider = _provider(store, task, info.version, label_rules)
            scores[role] = score_candidate(provider, task, golden, version=info.version, drafts=drafts)
    gates = promotion_gates(
        scores["challenger"].as_metrics() if "challenger" in scores else None,
        scores["champion"].as_metrics() if "champion" in scores else None,
        thresholds,
    )
    record = registry.record_evaluation(
        family=task.family, task=task.name,
        challenger_version=challenger.version if challenger else None,
        champion_version=champion.version if champion else None,
        golden_set_hash=golden_hash(golden), golden_rows=len(golden),
        metrics={s.version: s.as_metrics() for s in scores.values()},
        gates=[g.as_dict() for g in gates], passed=all(g.passed for g in gates), run_id=run_id, created_by=actor,
    )
    return record, scores


def promote_if_passed(
    registry: ModelRegistry, evaluation: EvaluationRecord, thresholds: PromotionThresholds, *, actor: str
) -> PromotionDecision:
    """Move the champion alias to the evaluated challenger only if every gate passes, re-checked here.

    The promotion is a compare-and-set on the champion the evaluation compared against: if
    another promotion happened in between, nothing changes and the reason says so.
    """
    family, task, ch = evaluation.family, evaluation.task, evaluation.challenger_version
    current = registry.champion(family, task)
    now = current.version if current else None

    def decision(promoted: bool, champion: str | None, previous: str | None, reason: str) -> PromotionDecision:
        return PromotionDecision(family, task, promoted, champion, previous, ch, reason, evaluation.evaluation_id)

    if ch is None:
        return decision(False, now, None, "no challenger was evaluated; champion unchanged")
    if now == ch:
        return decision(False, ch, None, f"{ch} is already the champion")
    scored = [v for v in (ch, evaluation.champion_version) if v is not None]
    if any(v not in evaluation.metrics for v in scored):  # no scores, no gates: never promote blind
        return decision(False, now, None, f"evaluation {evaluation.evaluation_id} has no scores of {scored}")
    gates = promotion_gates(evaluation.metrics[ch], evaluation.metrics.get(evaluation.champion_version or ""),
                            thresholds)
    if not all(g.passed for g in gates):
        return decision(False, now, None, f"gates refused {ch}: {refusal_reason(gates)}")
    summary = "; ".join(g.reason for g in gates)
    try:
        previous = registry.promote(
            family, task, ch, actor=actor, evaluation_id=evaluation.evaluation_id,
            expected_champion=evaluation.champion_version,
            reason=f"passed promotion gates ({evaluation.evaluation_id}): {summary}",
        )
    except PromotionConflict as exc:
        after = registry.champion(family, task)
        return decision(False, after.version if after else None, None, str(exc))
    return decision(True, ch, previous, f"promoted {ch} over {previous or 'none'}: {summary}")
