"""Cost of the draft guardrails: the draft step's output guardrails and the two PII / injection checks.

    python bench/guardrails.py [--family support_triage] [--n 20000] [--repeats 5]

Run from the repo root in the project's virtualenv. Drafts are real: the family's labelled rows
repeated with fresh ids up to ``--n`` (``bench/enrichment.py``'s records), enriched by the local
provider with freshly trained classifiers (not timed); the source texts are the records' text
fields. Timed, each as the median of ``--repeats`` runs, fast path against the naive one measured
on the same data in the same run:

- ``guardrails``: :func:`apply_output_guardrails` on the draft answers, against a per-record loop
  of the plain scans (``scan_pii`` over the whole text, redaction, the case-insensitive injection
  scan of the source);
- ``pii_check``: ``find_pii_many`` over the stored drafts (what ``outputs_free_of_pii`` runs),
  against ``scan_pii`` per draft;
- ``echo_check``: the echo prefilter plus ``echoed_injection_phrases`` on the drafts that pass it
  (what ``outputs_do_not_echo_injection`` runs), against the echo test of every record with the
  case-insensitive scan.

Both paths must give identical results (checked; exit status 1 otherwise). The last line is one
JSON object with keys n, drafts_distinct, and per measure ``<name>_s``, ``<name>_naive_s``,
``<name>_speedup``.
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




def _plain_phrases(text: str) -> list[str]:
    from resources.injection import _INJECTION

    out: list[str] = []
    for m in _INJECTION.finditer(text or ""):
        phrase = m.group().strip().lstrip(".").strip()
        if phrase and phrase not in out:
            out.append(phrase)
    return out


def _plain_echo(output: str, source: str) -> list[str]:
    if not output or not source:
        return []
    low = output.lower()
    return [p for p in _plain_phrases(source) if p.lower() in low]


def _plain_guardrails(task, answers, sources):
    """The guardrails as one plain scan per record and field (the naive baseline)."""
    from resources.redaction import redact, scan_pii

    n = task.name
    out = answers.copy()
    texts, violations, redactions = [], [], []
    for rid, text, cited in zip(out["record_id"], out[n], out[f"{n}_cited_ids"]):
        found, count = [], 0
        if isinstance(text, str) and text:
            hits = scan_pii(text)
            if hits:
                result = redact(text, hits)
                text, count = result.text, result.count
                found.append("pii_in_output")
            if _plain_echo(text, sources.get(rid, "")):
                found.append("injection_echo")
            if task.spec.citation_required and not (list(cited) if isinstance(cited, (list, tuple)) else []):
                found.append("no_citation")
            if len(text) < task.spec.min_chars:
                found.append("too_short")
            elif len(text) > task.spec.max_chars:
                found.append("too_long")
        texts.append(text)
        violations.append(found)
        redactions.append(count)
    out[n] = texts
    out[f"{n}_violations"] = violations
    out[f"{n}_pii_redacted"] = redactions
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="support_triage", help="folder under orchestration_assets/defs")
    ap.add_argument("--n", type=int, default=20_000, help="records (default 20,000)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats; medians are reported")
    args = ap.parse_args(argv)

    from enrichment import Enricher, load_records, train_models

    from orchestration_assets.core.enrichment import task_frame
    from orchestration_assets.core.guardrails import apply_output_guardrails, could_echo_injection, echoed_injection_phrases
    from orchestration_assets.family import Family
    from resources.providers.local import LocalModelStore, LocalProvider
    from resources.redaction import find_pii_many, scan_pii

    family = Family.load(ROOT / "orchestration_assets" / "defs" / args.family)
    drafts = family.tasks_of("draft")
    if not drafts:
        raise SystemExit(f"error: family {family.name} has no draft task")
    task = drafts[0]
    records = load_records(family, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalModelStore(model_dir=tmp)
        versions = train_models(family, store, Enricher(family, LocalProvider()))
        enricher = Enricher(family, store.provider(versions, family.label_rules))
        start = time.perf_counter()
        results = enricher.enrich(records)[task.name]
        print(f"{len(records)} records enriched in {time.perf_counter() - start:.1f}s (not timed below)")
    answers = task_frame(task, results)
    sources = {str(r[family.id_field]): "\n".join(str(r.get(f) or "") for f in task.text_fields).strip() for r in records}
    outputs = answers[task.name].tolist()
    print(f"{len(outputs)} drafts, {len(set(outputs))} distinct")

    out: dict = {"n": len(records), "family": family.name, "drafts_distinct": len(set(outputs))}
    ok = True

    def echo_fast():
        may: dict[str, bool] = {}
        return [echoed_injection_phrases(o, sources[rid]) if isinstance(o, str) and may.setdefault(o, could_echo_injection(o))
                else [] for rid, o in zip(answers["record_id"], outputs)]

    measures = {
        "guardrails": (lambda: apply_output_guardrails(task, answers, sources), lambda: _plain_guardrails(task, answers, sources)),
        "pii_check": (lambda: find_pii_many(outputs), lambda: [scan_pii(o) if isinstance(o, str) else [] for o in outputs]),
        "echo_check": (echo_fast, lambda: [_plain_echo(o, sources[rid]) if isinstance(o, str) else []
                                           for rid, o in zip(answers["record_id"], outputs)]),
    }
    for name, (fast, naive) in measures.items():
        fast_s, fast_out = median_time(fast, args.repeats)
        naive_s, naive_out = median_time(naive, args.repeats)
        if hasattr(fast_out, "columns"):  # frames: the same columns with the same values
            same = list(fast_out.columns) == list(naive_out.columns) and all(
                fast_out[c].tolist() == naive_out[c].tolist() for c in fast_out.columns)
        else:
            same = fast_out == naive_out
        ok &= same
        out.update({f"{name}_s": round(fast_s, 4), f"{name}_naive_s": round(naive_s, 4),
                    f"{name}_speedup": round(naive_s / fast_s, 1) if fast_s else None, f"{name}_identical": same})
        print(f"{name}: {fast_s:.3f}s against {naive_s:.3f}s naive ({naive_s / fast_s:.1f}x), identical: {same}")
    print(json.dumps(out))
    if not ok:
        raise SystemExit(1)
    return out


if __name__ == "__main__":
    main()
