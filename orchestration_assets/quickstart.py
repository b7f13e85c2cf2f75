"""``python -m orchestration_assets.quickstart``: run every family's workflow on its bundled sample batches.

For each family of the defs folder: seed its inbox with its sample batches, register each file as
a partition, train, evaluate and promote its classifiers, then run its workflow job for each batch
in-process against the Dagster instance in ``$DAGSTER_HOME`` (so the UI started afterwards shows
every materialization, check and run). Re-running is idempotent: batches already materialized are
skipped unless ``--force`` is given. A bad spec or setting prints its message, not a traceback.
"""

import argparse
import os
import sys
import time
from pathlib import Path

DAGSTER_YAML = """\
# Written by orchestration_assets.quickstart. Local instance storage (SQLite under DAGSTER_HOME).
# For PostgreSQL run/event storage and other executors see README "Production".
telemetry:
  enabled: false
freshness:
  enabled: true
# A dropped file's latency is the sum of sensor wait, queue, launch and run (bench/latency.py):
# sensors tick in threads, so an inbox sensor is not held up behind every other sensor of every
# family (the daemon loops every 5 s), and a queued run starts within a second, not up to 5 s
# later (Dagster's default dequeue interval).
sensors:
  use_threads: true
  num_workers: 4
run_queue:
  dequeue_interval_seconds: 1
concurrency:
  pools:
    granularity: op
    default_limit: 4   # steps calling remote models at once (pool model_calls), across all runs
# The daemon (`dagster dev`) watches runs: none stays STARTING or CANCELING, or runs, forever, and
# the pool slots a finished run still holds are freed. run_health_sensor adds what the local run
# launcher cannot see: runs whose process is gone, and steps waiting on a pool too long.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 7200            # per run; a run tag dagster/max_runtime overrides it
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 30
"""

# step-by-step DEBUG events go to the run's log in the UI; the terminal shows warnings and errors
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home"))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="re-run batches that were already materialized")
    parser.add_argument("--family", action="append", default=None, help="only this family (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    home = ensure_dagster_home()

    import dagster as dg

    from resources.configuration import ConfigError

    try:
        from .definitions import build_definitions
        from .loading import load_families

        families = load_families(Path(__file__).resolve().parent / "defs")
        defs = build_definitions()
    except ConfigError as exc:  # a family spec, the model catalog or an environment setting
        print(f"the configuration is invalid:\n{exc}", file=sys.stderr)
        return 2
    instance = dg.DagsterInstance.get()
    from sensors.run_health import recover_at_start

    recover_at_start(instance)  # no daemon watches in-process runs: free what killed ones still hold
    print(f"DAGSTER_HOME={home}")
    failed: list[str] = []
    started = time.perf_counter()
    for family in families:
        if args.family and family.name not in args.family:
            continue
        failed += run_family(defs, family, instance, force=args.force)
    if failed:
        print(f"failed: {failed}; open the runs in the UI for the failing step", file=sys.stderr)
        return 1
    print(f"all families done in {time.perf_counter() - started:.1f}s")
    summary(defs, families)
    print("start the UI with `dagster dev` (make run does it) and open http://127.0.0.1:3000")
    return 0


def run_family(defs, family, instance, *, force: bool) -> list[str]:
    import dagster as dg

    from .core.records import suffixes
    from .ingestion import inbox_folder
    from .jobs import LAST_PARTITIONED_ASSET

    from resources.sources import Inbox

    inbox = Inbox(root=os.getenv("INBOX_DIR", ""))  # resolved here: the definitions' resources hold EnvVars
    folder = inbox_folder(family, inbox)
    allowed = suffixes(family.spec.source.formats)
    copied = inbox.seed(folder, family.path(family.spec.source.sample), allowed) if family.spec.source.sample else []
    keys = [p.name for p in inbox.batch_files(folder, allowed)]
    print(f"{family.name}: inbox {folder} ({len(copied)} sample batch file(s) copied, {len(keys)} batch(es))")
    new = [k for k in keys if k not in set(instance.get_dynamic_partitions(family.partitions_name))]
    if new:
        instance.add_dynamic_partitions(family.partitions_name, new)
    failed = []
    tags = {"launched_by": "quickstart", "family": family.name}
    config = {**QUIET, **IN_PROCESS}
    if family.tasks_of("classify"):
        champions = [dg.AssetKey(family.key(f"{t.name}_champion")) for t in family.tasks_of("classify")]
        if force or not all(instance.get_latest_materialization_event(k) for k in champions):
            t0 = time.perf_counter()
            result = defs.resolve_job_def(family.job_name("training")).execute_in_process(
                instance=instance, tags=tags, raise_on_error=False, run_config=QUIET)
            print(f"  models: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - t0:.1f}s (run {result.run_id})")
            if not result.success:
                failed.append(f"{family.name}:models")
    job = defs.resolve_job_def(family.job_name("workflow"))
    done = instance.get_materialized_partitions(dg.AssetKey(family.key(LAST_PARTITIONED_ASSET)))
    for key in keys:
        if not force and key in done:
            print(f"  {key}: already materialized, skipped (use --force to re-run)")
            continue
        t0 = time.perf_counter()
        result = job.execute_in_process(partition_key=key, instance=instance, tags=tags, raise_on_error=False,
                                        run_config=config)
        print(f"  {key}: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - t0:.1f}s (run {result.run_id})")
        if not result.success:
            failed.append(f"{family.name}:{key}")
    return failed


def summary(defs, families) -> None:
    """What each family produced, read back from the warehouse."""
    from resources.warehouse import Warehouse

    wh = Warehouse(url=os.getenv("WAREHOUSE_URL", ""))
    print(f"warehouse {wh.display_url}")
    for family in families:
        counts = {a: wh.count_rows(family.table(a)) for a in ("raw_records", "quarantined_records", "enriched_records",
                                                             "routing_decisions", "dispatches")}
        line = ", ".join(f"{a}={n}" for a, n in counts.items())
        decisions = ""
        if counts["routing_decisions"]:
            d = wh.query(f'SELECT decision, COUNT(*) AS n FROM "{family.table("routing_decisions")}" '
                         "GROUP BY decision ORDER BY decision")
            decisions = "; " + ", ".join(f"{r.decision}={r.n}" for r in d.itertuples())
        print(f"  {family.name}: {line}{decisions}")


if __name__ == "__main__":
    raise SystemExit(main())
