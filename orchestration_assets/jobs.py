"""A family's jobs: what its sensors, its schedules or a user launch."""

import dagster as dg

from .executors import executor_setting, platform_executor, workflow_run_config
from .family import Family
from .partitions import batches

# when this asset has materialized a partition, the batch has gone through the whole workflow
LAST_PARTITIONED_ASSET = "audit_log"

# Default run config of the batch workflow: a process per step so independent tasks run in
# parallel, started from a forkserver that has the code location and its heavy libraries already
# imported. Measured on a 518-record batch, 2 cores: 26 s, against 65 s with Dagster's default
# spawn start method (each step re-imports everything); in-process takes 8 s but serially.
PARALLEL_STEPS = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": 4,
                "start_method": {
                    "forkserver": {"preload_modules": ["orchestration_assets.definitions", "sklearn.svm", "pandas"]}
                },
            }
        }
    }
}


# The small jobs (a few steps in a row, nothing to parallelise) run in one process: the multiprocess
# default re-imports the code location per step, ~4x the time of the work itself.
SERIAL = dg.in_process_executor


def _groups(family: Family, *stages: str) -> dg.AssetSelection:
    return dg.AssetSelection.groups(*(family.group(s) for s in stages))


def _keys(family: Family, *assets: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(dg.AssetKey(family.key(a)) for a in assets))


def _llm_names(family: Family) -> list[str]:
    from .llm_models import routed_tasks

    return [f"{t.name}_llm_{s}" for t in routed_tasks(family) for s in ("config", "evaluation", "champion")]


def _llm(family: Family) -> dg.AssetSelection:
    return _keys(family, *_llm_names(family)).without_checks()


def family_jobs(family: Family) -> list[dg.JobDefinition]:
    tags = {"family": family.name}
    # the multi-step jobs run where the deployment says (PLATFORM_EXECUTOR, README "Production")
    executor = executor_setting()
    steps = platform_executor(executor)
    lookups = list(family.spec.context)
    classify = [t.name for t in family.tasks_of("classify")]
    jobs = [
        dg.define_asset_job(
            name=family.job_name("workflow"),
            # routed tasks' LLM configurations are evaluated and promoted first, without their blocking gate
            # checks: a refused challenger keeps the champion, it must not stop the batch
            selection=_groups(family, "ingestion", "enrichment", "governance", "kpis") | _llm(family),
            partitions_def=batches(family),
            description=f"The whole {family.name} workflow for one batch: ingest, enrich, route, audit, review, "
                        "dispatch, KPIs.",
            tags={**tags, "workflow": "batch"},
            executor_def=steps,
            config=workflow_run_config(executor, PARALLEL_STEPS),
        ),
        dg.define_asset_job(
            name=family.job_name("ingest"), executor_def=steps, selection=_groups(family, "ingestion"),
            partitions_def=batches(family),
            description=f"Ingest one {family.name} batch and refresh its context lookups, with their data checks.",
            tags=tags,
        ),
        dg.define_asset_job(
            name=family.job_name("kpis"), executor_def=SERIAL, selection=_groups(family, "kpis"), tags=tags,
            description=f"Recompute the {family.name} KPI tables over every routed batch.",
        ),
        dg.define_asset_job(
            name=family.job_name("dispatch"), executor_def=SERIAL,
            selection=_keys(family, "review_decisions", "review_queue", "review_feedback", "dispatches", "kpi_review"),
            description=f"Deliver approved and auto_send {family.name} outputs exactly once; refresh the review queue, "
                        "feedback and review KPIs.",
            tags={**tags, "workflow": "review"},
        ),
    ]
    if lookups:
        jobs.append(dg.define_asset_job(
            name=family.job_name("context_refresh"), executor_def=SERIAL, selection=_keys(family, *lookups), tags=tags,
            description=f"Reload the {family.name} context lookups: {', '.join(lookups)}."))
    if classify:
        jobs.append(dg.define_asset_job(
            name=family.job_name("training"), executor_def=SERIAL, selection=_groups(family, "models"), tags={**tags, "workflow": "models"},
            description=f"Retrain the {family.name} classifiers ({', '.join(classify)}), evaluate each challenger "
                        "against its champion on the golden set, promote only if the blocking gates pass."))
        jobs.append(dg.define_asset_job(
            name=family.job_name("evaluation"), executor_def=SERIAL,
            selection=_keys(family, *(f"{t}_{s}" for t in classify for s in ("evaluation", "champion")), "model_registry"),
            tags={**tags, "workflow": "models"},
            description=f"Evaluate the current {family.name} challengers against their champions and promote the "
                        "ones that pass the gates."))
    if _llm_names(family):
        jobs.append(dg.define_asset_job(
            name=family.job_name("llm_evaluation"), executor_def=SERIAL, selection=_keys(family, *_llm_names(family)),
            tags={**tags, "workflow": "models"},
            description=f"Register the LLM configurations the {family.name} routing names, evaluate them on the golden "
                        "set through the router and promote the cheapest that passes the blocking gates."))
    return jobs
