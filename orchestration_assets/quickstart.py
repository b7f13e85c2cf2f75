"""`python -m orchestration_assets.quickstart`: run the whole workflow on the bundled sample data.

Seeds the inbox with the bundled batch files, registers each as a `ticket_batches` partition and
runs `triage_job` for it in-process against the Dagster instance in ``$DAGSTER_HOME`` (so the UI
started afterwards shows every materialization, check and run). Re-running is idempotent:
batches already materialized are skipped unless ``--force`` is given.
"""

from __future__ import annotations

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
concurrency:
  pools:
    granularity: op
    default_limit: 4
"""


# step-by-step DEBUG events go to the run's log in the UI; the terminal shows warnings and errors
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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
    args = parser.parse_args(argv)

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    home = ensure_dagster_home()

    import dagster as dg

    from orchestration_assets.definitions import defs
    from orchestration_assets.ingestion import ticket_batches
    from resources.sources import TicketInbox

    instance = dg.DagsterInstance.get()
    inbox: TicketInbox = defs.resources["inbox"]  # type: ignore[assignment]
    copied = inbox.seed_from_sample()
    print(f"DAGSTER_HOME={home}\ninbox: {inbox.directory} ({len(copied)} sample batch file(s) copied)")

    keys = [p.name for p in inbox.batch_files()]
    existing = set(instance.get_dynamic_partitions(ticket_batches.name))
    new = [k for k in keys if k not in existing]
    if new:
        instance.add_dynamic_partitions(ticket_batches.name, new)

    failed = []
    # models first: train the local classifier, evaluate it on the golden set, promote it through the gates
    if args.force or not instance.get_latest_materialization_event(dg.AssetKey("triage_classifier")):
        t0 = time.perf_counter()
        result = defs.resolve_job_def("model_training_job").execute_in_process(
            instance=instance, tags={"launched_by": "quickstart"}, raise_on_error=False, run_config=QUIET
        )
        print(f"  models: {'ok' if result.success else 'FAILED'} in {time.perf_counter() - t0:.1f}s (run {result.run_id})")
        if not result.success:
            failed.append("model_training_job")

    job = defs.resolve_job_def("triage_job")
    for key in keys:
        if not args.force and _already_done(instance, key):
            print(f"  {key}: already materialized, skipped (use --force to re-run)")
            continue
        t0 = time.perf_counter()
        result = job.execute_in_process(
            partition_key=key,
            instance=instance,
            tags={"launched_by": "quickstart"},
            raise_on_error=False,
            run_config=QUIET,
        )
        status = "ok" if result.success else "FAILED"
        print(f"  {key}: {status} in {time.perf_counter() - t0:.1f}s (run {result.run_id})")
        if not result.success:
            failed.append(key)
    if failed:
        print(f"triage failed for {failed}; open the runs in the UI for the failing step", file=sys.stderr)
        return 1
    _summary(defs)
    print("done: start the UI with `dagster dev` (make run does it) and open http://127.0.0.1:3000")
    return 0


def _summary(defs) -> None:
    """What the workflow produced, read back from the warehouse."""
    wh = defs.resources["warehouse"]
    counts = {t: wh.count_rows(t) for t in ("raw_tickets", "quarantined_tickets", "enriched_tickets", "routing_decisions", "audit_log")}
    print("warehouse " + wh.display_url + ": " + ", ".join(f"{t}={n}" for t, n in counts.items()))
    if counts["routing_decisions"]:
        d = wh.query("SELECT decision, COUNT(*) AS n FROM routing_decisions GROUP BY decision ORDER BY decision")
        print("decisions: " + ", ".join(f"{r.decision}={r.n}" for r in d.itertuples()))


def _already_done(instance, key: str) -> bool:
    """A batch is done when the last asset of the workflow has materialized its partition."""
    import dagster as dg

    from orchestration_assets.jobs import LAST_PARTITIONED_ASSET

    return key in instance.get_materialized_partitions(dg.AssetKey(LAST_PARTITIONED_ASSET))


if __name__ == "__main__":
    raise SystemExit(main())
