"""Cascade economics: what escalating unsure items from the local classifier to an LLM buys, per dollar.

    python bench/cascade.py [--csv FILE] [--n 0] [--max-train-rows 0]
                            [--thresholds 0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95,0.97,0.99] [--llm-accuracy 0.95]
                            [--llm-latency-ms 300] [--price-in 0.15] [--price-out 0.60] [--concurrency 64]

The labelled IT-service set (default the shared real one, ``../shared/data/it_service_*/*.csv.gz``;
the it_service_desk family's bundled training file when it is absent; the columns the family maps
to its text field and record id, and the task's ``label_column``) goes through the product's
training-set preparation for the family's ``topic`` task
(:func:`resources.providers.local.prepare_training_set`: cleaning, hash-based golden rows). The
local classifier is trained on the training rows (not timed; ``--max-train-rows`` for a quick
run), and the golden rows (``--n`` caps them) are answered through the REAL router
(:class:`resources.router.ModelRouter`, one router session per point, a temp SQLite warehouse for
its spend ledger and budget holds, a per-run budget that does not bind, the answer cache OFF so
every point pays for its own calls):

- **all-local**: the route ``provider: local``;
- **cascade at t**: ``provider: local, escalate_below_confidence: t, escalate_to: [sim-llm]``;
- **all-LLM**: ``provider: sim-llm`` (every item is sent; shown as threshold 1.01).

The LLM is SIMULATED (:mod:`bench.sim_llm_server`, a separate OpenAI-compatible HTTP process):
it is right with probability ``--llm-accuracy``, deterministically per record, with the stated
latency and a stated price per 1M tokens (default gpt-4o-mini's list price). Per point: items kept
local, LLM calls (HTTP requests, from the router's stats), dollars (the router's spend ledger for
that run), accuracy of the final decisions against the golden labels, and cost per correct
decision. Also the local model's risk-coverage curve: the accuracy of the items it is most
confident of at 50-90 % coverage. The "best" point is the cheapest whose final accuracy is within
one point of all-LLM's. The last line is one JSON object (keys ``points, best_threshold,
best_accuracy, best_cost_per_correct_usd, all_llm_accuracy, all_llm_cost_per_correct_usd,
acc_at_cov_0_7`` and more), or ``{"error": ...}`` with exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_GLOB = "it_service_*/*.csv.gz"  # the shared real IT-service export (Document / Topic_group)
FAMILY_DIR = ROOT / "orchestration_assets" / "defs" / "it_service_desk"
TASK = "topic"
MODEL = "sim-llm"
COVERAGES = (0.5, 0.6, 0.7, 0.8, 0.9)
ALL_LLM_THRESHOLD = 1.01  # shown for the all-LLM route (a cascade threshold is at most 1)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    print(json.dumps({"error": message}))
    return 1


# ---- the simulated LLM's process ------------------------------------------------------------
def start_llm(golden_file: Path, accuracy: float, latency_ms: float, confidence: float, seed: int):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sim_llm_server.py"), "--golden", str(golden_file),
         "--accuracy", str(accuracy), "--latency-ms", str(latency_ms), "--confidence", str(confidence),
         "--seed", str(seed)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,  # its own process group, stopped as one
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("READY "):
        stop_llm(proc)
        raise RuntimeError(f"the simulated LLM server did not start (exit {proc.returncode}): {line!r}")
    return proc, line.split(" ", 1)[1]


def stop_llm(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    if proc.stdout:
        proc.stdout.close()


# ---- data and the local model ---------------------------------------------------------------
def load_family_task():
    from orchestration_assets.family import Family

    family = Family.load(FAMILY_DIR)
    return family, family.tasks[TASK]


def source_columns(family, task) -> tuple[str, str, str]:
    """(text, label, id) columns of the family's export: the record's columns mapped to its fields."""
    by_field = {f: c for c, f in family.spec.record.columns.items()}
    text_field = task.text_fields[0]
    record_id = family.spec.record.id
    return by_field.get(text_field, text_field), task.spec.label_column, by_field.get(record_id, record_id)


def load_rows(task, csv: Path, text_col: str, label_col: str, id_col: str | None):
    """(the task with the file's labels, training set, golden rows) through the product's preparation."""
    import pandas as pd

    from resources.providers.local import prepare_training_set

    df = pd.read_csv(csv, dtype=str)
    if id_col and id_col not in df.columns:
        id_col = None  # an export without ids: a content hash of text and label, as the product derives
    missing = [c for c in (text_col, label_col) if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in {csv.name} (columns: {', '.join(map(str, df.columns))})")
    frame = pd.DataFrame({"text": df[text_col], "label": df[label_col]})
    if id_col:
        frame.insert(0, "record_id", df[id_col])
    labels = tuple(sorted({str(v).strip() for v in frame["label"].dropna() if str(v).strip()}))
    task = dataclasses.replace(task, labels=labels)
    training, golden = prepare_training_set(task, frame)
    return task, training, golden


def risk_coverage(confidences: list[float], correct: list[bool]) -> dict[str, float]:
    """Accuracy of the items the local model is most confident of, at each coverage."""
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    out = {}
    for cov in COVERAGES:
        kept = order[:max(1, math.ceil(cov * len(order)))]
        out[f"{cov:.1f}"] = round(sum(correct[i] for i in kept) / len(kept), 4)
    return out


# ---- the router -----------------------------------------------------------------------------
def write_catalog(path: Path, url: str, concurrency: int, price_in: float, price_out: float) -> None:
    import yaml

    catalog = {
        "concurrency": concurrency,
        "endpoints": {"sim": {
            "base_url": url, "api_key_required": False, "timeout_s": 30, "max_attempts": 3,
            "backoff": {"initial_s": 0.05, "max_s": 0.5, "jitter_s": 0.05}, "max_concurrency": concurrency,
            "cooldown": {"after_failures": 1000, "seconds": 1},
        }},
        "models": {MODEL: {"endpoint": "sim", "model": MODEL, "params": {"temperature": 0, "max_tokens": 60},
                           "price": {"input_per_1m": price_in, "output_per_1m": price_out}}},
        "cache": {"enabled": False},  # each point pays for its own calls, as a fresh deployment would
    }
    path.write_text(yaml.safe_dump(catalog, sort_keys=False), encoding="utf-8")


def run_point(router, warehouse, task, local, items, truth, name: str, route, budget_usd: float) -> dict:
    from resources.router.ledger import ledger_spend
    from resources.router.routes import Budget

    run_id = f"cascade-{name}"
    session = router.session(family=task.family, routes={task.name: route}, budget=Budget(per_run_usd=budget_usd),
                             local=local, warehouse=warehouse, run_id=run_id)
    start = time.perf_counter()
    batch = session.run(task, items)
    wall = time.perf_counter() - start
    spend = ledger_spend(warehouse, family=task.family, run_id=run_id, table=router.catalog().ledger_table)
    results = batch.results
    correct = sum(1 for r, y in zip(results, truth) if r.ok and (r.output or {}).get("label") == y)
    kept = sum(1 for r in results if r.path in ("local", "cascade:local"))
    paths = dict(sorted(batch.stats.paths.items()))
    return {
        "name": name,
        "kept_local": round(kept / len(items), 4),
        "llm_calls": batch.stats.calls,
        "llm_answers": sum(1 for r in results if r.path in ("llm", "cascade:llm")),
        "cost_usd": round(spend.cost_usd, 10),
        "cost_usd_results": round(batch.stats.cost_usd, 10),  # the same spend summed from the rows
        "tokens_in": spend.tokens_in,
        "tokens_out": spend.tokens_out,
        "correct": correct,
        "accuracy": round(correct / len(items), 4),
        "cost_per_correct_usd": round(spend.cost_usd / correct, 12) if correct else None,
        "fallbacks": batch.stats.fallbacks_by_reason,
        "paths": paths,
        "wall_s": round(wall, 2),
    }


def best_point(points: list[dict], all_llm_accuracy: float) -> dict:
    """The cheapest point within one accuracy point of all-LLM (ties: the more accurate, then the lower threshold)."""
    adequate = [p for p in points if p["accuracy"] >= all_llm_accuracy - 0.01 - 1e-9]
    return min(adequate, key=lambda p: (p["cost_usd"], -p["accuracy"], p["threshold"]))


def print_table(points: list[dict], best: dict) -> None:
    print(f"\n{'route':<10}{'threshold':>10}{'kept local':>12}{'LLM calls':>11}{'$':>10}{'accuracy':>10}"
          f"{'$/correct':>12}{'$/1k correct':>14}{'fallbacks':>11}")
    for p in points:
        per = p["cost_per_correct_usd"]
        per_s, per_k = ("-", "-") if per is None else (f"{per:.3e}", f"{1000 * per:.4f}")
        mark = "  <- best" if p is best else ""
        print(f"{p['route']:<10}{p['threshold']:>10.2f}{100 * p['kept_local']:>11.1f}%{p['llm_calls']:>11}"
              f"{p['cost_usd']:>10.4f}{p['accuracy']:>10.4f}{per_s:>12}{per_k:>14}{sum(p['fallbacks'].values()):>11}"
              f"{mark}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=None, help="labelled CSV (default: the shared IT set, else the bundled sample)")
    ap.add_argument("--text-col", default=None, help="default: the column the family maps to its text field")
    ap.add_argument("--label-col", default=None, help="default: the task's label_column")
    ap.add_argument("--id-col", default=None, help="default: the column the family maps to its record id, when "
                                                   "the file has it, else a content hash of text and label")
    ap.add_argument("--n", type=int, default=0, help="golden rows answered (0: all)")
    ap.add_argument("--max-train-rows", type=int, default=0,
                    help="train on an evenly spaced subset of this many training rows (0: all; for a quick run)")
    ap.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95,0.97,0.99")
    ap.add_argument("--llm-accuracy", type=float, default=0.95, help="probability that the simulated LLM is right")
    ap.add_argument("--llm-latency-ms", type=float, default=300.0)
    ap.add_argument("--llm-confidence", type=float, default=0.99, help="the confidence the simulated LLM states")
    ap.add_argument("--price-in", type=float, default=0.15, help="USD per 1M input tokens (gpt-4o-mini list price)")
    ap.add_argument("--price-out", type=float, default=0.60, help="USD per 1M output tokens (gpt-4o-mini list price)")
    ap.add_argument("--concurrency", type=int, default=64, help="LLM calls in flight")
    ap.add_argument("--budget-usd", type=float, default=100.0, help="per-run budget of each point (should not bind)")
    ap.add_argument("--seed", type=int, default=20261201, help="seed of the simulated answers")
    args = ap.parse_args(argv)
    wall_start = time.perf_counter()

    try:
        thresholds = sorted({float(t) for t in args.thresholds.split(",") if t.strip()})
    except ValueError:
        return fail(f"--thresholds must be comma-separated numbers, got {args.thresholds!r}")
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        return fail("--thresholds must be from 0 to 1 (all-LLM is always run as its own point)")
    if not 0.0 <= args.llm_accuracy <= 1.0:
        return fail(f"--llm-accuracy must be from 0 to 1, got {args.llm_accuracy}")

    family, task = load_family_task()
    sample = task.root / task.spec.training_data
    shared = sorted(SHARED_DATA.glob(SHARED_GLOB))
    if args.csv:
        csv, source = Path(args.csv), f"{args.csv}"
    elif shared:
        csv, source = shared[0], f"the shared real IT-service set ({shared[0]})"
    else:
        csv = sample
        source = (f"the {family.name} family's bundled training file ({sample}): no {SHARED_GLOB} "
                  f"under {SHARED_DATA}")
    if not csv.is_file():
        return fail(f"{csv} does not exist")
    text_col, label_col, id_col = source_columns(family, task)
    print(f"data: {source}")
    try:
        task, training, golden = load_rows(task, csv, args.text_col or text_col, args.label_col or label_col,
                                           args.id_col or id_col)
    except Exception as exc:  # noqa: BLE001 - a file the product cannot use: a readable error, no traceback
        return fail(f"cannot use {csv}: {type(exc).__name__}: {exc}")
    print(training.report.summary())
    if not training.report.trainable or not len(golden):
        return fail(f"{csv.name}: no trainable training set or an empty golden set: {training.report.problems}")

    from resources.providers.base import Item
    from resources.providers.local import LocalProvider, params_for, train_classifier
    from resources.router import ModelRouter
    from resources.router.routes import TaskRoute
    from resources.warehouse import Warehouse

    start = time.perf_counter()
    texts, labels = training.texts, training.labels
    if args.max_train_rows and len(texts) > args.max_train_rows:
        step = len(texts) / args.max_train_rows
        keep = [int(i * step) for i in range(args.max_train_rows)]
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    model = train_classifier(texts, labels, params_for(task), None,
                             None if args.max_train_rows else training.vocabulary or None)
    fit_s = time.perf_counter() - start
    golden = golden.reset_index(drop=True)
    if args.n:
        golden = golden.head(args.n)
    field = task.text_fields[0]
    items = [Item(id=str(r.record_id), text=str(r.text), fields={field: str(r.text)}) for r in golden.itertuples()]
    truth = golden["label"].astype(str).tolist()
    local = LocalProvider({task.name: model})
    print(f"local classifier {model.version}: trained on {len(texts):,} rows in {fit_s:.1f}s (not timed below); "
          f"{len(items):,} golden rows answered")

    local_results = local.run(task, items)
    confidences = [float(r.confidence or 0.0) for r in local_results]
    local_correct = [r.ok and r.output["label"] == y for r, y in zip(local_results, truth)]
    curve = risk_coverage(confidences, local_correct)

    print(f"LLM: SIMULATED (bench/sim_llm_server.py, an OpenAI-compatible HTTP server): right with probability "
          f"{args.llm_accuracy} per record (seeded, deterministic), otherwise a uniformly chosen other label; "
          f"confidence {args.llm_confidence}; latency {args.llm_latency_ms:g} ms; price ${args.price_in}/"
          f"${args.price_out} per 1M input/output tokens; usage from a word/punctuation tokenizer")
    print(f"router: real ModelRouter sessions, concurrency {args.concurrency}, answer cache OFF, per-run budget "
          f"${args.budget_usd:g} (does not bind), spend from the router's ledger")

    points: list[dict] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        golden_file = tmp / "golden.json"
        golden_file.write_text(json.dumps(dict(zip(golden["record_id"].astype(str), truth))), encoding="utf-8")
        catalog = tmp / "models.yaml"
        warehouse = Warehouse(url=f"sqlite:///{tmp / 'warehouse.db'}")
        proc, url = start_llm(golden_file, args.llm_accuracy, args.llm_latency_ms, args.llm_confidence, args.seed)
        try:
            write_catalog(catalog, url, args.concurrency, args.price_in, args.price_out)
            router = ModelRouter(config_path=str(catalog))
            plan = [("all-local", 0.0, TaskRoute())]
            plan += [("cascade", t, TaskRoute(escalate_below_confidence=t, escalate_to=[MODEL])) for t in thresholds]
            plan += [("all-LLM", ALL_LLM_THRESHOLD, TaskRoute(provider=MODEL))]
            for kind, t, route in plan:
                point = run_point(router, warehouse, task, local, items, truth, f"{kind}-{t:g}", route,
                                  args.budget_usd)
                point = {"route": kind, "threshold": t, **point}
                points.append(point)
                print(f"  {kind} {t:g}: {point['wall_s']:.1f}s, paths {point['paths']}", flush=True)
        finally:
            stop_llm(proc)

    all_llm = points[-1]
    all_local = points[0]
    best = best_point(points, all_llm["accuracy"])
    print_table(points, best)
    print(f"\nlocal risk-coverage (accuracy of the items kept, most confident first): "
          + ", ".join(f"{float(c):.0%} -> {a:.4f}" for c, a in curve.items())
          + f", 100% -> {all_local['accuracy']:.4f}")
    print(f"best: {best['route']} at threshold {best['threshold']:g}: accuracy {best['accuracy']:.4f} "
          f"(all-LLM {all_llm['accuracy']:.4f}) for ${best['cost_usd']:.5f} "
          f"= {100 * best['cost_usd'] / all_llm['cost_usd']:.1f}% of all-LLM's ${all_llm['cost_usd']:.5f}"
          if all_llm["cost_usd"] else f"best: {best['route']} at threshold {best['threshold']:g}")
    mismatch = [p["name"] for p in points if abs(p["cost_usd"] - p["cost_usd_results"]) > 1e-6]
    if mismatch:
        print(f"warning: ledger and result costs differ for {mismatch}")
    summary = {
        "llm": "simulated",
        "data": str(csv.relative_to(ROOT) if csv.is_relative_to(ROOT) else csv),
        "n": len(items),
        "train_rows": len(texts),
        "llm_accuracy": args.llm_accuracy,
        "llm_latency_ms": args.llm_latency_ms,
        "llm_confidence": args.llm_confidence,
        "price_per_1m_usd": {"input": args.price_in, "output": args.price_out},
        "cache": "off",
        "points": [{k: v for k, v in p.items() if k not in ("name", "paths", "cost_usd_results")} for p in points],
        "best_threshold": best["threshold"],
        "best_route": best["route"],
        "best_accuracy": best["accuracy"],
        "best_cost_usd": best["cost_usd"],
        "best_cost_per_correct_usd": best["cost_per_correct_usd"],
        "all_local_accuracy": all_local["accuracy"],
        "all_llm_accuracy": all_llm["accuracy"],
        "all_llm_cost_usd": all_llm["cost_usd"],
        "all_llm_cost_per_correct_usd": all_llm["cost_per_correct_usd"],
        "risk_coverage": curve,
        "acc_at_cov_0_7": curve["0.7"],
        "fit_s": round(fit_s, 2),
        "wall_s": round(time.perf_counter() - wall_start, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
