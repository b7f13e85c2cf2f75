"""Model assets of a family: per classify task, train -> evaluate (+ blocking gates) -> promote; a registry snapshot.

``<task>_classifier`` trains the local classifier on the family's labelled file plus reviewed
feedback (``review_feedback`` is upstream) and registers a changed model as challenger;
``<task>_evaluation`` scores challenger and champion on the fixed golden set (and the drafts of
any draft task addressing the label, grounded in its documents); the blocking promotion checks
read it; ``<task>_champion`` promotes only if every gate passes; ``model_registry`` is the
family's snapshot of versions and aliases.
"""

from typing import Callable, Sequence

import dagster as dg
import pandas as pd

from resources.providers.base import Item
from resources.providers.definition import TaskDefinition
from resources.providers.local.store import LocalModelStore
from resources.registry.resource import ModelRegistryResource
from resources.warehouse import Warehouse

from . import inputs
from .core.items import build_items
from .core.labelled import mapped, read_table_file
from .family import Family
from .provision import actor, retrieve, training_set
from .ui_metadata import preview_md


def thresholds(family: Family, task: TaskDefinition):
    from resources.evaluation.gates import PromotionThresholds

    # each draft task's own rubric.min_score applies to its drafts
    return PromotionThresholds.from_spec(family.spec.promotion.for_task(task.name))


def _drafts_of(family: Family, task: TaskDefinition) -> list[TaskDefinition]:
    """Draft tasks whose rubric checks that they address this task's label."""
    return [t for t in family.tasks_of("draft") if t.spec.rubric.label_task == task.name]


def draft_items_for(family: Family, draft: TaskDefinition, label_task: TaskDefinition, golden: pd.DataFrame,
                    warehouse: Warehouse) -> Callable[[Sequence[str | None]], list[Item]]:
    """A function giving the draft's items for the golden rows, given a candidate's predicted labels."""
    raw = mapped(read_table_file(family.path(label_task.spec.training_data)), family.record.columns)
    if family.id_field in raw.columns:
        raw = raw.drop_duplicates(family.id_field).set_index(family.id_field)
        rows = raw.reindex(golden["record_id"].astype(str).tolist()).reset_index(names="record_id")
    else:
        rows = pd.DataFrame({"record_id": golden["record_id"].astype(str)})
    rows["input_hash"] = ""
    lookups = inputs.lookups_for(family, draft)
    rows = inputs.with_lookups(warehouse, family, rows, lookups)
    columns = inputs.item_names(family, lookups)

    def items_for(labels: Sequence[str | None]) -> list[Item]:
        answers = pd.DataFrame({"record_id": rows["record_id"], label_task.name: list(labels),
                                f"{label_task.name}_confidence": None})
        items = build_items(draft, rows, list(family.record.fields), columns, {label_task.name: (label_task, answers)})
        for item, text in zip(items, golden["text"].tolist()):
            item.text = item.text or text
        if getattr(draft.spec, "retrieval", None) is not None:
            for item, found in zip(items, retrieve(warehouse, family, draft, items)):
                item.documents = tuple(found)
        return items

    return items_for


def classifier_assets(family: Family, task: TaskDefinition) -> list[dg.AssetsDefinition]:
    key = lambda name: dg.AssetKey(family.key(name))  # noqa: E731 - short local alias
    common = dict(group_name=family.group("models"), owners=family.owners, code_version="2")
    feature_lookups = [key(n) for n in inputs.lookups_for(family, task)]
    documents = [key(t.spec.retrieval.from_) for t in _drafts_of(family, task) if t.spec.retrieval is not None]

    @dg.asset(key=key(f"{task.name}_classifier"), kinds={"python", "scikit-learn"}, **common,
              deps=[key("review_feedback"), *feature_lookups],
              description=f"One row per training run of the local {task.name!r} classifier; a changed model becomes "
                          "the challenger. Trains on the labelled file minus the golden set plus reviewed feedback; "
                          "the version hashes data and params, so unchanged inputs register nothing new.")
    def classifier(context: dg.AssetExecutionContext, registry: ModelRegistryResource, local_models: LocalModelStore,
                   warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
        from resources.registry.lifecycle import train_and_register

        training, _ = training_set(family, task, warehouse)
        out = train_and_register(registry.get(), local_models, task, training, actor=actor(context))
        context.log.info(f"{task.key}: {out.reason}\n{training.report.summary()}")
        df = pd.DataFrame([{
            "family": family.name, "task": task.name, "version": out.version, "registered": out.created,
            "alias": out.alias, "training_rows": out.training_rows, "training_data_hash": out.training_data_hash,
            "params": out.params, "fit_s": round(out.fit_s, 3), "reason": out.reason,
            "report": training.report.as_dict(), "trained_at": pd.Timestamp.now(tz="UTC"), "run_id": context.run_id,
        }])
        return dg.Output(df, metadata={
            "version": dg.MetadataValue.text(out.version),
            "new_challenger": out.created,
            "reason": dg.MetadataValue.text(out.reason),
            "training_rows": out.training_rows,
            "training_report": dg.MetadataValue.md(training.report.summary()),
            "fit_s": dg.MetadataValue.float(round(out.fit_s, 3)),
        })

    @dg.asset(key=key(f"{task.name}_evaluation"), kinds={"python", "scikit-learn"}, **common,
              deps=[classifier.key, *documents, *feature_lookups],
              description=f"Challenger and champion of {task.name!r} scored on the fixed golden set; one row per "
                          "(evaluation, role): accuracy, macro-F1, per-class recall, the draft rubric of the drafts "
                          "that address the label, cost and latency per item. The blocking promotion checks read it.")
    def evaluation(context: dg.AssetExecutionContext, registry: ModelRegistryResource, local_models: LocalModelStore,
                   warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
        from resources.registry.lifecycle import evaluate_candidates

        _, golden = training_set(family, task, warehouse)
        drafts = [(d, draft_items_for(family, d, task, golden, warehouse)) for d in _drafts_of(family, task)]
        record, scores = evaluate_candidates(registry.get(), local_models, task, golden, thresholds(family, task),
                                             actor=actor(context), run_id=context.run_id, drafts=drafts)
        rows = [{"evaluation_id": record.evaluation_id, "family": family.name, "task": task.name, "role": role,
                 **s.as_metrics(), "passed": record.passed, "evaluated_at": record.created_at}
                for role, s in scores.items()]
        df = pd.DataFrame(rows)
        meta: dict = {
            "evaluation_id": dg.MetadataValue.text(record.evaluation_id),
            "golden_rows": record.golden_rows,
            "gates_passed": record.passed,
            "gates": dg.MetadataValue.md(pd.DataFrame(record.gates)[["name", "passed", "reason"]].to_markdown(index=False)),
            "preview": preview_md(df, ["role", "version", "accuracy", "macro_f1", "rubric_score", "cost_per_item_usd"]),
        }
        for role, s in scores.items():
            meta[f"{role}_version"] = dg.MetadataValue.text(s.version)
            for metric in ("macro_f1", "accuracy", "rubric_score", "cost_per_item_usd", "latency_ms_per_item"):
                value = getattr(s, metric, None)
                if isinstance(value, (int, float)):
                    meta[f"{role}_{metric}"] = dg.MetadataValue.float(float(value))
        if drafts:  # which judge scored the rubric, so a reader knows what the rubric_score means
            from resources.evaluation.judge import KEYWORD_JUDGE

            judges = {str(d.get("judge") or KEYWORD_JUDGE) for s in scores.values() for d in s.drafts.values()}
            meta["rubric_judge"] = dg.MetadataValue.text(", ".join(sorted(judges)) or KEYWORD_JUDGE)
        return dg.Output(df, metadata=meta)

    @dg.asset(key=key(f"{task.name}_champion"), kinds={"python", "sql"}, deps=[evaluation.key], **common,
              description=f"The champion of {task.name!r} after the promotion gates; one row. Runs only when every "
                          "blocking check on the evaluation passed and re-checks the gates before it moves the alias; "
                          "the move is in the alias history with who, when, why and the evaluation id.")
    def champion(context: dg.AssetExecutionContext, registry: ModelRegistryResource,
                 warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
        from resources.registry.lifecycle import promote_if_passed

        reg = registry.get()
        evaluated = warehouse.read_table(family.table(f"{task.name}_evaluation"))
        if evaluated.empty:
            raise dg.Failure(f"{task.key}: no evaluation yet; materialize {task.name}_evaluation first")
        evaluation_id = str(evaluated["evaluation_id"].iloc[-1])
        record = reg.evaluation(evaluation_id)
        if record is None:
            raise dg.Failure(f"evaluation {evaluation_id} is not in the registry")
        decision = promote_if_passed(reg, record, thresholds(family, task), actor=actor(context))
        context.log.info(decision.reason)
        current = reg.champion(family.name, task.name)
        df = pd.DataFrame([{
            "family": family.name, "task": task.name, "champion_version": current.version if current else None,
            "promoted": decision.promoted, "previous_version": decision.previous,
            "challenger_version": decision.challenger, "evaluation_id": decision.evaluation_id,
            "reason": decision.reason, "decided_at": pd.Timestamp.now(tz="UTC"),
        }])
        return dg.Output(df, metadata={
            "champion_version": dg.MetadataValue.text(current.version if current else "none"),
            "promoted": decision.promoted,
            "reason": dg.MetadataValue.text(decision.reason),
        })

    return [classifier, evaluation, champion]


def registry_asset(family: Family) -> dg.AssetsDefinition:
    champions = [dg.AssetKey(family.key(f"{t.name}_champion")) for t in family.tasks_of("classify")]

    @dg.asset(key=dg.AssetKey(family.key("model_registry")), group_name=family.group("models"), deps=champions,
              kinds={"python", "sql"}, owners=family.owners, code_version="2",
              description="Every registered model version of this family with its current alias (champion / "
                          "challenger / retired); one row per version. Full alias history: `model-registry history`.")
    def model_registry(registry: ModelRegistryResource) -> dg.Output[pd.DataFrame]:
        reg = registry.get()
        df = reg.snapshot(family=family.name)
        current = df[df["alias"] == "champion"] if len(df) else df
        return dg.Output(df, metadata={
            "dagster/row_count": len(df),
            "versions": len(df),
            "alias_changes": len(reg.history(family=family.name)),
            "champions": dg.MetadataValue.md(current[["task", "version"]].to_markdown(index=False) if len(current)
                                             else "_no champion yet_"),
            "preview": preview_md(df, ["task", "version", "alias", "created_at"]),
        })

    return model_registry


def model_assets(family: Family) -> list[dg.AssetsDefinition]:
    """Classifier assets per classify task (+ the registry snapshot), LLM configuration assets per routed task."""
    from .llm_models import llm_assets

    classify = family.tasks_of("classify")
    assets = [a for t in classify for a in classifier_assets(family, t)]
    return [*([*assets, registry_asset(family)] if classify else []), *llm_assets(family)]
