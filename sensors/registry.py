"""The registry sensor (a new challenger is evaluated) and the weekly retrain-and-evaluate schedule."""


import dagster as dg

from orchestration_assets.jobs import model_evaluation_job, model_training_job
from resources.registry import CLASSIFY, ModelRegistryResource


@dg.sensor(
    job=model_evaluation_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the model registry: when a task gets a challenger that has no golden-set evaluation yet "
        "(e.g. registered by the CLI, a notebook or another deployment), runs the evaluation and the "
        "gated promotion. Each challenger is evaluated once (run key and cursor remember it)."
    ),
)
def new_challenger_sensor(context: dg.SensorEvaluationContext, registry: ModelRegistryResource):
    reg = registry.get()
    challenger = reg.challenger(CLASSIFY)
    if challenger is None:
        return dg.SkipReason("no challenger in the registry")
    if context.cursor == challenger.version:
        return dg.SkipReason(f"challenger {challenger.version} was already sent to evaluation")
    if reg.latest_evaluation(CLASSIFY, challenger_version=challenger.version) is not None:
        return dg.SensorResult(
            skip_reason=f"challenger {challenger.version} already has an evaluation", cursor=challenger.version
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=f"evaluate:{CLASSIFY}:{challenger.version}",
            tags={"challenger_version": challenger.version, "trigger": "new_challenger"},
        )],
        cursor=challenger.version,
    )


weekly_retraining = dg.ScheduleDefinition(
    name="weekly_retraining",
    job=model_training_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every Monday 03:00 UTC: retrain the triage classifier on the labelled set plus reviewed "
        "feedback, evaluate challenger vs champion on the golden set and promote only if the gates pass."
    ),
)

registry_sensors = [new_challenger_sensor]
registry_schedules = [weekly_retraining]
