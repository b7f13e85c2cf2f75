"""What OpenTelemetry spans cost local enrichment: tracing off vs one span per batch vs one span per item.

    python bench/telemetry_overhead.py [--family support_triage] [--n 5000] [--repeats 3] [--batch-size 500]

Run from the repo root in the project's virtualenv. The family's records (as in
``bench/enrichment.py``: its labelled file repeated with fresh ids, classifiers trained first, not
timed) are enriched task by task in one process through a :class:`RouterSession` routing every
task locally, in batches of ``--batch-size``, in four modes, interleaved per repeat:

- ``provider``: the local provider called directly (no router session): the floor;
- ``off``: through the session, tracing off (no ``OTEL_*`` variables): the default;
- ``batch``: an SDK tracer provider with a ``BatchSpanProcessor`` (what OTLP export uses) and an
  exporter that drops the spans, one span per local batch (what ``resources/telemetry.py`` does);
- ``item``: the same, one span per item (the alternative the per-batch choice is measured against).

Figures are medians of ``--repeats``; overheads are relative to ``off``. The last line is one JSON
object with keys n, batch_size, records_per_s (per mode), overhead_pct_batch, overhead_pct_item,
hook_share_pct (share of each run's time spent inside the span hook: the part of the overhead on
the enrichment thread, which the machine's noise does not blur), spans_per_run (per mode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from enrichment import Enricher, load_records, train_models  # noqa: E402


class SessionProvider:
    """The provider interface over a router session (what an asset step calls)."""

    def __init__(self, session) -> None:
        self.session = session

    def run(self, task, items):
        return self.session.run(task, items).results


def per_item_spans(family, task, provider, items, results, started_ns, error=None):
    """The alternative: one span per item, with the attributes a batch span carries."""
    from resources import telemetry

    tracer = telemetry._tracer()
    if tracer is None:
        return
    for item, r in zip(items, results or [None] * len(items)):
        model = str(getattr(r, "model_id", "") or "local")
        span = tracer.start_span(f"{telemetry.LOCAL_OPERATION} {model}", start_time=started_ns, attributes={
            "gen_ai.operation.name": telemetry.LOCAL_OPERATION, "gen_ai.provider.name": telemetry.LOCAL_PROVIDER,
            "gen_ai.request.model": model, "gen_ai.response.model": str(getattr(r, "model_version", "") or ""),
            "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0, "aiop.family": family,
            "aiop.task": task.name, "aiop.cost_usd": 0.0, "aiop.cache_hit": False, "aiop.record_id": item.id,
            "aiop.prompt_version": str(getattr(r, "prompt_hash", "") or ""),
        })
        span.end()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="support_triage")
    ap.add_argument("--n", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500, help="records per session.run call")
    args = ap.parse_args(argv)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from orchestration_assets.family import Family
    from resources import telemetry
    from resources.providers.local import LocalModelStore, LocalProvider
    from resources.router.catalog import ModelCatalog
    from resources.router.routes import Budget
    from resources.router.session import RouterSession

    class Dropping(SpanExporter):
        exported = 0

        def export(self, spans):
            Dropping.exported += len(spans)
            return SpanExportResult.SUCCESS

    family = Family.load(ROOT / "orchestration_assets" / "defs" / args.family)
    records = load_records(family, args.n)
    batches = [records[i:i + args.batch_size] for i in range(0, len(records), args.batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalModelStore(model_dir=tmp)
        versions = train_models(family, store, Enricher(family, LocalProvider()))
        local = store.provider(versions, family.label_rules)
        session = RouterSession(ModelCatalog(), family=family.name, routes={}, budget=Budget(), local=local, remote={})
        enrichers = {"provider": Enricher(family, local), "session": Enricher(family, SessionProvider(session))}
        batch_hook = telemetry.local_batch
        in_hook = [0.0]

        def timed(hook):
            def run_hook(*args, **kwargs):
                start = time.perf_counter()
                try:
                    hook(*args, **kwargs)
                finally:
                    in_hook[0] += time.perf_counter() - start
            return run_hook

        def run(mode: str) -> tuple[float, int, float]:
            sdk = None
            in_hook[0] = 0.0
            if mode in ("batch", "item"):
                sdk = TracerProvider()
                sdk.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 16))
                telemetry.set_tracer_provider(sdk)
            telemetry.local_batch = timed(per_item_spans if mode == "item" else batch_hook)
            Dropping.exported = 0
            enricher = enrichers["provider" if mode == "provider" else "session"]
            start = time.perf_counter()
            for batch in batches:
                enricher.enrich(batch)
            seconds = time.perf_counter() - start
            if sdk is not None:
                sdk.shutdown()  # flushes: every span is exported, not left queued
                telemetry.set_tracer_provider(None)
            telemetry.local_batch = batch_hook
            return seconds, Dropping.exported, in_hook[0]

        modes = ("provider", "off", "batch", "item")
        run("off")  # warm-up: first-call costs are not tracing
        secs: dict[str, list[float]] = {m: [] for m in modes}
        share: dict[str, list[float]] = {m: [] for m in modes}  # time inside the span hook / the run's time
        spans: dict[str, int] = {}
        for _ in range(args.repeats):
            for m in modes:
                s, n_spans, hook_s = run(m)
                secs[m].append(s)
                share[m].append(100 * hook_s / s)
                spans[m] = n_spans

    rps = {m: round(len(records) / statistics.median(v), 1) for m, v in secs.items()}
    med = {m: statistics.median(v) for m, v in secs.items()}
    out = {
        "n": len(records), "batch_size": args.batch_size, "records_per_s": rps,
        "overhead_pct_batch": round(100 * (med["batch"] / med["off"] - 1), 2),
        "overhead_pct_item": round(100 * (med["item"] / med["off"] - 1), 2),
        "hook_share_pct": {m: round(statistics.median(share[m]), 3) for m in ("off", "batch", "item")},
        "spans_per_run": spans,
    }
    print(f"{len(records)} records of {args.family}, {len(family.tasks)} tasks, batches of {args.batch_size}, "
          f"median of {args.repeats}, one process")
    for m in modes:
        print(f"  {m:9s} {rps[m]:>10,.0f} records/s  ({spans[m]} spans per run)")
    print(f"  spans per batch: {out['overhead_pct_batch']:+.2f}% time vs off; per item: {out['overhead_pct_item']:+.2f}%")
    hs = out["hook_share_pct"]
    print(f"  share of the run spent in the span hook (robust to the machine's noise): off {hs['off']:.3f}%, "
          f"per batch {hs['batch']:.3f}%, per item {hs['item']:.2f}%")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
