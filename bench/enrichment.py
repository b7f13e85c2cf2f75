"""Throughput of local enrichment of a workflow family: batch path vs a naive one-record-per-call loop.

    python bench/enrichment.py [--family support_triage] [--n 10000] [--repeats 3]
                               [--naive-sample 300] [--batch-size N] [--workers N] [--profile]

Run from the repo root in the project's virtualenv. Records are the family's labelled file
repeated with fresh ids up to ``--n``, joined to its lookups (``join_on``); "enrich" means:
build each task's items (text, fields, the answers of the tasks it uses), retrieve documents for
draft tasks from their ``retrieval.from`` collection, then answer every task of the family, in
dependency order, through :class:`~resources.providers.local.LocalProvider`. The classifiers are
trained into a temp folder first (not timed).

The batch path hands the provider whole batches (one vectorisation per classify task), in
``--workers`` processes (default: one per core, as the workflow's multiprocess executor runs its
task steps side by side), each forked after training and enriching its share of the records; it
is also measured in one process. The naive loop enriches one record per call, measured on
``--naive-sample`` records in the same run and extrapolated to records/s (the output says so).
Figures are medians of ``--repeats`` runs. The last line is one JSON object with keys n, workers,
records_per_s_batch, records_per_s_batch_one_process, records_per_s_naive, speedup, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from resources.providers.base import Item, content_hash  # noqa: E402


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def typed_lookup(family, name: str) -> pd.DataFrame:
    """A lookup table with its declared column types (booleans as bool, numbers as float)."""
    spec = family.spec.context[name]
    df = read_table(family.path(spec.file))
    for col, c in spec.columns.items():
        if col not in df.columns:
            continue
        if c.type == "boolean":
            df[col] = df[col].astype(str).str.strip().str.lower().isin(["true", "1", "yes"])
        elif c.type in ("number", "integer"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


class Enricher:
    """The family's tasks answered by one provider, with its lookups and document collections loaded."""

    def __init__(self, family, provider):
        from resources.retrieval import DocumentIndex

        self.family, self.provider = family, provider
        self.seconds: dict[str, float] = {}  # per task (items, retrieval, answers), summed over calls
        self.lookups = {}  # alias -> (join field, {key: {column: value}})
        self.indexes = {}
        for name, spec in family.spec.context.items():
            if spec.join_on is not None:
                table = typed_lookup(family, name)
                rows = table.set_index(spec.key).to_dict(orient="index")
                self.lookups[spec.alias(name)] = (spec.join_on, rows)
            if spec.documents is not None:
                self.indexes[name] = DocumentIndex.from_frame(read_table(family.path(spec.file)), spec.documents)

    def base_fields(self, record: dict) -> dict:
        fields = dict(record)
        for alias, (join_on, rows) in self.lookups.items():
            row = rows.get(record.get(join_on)) or {}
            fields.update({f"{alias}.{k}": v for k, v in row.items()})
        return fields

    def enrich(self, records: list[dict]) -> dict[str, list]:
        """Every task's results for one batch of records."""
        family = self.family
        base = [self.base_fields(r) for r in records]
        used = {u for t in family.tasks.values() for u in t.spec.uses}
        answers: dict[str, list[dict]] = {}
        results = {}
        texts_of: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        for task in family.tasks.values():
            start = time.perf_counter()
            if task.text_fields not in texts_of:  # tasks reading the same fields share texts and input hashes
                texts = ["\n".join(str(r.get(f) or "") for f in task.text_fields).strip() for r in records]
                ids = [str(r[family.id_field]) for r in records]
                texts_of[task.text_fields] = (texts, [content_hash(i, t) for i, t in zip(ids, texts)])
            texts, hashes = texts_of[task.text_fields]
            docs = [()] * len(records)
            retrieval = getattr(task.spec, "retrieval", None)
            if retrieval is not None:
                docs = self.indexes[retrieval.from_].search(texts, k=retrieval.k)
            items = []
            for i, (r, fields, text) in enumerate(zip(records, base, texts)):
                if task.spec.uses:
                    fields = dict(fields)
                    for used in task.spec.uses:
                        fields.update(answers[used][i])
                items.append(Item(str(r[family.id_field]), text, fields, docs[i], hashes[i]))
            out = self.provider.run(task, items)
            results[task.name] = out
            if task.name in used:
                answers[task.name] = [task.item_values(task.to_columns(res)) for res in out]
            self.seconds[task.name] = self.seconds.get(task.name, 0.0) + time.perf_counter() - start
        return results


_FORKED: dict = {}  # what forked workers inherit: the enricher (trained models loaded) and the records


def _enrich_share(bounds: tuple[int, int]) -> tuple[int, int]:
    """A worker's share: (results, failed answers); results stay in the worker, as a step writes its own."""
    enricher, records = _FORKED["enricher"], _FORKED["records"]
    out = enricher.enrich(records[bounds[0]:bounds[1]])
    return len(next(iter(out.values()))), sum(not r.ok for rs in out.values() for r in rs)


def parallel_seconds(enricher, records: list[dict], workers: int) -> float:
    """Wall time of ``workers`` forked processes enriching contiguous shares of ``records``."""
    _FORKED.update(enricher=enricher, records=records)
    step = -(-len(records) // workers)
    shares = [(i, min(i + step, len(records))) for i in range(0, len(records), step)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pool.map(_enrich_share, [(0, 1)] * workers)  # start-up is not enrichment: every worker warm
        start = time.perf_counter()
        done = pool.map(_enrich_share, shares)
        seconds = time.perf_counter() - start
    if sum(n for n, _ in done) != len(records) or any(f for _, f in done):
        raise SystemExit(f"error: workers returned {done} for {len(records)} records")
    return seconds


def load_records(family, n: int) -> list[dict]:
    """The family's labelled rows repeated with fresh ids up to ``n``, as record dicts."""
    classify = family.tasks_of("classify")
    labelled = read_table(family.path(classify[0].spec.training_data)).rename(columns=family.record.columns)
    reps = -(-n // len(labelled))
    df = pd.concat([labelled] * reps, ignore_index=True).head(n).copy()
    df[family.id_field] = [f"B-{i:07d}" for i in range(len(df))]
    return df[[c for c in family.record.fields if c in df.columns]].to_dict(orient="records")


def train_models(family, store, enricher: Enricher) -> dict[str, str]:
    """Train every classify task of the family on its labelled file (features joined like records)."""
    from resources.providers.local import prepare_training_set

    versions = {}
    for task in family.tasks_of("classify"):
        table = read_table(family.path(task.spec.training_data)).rename(columns=family.record.columns)
        rows = table.to_dict(orient="records")
        fields = [enricher.base_fields(r) for r in rows]
        frame = pd.DataFrame({
            "record_id": table[family.id_field],
            "text": ["\n".join(str(r.get(f) or "") for f in task.text_fields).strip() for r in rows],
            "label": table[task.spec.label_column],
        })
        for feat in task.spec.features:
            frame[feat] = [f.get(feat) for f in fields]
        training, _ = prepare_training_set(task, frame)
        versions[task.name] = store.train(task, training).version
    return versions


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="support_triage", help="folder under orchestration_assets/defs")
    ap.add_argument("--n", type=int, default=10_000, help="records to enrich (default 10,000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; medians are reported")
    ap.add_argument("--naive-sample", type=int, default=300, help="records timed one at a time, then extrapolated")
    ap.add_argument("--batch-size", type=int, default=0, help="records per provider call on the batch path (0: all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes of the batch path (default: one per core)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one batch run")
    args = ap.parse_args(argv)

    from orchestration_assets.family import Family
    from resources.providers.local import LocalModelStore, LocalProvider

    family = Family.load(ROOT / "orchestration_assets" / "defs" / args.family)
    records = load_records(family, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = LocalModelStore(model_dir=tmp)
        versions = train_models(family, store, Enricher(family, LocalProvider()))
        provider = store.provider(versions, family.label_rules)
        print(f"trained {versions} in {time.perf_counter() - start:.1f}s (not timed below)")
    enricher = Enricher(family, provider)
    print(f"family {family.name}: tasks {list(family.tasks)}")
    enricher.enrich(records[:50])  # warm-up: imports, compiled patterns, templates

    size = args.batch_size or len(records)
    enricher.seconds.clear()
    batch_times = []
    for rep in range(args.repeats):
        start = time.perf_counter()
        n_out = 0
        for i in range(0, len(records), size):
            out = enricher.enrich(records[i:i + size])
            n_out += len(next(iter(out.values())))
            failed = {t: sum(not r.ok for r in rs) for t, rs in out.items() if any(not r.ok for r in rs)}
            if failed:
                raise SystemExit(f"error: failed answers {failed}")
        batch_times.append(time.perf_counter() - start)
        assert n_out == len(records)
        print(f"batch  run {rep + 1}: {len(records)} records in {batch_times[-1]:.2f}s "
              f"= {len(records) / batch_times[-1]:,.0f} records/s")
    shares = {t: s / sum(enricher.seconds.values()) for t, s in enricher.seconds.items()}
    parallel_times = []
    if args.workers > 1:
        for rep in range(args.repeats):
            parallel_times.append(parallel_seconds(enricher, records, args.workers))
            print(f"batch  run {rep + 1} in {args.workers} processes: {len(records)} records in "
                  f"{parallel_times[-1]:.2f}s = {len(records) / parallel_times[-1]:,.0f} records/s")
    print("batch path time per task: " + ", ".join(f"{t} {100 * v:.0f}%" for t, v in shares.items()))
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        enricher.enrich(records[:size])
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)

    sample = records[: min(args.naive_sample, len(records))]
    naive_times = []
    for rep in range(args.repeats):
        start = time.perf_counter()
        for r in sample:
            enricher.enrich([r])
        naive_times.append(time.perf_counter() - start)
        print(f"naive  run {rep + 1}: {len(sample)} records one at a time in {naive_times[-1]:.2f}s "
              f"= {len(sample) / naive_times[-1]:,.0f} records/s")

    per_s_one = len(records) / statistics.median(batch_times)
    per_s_batch = len(records) / statistics.median(parallel_times) if parallel_times else per_s_one
    per_s_naive = len(sample) / statistics.median(naive_times)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"batch path: {per_s_batch:,.0f} records/s in {max(args.workers, 1)} process(es), {per_s_one:,.0f} "
          f"records/s in one (median of {args.repeats}, batch size {size}, {len(family.tasks)} tasks)")
    print(f"naive loop: {per_s_naive:,.0f} records/s (median of {args.repeats}, measured on {len(sample)} records "
          f"and extrapolated to {len(records)})")
    print(f"speed-up of the batch path over the naive loop, both in one process: {per_s_one / per_s_naive:.1f}x; "
          f"peak RSS {peak_rss_mb:.0f} MB (the parent; each worker shares its pages until it writes)")
    result = {
        "n": len(records),
        "workers": max(args.workers, 1),
        "records_per_s_batch": round(per_s_batch, 1),
        "records_per_s_batch_one_process": round(per_s_one, 1),
        "records_per_s_naive": round(per_s_naive, 1),
        "speedup": round(per_s_one / per_s_naive, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
