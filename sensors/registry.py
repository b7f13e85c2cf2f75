"""A family's registry sensor: a new challenger (from the CLI, a notebook, another deployment) is evaluated."""

import json

import dagster as dg

from orchestration_assets.family import Family
from resources.registry.resource import ModelRegistryResource


def new_challenger_sensor(family: Family) -> dg.SensorDefinition | None:
    tasks = [t.name for t in family.tasks_of("classify")]
    if not tasks:
        return None

    @dg.sensor(
        name=f"{family.name}__new_challenger_sensor",
        job_name=family.job_name("evaluation"),
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the model registry: when a {family.name} classify task ({', '.join(tasks)}) gets a challenger "
            "without a golden-set evaluation, runs the evaluation and the gated promotion. Each challenger is "
            "evaluated once (run key and cursor remember it)."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, registry: ModelRegistryResource):
        reg = registry.get()
        sent = json.loads(context.cursor) if context.cursor else {}
        requests, skipped = [], []
        for task in tasks:
            challenger = reg.challenger(family.name, task)
            if challenger is None or sent.get(task) == challenger.version:
                continue
            sent[task] = challenger.version
            if reg.latest_evaluation(family.name, task, challenger_version=challenger.version) is not None:
                skipped.append(f"{task} challenger {challenger.version} already evaluated")
                continue
            requests.append(dg.RunRequest(
                run_key=f"evaluate:{family.name}:{task}:{challenger.version}",
                tags={"family": family.name, "task": task, "challenger_version": challenger.version,
                      "trigger": "new_challenger"}))
        if not requests:
            return dg.SensorResult(skip_reason="; ".join(skipped) or "no new challenger", cursor=json.dumps(sent))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sent))

    return _sensor
