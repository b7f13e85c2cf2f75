"""The inbox sensor of a family: new batch files become dynamic partitions and workflow runs."""

import json

import dagster as dg

from orchestration_assets.family import Family
from orchestration_assets.ingestion import inbox_folder
from orchestration_assets.core.records import suffixes
from orchestration_assets.partitions import batches
from resources.sources import Inbox

MAX_FILES_PER_TICK = 25


def _load_cursor(cursor: str | None) -> set[str]:
    if not cursor:
        return set()
    try:
        return set(json.loads(cursor).get("seen", []))
    except (json.JSONDecodeError, AttributeError):
        return set()


def inbox_sensor(family: Family) -> dg.SensorDefinition:
    parts = batches(family)
    allowed = suffixes(family.spec.source.formats)

    @dg.sensor(
        name=f"{family.name}__inbox_sensor",
        job_name=family.job_name("workflow"),
        minimum_interval_seconds=10,  # a directory listing: cheap, and an arriving batch should not wait
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the {family.name} inbox folder; each new batch file ({', '.join(allowed)}) becomes a partition "
            "and one workflow run. A file is processed once (the cursor remembers it)."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, inbox: Inbox):
        seen = _load_cursor(context.cursor)
        folder = inbox_folder(family, inbox)
        present = inbox.batch_files(folder, allowed)
        # a file whose partition is already registered was handed over by someone else (the
        # quickstart, a user in the UI, an earlier deployment of this sensor): not processed again
        registered = set(context.instance.get_dynamic_partitions(parts.name))
        files = [p for p in present if p.name not in seen and p.name not in registered]
        if not files:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no new batch files in {folder}"),
                                   cursor=json.dumps({"seen": sorted(seen | {p.name for p in present})}))
        new_keys = [p.name for p in files[:MAX_FILES_PER_TICK]]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=k, run_key=f"inbox:{family.name}:{k}",
                                        tags={"inbox_file": k, "family": family.name}) for k in new_keys],
            dynamic_partitions_requests=[parts.build_add_request(new_keys)],
            cursor=json.dumps({"seen": sorted(seen | set(new_keys))}),
        )

    return _sensor
