"""The inbox sensor: new batch files become dynamic partitions and triage runs."""


import json

import dagster as dg

from orchestration_assets.ingestion import ticket_batches
from orchestration_assets.jobs import triage_job
from resources.sources import TicketInbox

MAX_FILES_PER_TICK = 25


def _load_cursor(cursor: str | None) -> set[str]:
    if not cursor:
        return set()
    try:
        return set(json.loads(cursor).get("seen", []))
    except (json.JSONDecodeError, AttributeError):
        return set()


@dg.sensor(
    job=triage_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the inbox folder; each new CSV/JSONL batch file becomes a `ticket_batches` "
        "partition and one triage run. A file is processed once (the cursor remembers it)."
    ),
)
def inbox_sensor(context: dg.SensorEvaluationContext, inbox: TicketInbox):
    seen = _load_cursor(context.cursor)
    # a file whose partition is already registered was handed over by someone else (the
    # quickstart, a user in the UI, an earlier deployment of this sensor): not processed again
    registered = set(context.instance.get_dynamic_partitions(ticket_batches.name))
    files = [p for p in inbox.batch_files() if p.name not in seen and p.name not in registered]
    if not files:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"no new batch files in {inbox.directory}"),
            cursor=json.dumps({"seen": sorted(seen | {p.name for p in inbox.batch_files()})}),
        )
    files = files[:MAX_FILES_PER_TICK]
    new_keys = [p.name for p in files]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=key, run_key=f"inbox:{key}", tags={"inbox_file": key}) for key in new_keys
        ],
        dynamic_partitions_requests=[ticket_batches.build_add_request(new_keys)],
        cursor=json.dumps({"seen": sorted(seen | set(new_keys))}),
    )
