"""Throughput of local enrichment: batch path vs a naive one-ticket-at-a-time loop.

    python bench/enrichment.py [--n 10000] [--repeats 3] [--naive-sample 300] [--batch-size N]

Run from the repo root in the project's virtualenv. "Enrich" = PII redaction of the ticket
text, knowledge-base retrieval (top 3), then the five local tasks: classify, prioritize (with
the predicted category), sentiment, summarize and draft_reply (grounded in the retrieved
articles). Tickets are the bundled labelled tickets, repeated with fresh ids up to ``--n``,
joined to the bundled CRM accounts. The local model is trained once into a temp folder before
timing (training is not timed).

The batch path hands the provider whole batches (one vectorisation per task). The naive loop
calls the same provider with one ticket per call; it is measured on ``--naive-sample``
tickets and extrapolated to tickets/s (said in the output). Figures are medians of
``--repeats`` runs. The last line is one JSON object with keys n, tickets_per_s_batch,
tickets_per_s_naive, speedup, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from resources.providers.base import AccountContext, TicketInput  # noqa: E402

SAMPLE = ROOT / "orchestration_assets" / "sample_data"


def load_tickets(n: int) -> tuple[pd.DataFrame, dict[str, AccountContext], pd.DataFrame]:
    labelled = pd.read_csv(SAMPLE / "labelled_tickets.csv", dtype={"ticket_id": str, "account_id": str})
    reps = -(-n // len(labelled))
    df = pd.concat([labelled] * reps, ignore_index=True).head(n).copy()
    df["ticket_id"] = [f"B-{i:07d}" for i in range(len(df))]
    acc = pd.read_csv(SAMPLE / "crm_accounts.csv", dtype={"account_id": str})
    accounts = {
        r["account_id"]: AccountContext(account_id=r["account_id"], name=r["name"], tier=r["tier"],
                                        is_vip=str(r["is_vip"]).lower() == "true", arr_usd=float(r["arr_usd"]),
                                        region=r["region"])
        for r in acc.to_dict(orient="records")
    }
    kb = pd.read_json(SAMPLE / "knowledge_base.jsonl", lines=True)
    return df, accounts, kb


def enrich(provider, index, records: list[dict], accounts: dict[str, AccountContext]) -> list[dict]:
    """Redaction + retrieval + the five tasks for one batch of ticket records."""
    from resources.redaction import redact

    texts = [f"{r['subject']}\n{r['body']}" for r in records]
    redacted = [redact(t) for t in texts]
    articles = index.search(texts, k=3)
    inputs = [
        TicketInput(ticket_id=r["ticket_id"], subject=r["subject"], body=r["body"], channel=r["channel"],
                    account=accounts.get(r["account_id"]), articles=arts)
        for r, arts in zip(records, articles)
    ]
    classes = provider.classify(inputs)
    for t, c in zip(inputs, classes):
        t.category = c.category
    prios = provider.prioritize(inputs)
    sentiments = provider.sentiment(inputs)
    summaries = provider.summarize(inputs)
    drafts = provider.draft_reply(inputs)
    return [
        {"ticket_id": t.ticket_id, "redacted": red.text, "category": c.category, "priority": p.priority,
         "sentiment": s.sentiment, "summary": su.summary, "draft": d.draft}
        for t, red, c, p, s, su, d in zip(inputs, redacted, classes, prios, sentiments, summaries, drafts)
    ]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="tickets to enrich (default 10,000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; medians are reported")
    ap.add_argument("--naive-sample", type=int, default=300, help="tickets timed one at a time, then extrapolated")
    ap.add_argument("--batch-size", type=int, default=0, help="tickets per provider call on the batch path (0: all)")
    args = ap.parse_args(argv)

    from resources.providers.local import LocalModelStore
    from resources.retrieval import KnowledgeBaseIndex

    df, accounts, kb = load_tickets(args.n)
    records = df[["ticket_id", "account_id", "channel", "subject", "body"]].fillna("").to_dict(orient="records")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        provider = LocalModelStore(model_dir=tmp).provider()
        print(f"trained local model {provider.version} in {time.perf_counter() - start:.1f}s (not timed below)")
    index = KnowledgeBaseIndex.from_articles(kb)
    enrich(provider, index, records[:50], accounts)  # warm-up: imports, caches

    size = args.batch_size or len(records)
    batch_times = []
    for rep in range(args.repeats):
        start = time.perf_counter()
        out = []
        for i in range(0, len(records), size):
            out += enrich(provider, index, records[i:i + size], accounts)
        batch_times.append(time.perf_counter() - start)
        assert len(out) == len(records)
        print(f"batch  run {rep + 1}: {len(records)} tickets in {batch_times[-1]:.2f}s "
              f"= {len(records) / batch_times[-1]:,.0f} tickets/s")

    sample = records[: min(args.naive_sample, len(records))]
    naive_times = []
    for rep in range(args.repeats):
        start = time.perf_counter()
        for r in sample:
            enrich(provider, index, [r], accounts)
        naive_times.append(time.perf_counter() - start)
        print(f"naive  run {rep + 1}: {len(sample)} tickets one at a time in {naive_times[-1]:.2f}s "
              f"= {len(sample) / naive_times[-1]:,.0f} tickets/s")

    per_s_batch = len(records) / statistics.median(batch_times)
    per_s_naive = len(sample) / statistics.median(naive_times)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"batch path: {per_s_batch:,.0f} tickets/s (median of {args.repeats}, batch size {size})")
    print(f"naive loop: {per_s_naive:,.0f} tickets/s (median of {args.repeats}, measured on {len(sample)} tickets "
          f"and extrapolated to {len(records)})")
    print(f"speed-up {per_s_batch / per_s_naive:.1f}x, peak RSS {peak_rss_mb:.0f} MB")
    result = {
        "n": len(records),
        "tickets_per_s_batch": round(per_s_batch, 1),
        "tickets_per_s_naive": round(per_s_naive, 1),
        "speedup": round(per_s_batch / per_s_naive, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
