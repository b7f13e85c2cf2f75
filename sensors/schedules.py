"""A family's recurring jobs, on the crons of its spec (``schedules:``; null turns one off)."""

import dagster as dg

from orchestration_assets.family import Family
from orchestration_assets.partitions import batches


def family_schedules(family: Family) -> list[dg.ScheduleDefinition]:
    crons = family.spec.schedules
    running = dg.DefaultScheduleStatus.RUNNING
    out: list[dg.ScheduleDefinition] = []
    if crons.context_refresh and family.spec.context:
        out.append(dg.ScheduleDefinition(
            name=f"{family.name}__context_refresh", job_name=family.job_name("context_refresh"),
            cron_schedule=crons.context_refresh, execution_timezone="UTC", default_status=running,
            description=f"Reload the {family.name} context lookups."))
    if crons.kpis:
        out.append(dg.ScheduleDefinition(
            name=f"{family.name}__daily_kpis", job_name=family.job_name("kpis"), cron_schedule=crons.kpis,
            execution_timezone="UTC", default_status=running,
            description=f"Recompute the {family.name} KPI tables over everything routed so far."))
    if crons.retraining and family.tasks_of("classify"):
        out.append(dg.ScheduleDefinition(
            name=f"{family.name}__retraining", job_name=family.job_name("training"), cron_schedule=crons.retraining,
            execution_timezone="UTC", default_status=running,
            description=f"Retrain the {family.name} classifiers on the labelled data plus reviewed feedback; promote "
                        "only if the gates pass."))
    if crons.catchup:
        out.append(_catchup(family, crons.catchup))
    return out


def _catchup(family: Family, cron: str) -> dg.ScheduleDefinition:
    parts = batches(family)
    last = dg.AssetKey(family.key("routing_decisions"))

    @dg.schedule(
        name=f"{family.name}__catchup", job_name=family.job_name("workflow"), cron_schedule=cron,
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs the {family.name} workflow for every registered batch whose routing decisions are "
                    "missing (a run failed, or a partition was added by hand).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        registered = context.instance.get_dynamic_partitions(parts.name)
        done = context.instance.get_materialized_partitions(last)
        missing = [k for k in registered if k not in done]
        if not missing:
            return dg.SkipReason(f"every registered {family.name} batch has routing decisions")
        stamp = context.scheduled_execution_time.strftime("%Y%m%d%H") if context.scheduled_execution_time else "manual"
        return [dg.RunRequest(partition_key=k, run_key=f"catchup:{family.name}:{k}:{stamp}",
                              tags={"catchup": "true", "family": family.name}) for k in missing]

    return _schedule
