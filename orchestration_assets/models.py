"""Models: train the triage classifier, evaluate challenger vs champion, promote behind gates, snapshot.

``triage_classifier`` -> ``model_evaluation`` (+ blocking promotion checks) -> ``champion_model``
-> ``model_registry``. The registry itself lives in warehouse tables (``model_versions``,
``model_aliases``, ``model_alias_history``, ``model_evaluations``); these assets are the steps a
user launches, and ``model_registry`` is the snapshot a user reads in the UI.
"""


from typing import Any

import dagster as dg
import pandas as pd

from resources.providers.local import LocalModelStore
from resources.registry import (
    CLASSIFY,
    ModelRegistryResource,
    evaluate_candidates,
    load_labelled,
    promote_if_passed,
    read_feedback,
    train_and_register,
)
from resources.router import ModelRouter
from resources.sources import ContextSources
from resources.warehouse import Warehouse

from .ui_metadata import preview_md

GROUP = "models"
OWNERS = ["team:ml-platform"]
EVALUATION_COLUMNS = [
    "evaluation_id", "task", "role", "version", "golden_rows", "accuracy", "macro_f1", "per_class_recall",
    "rubric_score", "rubric_breakdown", "llm_judge_score", "cost_per_ticket_usd", "latency_ms_per_ticket",
    "errors", "passed", "evaluated_at",
]


def _actor(context: dg.AssetExecutionContext) -> str:
    user = context.run.tags.get("dagster/user") or context.run.tags.get("user")
    return f"user:{user}" if user else f"dagster:run:{context.run_id[:8]}"


def _judge(router: ModelRouter) -> Any:
    """The first LLM of the routing config, used as the draft judge; None when no LLM is configured."""
    providers = router.remote_providers()
    usable = [p for p in providers.values() if p.has_key]
    return usable[0] if usable else None


@dg.asset(group_name=GROUP, kinds={"python", "scikit-learn"}, owners=OWNERS, code_version="1")
def triage_classifier(
    context: dg.AssetExecutionContext,
    registry: ModelRegistryResource,
    local_models: LocalModelStore,
    warehouse: Warehouse,
) -> dg.Output[pd.DataFrame]:
    """One row per training run of the local ticket classifier; a changed model becomes the challenger.

    Trains on the labelled tickets minus the golden set, plus reviewed labels from
    ``review_feedback`` when that table exists. The version is a hash of data and params: when
    neither changed, nothing new is registered and no alias moves.
    """
    labelled = load_labelled(registry.labelled_path or None)
    feedback = read_feedback(warehouse)
    out = train_and_register(
        registry.get(), local_models, labelled, feedback,
        actor=_actor(context), golden_fraction=registry.golden_fraction,
    )
    context.log.info(f"triage_classifier: {out.reason}")
    df = pd.DataFrame([{
        "task": CLASSIFY, "version": out.version, "registered": out.created, "alias": out.alias,
        "training_rows": out.training_rows, "feedback_rows": out.feedback_rows,
        "training_data_hash": out.training_data_hash, "params": out.params, "fit_s": round(out.fit_s, 3),
        "reason": out.reason, "trained_at": pd.Timestamp.now(tz="UTC"), "run_id": context.run_id,
    }])
    return dg.Output(df, metadata={
        "version": dg.MetadataValue.text(out.version),
        "new_challenger": out.created,
        "reason": dg.MetadataValue.text(out.reason),
        "training_rows": out.training_rows,
        "feedback_rows": out.feedback_rows,
        "fit_s": dg.MetadataValue.float(round(out.fit_s, 3)),
        "training_data_hash": dg.MetadataValue.text(out.training_data_hash),
    })


@dg.asset(group_name=GROUP, kinds={"python", "scikit-learn"}, owners=OWNERS, code_version="1", deps=[triage_classifier])
def model_evaluation(
    context: dg.AssetExecutionContext,
    registry: ModelRegistryResource,
    local_models: LocalModelStore,
    sources: ContextSources,
    router: ModelRouter,
) -> dg.Output[pd.DataFrame]:
    """Challenger and champion scored on the fixed golden set; one row per (evaluation, role).

    Accuracy, macro-F1 and per-class recall of the category; the draft rubric (cites a retrieved
    article, no PII, addresses the category, length) and, with an LLM configured, an LLM-judge
    score; cost and latency per ticket. The blocking promotion checks read this table.
    """
    reg = registry.get()
    labelled = load_labelled(registry.labelled_path or None)
    record, scores = evaluate_candidates(
        reg, local_models, labelled, sources.articles(), registry.thresholds(),
        actor=_actor(context), run_id=context.run_id, judge=_judge(router), golden_fraction=registry.golden_fraction,
    )
    rows = []
    for role, s in scores.items():
        m = s.as_metrics()
        rows.append({
            "evaluation_id": record.evaluation_id, "task": record.task, "role": role, "version": s.version,
            "golden_rows": s.rows, **{k: m[k] for k in EVALUATION_COLUMNS if k in m and k not in ("version",)},
            "passed": record.passed, "evaluated_at": record.created_at,
        })
    df = pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
    meta: dict[str, Any] = {
        "evaluation_id": dg.MetadataValue.text(record.evaluation_id),
        "golden_rows": record.golden_rows,
        "golden_set_hash": dg.MetadataValue.text(record.golden_set_hash),
        "gates_passed": record.passed,
        "gates": dg.MetadataValue.md(pd.DataFrame(record.gates)[["name", "passed", "reason"]].to_markdown(index=False)),
        "preview": preview_md(df, ["role", "version", "accuracy", "macro_f1", "rubric_score", "cost_per_ticket_usd",
                                   "latency_ms_per_ticket"]),
    }
    for role, s in scores.items():
        meta[f"{role}_version"] = dg.MetadataValue.text(s.version)
        for key in ("macro_f1", "accuracy", "rubric_score", "cost_per_ticket_usd", "latency_ms_per_ticket"):
            meta[f"{role}_{key}"] = dg.MetadataValue.float(float(getattr(s, key)))
        if s.llm_judge_score is not None:
            meta[f"{role}_llm_judge_score"] = dg.MetadataValue.float(s.llm_judge_score)
    return dg.Output(df, metadata=meta)


def scores_from_frame(frame: pd.DataFrame) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(challenger metrics, champion metrics) of a ``model_evaluation`` table; None for a missing role."""
    out: dict[str, dict[str, Any] | None] = {"challenger": None, "champion": None}
    if frame is None or frame.empty:
        return None, None
    latest = frame[frame["evaluation_id"] == frame["evaluation_id"].iloc[-1]]
    for rec in latest.to_dict(orient="records"):
        out[rec["role"]] = rec
    return out["challenger"], out["champion"]


@dg.asset(group_name=GROUP, kinds={"python", "sql"}, owners=OWNERS, code_version="1")
def champion_model(
    context: dg.AssetExecutionContext, model_evaluation: pd.DataFrame, registry: ModelRegistryResource
) -> dg.Output[pd.DataFrame]:
    """The champion of the classify task after the promotion gate; one row per task.

    Runs only when every blocking check on ``model_evaluation`` passed, and re-checks the same
    gates before it moves the alias (so running it alone cannot bypass them). The promotion is
    recorded in the alias history with who, when, why and the evaluation id.
    """
    reg = registry.get()
    if model_evaluation.empty:
        raise dg.Failure("model_evaluation is empty: materialize it before champion_model")
    evaluation = reg.evaluation(str(model_evaluation["evaluation_id"].iloc[-1]))
    if evaluation is None:
        raise dg.Failure(f"evaluation {model_evaluation['evaluation_id'].iloc[-1]} is not in the registry")
    decision = promote_if_passed(reg, evaluation, registry.thresholds(), actor=_actor(context))
    context.log.info(decision.reason)
    champ = reg.champion(evaluation.task)
    df = pd.DataFrame([{
        "task": evaluation.task, "champion_version": champ.version if champ else None,
        "promoted": decision.promoted, "previous_version": decision.previous,
        "challenger_version": decision.challenger, "evaluation_id": decision.evaluation_id,
        "reason": decision.reason, "decided_at": pd.Timestamp.now(tz="UTC"),
    }])
    return dg.Output(df, metadata={
        "champion_version": dg.MetadataValue.text(champ.version if champ else "none"),
        "promoted": decision.promoted,
        "reason": dg.MetadataValue.text(decision.reason),
        "evaluation_id": dg.MetadataValue.text(decision.evaluation_id or ""),
    })


@dg.asset(group_name=GROUP, kinds={"python", "sql"}, owners=OWNERS, code_version="1", deps=[champion_model])
def model_registry(registry: ModelRegistryResource) -> dg.Output[pd.DataFrame]:
    """Every registered model version with its current alias (champion / challenger / retired); one row per version.

    Provider, model id, params, prompt hash, training-data hash, who/when, the last alias change
    and its reason, and the latest golden-set metrics. Full alias history: table
    ``model_alias_history`` or ``model-registry history``.
    """
    reg = registry.get()
    df = reg.snapshot()
    champions = df[df["alias"] == "champion"]
    history = reg.history()
    return dg.Output(df, metadata={
        "dagster/row_count": len(df),
        "versions": len(df),
        "alias_changes": len(history),
        "champions": dg.MetadataValue.md(
            champions[["task", "version", "alias_updated_by", "alias_updated_at", "alias_reason"]].to_markdown(index=False)
            if len(champions) else "_no champion yet_"),
        "preview": preview_md(df, ["task", "version", "alias", "macro_f1", "rubric_score", "created_at"]),
    })


model_assets = [triage_classifier, model_evaluation, champion_model, model_registry]
