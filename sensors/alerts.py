"""Platform monitoring: one alert per failed run of any family, to the notifier and the audit log."""

import dagster as dg

from resources.audit import record_events
from resources.notifier import Notifier, alert_audit_event, run_failure_alert, scrub
from resources.router.resource import ModelRouter
from resources.warehouse import Warehouse


def _root_cause(error) -> str:
    """The message of the innermost cause (the user's exception, not Dagster's wrapper)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return (error.message or "").strip()


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes one alert per failed run (family, run id, failed step, error) to the notifier and the audit log.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, notifier: Notifier, warehouse: Warehouse,
                             router: ModelRouter):
    run = context.dagster_run
    steps = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data.description if data and data.user_failure_data else None
        err = _root_cause(data.error) if data and data.error else ""
        steps.append({"step": event.step_key or "", "error": user or err})
    alert = run_failure_alert(
        run_id=run.run_id, job_name=run.job_name, failed_steps=steps,
        error=(context.failure_event.message or "").strip(), partition=run.tags.get("dagster/partition"),
        family=run.tags.get("family"),
    )
    alert = scrub(alert, router.secrets())  # an API key inside an error message never leaves in an alert
    sent = notifier.send(alert)
    inserted = record_events(warehouse, alert_audit_event(alert))
    context.log.info(f"alert {alert['alert_id']}: sent={sent} audited={bool(inserted)}")
