"""Enrichment assets of a family: one asset per task (the specialists), then ``enriched_records``.

Tasks that use no other task's answer run in parallel; a task that uses another (one that reads
another's label) runs after it, and the lineage graph shows the edge. Every answer goes
through the router, which picks the provider (the embedded local model unless the family routes
the task elsewhere) and applies cascade, fallbacks, retries, cache, cost accounting and budgets.
"""

import dagster as dg
import pandas as pd

from resources.providers.definition import TaskDefinition
from resources.providers.local.store import LocalModelStore
from resources.providers.prompts import prompt_version
from resources.registry.resource import ModelRegistryResource
from resources.router.resource import ModelRouter
from resources.warehouse import Warehouse, store

from checks.anomaly import FRESHNESS_POLICIES

from . import inputs
from .core.enrichment import task_frame
from .core.guardrails import apply_output_guardrails
from .core.items import build_items, texts
from .enriched_chunks import write_enriched
from .family import Family
from .partitions import batches
from .llm_models import champion_key, live_session
from .prompt_assets import live_task, with_prompt_versions
from .provision import actor, local_provider, retrieve
from .ui_metadata import counts_md, numeric, preview_md

POOL = "model_calls"  # steps that call remote models share the providers' limits through this Dagster pool
_KINDS = {"classify": {"scikit-learn"}, "draft": {"jinja"}, "extract": set(), "sentiment": set(),
          "summarize": set(), "flag": set()}
_WHAT = {
    "classify": "a label with its calibrated confidence",
    "extract": "typed fields extracted from the text, with a confidence",
    "sentiment": "a sentiment label and a score in [-1, 1]",
    "summarize": "a short summary",
    "draft": "a generated text, checked by the output guardrails",
    "flag": "the flags that apply",
}


def task_deps(family: Family, task: TaskDefinition) -> list[dg.AssetKey]:
    deps = [dg.AssetKey(family.key("raw_records"))]
    deps += [dg.AssetKey(family.key(n)) for n in inputs.lookups_for(family, task)]
    retrieval = getattr(task.spec, "retrieval", None)
    if retrieval is not None:
        deps.append(dg.AssetKey(family.key(retrieval.from_)))
    deps += [dg.AssetKey(family.key(u)) for u in task.spec.uses]
    if _remote(family, task):  # one run evaluates and promotes its LLM configuration, then answers with it
        deps.append(champion_key(family, task.name))
    # No edge from <task>_champion: reviewed feedback trains the classifier (review_feedback ->
    # <task>_classifier), and the asset graph must stay acyclic. The loop closes through the
    # registry: the task reads its champion at run time and records the version on every row.
    return list(dict.fromkeys(deps))


def _remote(family: Family, task: TaskDefinition) -> bool:
    return bool(family.route(task.name).remote_chain())


def task_asset(family: Family, task: TaskDefinition) -> dg.AssetsDefinition:
    description = (task.spec.description.strip() or f"Task {task.name} ({task.type}).") + (
        f"\n\nOne row per record: {_WHAT[task.type]}, and who answered it (provider, model version, "
        "prompt hash, path, tokens, cost, latency)."
    )

    @dg.asset(
        key=dg.AssetKey(family.key(task.name)),
        group_name=family.group("enrichment"),
        description=description,
        deps=task_deps(family, task),
        partitions_def=batches(family),
        kinds={"python", *_KINDS[task.type], *({"openai"} if _remote(family, task) else set())},
        owners=family.owners,
        code_version="2",
        pool=POOL if _remote(family, task) else None,
    )
    def answers(context: dg.AssetExecutionContext, router: ModelRouter, local_models: LocalModelStore,
                registry: ModelRegistryResource, warehouse: Warehouse) -> dg.MaterializeResult:
        key = context.partition_key
        lookups = inputs.lookups_for(family, task)
        base = inputs.with_lookups(warehouse, family, inputs.records(warehouse, family, key), lookups)
        # of a task this one uses, only what its items read: its provenance and JSON columns were ~90 % of the read
        used = {u: (family.tasks[u], inputs.answers(warehouse, family, u, key,
                                                    columns=family.tasks[u].item_source_columns()))
                for u in task.spec.uses}
        columns = inputs.item_names(family, lookups)
        items = build_items(task, base, list(family.record.fields), columns, used)
        if getattr(task.spec, "retrieval", None) is not None:
            docs = retrieve(warehouse, family, task, items)
            for item, found in zip(items, docs):
                item.documents = tuple(found)
        provider = local_provider(context, family, task, local_models, registry, warehouse)
        # LLM calls use the registered prompt the route names, not the template file as it is now
        live = live_task(family, task, registry, actor(context)) if _remote(family, task) else task
        # routed tasks answer with their LLM champion configuration (its model, params and prompt), else locally
        session, live, llm_note = live_session(context, family, live, router, registry, provider, warehouse, key)
        batch = session.run(live, items)
        frame = task_frame(task, batch.results)
        prompt_meta = {}
        if _remote(family, task):
            frame = with_prompt_versions(frame, live, provider.name)
            prompt_meta = {"prompt_version": dg.MetadataValue.text(prompt_version(live) or "")}
        if task.type == "draft":
            frame = apply_output_guardrails(task, frame, dict(zip(base["record_id"], texts(base, task.text_fields))))
        meta = {**_task_metadata(task, frame, session.stats().as_metadata()), **prompt_meta}
        if llm_note:
            meta["llm_configuration"] = dg.MetadataValue.text(llm_note)
        return dg.MaterializeResult(metadata={**meta, **store(warehouse, family.table(task.name), frame, key)})

    return answers


def _task_metadata(task: TaskDefinition, df: pd.DataFrame, router_stats: dict) -> dict:
    n = task.name
    meta: dict = {
        "dagster/row_count": len(df),
        "errors": int(df[f"{n}_error"].notna().sum()) if len(df) else 0,
        "model_versions": dg.MetadataValue.text(", ".join(map(str, df[f"{n}_model_version"].dropna().unique())) or "none"),
        "paths": counts_md(df[f"{n}_path"].value_counts().to_dict() if len(df) else {}, "path"),
        "preview": preview_md(df, ["record_id", *list(task.answer_columns())[:4], f"{n}_path"]),
    }
    for key, value in router_stats.items():
        if isinstance(value, bool) or value is None:
            continue
        meta.update(numeric({key: value}) if isinstance(value, (int, float)) else {key: dg.MetadataValue.text(str(value))})
    if task.type in ("classify", "sentiment"):
        meta["labels"] = counts_md(df[n].value_counts().to_dict() if len(df) else {}, n)
    if task.type == "classify" and len(df):
        meta.update(numeric({"mean_confidence": float(df[f"{n}_confidence"].mean())}))
    if task.type == "flag":
        meta.update({f"flagged.{r}": int(df[f"{n}_{r}"].fillna(False).astype(bool).sum()) for r in task.spec.rules})
    if task.type == "extract" and len(df):
        meta.update(numeric({f"found.{f}": float(df[f"{n}_{f}"].notna().mean()) for f in task.spec.fields}))
    if task.type == "draft":
        found = pd.Series([v for vs in df[f"{n}_violations"] for v in vs], dtype=object).value_counts().to_dict()
        meta["guardrail_violations"] = counts_md(found, "violation")
    return meta


def enriched_asset(family: Family) -> dg.AssetsDefinition:
    record_lookups, answer_lookups = inputs.record_lookups(family), inputs.answer_lookups(family)
    deps = [dg.AssetKey(family.key(n)) for n in ("raw_records", *family.tasks, *record_lookups, *answer_lookups)]
    truths = [(t, family.truth_field(t)) for t in family.tasks if family.truth_field(t)]

    @dg.asset(
        key=dg.AssetKey(family.key("enriched_records")),
        group_name=family.group("enrichment"),
        description=(
            "Records with every task's answer joined, and row-level provenance (model and prompt versions, "
            "input hash, partition, run id).\n\nOne row per valid input record; a record some task could not "
            "answer has status `failed` and keeps its failure_reason."
        ),
        deps=deps,
        partitions_def=batches(family),
        kinds={"python", "pandas", "sql"},
        owners=family.owners,
        code_version="2",
        freshness_policy=FRESHNESS_POLICIES["enriched_records"],
    )
    def enriched_records(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        # built and written a slice of records at a time: joined whole, this was a run's memory peak
        return dg.MaterializeResult(metadata=write_enriched(warehouse, family, context.partition_key,
                                                                   context.run_id, truths))

    return enriched_records


def enrichment_assets(family: Family) -> list[dg.AssetsDefinition]:
    return [*(task_asset(family, t) for t in family.tasks.values()), enriched_asset(family)]
