"""What a task step costs outside its model: items, retrieval, the task table; column-wise vs row-wise.

    python bench/task_inputs.py [--family support_triage] [--n 20000] [--repeats 5]

Run from the repo root in the project's virtualenv. Records are the family's CSV sample rows
repeated with fresh ids up to ``--n`` (as ``bench/scale.py`` builds them), with every record
lookup joined. For each task of the family it times, median of ``--repeats``:

- ``items``: :func:`~orchestration_assets.core.items.build_items` (column by column, with the answers
  of the tasks it uses) against the row-wise way it replaced (a ``to_dict(orient="records")`` row
  per record, each used task's answers merged into it row by row);
- ``table``: :func:`~orchestration_assets.core.enrichment.task_frame` over one result per record
  against a frame of one ``to_columns`` dict per result;
- ``retrieval`` (tasks with ``retrieval:``): :meth:`DocumentIndex.search` against scikit-learn's own
  ``CountVectorizer.transform`` counting and a full stable sort of every row.

Each pair's outputs are compared (the ``identical`` key says whether all were equal). The last line
is one JSON object: n, family, seconds {part: {task: [column_wise, row_wise]}}, totals
{column_wise, row_wise, speedup}, identical.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timing import median_time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def records_frame(family, n: int) -> pd.DataFrame:
    """``n`` well-formed sample rows with record_id, input_hash and the record lookups' columns joined."""
    from orchestration_assets import inputs
    from orchestration_assets.core.lookups import join, read_lookup
    from resources.providers.base import content_hash
    from scale import batch_rows

    header, rows = batch_rows(family, n * 2, 20261201, "T")
    rows = [r for r in rows if len(r) == len(header)][:n]
    fields = {src: f for src, f in family.record.columns.items()}
    df = pd.DataFrame(rows, columns=[fields.get(c, c) for c in header])
    df["record_id"] = df[family.id_field]
    df["input_hash"] = [content_hash(i, t) for i, t in zip(df["record_id"], df[family.record.text[-1]])]
    for name in inputs.record_lookups(family):
        lk = family.spec.context[name]
        joined = join(df, df[lk.join_on], lk.alias(name), lk, read_lookup(name, lk, family.root))
        df = pd.concat([df, joined], axis=1)
    return df


def results_of(task, ids: list[str]) -> list:
    """One answered result per record, every few a failed one, shaped as the local provider answers."""
    from resources.providers.base import TaskResult

    out = {"label": (task.labels or ("a",))[0], "probabilities": {"a": 0.8}, "reasons": ["model"], "score": 0.25,
           "summary": "short", "text": "a reply", "cited_ids": ["KB-1"],
           "flags": list(getattr(task.spec, "rules", {}) or [])[:1] if task.type == "flag" else [],
           **{f: "x" for f in getattr(task.spec, "fields", {})}}
    return [TaskResult(record_id=i, task=task.name, output=None if k % 17 == 0 else dict(out),
                       confidence=None if k % 17 == 0 else 0.8, provider="local", model_id="m", model_version="v",
                       prompt_hash="p", input_hash=f"h{k}", tokens_in=k % 7, error="timeout" if k % 17 == 0 else None)
            for k, i in enumerate(ids)]


def items_row_wise(task, records, record_fields, lookup_columns, used):
    """The way items were built before: a dict per record, answers merged in row by row."""
    from resources.providers.base import Item
    from orchestration_assets.core.items import texts

    def clean(v):
        return None if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)) else v

    columns = [c for c in record_fields if c in records.columns]
    base = records[columns + [c for c in lookup_columns if c in records.columns]].rename(columns=lookup_columns)
    rows = base.astype(object).where(base.notna(), None).to_dict(orient="records")
    answers = [{} for _ in rows]
    for definition, frame in used.values():
        by_id = frame.drop_duplicates("record_id", keep="last").set_index("record_id")
        wanted = [c for c in definition.answer_columns() if c in by_id.columns]
        for i, row in enumerate(by_id.reindex(records["record_id"].tolist())[wanted].to_dict(orient="records")):
            answers[i].update(definition.item_values({k: clean(v) for k, v in row.items()}))
    text = texts(records, task.text_fields)
    ids = records["record_id"].astype(str).tolist()
    hashes = records["input_hash"].astype(str).tolist()
    return [Item(ids[i], text[i], {**rows[i], **answers[i]}, (), hashes[i]) for i in range(len(ids))]


def table_row_wise(task, results):
    from orchestration_assets.core.enrichment import with_column_types

    rows = [{"record_id": r.record_id, "input_hash": r.input_hash, **task.to_columns(r)} for r in results]
    return with_column_types(task, pd.DataFrame(rows, columns=["record_id", "input_hash", *task.columns()]))


def search_row_wise(index, texts, k):
    """scikit-learn's counting and a full stable sort per row: the same ranking, the straightforward way."""
    from resources.providers.base import Document

    q = index._tfidf.transform(index._counter.transform([t if isinstance(t, str) else "" for t in texts]))
    sims = (q @ index._matrix.T).toarray().astype(np.float32)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(sims, order, axis=1).round(4)
    return [[Document(*index._parts[j], s) for j, s in zip(o, b) if s > 0] for o, b in zip(order.tolist(), best.tolist())]




def main(argv=None) -> dict:
    from orchestration_assets import inputs
    from orchestration_assets.core.enrichment import task_frame
    from orchestration_assets.core.items import build_items
    from orchestration_assets.loading import find_family
    from resources.retrieval import DocumentIndex
    from orchestration_assets.core.lookups import read_lookup

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="support_triage")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    family = find_family(args.family)
    records = records_frame(family, args.n)
    ids = records["record_id"].tolist()
    tables = {name: task_frame(t, results_of(t, ids)) for name, t in family.tasks.items()}
    seconds: dict = {"items": {}, "table": {}, "retrieval": {}}
    identical = True
    for name, task in family.tasks.items():
        columns = inputs.item_names(family, inputs.lookups_for(family, task))
        used = {u: (family.tasks[u], tables[u]) for u in task.spec.uses}
        fields = list(family.record.fields)
        fast, a = median_time(lambda: build_items(task, records, fields, columns, used), args.repeats, warm=True)
        slow, b = median_time(lambda: items_row_wise(task, records, fields, columns, used), args.repeats, warm=True)
        identical &= [(i.id, i.text, list(i.fields.items()), i.input_hash) for i in a] == \
            [(i.id, i.text, list(i.fields.items()), i.input_hash) for i in b]
        seconds["items"][name] = [round(fast, 4), round(slow, 4)]
        results = results_of(task, ids)
        fast, a = median_time(lambda: task_frame(task, results), args.repeats, warm=True)
        slow, b = median_time(lambda: table_row_wise(task, results), args.repeats, warm=True)
        identical &= a.equals(b) and list(a.dtypes) == list(b.dtypes)
        seconds["table"][name] = [round(fast, 4), round(slow, 4)]
        retrieval = getattr(task.spec, "retrieval", None)
        if retrieval is not None:
            lk = family.spec.context[retrieval.from_]
            index = DocumentIndex.from_frame(read_lookup(retrieval.from_, lk, family.root), lk.documents)
            queries = [i.text for i in build_items(task, records, fields, columns, used)]
            fast, a = median_time(lambda: index.search(queries, k=retrieval.k), args.repeats, warm=True)
            slow, b = median_time(lambda: search_row_wise(index, queries, retrieval.k), args.repeats, warm=True)
            identical &= a == b
            seconds["retrieval"][name] = [round(fast, 4), round(slow, 4)]
    fast = sum(v[0] for part in seconds.values() for v in part.values())
    slow = sum(v[1] for part in seconds.values() for v in part.values())
    for part, by_task in seconds.items():
        for name, (f, s) in by_task.items():
            print(f"{part:10s} {name:14s} column-wise {f * 1000:8.1f} ms  row-wise {s * 1000:8.1f} ms  x{s / f:.1f}")
    print(f"all parts, {len(records):,} records: {fast:.2f}s vs {slow:.2f}s = x{slow / fast:.1f}; outputs identical: {identical}")
    return {"n": len(records), "family": family.name, "seconds": seconds,
            "totals": {"column_wise": round(fast, 3), "row_wise": round(slow, 3), "speedup": round(slow / fast, 2)},
            "identical": bool(identical)}


if __name__ == "__main__":
    result = main()
    print(json.dumps(result))
    if not result["identical"]:
        sys.exit(1)
