"""Throughput and memory of a family's whole workflow on one large batch, in-process.

    python bench/scale.py [--n 100000] [--family support_triage] [--seed 20261201] [--profile PATH]

Run from the repo root in the project's virtualenv. The batch is the family's bundled CSV sample
files (their deliberately malformed rows included, about 1 % of rows) repeated up to ``--n`` rows:
each repetition gets fresh record ids (a duplicated id in the sample stays a duplicate inside its
repetition), a small seeded variation of its text (so no two records share an input hash and the
router's cache cannot answer them) and its timestamps shifted by a few days. The batch is written
as one CSV file into a temp inbox; the family's ``workflow`` job then runs for that one partition
with ``execute_in_process`` on temp DATA_DIR, warehouse (SQLite), outbox and DAGSTER_HOME, local
models only, no network.

Not timed: a warm-up run of the same job on a 200-row batch first, which trains and promotes the
family's classifiers (the registry's champions) and imports everything.

Measured in the same run, as the naive comparison: the enrichment path alone
(``bench/enrichment.py``'s ``Enricher``: items, retrieval, every task through the local provider
with the same champions) on the same valid records, in this process after the run, so the ratio of the
end-to-end rate to it shows what the rest of the graph costs. The invariant rows in = enriched +
quarantined + failed is checked and reported. The last line is one JSON object with keys n,
wall_s, records_per_s, peak_rss_mb (this process's ``getrusage`` maxrss, read right after the
workflow run, plus the largest RSS of a child process sampled every 0.1 s during it: peak_rss_self_mb,
peak_rss_child_mb; child_maxrss_mb is the child's ``getrusage`` maxrss, which counts the pages it
shared with this process when forked), enrichment_only_records_per_s, ratio_to_enrichment_only,
rows_in, enriched, failed, quarantined, invariant_ok, rss_by_step_mb (highest RSS sampled every
0.1 s while each step ran), steps (seconds per step).
"""

import argparse
import csv
import datetime as dt
import io
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

WARMUP_ROWS = 200
PHRASES = ["", " Thanks.", " Thanks in advance.", " Regards.", " Any update would help.", " Cheers."]


def sample_rows(family) -> tuple[list[str], list[list[str]]]:
    """Header and rows (as csv.reader reads them, malformed ones included) of the family's CSV samples."""
    from tests.workflow import sample_files

    header, rows = None, []
    for path in sample_files(family):
        if path.suffix.lower() != ".csv":
            continue
        table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        if header is None:
            header = table[0]
        elif table[0] != header:
            continue
        rows += table[1:]
    if not rows:
        raise SystemExit(f"error: family {family.name} has no CSV sample batch to build records from")
    return header, rows


def batch_rows(family, n: int, seed: int, prefix: str) -> tuple[list[str], list[list[str]]]:
    """``n`` rows: the sample repeated with fresh ids, varied text and shifted timestamps."""
    header, rows = sample_rows(family)
    rng = random.Random(seed)
    columns = {c: i for i, c in enumerate(header)}
    source_of = {src: field for src, field in family.record.columns.items()}
    index = {source_of.get(c, c): i for c, i in columns.items()}
    id_col, text_col = index[family.id_field], index[family.record.text[-1]]
    ts_col = index.get(family.timestamp_field) if family.timestamp_field else None
    out = []
    rep = 0
    while len(out) < n:
        shift = dt.timedelta(days=rep % 5)
        for row in rows:
            if len(out) == n:
                break
            row = list(row)
            if len(row) > id_col:
                row[id_col] = f"{row[id_col]}-{prefix}{rep:04d}" if row[id_col] else row[id_col]
            if len(row) == len(header):  # a malformed row stays as it is, apart from its id
                row[text_col] = row[text_col] + rng.choice(PHRASES) + f" (case {prefix}{rep}-{len(out)})"
                if ts_col is not None:
                    try:
                        row[ts_col] = (dt.datetime.fromisoformat(row[ts_col]) + shift).isoformat()
                    except ValueError:  # a malformed timestamp of the sample stays malformed
                        pass
            out.append(row)
        rep += 1
    return header, out


def write_batch(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def step_spans(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) wall-clock time of each step of a run, from its STEP_START and STEP_SUCCESS/FAILURE events."""
    starts, out = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            out[event.step_key] = (starts[event.step_key], entry.timestamp)
    return out


class RssSampler:
    """This process's resident set size every ``interval`` seconds (``/proc/self/status``), in a thread,
    and the largest resident set of any of its child processes (Dagster's compute-log ``tail`` and
    orphan watcher) seen at those moments."""

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        self.samples: list[tuple[float, float]] = []
        self.child_peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append((time.time(), rss_now_mb()))
            self.child_peak_mb = max([self.child_peak_mb, *(rss_now_mb(pid) for pid in child_pids())])

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_by_step(self, spans: dict[str, tuple[float, float]]) -> dict[str, float]:
        """The highest RSS sampled while each step ran (MB); steps with no sample are left out."""
        out = {}
        for step, (start, end) in spans.items():
            seen = [mb for t, mb in self.samples if start <= t <= end]
            if seen:
                out[step] = max(seen)
        return out


def child_pids() -> list[int]:
    """This process's child processes (Linux ``/proc/self/task/*/children``; none where it is absent)."""
    pids = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def rss_now_mb(pid: int | str = "self") -> float:
    """Current RSS in MB of this process or of ``pid`` (Linux; 0 where /proc is absent or it has ended)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> tuple[float, float]:
    """(this process, its largest waited-for child) peak RSS in MB (maxrss is KiB on Linux).

    A child's maxrss starts at its parent's RSS when it was forked (the pages it shares until it
    execs), so the second figure is this process's size when Dagster started a ``tail``, not
    memory the child used: :class:`RssSampler` samples the children's own RSS.
    """
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def enrichment_only(family, resources, records: list[dict]) -> tuple[float, int]:
    """The enrichment path alone, with the registry's champions, in this process: (seconds, failed answers).

    Not in a forked child: a fork after the run's threads (SQLite, Dagster) can inherit a held lock.
    """
    from enrichment import Enricher

    registry, store = resources["registry"].get(), resources["local_models"]
    versions = {t.name: registry.champion(family.name, t.name).version for t in family.tasks_of("classify")}
    enricher = Enricher(family, store.provider(versions, family.label_rules))
    enricher.enrich(records[:50])  # warm-up, as the workflow's warm-up run
    start = time.perf_counter()
    out = enricher.enrich(records)
    seconds = time.perf_counter() - start
    return seconds, sum(not r.ok for rs in out.values() for r in rs)


def run(args, tmp: Path) -> dict:
    import dagster as dg

    from orchestration_assets.loading import family_definitions, find_family
    from tests.workflow import inbox_of, run_workflow, temp_resources

    family = find_family(args.family)
    os.environ["DATA_DIR"] = str(tmp / "data")
    (tmp / "home").mkdir()
    (tmp / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    resources = temp_resources(tmp / "data", tmp / "models")
    defs = family_definitions([family], resources)
    inbox = inbox_of(family, resources)
    with dg.DagsterInstance.local_temp(str(tmp / "home")) as instance:
        start = time.perf_counter()
        header, warm = batch_rows(family, WARMUP_ROWS, args.seed + 1, "W")
        write_batch(inbox / "warmup.csv", header, warm)
        result = run_workflow(defs, family, instance, "warmup.csv", raise_on_error=False)
        if not result.success:
            raise SystemExit("error: the warm-up run failed")
        print(f"warm-up (trains and promotes the classifiers; not timed): {time.perf_counter() - start:.1f}s")

        header, rows = batch_rows(family, args.n, args.seed, "S")
        name = f"scale-{args.n}.csv"
        write_batch(inbox / name, header, rows)
        del rows
        print(f"family {family.name}: {args.n:,} rows written to {name}")
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        with RssSampler() as sampler:
            result = run_workflow(defs, family, instance, name, raise_on_error=False)
        wall = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"profile written to {args.profile}")
        rss_self, rss_children = peak_rss_mb()
        if not result.success:
            from tests.governance_fixtures import failure_message

            raise SystemExit(f"error: the run failed: {failure_message(result)}")
        spans = step_spans(instance, result.run_id)
        steps = {step: end - begin for step, (begin, end) in spans.items()}
        rss_steps = sampler.peak_by_step(spans)
        child_peak = sampler.child_peak_mb

    warehouse = resources["warehouse"]
    meta = {e.event_specific_data.materialization.asset_key.path[-1]: e.event_specific_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    rows_in = int(meta["raw_records"]["rows_in"].value)
    quarantined = warehouse.count_rows(family.table("quarantined_records"), name)
    status = warehouse.query(f'SELECT status, COUNT(*) AS n FROM "{family.table("enriched_records")}" '
                             'WHERE "_partition" = :p GROUP BY status', p=name)
    by_status = defaultdict(int, dict(zip(status["status"], status["n"].astype(int))))
    enriched, failed = by_status["enriched"], by_status["failed"]
    invariant = rows_in == enriched + quarantined + failed

    records = warehouse.read_table(family.table("raw_records"), partitions=[name]).drop(columns=["_partition"])
    records = records.to_dict(orient="records")
    only_s, only_failed = enrichment_only(family, resources, records)
    only_rate = len(records) / only_s

    rate = rows_in / wall
    print(f"\nsteps of the run (wall seconds, slowest first; in-process, so they add up to the run):")
    for step, s in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  {s:8.2f}s  {100 * s / wall:5.1f}%  {step}")
    print(f"\nrun: {rows_in:,} rows in {wall:.1f}s = {rate:,.0f} records/s end to end")
    print(f"rows in {rows_in:,} = enriched {enriched:,} + quarantined {quarantined:,} + failed {failed:,}: "
          f"{'holds' if invariant else 'BROKEN'}")
    print(f"peak RSS {rss_self:.0f} MB (this process), {child_peak:.0f} MB (largest child, sampled; its maxrss, "
          f"which counts the pages it shared with this process when forked: {rss_children:.0f} MB)")
    top = sorted(rss_steps.items(), key=lambda kv: -kv[1])[:5]
    print("highest RSS sampled during a step (MB): " + ", ".join(f"{s} {mb:.0f}" for s, mb in top))
    print(f"enrichment path alone on the same {len(records):,} records (this process, after the run): {only_s:.1f}s = "
          f"{only_rate:,.0f} records/s ({only_failed} failed answers); end to end runs at {rate / only_rate:.2f}x of it")
    return {
        "n": args.n,
        "family": family.name,
        "wall_s": round(wall, 2),
        "records_per_s": round(rate, 1),
        "peak_rss_mb": round(rss_self + child_peak, 1),
        "peak_rss_self_mb": round(rss_self, 1),
        "peak_rss_child_mb": round(child_peak, 1),
        "child_maxrss_mb": round(rss_children, 1),
        "enrichment_only_records_per_s": round(only_rate, 1),
        "ratio_to_enrichment_only": round(rate / only_rate, 3),
        "rows_in": rows_in,
        "enriched": enriched,
        "failed": failed,
        "quarantined": quarantined,
        "invariant_ok": invariant,
        "rss_by_step_mb": {k: round(v) for k, v in sorted(rss_steps.items(), key=lambda kv: -kv[1])},
        "steps": {k: round(v, 2) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows of the batch (default 100,000)")
    ap.add_argument("--family", default="support_triage", help="folder under orchestration_assets/defs")
    ap.add_argument("--seed", type=int, default=20261201, help="seed of the text variations")
    ap.add_argument("--profile", default="", help="write a cProfile of the timed run to this file")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="scale-"))
    try:
        result = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    if not result["invariant_ok"]:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
