"""Benchmark: from an ingest API call to the batch's routing decisions committed, with the Dagster daemon running.

Starts a real ``dagster dev`` (webserver + daemon, the quick start's dagster.yaml, as bench/latency.py
does) and the review and ingest service (``workflow-service serve``) on the same temporary DATA_DIR,
INBOX_DIR and SQLite warehouse, each in its own process group (stopped by process group at the end).
A family with classifiers has them trained and promoted first through the server (not timed).

``--calls`` times, a ``--n``-record batch (rows of the family's sample CSVs, fresh ids, malformed rows
included) is POSTed to ``/api/families/<family>/records``; measured from sending the request to the
moment the partition's rows in ``<family>__routing_decisions`` equal the accepted records, broken out:
**respond** (request -> answer: validated, committed, batch file durable in the inbox), **sensor**
(answer -> run created by the inbox sensor), **launch** (run created -> first step) and **execution**
(first step -> decisions committed).

Baseline in the same run: the same-sized batch dropped as a file into the inbox (the path the API
replaces), timed from its rename to the decisions committed. Medians; the last line is one JSON object.

    .venv/bin/python bench/ingest_to_routed.py [--family refund_requests] [--n 500] [--calls 2]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_api import Records, start_service  # noqa: E402
from bench.latency import QuickstartServer, drop, run_for, run_timeline  # noqa: E402
from orchestration_assets.loading import load_families  # noqa: E402
from orchestration_assets.service.ingest_batches import record_lines, validate  # noqa: E402
from orchestration_assets.service.tokens import create_token  # noqa: E402
from tests.e2e.dagster_server import free_port  # noqa: E402
from tests.e2e.waiting import wait_for  # noqa: E402
from tests.workflow import DEFS  # noqa: E402


def wait_decisions(wh, table: str, partition: str, expected: int, timeout: float, server) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if wh.has_table(table) and wh.count_rows(table, partition) >= expected:
            return time.time()
        time.sleep(0.2)
    raise SystemExit(f"{partition}: decisions not committed within {timeout:.0f}s; log:\n{server.log_tail()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="refund_requests")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    family = {f.name: f for f in load_families(DEFS)}[args.family]
    table, job = family.table("routing_decisions"), family.job_name("workflow")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-routed-"))
    data_dir, url = tmp / "data", f"sqlite:///{tmp / 'warehouse.db'}"
    env = {"INBOX_DIR": str(data_dir / "inbox"), "WAREHOUSE_URL": url}
    os.environ.update({"DATA_DIR": str(data_dir), **env})
    from resources.warehouse import Warehouse

    wh, records = Warehouse(url=url), Records(family)
    token, _ = create_token(url, "bench", [family.name])
    server = QuickstartServer(daemon=True, data_dir=data_dir, dagster_home=tmp / "dagster_home", env=env)
    api, file_drops = [], []
    port = free_port()
    service = None
    try:
        with server:
            if family.tasks_of("classify"):
                run_id = server.launch_run(family.job_name("training"))
                if server.wait_for_run(run_id, timeout=600) != "SUCCESS":
                    raise SystemExit("training failed:\n" + "\n".join(server.run_errors(run_id)))
            service = start_service(tmp, url, port, data_dir / "inbox")
            for i in range(args.calls):
                batch = records.take(args.n)
                time.sleep(1.0)  # not aligned to the sensor's ticks
                # a connection per call: uvicorn closes an idle keep-alive one after 5 s
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                sent = time.time()
                conn.request("POST", f"/api/families/{family.name}/records", body=json.dumps(batch),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = conn.getresponse()
                answer = json.loads(response.read())
                answered = time.time()
                conn.close()
                if response.status != 200:
                    raise SystemExit(f"ingest refused ({response.status}): {answer}")
                name, accepted = answer["batch"], len(answer["accepted"])
                committed = wait_decisions(wh, table, name, accepted, args.timeout, server)
                run = wait_for(lambda: run_for(server, job, name), 30, f"the run of {name}", server)
                server.wait_for_run(run["runId"], timeout=args.timeout)
                tl = run_timeline(server, run["runId"])
                first = tl["first_step"] or tl["started"]
                api.append({"batch": name, "accepted": accepted, "total_s": round(committed - sent, 2),
                            "respond_s": round(answered - sent, 3), "sensor_s": round(tl["created"] - answered, 2),
                            "launch_s": round(first - tl["created"], 2), "execution_s": round(committed - first, 2),
                            "executor": tl["executor"]})

                # the baseline: the same number of records as a file dropped in the inbox
                lines = record_lines(records.take(args.n))
                fname = f"bench-drop-{i + 1}.jsonl"
                renamed = drop(server.inbox(family.name), fname, "".join(line + "\n" for line in lines))
                valid = validate(lines, family, fname).rows_ok
                committed = wait_decisions(wh, table, fname, valid, args.timeout, server)
                file_drops.append({"file": fname, "total_s": round(committed - renamed, 2)})
    finally:
        if service is not None and service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: round(statistics.median(c[k] for c in api), 3) for k in
           ("total_s", "respond_s", "sensor_s", "launch_s", "execution_s")}
    drop_s = round(statistics.median(d["total_s"] for d in file_drops), 2)
    for c in api:
        print(f"{c['batch']}: {c['accepted']} accepted; total {c['total_s']}s = respond {c['respond_s']}s + sensor "
              f"{c['sensor_s']}s + launch {c['launch_s']}s + execution {c['execution_s']}s ({c['executor']} executor)")
    for d in file_drops:
        print(f"{d['file']}: dropped as a file, {d['total_s']}s to decisions")
    print(f"median: ingest call -> routed decisions {med['total_s']}s (the API's own part {med['respond_s']}s); "
          f"file drop -> routed decisions {drop_s}s")
    print(json.dumps({"family": family.name, "n": args.n, "calls": args.calls, **{f"api_{k}": v for k, v in med.items()},
                      "file_drop_total_s": drop_s, "api_over_file_drop": round(med["total_s"] / drop_s, 2),
                      "load_average_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
