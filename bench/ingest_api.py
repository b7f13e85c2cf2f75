"""Benchmark: the ingest API's throughput for a batch of records, against its floors and a per-record baseline.

Starts the real service (``workflow-service serve``: uvicorn, one process) on a free 127.0.0.1 port
with a temporary DATA_DIR, INBOX_DIR and SQLite warehouse, in its own process group (stopped by
process group at the end), and creates a token for ``--family``. Records are rows of the family's
sample batches (CSV rows as a helpdesk would post them, malformed rows included) with fresh ids for
every request, so each request is accepted rather than answered as a replay.

- **batch**: ``--repeats`` requests of ``--n`` records (default 1,000) over one keep-alive HTTP
  connection; each is timed from sending the request to having read the whole answer (validated,
  deduplicated, committed, the batch file fsynced and renamed into the inbox);
- **naive**: the same records posted one per request, ``--naive-sample`` requests, extrapolated to
  records/s (what a webhook sending each record by itself gets);
- **floors**, in this process on the same records: the validation alone (the file ingestion's
  ``parse_bytes``, which the API calls) and the durable write alone (write, fsync, rename, fsync of
  the directory) of the same bytes.

Figures are medians. The last line is one JSON object.

    .venv/bin/python bench/ingest_api.py [--family support_triage] [--n 1000] [--repeats 7] [--naive-sample 200]
"""

import argparse
import csv
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestration_assets.loading import load_families  # noqa: E402
from orchestration_assets.service.ingest_batches import record_lines, validate, write_atomically  # noqa: E402
from orchestration_assets.service.tokens import create_token  # noqa: E402
from tests.e2e.dagster_server import free_port  # noqa: E402
from tests.workflow import DEFS, sample_files  # noqa: E402


def sample_records(family) -> list[dict]:
    rows = []
    for path in sample_files(family):
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as f:
                rows += [r for r in csv.DictReader(f) if None not in r]  # a row with extra fields has no JSON form
    return rows


class Records:
    """Sample rows, cycled, each handed out under an id never used before."""

    def __init__(self, family):
        self.rows, self.id_column, self.i = sample_records(family), self._id_column(family), 0

    @staticmethod
    def _id_column(family) -> str:
        by_field = {v: k for k, v in family.record.columns.items()}
        return by_field.get(family.id_field, family.id_field)

    def take(self, n: int) -> list[dict]:
        out = []
        for _ in range(n):
            row = dict(self.rows[self.i % len(self.rows)])
            row[self.id_column] = f"B-{self.i:08d}"
            out.append(row)
            self.i += 1
        return out


def start_service(tmp: Path, url: str, port: int, inbox_dir: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": str(tmp / "data"), "INBOX_DIR": str(inbox_dir or tmp / "inbox"),
           "SERVICE_SECRET_KEY": "bench-" + "k" * 40}
    proc = subprocess.Popen([sys.executable, "-m", "orchestration_assets.service.cli", "--warehouse-url", url,
                             "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    raise SystemExit("the service did not start within 120 s")


def post(conn: http.client.HTTPConnection, path: str, token: str, records: list[dict]) -> tuple[float, dict]:
    body = json.dumps(records).encode("utf-8")
    t0 = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}",
                                                   "Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    elapsed = time.perf_counter() - t0
    if response.status not in (200, 422):  # 422: every record of the request malformed, as the sample has some
        raise SystemExit(f"request refused ({response.status}): {answer}")
    return elapsed, answer


def floors(family, records: list[dict], folder: Path, repeats: int) -> tuple[float, float]:
    lines = record_lines(records)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    parse, write = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        validate(lines, family, "floor.jsonl")
        parse.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        write_atomically(folder, f"floor-{i}.jsonl", data)
        write.append(time.perf_counter() - t0)
    return statistics.median(parse), statistics.median(write)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="support_triage")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--naive-sample", type=int, default=200)
    args = ap.parse_args()

    family = {f.name: f for f in load_families(DEFS)}[args.family]
    records = Records(family)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    url = f"sqlite:///{tmp / 'warehouse.db'}"
    token, _ = create_token(url, "bench", [family.name])
    port = free_port()
    proc = start_service(tmp, url, port)
    path = f"/api/families/{family.name}/records"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        post(conn, path, token, records.take(10))  # warm-up: first request loads tables and code paths
        batch, accepted = [], []
        for _ in range(args.repeats):
            elapsed, answer = post(conn, path, token, records.take(args.n))
            batch.append(elapsed)
            accepted.append(len(answer["accepted"]))
        single = [post(conn, path, token, records.take(1))[0] for _ in range(args.naive_sample)]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    floor_dir = tmp / "floor"
    floor_dir.mkdir()
    parse_s, write_s = floors(family, records.take(args.n), floor_dir, args.repeats)
    shutil.rmtree(tmp, ignore_errors=True)
    batch_s, single_s = statistics.median(batch), statistics.median(single)
    result = {
        "family": family.name, "n": args.n, "repeats": args.repeats, "accepted_per_request": statistics.median(accepted),
        "batch_request_s": round(batch_s, 4), "records_per_s_batch": round(args.n / batch_s),
        "single_record_request_ms": round(single_s * 1000, 2), "records_per_s_naive": round(1 / single_s),
        "speedup_batch_over_naive": round(single_s * args.n / batch_s, 1),
        "floor_validate_s": round(parse_s, 4), "floor_durable_write_s": round(write_s, 4),
        "batch_over_floors": round(batch_s / (parse_s + write_s), 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(f"{args.n}-record batch: median {batch_s * 1000:.0f} ms per request = {result['records_per_s_batch']} records/s "
          f"({result['accepted_per_request']:.0f} accepted each; the sample's malformed rows rejected)")
    print(f"one record per request: median {single_s * 1000:.1f} ms = {result['records_per_s_naive']} records/s; "
          f"batch is {result['speedup_batch_over_naive']}x faster")
    print(f"floors for the same {args.n} records in-process: validation {parse_s * 1000:.0f} ms, durable write "
          f"{write_s * 1000:.1f} ms; the request costs {result['batch_over_floors']}x their sum")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
