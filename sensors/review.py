"""A family's review-decision sensor: new decisions start one dispatch run."""

import dagster as dg

from orchestration_assets.core.review import read_review_decisions
from orchestration_assets.family import Family
from resources.warehouse import Warehouse


def review_decision_sensor(family: Family) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{family.name}__review_decision_sensor",
        job_name=family.job_name("dispatch"),
        minimum_interval_seconds=10,  # one indexed query: cheap, and a decided record should go out soon
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the {family.name} rows of review_decisions (written by the launchpad job and the CLI); new "
            "decisions start one dispatch run. The cursor is the highest review id already handed to a run."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
        last = int(context.cursor) if context.cursor else 0
        decisions = read_review_decisions(warehouse, family.name)
        new = decisions[decisions["review_id"] > last]
        if new.empty:
            return dg.SkipReason(f"no {family.name} review decisions after id {last}")
        top = int(new["review_id"].max())
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"review-decisions:{family.name}:{top}", tags={
                "review_ids": f"{int(new['review_id'].min())}-{top}", "decisions": str(len(new)), "family": family.name})],
            cursor=str(top),
        )

    return _sensor
