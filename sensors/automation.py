"""Declarative automation: assets with an AutomationCondition follow their upstream by themselves."""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description=(
        "Evaluates the assets' automation conditions, e.g. `review_queue` refreshes itself after "
        "new routing or reviewer decisions however they were materialized."
    ),
)
