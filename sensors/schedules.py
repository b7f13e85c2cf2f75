"""Recurring jobs: daily context refresh, daily KPIs, hourly catch-up of unenriched batches."""


import dagster as dg

from orchestration_assets.ingestion import ticket_batches
from orchestration_assets.jobs import context_refresh_job, kpi_job, triage_job

daily_context_refresh = dg.ScheduleDefinition(
    name="daily_context_refresh",
    job=context_refresh_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Reload CRM accounts, product catalog and knowledge base every morning at 05:00 UTC.",
)

daily_kpis = dg.ScheduleDefinition(
    name="daily_kpis",
    job=kpi_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Recompute the KPI tables every night at 00:30 UTC over everything routed so far.",
)


@dg.schedule(
    job=triage_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Hourly catch-up: runs the triage workflow for every registered batch whose routing "
        "decisions are missing (e.g. a run failed or a partition was added by hand)."
    ),
)
def hourly_enrichment_catchup(context: dg.ScheduleEvaluationContext):
    instance = context.instance
    registered = instance.get_dynamic_partitions(ticket_batches.name)
    done = instance.get_materialized_partitions(dg.AssetKey("routing_decisions"))
    missing = [k for k in registered if k not in done]
    if not missing:
        return dg.SkipReason("every registered batch has routing decisions")
    hour = context.scheduled_execution_time.strftime("%Y%m%d%H") if context.scheduled_execution_time else "manual"
    return [dg.RunRequest(partition_key=k, run_key=f"catchup:{k}:{hour}", tags={"catchup": "true"}) for k in missing]


schedules = [daily_context_refresh, daily_kpis, hourly_enrichment_catchup]
