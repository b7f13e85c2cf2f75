"""Review and monitoring sensors: dispatch on new review decisions, alert on failed runs."""

import dagster as dg

from orchestration_assets.core.review import read_review_decisions
from resources.audit import record_events
from resources.notifier import Notifier, alert_audit_event, run_failure_alert
from resources.warehouse import Warehouse


@dg.sensor(
    job_name="dispatch_job",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the review_decisions table (written by the launchpad job and the CLI); new decisions "
        "start one dispatch run. The cursor is the highest review id already handed to a run."
    ),
)
def review_decision_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    last = int(context.cursor) if context.cursor else 0
    decisions = read_review_decisions(warehouse)
    new = decisions[decisions["review_id"] > last]
    if new.empty:
        return dg.SkipReason(f"no review decisions after id {last}")
    top = int(new["review_id"].max())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"review-decisions:{top}",
                tags={"review_ids": f"{int(new['review_id'].min())}-{top}", "decisions": str(len(new))},
            )
        ],
        cursor=str(top),
    )


def _root_cause(error) -> str:
    """The message of the innermost cause (the user's exception, not Dagster's wrapper)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return (error.message or "").strip()


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes one alert per failed run (run id, failed step, error) to the notifier and the audit log.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, notifier: Notifier, warehouse: Warehouse):
    run = context.dagster_run
    steps = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data.description if data and data.user_failure_data else None
        err = _root_cause(data.error) if data and data.error else ""
        steps.append({"step": event.step_key or "", "error": user or err})
    alert = run_failure_alert(
        run_id=run.run_id,
        job_name=run.job_name,
        failed_steps=steps,
        error=(context.failure_event.message or "").strip(),
        partition=run.tags.get("dagster/partition"),
    )
    sent = notifier.send(alert)
    inserted = record_events(warehouse, alert_audit_event(alert))
    context.log.info(f"alert {alert['alert_id']}: sent={sent} audited={bool(inserted)}")


review_sensors = [review_decision_sensor, run_failure_alert_sensor]
