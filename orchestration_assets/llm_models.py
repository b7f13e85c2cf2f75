"""LLM configuration assets of a family: per routed task, register -> evaluate through the router (+ gates) -> promote.

``<task>_llm_config`` registers the configuration(s) the routing YAML names (catalog model, model
id, params, prompt version; every ``candidates`` entry) as versions, the first new one as
challenger. ``<task>_llm_evaluation`` scores every candidate and the champion on the family's
golden items through a router session of its own (run id ``llm-eval-...``: cached, costed in the
spend ledger, held to the family's budget, retried) and picks the cheapest one that passes every
gate; its gate checks are blocking in the model jobs. ``<task>_llm_champion`` promotes the pick
only when its gates pass (re-checked) and otherwise keeps the champion, saying why. Live traffic
answers with the champion (:func:`live_session`); until a task has one, the local provider does.

In the batch workflow these assets run before the task (unpartitioned, once per run), without
their checks: a refused challenger must not stop a batch, it only keeps the champion.
"""

from typing import Any
from uuid import uuid4

import dagster as dg
import pandas as pd

from resources.providers.definition import TaskDefinition
from resources.providers.local.store import LocalModelStore
from resources.registry.resource import ModelRegistryResource
from resources.router.resource import ModelRouter
from resources.warehouse import Warehouse

from . import inputs
from .family import Family
from .provision import actor, local_provider, training_set
from .ui_metadata import preview_md

EVALUATION_COLUMNS = ["version", "role", "model", "macro_f1", "accuracy", "field_accuracy", "judge_score",
                      "cost_per_item_usd", "p95_latency_ms", "passed"]


def routed_tasks(family: Family) -> list[TaskDefinition]:
    """Tasks whose route names a remote model: each has LLM configuration assets."""
    return [t for t in family.tasks.values() if family.route(t.name).remote_chain()]


def llm_thresholds(family: Family):
    return family.spec.promotion.llm


def _key(family: Family, name: str) -> dg.AssetKey:
    return dg.AssetKey(family.key(name))


def champion_key(family: Family, task: str) -> dg.AssetKey:
    return _key(family, f"{task}_llm_champion")


def _configs(registry: ModelRegistryResource):
    from resources.registry.llm_configs import LlmConfigRegistry

    return LlmConfigRegistry(registry.get())


def candidate_configs(registry: ModelRegistryResource, router: ModelRouter, family: Family, task: TaskDefinition,
                      who: str):
    """The configurations the route names today, their prompt registered in the prompt registry."""
    from resources.providers.prompt_templates import template_text
    from resources.registry.llm_configs import config_for
    from resources.registry.llm_configs_routes import primary_models

    route = family.route(task.name)
    prompts = registry.prompts()
    current = prompts.register(family.name, task.name, template_text(task), actor=who)
    prompt = current if route.prompt == "champion" else prompts.resolve(family.name, task.name, route.prompt)
    catalog = router.catalog()
    return [config_for(task, m, catalog, prompt) for m in primary_models(route)]


def _golden(family: Family, task: TaskDefinition, warehouse: Warehouse, n: int):
    """(items, golden labels, golden fields or None, golden rows) of the task's golden set, at most ``n`` rows.

    A classify task's own golden rows; any other task the golden rows of its rubric's label task, else
    of the family's first classify task (a family without one has no golden set: nothing is evaluated).
    """
    from resources.evaluation.scores import golden_items

    from .models import draft_items_for

    if task.type == "classify":
        _, golden = training_set(family, task, warehouse)
        golden = golden.head(n).reset_index(drop=True)
        labels = golden["label"].astype(str).tolist()
        # the record's own fields, as live traffic sends them, plus the classifier's features
        items = draft_items_for(family, task, task, golden, warehouse)(labels)
        own = (task.name, f"{task.name}_", f"{task.name}.")
        for item, feats in zip(items, golden_items(task, golden)):
            kept = {k: v for k, v in item.fields.items() if k != task.name and not k.startswith(own[1:])}
            item.fields = {**kept, **feats.fields}
        return items, labels, None, golden
    label_name = getattr(getattr(task.spec, "rubric", None), "label_task", None)
    label_task = family.tasks.get(label_name) if label_name else None
    label_task = label_task or next(iter(family.tasks_of("classify")), None)
    if label_task is None:
        return _declared_golden(family, task, warehouse, n)
    _, golden = training_set(family, label_task, warehouse)
    golden = golden.head(n).reset_index(drop=True)
    labels = golden["label"].astype(str).tolist()
    items = draft_items_for(family, task, label_task, golden, warehouse)(labels)
    truths = _golden_fields(family, task, label_task, golden) if task.type == "extract" else None
    return items, labels, truths, golden


def _declared_golden(family: Family, task: TaskDefinition, warehouse: Warehouse, n: int):
    """The family's ``promotion.llm.golden_file`` records (a family without a classify task has no golden labels).

    Their extract truths come from an ``expected`` object per row (``{field: value}``); without the file there is
    no golden set and nothing is evaluated (the gate says so).
    """
    from .core.items import build_items
    from .core.labelled import mapped, read_table_file

    declared = llm_thresholds(family).golden_file
    if declared is None:
        return [], [], None, None
    raw = mapped(read_table_file(family.path(declared)), family.record.columns).head(n).reset_index(drop=True)
    ids = (raw[family.id_field].astype(str) if family.id_field in raw.columns
           else pd.Series([f"golden-{i + 1}" for i in range(len(raw))]))
    rows = raw.assign(record_id=ids, input_hash="")
    lookups = inputs.lookups_for(family, task)
    rows = inputs.with_lookups(warehouse, family, rows, lookups)
    items = build_items(task, rows, list(family.record.fields), inputs.item_names(family, lookups))
    truths = None
    if task.type == "extract" and "expected" in raw.columns:
        truths = [{f: v for f, v in (e if isinstance(e, dict) else {}).items() if f in task.spec.fields and v is not None}
                  for e in raw["expected"]]
    golden = pd.DataFrame({"record_id": ids, "label": "", "text": [i.text for i in items]})
    return items, [None] * len(items), truths, golden


def _golden_fields(family: Family, task: TaskDefinition, label_task: TaskDefinition, golden) -> list[dict] | None:
    """Known values of an extract task's fields for the golden rows: labelled-file columns ``<task>_<field>``."""
    from .core.labelled import mapped, read_table_file

    raw = mapped(read_table_file(family.path(label_task.spec.training_data)), family.record.columns)
    columns = {f: f"{task.name}_{f}" for f in task.spec.fields if f"{task.name}_{f}" in raw.columns}
    if not columns or family.id_field not in raw.columns:
        return None
    rows = raw.drop_duplicates(family.id_field).set_index(family.id_field).reindex(golden["record_id"].astype(str))
    return [{f: v for f, c in columns.items() if (v := row[c]) is not None and v == v}
            for _, row in rows.iterrows()]


def _judge(task: TaskDefinition, items, labels, session):
    """For draft tasks: the judge over the candidate's drafts (the keyword rubric unless the rubric names a judge)."""
    from resources.evaluation.judge import DraftCase, judge_drafts

    def judge(results) -> dict[str, Any]:
        cases = [DraftCase(record_id=i.id, text=(r.output or {}).get("text") if r.ok else None,
                           cited_ids=[str(c) for c in ((r.output or {}).get("cited_ids") or [])] if r.ok else [],
                           documents=list(i.documents), label=y) for r, i, y in zip(results, items, labels)]
        report = judge_drafts(task, cases, session=session)
        return {"judge_score": report.mean, "judge": report.judge, "judge_cost_usd": report.cost_usd,
                "judge_unscored": report.unscored}

    return judge if task.type == "draft" else None


def _score(session, task: TaskDefinition, items, labels, truths, judge_session=None) -> dict[str, Any]:
    from resources.registry.llm_configs_lifecycle import score_results

    results = session.run(task, items).results if items else []
    judge = _judge(task, items, labels, judge_session) if items else None
    return score_results(task, results, labels=labels, truths=truths, judge=judge)


def evaluate(context, family: Family, task: TaskDefinition, registry: ModelRegistryResource, router: ModelRouter,
             local_models: LocalModelStore, warehouse: Warehouse):
    """Score candidates and champion through the router, choose, record. Returns (record, the ledger run id)."""
    from resources.registry.lifecycle import golden_hash
    from resources.registry.llm_configs_lifecycle import record
    from resources.registry.llm_configs import task_for
    from resources.registry.llm_configs_routes import forced_route, route_name, session_for

    t = llm_thresholds(family)
    who = actor(context)
    configs = _configs(registry)
    candidates = candidate_configs(registry, router, family, task, who)
    champion = configs.champion(family.name, task.name)
    items, labels, truths, golden = _golden(family, task, warehouse, t.golden_rows)
    local = local_provider(context, family, task, local_models, registry, warehouse)
    run_id = f"llm-eval-{uuid4().hex[:12]}"  # its own run in the ledger; the family's day budget still holds
    route = family.route(task.name)
    catalog = router.catalog()

    def session(cfg):
        routes = {task.name: forced_route(route, route_name(cfg, catalog))} if cfg is not None else {}
        return session_for(router, family=family.name, routes=routes, configs={task.name: cfg} if cfg else {},
                           budget=family.spec.budget, local=local, warehouse=warehouse, run_id=run_id,
                           logger=context.log)

    def score(cfg):
        s = session(cfg)
        return _score(s, task_for(task, cfg) if cfg else task, items, labels, truths, judge_session=s)

    scored = [(cfg, score(cfg)) for cfg in candidates]
    if champion is not None:
        base = next((m for c, m in scored if c.version == champion.version), None) or score(champion)
        base_key, base = champion.version, {**base, "label": "champion"}
    else:
        base_key, base = "local", {**score(None), "label": "local champion"}
    digest = golden_hash(golden) if golden is not None and len(golden) else "none"
    rec = record(configs, family=family.name, task=task, candidates=scored, champion=champion, baseline_key=base_key,
                 baseline=base, thresholds=t, golden_set_hash=digest, actor=who, run_id=context.run_id)
    return rec, run_id


def llm_config_assets(family: Family, task: TaskDefinition) -> list:
    common = dict(group_name=family.group("models"), owners=family.owners, code_version="1")
    name = task.name

    @dg.asset(key=_key(family, f"{name}_llm_config"), kinds={"python", "openai"}, **common,
              deps=[_key(family, f"{name}_prompt")],
              description=f"The LLM configuration(s) the routing of {name!r} names (catalog model, model id, params, "
                          "prompt version), registered as versions; a new one becomes the challenger.")
    def llm_config(context: dg.AssetExecutionContext, registry: ModelRegistryResource,
                   router: ModelRouter) -> dg.Output[pd.DataFrame]:
        from resources.registry.llm_configs import as_row

        configs, who = _configs(registry), actor(context)
        champ = configs.champion(family.name, name)
        rows = []
        for i, cfg in enumerate(candidate_configs(registry, router, family, task, who)):
            is_champ = champ is not None and champ.version == cfg.version
            alias = "challenger" if i == 0 and not is_champ else None
            _, created, now = configs.register(cfg, actor=who, alias=alias)
            rows.append({**as_row(cfg), "registered": created, "alias": now,
                         "registered_at": pd.Timestamp.now(tz="UTC")})
        df = pd.DataFrame(rows)
        return dg.Output(df, metadata={
            "versions": dg.MetadataValue.text(", ".join(df["version"])),
            "new_versions": int(df["registered"].sum()),
            "champion": dg.MetadataValue.text(champ.version if champ else "none"),
            "preview": preview_md(df, ["model", "model_id", "prompt_version", "version", "alias"]),
        })

    @dg.asset(key=_key(family, f"{name}_llm_evaluation"), kinds={"python", "openai"}, deps=[llm_config.key],
              pool="model_calls", **common,
              description=f"Every candidate configuration of {name!r} and its champion scored on the golden set "
                          "through the router (cached, costed, budgeted, retried); the cheapest candidate that "
                          "passes every gate is chosen. One row per scored version.")
    def llm_evaluation(context: dg.AssetExecutionContext, registry: ModelRegistryResource, router: ModelRouter,
                       local_models: LocalModelStore, warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
        from resources.router.ledger import ledger_spend

        rec, run_id = evaluate(context, family, task, registry, router, local_models, warehouse)
        sel = rec.metrics.get("selection", {})
        rows = []
        for version, m in rec.metrics.items():
            if version == "selection":
                continue
            role = "challenger" if version == rec.challenger_version else \
                "champion" if version == rec.champion_version else "baseline" if version == sel.get("baseline") \
                else "candidate"
            rows.append({"evaluation_id": rec.evaluation_id, "family": family.name, "task": name, "version": version,
                         "role": role, **{c: m.get(c) for c in EVALUATION_COLUMNS[2:]}, "rows": m.get("rows"),
                         "evaluated_at": rec.created_at})
        df = pd.DataFrame(rows)
        spent = ledger_spend(warehouse, family=family.name, run_id=run_id, table=router.catalog().ledger_table)
        t = llm_thresholds(family)
        return dg.Output(df, metadata={
            "evaluation_id": dg.MetadataValue.text(rec.evaluation_id),
            "ledger_run_id": dg.MetadataValue.text(run_id),
            "golden_rows": rec.golden_rows,
            "gates_passed": rec.passed,
            "choice": dg.MetadataValue.text(sel.get("reason", "")),
            "gates": dg.MetadataValue.md(pd.DataFrame(rec.gates)[["name", "passed", "reason"]].to_markdown(index=False)
                                         if rec.gates else "_no gate_"),
            "thresholds": dg.MetadataValue.json(t.model_dump()),
            "evaluation_cost_usd": dg.MetadataValue.float(float(spent.cost_usd)),
            "evaluation_calls": int(spent.calls),
            "preview": preview_md(df, ["role", "model", "macro_f1", "field_accuracy", "judge_score",
                                       "cost_per_item_usd", "p95_latency_ms", "passed"]),
        })

    @dg.asset(key=champion_key(family, name), kinds={"python", "sql"}, deps=[llm_evaluation.key], **common,
              description=f"The LLM champion of {name!r} after the gates; one row. Promotes the evaluation's choice "
                          "only when every gate passed (re-checked here), else keeps the champion and says why.")
    def llm_champion(context: dg.AssetExecutionContext, registry: ModelRegistryResource,
                     router: ModelRouter) -> dg.Output[pd.DataFrame]:
        from resources.registry.llm_configs_lifecycle import promote_if_passed

        configs = _configs(registry)
        ev = configs.latest_evaluation(family.name, name)
        if ev is None:
            raise dg.Failure(f"{family.name}.{name}: no LLM evaluation yet; materialize {name}_llm_evaluation first")
        decision = promote_if_passed(configs, ev, llm_thresholds(family), actor=actor(context))
        if decision.promoted:
            _promote_prompt(registry, configs.get(family.name, name, decision.champion), decision, actor(context))
        context.log.info(f"{family.name}.{name}: {decision.reason}")
        current = configs.champion(family.name, name)
        df = pd.DataFrame([{"family": family.name, "task": name, "champion_version": current.version if current else None,
                            "model": current.model if current else None, "promoted": decision.promoted,
                            "previous_version": decision.previous, "challenger_version": decision.challenger,
                            "evaluation_id": decision.evaluation_id, "reason": decision.reason,
                            "decided_at": pd.Timestamp.now(tz="UTC")}])
        return dg.Output(df, metadata={
            "decision": dg.MetadataValue.text("promoted" if decision.promoted else "kept"),
            "champion_version": dg.MetadataValue.text(current.version if current else "none"),
            "champion": dg.MetadataValue.text(current.describe() if current else
                                              "none: the task is answered by the local provider"),
            "evaluation_id": dg.MetadataValue.text(decision.evaluation_id or "none"),
            "reason": dg.MetadataValue.text(decision.reason),
        })

    return [llm_config, llm_evaluation, llm_champion]


def _promote_prompt(registry: ModelRegistryResource, cfg, decision, who: str) -> None:
    """The promoted configuration's prompt becomes the prompt registry's champion too (same gate, same reason)."""
    from resources.registry.records import RegistryError

    prompts = registry.prompts()
    champ = prompts.alias(cfg.family, cfg.task, "champion")
    if champ is not None and champ.version == cfg.prompt_version:
        return
    try:
        prompts.promote(cfg.family, cfg.task, cfg.prompt_version, actor=who, evaluation_id=decision.evaluation_id,
                        reason=f"its LLM configuration {cfg.version} passed the gates")
    except RegistryError:
        pass  # the configuration keeps its own copy of the text; live traffic binds that


def _gate_check(family: Family, task: TaskDefinition, gate_name: str) -> dg.AssetChecksDefinition:
    from resources.evaluation.llm_gates import LLM_GATE_DESCRIPTIONS

    @dg.asset_check(name=gate_name, asset=_key(family, f"{task.name}_llm_evaluation"), blocking=True,
                    description=LLM_GATE_DESCRIPTIONS[gate_name])
    def _check(registry: ModelRegistryResource) -> dg.AssetCheckResult:
        from resources.registry.llm_configs import LlmConfigRegistry
        from resources.registry.llm_configs_lifecycle import evaluation_gates

        ev = LlmConfigRegistry(registry.get()).latest_evaluation(family.name, task.name)
        if ev is None:
            return dg.AssetCheckResult(passed=False, description=f"no LLM evaluation of {task.key} yet")
        gate = next(g for g in evaluation_gates(ev, llm_thresholds(family)) if g.name == gate_name)
        meta = {"reason": dg.MetadataValue.text(gate.reason), "evaluation_id": dg.MetadataValue.text(ev.evaluation_id),
                "challenger_version": dg.MetadataValue.text(ev.challenger_version or "none"),
                "champion_version": dg.MetadataValue.text(ev.champion_version or "none")}
        meta.update({k: dg.MetadataValue.float(float(v)) for k, v in gate.details.items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return dg.AssetCheckResult(passed=gate.passed, severity=dg.AssetCheckSeverity.ERROR,
                                   description=gate.reason, metadata=meta)

    return _check


def llm_assets(family: Family) -> list:
    return [a for t in routed_tasks(family) for a in llm_config_assets(family, t)]


def llm_checks(family: Family) -> list[dg.AssetChecksDefinition]:
    from resources.evaluation.llm_gates import LLM_GATE_NAMES

    return [_gate_check(family, t, g) for t in routed_tasks(family) for g in LLM_GATE_NAMES]


def live_session(context, family: Family, task: TaskDefinition, router: ModelRouter, registry: ModelRegistryResource,
                 local, warehouse: Warehouse, partition: str | None):
    """(session, the task to run, a note) for live traffic: every routed task answered by its LLM champion."""
    from resources.registry.llm_configs import LlmConfigRegistry
    from resources.registry.llm_configs_routes import live_plan, session_for

    plan = live_plan(family.name, family.spec.routing, LlmConfigRegistry(registry.get()), router.catalog())
    for name, note in plan.notes.items():
        if name == task.name:
            context.log.info(f"{family.name}.{name}: {note}")
    session = session_for(router, family=family.name, routes=plan.routes, configs=plan.configs,
                          budget=family.spec.budget, local=local, warehouse=warehouse, run_id=context.run_id,
                          partition=partition, logger=context.log)
    return session, plan.task(task), plan.notes.get(task.name)
