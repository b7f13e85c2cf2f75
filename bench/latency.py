"""Benchmark: event latency, from a file dropped in the inbox to its routing decisions committed.

Starts a real ``dagster dev`` (webserver + daemon; ``tests/e2e/dagster_server.py``) on a free
127.0.0.1 port with a temporary DAGSTER_HOME (the quick start's ``dagster.yaml``), DATA_DIR,
INBOX_DIR and SQLite WAREHOUSE_URL, in its own process group (stopped by process group at the end).
The ``it_service_desk`` family's classifier is trained and promoted first by its training job,
through the server (not timed). Then, ``--drops`` times (default 3), a ``--n``-record batch
(default 500, built from the family's sample batches with fresh ids; the sample's malformed rows
included) is written under a temporary name (``.name``) in the family's inbox and renamed, and the
time from the rename to the moment the partition's rows in ``it_service_desk__routing_decisions``
equal the file's valid rows is measured, broken out from the run's events:

- **sensor**: rename -> run created (the daemon evaluates the inbox sensor every 5 s at best; a file
  is taken on the first tick when its mtime is ``Inbox.settle_seconds`` old, else on the next one);
- **launch**: run created -> first step started (queued run coordinator and its dequeue interval,
  run worker process start and code load, executor start), with run created -> run started shown
  separately;
- **execution**: first step started -> decisions committed (a file up to
  ``Inbox.in_process_max_bytes`` runs with the in-process executor; each drop shows its executor).

The inbox sensor's own cost is measured too: one tick, evaluated in this process against the same
instance, on an inbox of ``--tick-files`` files it already knows (the steady state) and on an empty
one; median of 5 ticks each.

The floor: the same batch's workflow job executed in-process (``execute_in_process``, in-process
executor) in this process against the same instance and warehouse, once cold and then warm, timed to
its ``routing_decisions`` materialization. Medians of the drops; target: total 20 s or less. The
last line is one JSON object.

    .venv/bin/python bench/latency.py [--n 500] [--drops 3] [--family it_service_desk]
"""

from __future__ import annotations

import argparse
import atexit
import csv
import io
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestration_assets.loading import load_families  # noqa: E402
from orchestration_assets.quickstart import DAGSTER_YAML  # noqa: E402
from resources.sources import Inbox  # noqa: E402
from tests.e2e.dagster_server import DagsterServer  # noqa: E402
from tests.e2e.waiting import wait_for  # noqa: E402
from tests.workflow import DEFS, sample_files  # noqa: E402

TARGET_S = 20.0

RUN_QUERY = """
query($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { runId status creationTime startTime endTime runConfigYaml }
  }
}
"""
EVENTS_QUERY = """
query($id: ID!) {
  logsForRun(runId: $id, limit: 10000) {
    ... on EventConnection { events { __typename ... on MessageEvent { timestamp stepKey } } }
  }
}
"""
RUNS_QUERY = """
query($job: String!) {
  runsOrError(filter: {pipelineName: $job}) { ... on Runs { results { runId status tags { key value } } } }
}
"""


class QuickstartServer(DagsterServer):
    """``dagster dev`` with the quick start's dagster.yaml (queued runs, pools, run monitoring)."""

    def command(self) -> list[str]:
        # start() writes the e2e default yaml and then asks for the command: replace it just before the spawn
        (self.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
        return super().command()


def build_batch(family, n: int, tag: int) -> str:
    """``n`` CSV rows from the family's sample CSV batches, ids made unique per ``tag`` (1-9), as CSV text."""
    header, rows = None, []
    for path in sample_files(family):
        if path.suffix.lower() != ".csv":
            continue
        got = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        header = header or got[0]
        rows += got[1:]
    if len(rows) < n:
        rows = (rows * (n // len(rows) + 1))
    rows = rows[:n]
    record = family.spec.record
    # the source column of the record's id: renamed by record.columns, else the field's own name
    col = header.index(next((c for c, f in record.columns.items() if f == record.id), record.id))
    seen: dict[str, str] = {}
    out = []
    for i, row in enumerate(rows):
        row = list(row)
        old = row[col]
        if old:  # an empty id stays empty (a malformed row); a repeated id stays repeated
            if old not in seen:  # the family's prefix kept, so the id still matches its pattern
                seen[old] = f"{re.match(r'[^0-9]*', old).group()}{tag}{len(seen):05d}"
            row[col] = seen[old]
        out.append(row)
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([header, *out])
    return buf.getvalue()


def drop(folder: Path, name: str, text: str) -> float:
    """Write under a temporary name, then rename (the atomic-drop convention); returns the rename time."""
    tmp = folder / f".{name}"
    tmp.write_text(text, encoding="utf-8")
    os.rename(tmp, folder / name)
    return time.time()


def run_for(server: DagsterServer, job: str, partition: str) -> dict | None:
    runs = server.graphql(RUNS_QUERY, {"job": job})["runsOrError"]["results"]
    for r in runs:
        tags = {t["key"]: t["value"] for t in r["tags"]}
        if tags.get("dagster/partition") == partition:
            return r
    return None


def run_timeline(server: DagsterServer, run_id: str) -> dict[str, float]:
    """Wall-clock times (s since epoch) of a run: created, started, first step started, ended."""
    run = server.graphql(RUN_QUERY, {"id": run_id})["runOrError"]
    events = server.graphql(EVENTS_QUERY, {"id": run_id})["logsForRun"]["events"]

    def first(typename: str) -> float | None:
        ts = [float(e["timestamp"]) / 1000 for e in events if e["__typename"] == typename and e.get("timestamp")]
        return min(ts) if ts else None

    starts, ends = {}, {}
    for e in events:
        if e.get("stepKey") and e.get("timestamp"):
            if e["__typename"] == "ExecutionStepStartEvent":
                starts[e["stepKey"]] = float(e["timestamp"]) / 1000
            elif e["__typename"] in ("ExecutionStepSuccessEvent", "ExecutionStepFailureEvent"):
                ends[e["stepKey"]] = float(e["timestamp"]) / 1000
    return {
        "steps": {k: (starts[k], ends[k]) for k in starts if k in ends},
        "created": float(run["creationTime"]),
        "started": first("RunStartEvent") or (float(run["startTime"]) if run.get("startTime") else None),
        "first_step": first("ExecutionStepStartEvent"),
        "ended": float(run["endTime"]) if run.get("endTime") else None,
        "status": run["status"],
        "executor": _executor(run["runConfigYaml"]),
    }


def _executor(run_config_yaml: str) -> str:
    import yaml

    chosen = ((yaml.safe_load(run_config_yaml) or {}).get("execution") or {}).get("config") or {}
    return next(iter(chosen), "job default")


def tick_cost(defs, instance, family, root: Path, n_files: int, text: str) -> dict[str, float]:
    """Milliseconds of one inbox sensor tick (median of 5) on an inbox of `n_files` known files, and on an empty one."""
    import dagster as dg

    sensor = defs.resolve_sensor_def(f"{family.name}__inbox_sensor")
    out = {}
    for label, n in (("empty", 0), ("files", n_files)):
        inbox = Inbox(root=str(root / f"ticks-{label}"))
        folder = inbox.folder(family.name)
        for i in range(n):
            (folder / f"known-{i:05d}.csv").write_text(text, encoding="utf-8")
        # the daemon has registered them already: the first tick fingerprints them, runs nothing
        instance.add_dynamic_partitions(family.partitions_name, [f"known-{i:05d}.csv" for i in range(n)])
        cursor, times = None, []
        for _ in range(6):
            t0 = time.perf_counter()
            result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"inbox": inbox}))
            times.append(time.perf_counter() - t0)
            assert not result.run_requests, "a tick on known files requested runs"
            cursor = result.cursor
        out[label] = round(statistics.median(times[1:]) * 1000, 1)  # the first one hashes every file
    return out


def in_process(defs, instance, family, partition: str, text: str, inbox: Path) -> dict:
    """The workflow job in this process for one batch: seconds to routing_decisions materialized, and whole job."""
    import dagster as dg

    from orchestration_assets.quickstart import IN_PROCESS, QUIET

    # registered before the file lands, so the inbox sensor only fingerprints it and launches nothing
    instance.add_dynamic_partitions(family.partitions_name, [partition])
    (inbox / partition).write_text(text, encoding="utf-8")
    t0 = time.time()
    result = defs.resolve_job_def(family.job_name("workflow")).execute_in_process(
        partition_key=partition, instance=instance, run_config={**QUIET, **IN_PROCESS}, tags={"family": family.name})
    t1 = time.time()
    decided = [e.timestamp for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
               if e.dagster_event.asset_key == dg.AssetKey(family.key("routing_decisions"))]
    rows_ok = None
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey(family.key("raw_records")):
            rows_ok = getattr(mat.metadata.get("rows_ok"), "value", None)
    return {"decisions_s": (decided[0] if decided else t1) - t0, "job_s": t1 - t0, "rows_ok": rows_ok}


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 2) if xs else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="event latency benchmark")
    parser.add_argument("--family", default="it_service_desk")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="per drop")
    parser.add_argument("--tick-files", type=int, default=1000, help="known files in the inbox of the tick cost")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    family = next(f for f in load_families(DEFS) if f.name == args.family)
    table = family.table("routing_decisions")
    job = family.job_name("workflow")
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    atexit.register(shutil.rmtree, tmp, True)  # also when a drop times out
    data_dir = tmp / "data"
    env = {"INBOX_DIR": str(data_dir / "inbox"), "WAREHOUSE_URL": f"sqlite:///{tmp / 'warehouse.db'}"}
    server = QuickstartServer(daemon=True, data_dir=data_dir, dagster_home=tmp / "dagster_home", env=env)

    drops, floor = [], {}
    t_boot = time.perf_counter()
    with server:
        boot_s = time.perf_counter() - t_boot
        # this process reads the same instance and warehouse (timeline via GraphQL, rows via SQL)
        os.environ.update({"DAGSTER_HOME": str(server.dagster_home), "DATA_DIR": str(data_dir), **env})
        from resources.warehouse import Warehouse

        wh = Warehouse(url=env["WAREHOUSE_URL"])
        inbox = server.inbox(family.name)

        t0 = time.perf_counter()
        run_id = server.launch_run(family.job_name("training"))
        status = server.wait_for_run(run_id, timeout=600)
        if status != "SUCCESS":
            raise SystemExit(f"training run {run_id} ended {status}:\n" + "\n".join(server.run_errors(run_id)))
        train_s = time.perf_counter() - t0

        # the floor, on the same instance and warehouse: cold (first in this process), then warm
        import dagster as dg

        from orchestration_assets.definitions import build_definitions

        defs, instance = build_definitions(), dg.DagsterInstance.get()  # the server's instance (DAGSTER_HOME)
        cold = in_process(defs, instance, family, "floor-cold.csv", build_batch(family, args.n, 8), inbox)
        warm = in_process(defs, instance, family, "floor-warm.csv", build_batch(family, args.n, 9), inbox)
        floor = {"cold": cold, "warm": warm}
        expected = warm["rows_ok"]
        assert wh.count_rows(table, "floor-warm.csv") == expected, "in-process decisions != valid rows"

        for i in range(args.drops):
            name = f"latency-drop-{i + 1}.csv"
            text = build_batch(family, args.n, i + 1)
            time.sleep(1.0)  # the sensor's phase is whatever it is: drops are not aligned to its ticks
            renamed = drop(inbox, name, text)
            deadline = renamed + args.timeout
            committed = None
            while time.time() < deadline:
                if wh.count_rows(table, name) >= expected:
                    committed = time.time()
                    break
                time.sleep(0.2)
            if committed is None:
                raise SystemExit(f"{name}: decisions not committed within {args.timeout:.0f}s; log:\n"
                                 + server.log_tail())
            run = wait_for(lambda: run_for(server, job, name), 30, f"the run of {name}", server)
            server.wait_for_run(run["runId"], timeout=args.timeout)
            tl = run_timeline(server, run["runId"])
            first_step = tl["first_step"] or tl["started"]
            # the steps that ended before the decisions were committed, longest first (where execution goes)
            before = sorted(((round(e - b, 1), k.removeprefix(f"{family.name}__")) for k, (b, e) in tl["steps"].items()
                             if e <= committed + 0.5), reverse=True)
            drops.append({
                "file": name, "run_id": run["runId"], "status": tl["status"], "executor": tl["executor"],
                "total_s": round(committed - renamed, 2),
                "sensor_s": round(tl["created"] - renamed, 2),
                "launch_s": round(first_step - tl["created"], 2),
                "to_run_start_s": round(tl["started"] - tl["created"], 2) if tl["started"] else None,
                "execution_s": round(committed - first_step, 2),
                "run_end_after_commit_s": round(tl["ended"] - committed, 2) if tl["ended"] else None,
                "steps_before_commit": len(before), "longest_steps": [f"{k} {d}s" for d, k in before[:4]],
            })
        ticks_ms = tick_cost(defs, instance, family, tmp, args.tick_files, build_batch(family, 20, 7))
        sensor_def = defs.resolve_sensor_def(f"{family.name}__inbox_sensor")
        dequeue_s = getattr(instance.run_coordinator, "dequeue_interval_seconds", None)
    server_pgid = server.pgid
    wall_s = time.perf_counter() - started

    print(f"event latency: family {family.name}, {args.n} records per file ({expected} valid), {args.drops} drops, "
          f"dagster dev on {server.url} (pgid {server_pgid}, stopped); boot {boot_s:.1f}s, training {train_s:.1f}s "
          "(not counted)")
    cols = ["total_s", "sensor_s", "launch_s", "to_run_start_s", "execution_s", "run_end_after_commit_s"]
    print(f"{'drop':<22}" + "".join(f"{c[:-2]:>24}" for c in cols))
    for d in drops:
        print(f"{d['file']:<22}" + "".join(f"{d[c] if d[c] is not None else '-':>24}" for c in cols))
    print(f"{'median':<22}" + "".join(f"{median([d[c] for d in drops]) or '-':>24}" for c in cols))
    for d in drops:
        print(f"  {d['file']}: {d['executor']} executor, {d['steps_before_commit']} steps ended before the commit; "
              "longest: " + ", ".join(d["longest_steps"]))
    print("  sensor: rename -> run created; launch: run created -> first step started (to_run_start: -> run "
          "started: queue, run worker start and code load); execution: first step -> decisions committed")
    print(f"inbox sensor: minimum interval {sensor_def.minimum_interval_seconds}s (the daemon loops every 5 s), "
          f"settle {Inbox().settle_seconds}s; one tick {ticks_ms['empty']} ms empty, {ticks_ms['files']} ms with "
          f"{args.tick_files} known files; run queue dequeue interval {dequeue_s}s")
    print(f"floor, in-process execute_in_process: cold {cold['decisions_s']:.2f}s to decisions ({cold['job_s']:.2f}s "
          f"whole job), warm {warm['decisions_s']:.2f}s ({warm['job_s']:.2f}s)")
    total = median([d["total_s"] for d in drops])
    print(f"median total {total}s, target {TARGET_S:.0f}s: {'met' if total <= TARGET_S else 'NOT met'}; "
          f"benchmark wall {wall_s:.0f}s")
    summary = {
        "family": family.name, "n": args.n, "valid_rows": expected, "drops": drops,
        "median_total_s": total,
        "median_sensor_s": median([d["sensor_s"] for d in drops]),
        "median_launch_s": median([d["launch_s"] for d in drops]),
        "median_to_run_start_s": median([d["to_run_start_s"] for d in drops]),
        "median_execution_s": median([d["execution_s"] for d in drops]),
        "in_process_s": round(warm["decisions_s"], 2), "in_process_cold_s": round(cold["decisions_s"], 2),
        "in_process_job_s": round(warm["job_s"], 2),
        "sensor_interval_s": sensor_def.minimum_interval_seconds, "settle_s": Inbox().settle_seconds,
        "in_process_max_bytes": Inbox().in_process_max_bytes, "dequeue_interval_s": dequeue_s,
        "tick_ms_empty": ticks_ms["empty"], "tick_ms_files": ticks_ms["files"], "tick_files": args.tick_files,
        "target_s": TARGET_S, "meets_target": total <= TARGET_S,
        "boot_s": round(boot_s, 1), "training_s": round(train_s, 1), "wall_s": round(wall_s, 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
