"""The local provider's two batch paths against their per-item baselines, on the same items.

    python bench/local_paths.py [--family support_triage] [--n 20000] [--repeats 5]

Run from the repo root in the project's virtualenv. Items are built by ``bench/enrichment.py``'s
``Enricher`` (the family's labelled rows repeated with fresh ids up to ``--n``, lookups joined,
documents retrieved; classifiers trained into a temp folder first, not timed). Measured, CPU
seconds (``time.process_time``, this process only), medians of ``--repeats``:

- TF-IDF: each classify task's vectorizer, scikit-learn's ``transform`` (baseline) vs the batch
  count of :mod:`resources.providers.local.tfidf`; the matrices must be bit-identical;
- draft: each draft task, every item rendered (baseline: the template loaded once and rendered per
  item, as before) vs :func:`resources.providers.local.draft.render` (one render per distinct set of values
  the template reads); the outputs must be equal.

The last line is one JSON object: n, tfidf_baseline_s, tfidf_s, tfidf_speedup, draft_baseline_s,
draft_s, draft_speedup, draft_distinct_renders, identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timing import median_time  # noqa: E402

import numpy as np  # noqa: E402

import enrichment as eb  # noqa: E402




def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="support_triage")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from orchestration_assets.family import Family
    from resources.providers.local import LocalModelStore, LocalProvider, draft, tfidf

    family = Family.load(ROOT / "orchestration_assets" / "defs" / args.family)
    records = eb.load_records(family, args.n)
    captured: dict = {}

    class Capture:  # the items each task is asked about, answered by the real provider
        def __init__(self, provider):
            self.provider = provider

        def run(self, task, items):
            captured[task.name] = (task, list(items))
            return self.provider.run(task, items)

    with tempfile.TemporaryDirectory() as tmp:
        store = LocalModelStore(model_dir=tmp)
        provider = store.provider(eb.train_models(family, store, eb.Enricher(family, LocalProvider())),
                                  family.label_rules)
    eb.Enricher(family, Capture(provider)).enrich(records)

    identical = True
    tf_base = tf_fast = 0.0
    for task in family.tasks_of("classify"):
        vectorizer = provider.classifiers[task.name].vectorizer
        texts = tuple(it.text for it in captured[task.name][1])
        base_s, expected = median_time(lambda: vectorizer.transform(texts), args.repeats, clock=time.process_time)
        fast_s, got = median_time(lambda: tfidf.transform(vectorizer, texts), args.repeats, clock=time.process_time)
        identical &= bool(np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
                          and np.array_equal(got.data, expected.data))
        tf_base, tf_fast = tf_base + base_s, tf_fast + fast_s
        print(f"tfidf {task.name}: scikit-learn {base_s:.3f}s, batch count {fast_s:.3f}s ({base_s / fast_s:.2f}x)")

    d_base = d_fast = 0.0
    distinct = 0
    for task in family.tasks_of("draft"):
        items = captured[task.name][1]
        root, source = str(Path(task.root).resolve()), draft.template_source(task)
        template, names = draft.load_template(task), draft.template_names(root, source)

        def per_item():  # the template loaded once, every item rendered: the loop before shared renders
            return [draft._render_one(task, template, it, draft.pick_documents(task, it), names) for it in items]

        base_s, expected = median_time(per_item, args.repeats, clock=time.process_time)
        fast_s, got = median_time(lambda: draft.render(task, items), args.repeats, clock=time.process_time)
        identical &= got == expected
        reads = draft.template_reads(root, source)
        distinct += len({draft._memo_key(it, draft.pick_documents(task, it), reads) for it in items})
        d_base, d_fast = d_base + base_s, d_fast + fast_s
        print(f"draft {task.name}: per item {base_s:.3f}s, shared renders {fast_s:.3f}s ({base_s / fast_s:.2f}x)")

    result = {
        "n": len(records), "tfidf_baseline_s": round(tf_base, 3), "tfidf_s": round(tf_fast, 3),
        "tfidf_speedup": round(tf_base / tf_fast, 2) if tf_fast else None,
        "draft_baseline_s": round(d_base, 3), "draft_s": round(d_fast, 3),
        "draft_speedup": round(d_base / d_fast, 2) if d_fast else None,
        "draft_distinct_renders": distinct, "identical": identical,
    }
    print(json.dumps(result))
    if not identical:
        raise SystemExit("error: a batch path's answer differs from its baseline")
    return result


if __name__ == "__main__":
    main()
